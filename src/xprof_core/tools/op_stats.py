"""XProf's op-statistics tools: ``framework_op_stats``, ``hlo_stats`` and ``op_profile``.

The three tools share one per-host aggregation (:func:`map_op_stats`): two
small tables, one row per HLO op and one row per framework (TensorFlow / JAX)
op, with occurrences, total and self time (ps), min time, FLOPs and bytes
accessed. ``reduce`` sums the hosts' rows by key.

Where the ops come from (XProf's rules, ``xplane_to_op_metrics_db.cc``):

* **TPU** (and any device plane with an ``XLA Ops`` line but no GPU streams):
  every event of an ``XLA Ops`` line is one occurrence of the HLO op named by
  its event metadata (display name, else name) in its ``program_id``. Self
  time comes from a nesting stack per line: an op's self time is its duration
  minus the durations of its direct children (XProf's ``AncestorStack``). When
  an event carries ``device_offset_ps``/``device_duration_ps`` those are its
  span, as in XProf. Events whose ``symbol_id`` is 0 (a whole program) nest
  but are not reported.
* **GPU**: kernels on ``Stream #N(...)`` lines that carry ``hlo_op``, each
  under the HLO op :func:`~xprof_core.tools.attribution.kernel_ops` gives it
  (its ``hlo_op``'s last ``::`` part; for kernels inside a CUDA graph, whose
  ``hlo_op`` names the command buffer, the op found by the scope tree, the
  module's schedule or the kernel name, else an explicit ``unattributed in
  command_buffer_N`` row; XProf drops such kernels, finding no instruction
  named ``command_buffer_1``). Consecutive kernels of the same op on a
  stream with the same ``group_id`` (the step XProf's grouping assigned) are
  one occurrence. A file without ``group_id`` takes the step from the host's
  step markers (:mod:`~xprof_core.tools.steps`); without either every kernel
  is an occurrence, as in XProf (an absent group id never matches). Kernels with
  a ``tf_op`` stat but no ``hlo_op`` are non-XLA framework ops (not HLO ops).
  A device plane without either uses its derived ``TensorFlow Ops`` /
  ``Framework Ops`` line (older TensorFlow profiles, where XProf 2.24 finds no
  device ops at all).
* **CPU-only JAX**: XLA runs on host threads whose events carry ``hlo_op``,
  ``hlo_module`` and ``program_id``; each event is an occurrence, self time
  by nesting per thread. XProf 2.24 reports nothing there. They are reported
  (``Host``) when the profile has no device XLA ops.
* **Host framework ops**: events of ``/host:CPU`` threads whose name parses as
  ``name:Type`` (XProf's ``ParseTfOpFullname``: TensorFlow, JAX and
  ``Iterator::`` dataset ops) or that carry a non-empty ``tf_op`` stat; self
  time by nesting among those events per thread.

Device framework ops are built from the HLO ops as XProf does: the op's
provenance (``tf_op`` stat, else the ``op_name`` metadata of the HLO
instruction in the module's HLO proto from ``/host:metadata``) parsed to a
name and type; an HLO op without provenance becomes a framework op of its own
name and type ``Unknown``. A framework op's occurrences are the largest
occurrence count of its HLO ops, its times, FLOPs and bytes their sums, its
min time the smallest min time of its HLO ops.

Category of an HLO op: the ``hlo_category`` stat (TPU), else the opcode and
fusion kind of the instruction in the HLO proto (XLA's ``ToCategory``:
``loop fusion``, ``data formatting``, ``custom-call`` ...), else a guess from
the op name.

Everything is vectorised over events: Python loops run per distinct op, per
distinct name or per line, never per event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.model.planes import ON_DEVICE, PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.tools.attribution import is_unattributed, kernel_ops
from xprof_core.tools.base import Params, Partial, param_int
from xprof_core.tools.datatable import Column, datatable
from xprof_core.tools.event_rows import (
    DERIVED_LINE_NAMES,
    factorize_sorted,
    factorize_sorted_with_first,
    host_rows,
    is_derived_line,
    number_stat,
    string_stat,
    u64_stat,
)
from xprof_core.tools.framework_ops import FrameworkOp, parse_framework_op
from xprof_core.tools.hlo_proto import HloModules, category_from_opcode
from xprof_core.tools.steps import build_step_table

VERSION = 2  # 2: kernels inside CUDA graphs under their attributed op
PS_PER_US = 1e6

# Lines whose events are not ops: XProf's derived lines, "XLA TraceMe" and "Overlay".
_SKIPPED_LINE_NAMES = DERIVED_LINE_NAMES | {"XLA TraceMe", "Overlay"}
_FRAMEWORK_OP_LINES = ("Framework Ops", "TensorFlow Ops")

# Provenance that names a whole XLA module, not an op (GPU kernels carry "XlaModule:").
_MODULE_LEVEL_TF_OPS = frozenset({"XlaModule", "XlaModule:"})


# ---- HLO categories by name ------------------------------------------------------------------------

_NAME_SUFFIX = re.compile(r"([._]\d+)+$")


def category_from_name(name: str) -> str:
    """A guess at an HLO op's category from its name alone (no ``hlo_category``, no HLO proto).

    XLA names instructions after their opcode (``all-reduce.1``, ``copy.3``)
    and fusions after their kind (``loop_add_fusion``, ``input_reduce_fusion``).
    """
    base = _NAME_SUFFIX.sub("", name.removesuffix(".kd"))
    if base.startswith("wrapped_"):
        return "loop fusion"
    if base.endswith("fusion") or "_fusion_" in base:
        for kind in ("loop", "input", "output"):
            if base.startswith(kind + "_"):
                return f"{kind} fusion"
        return "custom fusion" if base.startswith(("gemm_fusion", "triton", "cutlass")) else "fusion"
    if base.startswith(("custom-call", "cudnn-", "cublas-", "__cudnn", "__cublas")):
        return "custom-call"
    return category_from_opcode(base)


# ---- event helpers -------------------------------------------------------------------------


def _real_lines(xs: XSpace, plane_index: int) -> list[Any]:
    return [ln for ln in xs.planes[plane_index].lines if not is_derived_line(ln, _SKIPPED_LINE_NAMES)]


def _rows_of(lines: Sequence[Any]) -> np.ndarray:
    parts = [ln.rows for ln in lines if len(ln)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


# ---- nesting -------------------------------------------------------------------------------


def nesting_parents(start_ps: np.ndarray, end_ps: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Index of each interval's direct parent within its group, -1 for a root (int64, input order).

    Within a group (a line), intervals are visited by start time, longer first
    on ties, then input order; an interval's parent is the nearest earlier one
    that ends no earlier than it does. That is the top of XProf's ancestor stack
    after it pops every event that does not include the new one. Vectorised by
    pointer jumping: each candidate parent skips, all at once, over the events
    its own candidate already ruled out (their ends are all smaller), so the
    loop runs O(log n) rounds, not once per event.
    """
    n = len(start_ps)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    # Lines arrive sorted by start: skip the sort when (group, start) strictly increases.
    if bool(((group[1:] > group[:-1]) | ((group[1:] == group[:-1]) & (start_ps[1:] > start_ps[:-1]))).all()):
        order = np.arange(n, dtype=np.int64)
    else:
        order = np.lexsort((-end_ps, start_ps, group))  # stable: input order breaks the remaining ties
    e = end_ps[order]
    g = group[order]
    cand = np.arange(-1, n - 1, dtype=np.int64)
    # Roots need no search: the first of a group, and any interval ending after all earlier ones of its group.
    firsts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    prefix_max = np.empty(n, dtype=e.dtype)
    for a, b in zip(firsts.tolist(), [*firsts[1:].tolist(), n], strict=True):  # per group (line)
        prefix_max[a:b] = np.maximum.accumulate(e[a:b])
    root = np.zeros(n, dtype=bool)
    root[firsts] = True
    root[1:] |= e[1:] > prefix_max[:-1]
    cand[root] = -1
    active = np.flatnonzero(cand >= 0)
    while len(active):
        c = cand[active]
        moving = active[e[c] < e[active]]
        cand[moving] = cand[cand[moving]]
        active = moving[cand[moving] >= 0]
    parent = np.full(n, -1, dtype=np.int64)
    has = cand >= 0
    parent[order[has]] = order[cand[has]]
    return parent


