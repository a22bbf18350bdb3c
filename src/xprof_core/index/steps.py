"""Steps: find the training steps of one host, join device work to them, split their time.

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
is ``unknown``. Host events as long as the step's marker or longer (the
marker and what encloses it) are left out.

Everything here reads the host pass (:mod:`xprof_core.index.passes`): the
records of device events, markers and launches, and, for the breakdown, a
second compiled walk of the host lines once the steps are known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xprof_core._fast.hostindex import host_breakdown
from xprof_core._fast.intervals import priority_union
from xprof_core.index.classify import (
    CATEGORIES,
    CATEGORY_INDEX,
    LF_STEPS,
    UNKNOWN,
    device_category,
    host_category,
    stream_copy_category,
)
from xprof_core.index.passes import RF_CORR, RF_GROUP, RF_STEP_NAME, RF_STEP_NUM, RF_STEP_NUM_OWN, HostPass
from xprof_core.index.records import device_records, host_records


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

    @classmethod
    def empty(cls, reason: str) -> StepTable:
        e = np.empty(0, np.int64)
        return cls("none", "", e, e, e, e, e, e, e, e, {k: e for k in [*CATEGORIES, UNKNOWN]}, reason=reason)


# The breakdown reads the host lines' compact streams the first walk wrote; False takes the numpy path
# over decoded columns instead (the tests compare the two).
WIRE_BREAKDOWN = True

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


_STEP_SUFFIX = re.compile(r"#\d+$")


# --- categories of device records ---


def device_categories(hp: HostPass, recs: np.ndarray) -> np.ndarray:
    """Category index of device records: by event name, copies named only by their stream too."""
    em_names = hp.meta.tables.event_metadata.name
    per_md = np.array([device_category(n) for n in em_names] + [CATEGORY_INDEX["device_compute"]], dtype=np.int64)
    md = hp.records["md_row"][recs]
    cat = per_md[np.where(md < 0, len(em_names), md)]
    lines = hp.records["line"][recs]
    for ln in np.unique(lines).tolist():
        stream = stream_copy_category(hp.lines["name"][ln])
        if stream is not None:
            cat[lines == ln] = stream
    return cat


def host_md_categories(hp: HostPass) -> np.ndarray:
    """Category index of every metadata row by name, host rules (int8)."""
    return np.array([host_category(n) for n in hp.meta.tables.event_metadata.name], dtype=np.int8)


# --- building a host's step table ---


def _step_markers(hp: HostPass) -> tuple[str, str, np.ndarray, np.ndarray, np.ndarray]:
    """(source, name, step_num, start_ps, end_ps) of the step markers, sorted by start."""
    rec = hp.records
    lines = rec["line"]
    # 1. Steps lines on device planes. Each device records the same steps; as
    # XProf does, a step's time is its longest per-device duration.
    on_steps = (hp.lines["flags"][lines] & LF_STEPS) != 0 if len(lines) else np.zeros(0, bool)
    if on_steps.any():
        recs = np.flatnonzero(on_steps)
        names = hp.md_names(rec["md_row"][recs])
        flags = rec["flags"][recs]
        by_name = np.array([int(n) if str(n).isdigit() else -1 for n in names], dtype=np.int64)
        step = np.where(
            (flags & RF_STEP_NUM) != 0,
            rec["step_num"][recs],
            np.where((flags & RF_GROUP) != 0, rec["group_id"][recs], by_name),
        ).astype(np.int64)
        dur = rec["duration_ps"][recs]
        order = np.lexsort((-dur, step))
        recs, step = recs[order], step[order]
        first = np.ones(len(step), dtype=bool)
        first[1:] = step[1:] != step[:-1]
        recs, step = recs[first], step[first]
        by_time = np.argsort(rec["start_ps"][recs], kind="stable")
        recs, step = recs[by_time], step[by_time]
        start = rec["start_ps"][recs]
        return "steps_line", "Steps", step, start, start + rec["duration_ps"][recs]
    # 2./3. Host events carrying step_num (or step_name): the most common such event name.
    host = host_records(hp)
    for flag, source in ((RF_STEP_NUM_OWN, "step_num"), (RF_STEP_NAME, "step_name")):
        recs = host[(rec["flags"][host] & flag) != 0]
        if not len(recs):
            continue
        # PyTorch numbers its step events in the name (ProfilerStep#3, #4, ...): one name for all.
        names = np.array([_STEP_SUFFIX.sub("", n) for n in hp.md_names(rec["md_row"][recs]).astype(str)], dtype=object)
        uniq, counts = np.unique(names.astype(str), return_counts=True)
        name = str(uniq[np.argmax(counts)])
        recs = recs[names == name]
        step = rec["step_num"][recs] if source == "step_num" else np.arange(len(recs), dtype=np.int64)
        order = np.argsort(rec["start_ps"][recs], kind="stable")
        recs, step = recs[order], step[order]
        start = rec["start_ps"][recs]
        return source, name, step, start, start + rec["duration_ps"][recs]
    return "none", "", np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)


def _assign_device_to_steps(hp: HostPass, dev: np.ndarray, host_start: np.ndarray, host_end: np.ndarray) -> np.ndarray:
    """Step index of each device record (-1: outside every step)."""
    rec = hp.records
    n_steps = len(host_start)
    step_of = np.full(len(dev), -1, dtype=np.int64)
    if n_steps == 0 or len(dev) == 0:
        return step_of

    def step_at(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(host_start, t, side="right") - 1
        ok = (i >= 0) & (t < host_end[np.maximum(i, 0)])
        return np.where(ok, i, -1)

    # Through the launch: host events with a correlation_id, device events with the same id.
    host = host_records(hp)
    launches = host[(rec["flags"][host] & RF_CORR) != 0]
    dev_has = (rec["flags"][dev] & RF_CORR) != 0
    if dev_has.any() and len(launches):
        launch_ids = rec["correlation_id"][launches]
        launch_step = step_at(rec["start_ps"][launches])
        order = np.argsort(launch_ids, kind="stable")
        launch_ids, launch_step = launch_ids[order], launch_step[order]
        ids = rec["correlation_id"][dev]
        pos = np.clip(np.searchsorted(launch_ids, ids), 0, max(len(launch_ids) - 1, 0))
        hit = dev_has & (launch_ids[pos] == ids)
        step_of[hit] = launch_step[pos[hit]]
        rest = ~hit
    else:
        rest = np.ones(len(dev), dtype=bool)
    # By start time: the step whose window [start_i, start_{i+1}) holds the device event.
    if rest.any():
        t = rec["start_ps"][dev[rest]]
        i = np.searchsorted(host_start, t, side="right") - 1
        last_end = host_end.max()
        ok = (i >= 0) & (t < last_end)
        step_of[np.flatnonzero(rest)[ok]] = i[ok]
    return step_of


def build_step_table(source: Any) -> StepTable:
    """Detect the steps of one host and compute their times and breakdowns (a HostPass or an XSpace)."""
    from xprof_core.index.passes import host_pass_of

    hp = host_pass_of(source)
    rec = hp.records
    dev = device_records(hp)
    source, name, step_num, host_start, host_end = _step_markers(hp)
    reason = None
    if source == "none":
        # No markers: the whole profile is one pseudo-step.
        host_lines = hp.host_lines()
        timed_host = host_lines[hp.lines["timed"][host_lines] > 0]
        lows = [hp.lines["min_start_ps"][timed_host], rec["start_ps"][dev]]
        highs = [hp.lines["max_end_ps"][timed_host], rec["start_ps"][dev] + rec["duration_ps"][dev]]
        if not (len(timed_host) or len(dev)):
            return StepTable.empty("the profile has no events on host or device planes")
        lo = int(min(int(a.min()) for a in lows if len(a)))
        hi = int(max(int(a.max()) for a in highs if len(a)))
        step_num = np.array([0], np.int64)
        host_start, host_end = np.array([lo], np.int64), np.array([hi], np.int64)
        reason = (
            "no step markers found (no 'Steps' line and no host events with step_num or step_name): "
            "figures cover the whole profile"
        )
    n = len(step_num)
    dev_step = _assign_device_to_steps(hp, dev, host_start, host_end)
    d_ok = dev_step >= 0
    d_recs, d_step = dev[d_ok], dev_step[d_ok]
    d_start = rec["start_ps"][d_recs]
    d_end = d_start + rec["duration_ps"][d_recs]
    dev_start = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    dev_end = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(dev_start, d_step, d_start)
    np.maximum.at(dev_end, d_step, d_end)
    has_dev = dev_end > dev_start
    dev_start = np.where(has_dev, dev_start, -1)
    dev_end = np.where(has_dev, dev_end, -1)
    contains = (~has_dev) | ((host_start <= dev_start) & (dev_end <= host_end))
    start = np.where(contains, host_start, np.minimum(host_start, dev_start))
    end = np.where(contains, host_end, np.maximum(host_end, dev_end))
    step_time = np.where(contains, host_end - host_start, dev_end - dev_start)

    covered_by = _breakdown(hp, start, end, host_end - host_start, d_recs, d_step)
    breakdown: dict[str, np.ndarray] = {}
    covered = np.zeros(n, dtype=np.int64)
    for k, cat in enumerate(CATEGORIES):
        breakdown[cat] = covered_by[k] - covered
        covered = covered_by[k]
    window = end - start
    breakdown[UNKNOWN] = np.maximum(window - covered, 0)
    return StepTable(
        source, name, step_num, start, end, host_start, host_end, dev_start, dev_end, step_time, breakdown, reason
    )


def _device_intervals(
    hp: HostPass, d_recs: np.ndarray, d_step: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Device events clipped to their step windows, with categories, sorted by (step, start)."""
    rec = hp.records
    s = np.maximum(rec["start_ps"][d_recs], start[d_step])
    e = np.minimum(rec["start_ps"][d_recs] + rec["duration_ps"][d_recs], end[d_step])
    cat = device_categories(hp, d_recs)
    order = np.lexsort((s, d_step))
    return s[order], e[order], cat[order], d_step[order].astype(np.int64)


