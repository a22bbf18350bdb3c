"""Inputs shared by the benchmark suites, and the figures they print at the end.

Run with ``python -m pytest benchmarks`` (they are not part of the default test
run). The large profile comes from ``$XPROF_BENCH_LARGE`` when set, else it is
generated once into ``benchmarks/.data/`` by ``scripts/make_jax_profiles.py``
when JAX is installed (``pip install jax``); without either, the large cases skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

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
