"""memory_profile against XProf 2.24.2's figures and against a naive replay of the raw allocator events."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from golden_tools import golden_entries, golden_path, short

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.tools.memory_profile import max_box_sample, tf_dtype_name

from conftest import JAX_DATA, need

ENTRIES = [(k, f) for k, f in golden_entries("memory_profile") if f.get("memories")]
GPU = JAX_DATA / "gpu_mlp_train.xplane.pb"
TF_GPU = "../shared/data/real/openxla-xprof/demo/plugins/profile/GPU-multi-worker/34.83.195.179_6003.xplane.pb"
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"


def rows_of(table: dict[str, Any]) -> list[dict[str, Any]]:
    ids = [c["id"] for c in table["cols"]]
    return [dict(zip(ids, (c["v"] for c in r["c"]), strict=True)) for r in table["rows"]]


def breakdown_rows(table: dict[str, Any]) -> list[list[Any]]:
    """Our allocation table in XProf's recorded order: allocation, requested, op, region, dtype, shape, count, step."""
    return [
        [
            r["allocation_bytes"],
            r["requested_bytes"],
            r["op_name"],
            r["region_type"],
            r["data_type"],
            r["shape"],
            r["occurrences"],
            r["step"],
        ]
        for r in rows_of(table)
    ]


def test_every_file_with_allocator_events_is_recorded() -> None:
    # 13 of the 15 profiles carry allocator events (not the CPU-only JAX run); each of them is compared below.
    assert len(ENTRIES) >= 12
    assert all(f["memory_ids"] for _, f in ENTRIES)


@pytest.mark.parametrize(("key", "xprof"), ENTRIES, ids=[short(k) for k, _ in ENTRIES])
def test_summary_peak_and_breakdown_equal_xprof(key: str, xprof: dict[str, Any]) -> None:
    path = need(golden_path(key))
    ours = run_tool("memory_profile", path, event_order="xprof")
    assert ours["memory_ids"] == sorted(xprof["memory_ids"])
    for memory, x in xprof["memories"].items():
        r = run_tool("memory_profile", path, memory_id=memory, event_order="xprof")
        s = r["summary"]
        assert s["peak_bytes"] == x["peak_bytes"], memory
        assert s["peak_heap_bytes"] == x["peak_heap_bytes"], memory
        assert s["peak_stack_bytes"] == x["peak_stack_bytes"], memory
        assert s["peak_free_bytes"] == x["peak_free_bytes"], memory
        assert s["peak_fragmentation"] == pytest.approx(x["peak_fragmentation"], abs=0), memory
        assert s["xprof_peak_time_ps"] == x["peak_time_ps"], memory
        assert s["peak_bytes_usage_lifetime"] == x["peak_bytes_usage_lifetime"], memory
        assert s["memory_capacity_bytes"] == x["memory_capacity"], memory
        assert s["peak_step"] == x["peak_step"], memory
        rows = breakdown_rows(r["active_allocations"])
        assert len(rows) == x["breakdown_rows"], memory
        assert rows[: len(x["breakdown"])] == x["breakdown"], memory
        t = r["timeline"]
        assert len(t["time_ps"]) == x["timeline_points"], memory
        digest = "\n".join(
            f"{a},{b},{c}"
            for a, b, c in zip(
                t["xprof_time_ps"].tolist(), t["heap_bytes"].tolist(), t["stack_bytes"].tolist(), strict=True
            )
        )
        assert hashlib.sha1(digest.encode()).hexdigest() == x["timeline_sha1"], memory
        if x["timeline_complete"]:  # every event is a point: the counts are the allocator's
            assert s["num_allocations"] == x["timeline_allocations"], memory
            assert s["num_deallocations"] == x["timeline_deallocations"], memory


@pytest.mark.parametrize(("key", "xprof"), ENTRIES, ids=[short(k) for k, _ in ENTRIES])
def test_default_order_agrees_with_xprof_on_the_peak(key: str, xprof: dict[str, Any]) -> None:
    """Time order (ours) and XProf's line-offset order give the same peak, its time and the same counts."""
    path = need(golden_path(key))
    for memory, x in xprof["memories"].items():
        s = run_tool("memory_profile", path, memory_id=memory)["summary"]
        assert (s["peak_bytes"], s["xprof_peak_time_ps"], s["memory_capacity_bytes"]) == (
            x["peak_bytes"],
            x["peak_time_ps"],
            x["memory_capacity"],
        ), memory