def _breakdown(
    hp: HostPass, start: np.ndarray, end: np.ndarray, marker_dur: np.ndarray, d_recs: np.ndarray, d_step: np.ndarray
) -> np.ndarray:
    """Cumulative covered time per (category, step): the host lines' events (the compact streams of the
    first walk, in sorted order per line) merged by start with the device intervals."""
    lines = hp.host_lines()
    x_s, x_e, x_cat, x_step = _device_intervals(hp, d_recs, d_step, start, end)
    if not WIRE_BREAKDOWN:
        return _breakdown_decoded(hp, start, end, marker_dur, x_s, x_e, x_cat, x_step)
    if hp.index_pass is None:  # a host merged from shards: the union of their segments
        segments = hp.derived["segments"](start, end, marker_dur)
        return union_breakdown(segments, len(start), x_s, x_e, x_cat, x_step, len(CATEGORIES))
    i64 = np.int64
    return host_breakdown(
        hp.index_pass,
        hp.lines["stream_begin"][lines].astype(i64),
        hp.lines["stream_end"][lines].astype(i64),
        hp.lines["timestamp_ns"][lines].astype(i64) * 1000,
        CATEGORY_INDEX["host_compute"],
        start.astype(i64),
        end.astype(i64),
        marker_dur.astype(i64),
        x_s,
        x_e,
        x_cat,
        x_step,
        len(CATEGORIES),
    )


