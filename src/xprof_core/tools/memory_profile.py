"""XProf's ``memory_profile`` tool: allocator activity over time, the peak and what was live at it.

Data: the ``MemoryAllocation`` / ``MemoryDeallocation`` events that the TSL
BFC allocator (TensorFlow, JAX, PyTorch/XLA) records on the ``/host:CPU``
plane. Each event carries the allocator's state *after* the event
(``bytes_allocated`` heap, ``bytes_reserved`` stack, ``bytes_available``
free, ``fragmentation``, ``peak_bytes_in_use``) and what changed
(``requested_bytes``, ``allocation_bytes``, ``addr``, ``tf_op``,
``region_type``, ``data_type``, ``shape``, ``group_id``). An event belongs to
the memory named by its ``allocator_name`` (else ``index_on_host``, else
``device_ordinal``), one series per memory.

XProf's rules (``xplane_to_memory_profile.cc``), which this module follows:

* **Peak.** Over the events in file order (line by line), the last event
  whose heap + stack is at least the running maximum. Its heap + stack is the
  peak usage, its time the peak time, heap + stack + free the capacity.
  ``peak_bytes_usage_lifetime`` is the allocator's own ``peak_bytes_in_use``
  on the memory's last event in file order.
* **Steps.** An event's step is its ``group_id``. JAX records none; XProf's
  event grouping gives an event the group of the step root (a host event with
  the ``_r`` stat, numbered in start order) whose span holds it on its
  thread, and so do we. Events without a step take the previous event's step
  plus one (the first ones: 0), in time order.
* **Deallocations** take the op, region, data type and shape of the
  allocation at the same address (the first unmatched one).
* **Breakdown at the peak.** Replaying the events of the peak's step up to the
  peak time: allocations of that step still live at the peak, sorted by
  allocation size, requested size, op, region, data type and shape, identical
  rows merged with a count. What the step's activity does not explain becomes
  "unused preallocated device memory" (XProf's name for memory allocated
  before the step), and reserved stack becomes "stack".
* **Timeline.** At most ``resolution`` points (default 1000): when there are
  more events, a max filter over equal-width boxes of consecutive events keeps
  the event of largest heap + stack in each box (XProf's sampling).

Beyond XProf: ``start_ms`` / ``end_ms`` select a window of the timeline
(thinned within the window); every point also carries the in-use bytes per
region type, reconstructed from the allocation sizes (what was allocated
before the profile started is its own region), so the chart can stack them;
and ``live_at_peak`` lists every allocation live at the peak, from every
step, with the remainder attributed to memory allocated before the profile.

Times are ps relative to the profile origin (:attr:`XSpace.origin_ps`);
``xprof_time_ps`` keeps XProf's figure (the event's offset on its line).
Events sort by absolute time, ties in file order. XProf sorts them by their
offset on their own line, which reorders events of different threads when the
lines' timestamps differ (JAX host threads start microseconds apart);
``event_order=xprof`` reproduces that order, to cross-check with XProf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.errors import ParamError
from xprof_core.model.planes import HOST_PLANE, PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.tools.base import Params, Partial, ToolParam, param_float, param_int
from xprof_core.tools.datatable import datatable
from xprof_core.tools.registry import register

VERSION = 1
DEFAULT_RESOLUTION = 1000  # XProf's max_num_snapshots
MAX_RESOLUTION = 100_000
PS_PER_MS = 1e9

ALLOCATION, DEALLOCATION = "MemoryAllocation", "MemoryDeallocation"
UNMAPPED_OP = "unused preallocated device memory"  # XProf's label
BEFORE_PROFILE = "allocated before the profile"

# TensorFlow's DataType enum (tensorflow_datatypes.proto) as XProf's DataTypeString prints it.
# fmt: off
_TF_DTYPES = (
    "INVALID", "float", "double", "int32", "uint8", "int16", "int8", "string", "complex64", "int64", "bool",
    "qint8", "quint8", "qint32", "bfloat16", "qint16", "quint16", "uint16", "complex128", "half", "resource",
    "variant", "uint32", "uint64", "float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz",
    "float8_e5m2fnuz", "int4", "uint4",
)
# fmt: on
_REF_OFFSET = 100


def tf_dtype_name(code: int) -> str:
    """XProf's ``DataTypeString`` of a TensorFlow DataType enum value."""
    if code > _REF_OFFSET and 0 < code - _REF_OFFSET < len(_TF_DTYPES):
        return f"{_TF_DTYPES[code - _REF_OFFSET]}_ref"
    if 0 <= code < len(_TF_DTYPES):
        return _TF_DTYPES[code]
    return f"unknown dtype enum ({code})"


