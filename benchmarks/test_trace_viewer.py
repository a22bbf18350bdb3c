"""trace_viewer speed on the large JAX CPU profile: index build, full-window and zoomed queries.

Each figure is the best of a few rounds on an already decoded host. "events/s"
is the number of events the query covers (events in the window) per second of
the call, so a zoomed query and a full one compare on the same scale. The map
figures include decoding the args of the kept events; the select figures are
the window search and visibility rule alone.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

import xprof_core
from xprof_core.tools import trace_viewer as tv

from figures import record


@pytest.fixture(scope="module")
def large(large_file: Path) -> xprof_core.XSpace:
    xs = xprof_core.load(large_file)
    # Derived columns every tool shares (computed once per host), outside the timings.
    _ = xs.is_timed, xs.line_of_event, xs.plane_of_event, xs.event_metadata_row
    return xs


def _best(benchmark: Any) -> float:
    return float(benchmark.stats.stats.min)


def test_index_build(benchmark: Any, large: xprof_core.XSpace) -> None:
    idx = benchmark.pedantic(tv.build_trace_index, args=(large,), rounds=3, iterations=1)
    s = _best(benchmark)
    benchmark.extra_info.update({"events_per_s": idx.num_events / s, "index_bytes": idx.nbytes})
    record(
        f"trace_viewer index build: {idx.num_events:,} events, {idx.num_groups} (line, depth) groups, "
        f"depth <= {idx.max_depth} | {s * 1e3:.0f} ms ({idx.num_events / s / 1e6:.1f} M events/s) | "
        f"index {idx.nbytes / 1e6:.0f} MB ({idx.nbytes / idx.num_events:.0f} B/event)"
    )


def _query(benchmark: Any, xs: xprof_core.XSpace, label: str, params: dict[str, Any]) -> None:
    idx = tv.trace_index(xs)  # built once, outside the timing
    span_ms = (idx.end_ps - idx.first_ps) / 1e9
    ws = None if "start_time_ms" not in params else round(float(params["start_time_ms"]) * 1e9)
    we = None if "end_time_ms" not in params else round(float(params["end_time_ms"]) * 1e9)
    sel = benchmark.pedantic(
        tv.select_window,
        args=(idx, ws, we, int(params.get("resolution", 8000))),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    select_s = _best(benchmark)
    # The HTTP path: map (window, visibility, args rendered in C) + reduce_json (bytes sent as is).
    rounds = []
    size = 0
    for _ in range(7):
        t0 = time.perf_counter()
        part = tv.TRACE_VIEWER.map(xs, params)
        t1 = time.perf_counter()
        body = tv.TRACE_VIEWER.reduce_json([part], params)
        rounds.append((t1 - t0, time.perf_counter() - t1))
        size = len(body)
    map_s = statistics.median(r[0] for r in rounds)
    reduce_s = statistics.median(r[1] for r in rounds)
    total = statistics.median(r[0] + r[1] for r in rounds)
    n = sel.events_in_window
    benchmark.extra_info.update(
        {
            "events_in_window": n,
            "kept": len(sel.positions),
            "select_events_per_s": n / select_s,
            "map_s": map_s,
            "api_s": total,
        }
    )
    record(
        f"trace_viewer {label} (span {span_ms:,.0f} ms): {n:,} events in window -> {len(sel.positions):,} kept | "
        f"select {select_s * 1e3:.1f} ms ({n / select_s / 1e6:,.1f} M events/s) | map with args "
        f"{map_s * 1e3:.0f} ms + reduce_json {reduce_s * 1e3:.0f} ms = {total * 1e3:.0f} ms median "
        f"({size / 1e6:.1f} MB of JSON)"
    )


def test_full_window_query(benchmark: Any, large: xprof_core.XSpace) -> None:
    _query(benchmark, large, "full window, resolution 8000", {})


def test_zoomed_query(benchmark: Any, large: xprof_core.XSpace) -> None:
    idx = tv.trace_index(large)
    span_ms = (idx.end_ps - idx.first_ps) / 1e9
    start = idx.first_ps / 1e9 + span_ms * 0.5
    _query(
        benchmark,
        large,
        "1% window, resolution 8000",
        {"start_time_ms": f"{start:.6f}", "end_time_ms": f"{start + span_ms * 0.01:.6f}"},
    )


def test_fine_full_window_query(benchmark: Any, large: xprof_core.XSpace) -> None:
    _query(benchmark, large, "full window, resolution 100000", {"resolution": "100000", "include_args": "0"})
