"""The package version, importable without numpy or the compiled core."""

__version__ = "0.1.0"
