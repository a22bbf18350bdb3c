"""XProf's trace_viewer: the timeline as Chrome Trace Event JSON, windowed and thinned.

``map`` answers one host's ``(start_time_ms, end_time_ms, resolution)`` window
from a :class:`TraceIndex` built once per decoded host, and returns the kept
events as numpy columns; ``reduce`` merges hosts (``pid + host_index * 1000``,
process names prefixed by the host) into the JSON dict the trace viewer loads::

    {"displayTimeUnit": "ns", "fullTimespan": [start_ms, end_ms],
     "returnedEventsSize": n, "filteredByVisibility": bool,
     "droppedEvents": {"count": ..., "reason": ..., ...},
     "traceEvents": [{"ph": "M", ...}, {"ph": "X", "pid", "tid", "ts", "dur", "name", "args"}, ...]}

Times are µs floats relative to the profile origin (``XSpace.origin_ps``, or
the ``origin_ps`` parameter). One process per plane, one thread per line.

**Visibility** (XProf's rule): with ``T = ceil(window span / resolution)`` ps,
an event is kept when its duration is at least ``T``, when it is the first
event of its row and nesting depth inside the window, or when the gap from the
end of the previous *kept* event of the same row and depth to its start is at
least ``T``. Every window is thinned so (XProf's viewer leaves windows of
fewer than 500,000 events whole, which sends a browser hundreds of thousands
of sub-pixel slices); within one row and depth the kept events then number at
most ``resolution + 2`` (each kept event after the first brings a gap or a
duration of at least ``T``). Resolution 0 keeps everything. Unlike XProf, the
nesting depth is static (computed once over all events of a line, not over
the events kept so far), so it can be indexed.
Nothing is dropped silently: ``droppedEvents`` counts what the visibility rule
and the optional ``max_events`` cap removed, and ``returnedEventsSize +
droppedEvents.count`` is the number of events in the window.

**The index** (built on first use, cached per XSpace object): events of every
line sorted by (start, longer first); each event's nesting depth (1 + the
largest depth among the earlier events still open at its start, computed in
O(n log n) by ``_fast.trace_index.nesting_depth``, so same-depth events never overlap
even when the trace is not properly nested; see :func:`_nesting_depth`);
then one sorted run per (line, depth) *group*, addressed by
int64 keys that place every group on its own stretch of one number line, so a
single ``searchsorted`` finds a window edge, or the next event after a time,
in every group at once. A two-level pyramid of block maxima of each event's
*significance* (``max(duration, gap to its predecessor in the group)``, the
quantity that makes an event certainly visible) lets a coarse query find the
certainly visible events without reading the fine ones; the remaining events
are chosen by following the chain "next event starting at least ``T`` after
the last kept end" in all runs at once, touching only kept events.

``export_trace_json_gz`` writes whole profiles (every event, args included) as
gzipped JSON in chunks, for ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from xprof_core._fast.trace_index import nesting_depth
from xprof_core._fast.trace_json import render_complete_events, render_event_args
from xprof_core.errors import ProfileTooLargeError
from xprof_core.model.planes import HOST_PLANE, PlaneKind, plane_identity
from xprof_core.model.xspace import (
    XSpace,
)
from xprof_core.tools.base import Params, Partial, ToolParam, param_flag, param_float, param_int
from xprof_core.tools.derived_lines import DerivedLines, derived_lines, gather_segments
from xprof_core.tools.registry import register
from xprof_core.tools.trace_flows import CATEGORY as FLOW_CATEGORY
from xprof_core.tools.trace_flows import flow_index, flows_touching
from xprof_core.tools.trace_search import DEFAULT_LIMIT as SEARCH_LIMIT
from xprof_core.tools.trace_search import MAX_LIMIT as SEARCH_MAX_LIMIT
from xprof_core.tools.trace_search import MAX_QUERY as SEARCH_MAX_QUERY
from xprof_core.tools.trace_search import search_index

VERSION = 1
DEFAULT_RESOLUTION = 8000
# Multi-host merge: host h's pids move up by h * HOST_PID_STRIDE (XProf's scheme).
HOST_PID_STRIDE = 1000
# Block size of the significance pyramid (events per level-1 block, level-1 blocks per level-2 block).
PYRAMID_BLOCK = 64
# Events per chunk when exporting, and per cache-sized chunk of the nesting-depth pass.
EXPORT_CHUNK = 65536
DEPTH_CHUNK = 16384

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
# Lines XProf shows first in a process, in this order; other lines follow in file order.
_LINE_RANK = {
    name: rank
    for rank, names in enumerate(
        (
            ("Steps",),
            ("XLA Modules",),
            ("XLA Ops",),
            ("Async XLA Ops",),
            ("XLA TraceMe",),
            ("Framework Ops", "TensorFlow Ops"),
            ("Framework Name Scope", "TensorFlow Name Scope"),
            ("Source code",),
            ("Launch Stats",),
        )
    )
    for name in names
}


# --- the per-host index ---


@dataclass(eq=False)
class TraceIndex:
    """What window queries need about one host, built once by :func:`trace_index`.

    Times are int64 ps relative to ``origin_ps``. "Rows" are lines with at
    least one timed event; "groups" are (row, nesting depth) pairs. Arrays in
    *group order* hold one entry per timed event, grouped by group and sorted
    by start within a group; in a group, events never overlap, so both starts
    and ends are sorted there. Group ``g`` owns positions
    ``group_begin[g]:group_begin[g + 1]``.

    Keys: ``key_start = group_offset[g] + (start - group_first[g])`` and
    likewise ``key_end``; ``group_offset`` leaves a gap after every group, so
    the keys are globally sorted and one ``searchsorted`` answers "first
    event of group g starting at or after t" for many groups at once
    (see :meth:`key_of`).
    """

    origin_ps: int
    first_ps: int  # earliest start (relative): 0, the origin being the earliest timed start
    end_ps: int  # latest end (relative)
    num_events: int  # timed events indexed
    max_depth: int
    # rows (one per line with timed events), in line order
    row_line: np.ndarray  # int64 line index
    row_pid: np.ndarray  # int32
    row_tid: np.ndarray  # int32
    line_row: np.ndarray  # int64 row of every line, -1 for lines without timed events
    processes: list[dict[str, Any]]  # {"pid", "name", "sort_index", "plane"}
    threads: list[dict[str, Any]]  # {"pid", "tid", "name", "sort_index", "line"}
    # groups
    group_begin: np.ndarray  # int64, G + 1
    group_row: np.ndarray  # int64
    group_depth: np.ndarray  # int64
    group_first: np.ndarray  # int64 relative start of the group's first event
    group_offset: np.ndarray  # int64 key of the group's first start
    group_limit: np.ndarray  # int64 key just past the group's last end (< next group's offset)
    # group order, one entry per timed event
    key_start: np.ndarray  # int64
    key_end: np.ndarray  # int64
    event: np.ndarray  # original event row (uint32 or int64)
    line_rank: np.ndarray  # position in (line, start, longer first) order, to sort output (uint32 or int64)
    pyramid: list[np.ndarray]  # block maxima of significance, finest first
    # Derived lines (derived=True): events after the XSpace's own rows, lines after its own lines.
    derived: DerivedLines | None = None

    def line_of(self, rows: np.ndarray, xs: XSpace) -> np.ndarray:
        """Line of each event row; rows past the XSpace's events are derived events, on lines past its lines."""
        if self.derived is None:
            return xs.line_of_event[rows]
        local = rows - xs.num_events
        own = local < 0
        return np.where(
            own,
            xs.line_of_event[np.where(own, rows, 0)],
            xs.num_lines + self.derived.events.line[np.where(own, 0, local)],
        )

    @property
    def num_groups(self) -> int:
        return len(self.group_row)

    @property
    def nbytes(self) -> int:
        """Memory held by the per-event arrays and the pyramid, in bytes."""
        arrays = {id(a): a for a in (self.key_start, self.key_end, self.event, self.line_rank, *self.pyramid)}
        return int(sum(a.nbytes for a in arrays.values()))

    def key_of(self, groups: np.ndarray, t_ps: np.ndarray) -> np.ndarray:
        """Search keys for (group, relative time) pairs: ``searchsorted(key_start, key_of(g, t))``
        is the first event of group ``g`` with start >= ``t`` (the group's end when none)."""
        first = self.group_first[groups]
        span = self.group_limit[groups] - self.group_offset[groups]
        rel = np.clip(t_ps - first, 0, span)
        return self.group_offset[groups] + rel

    def group_of(self, positions: np.ndarray) -> np.ndarray:
        """Group of each group-order position."""
        return np.searchsorted(self.group_begin, positions, side="right") - 1

    def significance(self, positions: np.ndarray) -> np.ndarray:
        """max(duration, gap after the previous event) in ps of group-order positions.

        For the first event of a group the "gap" is measured to the previous
        group and means nothing; queries keep those events as window heads anyway.
        """
        ks, ke = self.key_start, self.key_end
        dur = ke[positions] - ks[positions]
        gap = ks[positions] - ke[np.maximum(positions - 1, 0)]
        return np.where(positions > 0, np.maximum(dur, gap), _INT64_MAX)


