"""Benchmark fixtures and the closing table of measured figures (see figures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from figures import RESULTS, large_profile


@pytest.fixture(scope="session")
def large_file() -> Path:
    path = large_profile()
    if path is None or not path.exists():
        pytest.skip("no large profile: set XPROF_BENCH_LARGE=FILE or pip install jax to generate one")
    return path


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if RESULTS:
        terminalreporter.section("xprof-core benchmark figures")
        for line in RESULTS:
            terminalreporter.write_line(line)
