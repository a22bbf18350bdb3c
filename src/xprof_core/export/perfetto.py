"""Perfetto export: a profile as a Perfetto protobuf trace (``.pftrace``) that Perfetto's UI opens.

What is written (our schema: ``protos/perfetto_trace.proto``):

* tracks: one process track per plane (``pid = host_index * 1000 + plane + 1``,
  as the trace viewer numbers them) and one thread track per line; events of
  a line that overlap without nesting go to extra child tracks of the plane
  ("<line> (overlap N)"), because a track's slices must nest;
* slices: a SLICE_BEGIN and a SLICE_END packet per timed event with a
  duration, an INSTANT per zero-length event; names are interned per host
  sequence; the event's stats are the slice's debug annotations;
* flows: an arrow from each host event to the device event with the same
  ``correlation_id`` (kernel and memcpy launches), and from each producer to
  its consumers by XProf's context stats (``_p``/``_pt`` -> ``_c``/``_ct``);
* counters: ``bytes_allocated`` of allocator events (a memory counter per
  plane), and per device plane the number of ops running at once.

Times are ns (the file's ps, floored: nesting is kept). Aggregated events
(no start time) are left out. Packets are streamed to the file as they are
made, one host sequence after another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from xprof_core.model.planes import ON_DEVICE
from xprof_core.model.xspace import XSpace
from xprof_core.protos import perfetto_trace_pb2 as pt

SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
PID_STRIDE = 1000
#: Stats that make counter tracks, and their unit.
MEMORY_COUNTER_STAT = "bytes_allocated"
_ARG_CHUNK = 65536


def _uuid(*parts: Any) -> int:
    """A stable 63-bit track uuid from what the track is."""
    digest = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1 or 1


def _packet_bytes(packet: pt.TracePacket) -> bytes:
    """One ``Trace.packet`` entry: field 1, length-delimited."""
    body = packet.SerializeToString()
    n = len(body)
    head = bytearray([0x0A])
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            head.append(b | 0x80)
        else:
            head.append(b)
            break
    return bytes(head) + body


@dataclass
class ExportStats:
    tracks: int = 0
    slices: int = 0
    instants: int = 0
    counters: int = 0
    flows: int = 0
    overlap_tracks: int = 0
    skipped_untimed: int = 0
    names: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def _annotation(name: str, value: Any) -> pt.DebugAnnotation:
    ann = pt.DebugAnnotation(name=name)
    if isinstance(value, bool):
        ann.bool_value = value
    elif isinstance(value, int):
        if value >= 0 and value >= 1 << 63:
            ann.uint_value = value
        else:
            ann.int_value = value
    elif isinstance(value, float):
        ann.double_value = value
    elif isinstance(value, bytes):
        ann.string_value = value.hex()
    else:
        ann.string_value = str(value)
    return ann


def nest_lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Lane of each event (in the given order, sorted by start then longest first) so that lanes nest.

    Lane 0 takes every event that nests in the events before it; an event that
    overlaps the open one without fitting inside it goes to the first lane where
    it nests. Returns an int array, one lane per event.
    """
    lanes = np.zeros(len(start), dtype=np.int64)
    stacks: list[list[int]] = [[]]  # per lane: end times of the open events
    for i, (s, e) in enumerate(zip(start.tolist(), end.tolist(), strict=True)):
        for lane, stack in enumerate(stacks):
            while stack and stack[-1] <= s:
                stack.pop()
            if not stack or e <= stack[-1]:
                stack.append(e)
                lanes[i] = lane
                break
        else:
            stacks.append([e])
            lanes[i] = len(stacks) - 1
    return lanes


