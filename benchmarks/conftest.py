"""Benchmark fixtures and the closing table of measured figures (see figures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from figures import RESULTS, large_profile, machine_load


@pytest.fixture(scope="session")
def large_file() -> Path:
    path = large_profile()
    if path is None or not path.exists():
        pytest.skip("no large profile: set XPROF_BENCH_LARGE=FILE or pip install jax to generate one")
    return path


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    import sys

    tables = []
    for module, name in (("test_tools_vs_xprof", "cold_table"), ("test_warm_http", "warm_table")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            tables += getattr(loaded, name)()
    if RESULTS or tables:
        terminalreporter.section("xprof-core benchmark figures")
        for line in RESULTS:
            terminalreporter.write_line(line)
        if tables:
            terminalreporter.write_line("")
            for line in tables:
                terminalreporter.write_line(line)
        terminalreporter.write_line(f"(at the end of the run: {machine_load()})")
