"""Opening files that may come from strangers: regular files only, never blocking on a FIFO or a device (defined
in :mod:`occbench.regular_files`, which imports only the standard library)."""
from occbench.regular_files import (MAX_JSON_BYTES, describe_mode, open_regular, read_json_document,  # noqa: F401
                                    regular_stat)

__all__ = ["MAX_JSON_BYTES", "describe_mode", "open_regular", "read_json_document", "regular_stat"]