# ---- the events ------------------------------------------------------------------------------


@dataclass
class MemoryEvents:
    """The allocator events of one host, columns in file order (line by line)."""

    rows: np.ndarray  # event rows
    is_alloc: np.ndarray  # bool
    time_ps: np.ndarray  # absolute start
    line_offset_ps: np.ndarray  # start relative to the event's line (XProf's OffsetPs)
    memory: np.ndarray  # int64 code into memory_ids
    memory_ids: list[str]
    heap: np.ndarray  # bytes_allocated
    stack: np.ndarray  # bytes_reserved
    free: np.ndarray  # bytes_available
    fragmentation: np.ndarray  # float64
    peak_in_use: np.ndarray  # peak_bytes_in_use
    requested: np.ndarray
    allocation: np.ndarray
    address: np.ndarray  # uint64 as int64
    step: np.ndarray  # group id, -1 when unknown (before the fix-up)
    tf_op: np.ndarray  # object str
    region: np.ndarray  # object str
    dtype: np.ndarray  # object str (XProf's DataTypeString)
    shape: np.ndarray  # object str


def _int_stat(xs: XSpace, rows: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    col = xs.stat(rows, name)
    if col.values.dtype == object:
        return np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=bool)
    values = col.values
    if values.dtype == np.uint64:
        values = values.view(np.int64)
    elif values.dtype == np.float64:
        values = np.where(col.present, values, 0).astype(np.int64)
    return np.where(col.present, values, 0).astype(np.int64), col.present


def _str_stat(xs: XSpace, rows: np.ndarray, name: str) -> np.ndarray:
    col = xs.stat(rows, name)
    out = np.full(len(rows), "", dtype=object)
    if col.values.dtype == object:
        ok = col.present & np.array([isinstance(v, str) for v in col.values], dtype=bool)
        out[ok] = col.values[ok]
    return out