def _breakdown_decoded(
    hp: HostPass,
    start: np.ndarray,
    end: np.ndarray,
    marker_dur: np.ndarray,
    x_s: np.ndarray,
    x_e: np.ndarray,
    x_cat: np.ndarray,
    x_step: np.ndarray,
) -> np.ndarray:
    """The breakdown from decoded columns with numpy: the reference the tests compare the streams with."""
    from xprof_core.model.planes import PlaneKind
    from xprof_core.model.xspace import decode_xspace

    xs = decode_xspace(hp.meta.buffer)
    parts = [ln.rows for p in xs.planes_of_kind(PlaneKind.HOST) for ln in p.lines if len(ln)]
    rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
    rows = rows[xs.is_timed[rows]]
    return breakdown_of_intervals(
        xs.start_ps[rows],
        xs.duration_ps[rows],
        host_md_categories(hp).astype(np.int64)[xs.event_metadata_row[rows]]
        if len(hp.meta.tables.event_metadata)
        else np.zeros(len(rows), np.int64),
        xs.event_metadata_row[rows],
        start,
        end,
        marker_dur,
        x_s,
        x_e,
        x_cat,
        x_step,
    )


def breakdown_of_intervals(
    h_start: np.ndarray,
    h_dur: np.ndarray,
    h_cat: np.ndarray,
    h_md: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    marker_dur: np.ndarray,
    x_s: np.ndarray,
    x_e: np.ndarray,
    x_cat: np.ndarray,
    x_step: np.ndarray,
) -> np.ndarray:
    """The breakdown rules over explicit host intervals, with numpy and ``priority_union`` (any order).

    Host intervals of unknown metadata (``h_md`` -1) count as host compute.
    """
    n = len(start)
    h_cat = np.where(h_md < 0, CATEGORY_INDEX["host_compute"], h_cat)
    h_step = np.searchsorted(start, h_start, side="right") - 1
    h_ok = (h_step >= 0) & (h_start < end[np.maximum(h_step, 0)])
    h_start, h_dur, h_cat, h_step = h_start[h_ok], h_dur[h_ok], h_cat[h_ok], h_step[h_ok]
    # Host events nested in the step marker itself would count the whole step as compute:
    # leave out the markers and their enclosing ancestors (events as long as the step).
    keep = h_dur < marker_dur[h_step]
    h_start, h_dur, h_cat, h_step = h_start[keep], h_dur[keep], h_cat[keep], h_step[keep]
    s = np.concatenate([x_s, np.maximum(h_start, start[h_step])])
    e = np.concatenate([x_e, np.minimum(h_start + h_dur, end[h_step])])
    cat = np.concatenate([x_cat, h_cat]).astype(np.int64)
    step = np.concatenate([x_step, h_step]).astype(np.int64)
    rel = s - start[step] if len(s) else s
    band = int(rel.max()) + 1 if len(rel) else 1
    order = np.argsort(step * band + rel, kind="stable")
    return priority_union(s, e, cat, step, order, n, len(CATEGORIES))


