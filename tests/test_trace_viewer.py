"""trace_viewer: Chrome Trace Event JSON of windows of the timeline, checked against protobuf.

The oracle for every count, time, name and stat is protobuf's own parse of the
file (``xplane_pb2``) read with plain Python; the oracle for the visibility
rule is a per-event Python loop over a synthetic profile of more than 500,000
events (the size above which the rule applies).
"""

from __future__ import annotations

import gc
import gzip
import json
import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.protos import xplane_pb2
from xprof_core.tools import get_tool
from xprof_core.tools import trace_viewer as tv

from conftest import JAX_DATA, NO_REAL, REAL, ROOT, V100, jax_files, need, real_xplane_files

GOLDEN = ROOT / "tests" / "data" / "xprof_golden.json"
GPU_LONG = JAX_DATA / "gpu_mlp_train_long.xplane.pb"
V100_OTHER = V100.with_name("34.83.195.180_6003.xplane.pb")


def _files() -> list[Any]:
    params = [
        pytest.param(p, id=p.name if p.parent == JAX_DATA else str(p.relative_to(REAL)))
        for p in real_xplane_files() + jax_files()
    ]
    if not REAL.is_dir():
        params.append(pytest.param(None, id="real-files", marks=pytest.mark.skip(reason=NO_REAL)))
    return params


FILES = _files()


# --- the protobuf oracle ---


def _stat_value(stat: xplane_pb2.XStat, names: dict[int, str]) -> Any:
    which = stat.WhichOneof("value")
    if which is None:
        return None
    if which == "ref_value":
        return names.get(stat.ref_value, "")
    value = getattr(stat, which)
    if which == "bytes_value":
        return value.hex()
    if which == "double_value" and not math.isfinite(value):
        return str(value)
    if which in ("int64_value", "uint64_value") and abs(value) > 2**53:
        # JavaScript would round it: the trace carries its exact digits as a string.
        return str(value)
    return value


@dataclass
class Oracle:
    """Every event of a file in decoder row order (plane, line, event), from protobuf."""

    space: xplane_pb2.XSpace
    events: list[tuple[int, int, xplane_pb2.XEvent]]  # (plane index, line index in plane, event)
    timed: np.ndarray  # bool per row
    start_ps: np.ndarray  # absolute, int64
    duration_ps: np.ndarray

    @property
    def origin_ps(self) -> int:
        return int(self.start_ps[self.timed].min())

    def name(self, row: int) -> str:
        p, _, ev = self.events[row]
        md = self.space.planes[p].event_metadata
        return md[ev.metadata_id].name if ev.metadata_id in md else ""

    def args(self, row: int) -> dict[str, Any]:
        p, _, ev = self.events[row]
        plane = self.space.planes[p]
        names = {k: v.name for k, v in plane.stat_metadata.items()}
        out: dict[str, Any] = {}
        if ev.metadata_id in plane.event_metadata:
            for st in plane.event_metadata[ev.metadata_id].stats:
                out[names.get(st.metadata_id, str(st.metadata_id))] = _stat_value(st, names)
        for st in ev.stats:
            out[names.get(st.metadata_id, str(st.metadata_id))] = _stat_value(st, names)
        return out


def oracle_of(path: Path) -> Oracle:
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    events, timed, start, dur = [], [], [], []
    for pi, plane in enumerate(space.planes):
        for li, line in enumerate(plane.lines):
            for ev in line.events:
                events.append((pi, li, ev))
                is_timed = ev.WhichOneof("data") != "num_occurrences"
                timed.append(is_timed)
                start.append(line.timestamp_ns * 1000 + (ev.offset_ps if is_timed else 0))
                dur.append(ev.duration_ps)
    return Oracle(
        space, events, np.array(timed, dtype=bool), np.array(start, dtype=np.int64), np.array(dur, dtype=np.int64)
    )


def in_window(o: Oracle, start_ms: float, end_ms: float) -> set[int]:
    """Timed rows overlapping [start, end) ms after the origin (zero-length: starting inside)."""
    ws, we = round(start_ms * 1e9), round(end_ms * 1e9)
    s = o.start_ps - o.origin_ps
    e = s + o.duration_ps
    keep = o.timed & (s < we) & ((e > ws) | (s >= ws))
    return set(np.flatnonzero(keep).tolist())