_INDEX_CACHE: weakref.WeakKeyDictionary[XSpace, TraceIndex] = weakref.WeakKeyDictionary()
_DERIVED_INDEX_CACHE: weakref.WeakKeyDictionary[XSpace, TraceIndex] = weakref.WeakKeyDictionary()
_BUILD_LOCKS: weakref.WeakKeyDictionary[XSpace, threading.Lock] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
# Indexes built in this process so far (for tests and metrics: a cache hit does not count).
INDEX_BUILDS = [0]


def trace_index(xs: XSpace, derived: bool = False) -> TraceIndex:
    """The :class:`TraceIndex` of ``xs``, built on first use and cached on the XSpace object.

    ``derived`` adds the derived lines of :mod:`~xprof_core.tools.derived_lines` (a second index,
    cached beside the first). The cache holds the XSpace weakly: the index goes when the host
    does. Concurrent callers on one host wait for a single build; different hosts build in parallel.
    """
    cache = _DERIVED_INDEX_CACHE if derived else _INDEX_CACHE
    with _CACHE_LOCK:
        idx = cache.get(xs)
        if idx is not None:
            return idx
        lock = _BUILD_LOCKS.setdefault(xs, threading.Lock())
    with lock:
        with _CACHE_LOCK:
            idx = cache.get(xs)
        if idx is None:
            idx = build_trace_index(xs, derived_lines(xs) if derived else None)
            with _CACHE_LOCK:
                cache[xs] = idx
                INDEX_BUILDS[0] += 1
        return idx


def _plane_pids(names: Sequence[str]) -> list[int]:
    """A stable pid in [1, 999] for each plane name (XProf-like ranges).

    Devices ``/device:<KIND>:<n>`` take ``1 + n``; other device and custom
    planes 501-700; ``/host:CPU`` 701 and other host planes after it. A taken
    pid moves to the next free one.
    """
    taken: set[int] = set()
    out = []
    custom = 501
    host = 702
    for name in names:
        ident = plane_identity(name)
        if ident.kind is PlaneKind.DEVICE and ident.device_index is not None and ident.device_index < 500:
            want = 1 + ident.device_index
        elif name == HOST_PLANE:
            want = 701
        elif ident.kind in (PlaneKind.HOST_OTHER, PlaneKind.METADATA):
            want, host = host, host + 1
        else:
            want, custom = custom, custom + 1
        pid = want
        while pid in taken:
            pid = pid % (HOST_PID_STRIDE - 1) + 1
            if pid == want:
                raise ValueError(f"more than {HOST_PID_STRIDE - 1} planes with events: no pid left")
        taken.add(pid)
        out.append(pid)
    return out