def self_times(start_ps: np.ndarray, dur_ps: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Self time of each interval (ps): its duration minus its direct children's (never below 0)."""
    parent = nesting_parents(start_ps, start_ps + dur_ps, group)
    has = parent >= 0
    _, (children,), _ = _group_reduce(parent[has], len(start_ps), (dur_ps[has].astype(np.int64),), ())
    return np.maximum(dur_ps - children, 0)


# ---- occurrence tables ---------------------------------------------------------------------


@dataclass
class Occurrences:
    """Op occurrences of one kind, one entry per occurrence (all arrays the same length).

    ``key`` indexes ``keys`` (one tuple of identifying strings per distinct
    op); times in ps; ``flops`` and ``bytes`` per occurrence.
    """

    keys: list[tuple[str, ...]]
    key: np.ndarray
    time_ps: np.ndarray
    self_ps: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray


@dataclass
class OpTable:
    """Per-op aggregates: one entry per op, identity columns plus int64/float64 sums."""

    ids: dict[str, list[str]]
    occurrences: np.ndarray
    total_ps: np.ndarray
    self_ps: np.ndarray
    min_ps: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.occurrences)

    def to_partial(self) -> dict[str, Any]:
        return {
            **{k: list(v) for k, v in self.ids.items()},
            "occurrences": self.occurrences,
            "total_ps": self.total_ps,
            "self_ps": self.self_ps,
            "min_ps": self.min_ps,
            "flops": self.flops,
            "bytes": self.bytes,
        }

    @classmethod
    def from_partial(cls, p: dict[str, Any], id_columns: Sequence[str]) -> OpTable:
        return cls(
            {k: [str(x) for x in p[k]] for k in id_columns},
            np.asarray(p["occurrences"], dtype=np.int64),
            np.asarray(p["total_ps"], dtype=np.int64),
            np.asarray(p["self_ps"], dtype=np.int64),
            np.asarray(p["min_ps"], dtype=np.int64),
            np.asarray(p["flops"], dtype=np.float64),
            np.asarray(p["bytes"], dtype=np.float64),
        )

    @classmethod
    def empty(cls, id_columns: Sequence[str]) -> OpTable:
        z = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=np.float64)
        return cls({k: [] for k in id_columns}, z, z.copy(), z.copy(), z.copy(), f, f.copy())