def _step_roots(xs: XSpace, plane_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step roots of the host plane: (line, start, end) of events with the ``_r`` stat, in start order."""
    plane = xs.planes[plane_index]
    if not plane.stat_ids("_r").size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    rows = np.arange(plane.event_begin, plane.event_end, dtype=np.int64)
    rows = rows[xs.is_timed[rows]]
    _, present = _int_stat(xs, rows, "_r")
    roots = rows[present]
    start = xs.start_ps[roots]
    order = np.lexsort((roots, start))
    roots = roots[order]
    return xs.line_of_event[roots].astype(np.int64), xs.start_ps[roots], xs.start_ps[roots] + xs.duration_ps[roots]


def _steps_by_nesting(xs: XSpace, plane_index: int, rows: np.ndarray) -> np.ndarray:
    """Group id of each memory event from the step root holding it on its line, -1 where none."""
    out = np.full(len(rows), -1, dtype=np.int64)
    root_line, root_start, root_end = _step_roots(xs, plane_index)
    if not len(root_line):
        return out
    lines = xs.line_of_event[rows].astype(np.int64)
    times = xs.start_ps[rows]
    group = np.arange(len(root_line), dtype=np.int64)
    for line in np.unique(lines).tolist():
        sel = np.flatnonzero(lines == line)
        on_line = np.flatnonzero(root_line == line)
        if not len(on_line):
            continue
        # Roots of one line do not overlap (one step at a time): the last root starting at or
        # before the event holds it when the event lies within its span.
        starts = root_start[on_line]
        pos = np.searchsorted(starts, times[sel], side="right") - 1
        ok = pos >= 0
        hit = on_line[np.where(ok, pos, 0)]
        inside = ok & (times[sel] <= root_end[hit])
        out[sel[inside]] = group[hit[inside]]
    return out


def memory_events(xs: XSpace) -> MemoryEvents | None:
    """The allocator events of the ``/host:CPU`` plane, or None when it has none."""
    planes = [p for p in xs.planes if p.name == HOST_PLANE]
    if not planes:
        return None
    plane = planes[0]
    rows = np.arange(plane.event_begin, plane.event_end, dtype=np.int64)
    if not len(rows):
        return None
    names = xs.event_names(rows)
    is_alloc = names == ALLOCATION
    keep = (is_alloc | (names == DEALLOCATION)) & xs.is_timed[rows]
    rows, is_alloc = rows[keep], is_alloc[keep]
    if not len(rows):
        return None

    allocator = _str_stat(xs, rows, "allocator_name")
    index_on_host, has_index = _int_stat(xs, rows, "index_on_host")
    ordinal, has_ordinal = _int_stat(xs, rows, "device_ordinal")
    memory_name = np.where(
        allocator != "",
        allocator,
        np.where(has_index, index_on_host.astype(str), np.where(has_ordinal, ordinal.astype(str), "")),
    ).astype(object)
    memory_ids = sorted(set(memory_name.tolist()))
    memory = np.searchsorted(np.array(memory_ids, dtype=object), memory_name).astype(np.int64)

    group, has_group = _int_stat(xs, rows, "group_id")
    step = np.where(has_group, group, -1)
    if not has_group.all():
        nested = _steps_by_nesting(xs, plane.index, rows)
        step = np.where(has_group, step, nested)

    dtype_codes, _ = _int_stat(xs, rows, "data_type")
    codes, inverse = np.unique(dtype_codes, return_inverse=True)
    dtype = np.array([tf_dtype_name(int(c)) for c in codes], dtype=object)[inverse.reshape(-1)]
    frag = xs.stat(rows, "fragmentation")
    fragmentation = (
        np.zeros(len(rows)) if frag.values.dtype == object else np.where(frag.present, frag.values, 0.0)
    ).astype(np.float64)
    line_ts_ps = xs.tables.lines.timestamp_ns[xs.line_of_event[rows]].astype(np.int64) * 1000
    return MemoryEvents(
        rows=rows,
        is_alloc=is_alloc,
        time_ps=xs.start_ps[rows].astype(np.int64),
        line_offset_ps=xs.start_ps[rows].astype(np.int64) - line_ts_ps,
        memory=memory,
        memory_ids=memory_ids,
        heap=_int_stat(xs, rows, "bytes_allocated")[0],
        stack=_int_stat(xs, rows, "bytes_reserved")[0],
        free=_int_stat(xs, rows, "bytes_available")[0],
        fragmentation=fragmentation,
        peak_in_use=_int_stat(xs, rows, "peak_bytes_in_use")[0],
        requested=_int_stat(xs, rows, "requested_bytes")[0],
        allocation=_int_stat(xs, rows, "allocation_bytes")[0],
        address=_int_stat(xs, rows, "addr")[0],
        step=step,
        tf_op=_str_stat(xs, rows, "tf_op"),
        region=_str_stat(xs, rows, "region_type"),
        dtype=dtype,
        shape=_str_stat(xs, rows, "shape"),
    )


# ---- one memory (allocator) -------------------------------------------------------------------


@dataclass
class _Series:
    """One memory's events, sorted by time (ties in file order)."""

    time_ps: np.ndarray
    xprof_time_ps: np.ndarray
    is_alloc: np.ndarray
    heap: np.ndarray
    stack: np.ndarray
    free: np.ndarray
    fragmentation: np.ndarray
    requested: np.ndarray
    allocation: np.ndarray
    address: np.ndarray
    step: np.ndarray
    tf_op: np.ndarray
    region: np.ndarray
    dtype: np.ndarray
    shape: np.ndarray
    peak: int  # index (in time order) of the peak event


def _series(ev: MemoryEvents, code: int, xprof_order: bool = False) -> _Series:
    sel = np.flatnonzero(ev.memory == code)  # file order
    usage = ev.heap[sel] + ev.stack[sel]
    # XProf's peak: the last event in file order whose usage reaches the running maximum.
    running = np.maximum.accumulate(usage)
    peak_file = int(np.flatnonzero(usage >= running)[-1])
    order = np.argsort((ev.line_offset_ps if xprof_order else ev.time_ps)[sel], kind="stable")
    idx = sel[order]
    peak = int(np.flatnonzero(order == peak_file)[0])
    step = ev.step[idx].copy()
    # Events without a step take the last valid step + 1 (XProf's UpdateStepId).
    last = -1
    for i, s in enumerate(step.tolist()):
        if s == -1:
            step[i] = last + 1
        else:
            last = s
    s = _Series(
        time_ps=ev.time_ps[idx],
        xprof_time_ps=ev.line_offset_ps[idx],
        is_alloc=ev.is_alloc[idx],
        heap=ev.heap[idx],
        stack=ev.stack[idx],
        free=ev.free[idx],
        fragmentation=ev.fragmentation[idx],
        requested=ev.requested[idx],
        allocation=ev.allocation[idx],
        address=ev.address[idx],
        step=step,
        tf_op=ev.tf_op[idx].copy(),
        region=ev.region[idx].copy(),
        dtype=ev.dtype[idx].copy(),
        shape=ev.shape[idx].copy(),
        peak=peak,
    )
    _fill_deallocations(s)
    return s


def _fill_deallocations(s: _Series) -> None:
    """Deallocations take the metadata of the first unmatched allocation at their address (XProf's rule)."""
    open_alloc: dict[int, int] = {}
    for i, (alloc, addr) in enumerate(zip(s.is_alloc.tolist(), s.address.tolist(), strict=True)):
        if alloc:
            open_alloc.setdefault(addr, i)
        else:
            j = open_alloc.pop(addr, None)
            if j is not None:
                s.tf_op[i], s.region[i], s.dtype[i], s.shape[i] = s.tf_op[j], s.region[j], s.dtype[j], s.shape[j]


def _peak_step(s: _Series) -> int:
    """XProf's step of the peak: the step of the last event (in time order) whose usage equals the peak."""
    usage = s.heap + s.stack
    hits = np.flatnonzero(usage == usage[s.peak])
    return int(s.step[hits[-1]])


_ROW_KEY = ("allocation", "requested", "tf_op", "region", "dtype", "shape")


def _merge_rows(items: list[tuple[int, int, str, str, str, str, int]]) -> list[list[Any]]:
    """Sort (allocation, requested, op, region, dtype, shape, step) rows XProf's way and merge identical ones."""
    items.sort(key=lambda r: (-r[0], -r[1], r[2], r[3], r[4], r[5]))
    out: list[list[Any]] = []
    for item in items:
        if out and tuple(out[-1][:6]) == item[:6]:
            out[-1][6] += 1
        else:
            out.append([*item[:6], 1, item[6]])
    return out


def _breakdown(s: _Series, peak_step: int, xprof_order: bool = False) -> tuple[list[list[Any]], int]:
    """XProf's active allocations at the peak (rows with counts) and the unmapped bytes."""
    times = s.xprof_time_ps if xprof_order else s.time_ps
    peak_time = int(times[s.peak])
    unmapped = int(s.heap[s.peak])
    unmapped_dealloc = 0
    active: dict[int, int] = {}
    for i in range(len(times)):
        if int(times[i]) > peak_time:
            break
        if int(s.step[i]) != peak_step:
            continue
        addr = int(s.address[i])
        size = int(s.allocation[i])
        if s.is_alloc[i]:
            active[addr] = i
            unmapped -= size
        else:
            if active.pop(addr, None) is None:
                unmapped_dealloc += size
            unmapped += size
    unmapped -= unmapped_dealloc
    items = [
        (
            int(s.allocation[i]),
            int(s.requested[i]),
            str(s.tf_op[i]),
            str(s.region[i]),
            str(s.dtype[i]),
            str(s.shape[i]),
            peak_step,
        )
        for i in active.values()
    ]
    if unmapped > 0:
        items.append((unmapped, unmapped, UNMAPPED_OP, "persist/dynamic", "INVALID", "unknown", peak_step))
    stack = int(s.stack[s.peak])
    if stack > 0:
        items.append((stack, stack, "stack", "stack", "INVALID", "unknown", peak_step))
    return _merge_rows(items), unmapped


def _live_at_peak(s: _Series) -> list[list[Any]]:
    """Every allocation live at the peak event (all steps), the rest as memory allocated before the profile."""
    live: dict[int, int] = {}
    for i in range(s.peak + 1):
        addr = int(s.address[i])
        if s.is_alloc[i]:
            live.setdefault(addr, i)
        else:
            live.pop(addr, None)
    items = [
        (
            int(s.allocation[i]),
            int(s.requested[i]),
            str(s.tf_op[i]),
            str(s.region[i]),
            str(s.dtype[i]),
            str(s.shape[i]),
            int(s.step[i]),
        )
        for i in live.values()
    ]
    rest = int(s.heap[s.peak]) - sum(it[0] for it in items)
    if rest > 0:
        items.append((rest, rest, BEFORE_PROFILE, "", "", "", -1))
    stack = int(s.stack[s.peak])
    if stack > 0:
        items.append((stack, stack, "stack", "stack", "", "", -1))
    return _merge_rows(items)


def _region_usage(s: _Series) -> tuple[list[str], np.ndarray]:
    """In-use heap bytes per region after each event, (region names, int64 matrix events x regions).

    Column 0 is what was allocated before the first event (the heap before it,
    from its own size change); allocations add and deallocations remove their
    ``allocation_bytes`` under the region of the allocation they free.
    """
    regions = [BEFORE_PROFILE] + sorted({r or "unknown" for r in s.region.tolist()})
    col = {r: i for i, r in enumerate(regions)}
    n = len(s.time_ps)
    delta = np.zeros((n, len(regions)), dtype=np.int64)
    if n:
        first = int(s.allocation[0]) if s.is_alloc[0] else -int(s.allocation[0])
        delta[0, 0] = int(s.heap[0]) - first
    open_alloc: dict[int, int] = {}
    for i in range(n):
        size = int(s.allocation[i])
        addr = int(s.address[i])
        if s.is_alloc[i]:
            open_alloc.setdefault(addr, i)
            delta[i, col[str(s.region[i]) or "unknown"]] += size
        else:
            j = open_alloc.pop(addr, None)
            delta[i, col[str(s.region[j]) or "unknown"] if j is not None else 0] -= size
    return regions, np.cumsum(delta, axis=0)


def max_box_sample(usage: np.ndarray, limit: int) -> np.ndarray:
    """Indices kept when thinning to ``limit`` points: XProf's max box filter over consecutive events.

    With more than ``limit`` events, ``count1`` boxes of ``width`` events and
    then ``count2`` boxes of ``width + 1`` each keep their (first) largest.
    """
    n = len(usage)
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    width = n // limit
    count1 = limit * (width + 1) - n
    count2 = limit - count1
    first = usage[: width * count1].reshape(count1, width) if count1 else np.zeros((0, width), usage.dtype)
    second = usage[width * count1 :].reshape(count2, width + 1) if count2 else np.zeros((0, width + 1), usage.dtype)
    keep1 = np.arange(count1, dtype=np.int64) * width + first.argmax(axis=1)
    keep2 = width * count1 + np.arange(count2, dtype=np.int64) * (width + 1) + second.argmax(axis=1)
    return np.concatenate([keep1, keep2])


def _timeline(s: _Series, origin: int, params: Params) -> dict[str, Any]:
    resolution = param_int(params, "resolution", DEFAULT_RESOLUTION, lo=1, hi=MAX_RESOLUTION)
    start_ms = param_float(params, "start_ms", None)
    end_ms = param_float(params, "end_ms", None)
    t = s.time_ps - origin
    window = np.ones(len(t), dtype=bool)
    if start_ms is not None:
        window &= t >= round(start_ms * PS_PER_MS)
    if end_ms is not None:
        window &= t <= round(end_ms * PS_PER_MS)
    inside = np.flatnonzero(window)
    keep = inside[max_box_sample((s.heap + s.stack)[inside], resolution)]
    regions, by_region = _region_usage(s)
    return {
        "num_events": int(len(t)),
        "num_in_window": int(len(inside)),
        "time_ps": t[keep],
        "xprof_time_ps": s.xprof_time_ps[keep],
        "heap_bytes": s.heap[keep],
        "stack_bytes": s.stack[keep],
        "free_bytes": s.free[keep],
        "fragmentation": s.fragmentation[keep],
        "is_allocation": s.is_alloc[keep],
        "requested_bytes": s.requested[keep],
        "allocation_bytes": s.allocation[keep],
        "step": s.step[keep],
        "tf_op": [str(x) for x in s.tf_op[keep]],
        "regions": regions,
        "region_bytes": by_region[keep],
    }


def _memory_partial(ev: MemoryEvents, code: int, origin: int, params: Params) -> dict[str, Any]:
    xprof_order = _event_order(params) == "xprof"
    s = _series(ev, code, xprof_order)
    p = s.peak
    peak_step = _peak_step(s)
    breakdown, unmapped = _breakdown(s, peak_step, xprof_order)
    last_in_file = int(np.flatnonzero(ev.memory == code)[-1])
    return {
        "memory_id": ev.memory_ids[code],
        "summary": {
            "num_events": int(len(s.time_ps)),
            "num_allocations": int(s.is_alloc.sum()),
            "num_deallocations": int((~s.is_alloc).sum()),
            "peak_bytes": int(s.heap[p] + s.stack[p]),
            "peak_heap_bytes": int(s.heap[p]),
            "peak_stack_bytes": int(s.stack[p]),
            "peak_free_bytes": int(s.free[p]),
            "peak_fragmentation": float(s.fragmentation[p]),
            "peak_time_ps": int(s.time_ps[p] - origin),
            "xprof_peak_time_ps": int(s.xprof_time_ps[p]),
            "peak_step": peak_step,
            "memory_capacity_bytes": int(s.heap[p] + s.stack[p] + s.free[p]),
            "peak_bytes_usage_lifetime": int(ev.peak_in_use[last_in_file]),
            "unmapped_bytes_at_peak": max(unmapped, 0),
            "first_time_ps": int(s.time_ps[0] - origin),
            "last_time_ps": int(s.time_ps[-1] - origin),
        },
        "breakdown": breakdown,
        "live_at_peak": _live_at_peak(s),
        "timeline": _timeline(s, origin, params),
    }


def _event_order(params: Params) -> str:
    order = str(params.get("event_order") or "time")
    if order not in ("time", "xprof"):
        raise ParamError(f"parameter 'event_order' must be 'time' or 'xprof', got {order!r}")
    return order


def _hlo_modules(xs: XSpace) -> list[dict[str, Any]]:
    """XLA module runs on TPU planes (XProf's ``hloModules``): name, plane, start and end (ps from the origin)."""
    out: list[dict[str, Any]] = []
    for plane in xs.planes_of_kind(PlaneKind.DEVICE):
        if plane.device_type != "TPU":
            continue
        for line in plane.lines:
            if line.name != "XLA Modules" or not len(line):
                continue
            rows = line.rows
            start = xs.start_ps[rows] - xs.origin_ps
            names = xs.event_names(rows)
            for name, s0, d in zip(names.tolist(), start.tolist(), xs.duration_ps[rows].tolist(), strict=True):
                out.append(
                    {"name": name, "plane": plane.name.removeprefix("/device:"), "start_ps": s0, "end_ps": s0 + d}
                )
    return out


def _no_events_reason(xs: XSpace) -> str:
    if not any(p.name == HOST_PLANE for p in xs.planes):
        return "the profile has no /host:CPU plane, where allocators record their activity"
    return (
        "no MemoryAllocation / MemoryDeallocation events on /host:CPU: the allocator did not record its "
        "activity (TensorFlow and JAX record it for BFC allocators when the host tracer level is 2 or more)"
    )


def map_memory_profile(xs: XSpace, params: Params) -> Partial:
    """One host's memories: summary, breakdown at the peak, live allocations and thinned timeline."""
    ev = memory_events(xs)
    base: Partial = {"version": VERSION, "hlo_modules": _hlo_modules(xs), "origin_ps": int(xs.origin_ps)}
    if ev is None:
        return {**base, "reason": _no_events_reason(xs), "memories": []}
    origin = int(xs.origin_ps)
    memories = [_memory_partial(ev, code, origin, params) for code in range(len(ev.memory_ids))]
    return {**base, "reason": None, "memories": memories}


# ---- reduce -----------------------------------------------------------------------------------

SUMMARY_COLUMNS = (
    ("memory_id", "Memory", "string"),
    ("host", "Host", "string"),
    ("peak_bytes", "Peak usage (bytes)", "number"),
    ("peak_heap_bytes", "Heap at peak (bytes)", "number"),
    ("peak_stack_bytes", "Stack at peak (bytes)", "number"),
    ("peak_time_ms", "Peak time (ms)", "number"),
    ("peak_step", "Peak step", "number"),
    ("peak_fragmentation", "Fragmentation at peak", "number"),
    ("memory_capacity_bytes", "Capacity (bytes)", "number"),
    ("peak_bytes_usage_lifetime", "Allocator lifetime peak (bytes)", "number"),
    ("num_allocations", "Allocations", "number"),
    ("num_deallocations", "Deallocations", "number"),
)
ALLOCATION_COLUMNS = (
    ("op_name", "Op name", "string"),
    ("allocation_bytes", "Allocation size (bytes)", "number"),
    ("requested_bytes", "Requested size (bytes)", "number"),
    ("occurrences", "Occurrences", "number"),
    ("region_type", "Region type", "string"),
    ("data_type", "Data type", "string"),
    ("shape", "Shape", "string"),
    ("step", "Step", "number"),
)


def _allocation_table(rows: list[list[Any]]) -> dict[str, Any]:
    # Stored as (allocation, requested, op, region, dtype, shape, occurrences, step).
    return datatable(ALLOCATION_COLUMNS, [[r[2], r[0], r[1], r[6], r[3], r[4], r[5], r[7]] for r in rows])


def reduce_memory_profile(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """Memories of every selected host, one of them in detail.

    Parameters: ``memory_id`` (default: the memory with the largest peak;
    ``host:memory`` when several hosts are selected), ``resolution`` (timeline
    points, default 1000), ``start_ms`` / ``end_ms`` (timeline window, ms from
    the profile origin).
    """
    for p in partials:
        if p.get("version") != VERSION:
            raise ValueError(f"memory_profile partial version {p.get('version')!r}, expected {VERSION}")
    multi = len(partials) > 1
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for p in partials:
        host = str(p.get("host", ""))
        for m in p["memories"]:
            key = f"{host}:{m['memory_id']}" if multi else str(m["memory_id"])
            found[key] = (host, m)
    hlo_modules = [dict(m, host=p.get("host")) for p in partials for m in p.get("hlo_modules", [])]
    base = {"version": VERSION, "num_hosts": len(partials), "hosts": [p.get("host") for p in partials]}
    if not found:
        reasons = list(dict.fromkeys(str(p["reason"]) for p in partials if p.get("reason")))
        return {
            **base,
            "reason": "; ".join(reasons) if reasons else "no hosts selected",
            "memory_ids": [],
            "memory_id": None,
            "summaries": datatable(SUMMARY_COLUMNS, []),
            "hlo_modules": hlo_modules,
        }
    ids = sorted(found)
    wanted = params.get("memory_id") or None
    if wanted is None:
        wanted = max(ids, key=lambda k: (found[k][1]["summary"]["peak_bytes"], k))
    elif wanted not in found:
        raise ParamError(f"unknown memory_id {wanted!r}; memories: {', '.join(ids)}")
    host, chosen = found[str(wanted)]
    summaries = []
    for key in ids:
        h, m = found[key]
        s = m["summary"]
        summaries.append(
            [
                key,
                h,
                s["peak_bytes"],
                s["peak_heap_bytes"],
                s["peak_stack_bytes"],
                s["peak_time_ps"] / PS_PER_MS,
                s["peak_step"],
                s["peak_fragmentation"],
                s["memory_capacity_bytes"],
                s["peak_bytes_usage_lifetime"],
                s["num_allocations"],
                s["num_deallocations"],
            ]
        )
    timeline = dict(chosen["timeline"])
    return {
        **base,
        "reason": None,
        "memory_ids": ids,
        "memory_id": wanted,
        "host": host,
        "summary": chosen["summary"],
        "summaries": datatable(SUMMARY_COLUMNS, summaries),
        "active_allocations": _allocation_table(chosen["breakdown"]),
        "live_at_peak": _allocation_table(chosen["live_at_peak"]),
        "timeline": timeline,
        "hlo_modules": hlo_modules,
    }


@dataclass(frozen=True)
class MemoryProfileTool:
    """The memory_profile tool object the registry hands out."""

    name: str = "memory_profile"
    version: int = VERSION
    description: str = "allocator memory over time, the peak, and the allocations live at the peak"
    needs: str = "xspace"
    params: tuple[ToolParam, ...] = (
        ToolParam("memory_id", "str", None, "the memory (allocator) to detail; default: the largest peak"),
        ToolParam("start_ms", "float", None, "timeline window start, ms from the profile start"),
        ToolParam("end_ms", "float", None, "timeline window end, ms from the profile start"),
        ToolParam("resolution", "int", DEFAULT_RESOLUTION, "timeline points", lo=1, hi=MAX_RESOLUTION),
        ToolParam("event_order", "str", "time", "'time' or 'xprof' (XProf's order: offset on each line)"),
    )

    def map(self, xs: XSpace, params: Params) -> Partial:
        return map_memory_profile(xs, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return reduce_memory_profile(partials, params)


MEMORY_PROFILE = register(MemoryProfileTool())
TOOLS = {"memory_profile": MEMORY_PROFILE}

__all__ = [
    "MEMORY_PROFILE",
    "TOOLS",
    "MemoryEvents",
    "map_memory_profile",
    "max_box_sample",
    "memory_events",
    "reduce_memory_profile",
    "tf_dtype_name",
]
