"""Inputs shared by the benchmark suites, and the figures they print at the end.

Run with ``python -m pytest benchmarks`` (they are not part of the default test
run). The large profile comes from ``$XPROF_BENCH_LARGE`` when set, else it is
generated once into ``benchmarks/.data/`` by ``scripts/make_jax_profiles.py``
when JAX is installed (``pip install jax``); without either, the large cases skip.

The engine benchmarks (test_engine_vs_xprof.py, test_warm_http.py) run on the
profiles named in ``$XPROF_BENCH_PROFILES`` (comma-separated, default
``cpu124,gpu100,cpu500``):

* ``cpu124``: the large JAX CPU profile above (~124 MB, 12,500 steps, Python tracer);
* ``gpu100``: the H200 JAX profile ``../shared/data/h200/jax_dev_nocmdbuf.xplane.pb.gz``
  repeated by ``scripts/scale_profile.py`` to at least 100 MB;
* ``cpu500``: ``cpu124`` repeated 4 times (~490 MB, ~16 M events);
* ``cpu2g``: ``cpu124`` repeated 16 times (~1.97 GB, one huge host: the sharding benchmark);
* ``gpu20``: the H200 profile repeated to ~20 MB (a quick check of the harness).

Scaled profiles are written once into ``benchmarks/.data/`` and reused.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
LARGE_DIR = ROOT / "benchmarks" / ".data"
LARGE_NAME = "jax_cpu_large"
# About 12500 steps of the tiny MLP with the Python tracer on give ~120 MB.
LARGE_STEPS = int(os.environ.get("XPROF_BENCH_LARGE_STEPS", "12500"))

RESULTS: list[str] = []


def real_files() -> list[Path]:
    files = sorted(p for p in REAL.rglob("*.xplane.pb") if "corrupted" not in p.parts) if REAL.is_dir() else []
    files += sorted((ROOT / "tests" / "data" / "jax").glob("*.xplane.pb"))
    return files


def large_profile() -> Path | None:
    env = os.environ.get("XPROF_BENCH_LARGE")
    if env:
        return Path(env)
    path = LARGE_DIR / f"{LARGE_NAME}.xplane.pb"
    if path.exists():
        return path
    if importlib.util.find_spec("jax") is None:
        return None
    LARGE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_jax_profiles.py"),
            "--out-dir",
            str(LARGE_DIR),
            "--name",
            LARGE_NAME,
            "--steps",
            str(LARGE_STEPS),
            "--hidden",
            "128",
            "--python-tracer",
            "--platform",
            "cpu",
        ],
        check=True,
    )
    return path


def record(line: str) -> None:
    """Keep a result line for the summary printed at the end of the run."""
    RESULTS.append(line)
    print(line)


# --- the engine benchmarks' profiles ---

H200_SOURCE = ROOT.parent / "shared" / "data" / "h200" / "jax_dev_nocmdbuf.xplane.pb.gz"
DEFAULT_PROFILES = "cpu124,gpu100,cpu500"


def _scaler() -> ModuleType:
    module = sys.modules.get("scale_profile")
    if module is None:
        spec = importlib.util.spec_from_file_location("scale_profile", ROOT / "scripts" / "scale_profile.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["scale_profile"] = module
        spec.loader.exec_module(module)
    return module


def copies_for(src: Path, target_bytes: int) -> int:
    """How many copies of ``src`` make a scaled file of at least ``target_bytes`` (sizes grow linearly)."""
    scale = _scaler().scale_profile
    LARGE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=LARGE_DIR) as tmp:
        one = scale(src, Path(tmp) / "x1.xplane.pb", 1).output_bytes
        two = scale(src, Path(tmp) / "x2.xplane.pb", 2).output_bytes
    return max(1, math.ceil((target_bytes - one) / (two - one)) + 1)


def scaled_profile(src: Path | None, name: str, *, times: int | None = None, target_bytes: int = 0) -> Path | None:
    """``benchmarks/.data/NAME.xplane.pb``: ``src`` repeated ``times`` times (or to ``target_bytes``), made once."""
    out = LARGE_DIR / f"{name}.xplane.pb"
    if out.exists():
        return out
    if src is None or not src.exists():
        return None
    n = times if times is not None else copies_for(src, target_bytes)
    report = _scaler().scale_profile(src, out, n)
    (LARGE_DIR / f"{name}.txt").write_text(
        f"{out.name}: {src.name} x {n} (scripts/scale_profile.py)\n{report.summary()}\n"
    )
    return out


@dataclass(frozen=True)
class BenchProfile:
    """A benchmark input: its name, what it is, how to get it, and why it may be missing."""

    name: str
    what: str
    make: Callable[[], Path | None]
    missing: str


PROFILES = {
    p.name: p
    for p in (
        BenchProfile(
            "cpu124",
            "JAX CPU, 12,500 steps, Python tracer (make_jax_profiles.py)",
            large_profile,
            "no large JAX CPU profile: set XPROF_BENCH_LARGE=FILE or pip install jax to generate one",
        ),
        BenchProfile(
            "gpu100",
            "H200 JAX (no command buffers) repeated to >= 100 MB",
            lambda: scaled_profile(H200_SOURCE, "h200_nocmdbuf_100mb", target_bytes=100_000_000),
            f"no {H200_SOURCE.name} in ../shared/data/h200 to scale",
        ),
        BenchProfile(
            "cpu500",
            "the JAX CPU profile repeated 4 times",
            lambda: scaled_profile(large_profile(), "jax_cpu_large_x4", times=4),
            "no large JAX CPU profile to scale (see cpu124)",
        ),
        BenchProfile(
            "cpu2g",
            "the JAX CPU profile repeated 16 times (~2 GB: one huge host)",
            lambda: scaled_profile(large_profile(), "jax_cpu_large_x16", times=16),
            "no large JAX CPU profile to scale (see cpu124)",
        ),
        BenchProfile(
            "gpu20",
            "H200 JAX (no command buffers) repeated to ~20 MB",
            lambda: scaled_profile(H200_SOURCE, "h200_nocmdbuf_20mb", target_bytes=20_000_000),
            f"no {H200_SOURCE.name} in ../shared/data/h200 to scale",
        ),
    )
}


def selected_profiles() -> list[str]:
    """The profile names the engine benchmarks run on (``$XPROF_BENCH_PROFILES``)."""
    names = [n.strip() for n in os.environ.get("XPROF_BENCH_PROFILES", DEFAULT_PROFILES).split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profiles {unknown} in XPROF_BENCH_PROFILES; known: {sorted(PROFILES)}")
    return names


_MADE: dict[str, Path | None] = {}


def bench_profile(name: str) -> Path:
    """The profile's path, made on first use; skips the calling test with the reason when it cannot be."""
    import pytest

    if name not in _MADE:
        _MADE[name] = PROFILES[name].make()
    path = _MADE[name]
    if path is None or not path.exists():
        pytest.skip(PROFILES[name].missing)
    return path


def xprof_python() -> str | None:
    """An interpreter that imports XProf: ``$XPROF_PYTHON``, else this one if it can."""
    env = os.environ.get("XPROF_PYTHON")
    if env:
        return env
    probe = subprocess.run([sys.executable, "-c", "import xprof.convert.raw_to_tool_data"], capture_output=True)
    return sys.executable if probe.returncode == 0 else None


def package_env() -> dict[str, str]:
    """This process's environment with the xprof_core it imports on PYTHONPATH (for child processes)."""
    import xprof_core

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    parent = str(Path(xprof_core.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def machine_load() -> str:
    """The load average and core count, for the figures' context."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"