def x_events(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in result["traceEvents"] if e["ph"] == "X"]


# --- full fidelity on every real and JAX file ---


@pytest.mark.parametrize("path", FILES)
def test_every_timed_event_is_returned(path: Path) -> None:
    o = oracle_of(path)
    xs = xprof_core.load(path)
    expected = int(o.timed.sum())
    params = {"resolution": "0"}  # every event
    part = tv.TRACE_VIEWER.map(xs, params)
    result = tv.TRACE_VIEWER.reduce([part], params)
    assert result["returnedEventsSize"] == expected
    assert len(x_events(result)) == expected
    assert result["droppedEvents"]["count"] == 0
    assert result["droppedEvents"]["eventsInWindow"] == expected
    assert sorted(part["row"].tolist()) == np.flatnonzero(o.timed).tolist()
    span_ps = int((o.start_ps + o.duration_ps)[o.timed].max()) - o.origin_ps
    assert result["fullTimespan"] == [0.0, span_ps / 1e9]
    # The default view (resolution 8000) is thinned, and says by how much: nothing is lost silently.
    thinned = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, {})], {})
    assert thinned["returnedEventsSize"] + thinned["droppedEvents"]["byVisibility"] == expected
    assert thinned["droppedEvents"]["eventsInWindow"] == expected


@pytest.mark.parametrize("path", FILES)
def test_sample_events_match_protobuf(path: Path) -> None:
    o = oracle_of(path)
    xs = xprof_core.load(path)
    part = tv.TRACE_VIEWER.map(xs, {"resolution": 0})
    result = tv.TRACE_VIEWER.reduce([part], {"resolution": 0})
    events = x_events(result)
    where = {r: i for i, r in enumerate(part["row"].tolist())}
    rng = np.random.default_rng(7)
    timed_rows = np.flatnonzero(o.timed)
    for row in rng.choice(timed_rows, size=min(300, len(timed_rows)), replace=False).tolist():
        ev = events[where[row]]
        assert ev["ts"] == (int(o.start_ps[row]) - o.origin_ps) / 1e6
        assert ev["dur"] == int(o.duration_ps[row]) / 1e6
        assert ev["name"] == o.name(row)
        assert ev["args"] == o.args(row), f"args of row {row}"
        p, li, _ = o.events[row]
        line = o.space.planes[p].lines[li]
        thread = next(
            m
            for m in result["traceEvents"]
            if m["ph"] == "M" and m["name"] == "thread_name" and m["pid"] == ev["pid"] and m["tid"] == ev["tid"]
        )
        assert thread["args"]["name"] == (line.display_name or line.name)
        process = next(
            m for m in result["traceEvents"] if m["ph"] == "M" and m["name"] == "process_name" and m["pid"] == ev["pid"]
        )
        assert process["args"]["name"] == o.space.planes[p].name
    json.dumps(result, allow_nan=False)  # valid JSON: no NaN or inf anywhere


@pytest.mark.parametrize("path", FILES)
def test_same_depth_events_never_overlap(path: Path) -> None:
    idx = tv.build_trace_index(xprof_core.load(path))
    first = np.zeros(idx.num_events, dtype=bool)
    first[idx.group_begin[:-1]] = True
    assert (idx.key_end[:-1] <= idx.key_start[1:])[~first[1:]].all()
    assert (np.diff(idx.key_start) >= 0).all() and (np.diff(idx.key_end) >= 0).all()


def test_pids_tids_and_metadata_events() -> None:
    xs = xprof_core.load(JAX_DATA / "gpu_mlp_train.xplane.pb")
    result = run_tool("trace_viewer", JAX_DATA / "gpu_mlp_train.xplane.pb")
    meta = [e for e in result["traceEvents"] if e["ph"] == "M"]
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert procs == {1: "/device:GPU:0", 701: "/host:CPU"}
    sort = {e["pid"]: e["args"]["sort_index"] for e in meta if e["name"] == "process_sort_index"}
    assert sort == {1: 1, 701: 701}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert threads[(1, 1)] == "Stream #14(Compute)"
    assert len(threads) == sum(1 for ln in xs.lines if len(ln))
    assert {(e["pid"], e["tid"]) for e in x_events(result)} == set(threads)
    assert result["displayTimeUnit"] == "ns"
    assert result["filteredByVisibility"] is True  # XProf's meaning: a finer zoom may show more


