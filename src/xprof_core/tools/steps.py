"""Steps: find the training steps of one host, join device work to them, split their time.

Shared by overview_page and input_pipeline_analyzer. Everything is vectorised
over events; Python loops run per step category or per line, never per event.

Step markers, in the order they are tried:

1. a ``Steps`` line on a device plane (TensorFlow GPU profiles),
2. host events that carry ``step_num`` (JAX ``StepTraceAnnotation``),
3. host events that carry ``step_name``.

Device work joins a step through the launch that issued it: a device event's
``correlation_id`` names a host launch event (``cuLaunchKernel``,
``cuGraphLaunch``, ...) and the step whose host span holds that launch owns
the kernel. Without launch records, a device event belongs to the step during
whose host window it started. Step time is the host span when it contains the
device span, else the device span (XProf's rule); with no device work (CPU
profiles) it is the host span.

Within a step, time is split into event types. Higher-priority types win
overlaps (priority order of :data:`CATEGORIES`), and time covered by nothing
is ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xprof_core._fast.intervals import priority_union, step_breakdown
from xprof_core.model.planes import ON_DEVICE
from xprof_core.model.xspace import XSpace
from xprof_core.tools.event_rows import host_lines, host_rows

# Event types in priority order (earlier wins an overlap), with what they mean.
CATEGORIES: dict[str, str] = {
    "device_compute": "kernels or XLA ops running on the device",
    "device_collectives": "collective communication on the device (all-reduce, all-gather, NCCL, ...)",
    "device_to_device": "device-to-device copies",
    "host_to_device": "host-to-device copies",
    "device_to_host": "device-to-host copies",
    "host_compile": "compiling on the host",
    "host_wait_input": "the host waiting for input data",
    "host_compute": "other host work",
}
UNKNOWN = "unknown"

_COLLECTIVE = re.compile(
    r"nccl|rccl|all-?reduce|all-?gather|reduce-?scatter|all-?to-?all|collective|"
    r"send|recv|ncclDevKernel",
    re.IGNORECASE,
)
INPUT_EVENT = re.compile(
    r"Iterator::|GetNext|IteratorGetNext|tf\.data|InfeedEnqueue|input_pipeline|DataLoader|"
    r"prefetch|next_batch",
    re.IGNORECASE,
)
_COMPILE = re.compile(r"compile|Compilation|autotun", re.IGNORECASE)
_HOST_TO_DEVICE = re.compile(
    r"MemcpyH2D|HostToDevice|H2D|TransferToDevice|BufferFromHostBuffer|DevicePut", re.IGNORECASE
)
_DEVICE_TO_HOST = re.compile(r"MemcpyD2H|DeviceToHost|D2H|TransferFromDevice|ToLiteral", re.IGNORECASE)


@dataclass
class StepTable:
    """The steps of one host, as parallel int64 columns (times in ps)."""

    source: str  # "steps_line", "step_num", "step_name" or "none"
    name: str  # the name of the step events ("train", ...), "" when none
    step_num: np.ndarray
    start_ps: np.ndarray  # step window start (min of host and device start)
    end_ps: np.ndarray
    host_start_ps: np.ndarray
    host_end_ps: np.ndarray
    device_start_ps: np.ndarray  # -1 where the step has no device work
    device_end_ps: np.ndarray
    step_time_ps: np.ndarray
    breakdown_ps: dict[str, np.ndarray] = field(default_factory=dict)  # CATEGORIES + UNKNOWN
    reason: str | None = None  # set when the profile has no step markers

    def __len__(self) -> int:
        return len(self.step_num)

    def to_partial(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "name": self.name,
            "reason": self.reason,
            "step_num": self.step_num,
            "start_ps": self.start_ps,
            "end_ps": self.end_ps,
            "host_start_ps": self.host_start_ps,
            "host_end_ps": self.host_end_ps,
            "device_start_ps": self.device_start_ps,
            "device_end_ps": self.device_end_ps,
            "step_time_ps": self.step_time_ps,
        }
        out["breakdown_ps"] = {k: v for k, v in self.breakdown_ps.items()}
        return out

    @classmethod
    def from_partial(cls, p: dict[str, Any]) -> StepTable:
        arr = {
            k: np.asarray(p[k], dtype=np.int64)
            for k in (
                "step_num",
                "start_ps",
                "end_ps",
                "host_start_ps",
                "host_end_ps",
                "device_start_ps",
                "device_end_ps",
                "step_time_ps",
            )
        }
        breakdown = {k: np.asarray(v, dtype=np.int64) for k, v in p["breakdown_ps"].items()}
        return cls(p["source"], p["name"], breakdown_ps=breakdown, reason=p.get("reason"), **arr)


# --- interval arithmetic ---


def union_length_by_group(starts: np.ndarray, ends: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Total length covered by intervals [start, end) in each group (int64 ps per group).

    One global sweep: each group's intervals are shifted into a band of their
    own (relative to the group's earliest start, groups side by side), so a
    running maximum of ends never carries from one group into the next.
    """
    out = np.zeros(n_groups, dtype=np.int64)
    keep = ends > starts
    if not keep.any():
        return out
    s, e, g = starts[keep], ends[keep], group[keep]
    base = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(base, g, s)
    rel_s, rel_e = s - base[g], e - base[g]
    band = int(rel_e.max()) + 1
    s2, e2 = rel_s + g * band, rel_e + g * band
    order = np.argsort(s2, kind="stable")
    s2, e2, g = s2[order], e2[order], g[order]
    run_end = np.maximum.accumulate(e2)
    new_seg = np.ones(len(s2), dtype=bool)
    new_seg[1:] = s2[1:] >= run_end[:-1]
    # A segment ends at the running maximum of its last interval.
    last = np.append(np.flatnonzero(new_seg)[1:] - 1, len(s2) - 1)
    seg_len = run_end[last] - s2[new_seg]
    out += np.bincount(g[new_seg], weights=seg_len, minlength=n_groups).astype(np.int64)
    return out