def _row_order(line: np.ndarray, start: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Permutation sorting events by (line, start, longer first), stable.

    Decoded events are grouped by line and almost always already sorted by
    start, so only lines that are out of order get sorted (one sort per line).
    """
    n = len(line)
    order = np.arange(n, dtype=np.int64)
    if n < 2:
        return order
    same = line[1:] == line[:-1]
    ds = np.diff(start)
    bad = same & ((ds < 0) | ((ds == 0) & (dur[1:] > dur[:-1])))
    if not bad.any():
        return order
    bounds = np.flatnonzero(np.r_[True, ~same, True])
    for b, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if bad[b : e - 1].any():
            order[b:e] = b + np.lexsort((-dur[b:e], start[b:e]))
    return order


def _nesting_depth(start: np.ndarray, end: np.ndarray, row_first: np.ndarray) -> np.ndarray:
    """Nesting depth (int32) of each event, events sorted by (row, start, longer first).

    depth = 1 + the largest depth among the earlier events of the row still
    open at its start (``end > start``), 0 when none is open. For properly
    nested events that is the number of enclosing events; when events overlap
    without nesting it still never puts two overlapping events at one depth.

    Computed level by level without finding parents: the events of depth >= k + 1
    are those of depth >= k that start before the running maximum end of the
    earlier depth >= k events of their row. Each level is one cumulative
    maximum over the shrinking set (cost n * (mean depth + 1)), done in
    cache-sized chunks that carry each level's running maximum forward.
    """
    n = len(start)
    depth = np.zeros(n, dtype=np.int32)
    if n == 0:
        return depth
    row = np.cumsum(row_first) - 1
    stride = int(end.max()) + 1
    if (int(row[-1]) + 1) * stride >= 2**62:  # offsets would overflow: one row at a time
        bounds = np.r_[np.flatnonzero(row_first), n]
        for b, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            depth[b:e] = _nesting_depth(start[b:e], end[b:e], np.r_[True, np.zeros(e - b - 1, dtype=bool)])
        return depth
    # Offsetting each row by `stride` keeps one row's ends from reaching the next row's starts.
    offset = row * stride
    s_all = start + offset
    e_all = end + offset
    del offset
    carry: list[int] = []  # carry[k]: running max end of the depth >= k events so far
    local = np.arange(DEPTH_CHUNK, dtype=np.int32)
    for lo in range(0, n, DEPTH_CHUNK):
        hi = min(n, lo + DEPTH_CHUNK)
        s, e, members, out = s_all[lo:hi], e_all[lo:hi], local[: hi - lo], depth[lo:hi]
        k = 0
        while len(members):
            if k == len(carry):
                carry.append(_INT64_MIN)  # below any start: negative ones too
            before = carry[k]
            running = np.maximum.accumulate(e)
            if before > running[0]:
                np.maximum(running, before, out=running)
            deeper = np.empty(len(members), dtype=bool)
            deeper[0] = s[0] < before
            np.less(s[1:], running[:-1], out=deeper[1:])
            carry[k] = int(running[-1])
            members, s, e = members[deeper], s[deeper], e[deeper]
            out[members] += 1
            k += 1
    return depth


def _pyramid(values: np.ndarray) -> list[np.ndarray]:
    levels = []
    cur = values
    for _ in range(2):
        pad = (-len(cur)) % PYRAMID_BLOCK
        if pad:
            cur = np.concatenate([cur, np.full(pad, -1, dtype=np.int64)])
        cur = cur.reshape(-1, PYRAMID_BLOCK).max(axis=1) if len(cur) else np.zeros(0, dtype=np.int64)
        levels.append(cur)
    return levels


def build_trace_index(xs: XSpace, derived: DerivedLines | None = None) -> TraceIndex:
    """Build the window index of one host (see :class:`TraceIndex`). Prefer :func:`trace_index`.

    With ``derived``, its events join the index as rows ``xs.num_events + i`` on lines
    ``xs.num_lines + k``, each derived line listed right after the line it was derived from.
    """
    if derived is not None and not derived.num_events:
        derived = None
    origin = xs.origin_ps
    timed = xs.is_timed
    all_timed = bool(timed.all()) and derived is None
    ev = np.arange(xs.num_events, dtype=np.int64) if all_timed else np.flatnonzero(timed).astype(np.int64)
    if all_timed:
        line, start, dur = xs.line_of_event, xs.start_ps - origin, np.maximum(xs.duration_ps, 0)
    else:
        line, start, dur = xs.line_of_event[ev], xs.start_ps[ev] - origin, np.maximum(xs.duration_ps[ev], 0)
    if derived is not None:
        d = derived.events
        ev = np.concatenate([ev, xs.num_events + np.arange(len(d.start_ps), dtype=np.int64)])
        line = np.concatenate([line.astype(np.int64), xs.num_lines + d.line.astype(np.int64)])
        start = np.concatenate([start, d.start_ps - origin])
        dur = np.concatenate([dur, np.maximum(d.duration_ps, 0)])
    n = len(ev)

    # 1. Row order: (line, start, longer first). Rows are the lines with timed events.
    order = _row_order(line, start, dur)
    reordered = n > 1 and not bool((order[1:] > order[:-1]).all())
    if reordered:
        ev, line, start, dur = ev[order], line[order], start[order], dur[order]
    end = start + dur
    row_first = np.r_[True, line[1:] != line[:-1]] if n else np.zeros(0, dtype=bool)
    row_line = line[row_first].astype(np.int64)
    row = np.cumsum(row_first) - 1

    # 2. Nesting depth (compiled, O(n log n); _nesting_depth is its numpy twin).
    depth = nesting_depth(start, end, row_first.view(np.uint8))
    max_depth = int(depth.max()) if n else 0

    # 3. Group order: stable sort by (row, depth), row order kept inside a group.
    gkey = row * (max_depth + 1) + depth
    num_keys = len(row_line) * (max_depth + 1)
    if num_keys <= 2**16:
        perm = np.argsort(gkey.astype(np.uint16), kind="stable")  # radix sort
    elif n < 2**32 and num_keys < 2**31:
        perm = np.sort((gkey << 32) | np.arange(n, dtype=np.int64)) & 0xFFFFFFFF
    else:
        perm = np.argsort(gkey, kind="stable")
    gkey_sorted = gkey[perm]
    del gkey
    gstart = np.flatnonzero(np.r_[True, gkey_sorted[1:] != gkey_sorted[:-1]]) if n else np.zeros(0, np.int64)
    group_begin = np.r_[gstart, n].astype(np.int64)
    group_row = gkey_sorted[gstart] // (max_depth + 1)
    group_depth = gkey_sorted[gstart] % (max_depth + 1)
    del gkey_sorted
    key_start, key_end = start[perm], end[perm]
    del start, end, dur
    counts = np.diff(group_begin)
    group_first = key_start[gstart]
    group_last_end = key_end[group_begin[1:] - 1] if n else np.zeros(0, np.int64)  # ends are sorted in a group
    span = group_last_end - group_first + 1
    group_offset = np.r_[0, np.cumsum(span + 1)[:-1]].astype(np.int64) if n else np.zeros(0, np.int64)
    if n and int(group_offset[-1]) + int(span[-1]) >= 2**62:
        raise ProfileTooLargeError(
            "profile too long to index for the trace viewer: the sum of its lines' time spans exceeds 2**62 ps "
            "(events about 53 days apart on one line)"
        )
    base = np.repeat(group_offset - group_first, counts)
    key_start += base
    key_end += base
    del base
    idx_dtype = np.uint32 if n < 2**32 else np.int64
    line_rank = perm.astype(idx_dtype)
    # With every event timed and already in order, event rows and row-order ranks coincide.
    event = line_rank if all_timed and not reordered else ev[perm].astype(idx_dtype)
    del perm

    # 4. Significance pyramid.
    signif = np.empty(n, dtype=np.int64)
    if n:  # as TraceIndex.significance
        signif[0] = _INT64_MAX
        np.maximum(key_end[1:] - key_start[1:], key_start[1:] - key_end[:-1], out=signif[1:])
    pyramid = _pyramid(signif)
    del signif

    # 5. Rows, pids, tids and names.
    lines = xs.tables.lines
    extra = derived.lines if derived is not None else []
    line_plane = np.concatenate([lines.plane.astype(np.int64), np.array([ln.plane for ln in extra], np.int64)])
    line_names = [dn or nm for dn, nm in zip(lines.display_name, lines.name, strict=True)]
    line_names += [ln.name for ln in extra]
    # Where a line sorts among its plane's lines: its own place, or just after the line it derives from.
    line_place = [(i, 0) for i in range(xs.num_lines)]
    line_place += [(ln.source_line, k + 1) if ln.source_line >= 0 else (-1, k + 1) for k, ln in enumerate(extra)]
    line_row = np.full(xs.num_lines + len(extra), -1, dtype=np.int64)
    line_row[row_line] = np.arange(len(row_line))
    row_plane = line_plane[row_line]
    planes_used = sorted(set(row_plane.tolist()))
    pids = _plane_pids([xs.planes[p].name for p in planes_used])
    pid_of_plane = dict(zip(planes_used, pids, strict=True))
    processes = [
        {"pid": pid, "name": xs.planes[p].name, "sort_index": pid, "plane": p}
        for p, pid in zip(planes_used, pids, strict=True)
    ]
    row_pid = np.array([pid_of_plane[p] for p in row_plane.tolist()], dtype=np.int32)
    row_tid = np.zeros(len(row_line), dtype=np.int32)
    threads = []
    for p in planes_used:
        rows = np.flatnonzero(row_plane == p).tolist()
        names = [line_names[row_line[r]] for r in rows]

        keys = []
        for r, name in zip(rows, names, strict=True):
            source, sub = line_place[row_line[r]]
            ranked_name = name if source < 0 or sub == 0 else line_names[source]
            keys.append((_LINE_RANK.get(ranked_name, len(_LINE_RANK)), source, sub))
        ranked = sorted(range(len(rows)), key=keys.__getitem__)
        for tid, i in enumerate(ranked, start=1):
            row_tid[rows[i]] = tid
            threads.append(
                {
                    "pid": pid_of_plane[p],
                    "tid": tid,
                    "name": names[i],
                    "sort_index": tid,
                    "line": int(row_line[rows[i]]),
                }
            )

    return TraceIndex(
        origin_ps=origin,
        first_ps=int(group_first.min()) if n else 0,
        end_ps=int(group_last_end.max()) if n else 0,
        num_events=n,
        max_depth=max_depth,
        row_line=row_line,
        row_pid=row_pid,
        row_tid=row_tid,
        line_row=line_row,
        processes=processes,
        threads=threads,
        group_begin=group_begin,
        group_row=group_row,
        group_depth=group_depth,
        group_first=group_first,
        group_offset=group_offset,
        group_limit=group_offset + span,
        key_start=key_start,
        key_end=key_end,
        event=event,
        line_rank=line_rank,
        pyramid=pyramid,
        derived=derived,
    )


# --- window queries ---


@dataclass
class WindowSelection:
    """The answer to one window query, before any ``max_events`` cap.

    ``positions`` are group-order positions of the kept events (sorted);
    ``events_in_window`` counts every event overlapping the window.
    """

    positions: np.ndarray
    events_in_window: int
    threshold_ps: int  # 0 when nothing was thinned
    window_ps: tuple[int, int]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for every i, vectorised."""
    lengths = np.maximum(hi - lo, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    keep = lengths > 0
    lo, lengths = lo[keep], lengths[keep]
    starts = np.cumsum(lengths) - lengths
    return np.repeat(lo - starts, lengths) + np.arange(total, dtype=np.int64)


def _certain(idx: TraceIndex, lo: np.ndarray, hi: np.ndarray, threshold: int) -> np.ndarray:
    """Positions inside the window ranges ``[lo[g], hi[g])`` whose significance reaches
    ``threshold``, sorted.

    Walks the pyramid down from the coarsest level, expanding only blocks whose
    maximum reaches the threshold. When most blocks qualify (fine resolutions)
    the whole window is scanned with contiguous array operations instead.
    """
    blocks: np.ndarray | None = None
    offsets = np.arange(PYRAMID_BLOCK, dtype=np.int64)
    for level in reversed(idx.pyramid):
        if blocks is None:
            blocks = np.flatnonzero(level >= threshold)
        else:
            blocks = (blocks[:, None] * PYRAMID_BLOCK + offsets).ravel()
            blocks = blocks[blocks < len(level)]
            blocks = blocks[level[blocks] >= threshold]
    assert blocks is not None
    nonempty = hi > lo
    lo, hi = lo[nonempty], hi[nonempty]
    if not len(lo) or not len(blocks):
        return np.zeros(0, dtype=np.int64)
    first, stop = int(lo.min()), int(hi.max())
    if 4 * PYRAMID_BLOCK * len(blocks) >= stop - first:
        # Dense: one pass over the window's span. Non-empty ranges are disjoint.
        ks, ke = idx.key_start, idx.key_end
        sig = ke[first:stop] - ks[first:stop]
        if first > 0:
            np.maximum(sig, ks[first:stop] - ke[first - 1 : stop - 1], out=sig)
        else:
            np.maximum(sig[1:], ks[1:stop] - ke[: stop - 1], out=sig[1:])
            sig[0] = _INT64_MAX
        cover = np.zeros(stop - first + 1, dtype=np.int32)
        cover[lo - first] += 1
        cover[hi - first] -= 1
        inside = np.cumsum(cover[:-1]) > 0
        return np.flatnonzero(inside & (sig >= threshold)) + first
    pos = (blocks[:, None] * PYRAMID_BLOCK + offsets).ravel()
    pos = pos[pos < idx.num_events]
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2], bounds[1::2] = lo, hi
    pos = pos[_inside(bounds, pos)]
    return pos[idx.significance(pos) >= threshold]


def _inside(bounds: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Mask of positions inside one of the sorted, disjoint ranges ``bounds`` = (lo0, hi0, lo1, ...)."""
    return (np.searchsorted(bounds, positions, side="right") & 1).astype(bool)


def _chains(
    idx: TraceIndex, anchors: np.ndarray, run_end: np.ndarray, groups: np.ndarray, threshold: int
) -> np.ndarray:
    """Events kept after each anchor, up to its run end: repeatedly the first event that starts
    at least ``threshold`` after the end of the last kept one. All runs advance together, one
    kept event per round."""
    out = []
    cur, lim, g = anchors, run_end, groups
    limit = idx.group_limit
    while len(cur):
        # key_end + threshold, capped at the group's limit without passing int64 on the way.
        room = np.maximum(limit[g] - idx.key_end[cur], 0)
        want = idx.key_end[cur] + np.minimum(threshold, room)
        # Every round moves each run forward, whatever the keys hold.
        nxt = np.maximum(np.searchsorted(idx.key_start, want, side="left"), cur + 1)
        alive = nxt < lim
        cur, lim, g = nxt[alive], lim[alive], g[alive]
        out.append(cur)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def select_window(
    idx: TraceIndex, start_ps: int | None = None, end_ps: int | None = None, resolution: int = DEFAULT_RESOLUTION
) -> WindowSelection:
    """Events of ``[start_ps, end_ps)`` (relative ps) kept by the visibility rule.

    An event is in the window when it starts before ``end_ps`` and ends after
    ``start_ps`` (a zero-length event when it starts inside). Defaults: the
    whole profile. ``resolution`` 0 keeps every event of the window.
    """
    ws = idx.first_ps if start_ps is None else int(start_ps)
    we = idx.end_ps + 1 if end_ps is None else int(end_ps)
    groups = np.arange(idx.num_groups, dtype=np.int64)
    ks, ke = idx.key_start, idx.key_end
    if we <= ws or not len(groups):
        return WindowSelection(np.zeros(0, dtype=np.int64), 0, 0, (ws, we))
    # Search with the window clamped to just around the profile (any int64-safe value works).
    ws_c, we_c = (min(max(t, idx.first_ps - 1), idx.end_ps + 2) for t in (ws, we))
    lo = np.minimum(
        np.searchsorted(ke, idx.key_of(groups, np.full(len(groups), ws_c + 1)), side="left"),
        np.searchsorted(ks, idx.key_of(groups, np.full(len(groups), ws_c)), side="left"),
    )
    hi = np.searchsorted(ks, idx.key_of(groups, np.full(len(groups), we_c)), side="left")
    hi = np.maximum(hi, lo)
    in_window = int((hi - lo).sum())
    if resolution <= 0 or in_window == 0:
        return WindowSelection(_ranges(lo, hi), in_window, 0, (ws, we))

    # A threshold past the whole key range acts like any larger one, and keeps key + threshold in int64.
    threshold = min(max(1, -(-(we - ws) // resolution)), int(idx.group_limit[-1]) + 1)
    anchors = np.concatenate([_certain(idx, lo, hi, threshold), lo[hi > lo]])
    anchors.sort()
    anchors = anchors[np.r_[True, anchors[1:] != anchors[:-1]]]
    ag = idx.group_of(anchors)
    nxt = np.r_[anchors[1:], 0]
    same = np.r_[ag[1:] == ag[:-1], False]
    run_end = np.where(same, nxt, hi[ag])
    chained = _chains(idx, anchors, run_end, ag, threshold)
    kept = np.sort(np.concatenate([anchors, chained]))
    return WindowSelection(kept, in_window, threshold, (ws, we))


# --- map / reduce ---


# Integers JavaScript reads exactly; stats past this go out as strings of their digits.
JS_SAFE_INT = 2**53


def _json_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > JS_SAFE_INT:
        return str(v)
    return v


def event_args(xs: XSpace, rows: np.ndarray) -> list[dict[str, Any]]:
    """JSON-ready stats of each event in ``rows`` (metadata stats, then the event's own, the event's
    winning), bytes hex-encoded, non-finite floats and integers past 2**53 (which JavaScript would
    round) as strings: the Python twin of :func:`render_args`."""
    return [{k: _json_value(v) for k, v in stats.items()} for stats in xs.iter_event_stats(rows)]


@dataclass(frozen=True)
class _ArgTables:
    """What the args kernel needs from one host: stat names by (plane, id) and metadata fragments."""

    key_base: np.ndarray  # per plane: first slot of its ids in the name table
    key_limit: np.ndarray  # per plane: ids covered (0 .. limit-1)
    names: np.ndarray  # uint8 name bytes
    name_start: np.ndarray
    name_end: np.ndarray
    md_json: np.ndarray  # uint8: per metadata row, its stats as an inner JSON fragment
    md_start: np.ndarray
    md_end: np.ndarray


_ARG_TABLES: weakref.WeakKeyDictionary[XSpace, _ArgTables | None] = weakref.WeakKeyDictionary()


def _arg_tables(xs: XSpace) -> _ArgTables | None:
    """Build (once per host) the tables of the args kernel; None when stat ids are too sparse for tables."""
    if xs in _ARG_TABLES:
        return _ARG_TABLES[xs]
    bases, limits, slots = [], [], 0
    for plane in xs.planes:
        ids = list(plane.stat_metadata)
        limit = max(ids) + 1 if ids else 0
        if ids and (min(ids) < 0 or limit > 4 * len(ids) + 65536):
            _ARG_TABLES[xs] = None
            return None
        bases.append(slots)
        limits.append(limit)
        slots += limit
    name_start = np.zeros(slots, dtype=np.int64)
    name_end = np.zeros(slots, dtype=np.int64)
    chunks: list[bytes] = []
    used = 0
    for plane, b in zip(xs.planes, bases, strict=True):
        for sid, name in plane.stat_metadata.items():
            raw = name.encode("utf-8")
            name_start[b + sid] = used
            name_end[b + sid] = used + len(raw)
            chunks.append(raw)
            used += len(raw)
    n_md = len(xs.tables.event_metadata)
    md_start = np.zeros(n_md, dtype=np.int64)
    md_end = np.zeros(n_md, dtype=np.int64)
    md_chunks: list[bytes] = []
    used_md = 0
    for row in xs.metadata_rows_with_stats().tolist():
        stats = xs.metadata_stats(row)
        if stats:
            frag = orjson.dumps({k: _json_value(v) for k, v in stats.items()})[1:-1]
            md_start[row] = used_md
            md_end[row] = used_md + len(frag)
            md_chunks.append(frag)
            used_md += len(frag)
    tables = _ArgTables(
        np.array(bases, dtype=np.int64),
        np.array(limits, dtype=np.int64),
        np.frombuffer(b"".join(chunks) or b"\0", dtype=np.uint8),
        name_start,
        name_end,
        np.frombuffer(b"".join(md_chunks) or b"\0", dtype=np.uint8),
        md_start,
        md_end,
    )
    _ARG_TABLES[xs] = tables
    return tables


def render_args(xs: XSpace, rows: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Each event's args as a JSON object, rendered in C: (blob, offsets), event i is ``blob[o[i]:o[i + 1]]``.

    The same content as :func:`event_args` (metadata stats, then the event's
    own; bytes as hex, non-finite floats as strings), without a Python object
    per event.
    """
    rows = np.asarray(rows, dtype=np.int64)
    tables = _arg_tables(xs)
    if tables is None:  # sparse stat ids: the Python path
        parts = [orjson.dumps(a) for a in event_args(xs, rows)]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return b"".join(parts), offsets
    md_rows = xs.event_metadata_row[rows].astype(np.int64)
    planes = xs.plane_of_event[rows].astype(np.int64)
    return render_event_args(
        xs.buffer,
        xs.event_offset,
        rows,
        tables.key_base,
        tables.key_limit,
        tables.names,
        tables.name_start,
        tables.name_end,
        md_rows,
        tables.md_json,
        tables.md_start,
        tables.md_end,
        planes,
    )


def _unique_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each one's first occurrence, inverse) of an int array,
    or of the rows of a 2-D int array."""
    keys = (a[:, 1], a[:, 0]) if a.ndim == 2 else (a,)
    order = np.lexsort(keys) if a.ndim == 2 else np.argsort(a, kind="stable")
    s = a[order]
    if len(s):
        change = s[1:] != s[:-1]
        first = np.r_[True, change.any(axis=1) if a.ndim == 2 else change]
    else:
        first = np.zeros(0, dtype=bool)
    inverse = np.empty(len(a), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return s[first], order[first], inverse


def _event_times(xs: XSpace, idx: TraceIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(absolute start ps, duration ps) of event rows, derived rows included."""
    if idx.derived is None:
        return xs.start_ps[rows], xs.duration_ps[rows]
    local = rows - xs.num_events
    d = local >= 0
    start = np.empty(len(rows), dtype=np.int64)
    dur = np.empty(len(rows), dtype=np.int64)
    start[~d], dur[~d] = xs.start_ps[rows[~d]], xs.duration_ps[rows[~d]]
    ev = idx.derived.events
    start[d], dur[d] = ev.start_ps[local[d]], ev.duration_ps[local[d]]
    return start, dur


def _event_names(xs: XSpace, idx: TraceIndex, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(index of each row's name in the list, the distinct names), derived rows included."""
    local = rows - xs.num_events
    d = local >= 0
    code = xs.event_metadata_row[np.where(d, 0, rows)].astype(np.int64)
    if idx.derived is not None and d.any():
        derived_code = idx.derived.events.name_index[np.where(d, local, 0)]
        code = np.where(d, len(xs.tables.event_metadata.id) + 1 + derived_code, code)
    _, first, name_idx = _unique_inverse(code)
    heads = rows[first]
    names = xs.event_names(heads[heads < xs.num_events]).tolist()
    if idx.derived is not None and len(heads) and (heads >= xs.num_events).any():
        it = iter(names)
        derived_names = idx.derived.names
        name_of = idx.derived.events.name_index
        names = [next(it) if h < xs.num_events else derived_names[name_of[h - xs.num_events]] for h in heads.tolist()]
    return name_idx, names


def _event_args(xs: XSpace, idx: TraceIndex, rows: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Each row's args as JSON (see :func:`render_args`), derived rows included."""
    local = rows - xs.num_events
    d = local >= 0
    if idx.derived is None or not d.any():
        return render_args(xs, rows)
    file_blob, file_offs = render_args(xs, rows[~d])
    derived_blob, derived_offs = idx.derived.render_args(local[d])
    starts = np.empty(len(rows), dtype=np.int64)
    lengths = np.empty(len(rows), dtype=np.int64)
    starts[~d], lengths[~d] = file_offs[:-1], np.diff(file_offs)
    starts[d], lengths[d] = len(file_blob) + derived_offs[:-1], np.diff(derived_offs)
    return gather_segments(file_blob + derived_blob, starts, lengths)


MAX_WINDOW_MS = 1e15  # 31 years


def _parse_params(params: Params) -> tuple[float | None, float | None, int, int | None, int | None, bool]:
    # Bounded so that the window in ps is a finite number (1e300 ms would overflow to infinity).
    start_ms = param_float(params, "start_time_ms", None, lo=-MAX_WINDOW_MS, hi=MAX_WINDOW_MS)
    end_ms = param_float(params, "end_time_ms", None, lo=-MAX_WINDOW_MS, hi=MAX_WINDOW_MS)
    resolution = param_int(params, "resolution", DEFAULT_RESOLUTION, lo=0)
    raw_cap = params.get("max_events")
    max_events = None if raw_cap in (None, "") else param_int(params, "max_events", 0, lo=0)
    raw_origin = params.get("origin_ps")
    origin = None if raw_origin in (None, "") else param_int(params, "origin_ps", 0)
    raw_args = str(params.get("include_args", "1")).lower()
    include_args = raw_args not in ("0", "false", "no")
    return start_ms, end_ms, resolution, max_events, origin, include_args


def _cap(durations: np.ndarray, starts: np.ndarray, max_events: int) -> np.ndarray:
    """Sorted indices of the ``max_events`` longest events (earlier first among equals)."""
    if len(durations) <= max_events:
        return np.arange(len(durations))
    order = np.lexsort((starts, -durations))
    return np.sort(order[:max_events])


def _flow_columns(xs: XSpace, idx: TraceIndex, rows: np.ndarray, origin: int) -> dict[str, Any]:
    """Launch -> device arrows touching the kept ``rows`` (see :mod:`trace_flows`), as columns."""
    fidx = flow_index(xs)
    sel = flows_touching(fidx, rows[rows < xs.num_events])
    src, dst = fidx.src[sel], fidx.dst[sel]
    src_row = idx.line_row[xs.line_of_event[src]]
    dst_row = idx.line_row[xs.line_of_event[dst]]
    return {
        "src_pid": idx.row_pid[src_row],
        "src_tid": idx.row_tid[src_row],
        "src_ts_ps": xs.start_ps[src] - origin,
        "dst_pid": idx.row_pid[dst_row],
        "dst_tid": idx.row_tid[dst_row],
        "dst_ts_ps": xs.start_ps[dst] - origin,
        "correlation_id": fidx.correlation[sel],
    }


def _flow_events(cols: dict[str, Any], pid_offset: int, shift_ps: int, first_id: int) -> list[dict[str, Any]]:
    """Chrome flow events of one host's arrows: an "s" at the launch and an "f" (bound to the enclosing
    slice, the device event) at the device event's start, one id per arrow."""
    out: list[dict[str, Any]] = []
    columns = zip(
        (np.asarray(cols["src_pid"], dtype=np.int64) + pid_offset).tolist(),
        np.asarray(cols["src_tid"], dtype=np.int64).tolist(),
        ((np.asarray(cols["src_ts_ps"], dtype=np.int64) + shift_ps) / 1e6).tolist(),
        (np.asarray(cols["dst_pid"], dtype=np.int64) + pid_offset).tolist(),
        np.asarray(cols["dst_tid"], dtype=np.int64).tolist(),
        ((np.asarray(cols["dst_ts_ps"], dtype=np.int64) + shift_ps) / 1e6).tolist(),
        np.asarray(cols["correlation_id"], dtype=np.uint64).tolist(),
        strict=True,
    )
    for k, (sp, st, sts, dp, dt, dts, corr) in enumerate(columns, start=first_id):
        args = {"correlation_id": str(corr)}
        out.append(
            {"ph": "s", "id": k, "cat": FLOW_CATEGORY, "name": "launch", "pid": sp, "tid": st, "ts": sts, "args": args}
        )
        out.append(
            {
                "ph": "f",
                "bp": "e",
                "id": k,
                "cat": FLOW_CATEGORY,
                "name": "launch",
                "pid": dp,
                "tid": dt,
                "ts": dts,
                "args": args,
            }
        )
    return out


def _search_partial(xs: XSpace, idx: TraceIndex, params: Params, origin: int) -> Partial:
    """One host's matches of ``search`` (see :mod:`trace_search`), from ``search_from_ms`` on."""
    query = str(params["search"])
    if len(query) > SEARCH_MAX_QUERY:
        raise ValueError(f"parameter 'search' is longer than {SEARCH_MAX_QUERY} characters")
    limit = param_int(params, "search_limit", SEARCH_LIMIT, lo=1, hi=SEARCH_MAX_LIMIT)
    from_ms = param_float(params, "search_from_ms", None)
    if from_ms is not None and not math.isfinite(from_ms):
        raise ValueError("parameter 'search_from_ms' must be a finite number")
    rows = idx.event.astype(np.int64)
    start, dur = _event_times(xs, idx, rows)
    from_ps = -(2**62) if from_ms is None else origin + round(from_ms * 1e9)
    derived = idx.derived
    hits = search_index(
        xs,
        rows,
        start,
        dur,
        derived.names if derived else None,
        derived.events.name_index if derived else None,
        query,
        from_ps,
        limit,
    )
    row_of = idx.line_row[idx.line_of(hits.rows, xs)]
    name_idx, names = _event_names(xs, idx, hits.rows)
    return {
        "version": VERSION,
        "origin_ps": origin,
        "search": {
            "query": query,
            "total": hits.total,
            "after": hits.after,
            "pid": idx.row_pid[row_of],
            "tid": idx.row_tid[row_of],
            "ts_ps": hits.start_ps - origin,
            "dur_ps": hits.dur_ps,
            "name_idx": name_idx.astype(np.int32),
            "names": names,
        },
    }


def _merge_search(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """Hosts' matches merged in time order (pids offset per host), the first ``search_limit`` kept."""
    limit = param_int(params, "search_limit", SEARCH_LIMIT, lo=1, hi=SEARCH_MAX_LIMIT)
    origin = min(int(p["origin_ps"]) for p in partials)
    matches: list[tuple[int, int, int, int, str]] = []
    total = after = 0
    for h, part in enumerate(partials):
        found = part["search"]
        total += int(found["total"])
        after += int(found["after"])
        shift = int(part["origin_ps"]) - origin
        names = found["names"]
        matches.extend(
            zip(
                (np.asarray(found["ts_ps"], dtype=np.int64) + shift).tolist(),
                np.asarray(found["dur_ps"], dtype=np.int64).tolist(),
                (np.asarray(found["pid"], dtype=np.int64) + h * HOST_PID_STRIDE).tolist(),
                np.asarray(found["tid"], dtype=np.int64).tolist(),
                [names[i] for i in np.asarray(found["name_idx"], dtype=np.int64).tolist()],
                strict=True,
            )
        )
    matches.sort()
    kept = matches[:limit]
    return {
        "search": {
            "query": str(partials[0]["search"]["query"]),
            "total": total,
            "after": after,
            "returned": len(kept),
            "matches": [
                {"ts": ts / 1e6, "dur": dur / 1e6, "pid": pid, "tid": tid, "name": name}
                for ts, dur, pid, tid, name in kept
            ],
        }
    }


class TraceViewerTool:
    """XProf's ``trace_viewer``: Chrome Trace Event JSON of a window of the timeline."""

    name = "trace_viewer"
    version = VERSION
    description = (
        "Timeline of every host, device, thread and stream as Chrome Trace Event JSON; "
        "params start_time_ms, end_time_ms, resolution (0 = every event), max_events, derived (derived lines), "
        "flows (launch arrows), search (whole-profile search: search_from_ms, search_limit)"
    )
    needs = "xspace"
    params: tuple[ToolParam, ...] = (
        ToolParam("start_time_ms", "float", None, "window start, ms from the profile start"),
        ToolParam("end_time_ms", "float", None, "window end, ms from the profile start"),
        ToolParam(
            "resolution",
            "int",
            DEFAULT_RESOLUTION,
            "about this many events per row across the window; 0 keeps every event",
            lo=0,
        ),
        ToolParam("max_events", "int", None, "keep at most this many events (the longest)", lo=0),
        ToolParam("origin_ps", "int", None, "time zero in ps (default: the profile's first event)"),
        ToolParam("include_args", "bool", True, "render each event's stats as args"),
        ToolParam("derived", "bool", False, "add XProf's derived lines per device stream and a device Steps line"),
        ToolParam("flows", "bool", False, "add flow events from each host launch to its device events"),
        ToolParam("search", "str", None, "search the whole profile: events whose name contains this text"),
        ToolParam("search_from_ms", "float", None, "search: matches starting at or after this time (ms)"),
        ToolParam("search_limit", "int", 500, "search: how many matches to return", lo=1, hi=10000),
    )

    def map(self, xs: XSpace, params: Params) -> Partial:
        """One host's window: kept events as numpy columns plus metadata and counts.

        Columns (one entry per kept event, sorted by line then start): ``pid``,
        ``tid`` (int32), ``ts_ps``/``dur_ps`` (int64 ps relative to
        ``origin_ps``), ``name_idx`` (int32 into ``names``), ``row`` (event
        row); ``args`` is the list of each event's stats (empty dicts when
        ``include_args=0``).
        """
        start_ms, end_ms, resolution, max_events, origin_param, include_args = _parse_params(params)
        idx = trace_index(xs, derived=param_flag(params, "derived"))
        # Windows and output are relative to the index origin unless another origin was asked for.
        shift = 0 if origin_param is None else idx.origin_ps - origin_param
        origin = idx.origin_ps if origin_param is None else origin_param
        if params.get("search"):
            return _search_partial(xs, idx, params, origin)
        ws = None if start_ms is None else round(start_ms * 1e9) - shift
        we = None if end_ms is None else round(end_ms * 1e9) - shift
        sel = select_window(idx, ws, we, resolution)
        pos = sel.positions
        dropped_visibility = sel.events_in_window - len(pos)
        rows = idx.event[pos].astype(np.int64)
        ts, dur = _event_times(xs, idx, rows)
        ts = ts - origin
        dropped_cap = 0
        if max_events is not None and len(pos) > max_events:
            keep = _cap(dur, ts, max_events)
            dropped_cap = len(pos) - len(keep)
            pos, rows, ts, dur = pos[keep], rows[keep], ts[keep], dur[keep]
        order = np.argsort(idx.line_rank[pos], kind="stable")
        rows, ts, dur = rows[order], ts[order], dur[order]
        row_of = idx.line_row[idx.line_of(rows, xs)]
        name_idx, names = _event_names(xs, idx, rows)
        if include_args:
            args_json, args_offsets = _event_args(xs, idx, rows)
        else:
            args_json, args_offsets = b"", np.zeros(len(rows) + 1, dtype=np.int64)
        return {
            "version": VERSION,
            "origin_ps": origin,
            "full_span_ps": [idx.first_ps + shift, idx.end_ps + shift],
            "window_ps": [sel.window_ps[0] + shift, sel.window_ps[1] + shift],
            "resolution": resolution,
            "threshold_ps": sel.threshold_ps,
            "processes": [{k: p[k] for k in ("pid", "name", "sort_index")} for p in idx.processes],
            "threads": [{k: t[k] for k in ("pid", "tid", "name", "sort_index")} for t in idx.threads],
            "pid": idx.row_pid[row_of],
            "tid": idx.row_tid[row_of],
            "ts_ps": ts.astype(np.int64),
            "dur_ps": dur.astype(np.int64),
            "name_idx": name_idx.astype(np.int32),
            "names": names,
            "row": rows,
            "args_json": args_json,  # event i's args: args_json[args_offsets[i]:args_offsets[i + 1]]
            "args_offsets": args_offsets,
            "counts": {
                "events_in_window": sel.events_in_window,
                "kept": len(rows),
                "dropped_visibility": dropped_visibility,
                "dropped_max_events": dropped_cap,
                "max_events": max_events,
            },
            **({"flows": _flow_columns(xs, idx, rows, origin)} if param_flag(params, "flows") else {}),
        }

    def _merge(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        """Hosts merged (pids offset per host, one time origin), the max_events cap applied, counts summed."""
        _, _, resolution, max_events, _, _ = _parse_params(params)
        multi = len(partials) > 1
        origin = min((int(p["origin_ps"]) for p in partials), default=0)
        meta: list[dict[str, Any]] = []
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pid", "tid", "ts", "dur", "name", "args_start", "args_end")
        }
        names: list[str] = []
        blobs: list[bytes] = []
        first_ms: list[float] = []
        end_ms: list[float] = []
        in_window = dropped_vis = dropped_cap = blob_at = 0
        flows: list[dict[str, Any]] = []
        for h, part in enumerate(partials):
            host = str(part.get("host", f"host{h}"))
            shift = int(part["origin_ps"]) - origin
            offset = h * HOST_PID_STRIDE
            for proc in part["processes"]:
                pid = proc["pid"] + offset
                name = f"{host} {proc['name']}" if multi else proc["name"]
                # Several hosts: the host and the plane also apart, so a viewer can show them distinctly.
                named = {"name": name, "host": host, "plane": proc["name"]} if multi else {"name": name}
                meta.append({"ph": "M", "name": "process_name", "pid": pid, "args": named})
                meta.append(
                    {
                        "ph": "M",
                        "name": "process_sort_index",
                        "pid": pid,
                        "args": {"sort_index": proc["sort_index"] + offset},
                    }
                )
            for th in part["threads"]:
                pid = th["pid"] + offset
                meta.append(
                    {"ph": "M", "name": "thread_name", "pid": pid, "tid": th["tid"], "args": {"name": th["name"]}}
                )
                meta.append(
                    {
                        "ph": "M",
                        "name": "thread_sort_index",
                        "pid": pid,
                        "tid": th["tid"],
                        "args": {"sort_index": th["sort_index"]},
                    }
                )
            cols["pid"].append(np.asarray(part["pid"], dtype=np.int64) + offset)
            cols["tid"].append(np.asarray(part["tid"], dtype=np.int64))
            cols["ts"].append(np.asarray(part["ts_ps"], dtype=np.int64) + shift)
            cols["dur"].append(np.asarray(part["dur_ps"], dtype=np.int64))
            cols["name"].append(np.asarray(part["name_idx"], dtype=np.int64) + len(names))
            names.extend(part["names"])
            offs = np.asarray(part["args_offsets"], dtype=np.int64)
            cols["args_start"].append(offs[:-1] + blob_at)
            cols["args_end"].append(offs[1:] + blob_at)
            blobs.append(part["args_json"])
            blob_at += len(part["args_json"])
            span = part["full_span_ps"]
            if span[1] >= span[0] and part["threads"]:
                first_ms.append((span[0] + shift) / 1e9)
                end_ms.append((span[1] + shift) / 1e9)
            if "flows" in part:
                flows.extend(_flow_events(part["flows"], offset, shift, len(flows) // 2))
            c = part["counts"]
            in_window += int(c["events_in_window"])
            dropped_vis += int(c["dropped_visibility"])
            dropped_cap += int(c["dropped_max_events"])
        merged = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in cols.items()}
        if max_events is not None and len(merged["ts"]) > max_events:
            keep = _cap(merged["dur"], merged["ts"], max_events)
            dropped_cap += len(merged["ts"]) - len(keep)
            merged = {k: v[keep] for k, v in merged.items()}
        dropped = dropped_vis + dropped_cap
        reasons = []
        if dropped_vis:
            reasons.append(
                f"{dropped_vis} events too short and too close to a kept neighbour to be visible "
                f"at resolution {resolution} (zoom in, or resolution=0, to see them)"
            )
        if dropped_cap:
            reasons.append(f"{dropped_cap} events beyond max_events={max_events} (the longest were kept)")
        header = {
            "displayTimeUnit": "ns",
            "metadata": {"highres-ticks": True},
            "fullTimespan": [min(first_ms, default=0.0), max(end_ms, default=0.0)],
            "returnedEventsSize": len(merged["ts"]),
            "filteredByVisibility": resolution > 0,
            "droppedEvents": {
                "count": dropped,
                "reason": "; ".join(reasons) or "none",
                "byVisibility": dropped_vis,
                "byMaxEvents": dropped_cap,
                "eventsInWindow": in_window,
            },
        }
        return {
            "header": header,
            "meta": meta,
            "cols": merged,
            "names": names,
            "args": b"".join(blobs),
            "flows": flows,
        }

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        """Merge host partials (in host order) into the trace viewer's JSON dict."""
        if partials and "search" in partials[0]:
            return _merge_search(partials, params)
        m = self._merge(partials, params)
        cols, names, blob = m["cols"], m["names"], m["args"]
        events = m["meta"]
        events.extend(
            {
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "ts": ts,
                "dur": dur,
                "name": names[k],
                "args": orjson.loads(blob[a:b]) if b > a else {},
            }
            for pid, tid, ts, dur, k, a, b in zip(
                cols["pid"].tolist(),
                cols["tid"].tolist(),
                (cols["ts"] / 1e6).tolist(),
                (cols["dur"] / 1e6).tolist(),
                cols["name"].tolist(),
                cols["args_start"].tolist(),
                cols["args_end"].tolist(),
                strict=True,
            )
        )
        events.extend(m["flows"])
        return {**m["header"], "traceEvents": events}

    def reduce_json(self, partials: Sequence[Partial], params: Params) -> bytes:
        """The same document as :meth:`reduce`, rendered straight to JSON bytes (no object per event).

        ``ts``/``dur`` are written as exact decimals of microseconds; readers
        get the same numbers as from :meth:`reduce` up to float rounding.
        """
        if partials and "search" in partials[0]:
            return orjson.dumps(_merge_search(partials, params))
        m = self._merge(partials, params)
        cols = m["cols"]
        raw = [n.encode("utf-8") for n in m["names"]]
        name_end = np.cumsum([len(r) for r in raw], dtype=np.int64) if raw else np.zeros(0, dtype=np.int64)
        name_start = name_end - np.array([len(r) for r in raw], dtype=np.int64)
        names_blob = np.frombuffer(b"".join(raw) or b"\0", dtype=np.uint8)
        args_blob = np.frombuffer(m["args"] or b"\0", dtype=np.uint8)
        meta = orjson.dumps(m["meta"])
        events = render_complete_events(
            cols["pid"],
            cols["tid"],
            cols["ts"],
            cols["dur"],
            cols["name"],
            names_blob,
            name_start,
            name_end,
            args_blob,
            cols["args_start"],
            cols["args_end"],
            len(m["meta"]) > 0,
        )
        head = orjson.dumps(m["header"])
        flows = orjson.dumps(m["flows"])[1:-1]
        tail = [b",", flows] if flows and (len(m["meta"]) or len(cols["ts"])) else [flows]
        return b"".join([head[:-1], b',"traceEvents":', meta[:-1], events, *tail, b"]}"])


TRACE_VIEWER = register(TraceViewerTool())


# --- full-fidelity export ---


def _host_label(source: Any, i: int) -> str:
    if isinstance(source, XSpace):
        return source.hostnames[0] if source.hostnames else f"host{i}"
    from xprof_core.storage.logdir import host_name_of

    return host_name_of(str(source))


def _open_source(source: Any) -> XSpace:
    if isinstance(source, XSpace):
        return source
    from xprof_core.model.load import load

    return load(source)


def export_trace_json_gz(
    xs_or_paths: XSpace | str | Path | Sequence[XSpace | str | Path], out_path: str | Path, compresslevel: int = 3
) -> int:
    """Write every timed event of one or more hosts to a gzipped Chrome Trace Event JSON file.

    Accepts an XSpace, a file path/URL, or a sequence of them (hosts, merged
    as in ``reduce``: pids offset by 1000 per host, process names prefixed by
    the host). Events are written in chunks of :data:`EXPORT_CHUNK`, args
    included, so memory stays bounded by the decoded hosts. The file opens in
    ui.perfetto.dev and chrome://tracing. Returns the number of "X" events.
    """
    sources = list(xs_or_paths) if isinstance(xs_or_paths, (list, tuple)) else [xs_or_paths]
    multi = len(sources) > 1
    # Hosts share one time origin; paths are decoded twice (origins first) rather than held at once.
    origins = [_open_source(s).origin_ps for s in sources] if multi else [None]
    origin = min(o for o in origins if o is not None) if multi else None
    total = 0
    span_first: list[int] = []
    span_end: list[int] = []
    with gzip.open(out_path, "wb", compresslevel=compresslevel) as raw_out:
        out = io.TextIOWrapper(raw_out, encoding="utf-8", write_through=True)
        out.write('{"displayTimeUnit":"ns","metadata":{"highres-ticks":true},"traceEvents":[')
        sep = ""
        for h, source in enumerate(sources):
            xs = _open_source(source)
            host = _host_label(source, h)
            idx = trace_index(xs)
            base = idx.origin_ps if origin is None else origin
            offset = h * HOST_PID_STRIDE
            for proc in idx.processes:
                name = f"{host} {proc['name']}" if multi else proc["name"]
                pid = proc["pid"] + offset
                out.write(f'{sep}{{"ph":"M","name":"process_name","pid":{pid},"args":{{"name":{json.dumps(name)}}}}}')
                sep = ","
                out.write(
                    f',{{"ph":"M","name":"process_sort_index","pid":{pid},'
                    f'"args":{{"sort_index":{proc["sort_index"] + offset}}}}}'
                )
            for th in idx.threads:
                pid = th["pid"] + offset
                out.write(
                    f',{{"ph":"M","name":"thread_name","pid":{pid},"tid":{th["tid"]},'
                    f'"args":{{"name":{json.dumps(th["name"])}}}}}'
                )
                out.write(
                    f',{{"ph":"M","name":"thread_sort_index","pid":{pid},"tid":{th["tid"]},'
                    f'"args":{{"sort_index":{th["sort_index"]}}}}}'
                )
            if idx.num_events:
                span_first.append(idx.first_ps + idx.origin_ps - base)
                span_end.append(idx.end_ps + idx.origin_ps - base)
            # Every event, in (line, start) order, rendered in C chunk by chunk.
            rows_all = np.empty(idx.num_events, dtype=np.int64)
            rows_all[idx.line_rank.astype(np.int64)] = idx.event
            raw = [n.encode("utf-8") for n in xs.tables.event_metadata.name] + [b""]  # last: unknown id
            name_end = np.cumsum([len(r) for r in raw], dtype=np.int64)
            name_start = name_end - np.array([len(r) for r in raw], dtype=np.int64)
            names_blob = np.frombuffer(b"".join(raw) or b"\0", dtype=np.uint8)
            for lo in range(0, len(rows_all), EXPORT_CHUNK):
                rows = rows_all[lo : lo + EXPORT_CHUNK]
                row_of = idx.line_row[xs.line_of_event[rows]]
                md = xs.event_metadata_row[rows].astype(np.int64)
                args_json, offs = render_args(xs, rows)
                text = render_complete_events(
                    idx.row_pid[row_of].astype(np.int64) + offset,
                    idx.row_tid[row_of].astype(np.int64),
                    xs.start_ps[rows] - base,
                    xs.duration_ps[rows].astype(np.int64),
                    np.where(md < 0, len(raw) - 1, md),
                    names_blob,
                    name_start,
                    name_end,
                    np.frombuffer(args_json or b"\0", dtype=np.uint8),
                    offs[:-1],
                    offs[1:],
                    bool(sep),
                )
                sep = ","
                out.flush()
                raw_out.write(text)
                total += len(rows)
        full = [min(span_first, default=0) / 1e9, max(span_end, default=0) / 1e9]
        out.write(
            f'],"fullTimespan":[{full[0]!r},{full[1]!r}],"returnedEventsSize":{total},'
            f'"filteredByVisibility":false,"droppedEvents":{{"count":0,"reason":"none"}}}}'
        )
    return total


__all__ = [
    "DEFAULT_RESOLUTION",
    "HOST_PID_STRIDE",
    "TRACE_VIEWER",
    "TraceIndex",
    "TraceViewerTool",
    "WindowSelection",
    "build_trace_index",
    "event_args",
    "export_trace_json_gz",
    "select_window",
    "trace_index",
]