def host_step_table(source: Any) -> StepTable:
    """The step table of a host pass (or XSpace), computed once per pass."""
    from xprof_core.index.passes import host_pass_of

    hp = host_pass_of(source)
    table = hp.derived.get("steps")
    if table is None:
        table = hp.derived["steps"] = build_step_table(hp)
    return table


# --- multi-host ---


def align_steps(tables: Sequence[StepTable]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Steps present on every host: (step numbers, per-host row index of each).

    Hosts are aligned against the host with the shortest total step time (as
    XProf does): step numbers are matched as they are when the hosts share
    numbering; when a host's numbering is offset (no common step numbers but
    the same count of steps), steps match by position from the start. Sorting
    makes this O(total steps x log), not quadratic.
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


def union_breakdown(
    segments: dict[str, np.ndarray],
    n_steps: int,
    x_s: np.ndarray,
    x_e: np.ndarray,
    x_cat: np.ndarray,
    x_step: np.ndarray,
    n_categories: int,
) -> np.ndarray:
    """Covered time per (category prefix, step) of the host segments and the device intervals together."""
    prefixes = np.arange(n_categories, dtype=np.int64)
    # A device interval of category c counts in every prefix k >= c.
    dev_k = np.repeat(prefixes[None, :], len(x_s), axis=0)
    keep = dev_k >= x_cat[:, None]
    dk = dev_k[keep]
    reps = keep.sum(axis=1)
    ds = np.repeat(x_s, reps)
    de = np.repeat(x_e, reps)
    dstep = np.repeat(x_step, reps)
    k = np.concatenate([segments["prefix"].astype(np.int64), dk])
    st = np.concatenate([segments["step"].astype(np.int64), dstep])
    s = np.concatenate([segments["start_ps"], ds])
    e = np.concatenate([segments["end_ps"], de])
    out = np.zeros((n_categories, n_steps), dtype=np.int64)
    ok = (e > s) & (st >= 0) & (st < n_steps) & (k >= 0) & (k < n_categories)
    k, st, s, e = k[ok], st[ok], s[ok], e[ok]
    if not len(s):
        return out
    covered = union_length_by_group(s, e, k * n_steps + st, n_categories * n_steps)
    out[:] = covered.reshape(n_categories, n_steps)
    return out


__all__ = [
    "union_breakdown",
    "CATEGORIES",
    "UNKNOWN",
    "StepTable",
    "align_steps",
    "breakdown_of_intervals",
    "build_step_table",
    "host_step_table",
    "device_records",
    "host_records",
    "union_length_by_group",
]
