"""brittle's version, in a module of its own so that any layer can read it without importing
the package's top (``brittle/__init__.py``), which imports the layers above it."""

__version__ = "0.1.0"