def _group_reduce(
    group: np.ndarray, n: int, sums: Sequence[np.ndarray], mins: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(count, sums, mins) per group 0..n-1 of per-item arrays; one stable sort, then reduceat.

    Sums stay exact in int64 (``bincount`` would round ps totals above 2**53
    in float64); groups without items get count 0, sums 0 and mins int64 max.
    """
    count = np.bincount(group, minlength=n).astype(np.int64)
    order = np.argsort(group, kind="stable")
    present = np.flatnonzero(count)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])[present]
    out_sums, out_mins = [], []
    for values in sums:
        out = np.zeros(n, dtype=values.dtype)
        if len(order):
            out[present] = np.add.reduceat(values[order], starts)
        out_sums.append(out)
    for values in mins:
        out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        if len(order):
            out[present] = np.minimum.reduceat(values[order], starts)
        out_mins.append(out)
    return count, out_sums, out_mins


def aggregate(occ: Occurrences, id_columns: Sequence[str]) -> OpTable:
    """Per op: occurrence count, total, self and min time, FLOPs and bytes (ops without occurrences dropped)."""
    count, (total, self_ps, flops, nbytes), (min_ps,) = _group_reduce(
        occ.key, len(occ.keys), (occ.time_ps, occ.self_ps, occ.flops, occ.bytes), (occ.time_ps,)
    )
    idx = np.flatnonzero(count)
    ids = {c: [occ.keys[i][j] for i in idx.tolist()] for j, c in enumerate(id_columns)}
    return OpTable(ids, count[idx], total[idx], self_ps[idx], min_ps[idx], flops[idx], nbytes[idx])


def concat_tables(tables: Sequence[OpTable], id_columns: Sequence[str]) -> OpTable:
    if not tables:
        return OpTable.empty(id_columns)
    return OpTable(
        {c: [x for t in tables for x in t.ids[c]] for c in id_columns},
        np.concatenate([t.occurrences for t in tables]),
        np.concatenate([t.total_ps for t in tables]),
        np.concatenate([t.self_ps for t in tables]),
        np.concatenate([t.min_ps for t in tables]),
        np.concatenate([t.flops for t in tables]),
        np.concatenate([t.bytes for t in tables]),
    )


def merge_rows(
    table: OpTable,
    key_columns: Sequence[str],
    id_columns: Sequence[str],
    occurrences: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None,
) -> OpTable:
    """Rows with the same key columns merged: sums, min of mins, identity of the first row.

    ``occurrences(values, group, n)`` combines the occurrence counts (default: sum).
    """
    if len(table) == 0:
        return table
    keys = list(zip(*(table.ids[c] for c in key_columns), strict=True))
    index: dict[tuple[str, ...], int] = {}
    group = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    n = len(index)
    _, (occ, total, self_ps, flops, nbytes), (min_ps, first) = _group_reduce(
        group,
        n,
        (table.occurrences, table.total_ps, table.self_ps, table.flops, table.bytes),
        (table.min_ps, np.arange(len(keys), dtype=np.int64)),
    )
    if occurrences is not None:
        occ = occurrences(table.occurrences, group, n)
    ids = {c: [table.ids[c][i] for i in first.tolist()] for c in id_columns}
    return OpTable(ids, occ, total, self_ps, min_ps, flops, nbytes)


def _max_occurrences(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.maximum.at(out, group, values)
    return out


# ---- per-host extraction -------------------------------------------------------------------

HLO_IDS = ("where", "program_id", "hlo_module", "name", "category", "provenance", "expression")
FRAMEWORK_IDS = ("host_or_device", "type", "name")
_HLO_KEY = ("where", "program_id", "name")
_FRAMEWORK_KEY = ("host_or_device", "name")


def _hlo_key(
    modules: HloModules,
    where: str,
    program_id: int,
    name: str,
    module: str,
    hlo_category: str,
    tf_op: str,
    long_name: str,
) -> tuple[str, ...]:
    """The identity of one HLO op (an ``HLO_IDS`` tuple) from its stats and its module's HLO proto."""
    ins = modules.instruction(program_id, name) if len(modules) else None
    if is_unattributed(name):  # command-buffer kernels no rule could place: their own category
        category = "unattributed"
    else:
        category = hlo_category or (ins.category if ins is not None else category_from_name(name))
    provenance = tf_op if tf_op and tf_op not in _MODULE_LEVEL_TF_OPS else (ins.provenance if ins else "")
    return (where, str(program_id), module, name, category, provenance, long_name)


def _xla_ops_lines(xs: XSpace) -> list[tuple[int, list[Any]]]:
    """(plane, ``XLA Ops`` lines) of device planes that report XLA ops on such lines (TPU)."""
    out = []
    for plane in xs.planes:
        if plane.kind not in ON_DEVICE or any(ln.name.startswith("Stream #") for ln in plane.lines):
            continue
        lines = [ln for ln in plane.lines if ln.name == "XLA Ops" and len(ln)]
        if lines:
            out.append((plane.index, lines))
    return out


def _tpu_hlo_ops(xs: XSpace, modules: HloModules) -> OpTable | None:
    """HLO ops of the device ``XLA Ops`` lines: one occurrence per event, self time by nesting per line."""
    rows = _rows_of([ln for _, lines in _xla_ops_lines(xs) for ln in lines])
    rows = rows[xs.is_timed[rows]]
    if len(rows) == 0:
        return None
    start = xs.start_ps[rows].copy()
    dur = xs.duration_ps[rows].copy()
    d_off = xs.stat(rows, "device_offset_ps", include_metadata=False)
    d_dur = xs.stat(rows, "device_duration_ps", include_metadata=False)
    if d_off.values.dtype.kind in "iu" and d_dur.values.dtype.kind in "iu":
        both = d_off.present & d_dur.present
        start[both] = d_off.values[both].astype(np.int64)
        dur[both] = d_dur.values[both].astype(np.int64)
    self_ps = self_times(start, dur, xs.line_of_event[rows].astype(np.int64))
    symbol, has_symbol = u64_stat(xs, rows, "symbol_id")
    keep = ~(has_symbol & (symbol == 0))  # symbol 0 is a whole program: it nests, it is not an op
    rows, dur, self_ps = rows[keep], dur[keep], self_ps[keep]
    if len(rows) == 0:
        return None
    # Identity is per event metadata (one per op and core): look it up once per metadata row.
    _, first, md_code = factorize_sorted_with_first(xs.event_metadata_row[rows])
    r0 = rows[first]
    program, _ = u64_stat(xs, r0, "program_id")
    names, display = xs.event_names(r0), xs.event_names(r0, display=True)
    cats, tf_ops, mods = (string_stat(xs, r0, s) for s in ("hlo_category", "tf_op", "hlo_module"))
    keys: dict[tuple[str, ...], int] = {}
    md_key = np.empty(len(r0), dtype=np.int64)
    for i in range(len(r0)):
        full, short = str(names[i]), str(display[i])
        key = _hlo_key(
            modules,
            "Device",
            int(program[i]),
            short or full,
            str(mods[i]),
            str(cats[i]),
            str(tf_ops[i]),
            full if short and short != full else "",
        )
        md_key[i] = keys.setdefault(key, len(keys))
    occ = Occurrences(
        list(keys),
        md_key[md_code],
        dur,
        self_ps,
        number_stat(xs, rows, "flops"),
        number_stat(xs, rows, "bytes_accessed"),
    )
    # An op seen on several cores (one metadata per core) is one row.
    return merge_rows(aggregate(occ, HLO_IDS), _HLO_KEY, HLO_IDS)


def _gpu_kernel_rows(xs: XSpace) -> np.ndarray:
    """Timed events of the GPU streams (``Stream #N(...)``; derived lines left out), stream by stream."""
    lines = [
        ln
        for p in xs.planes
        if p.kind is PlaneKind.DEVICE and p.device_type == "GPU"
        for ln in _real_lines(xs, p.index)
        if ln.name.startswith("Stream #")
    ]
    rows = _rows_of(lines)
    return rows[xs.is_timed[rows]]


def _gpu_hlo_ops(xs: XSpace, modules: HloModules, rows: np.ndarray, hlo_ops: np.ndarray) -> OpTable | None:
    """HLO ops of the XLA kernels (``hlo_ops``: each row's attributed op, "" for non-XLA kernels),
    merged into occurrences per stream, op and step."""
    sel = hlo_ops != ""
    rows, hlo_ops = rows[sel], hlo_ops[sel]
    if len(rows) == 0:
        return None
    program, _ = u64_stat(xs, rows, "program_id")
    op_uniques, op_code = factorize_sorted(hlo_ops)
    pg_uniques, pg_code = factorize_sorted(program)
    id_uniques, first, id_code = factorize_sorted_with_first(np.stack([op_code, pg_code], axis=1))
    r0 = rows[first]
    cats, tf_ops, mods = (string_stat(xs, r0, s) for s in ("hlo_category", "tf_op", "hlo_module"))
    keys: dict[tuple[str, ...], int] = {}
    ident_key = np.empty(len(id_uniques), dtype=np.int64)
    for i, (oc, pc) in enumerate(id_uniques.tolist()):
        key = _hlo_key(
            modules,
            "Device",
            int(pg_uniques[pc]),
            str(op_uniques[oc]).split("::")[-1],
            str(mods[i]),
            str(cats[i]),
            str(tf_ops[i]),
            "",
        )
        ident_key[i] = keys.setdefault(key, len(keys))
    key_of_row = ident_key[id_code]

    # Runs: consecutive kernels of one stream with the same op and the same (present) group_id.
    line = xs.line_of_event[rows]
    group, has_group = u64_stat(xs, rows, "group_id")
    repeats = (line[1:] == line[:-1]) & (key_of_row[1:] == key_of_row[:-1])
    if not has_group.any() and repeats.any():
        group, has_group = _step_of_kernels(xs, rows)
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (
        (line[1:] != line[:-1])
        | (key_of_row[1:] != key_of_row[:-1])
        | ~has_group[1:]
        | ~has_group[:-1]
        | (group[1:] != group[:-1])
    )
    starts = np.flatnonzero(new)
    last = np.r_[starts[1:], len(rows)] - 1
    time_ps = np.add.reduceat(xs.duration_ps[rows], starts)
    # FLOPs and bytes describe the op, not the kernel: one value per occurrence (XProf keeps the last kernel's).
    occ = Occurrences(
        list(keys),
        key_of_row[starts],
        time_ps,
        time_ps.copy(),
        number_stat(xs, rows, "flops")[last],
        number_stat(xs, rows, "bytes_accessed")[last],
    )
    return merge_rows(aggregate(occ, HLO_IDS), _HLO_KEY, HLO_IDS)


def _step_of_kernels(xs: XSpace, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(step index as uint64, found) of each kernel, for files whose kernels carry no ``group_id``.

    XProf groups events into steps when it loads a profile and merges a
    stream's consecutive kernels of one op within a step. A file recorded
    without that grouping gets it from the host's step markers here (the step
    window holding the kernel's start); without step markers nothing merges,
    as in XProf.
    """
    table = build_step_table(xs)
    found = np.zeros(len(rows), dtype=bool)
    step = np.zeros(len(rows), dtype=np.int64)
    if table.source != "none" and len(table):
        order = np.argsort(table.start_ps, kind="stable")
        starts, ends = table.start_ps[order], table.end_ps[order]
        t = xs.start_ps[rows]
        i = np.searchsorted(starts, t, side="right") - 1
        found = (i >= 0) & (t < ends[np.maximum(i, 0)])
        step = np.where(found, i, 0)
    return step.astype(np.uint64), found


def _host_hlo_ops(xs: XSpace, modules: HloModules, rows: np.ndarray, hlo_ops: np.ndarray) -> OpTable | None:
    """HLO ops run on host threads (XLA:CPU): one occurrence per event, self time by nesting per thread."""
    if len(rows) == 0:
        return None
    dur = xs.duration_ps[rows]
    self_ps = self_times(xs.start_ps[rows], dur, xs.line_of_event[rows].astype(np.int64))
    program, _ = u64_stat(xs, rows, "program_id")
    op_uniques, op_code = factorize_sorted(hlo_ops)
    pg_uniques, pg_code = factorize_sorted(program)
    id_uniques, first, id_code = factorize_sorted_with_first(np.stack([op_code, pg_code], axis=1))
    r0 = rows[first]
    cats, tf_ops, mods = (string_stat(xs, r0, s) for s in ("hlo_category", "tf_op", "hlo_module"))
    keys: dict[tuple[str, ...], int] = {}
    ident_key = np.empty(len(id_uniques), dtype=np.int64)
    for i, (oc, pc) in enumerate(id_uniques.tolist()):
        key = _hlo_key(
            modules,
            "Host",
            int(pg_uniques[pc]),
            str(op_uniques[oc]).split("::")[-1],
            str(mods[i]),
            str(cats[i]),
            str(tf_ops[i]),
            "",
        )
        ident_key[i] = keys.setdefault(key, len(keys))
    occ = Occurrences(
        list(keys),
        ident_key[id_code],
        dur,
        self_ps,
        number_stat(xs, rows, "flops"),
        number_stat(xs, rows, "bytes_accessed"),
    )
    return merge_rows(aggregate(occ, HLO_IDS), _HLO_KEY, HLO_IDS)


def _name_codes(xs: XSpace, rows: np.ndarray, override: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(distinct full names, code per row) of event names, or of ``override`` where it is non-empty.

    Names are factorized through event-metadata rows (integers), strings only
    for the (rarer) overriding ``tf_op`` values.
    """
    _, first, md_code = factorize_sorted_with_first(xs.event_metadata_row[rows])
    names = xs.event_names(rows[first])
    if override is None or not (override != "").any():
        return names, md_code
    has = override != ""
    ov_uniques, ov_code = factorize_sorted(override[has])
    code = md_code.copy()
    code[has] = len(names) + ov_code
    return np.concatenate([names, ov_uniques]), code


def _framework_from_events(
    xs: XSpace,
    rows: np.ndarray,
    full_names: np.ndarray,
    code: np.ndarray,
    where: str,
    keep_unknown: np.ndarray | None = None,
) -> OpTable | None:
    """Framework ops from events with full names ``full_names[code]``; self time by nesting per line.

    Events whose name is not a framework op are left out, except where
    ``keep_unknown`` (events named by a ``tf_op`` stat, which XProf counts
    whatever they parse to, and the events of a framework-op line). An op is
    keyed by its name (XProf's key); its type is that of its earliest event.
    """
    parsed = [parse_framework_op(str(n)) for n in full_names]
    known = np.array([p.kind != "unknown" for p in parsed], dtype=bool)[code]
    if keep_unknown is not None:
        known |= keep_unknown
    rows, code = rows[known], code[known]
    if len(rows) == 0:
        return None
    start, dur = xs.start_ps[rows], xs.duration_ps[rows]
    self_ps = self_times(start, dur, xs.line_of_event[rows].astype(np.int64))
    used = np.unique(code)
    _, _, (earliest,) = _group_reduce(code, len(parsed), (), (start,))
    type_of: dict[str, tuple[int, str]] = {}  # name -> (earliest start, type)
    for c in used.tolist():
        p = parsed[c]
        seen = type_of.get(p.name)
        if seen is None or int(earliest[c]) < seen[0]:
            type_of[p.name] = (int(earliest[c]), p.type)
    index = {name: i for i, name in enumerate(type_of)}
    keys: list[tuple[str, ...]] = [(where, t, name) for name, (_, t) in type_of.items()]
    code_key = np.zeros(len(parsed), dtype=np.int64)
    code_key[used] = [index[parsed[c].name] for c in used.tolist()]
    occ = Occurrences(
        keys, code_key[code], dur, self_ps, number_stat(xs, rows, "flops"), number_stat(xs, rows, "bytes_accessed")
    )
    return aggregate(occ, FRAMEWORK_IDS)


def _host_framework_ops(xs: XSpace, rows: np.ndarray) -> OpTable | None:
    """Host-side framework ops: TF-op-named host events and host events with a ``tf_op`` stat."""
    if len(rows) == 0:
        return None
    tf_op = string_stat(xs, rows, "tf_op")
    names, code = _name_codes(xs, rows, tf_op)
    return _framework_from_events(xs, rows, names, code, "Host", keep_unknown=tf_op != "")


def _device_framework_from_hlo(hlo: OpTable) -> OpTable:
    """XProf's CreateTfMetricsDbFromDeviceOpMetricsDb: HLO ops grouped by their parsed provenance.

    An op without provenance is a framework op of its own name, type ``Unknown``;
    occurrences are the most of any HLO op of the framework op.
    """
    typ, name = [], []
    for n, prov in zip(hlo.ids["name"], hlo.ids["provenance"], strict=True):
        p = parse_framework_op(prov) if prov else None
        typ.append(p.type if p is not None and p.type else "Unknown")
        name.append(p.name if p is not None else n)
    table = OpTable(
        {"host_or_device": list(hlo.ids["where"]), "type": typ, "name": name},
        hlo.occurrences,
        hlo.total_ps,
        hlo.self_ps,
        hlo.min_ps,
        hlo.flops,
        hlo.bytes,
    )
    return merge_rows(table, _FRAMEWORK_KEY, FRAMEWORK_IDS, occurrences=_max_occurrences)


def _device_framework_from_kernels(xs: XSpace, rows: np.ndarray, tf_ops: np.ndarray) -> OpTable | None:
    """Non-XLA GPU kernels with a ``tf_op`` stat, as XProf: a device op per (framework op, kernel name),
    then per framework op the sums, and as occurrences the most kernels of one name."""
    sel = tf_ops != ""
    rows, tf_ops = rows[sel], tf_ops[sel]
    if len(rows) == 0:
        return None
    op_uniques, op_code = factorize_sorted(tf_ops)
    parsed = [parse_framework_op(str(u)) for u in op_uniques]
    _, md_code = factorize_sorted(xs.event_metadata_row[rows])
    pair_uniques, pair_code = factorize_sorted(np.stack([op_code, md_code], axis=1))
    keys: list[tuple[str, ...]] = [
        ("Device", parsed[o].type or "Unknown", parsed[o].name) for o, _ in pair_uniques.tolist()
    ]
    dur = xs.duration_ps[rows]
    per_kernel = aggregate(
        Occurrences(
            keys, pair_code, dur, dur.copy(), number_stat(xs, rows, "flops"), number_stat(xs, rows, "bytes_accessed")
        ),
        FRAMEWORK_IDS,
    )
    return merge_rows(per_kernel, _FRAMEWORK_KEY, FRAMEWORK_IDS, occurrences=_max_occurrences)


def _device_framework_from_lines(xs: XSpace, plane_indices: Sequence[int]) -> OpTable | None:
    """Framework ops of derived ``Framework Ops`` / ``TensorFlow Ops`` lines: one occurrence per event."""
    lines = []
    for pi in plane_indices:
        for wanted in _FRAMEWORK_OP_LINES:
            found = [ln for ln in xs.planes[pi].lines if ln.name == wanted and len(ln)]
            if found:
                lines.extend(found)
                break
    rows = _rows_of(lines)
    rows = rows[xs.is_timed[rows]]
    if len(rows) == 0:
        return None
    names, code = _name_codes(xs, rows)
    return _framework_from_events(xs, rows, names, code, "Device", keep_unknown=np.ones(len(rows), dtype=bool))


def device_type(xs: XSpace) -> str:
    """The kind of the device planes that hold events: TPU, GPU, else CPU."""
    kinds = {p.device_type for p in xs.planes_of_kind(PlaneKind.DEVICE) if p.num_events}
    return "TPU" if "TPU" in kinds else "GPU" if "GPU" in kinds else "CPU"


def map_op_stats(xs: XSpace, params: Params | None = None) -> Partial:
    """One host's op aggregation: HLO ops and framework ops with counts, times (ps), FLOPs and bytes.

    Returns ``{"version", "device_type", "xla_on", "peak_teraflops_per_core",
    "hlo": {...}, "framework": {...}, "reasons": {"hlo", "framework"}}``.
    ``hlo`` and ``framework`` hold one entry per op: identity strings
    (:data:`HLO_IDS`, :data:`FRAMEWORK_IDS`), int64 ``occurrences``,
    ``total_ps``, ``self_ps``, ``min_ps`` and float64 ``flops``, ``bytes``.
    ``xla_on`` says where XLA ran: "device", "host" (CPU-only) or "none".
    """
    modules = HloModules(xs)
    hlo_tables: list[OpTable] = []
    fw_tables: list[OpTable] = []

    tpu = _tpu_hlo_ops(xs, modules)
    if tpu is not None:
        hlo_tables.append(tpu)
    kernel_rows = _gpu_kernel_rows(xs)
    kernel_hlo = kernel_ops(xs, modules).op_of(kernel_rows)  # the HLO op of every XLA kernel, "" elsewhere
    kernel_tf = string_stat(xs, kernel_rows, "tf_op")
    gpu = _gpu_hlo_ops(xs, modules, kernel_rows, kernel_hlo)
    if gpu is not None:
        hlo_tables.append(gpu)
    non_xla = kernel_hlo == ""
    tf_kernels = _device_framework_from_kernels(xs, kernel_rows[non_xla], kernel_tf[non_xla])
    if tf_kernels is not None:
        fw_tables.append(tf_kernels)

    rows_on_host = host_rows(xs)
    host_hlo = string_stat(xs, rows_on_host, "hlo_op")
    on_host = host_hlo != ""
    xla_on = "device" if hlo_tables else "host" if on_host.any() else "none"
    if xla_on == "host":
        host = _host_hlo_ops(xs, modules, rows_on_host[on_host], host_hlo[on_host])
        if host is not None:
            hlo_tables.append(host)
        # Host XLA events reported as HLO ops are not host framework ops as well.
        rows_on_host = rows_on_host[~on_host]
    hlo = merge_rows(concat_tables(hlo_tables, HLO_IDS), _HLO_KEY, HLO_IDS)
    if len(hlo):
        fw_tables.append(_device_framework_from_hlo(hlo))

    # Device planes with neither XLA ops nor tf_op kernels: their derived framework-op lines.
    with_ops = set(xs.plane_of_event[kernel_rows[(kernel_hlo != "") | (kernel_tf != "")]].tolist())
    with_ops |= {pi for pi, _ in _xla_ops_lines(xs)}
    bare = [p.index for p in xs.planes_of_kind(*ON_DEVICE) if p.index not in with_ops]
    from_lines = _device_framework_from_lines(xs, bare)
    if from_lines is not None:
        fw_tables.append(from_lines)
    host_fw = _host_framework_ops(xs, rows_on_host)
    if host_fw is not None:
        fw_tables.append(host_fw)
    framework = merge_rows(concat_tables(fw_tables, FRAMEWORK_IDS), _FRAMEWORK_KEY, FRAMEWORK_IDS)

    peaks = [float(p.stats.get("peak_teraflops_per_second") or 0.0) for p in xs.planes_of_kind(*ON_DEVICE)]
    return {
        "version": VERSION,
        "device_type": device_type(xs),
        "xla_on": xla_on,
        "peak_teraflops_per_core": max(peaks, default=0.0),
        "hlo": hlo.to_partial(),
        "framework": framework.to_partial(),
        "reasons": {
            "hlo": None if len(hlo) else _no_hlo_reason(xs),
            "framework": None if len(framework) else "no framework ops: no TensorFlow/JAX op events on host or device",
        },
    }


def _no_hlo_reason(xs: XSpace) -> str:
    if device_type(xs) == "GPU":
        return (
            "no XLA ops: no GPU kernel carries an hlo_op stat (a TensorFlow profile without XLA?); "
            "see framework_op_stats"
        )
    return "no XLA ops: no 'XLA Ops' line on a device plane and no host event with an hlo_op stat"


# ---- reduce --------------------------------------------------------------------------------


def _check(partials: Sequence[Partial]) -> None:
    for p in partials:
        if p.get("version") != VERSION:
            raise ValueError(f"op_stats partial version {p.get('version')!r}, expected {VERSION}")


def reduce_hlo(partials: Sequence[Partial]) -> OpTable:
    """The hosts' HLO ops summed by (where, program, op)."""
    _check(partials)
    tables = [OpTable.from_partial(p["hlo"], HLO_IDS) for p in partials]
    return merge_rows(concat_tables(tables, HLO_IDS), ("where", "program_id", "name"), HLO_IDS)


def reduce_framework(partials: Sequence[Partial]) -> OpTable:
    """The hosts' framework ops summed by (host or device, op name)."""
    _check(partials)
    tables = [OpTable.from_partial(p["framework"], FRAMEWORK_IDS) for p in partials]
    return merge_rows(concat_tables(tables, FRAMEWORK_IDS), ("host_or_device", "name"), FRAMEWORK_IDS)


def _ranked(table: OpTable, sel: np.ndarray | None = None) -> np.ndarray:
    """Row indices by self time descending, then name (XProf's SortedOpMetricsDb order)."""
    idx = np.arange(len(table)) if sel is None else np.flatnonzero(sel)
    names = [table.ids["name"][i] for i in idx.tolist()]
    order = sorted(range(len(idx)), key=lambda k: (-int(table.self_ps[idx[k]]), names[k]))
    return idx[np.array(order, dtype=np.int64)] if len(order) else idx


def _rates(flops: float, nbytes: float, time_ps: int) -> tuple[float, float, float]:
    """(GFLOP/s, GiB/s, FLOPs per byte): XProf's measured rates over an op's total time."""
    ns = time_ps / 1e3
    gflops = flops / ns if ns > 0 else 0.0
    gib = nbytes / ns * 1e9 / 2**30 if ns > 0 else 0.0
    intensity = flops / nbytes if nbytes > 0 else 0.0
    return gflops, gib, intensity


def _reason(partials: Sequence[Partial], which: str) -> str:
    reasons = list(dict.fromkeys(str(p["reasons"][which]) for p in partials if p.get("reasons", {}).get(which)))
    return "; ".join(reasons) if reasons else "no hosts selected"


def _common(partials: Sequence[Partial]) -> dict[str, Any]:
    return {
        "hosts": [p.get("host") for p in partials],
        "device_type": "/".join(sorted({str(p["device_type"]) for p in partials})),
        "xla_on": "/".join(sorted({str(p["xla_on"]) for p in partials})),
    }


# framework_op_stats: XProf's TfStatsToDataTable ids (times in µs, shares as fractions), then ours.
FRAMEWORK_COLUMNS: tuple[Column, ...] = (
    ("rank", "Rank", "number"),
    ("host_or_device", "Host/device", "string"),
    ("type", "Operation Type", "string"),
    ("operation", "Operation Name", "string"),
    ("occurrences", "#Occurrences", "number"),
    ("total_time", "Total time (us)", "number"),
    ("avg_time", "Avg. time (us)", "number"),
    ("total_self_time", "Total self-time (us)", "number"),
    ("avg_self_time", "Avg. self-time (us)", "number"),
    ("device_total_self_time_percent", "Total self-time on Device (%)", "number"),
    ("device_cumulative_total_self_time_percent", "Cumulative total-self time on Device (%)", "number"),
    ("host_total_self_time_percent", "Total self-time on Host (%)", "number"),
    ("Host_cumulative_total_self_time_percent", "Cumulative total-self time on Host (%)", "number"),
    ("measured_flop_rate", "Measured FLOP rate (GFLOP/s)", "number"),
    ("measured_memory_bw", "Measured memory BW (GiB/s)", "number"),
    ("operational_intensity", "Operational Intensity (FLOPs/Byte)", "number"),
    ("min_time", "Min. time (us)", "number"),
    ("flops", "FLOPs", "number"),
    ("bytes_accessed", "Bytes accessed", "number"),
)

# hlo_stats: XProf's HloStatsDataTableColumns ids (shares in %), then ours.
HLO_COLUMNS: tuple[Column, ...] = (
    ("rank", "Rank", "number"),
    ("program_id", "Program id", "string"),
    ("category", "HLO op category", "string"),
    ("hlo_op_name", "HLO op name", "string"),
    ("hlo_op_expression", "HLO op text", "string"),
    ("tf_op_name", "Framework op name", "string"),
    ("occurrences", "#Occurrences", "number"),
    ("total_time", "Total time (us)", "number"),
    ("avg_time", "Avg. time (us)", "number"),
    ("total_self_time", "Total self time (us)", "number"),
    ("avg_self_time", "Avg. self time (us)", "number"),
    ("total_self_time_percent", "Total self time (%)", "number"),
    ("cumulative_total_self_time_percent", "Cumulative total self time (%)", "number"),
    ("normalized_flop_rate", "Normalized GFLOP/s", "number"),
    ("measured_memory_bw", "Measured memory BW (GiB/s)", "number"),
    ("operational_intensity", "Operational intensity (FLOPS/Byte)", "number"),
    ("hlo_module", "HLO module", "string"),
    ("host_or_device", "Host/device", "string"),
    ("min_time", "Min. time (us)", "number"),
    ("flops", "FLOPs", "number"),
    ("bytes_accessed", "Bytes accessed", "number"),
)


def reduce_framework_op_stats(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """XProf's framework_op_stats table (without IDLE rows): device ops, then host ops, by self time.

    Parameter ``max_ops`` keeps that many rows per side (XProf keeps 500; 0,
    the default, keeps all).
    """
    max_ops = param_int(params, "max_ops", 0, lo=0)
    table = reduce_framework(partials)
    rows: list[list[Any]] = []
    rank = 0
    for side in ("Device", "Host"):
        sel = np.array([w == side for w in table.ids["host_or_device"]], dtype=bool)
        order = _ranked(table, sel)
        if max_ops:
            order = order[:max_ops]
        side_total = int(table.self_ps[sel].sum())
        cumulative = 0.0
        for i in order.tolist():
            rank += 1
            occ, total, self_ps = int(table.occurrences[i]), int(table.total_ps[i]), int(table.self_ps[i])
            share = self_ps / side_total if side_total else 0.0
            cumulative += share
            dev = (share, cumulative) if side == "Device" else (0.0, 0.0)
            host = (share, cumulative) if side == "Host" else (0.0, 0.0)
            flops, nbytes = float(table.flops[i]), float(table.bytes[i])
            rows.append(
                [
                    rank,
                    side,
                    table.ids["type"][i],
                    table.ids["name"][i],
                    occ,
                    total / PS_PER_US,
                    total / occ / PS_PER_US if occ else 0.0,
                    self_ps / PS_PER_US,
                    self_ps / occ / PS_PER_US if occ else 0.0,
                    *dev,
                    *host,
                    *_rates(flops, nbytes, total),
                    int(table.min_ps[i]) / PS_PER_US,
                    flops,
                    nbytes,
                ]
            )
    props = {**_common(partials), "reason": None if rows else _reason(partials, "framework")}
    return {
        "framework_op_stats": datatable(FRAMEWORK_COLUMNS, rows, props),
        "reason": props["reason"],
        **_common(partials),
    }


def reduce_hlo_stats(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """XProf's hlo_stats table: one row per HLO op by self time, shares of the total self time in %."""
    max_ops = param_int(params, "max_ops", 0, lo=0)
    table = reduce_hlo(partials)
    order = _ranked(table)
    if max_ops:
        order = order[:max_ops]
    total_self = int(table.self_ps.sum())
    rows: list[list[Any]] = []
    cumulative = 0.0
    for rank, i in enumerate(order.tolist(), start=1):
        occ, total, self_ps = int(table.occurrences[i]), int(table.total_ps[i]), int(table.self_ps[i])
        share = 100.0 * self_ps / total_self if total_self else 0.0
        cumulative += share
        flops, nbytes = float(table.flops[i]), float(table.bytes[i])
        rows.append(
            [
                rank,
                table.ids["program_id"][i],
                table.ids["category"][i],
                table.ids["name"][i],
                table.ids["expression"][i],
                table.ids["provenance"][i],
                occ,
                total / PS_PER_US,
                total / occ / PS_PER_US if occ else 0.0,
                self_ps / PS_PER_US,
                self_ps / occ / PS_PER_US if occ else 0.0,
                share,
                cumulative,
                *_rates(flops, nbytes, total),
                table.ids["hlo_module"][i],
                table.ids["where"][i],
                int(table.min_ps[i]) / PS_PER_US,
                flops,
                nbytes,
            ]
        )
    props = {**_common(partials), "reason": None if rows else _reason(partials, "hlo")}
    return {"hlo_stats": datatable(HLO_COLUMNS, rows, props), "reason": props["reason"], **_common(partials)}


def _node(
    name: str,
    time_ps: int,
    self_ps: int,
    flops: float,
    nbytes: float,
    occurrences: int,
    total_ps: int,
    peak_flops_per_ps: float,
) -> dict[str, Any]:
    time_fraction = time_ps / total_ps if total_ps else 0.0
    util = flops / (time_ps * peak_flops_per_ps) if time_ps and peak_flops_per_ps else 0.0
    return {
        "name": name,
        "metrics": {
            "rawTime": float(time_ps),
            "selfTime": float(self_ps),
            "time": time_fraction,
            "rawFlops": flops,
            "rawBytesAccessed": nbytes,
            "occurrences": occurrences,
            "avgTimePs": time_ps / occurrences if occurrences else 0.0,
            # XProf's UI reads flops as FLOP utilization times the time fraction.
            "flops": min(util, 1.0) * time_fraction,
        },
        "children": [],
        "numChildren": 0,
    }


def reduce_op_profile(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """XProf's op_profile trees: ``byCategory`` (category -> op) and ``byProgram`` (program -> op).

    Node metrics: ``rawTime`` (total time, ps), ``selfTime`` (ps), ``time``
    (share of all ops' self time), ``rawFlops``, ``rawBytesAccessed``,
    ``occurrences``, ``avgTimePs`` and ``flops`` (FLOP utilization times the
    time share, when the device reports its peak). Parameter ``op_profile_limit``
    keeps that many ops per category (default 100, 0 keeps all), as XProf.
    """
    limit = param_int(params, "op_profile_limit", 100, lo=0)
    table = reduce_hlo(partials)
    total_self = int(table.self_ps.sum())
    peaks = [float(p.get("peak_teraflops_per_core", 0.0)) for p in partials]
    peak_per_ps = max(peaks) if peaks else 0.0  # 1 TFLOP/s is 1 FLOP per ps
    common = _common(partials)

    def tree(root_name: str, group_column: str, label: Callable[[str], str]) -> dict[str, Any]:
        groups: dict[str, list[int]] = {}
        for i in _ranked(table).tolist():
            groups.setdefault(table.ids[group_column][i], []).append(i)
        children = []
        for g, idx in groups.items():
            sel = np.array(idx, dtype=np.int64)
            node = _node(
                label(g),
                int(table.total_ps[sel].sum()),
                int(table.self_ps[sel].sum()),
                float(table.flops[sel].sum()),
                float(table.bytes[sel].sum()),
                int(table.occurrences[sel].sum()),
                total_self,
                peak_per_ps,
            )
            node["metrics"]["time"] = int(table.self_ps[sel].sum()) / total_self if total_self else 0.0
            node["category"] = {}
            kept = idx[:limit] if limit else idx
            for i in kept:
                leaf = _node(
                    table.ids["name"][i],
                    int(table.total_ps[i]),
                    int(table.self_ps[i]),
                    float(table.flops[i]),
                    float(table.bytes[i]),
                    int(table.occurrences[i]),
                    total_self,
                    peak_per_ps,
                )
                leaf["metrics"]["time"] = int(table.self_ps[i]) / total_self if total_self else 0.0
                leaf["xla"] = {
                    "op": table.ids["name"][i],
                    "expression": table.ids["expression"][i],
                    "provenance": table.ids["provenance"][i],
                    "category": table.ids["category"][i],
                    "programId": table.ids["program_id"][i],
                }
                node["children"].append(leaf)
            node["numChildren"] = len(idx)
            children.append(node)
        children.sort(key=lambda n: (-n["metrics"]["selfTime"], n["name"]))
        root = _node(
            root_name,
            int(table.total_ps.sum()),
            total_self,
            float(table.flops.sum()),
            float(table.bytes.sum()),
            int(table.occurrences.sum()),
            total_self,
            peak_per_ps,
        )
        root["metrics"]["time"] = 1.0 if total_self else 0.0
        root["children"] = children
        root["numChildren"] = len(children)
        return root

    modules = dict(zip(table.ids["program_id"], table.ids["hlo_module"], strict=True))
    reason = None if len(table) else _reason(partials, "hlo")
    return {
        "byCategory": tree("by category", "category", lambda c: c),
        "byProgram": tree("by program", "program_id", lambda pid: f"{modules.get(pid) or 'program'}({pid})"),
        "deviceType": common["device_type"],
        "reason": reason,
        **common,
    }


@dataclass(frozen=True)
class _OpStatsTool:
    """One of the three op-statistics tools; they share :func:`map_op_stats`."""

    name: str
    description: str
    reducer: Callable[[Sequence[Partial], Params], dict[str, Any]]
    version: int = VERSION

    def map(self, xs: XSpace, params: Params) -> Partial:
        return map_op_stats(xs, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return self.reducer(partials, params)


FRAMEWORK_OP_STATS = _OpStatsTool(
    "framework_op_stats",
    "TensorFlow/JAX ops on host and device: occurrences, total and self time, FLOPs",
    reduce_framework_op_stats,
)
HLO_STATS = _OpStatsTool(
    "hlo_stats", "HLO ops: category, occurrences, total and self time, FLOPs and bytes", reduce_hlo_stats
)
OP_PROFILE = _OpStatsTool("op_profile", "HLO op time by category and by program (tree)", reduce_op_profile)
TOOLS = {"framework_op_stats": FRAMEWORK_OP_STATS, "hlo_stats": HLO_STATS, "op_profile": OP_PROFILE}

__all__ = [
    "FRAMEWORK_COLUMNS",
    "FRAMEWORK_OP_STATS",
    "HLO_COLUMNS",
    "HLO_STATS",
    "OP_PROFILE",
    "TOOLS",
    "FrameworkOp",
    "HloModules",
    "OpTable",
    "category_from_name",
    "category_from_opcode",
    "device_type",
    "map_op_stats",
    "nesting_parents",
    "parse_framework_op",
    "reduce_framework",
    "reduce_hlo",
    "self_times",
]
