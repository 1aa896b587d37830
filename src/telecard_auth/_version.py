"""The package version, read by the build backend and by ``telecard_auth.__version__``."""

__version__ = "0.1.0.dev0"