def test_xprof_orders_events_by_line_offset_not_time() -> None:
    """XProf sorts a memory's events by their offset on their own thread line. The JAX host threads' lines
    start 6.7 µs apart, so on this file XProf's timeline of xla_gpu_host_bfc puts a deallocation before the
    allocation that precedes it in time. Our default order is the events' absolute time."""
    path = need(GPU)
    xprof_order = run_tool("memory_profile", path, memory_id="xla_gpu_host_bfc", event_order="xprof")["timeline"]
    ours = run_tool("memory_profile", path, memory_id="xla_gpu_host_bfc")["timeline"]
    assert (np.diff(xprof_order["time_ps"]) < 0).any()
    assert (np.diff(ours["time_ps"]) >= 0).all()
    assert sorted(ours["time_ps"].tolist()) == sorted(xprof_order["time_ps"].tolist())
    xs = xprof_core.load(path)
    lines = xs.tables.lines
    host = xs.plane("/host:CPU")
    stamps = {int(lines.timestamp_ns[i]) for i in range(host.line_begin, host.line_end)}
    assert len(stamps) > 1  # the cause: the host's lines do not share one timestamp


# ---- a naive replay of the raw events ---------------------------------------------------------


def naive_memories(path: Any) -> dict[str, dict[str, Any]]:
    """Per memory, from every allocator event's stats dict in file order: counts, XProf's peak rule,
    the live allocations at the peak (time order) and the sorted event times."""
    xs = xprof_core.load(path)
    rows = xs.select(plane="^/host:CPU$", name="^Memory(Allocation|Deallocation)$", timed_only=True)
    names = xs.event_names(rows)
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, name, st in zip(rows.tolist(), names.tolist(), xs.iter_event_stats(rows), strict=True):
        mid = st.get("allocator_name") or str(st.get("index_on_host", st.get("device_ordinal", "")))
        per[mid].append({"alloc": name == "MemoryAllocation", "t": int(xs.start_ps[row]), **st})
    out = {}
    for mid, events in per.items():
        best, peak = -1, None
        for e in events:  # file order; the last event reaching the running maximum wins
            usage = e.get("bytes_allocated", 0) + e.get("bytes_reserved", 0)
            if usage >= best:
                best, peak = usage, e
        ordered = sorted(events, key=lambda e: e["t"])  # stable: ties keep file order
        live: dict[int, int] = {}
        for e in ordered[: ordered.index(peak) + 1]:
            if e["alloc"]:
                live.setdefault(e["addr"], e["allocation_bytes"])
            else:
                live.pop(e["addr"], None)
        out[mid] = {
            "allocations": sum(e["alloc"] for e in events),
            "deallocations": sum(not e["alloc"] for e in events),
            "peak": best,
            "peak_time": peak["t"] - xs.origin_ps,
            "live_bytes": sum(live.values()),
            "live_count": len(live),
            "heap_at_peak": peak["bytes_allocated"],
            "times": [e["t"] - xs.origin_ps for e in ordered],
            "lifetime": events[-1]["peak_bytes_in_use"],
        }
    return out


@pytest.mark.parametrize(("key", "xprof"), ENTRIES, ids=[short(k) for k, _ in ENTRIES])
def test_against_a_naive_replay_of_the_raw_events(key: str, xprof: dict[str, Any]) -> None:
    path = need(golden_path(key))
    naive = naive_memories(path)
    assert sorted(naive) == run_tool("memory_profile", path)["memory_ids"]
    for memory, n in naive.items():
        r = run_tool("memory_profile", path, memory_id=memory, resolution=100_000)
        s = r["summary"]
        assert (s["num_allocations"], s["num_deallocations"]) == (n["allocations"], n["deallocations"])
        assert (s["peak_bytes"], s["peak_time_ps"], s["peak_bytes_usage_lifetime"]) == (
            n["peak"],
            n["peak_time"],
            n["lifetime"],
        )
        assert r["timeline"]["time_ps"].tolist() == n["times"]  # unthinned: every event, in time order
        live = rows_of(r["live_at_peak"])
        attributed = [x for x in live if x["op_name"] not in ("allocated before the profile", "stack")]
        assert sum(x["allocation_bytes"] * x["occurrences"] for x in attributed) == n["live_bytes"]
        assert sum(x["occurrences"] for x in attributed) == n["live_count"]
        heap_rows = [x for x in live if x["op_name"] != "stack"]
        heap_bytes = sum(x["allocation_bytes"] * x["occurrences"] for x in heap_rows)
        assert heap_bytes == max(n["heap_at_peak"], n["live_bytes"])


