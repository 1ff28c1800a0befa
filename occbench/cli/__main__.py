"""``python -m occbench.cli``: the ``occbench`` command line."""
from occbench.cli.main import main

main()
