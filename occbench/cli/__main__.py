"""``python -m occbench.cli``: the ``occbench`` command line."""

from occbench.cli.main import run

if __name__ == "__main__":  # importing this module (e.g. to list modules) runs nothing
    run()