# --- building a host's step table ---


def device_rows(xs: XSpace) -> np.ndarray:
    """Rows of device activity: ``Stream #`` lines on GPUs, XLA Ops lines on TPUs.

    Every other device line (Steps, TensorFlow Ops, XLA Modules, ...) is derived from these.
    """
    parts = []
    for plane in xs.planes_of_kind(*ON_DEVICE):
        has_streams = any(ln.name.startswith("Stream #") for ln in plane.lines)
        for ln in plane.lines:
            if has_streams and not ln.name.startswith("Stream #"):
                continue
            if not has_streams and ln.name not in ("XLA Ops", "Async XLA Ops"):
                continue
            if len(ln):
                parts.append(ln.rows)
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rows[xs.is_timed[rows]]


def _step_markers(xs: XSpace, host_rows: np.ndarray) -> tuple[str, str, np.ndarray, np.ndarray, np.ndarray]:
    """(source, name, step_num, start_ps, end_ps) of the step markers, sorted by start."""
    # 1. Steps lines on device planes. Each device records the same steps; as
    # XProf does, a step's time is its longest per-device duration.
    parts = [ln.rows for plane in xs.planes_of_kind(*ON_DEVICE) for ln in plane.lines if ln.name == "Steps" and len(ln)]
    if parts:
        rows = np.concatenate(parts)
        names = xs.event_names(rows)
        nums = xs.stat(rows, "step_num")
        group = xs.stat(rows, "group_id")
        by_name = np.array([int(n) if str(n).isdigit() else -1 for n in names], dtype=np.int64)
        step = np.where(nums.present, nums.values, np.where(group.present, group.values, by_name)).astype(np.int64)
        # Longest occurrence of each step: sort by (step, -duration), keep the first of each step.
        order = np.lexsort((-xs.duration_ps[rows], step))
        rows, step = rows[order], step[order]
        first = np.ones(len(step), dtype=bool)
        first[1:] = step[1:] != step[:-1]
        rows, step = rows[first], step[first]
        by_time = np.argsort(xs.start_ps[rows], kind="stable")
        rows, step = rows[by_time], step[by_time]
        return "steps_line", "Steps", step, xs.start_ps[rows], xs.start_ps[rows] + xs.duration_ps[rows]
    # 2./3. Host events carrying step_num (or step_name): the most common such event name.
    for stat_name, source in (("step_num", "step_num"), ("step_name", "step_name")):
        col = xs.stat(host_rows, stat_name, include_metadata=False)
        if not col.present.any():
            continue
        rows = host_rows[col.present]
        names = xs.event_names(rows)
        uniq, counts = np.unique(names.astype(str), return_counts=True)
        name = str(uniq[np.argmax(counts)])
        keep = names == name
        rows = rows[keep]
        if source == "step_num":
            step = np.asarray(col.values[col.present][keep], dtype=np.int64)
        else:
            step = np.arange(len(rows), dtype=np.int64)
        order = np.argsort(xs.start_ps[rows], kind="stable")
        rows, step = rows[order], step[order]
        return source, name, step, xs.start_ps[rows], xs.start_ps[rows] + xs.duration_ps[rows]
    return "none", "", np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)


