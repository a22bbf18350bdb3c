"""A small logdir of real JAX profiles shipped with the package (see README.md here)."""

from pathlib import Path

DEMO_LOGDIR = Path(__file__).resolve().parent