class _HostWriter:
    """Writes one host's packets on its own sequence."""

    def __init__(self, out: IO[bytes], host: str, host_index: int, xs: XSpace, multi_host: bool, stats: ExportStats):
        self.out = out
        self.host = host
        self.xs = xs
        self.seq = host_index + 1
        self.pid_base = host_index * PID_STRIDE
        self.prefix = f"{host} " if multi_host else ""
        self.stats = stats
        self.first = True

    def emit(self, packet: pt.TracePacket) -> None:
        packet.trusted_packet_sequence_id = self.seq
        if packet.HasField("track_event") or packet.HasField("interned_data"):
            if self.first:
                packet.sequence_flags = SEQ_INCREMENTAL_STATE_CLEARED
                self.first = False
            else:
                packet.sequence_flags = SEQ_NEEDS_INCREMENTAL_STATE
        self.out.write(_packet_bytes(packet))

    def track(self, descriptor: pt.TrackDescriptor) -> int:
        self.emit(pt.TracePacket(track_descriptor=descriptor))
        self.stats.tracks += 1
        return descriptor.uuid

    # --- flows ---

    def flow_ids(self) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """Per event row: flow ids that leave it, and flow ids that end at it."""
        xs = self.xs
        out: dict[int, list[int]] = {}
        into: dict[int, list[int]] = {}
        timed = np.flatnonzero(xs.is_timed & xs.has_stats)
        if len(timed) == 0:
            return out, into
        planes = xs.plane_of_event[timed]
        on_device = np.zeros(len(xs.planes) + 1, dtype=bool)
        on_device[[p.index for p in xs.planes_of_kind(*ON_DEVICE)]] = True
        is_device = on_device[planes]
        corr = xs.stat(timed, "correlation_id", include_metadata=False)
        host_ev = timed[corr.present & ~is_device]
        dev_ev = timed[corr.present & is_device]
        if len(host_ev) and len(dev_ev):
            host_ids = dict(zip(corr.values[corr.present & ~is_device].tolist(), host_ev.tolist(), strict=True))
            for cid, row in zip(corr.values[corr.present & is_device].tolist(), dev_ev.tolist(), strict=True):
                src = host_ids.get(cid)
                if src is not None:
                    fid = _uuid(self.host, "correlation", cid, row)  # one flow per destination
                    out.setdefault(src, []).append(fid)
                    into.setdefault(row, []).append(fid)
        producer = xs.stat(timed, "_p", include_metadata=False)
        consumer = xs.stat(timed, "_c", include_metadata=False)
        if producer.present.any() and consumer.present.any():
            ptype = xs.stat(timed, "_pt", include_metadata=False)
            ctype = xs.stat(timed, "_ct", include_metadata=False)
            producers: dict[tuple[int, int], int] = {}
            for row, pid, ptp in zip(
                timed[producer.present].tolist(),
                producer.values[producer.present].tolist(),
                ptype.values[producer.present].tolist(),
                strict=True,
            ):
                producers.setdefault((int(ptp), int(pid)), row)
            for row, cid, ctp in zip(
                timed[consumer.present].tolist(),
                consumer.values[consumer.present].tolist(),
                ctype.values[consumer.present].tolist(),
                strict=True,
            ):
                src = producers.get((int(ctp), int(cid)))
                if src is not None and src != row:
                    fid = _uuid(self.host, "context", ctp, cid, row)
                    out.setdefault(src, []).append(fid)
                    into.setdefault(row, []).append(fid)
        self.stats.flows += sum(len(v) for v in into.values())
        return out, into

    # --- slices ---

    def write(self, with_args: bool) -> None:
        xs = self.xs
        # Interned names: iid = global metadata row + 1 (0 is not a valid iid); unknown ids -> the last.
        md = xs.event_metadata_row
        uniq, first = np.unique(md, return_index=True)
        names = xs.event_names(first.astype(np.int64)).tolist() if len(first) else []
        interned = pt.InternedData(
            event_names=[pt.EventName(iid=int(u) + 2, name=n) for u, n in zip(uniq.tolist(), names, strict=True)]
        )
        self.emit(pt.TracePacket(timestamp=0, interned_data=interned))
        flows_out, flows_in = self.flow_ids()
        for plane in xs.planes:
            if plane.num_events == 0:
                continue
            pid = self.pid_base + plane.index + 1
            proc = self.track(
                pt.TrackDescriptor(
                    uuid=_uuid(self.host, "plane", plane.index),
                    process=pt.ProcessDescriptor(pid=pid, process_name=self.prefix + plane.name),
                )
            )
            ids = [ln.id for ln in plane.lines]
            unique_ids = len(set(ids)) == len(ids)
            for k, line in enumerate(plane.lines):
                if len(line) == 0:
                    continue
                tid = line.id if unique_ids and 0 < line.id < 1 << 62 else k + 1
                name = line.display_name or line.name
                thread = self.track(
                    pt.TrackDescriptor(
                        uuid=_uuid(self.host, "line", line.index),
                        thread=pt.ThreadDescriptor(pid=pid, tid=tid, thread_name=name),
                    )
                )
                self._line_events(line.rows, thread, proc, name, flows_out, flows_in, with_args)
            self._counters(plane, proc)

    def _line_events(
        self,
        rows: np.ndarray,
        thread_uuid: int,
        proc_uuid: int,
        line_name: str,
        flows_out: dict[int, list[int]],
        flows_in: dict[int, list[int]],
        with_args: bool,
    ) -> None:
        xs = self.xs
        timed = xs.is_timed[rows]
        self.stats.skipped_untimed += int((~timed).sum())
        rows = rows[timed]
        if len(rows) == 0:
            return
        start = np.maximum(xs.start_ps[rows], 0) // 1000
        end = np.maximum(xs.start_ps[rows] + xs.duration_ps[rows], 0) // 1000
        order = np.lexsort((-(end - start), start))
        rows, start, end = rows[order], start[order], end[order]
        lanes = nest_lanes(start, end)
        lane_uuid = {0: thread_uuid}
        for lane in range(1, int(lanes.max()) + 1):
            lane_uuid[lane] = self.track(
                pt.TrackDescriptor(
                    uuid=_uuid(self.host, "overlap", thread_uuid, lane),
                    name=f"{line_name} (overlap {lane})",
                    parent_uuid=proc_uuid,
                )
            )
            self.stats.overlap_tracks += 1
        iids = (xs.event_metadata_row[rows] + 2).tolist()
        zero = xs.duration_ps[rows] == 0
        args = self._args(rows) if with_args else None
        # Per lane, ends are written before a later begin: pop the open slices that end by then.
        open_ends: dict[int, list[int]] = {lane: [] for lane in lane_uuid}
        for i, (row, s, e, lane, iid, instant) in enumerate(
            zip(rows.tolist(), start.tolist(), end.tolist(), lanes.tolist(), iids, zero.tolist(), strict=True)
        ):
            stack = open_ends[lane]
            while stack and stack[-1] <= s:
                self._end(stack.pop(), lane_uuid[lane])
            ev = pt.TrackEvent(
                type=pt.TrackEvent.TYPE_INSTANT if instant else pt.TrackEvent.TYPE_SLICE_BEGIN,
                track_uuid=lane_uuid[lane],
                name_iid=iid,
            )
            if row in flows_out:
                ev.flow_ids.extend(flows_out[row])
            if row in flows_in:
                ev.terminating_flow_ids.extend(flows_in[row])
            if args is not None and args[i]:
                ev.debug_annotations.extend(_annotation(k, v) for k, v in args[i].items())
            self.emit(pt.TracePacket(timestamp=s, track_event=ev))
            if instant:
                self.stats.instants += 1
            else:
                stack.append(e)
                self.stats.slices += 1
        for lane, stack in open_ends.items():
            while stack:
                self._end(stack.pop(), lane_uuid[lane])

    def _end(self, ts: int, track: int) -> None:
        self.emit(
            pt.TracePacket(timestamp=ts, track_event=pt.TrackEvent(type=pt.TrackEvent.TYPE_SLICE_END, track_uuid=track))
        )

    def _args(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Each event's own stats (not its metadata's), by name; {} for events without stats."""
        out: list[dict[str, Any]] = [{} for _ in range(len(rows))]
        carrying = np.flatnonzero(self.xs.has_stats[rows])
        for lo in range(0, len(carrying), _ARG_CHUNK):
            part = carrying[lo : lo + _ARG_CHUNK]
            for i, stats in zip(part.tolist(), self.xs.iter_event_stats(rows[part]), strict=True):
                out[i] = stats
        return out

    # --- counters ---

    def _counter_track(self, plane_uuid: int, name: str, unit: int) -> int:
        return self.track(
            pt.TrackDescriptor(
                uuid=_uuid(plane_uuid, "counter", name),
                name=name,
                parent_uuid=plane_uuid,
                counter=pt.CounterDescriptor(unit=unit),  # type: ignore[arg-type]
            )
        )

    def _counter_values(self, track: int, ts: Sequence[int], values: Sequence[int]) -> None:
        for t, v in zip(ts, values, strict=True):
            ev = pt.TrackEvent(type=pt.TrackEvent.TYPE_COUNTER, track_uuid=track, counter_value=int(v))
            self.emit(pt.TracePacket(timestamp=max(int(t), 0), track_event=ev))
            self.stats.counters += 1

    def _counters(self, plane: Any, plane_uuid: int) -> None:
        xs = self.xs
        rows = np.arange(plane.event_begin, plane.event_end, dtype=np.int64)
        rows = rows[xs.is_timed[rows] & xs.has_stats[rows]]
        if len(rows):
            mem = xs.stat(rows, MEMORY_COUNTER_STAT, include_metadata=False)
            if mem.present.any():
                r = rows[mem.present]
                order = np.argsort(xs.start_ps[r], kind="stable")
                track = self._counter_track(plane_uuid, MEMORY_COUNTER_STAT, pt.CounterDescriptor.UNIT_SIZE_BYTES)
                values = mem.values[mem.present][order].astype(np.int64)
                self._counter_values(track, (xs.start_ps[r][order] // 1000).tolist(), values.tolist())
        if plane.kind not in ON_DEVICE:
            return
        # Ops running at once on the device: +1 at each op start, -1 at its end, over the stream lines
        # (the derived XLA lines repeat the same work; TPU planes have only those).
        lines = [ln for ln in plane.lines if ln.name.startswith("Stream")] or [
            ln for ln in plane.lines if ln.name == "XLA Ops"
        ]
        parts = [ln.rows[xs.is_timed[ln.rows]] for ln in lines]
        ops = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        if len(ops) == 0:
            return
        s = xs.start_ps[ops] // 1000
        e = (xs.start_ps[ops] + xs.duration_ps[ops]) // 1000
        ts = np.concatenate([s, e])
        delta = np.concatenate([np.ones(len(s), np.int64), -np.ones(len(e), np.int64)])
        order = np.lexsort((delta, ts))  # at one time, ends before starts
        ts, level = ts[order], np.cumsum(delta[order])
        last = np.append(ts[1:] != ts[:-1], True)  # one value per timestamp: the level after all changes
        track = self._counter_track(plane_uuid, "ops running", pt.CounterDescriptor.UNIT_COUNT)
        self._counter_values(track, ts[last].tolist(), level[last].tolist())


def write_perfetto(hosts: Sequence[tuple[str, XSpace]], path: str, with_args: bool = True) -> dict[str, int]:
    """Write the hosts' profiles to ``path`` as one Perfetto trace; counts of what was written.

    ``hosts`` is [(host name, XSpace)]; each host is one packet sequence and
    its planes are processes. ``with_args`` adds every event's stats as debug
    annotations (the slower part of the export on large profiles).
    """
    stats = ExportStats()
    with open(path, "wb") as out:
        for i, (host, xs) in enumerate(hosts):
            _HostWriter(out, host, i, xs, len(hosts) > 1, stats).write(with_args)
    return stats.as_dict()


__all__ = ["ExportStats", "nest_lanes", "write_perfetto"]
