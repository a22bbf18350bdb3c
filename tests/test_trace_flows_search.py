"""trace_viewer's launch arrows (flows=1), whole-profile search (search=...) and exact 64-bit stats.

Oracles are plain Python over the decoded events: every stat read one event at a time, names
compared one event at a time.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import xprof_core
from xprof_core.tools import trace_viewer as tv

from conftest import REAL, ROOT, TPU, need

H100 = ROOT / "src" / "xprof_core" / "demo" / "jax_mlp_h100" / "plugins" / "profile" / "2026_11_28_01_22_41"
H100_FILE = H100 / "h100-node.xplane.pb"
AMD_GEMM = REAL / "amd-tracelens" / "tests" / "traces" / "mi300" / "jax08_gemm" / "tw003.xplane.pb"


def _launch_pairs(xs: xprof_core.XSpace) -> set[tuple[float, float]]:
    """(launch start µs, device event start µs) of every host/device pair sharing a correlation_id."""
    host: dict[int, float] = {}
    device: dict[int, list[float]] = defaultdict(list)
    rows = np.flatnonzero(xs.is_timed)
    for row, stats in zip(rows.tolist(), xs.iter_event_stats(rows), strict=True):
        corr = stats.get("correlation_id")
        if corr is None:
            continue
        plane = xs.planes[int(xs.plane_of_event[row])].name
        t = (int(xs.start_ps[row]) - xs.origin_ps) / 1e6
        if plane.startswith("/host:"):
            host.setdefault(corr, t)
        elif plane.startswith("/device:"):
            device[corr].append(t)
    return {(host[c], t) for c, ts in device.items() if c in host for t in ts}


@pytest.mark.parametrize("path", [H100_FILE, AMD_GEMM], ids=["h100", "amd"])
def test_flows_pair_each_launch_with_its_device_events(path: Path) -> None:
    xs = xprof_core.load(need(path))
    params = {"flows": "1"}
    result = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)
    starts = {e["id"]: e for e in result["traceEvents"] if e["ph"] == "s"}
    ends = {e["id"]: e for e in result["traceEvents"] if e["ph"] == "f"}
    assert starts.keys() == ends.keys() and starts
    pairs = {(starts[k]["ts"], ends[k]["ts"]) for k in starts}
    assert pairs == _launch_pairs(xs)
    meta = [e for e in result["traceEvents"] if e["ph"] == "M"]
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert {procs[e["pid"]] for e in starts.values()} == {"/host:CPU"}
    assert {procs[e["pid"]].startswith("/device:GPU") for e in ends.values()} == {True}
    assert all(e["bp"] == "e" and e["cat"] == "gpu_launch" for e in ends.values())
    # The JSON renderer writes the same flows.
    doc = json.loads(tv.TRACE_VIEWER.reduce_json([tv.TRACE_VIEWER.map(xs, params)], params))
    assert [e for e in doc["traceEvents"] if e["ph"] in "sf"] == [e for e in result["traceEvents"] if e["ph"] in "sf"]


def test_flows_reach_ends_outside_the_window() -> None:
    xs = xprof_core.load(H100_FILE)
    everything = _launch_pairs(xs)
    # A window around one kernel: its arrow comes with it, its launch being earlier than the window.
    launch, kernel = max(everything, key=lambda p: p[1] - p[0])
    params = {"flows": "1", "start_time_ms": str(kernel / 1e3), "end_time_ms": str((kernel + 0.001) / 1e3)}
    result = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)
    starts = {e["id"]: e["ts"] for e in result["traceEvents"] if e["ph"] == "s"}
    ends = {e["id"]: e["ts"] for e in result["traceEvents"] if e["ph"] == "f"}
    assert (launch, kernel) in {(starts[k], ends[k]) for k in starts}
    assert launch < kernel / 1.0 - 1  # the launch is outside the window
    assert not [e for e in tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, {})], {})["traceEvents"] if e["ph"] in "sf"]


@pytest.mark.parametrize("query", ["gemm_fusion_dot_4", "GEMM", "memcpy", "train", "no-such-name"])
def test_search_counts_every_event_in_the_profile(query: str) -> None:
    xs = xprof_core.load(H100_FILE)
    rows = np.flatnonzero(xs.is_timed)
    names = xs.event_names(rows).astype(str)
    hit = np.array([query.lower() in n.lower() for n in names], dtype=bool)
    expected = sorted(
        ((int(xs.start_ps[r]) - xs.origin_ps) / 1e6, n) for r, n in zip(rows[hit], names[hit], strict=True)
    )
    params = {"search": query, "search_limit": "7"}
    found = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)["search"]
    assert found["total"] == found["after"] == len(expected)
    assert [(m["ts"], m["name"]) for m in found["matches"]] == expected[:7]
    assert found["returned"] == min(7, len(expected))
    if len(expected) > 3:
        # From a time on: the matches at or after it.
        t = expected[3][0]
        params = {"search": query, "search_from_ms": str(t / 1e3)}
        later = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)["search"]
        assert later["total"] == len(expected) and later["after"] == sum(ts >= t for ts, _ in expected)
        assert later["matches"][0]["ts"] == t


def test_search_matches_point_at_their_thread_and_cover_derived_lines() -> None:
    xs = xprof_core.load(H100_FILE)
    trace = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, {"derived": "1"})], {})
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    params = {"search": "train 1", "derived": "1"}
    found = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)["search"]
    on = {threads[(m["pid"], m["tid"])] for m in found["matches"]}
    assert "Steps" in on  # the derived Steps row ("train 1", "train 10" ... "train 19")
    events = {(e["pid"], e["tid"], e["ts"], e["name"]) for e in trace["traceEvents"] if e["ph"] == "X"}
    assert all((m["pid"], m["tid"], m["ts"], m["name"]) in events for m in found["matches"])
    # Two hosts: totals add up, the second host's pids move up by 1000.
    two = tv.TRACE_VIEWER.reduce(
        [{**tv.TRACE_VIEWER.map(xs, params), "host": "a"}, {**tv.TRACE_VIEWER.map(xs, params), "host": "b"}], params
    )["search"]
    assert two["total"] == 2 * found["total"]
    assert {m["pid"] // 1000 for m in two["matches"]} == {0, 1}
    assert json.loads(tv.TRACE_VIEWER.reduce_json([tv.TRACE_VIEWER.map(xs, params)], params)) == {"search": found}


def test_bad_search_parameters_are_rejected() -> None:
    xs = xprof_core.load(H100_FILE)
    for params in ({"search": "x" * 300}, {"search": "a", "search_limit": "0"}, {"search": "a", "search_from_ms": "x"}):
        with pytest.raises(ValueError):
            tv.TRACE_VIEWER.map(xs, params)


def test_64_bit_stats_are_exact_strings() -> None:
    xs = xprof_core.load(need(TPU))
    doc = json.loads(tv.TRACE_VIEWER.reduce_json([tv.TRACE_VIEWER.map(xs, {})], {}))
    ids = {e["args"]["program_id"] for e in doc["traceEvents"] if e["ph"] == "X" and "program_id" in e["args"]}
    # 12190760917235803885 > 2**53: a double would make it 12190760917235804000.
    assert "12190760917235803885" in ids
    assert all(isinstance(v, str) and int(v) > 2**53 or isinstance(v, int) and v <= 2**53 for v in ids)
    small = [e["args"]["run_id"] for e in doc["traceEvents"] if e["ph"] == "X" and "run_id" in e["args"]]
    assert small and all(isinstance(v, int) for v in small)  # small integers stay numbers
