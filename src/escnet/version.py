"""escnet's version (``escnet.__version__``), in a module of its own so that every stage can
record it (a model directory, a run's config) without importing the package's entry points."""

__version__ = "0.1.0"