def test_regions_stack_up_to_the_heap() -> None:
    """Per-region usage (reconstructed from allocation sizes) sums to the allocator's own heap figure."""
    for path in (need(GPU), need(golden_path(TF_GPU))):
        for memory in run_tool("memory_profile", path)["memory_ids"]:
            t = run_tool("memory_profile", path, memory_id=memory, resolution=100_000)["timeline"]
            stacked = np.asarray(t["region_bytes"]).sum(axis=1)
            assert (stacked == t["heap_bytes"]).mean() > 0.99, memory  # BFC's figures are consistent
            assert t["regions"][0] == "allocated before the profile"


def test_tensorflow_regions_and_ops_show_in_the_breakdown() -> None:
    path = need(golden_path(TF_GPU))
    r = run_tool("memory_profile", path, memory_id="GPU_4_bfc")
    rows = rows_of(r["active_allocations"])
    assert {"output", "dynamic", "persist/dynamic"} == {x["region_type"] for x in rows}
    assert any(x["data_type"] == "half" and x["shape"].startswith("[") for x in rows)
    assert r["timeline"]["regions"] == ["allocated before the profile", "dynamic", "output"]


def test_window_and_resolution() -> None:
    path = need(GPU)
    full = run_tool("memory_profile", path, memory_id="GPU_0_bfc", resolution=100_000)["timeline"]
    t = full["time_ps"]
    lo, hi = t[len(t) // 4] / 1e9, t[len(t) // 2] / 1e9
    window = run_tool("memory_profile", path, memory_id="GPU_0_bfc", start_ms=lo, end_ms=hi, resolution=10)["timeline"]
    inside = (t >= round(lo * 1e9)) & (t <= round(hi * 1e9))
    assert window["num_in_window"] == int(inside.sum())
    assert len(window["time_ps"]) == 10
    # Each point is the largest usage of its box of consecutive events (XProf's max filter).
    usage = (full["heap_bytes"] + full["stack_bytes"])[inside]
    expected = usage[max_box_sample(usage, 10)]
    assert (window["heap_bytes"] + window["stack_bytes"]).tolist() == expected.tolist()


def test_max_box_sample_against_a_loop() -> None:
    rng = np.random.default_rng(7)
    for n, limit in ((10, 20), (1000, 1000), (1001, 1000), (2537, 1000), (97, 10), (5, 1)):
        usage = rng.integers(0, 1 << 40, n)
        keep = max_box_sample(usage, limit)
        if n <= limit:
            assert keep.tolist() == list(range(n))
            continue
        width = n // limit
        count1 = limit * (width + 1) - n
        bounds, start = [], 0
        for i in range(limit):
            w = width if i < count1 else width + 1
            bounds.append((start, start + w))
            start += w
        assert start == n
        assert keep.tolist() == [a + int(np.argmax(usage[a:b])) for a, b in bounds]


def test_no_allocator_events_is_an_empty_result_with_a_reason() -> None:
    r = run_tool("memory_profile", need(CPU))
    assert r["memory_ids"] == [] and r["memory_id"] is None
    assert "MemoryAllocation" in r["reason"]
    with pytest.raises(ValueError, match="unknown memory_id"):
        run_tool("memory_profile", need(GPU), memory_id="GPU_9_bfc")


def test_tf_dtype_names() -> None:
    assert [tf_dtype_name(c) for c in (0, 1, 14, 19, 101, 999)] == [
        "INVALID",
        "float",
        "bfloat16",
        "half",
        "float_ref",
        "unknown dtype enum (999)",
    ]