# --- windows ---


@pytest.mark.parametrize("path", [GPU_LONG, V100], ids=["jax-gpu-long", "v100"])
@pytest.mark.parametrize("window", [(0.1, 0.3), (0.45, 0.4500001), (0.0, 1.0), (0.9, 1.5)])
def test_window_returns_exactly_the_overlapping_events(path: Path, window: tuple[float, float]) -> None:
    o = oracle_of(need(path))
    xs = xprof_core.load(path)
    span_ms = (int((o.start_ps + o.duration_ps)[o.timed].max()) - o.origin_ps) / 1e9
    start_ms, end_ms = window[0] * span_ms, window[1] * span_ms
    expected = in_window(o, start_ms, end_ms)
    for resolution in ("0", "8000"):
        params = {"start_time_ms": str(start_ms), "end_time_ms": str(end_ms), "resolution": resolution}
        part = tv.TRACE_VIEWER.map(xs, params)
        assert part["counts"]["events_in_window"] == len(expected)
        if resolution == "0":
            assert set(part["row"].tolist()) == expected
            assert len(part["row"]) == len(expected)
        else:  # thinned: a subset, and what was left out is counted
            assert set(part["row"].tolist()) <= expected
            assert len(part["row"]) + part["counts"]["dropped_visibility"] == len(expected)


def test_empty_and_reversed_windows() -> None:
    xs = xprof_core.load(GPU_LONG)
    for params in (
        {"start_time_ms": 5, "end_time_ms": 5},
        {"start_time_ms": 9, "end_time_ms": 3},
        {"start_time_ms": -50, "end_time_ms": -10},
        {"start_time_ms": 1e9},
    ):
        result = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, params)], params)
        assert result["returnedEventsSize"] == 0 and x_events(result) == []
        assert result["droppedEvents"]["count"] == 0


def test_window_far_beyond_the_profile_keeps_everything() -> None:
    xs = xprof_core.load(GPU_LONG)
    params = {"start_time_ms": "-1e12", "end_time_ms": "1e12", "resolution": "0"}
    part = tv.TRACE_VIEWER.map(xs, params)
    assert part["counts"]["kept"] == int(xs.is_timed.sum())
    idx = tv.trace_index(xs)
    sel = tv.select_window(idx, -(10**18), 10**18, 1)
    assert sel.events_in_window == idx.num_events


def test_bad_parameters_raise() -> None:
    xs = xprof_core.load(GPU_LONG)
    for params in (
        {"resolution": "-1"},
        {"resolution": "fine"},
        {"start_time_ms": "soon"},
        {"max_events": "-3"},
        {"end_time_ms": "nan"},
        {"start_time_ms": "inf"},
    ):
        with pytest.raises(ValueError):
            tv.TRACE_VIEWER.map(xs, params)


# --- the visibility rule on a synthetic profile of more than 500,000 events ---

LINES_PER_TEMPLATE = 15
TEMPLATES = 4
SHIFTS_NS = (0, 137, 5_000)  # line timestamps: window edges cut the lines differently


