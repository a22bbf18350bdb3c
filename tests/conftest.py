"""Where the test inputs live, and skips for when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import xprof_core

# gcsfs (the test extra installs it) asks google-auth for credentials whenever a gs:// filesystem is
# made, and google-auth then looks for a metadata server off this machine: tests never use real
# Google credentials, so neither looks. Set before gcsfs is imported; child processes inherit it.
os.environ.setdefault("NO_GCE_CHECK", "true")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
for _var in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):  # and were it to look, it would find loopback
    os.environ.setdefault(_var, "127.0.0.1:9")

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
JAX_DATA = ROOT / "tests" / "data" / "jax"
CORRUPTED = REAL / "openxla-xprof" / "corrupted" / "tpu_inference_2.at-bfd424c.utf8-mangled.xplane.pb"
V100 = REAL / "openxla-xprof" / "demo" / "plugins" / "profile" / "GPU-multi-worker" / "34.83.195.179_6003.xplane.pb"
TPU = REAL / "openxla-xprof" / "xprof" / "convert" / "test_xplanes" / "tpu_inference_2.xplane.pb"
NO_REAL = "the shared real-profile folder ../shared/data/real is absent"


def real_xplane_files() -> list[Path]:
    """Every valid real .xplane.pb (the corrupted one left out), sorted."""
    if not REAL.is_dir():
        return []
    return sorted(p for p in REAL.rglob("*.xplane.pb") if "corrupted" not in p.parts)


def jax_files() -> list[Path]:
    return sorted(JAX_DATA.glob("*.xplane.pb"))


def need(path: Path) -> Path:
    """Skip the calling test with a clear reason when a shared input is missing."""
    if not path.exists():
        pytest.skip(f"{NO_REAL} ({path.name} not found)")
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that must import the very xprof_core this test imports.

    The package's parent folder goes first on PYTHONPATH: site-packages after
    ``pip install .``, or ``src`` in a development tree with compiled modules
    built in place.
    """
    package_parent = str(Path(xprof_core.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
