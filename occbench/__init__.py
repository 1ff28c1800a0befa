"""occbench: dataset + evaluation suite for offboard 3D semantic scene completion refinement."""

from occbench.version import __version__

__all__ = ["__version__"]