def _template(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About 10,000 events over ~50 ms: 1 ms steps, each filled with tiny children (some with
    grandchildren), a few medium ones, zero-length markers, and events that start inside a step
    and end after it (improper nesting). Returns (offset_ps, duration_ps, metadata_id), sorted
    by (offset, longer first)."""
    rng = np.random.default_rng(seed)
    off: list[int] = []
    dur: list[int] = []
    for step in range(48):
        t0 = step * 1_050_000_000  # 1.05 ms per step, in ps
        off.append(t0)
        dur.append(1_000_000_000)
        t = t0 + 1_000_000
        while True:
            d = int(rng.choice([200_000, 900_000, 2_500_000, 15_000_000], p=[0.5, 0.3, 0.17, 0.03]))
            if t + d > t0 + 1_000_000_000:
                break
            off.append(t)
            dur.append(d)
            if d >= 2_500_000 and rng.random() < 0.5:  # a grandchild
                off.append(t + 100_000)
                dur.append(d // 3)
            if rng.random() < 0.05:
                off.append(t)
                dur.append(0)
            t += d + int(rng.choice([0, 50_000, 3_000_000, 9_000_000], p=[0.4, 0.4, 0.15, 0.05]))
        if step % 7 == 3:  # starts inside this step, ends inside the next one
            off.append(t0 + 900_000_000)
            dur.append(400_000_000)
    offsets, durations = np.array(off, dtype=np.int64), np.array(dur, dtype=np.int64)
    order = np.lexsort((-durations, offsets))
    return offsets[order], durations[order], (np.arange(len(offsets)) % 5 + 1)[order]


@dataclass
class Synthetic:
    xs: xprof_core.XSpace
    # per line: (template index, shift ns)
    lines: list[tuple[int, int]]
    templates: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    templates = [_template(seed) for seed in range(TEMPLATES)]
    space = xplane_pb2.XSpace(hostnames=["synthetic"])
    plane = space.planes.add(id=0, name="/host:CPU")
    for md_id in range(1, 6):
        plane.event_metadata[md_id].id = md_id
        plane.event_metadata[md_id].name = f"op{md_id}"
    plane.stat_metadata[1].id = 1
    plane.stat_metadata[1].name = "tag"
    # Serialize each template's events once; every line is a copy with its own header (protobuf
    # concatenation merges: repeated events append, the header's scalars win).
    bodies = []
    for off, dur, md in templates:
        line = xplane_pb2.XLine()
        add = line.events.add
        for o_ps, d_ps, m in zip(off.tolist(), dur.tolist(), md.tolist(), strict=True):
            add(metadata_id=m, offset_ps=o_ps, duration_ps=d_ps)
        line.events[0].stats.add(metadata_id=1, int64_value=7)
        bodies.append(line.SerializeToString())
    lines = []
    for i in range(TEMPLATES * LINES_PER_TEMPLATE):
        t, shift = i % TEMPLATES, SHIFTS_NS[i % len(SHIFTS_NS)]
        header = xplane_pb2.XLine(id=i, name=f"thread{i}", timestamp_ns=1_000_000 + shift)
        plane.lines.add().MergeFromString(bodies[t] + header.SerializeToString())
        lines.append((t, shift))
    xs = xprof_core.decode_xspace(space.SerializeToString())
    assert xs.num_events > 500_000  # XProf's viewer would send every event of a window below this
    return Synthetic(xs, lines, templates)


def oracle_depth(start: list[int], end: list[int]) -> list[int]:
    """1 + the largest depth among earlier events still open at the start (events sorted)."""
    open_: list[tuple[int, int]] = []
    out = []
    for s, e in zip(start, end, strict=True):
        open_ = [(oe, od) for oe, od in open_ if oe > s]
        d = 1 + max(od for _, od in open_) if open_ else 0
        open_.append((e, d))
        out.append(d)
    return out


def oracle_kept(start: list[int], end: list[int], ws: int, we: int, threshold: int) -> tuple[list[int], int]:
    """Indices kept by the visibility rule, and the number of events in the window."""
    depth = oracle_depth(start, end)
    last: dict[int, int] = {}
    kept = []
    n = 0
    for i, (s, e, d) in enumerate(zip(start, end, depth, strict=True)):
        if not (s < we and (e > ws or s >= ws)):
            continue
        n += 1
        if e - s >= threshold or d not in last or s - last[d] >= threshold:
            kept.append(i)
            last[d] = e
    return kept, n


def synthetic_expected(syn: Synthetic, ws: int, we: int, resolution: int) -> tuple[set[int], int, int]:
    """(kept rows, events in window, threshold) by the oracle; times relative to the origin."""
    origin = syn.xs.origin_ps
    threshold = max(1, math.ceil((we - ws) / resolution))
    memo: dict[tuple[int, int], tuple[list[int], int]] = {}
    rows: set[int] = set()
    total = 0
    for li, key in enumerate(syn.lines):
        if key not in memo:
            off, dur, _ = syn.templates[key[0]]
            s = (off + (1_000_000 + key[1]) * 1000 - origin).tolist()
            e = (off + dur + (1_000_000 + key[1]) * 1000 - origin).tolist()
            memo[key] = oracle_kept(s, e, ws, we, threshold)
        kept, n = memo[key]
        begin = syn.xs.line(li).begin
        rows.update(begin + k for k in kept)
        total += n
    return rows, total, threshold


@pytest.mark.parametrize("window", [None, (0.02, 0.97), (0.3, 0.31)], ids=["full", "most", "one-percent"])
def test_visibility_rule_matches_the_per_event_oracle(synthetic: Synthetic, window: Any) -> None:
    xs = synthetic.xs
    idx = tv.trace_index(xs)
    span = idx.end_ps - idx.first_ps
    if window is None:
        params: dict[str, Any] = {}
        ws, we = idx.first_ps, idx.end_ps + 1
    else:
        ws, we = round(window[0] * span), round(window[1] * span)
        params = {"start_time_ms": ws / 1e9, "end_time_ms": we / 1e9}
    expected, in_win, threshold = synthetic_expected(synthetic, ws, we, tv.DEFAULT_RESOLUTION)
    part = tv.TRACE_VIEWER.map(xs, params)
    result = tv.TRACE_VIEWER.reduce([part], params)
    counts = result["droppedEvents"]
    assert counts["eventsInWindow"] == in_win
    assert result["returnedEventsSize"] + counts["count"] == in_win
    assert counts["count"] == counts["byVisibility"] + counts["byMaxEvents"]
    assert counts["byMaxEvents"] == 0
    assert part["threshold_ps"] == threshold  # every window is thinned
    if window != (0.3, 0.31):  # at 1% of the profile even the tiny events are wider than a pixel
        assert counts["byVisibility"] > in_win // 2  # the tiny events go
        assert "resolution 8000" in counts["reason"]
    assert set(part["row"].tolist()) == expected
    # Every event at least as long as the threshold is kept, and every step (1 ms) is.
    rows = np.array(sorted(expected), dtype=np.int64)
    assert (xs.duration_ps[part["row"]] >= 0).all()
    long_rows = xs.select(start_ps=ws + xs.origin_ps, end_ps=we + xs.origin_ps)
    long_rows = long_rows[xs.duration_ps[long_rows] >= max(threshold, 1)]
    assert set(long_rows.tolist()) <= set(part["row"].tolist())
    assert len(rows) == result["returnedEventsSize"]


def test_resolution_zero_and_coarser_resolutions(synthetic: Synthetic) -> None:
    xs = synthetic.xs
    full = tv.TRACE_VIEWER.map(xs, {"resolution": 0})
    assert full["counts"]["kept"] == xs.num_events and full["counts"]["dropped_visibility"] == 0
    kept = [
        tv.TRACE_VIEWER.map(xs, {"resolution": r, "include_args": "0"})["counts"]["kept"]
        for r in (100, 1000, 8000, 100_000)
    ]
    assert kept == sorted(kept) and kept[0] < kept[-1] < xs.num_events
    idx = tv.trace_index(xs)
    # A window so wide that its threshold passes every duration and gap: one event per (line, depth).
    coarsest = tv.select_window(idx, -(10**18), 10**18, 1)
    assert coarsest.events_in_window == xs.num_events and len(coarsest.positions) == idx.num_groups
    expected, _, _ = synthetic_expected(synthetic, idx.first_ps, idx.end_ps + 1, 100)
    assert set(tv.TRACE_VIEWER.map(xs, {"resolution": 100})["row"].tolist()) == expected


def test_nesting_depth_matches_oracle_on_random_overlaps() -> None:
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(1, 300))
        start = np.sort(rng.integers(0, 1000, n))
        dur = rng.choice([0, 1, 5, 30, 200], size=n) * rng.integers(0, 3, n)
        order = np.lexsort((-dur, start))
        start, dur = start[order], dur[order]
        end = start + dur
        rows = np.sort(rng.integers(0, 3, n))  # three rows
        order = np.lexsort((-dur, start, rows))
        start, end, rows = start[order], end[order], rows[order]
        row_first = np.r_[True, rows[1:] != rows[:-1]]
        got = tv._nesting_depth(start, end, row_first)
        want: list[int] = []
        for r in np.unique(rows).tolist():
            sel = rows == r
            want += oracle_depth(start[sel].tolist(), end[sel].tolist())
        assert got.tolist() == want, f"trial {trial}"


# --- max_events, multi-host, golden values ---


def test_max_events_is_reported_and_keeps_the_longest() -> None:
    xs = xprof_core.load(GPU_LONG)
    total = int(xs.is_timed.sum())
    params = {"max_events": "1000", "resolution": "0"}
    part = tv.TRACE_VIEWER.map(xs, params)
    result = tv.TRACE_VIEWER.reduce([part], params)
    assert result["returnedEventsSize"] == 1000 == len(x_events(result))
    dropped = result["droppedEvents"]
    assert dropped["byMaxEvents"] == total - 1000 == dropped["count"]
    assert "max_events=1000" in dropped["reason"]
    kept = set(part["row"].tolist())
    rest = np.array([r for r in range(xs.num_events) if r not in kept])
    assert xs.duration_ps[part["row"]].min() >= xs.duration_ps[rest].max()
    # The cap also holds across hosts in reduce.
    merged = run_tool("trace_viewer", [GPU_LONG, GPU_LONG], max_events=1500, resolution=0)
    assert merged["returnedEventsSize"] == 1500
    assert merged["droppedEvents"]["byMaxEvents"] == 2 * total - 1500


def test_multi_host_merge_remaps_pids() -> None:
    need(V100)
    need(V100_OTHER)
    single = run_tool("trace_viewer", V100, resolution=0)
    merged = run_tool("trace_viewer", [V100, V100_OTHER], resolution=0)
    assert merged["returnedEventsSize"] == 2 * single["returnedEventsSize"]
    procs = {
        e["pid"]: e["args"]["name"] for e in merged["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"
    }
    single_procs = {
        e["pid"]: e["args"]["name"] for e in single["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"
    }
    for pid, name in single_procs.items():
        assert procs[pid] == f"34.83.195.179_6003 {name}"
        assert procs[pid + tv.HOST_PID_STRIDE] == f"34.83.195.180_6003 {name}"
    assert len(procs) == 2 * len(single_procs)
    by_pid: dict[int, int] = {}
    for e in x_events(merged):
        by_pid[e["pid"]] = by_pid.get(e["pid"], 0) + 1
    single_by_pid: dict[int, int] = {}
    for e in x_events(single):
        single_by_pid[e["pid"]] = single_by_pid.get(e["pid"], 0) + 1
    assert by_pid == {**single_by_pid, **{p + 1000: n for p, n in single_by_pid.items()}}
    assert merged["fullTimespan"] == single["fullTimespan"]  # both hosts share one time origin here


def test_hosts_with_different_origins_are_aligned() -> None:
    a = xprof_core.load(JAX_DATA / "gpu_mlp_train.xplane.pb")
    b = xprof_core.load(JAX_DATA / "gpu_mlp_train_pytrace.xplane.pb")
    pa, pb = tv.TRACE_VIEWER.map(a, {}), tv.TRACE_VIEWER.map(b, {})
    merged = tv.TRACE_VIEWER.reduce([pa, pb], {})
    origin = min(a.origin_ps, b.origin_ps)
    ts = {(e["pid"] >= 1000, e["ts"]) for e in x_events(merged)}
    first_b = (int(b.start_ps[b.is_timed].min()) - origin) / 1e6
    first_a = (int(a.start_ps[a.is_timed].min()) - origin) / 1e6
    assert (True, first_b) in ts and (False, first_a) in ts
    # Or all hosts relative to one origin asked for in the parameters.
    params = {"origin_ps": str(origin)}
    same = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(a, params), tv.TRACE_VIEWER.map(b, params)], params)
    assert sorted(e["ts"] for e in x_events(same)) == sorted(e["ts"] for e in x_events(merged))


@pytest.mark.skipif(not GOLDEN.exists(), reason="no XProf golden values (tests/data/xprof_golden.json)")
def test_counts_and_spans_against_xprof_golden() -> None:
    golden = json.loads(GOLDEN.read_text())
    compared = 0
    for name, entry in golden["files"].items():
        path = (ROOT / name).resolve()
        gold = entry["tools"].get("trace_viewer@", {})
        if not name.endswith(".xplane.pb") or not gold.get("success") or not path.exists():
            continue
        xs = xprof_core.load(path)
        result = run_tool("trace_viewer", path, resolution=0)  # XProf sends every event of small profiles
        ours = result["returnedEventsSize"]
        assert ours == int(xs.is_timed.sum())
        # XProf adds derived events (steps, XLA modules on GPU) and leaves some out (zero-length
        # device events, host events outside the device span): within 25% on every file.
        assert abs(ours - gold["complete_events_X"]) <= 0.25 * gold["complete_events_X"], name
        # The span we show covers XProf's; on JAX and AMD profiles it is the same to the ns.
        span_us = (result["fullTimespan"][1] - result["fullTimespan"][0]) * 1e3
        assert span_us >= gold["X_span_us"] - 1e-3, name
        if "amd-tracelens" in name or "tests/data/jax" in name:
            assert span_us == pytest.approx(gold["X_span_us"], abs=1e-3), name
        compared += 1
    assert compared >= len(jax_files())


# --- the index cache ---


def test_index_is_built_once_per_xspace_and_released_with_it() -> None:
    xs = xprof_core.load(GPU_LONG)
    before = tv.INDEX_BUILDS[0]
    tv.TRACE_VIEWER.map(xs, {})
    idx = tv.trace_index(xs)
    tv.TRACE_VIEWER.map(xs, {"start_time_ms": "1", "end_time_ms": "2"})
    tv.TRACE_VIEWER.map(xs, {"resolution": "0"})
    assert tv.INDEX_BUILDS[0] == before + 1
    assert tv.trace_index(xs) is idx
    other = xprof_core.load(GPU_LONG)
    assert tv.trace_index(other) is not idx and tv.INDEX_BUILDS[0] == before + 2
    ref = weakref.ref(xs)
    del xs, idx
    gc.collect()
    assert ref() is None  # the cache does not keep a host alive


def test_registered_as_trace_viewer() -> None:
    tool = get_tool("trace_viewer")
    assert tool is tv.TRACE_VIEWER and tool.name == "trace_viewer" and tool.version == tv.VERSION


# --- export ---


def test_export_json_gz_has_every_event(tmp_path: Path) -> None:
    path = JAX_DATA / "gpu_mlp_train.xplane.pb"
    o = oracle_of(path)
    out = tmp_path / "trace.json.gz"
    n = tv.export_trace_json_gz(path, out)
    with gzip.open(out, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["displayTimeUnit"] == "ns"
    events = x_events(doc)
    assert n == len(events) == int(o.timed.sum()) == doc["returnedEventsSize"]
    got = sorted((e["ts"], e["dur"], e["name"]) for e in events)
    want = sorted(
        ((int(o.start_ps[r]) - o.origin_ps) / 1e6, int(o.duration_ps[r]) / 1e6, o.name(r))
        for r in np.flatnonzero(o.timed).tolist()
    )
    assert got == want
    # Same events, names and args as the tool at full fidelity.
    tool = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xprof_core.load(path), {"resolution": 0})], {})
    assert sorted(json.dumps(e, sort_keys=True) for e in x_events(tool)) == sorted(
        json.dumps(e, sort_keys=True) for e in events
    )
    assert [e for e in doc["traceEvents"] if e["ph"] == "M"] == [e for e in tool["traceEvents"] if e["ph"] == "M"]


def test_export_multi_host_and_small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need(V100)
    need(V100_OTHER)
    monkeypatch.setattr(tv, "EXPORT_CHUNK", 1000)
    out = tmp_path / "hosts.json.gz"
    xs = xprof_core.load(V100)
    n = tv.export_trace_json_gz([xs, V100_OTHER], out)
    with gzip.open(out, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    events = x_events(doc)
    assert n == len(events) == 2 * int(xs.is_timed.sum())
    assert {e["pid"] for e in events} == {p for p in {e["pid"] for e in events} if p < 1000} | {
        p + 1000 for p in {e["pid"] for e in events} if p < 1000
    }
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert "34.83.195.180_6003 /host:CPU" in names


@pytest.mark.parametrize(
    "params",
    [{"resolution": "0"}, {"resolution": "8000", "start_time_ms": "1", "end_time_ms": "20"}, {"max_events": "500"}],
)
def test_reduce_json_renders_the_same_document(params: dict[str, str]) -> None:
    """The C-rendered JSON bytes parse to exactly the dict ``reduce`` builds, one host or two."""
    import json as _json

    sources = [JAX_DATA / "gpu_mlp_train.xplane.pb", JAX_DATA / "cpu_mlp_train.xplane.pb"]
    partials = []
    for i, path in enumerate(sources):
        part = tv.TRACE_VIEWER.map(xprof_core.load(path), params)
        part["host"] = f"h{i}"
        partials.append(part)
    for chosen in (partials[:1], partials):
        as_dict = tv.TRACE_VIEWER.reduce(chosen, params)
        as_bytes = tv.TRACE_VIEWER.reduce_json(chosen, params)
        assert _json.loads(as_bytes) == as_dict
    assert as_dict["returnedEventsSize"] > 0


def test_args_kernel_escapes_and_replaces_bad_utf8() -> None:
    """Quotes, backslashes, control characters and invalid UTF-8 in a string stat survive as valid JSON."""
    import json as _json

    from xprof_core.protos import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(id=1, name="/host:CPU")
    plane.event_metadata[1].id = 1
    plane.event_metadata[1].name = 'ev "quoted"'
    plane.stat_metadata[1].id = 1
    plane.stat_metadata[1].name = "text"
    plane.stat_metadata[2].id = 2
    plane.stat_metadata[2].name = "blob"
    plane.stat_metadata[3].id = 3
    plane.stat_metadata[3].name = "x"
    line = plane.lines.add(id=1, name="t")
    ev = line.events.add(metadata_id=1, offset_ps=1_500_000, duration_ps=2_000_000)
    ev.stats.add(metadata_id=1, str_value='a"b\\c\n\x01é')
    ev.stats.add(metadata_id=2, bytes_value=b"\x00\xff")
    ev.stats.add(metadata_id=3, double_value=float("nan"))
    ev.stats.add(metadata_id=9, int64_value=-7)  # an id the plane does not name
    data = bytearray(space.SerializeToString())
    xs = xprof_core.decode_xspace(bytes(data))
    blob, offs = tv.render_args(xs, np.array([0], dtype=np.int64))
    args = _json.loads(blob[offs[0] : offs[1]])
    assert args == {"text": 'a"b\\c\n\x01é', "blob": "00ff", "x": "nan", "9": -7}
    # Corrupt the UTF-8 of the string value in place: it comes back with U+FFFD, still valid JSON.
    at = bytes(data).index("é".encode())
    data[at] = 0xFF
    xs = xprof_core.decode_xspace(bytes(data))
    blob, offs = tv.render_args(xs, np.array([0], dtype=np.int64))
    assert _json.loads(blob[offs[0] : offs[1]])["text"] == 'a"b\\c\n\x01\ufffd\ufffd'


@pytest.mark.parametrize("resolution", [1, 7, 100, 2000])
def test_every_window_is_thinned_to_the_resolution(synthetic: Synthetic, resolution: int) -> None:
    """Within a row and nesting depth, a window keeps at most resolution + 2 events: each kept event
    after the first brings a gap or a duration of at least span / resolution."""
    idx = tv.trace_index(synthetic.xs)
    span = idx.end_ps - idx.first_ps
    rng = np.random.default_rng(resolution)
    for _ in range(6):
        a, b = sorted(rng.uniform(-0.1, 1.1, 2))
        ws, we = idx.first_ps + round(a * span), idx.first_ps + round(b * span) + 1
        sel = tv.select_window(idx, ws, we, resolution)
        per_group = np.bincount(idx.group_of(sel.positions), minlength=idx.num_groups)
        assert per_group.max(initial=0) <= resolution + 2, (a, b, resolution)
        assert sel.events_in_window >= len(sel.positions)
        if sel.events_in_window:
            assert sel.threshold_ps == max(1, -(-(we - ws) // resolution))


def test_nesting_depth_kernel_matches_the_naive_definition() -> None:
    from xprof_core._fast.trace_index import nesting_depth

    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        rows = np.sort(rng.integers(0, 3, n))
        start = rng.integers(0, 50, n).astype(np.int64)
        dur = (rng.integers(0, 3, n) if trial % 3 == 0 else rng.integers(0, 30, n)).astype(np.int64)
        order = np.lexsort((-dur, start, rows))
        start, dur, rows = start[order], dur[order], rows[order]
        row_first = np.r_[True, rows[1:] != rows[:-1]]
        got = nesting_depth(start, start + dur, row_first.view(np.uint8)).tolist()
        want = []
        for r in np.unique(rows).tolist():
            sel = rows == r
            want += oracle_depth(start[sel].tolist(), (start + dur)[sel].tolist())
        assert got == want
    # Every event overlapping every other (a staircase): the levels kernel is linear-logarithmic here.
    n = 64_000
    start = np.arange(n, dtype=np.int64)
    depth = nesting_depth(start, start + n, np.r_[True, np.zeros(n - 1, dtype=bool)].view(np.uint8))
    assert depth.tolist() == list(range(n))