def _assign_device_to_steps(
    xs: XSpace, device_rows: np.ndarray, host_rows: np.ndarray, host_start: np.ndarray, host_end: np.ndarray
) -> np.ndarray:
    """Step index of each device row (-1: outside every step)."""
    n_steps = len(host_start)
    step_of = np.full(len(device_rows), -1, dtype=np.int64)
    if n_steps == 0 or len(device_rows) == 0:
        return step_of

    def step_at(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(host_start, t, side="right") - 1
        ok = (i >= 0) & (t < host_end[np.maximum(i, 0)])
        return np.where(ok, i, -1)

    # Through the launch: host events with a correlation_id, device events with the same id.
    dev_corr = xs.stat(device_rows, "correlation_id", include_metadata=False)
    host_corr = xs.stat(host_rows, "correlation_id", include_metadata=False)
    if dev_corr.present.any() and host_corr.present.any():
        launch_rows = host_rows[host_corr.present]
        launch_ids = np.asarray(host_corr.values[host_corr.present], dtype=np.int64)
        launch_step = step_at(xs.start_ps[launch_rows])
        order = np.argsort(launch_ids, kind="stable")
        launch_ids, launch_step = launch_ids[order], launch_step[order]
        ids = np.asarray(dev_corr.values, dtype=np.int64)
        pos = np.clip(np.searchsorted(launch_ids, ids), 0, max(len(launch_ids) - 1, 0))
        hit = dev_corr.present & (launch_ids[pos] == ids)
        step_of[hit] = launch_step[pos[hit]]
        rest = ~hit
    else:
        rest = np.ones(len(device_rows), dtype=bool)
    # By start time: the step whose window [start_i, start_{i+1}) holds the device event.
    if rest.any():
        t = xs.start_ps[device_rows[rest]]
        i = np.searchsorted(host_start, t, side="right") - 1
        last_end = host_end.max()
        ok = (i >= 0) & (t < last_end)
        step_of[np.flatnonzero(rest)[ok]] = i[ok]
    return step_of


def _category_per_metadata(xs: XSpace, host: bool) -> np.ndarray:
    """Category index of every event-metadata row (+1 trailing slot for unknown ids), by name.

    Names are classified once per distinct metadata, not once per event.
    """
    cats = list(CATEGORIES)
    names = xs.tables.event_metadata.name
    out = np.full(len(names) + 1, cats.index("host_compute" if host else "device_compute"), dtype=np.int64)
    for i, name in enumerate(names):
        if host:
            if INPUT_EVENT.search(name):
                out[i] = cats.index("host_wait_input")
            elif _COMPILE.search(name):
                out[i] = cats.index("host_compile")
            elif _HOST_TO_DEVICE.search(name):
                out[i] = cats.index("host_to_device")
            elif _DEVICE_TO_HOST.search(name):
                out[i] = cats.index("device_to_host")
        elif re.search(r"MemcpyD2D|MemcpyP2P|DeviceToDevice|MemcpyDToD", name):
            out[i] = cats.index("device_to_device")
        elif re.search(r"MemcpyH2D|HostToDevice|MemcpyHToD", name):
            out[i] = cats.index("host_to_device")
        elif re.search(r"MemcpyD2H|DeviceToHost|MemcpyDToH", name):
            out[i] = cats.index("device_to_host")
        elif _COLLECTIVE.search(name):
            out[i] = cats.index("device_collectives")
    return out


def _classify(xs: XSpace, rows: np.ndarray, host: bool) -> np.ndarray:
    """Category index (into CATEGORIES) of each row, host or device rules."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    per_md = _category_per_metadata(xs, host)
    cat = per_md[xs.event_metadata_row[rows]]  # row -1 (unknown id) takes the trailing default slot
    if not host:
        # Copies named only by their stream (e.g. "Stream #15(MemcpyH2D)") are copies too.
        cats = list(CATEGORIES)
        lines = xs.line_of_event[rows]
        for ln_index in np.unique(lines).tolist():
            ln_name = xs.tables.lines.name[ln_index]
            for pattern, c in (
                ("MemcpyH2D", "host_to_device"),
                ("MemcpyD2H", "device_to_host"),
                ("MemcpyD2D", "device_to_device"),
                ("MemcpyP2P", "device_to_device"),
            ):
                if pattern in ln_name:
                    cat[lines == ln_index] = cats.index(c)
    return cat


def build_step_table(xs: XSpace) -> StepTable:
    """Detect the steps of one host and compute their times and breakdowns."""
    on_host = host_rows(xs)
    on_device = device_rows(xs)
    source, name, step_num, host_start, host_end = _step_markers(xs, on_host)
    reason = None
    if source == "none":
        # No markers: the whole profile is one pseudo-step.
        everything = np.concatenate([on_host, on_device])
        if len(everything) == 0:
            empty = np.empty(0, np.int64)
            return StepTable(
                "none",
                "",
                empty,
                empty,
                empty,
                empty,
                empty,
                empty,
                empty,
                empty,
                {k: empty for k in [*CATEGORIES, UNKNOWN]},
                reason="the profile has no events on host or device planes",
            )
        lo = int(xs.start_ps[everything].min())
        hi = int((xs.start_ps[everything] + xs.duration_ps[everything]).max())
        step_num = np.array([0], np.int64)
        host_start, host_end = np.array([lo], np.int64), np.array([hi], np.int64)
        reason = (
            "no step markers found (no 'Steps' line and no host events with step_num or step_name): "
            "figures cover the whole profile"
        )
    n = len(step_num)
    dev_step = _assign_device_to_steps(xs, on_device, on_host, host_start, host_end)
    d_ok = dev_step >= 0
    d_rows, d_step = on_device[d_ok], dev_step[d_ok]
    dev_start = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    dev_end = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(dev_start, d_step, xs.start_ps[d_rows])
    np.maximum.at(dev_end, d_step, xs.start_ps[d_rows] + xs.duration_ps[d_rows])
    has_dev = dev_end > dev_start
    dev_start = np.where(has_dev, dev_start, -1)
    dev_end = np.where(has_dev, dev_end, -1)
    contains = (~has_dev) | ((host_start <= dev_start) & (dev_end <= host_end))
    start = np.where(contains, host_start, np.minimum(host_start, dev_start))
    end = np.where(contains, host_end, np.maximum(host_end, dev_end))
    step_time = np.where(contains, host_end - host_start, dev_end - dev_start)

    cats = list(CATEGORIES)
    covered_by = _breakdown_in_one_pass(xs, start, end, host_end - host_start, d_rows, d_step)
    if covered_by is None:
        covered_by = _breakdown_general(xs, on_host, start, end, host_start, host_end, d_rows, d_step)
    breakdown: dict[str, np.ndarray] = {}
    covered = np.zeros(n, dtype=np.int64)
    for k, cat in enumerate(cats):
        breakdown[cat] = covered_by[k] - covered
        covered = covered_by[k]
    window = end - start
    breakdown[UNKNOWN] = np.maximum(window - covered, 0)
    return StepTable(
        source, name, step_num, start, end, host_start, host_end, dev_start, dev_end, step_time, breakdown, reason
    )


def _device_intervals(
    xs: XSpace, d_rows: np.ndarray, d_step: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Device events clipped to their step windows, with categories, sorted by (step, start)."""
    s = np.maximum(xs.start_ps[d_rows], start[d_step])
    e = np.minimum(xs.start_ps[d_rows] + xs.duration_ps[d_rows], end[d_step])
    cat = _classify(xs, d_rows, host=False)
    order = np.lexsort((s, d_step))
    return s[order], e[order], cat[order], d_step[order].astype(np.int64)


def _breakdown_in_one_pass(
    xs: XSpace, start: np.ndarray, end: np.ndarray, marker_dur: np.ndarray, d_rows: np.ndarray, d_step: np.ndarray
) -> np.ndarray | None:
    """Cumulative covered time per (category, step) with the merged-pass kernel, or None to fall back.

    The kernel reads host events straight from the columns (no per-event
    temporaries): it needs each host line sorted by start, int32 metadata ids
    and dense metadata ids (a category table per plane).
    """
    if xs.metadata_id.dtype != np.int32:
        return None
    lines = host_lines(xs)
    per_md = _category_per_metadata(xs, host=True)
    tables: list[np.ndarray] = []
    table_at: dict[int, tuple[int, int]] = {}
    line_offset, line_size = [], []
    used = 0
    for ln in lines:
        if ln.plane_index not in table_at:
            lut = ln.plane.metadata_lut
            if lut is None:
                return None
            table = np.where(lut >= 0, per_md[lut], -1).astype(np.int8)
            table_at[ln.plane_index] = (used, len(table))
            tables.append(table)
            used += len(table)
        off, size = table_at[ln.plane_index]
        line_offset.append(off)
        line_size.append(size)
    x_s, x_e, x_cat, x_step = _device_intervals(xs, d_rows, d_step, start, end)
    i64 = np.int64
    return step_breakdown(
        xs.start_ps,
        xs.duration_ps,
        xs.metadata_id,
        xs.is_timed.view(np.uint8),
        np.array([ln.begin for ln in lines], i64),
        np.array([ln.end for ln in lines], i64),
        np.array(line_offset, i64),
        np.array(line_size, i64),
        np.concatenate(tables) if tables else np.zeros(1, np.int8),
        list(CATEGORIES).index("host_compute"),
        start.astype(i64),
        end.astype(i64),
        marker_dur.astype(i64),
        x_s,
        x_e,
        x_cat,
        x_step,
        len(CATEGORIES),
    )


def _breakdown_general(
    xs: XSpace,
    host_rows: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    host_start: np.ndarray,
    host_end: np.ndarray,
    d_rows: np.ndarray,
    d_step: np.ndarray,
) -> np.ndarray:
    """The same figures as the one-pass kernel, with numpy over explicit row arrays (any input)."""
    n = len(start)
    cats = list(CATEGORIES)
    h_step = np.searchsorted(start, xs.start_ps[host_rows], side="right") - 1
    h_ok = (h_step >= 0) & (xs.start_ps[host_rows] < end[np.maximum(h_step, 0)])
    h_rows, h_step = host_rows[h_ok], h_step[h_ok]
    # Host events nested in the step marker itself would count the whole step as compute:
    # leave out the markers and their enclosing ancestors (events as long as the step).
    marker_dur = (host_end - host_start)[h_step]
    h_keep = xs.duration_ps[h_rows] < marker_dur
    h_rows, h_step = h_rows[h_keep], h_step[h_keep]
    ev_rows = np.concatenate([d_rows, h_rows])
    ev_step = np.concatenate([d_step, h_step])
    ev_cat = np.concatenate([_classify(xs, d_rows, host=False), _classify(xs, h_rows, host=True)])
    s = np.maximum(xs.start_ps[ev_rows], start[ev_step])
    e = np.minimum(xs.start_ps[ev_rows] + xs.duration_ps[ev_rows], end[ev_step])
    # Visit events by (step, start): each step's events shifted into a band of
    # their own. Rows come line by line, each line mostly sorted by start, so
    # the stable sort (timsort) mostly merges a few long runs.
    rel = s - start[ev_step]
    band = int(rel.max()) + 1 if len(rel) else 1
    order = np.argsort(ev_step * band + rel, kind="stable")
    return priority_union(s, e, ev_cat, ev_step.astype(np.int64), order, n, len(cats))


# --- multi-host ---


def align_steps(tables: Sequence[StepTable]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Steps present on every host: (step numbers, per-host row index of each).

    The multi-host step rule (docs/multi-host.md): a step is the same step on
    every host when it carries the same step number (``step_num`` of JAX's
    ``StepTraceAnnotation``, the number in a ``Steps`` line), and only the
    steps that every host marked are kept, in step-number order. When no step
    number is common to all hosts but every host has the same count of steps
    (hosts that number from different origins), steps match by position. The
    reference host for those numbers is the one with the shortest total step
    time. Sorting makes this O(total steps x log), not quadratic.

    XProf differs: it matches steps by time overlap with a "chief" host (the
    one whose steps span the least time) and renumbers the kept steps. That
    presumes hosts in lockstep; hosts that drift apart (a slow host falls
    behind) are matched with steps of other numbers there, and steps are lost.
    """
    if not tables:
        return np.empty(0, np.int64), []
    ref = int(np.argmin([int(t.step_time_ps.sum()) for t in tables]))
    common = np.unique(tables[ref].step_num)
    for t in tables:
        common = np.intersect1d(common, t.step_num, assume_unique=False)
    if len(common) == 0 and len({len(t) for t in tables}) == 1 and len(tables[ref]):
        # Offset numbering: align by position.
        by_position = [np.argsort(t.step_num, kind="stable") for t in tables]
        return tables[ref].step_num[by_position[ref]], by_position
    index = []
    for t in tables:
        order = np.argsort(t.step_num, kind="stable")
        pos = np.searchsorted(t.step_num[order], common)
        index.append(order[pos])
    return common, index


__all__ = [
    "CATEGORIES",
    "INPUT_EVENT",
    "UNKNOWN",
    "StepTable",
    "align_steps",
    "build_step_table",
    "device_rows",
    "union_length_by_group",
]
