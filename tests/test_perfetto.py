"""Perfetto export: the trace parsed back with Perfetto's own schema (the ``perfetto`` package's
generated TracePacket classes, an independent check of our field numbers and types) and with ours,
and checked against the XSpace's columns: every timed event is one slice or instant on its line's
track, with its name and time, slices nest per track, flows join the events that share a
correlation id, and counters carry the allocator's figures.

Perfetto's trace processor is not run: the ``perfetto`` package downloads its binary at run time,
which cannot work offline. The test that would use it runs only when a ``trace_processor_shell``
binary is on PATH or named by $XPROF_TRACE_PROCESSOR."""

from __future__ import annotations

import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.export.perfetto import nest_lanes, write_perfetto
from xprof_core.protos import perfetto_trace_pb2 as ours

from conftest import JAX_DATA

GPU = JAX_DATA / "gpu_mlp_train.xplane.pb"
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"

try:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as theirs
except ImportError:  # pragma: no cover - depends on the machine
    theirs = None


def parse(path: Path) -> Any:
    """The trace parsed with Perfetto's schema when the package is there, else with ours."""
    data = path.read_bytes()
    if theirs is not None:
        return theirs.Trace.FromString(data)
    return ours.Trace.FromString(data)


def test_nest_lanes_matches_a_naive_oracle() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        start = np.sort(rng.integers(0, 100, n))
        end = start + rng.integers(0, 40, n)
        order = np.lexsort((-(end - start), start))
        start, end = start[order], end[order]
        lanes = nest_lanes(start, end)
        # Oracle: within each lane, any two events are disjoint or one contains the other.
        for lane in set(lanes.tolist()):
            idx = np.flatnonzero(lanes == lane)
            for i in idx:
                for j in idx:
                    if i < j:
                        a, b = (start[i], end[i]), (start[j], end[j])
                        disjoint = a[1] <= b[0] or b[1] <= a[0]
                        nested = (a[0] <= b[0] and b[1] <= a[1]) or (b[0] <= a[0] and a[1] <= b[1])
                        assert disjoint or nested, (a, b)
        # An event goes to a later lane only when it cannot nest in every earlier one.
        assert lanes[0] == 0


