"""occbench's version, in a module of its own: importable even where ``occbench/__init__.py`` is not run (a folder
named ``occbench`` in the current folder shadows an editable install's package as a namespace package)."""

__version__ = "0.1.0"