@pytest.fixture(scope="module", params=[GPU, CPU], ids=["gpu", "cpu"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, dict]:
    xs = xprof_core.load(request.param)
    path = tmp_path_factory.mktemp("perfetto") / "trace.pftrace"
    stats = write_perfetto([("host0", xs)], str(path))
    return xs, parse(path), stats


def test_every_timed_event_is_a_slice_on_its_line_with_its_name(exported: tuple[Any, Any, dict]) -> None:
    xs, trace, stats = exported
    names: dict[int, str] = {}
    tracks: dict[int, Any] = {}
    seq_first: dict[int, int] = {}
    per_track: dict[int, list[tuple[int, str]]] = defaultdict(list)
    begins_ends: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, p in enumerate(trace.packet):
        if p.HasField("interned_data"):
            names.update({e.iid: e.name for e in p.interned_data.event_names})
        if p.HasField("track_descriptor"):
            tracks[p.track_descriptor.uuid] = p.track_descriptor
        if p.HasField("track_event") or p.HasField("interned_data"):
            seq_first.setdefault(p.trusted_packet_sequence_id, i)
            want = 1 if seq_first[p.trusted_packet_sequence_id] == i else 2
            assert p.sequence_flags == want
        if p.HasField("track_event"):
            ev = p.track_event
            assert ev.track_uuid in tracks, "a track event before its track's descriptor"
            if ev.type in (1, 3):  # SLICE_BEGIN, INSTANT
                per_track[ev.track_uuid].append((p.timestamp, names[ev.name_iid]))
            if ev.type in (1, 2):
                begins_ends[ev.track_uuid].append((ev.type, p.timestamp))
    # Slices and instants per line: a line's track, or an overlap track named after the line.
    line_of_track: dict[int, str] = {}
    for uuid, td in tracks.items():
        if td.HasField("thread"):
            line_of_track[uuid] = td.thread.thread_name
        elif td.name and "(overlap" in td.name:
            line_of_track[uuid] = td.name.rsplit(" (overlap", 1)[0]
    got: dict[str, Counter[tuple[int, str]]] = defaultdict(Counter)
    for uuid, events in per_track.items():
        got[line_of_track[uuid]].update(events)
    want: dict[str, Counter[tuple[int, str]]] = defaultdict(Counter)
    for ln in xs.lines:
        rows = ln.rows[xs.is_timed[ln.rows]]
        if len(rows):
            ts = (np.maximum(xs.start_ps[rows], 0) // 1000).tolist()
            want[ln.display_name or ln.name].update(zip(ts, xs.event_names(rows).tolist(), strict=True))
    assert got == want
    timed = xs.is_timed
    assert stats["slices"] == int((timed & (xs.duration_ps > 0)).sum())
    assert stats["instants"] == int((timed & (xs.duration_ps == 0)).sum())
    # Slices nest on every track: replaying begins and ends never closes what is not open.
    for uuid, seq in begins_ends.items():
        depth = 0
        last_ts = -1
        for kind, ts in seq:
            assert ts >= last_ts, "packets of a track go forward in time"
            last_ts = ts
            depth += 1 if kind == 1 else -1
            assert depth >= 0, uuid
        assert depth == 0
    # Every plane with events is a process; pids follow the trace viewer's numbering.
    processes = {td.process.pid: td.process.process_name for td in tracks.values() if td.HasField("process")}
    assert processes == {p.index + 1: p.name for p in xs.planes if p.num_events}


def test_flows_join_host_launches_to_device_work(exported: tuple[Any, Any, dict]) -> None:
    xs, trace, stats = exported
    starts: Counter[int] = Counter()
    ends: Counter[int] = Counter()
    for p in trace.packet:
        if p.HasField("track_event"):
            starts.update(p.track_event.flow_ids)
            ends.update(p.track_event.terminating_flow_ids)
    assert set(starts) == set(ends) and all(v == 1 for v in ends.values())
    assert sum(ends.values()) == stats["flows"]
    # The correlation flows: one per device event whose correlation id a host event carries.
    rows = np.flatnonzero(xs.is_timed)
    corr = xs.stat(rows, "correlation_id", include_metadata=False)
    on_device = np.array([xs.planes[p].name.startswith("/device:") for p in xs.plane_of_event[rows]])
    host_ids = set(corr.values[corr.present & ~on_device].tolist())
    linked = sum(1 for v in corr.values[corr.present & on_device].tolist() if v in host_ids)
    if xs.find_planes("^/device:GPU"):
        assert linked > 0
    assert stats["flows"] >= linked


def test_counters_carry_the_allocator_figures_and_ops_running(exported: tuple[Any, Any, dict]) -> None:
    xs, trace, stats = exported
    counter_tracks = {
        p.track_descriptor.uuid: p.track_descriptor.name
        for p in trace.packet
        if p.HasField("track_descriptor") and p.track_descriptor.HasField("counter")
    }
    values: dict[str, list[int]] = defaultdict(list)
    for p in trace.packet:
        if p.HasField("track_event") and p.track_event.type == 4:
            values[counter_tracks[p.track_event.track_uuid]].append(p.track_event.counter_value)
    assert sum(len(v) for v in values.values()) == stats["counters"]
    rows = np.flatnonzero(xs.is_timed)
    mem = xs.stat(rows, "bytes_allocated", include_metadata=False)
    if mem.present.any():
        assert sorted(values["bytes_allocated"]) == sorted(mem.values[mem.present].tolist())
    running = values.get("ops running", [])
    if xs.find_planes("^/device:GPU"):
        assert running and min(running) >= 0 and running[-1] == 0 and max(running) >= 1
    else:
        assert not running and not mem.present.any()  # a CPU profile has neither


def test_trace_parses_with_our_schema_too(tmp_path: Path) -> None:
    xs = xprof_core.load(GPU)
    path = tmp_path / "t.pftrace"
    write_perfetto([("a", xs), ("b", xs)], str(path), with_args=True)
    trace = ours.Trace.FromString(path.read_bytes())
    procs = [p.track_descriptor.process for p in trace.packet if p.track_descriptor.HasField("process")]
    assert {p.process_name.split(" ")[0] for p in procs} == {"a", "b"}
    assert {p.pid // 1000 for p in procs} == {0, 1}  # host index * 1000, as the trace viewer
    assert {p.trusted_packet_sequence_id for p in trace.packet} == {1, 2}
    # A kernel's stats are its slice's debug annotations.
    kernel = next(
        p.track_event
        for p in trace.packet
        if p.HasField("track_event") and any(a.name == "correlation_id" for a in p.track_event.debug_annotations)
    )
    assert any(a.name == "correlation_id" and a.uint_value + a.int_value > 0 for a in kernel.debug_annotations)


def test_cli_export_writes_the_trace(tmp_path: Path) -> None:
    import contextlib
    import io

    from xprof_core.cli import main

    out = tmp_path / "cli.pftrace"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["export", str(GPU), "--format", "perfetto", "-o", str(out), "--no-args"]) == 0
    trace = parse(out)
    begins = sum(1 for p in trace.packet if p.HasField("track_event") and p.track_event.type == 1)
    assert f"{begins:,} slices" in err.getvalue()
    assert not any(p.track_event.debug_annotations for p in trace.packet if p.HasField("track_event"))


def test_with_perfetto_trace_processor_when_available(tmp_path: Path) -> None:
    binary = os.environ.get("XPROF_TRACE_PROCESSOR") or shutil.which("trace_processor_shell")
    if not binary:
        pytest.skip("no trace_processor_shell binary (Perfetto's package downloads it at run time; offline here)")
    from perfetto.trace_processor import TraceProcessor, TraceProcessorConfig

    xs = xprof_core.load(GPU)
    path = tmp_path / "t.pftrace"
    stats = write_perfetto([("h", xs)], str(path))
    tp = TraceProcessor(trace=str(path), config=TraceProcessorConfig(bin_path=binary))
    try:
        n = tp.query("select count(*) as n from slice").as_pandas_dataframe()["n"][0]
        assert n == stats["slices"] + stats["instants"]
    finally:
        tp.close()
