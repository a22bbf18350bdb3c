"""One host's op tables from its host pass: HLO ops and framework ops with counts, times, FLOPs and bytes.

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
  step markers (:mod:`~xprof_core.index.steps`); without either every kernel
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

The host pass did the per-event work (nesting, sums per key); Python here
runs per op, per distinct name or per kernel record, never per host event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from xprof_core.index.classify import FRAMEWORK_OP_LINES
from xprof_core.index.framework_ops import parse_framework_op
from xprof_core.index.hlo_proto import HloModules, category_from_opcode
from xprof_core.index.passes import (
    C_ALL,
    C_FW_ALL,
    C_FW_NOHLO,
    C_HLO,
    C_TPU,
    RF_GROUP,
    HostPass,
)
from xprof_core.index.records import gpu_kernel_records
from xprof_core.model.planes import ON_DEVICE, PlaneKind
from xprof_core.tools.attribution import is_unattributed, kernel_ops
from xprof_core.tools.base import Params, Partial
from xprof_core.tools.device_time import device_total_time_ps
from xprof_core.tools.op_stats.op_table import (
    FRAMEWORK_IDS,
    FRAMEWORK_KEY,
    HLO_IDS,
    HLO_KEY,
    VERSION,
    Occurrences,
    OpTable,
    aggregate,
    concat_tables,
    max_occurrences,
    merge_rows,
)

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


# ---- slots ---------------------------------------------------------------------------------------


def _first_slot_per(keys: np.ndarray, first_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance in the file, code of each slot)."""
    order = np.lexsort((first_row, keys))
    k = keys[order]
    new = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
    group = np.cumsum(new) - 1
    codes = np.empty(len(keys), dtype=np.int64)
    codes[order] = group
    first = order[new]  # the slot with the smallest first row of each key
    by_file = np.argsort(first_row[first], kind="stable")
    remap = np.empty(len(first), dtype=np.int64)
    remap[by_file] = np.arange(len(first))
    return first[by_file], remap[codes]


def _table_of_slots(
    hp: HostPass, slots: np.ndarray, key_of_slot: np.ndarray, keys: list[tuple[str, ...]], ids: Sequence[str]
) -> OpTable:
    """An op table from slots: counts, totals, self times, FLOPs and bytes summed per key, min of mins."""
    s = hp.slots
    n = len(keys)
    count = np.zeros(n, dtype=np.int64)
    total = np.zeros(n, dtype=np.int64)
    self_ps = np.zeros(n, dtype=np.int64)
    flops = np.zeros(n, dtype=np.float64)
    nbytes = np.zeros(n, dtype=np.float64)
    min_ps = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.add.at(count, key_of_slot, s["count"][slots])
    np.add.at(total, key_of_slot, s["total_ps"][slots])
    np.add.at(self_ps, key_of_slot, s["self_ps"][slots])
    np.add.at(flops, key_of_slot, s["flops"][slots])
    np.add.at(nbytes, key_of_slot, s["bytes"][slots])
    np.minimum.at(min_ps, key_of_slot, s["min_ps"][slots])
    used = np.flatnonzero(count)
    table_ids = {c: [keys[i][j] for i in used.tolist()] for j, c in enumerate(ids)}
    return OpTable(table_ids, count[used], total[used], self_ps[used], min_ps[used], flops[used], nbytes[used])


def _earliest_slot(slots: np.ndarray, code: np.ndarray, n: int, first_row: np.ndarray) -> np.ndarray:
    """For each of ``n`` keys, the slot (of ``slots``, key ``code``) holding the key's first event in the file."""
    order = np.lexsort((first_row, code))
    out = np.full(n, -1, dtype=np.int64)
    # Reversed assignment: the first slot of each key in (key, first row) order writes last.
    out[code[order][::-1]] = slots[order][::-1]
    return out


# ---- per-host extraction -------------------------------------------------------------------------


def _tpu_hlo_ops(hp: HostPass, modules: HloModules) -> OpTable | None:
    """HLO ops of the device ``XLA Ops`` lines: one occurrence per event, self time by nesting per line."""
    s = hp.slots
    slots = hp.slots_of(C_TPU)
    slots = slots[s["k1"][slots] == 0]  # whole programs (symbol_id 0) nest but are not ops
    if len(slots) == 0:
        return None
    strings = hp.string_array
    # Identity is per event metadata (one per op and core), from its first event in the file.
    md_first, md_code = _first_slot_per(s["k0"][slots], s["first_row"][slots])
    first = slots[md_first]
    md = s["k0"][first]
    names, display = hp.md_names(md), hp.md_names(md, display=True)
    keys: dict[tuple[str, ...], int] = {}
    md_key = np.empty(len(first), dtype=np.int64)
    for i in range(len(first)):
        full, short = str(names[i]), str(display[i])
        key = _hlo_key(
            modules,
            "Device",
            int(np.int64(s["k2"][first[i]]).view(np.uint64)),
            short or full,
            str(strings[s["extra2"][first[i]]]),
            str(strings[s["extra0"][first[i]]]),
            str(strings[s["extra1"][first[i]]]),
            full if short and short != full else "",
        )
        md_key[i] = keys.setdefault(key, len(keys))
    # An op seen on several cores (one metadata per core) is one row.
    table = _table_of_slots(hp, slots, md_key[md_code], list(keys), HLO_IDS)
    return merge_rows(table, HLO_KEY, HLO_IDS)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted uniques, index of each unique's first occurrence, int64 codes) of a 1-D array or 2-D rows."""
    if values.ndim == 2:
        uniques, first, codes = np.unique(values, axis=0, return_index=True, return_inverse=True)
    else:
        uniques, first, codes = np.unique(values, return_index=True, return_inverse=True)
    return uniques, first.astype(np.int64), codes.reshape(-1).astype(np.int64)


def _gpu_hlo_ops(hp: HostPass, modules: HloModules, recs: np.ndarray, hlo_ops: np.ndarray) -> OpTable | None:
    """HLO ops of the XLA kernels (``hlo_ops``: each record's attributed op, "" for non-XLA kernels),
    merged into occurrences per stream, op and step."""
    rec = hp.records
    strings = hp.string_array
    sel = hlo_ops != ""
    recs, hlo_ops = recs[sel], hlo_ops[sel]
    if len(recs) == 0:
        return None
    program = rec["program_id"][recs]
    op_uniques, _, op_code = _factorize(hlo_ops)
    pg_uniques, _, pg_code = _factorize(program)
    id_uniques, first, id_code = _factorize(np.stack([op_code, pg_code], axis=1))
    r0 = recs[first]
    keys: dict[tuple[str, ...], int] = {}
    ident_key = np.empty(len(id_uniques), dtype=np.int64)
    for i, (oc, pc) in enumerate(id_uniques.tolist()):
        key = _hlo_key(
            modules,
            "Device",
            int(np.int64(pg_uniques[pc]).view(np.uint64)),
            str(op_uniques[oc]).split("::")[-1],
            str(strings[rec["hlo_module"][r0[i]]]),
            str(strings[rec["hlo_category"][r0[i]]]),
            str(strings[rec["tf_op"][r0[i]]]),
            "",
        )
        ident_key[i] = keys.setdefault(key, len(keys))
    key_of_rec = ident_key[id_code]

    # Runs: consecutive kernels of one stream with the same op and the same (present) group_id.
    line = rec["line"][recs]
    group = rec["group_id"][recs]
    has_group = (rec["flags"][recs] & RF_GROUP) != 0
    repeats = (line[1:] == line[:-1]) & (key_of_rec[1:] == key_of_rec[:-1])
    if not has_group.any() and repeats.any():
        group, has_group = _step_of_kernels(hp, recs)
    new = np.ones(len(recs), dtype=bool)
    new[1:] = (
        (line[1:] != line[:-1])
        | (key_of_rec[1:] != key_of_rec[:-1])
        | ~has_group[1:]
        | ~has_group[:-1]
        | (group[1:] != group[:-1])
    )
    starts = np.flatnonzero(new)
    last = np.r_[starts[1:], len(recs)] - 1
    time_ps = np.add.reduceat(rec["duration_ps"][recs], starts)
    # FLOPs and bytes describe the op, not the kernel: one value per occurrence (XProf keeps the last kernel's).
    occ = Occurrences(
        list(keys),
        key_of_rec[starts],
        time_ps,
        time_ps.copy(),
        rec["flops"][recs][last],
        rec["bytes_accessed"][recs][last],
    )
    return merge_rows(aggregate(occ, HLO_IDS), HLO_KEY, HLO_IDS)


def _step_of_kernels(hp: HostPass, recs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(step index, found) of each kernel, for files whose kernels carry no ``group_id``.

    XProf groups events into steps when it loads a profile and merges a
    stream's consecutive kernels of one op within a step. A file recorded
    without that grouping gets it from the host's step markers here (the step
    window holding the kernel's start); without step markers nothing merges,
    as in XProf.
    """
    from xprof_core.index.steps import host_step_table

    table = host_step_table(hp)
    found = np.zeros(len(recs), dtype=bool)
    step = np.zeros(len(recs), dtype=np.int64)
    if table.source != "none" and len(table):
        order = np.argsort(table.start_ps, kind="stable")
        starts, ends = table.start_ps[order], table.end_ps[order]
        t = hp.records["start_ps"][recs]
        i = np.searchsorted(starts, t, side="right") - 1
        found = (i >= 0) & (t < ends[np.maximum(i, 0)])
        step = np.where(found, i, 0)
    return step, found


def _host_hlo_ops(hp: HostPass, modules: HloModules) -> OpTable | None:
    """HLO ops run on host threads (XLA:CPU): one occurrence per event, self time by nesting per thread."""
    s = hp.slots
    slots = hp.slots_of(C_HLO)
    if len(slots) == 0:
        return None
    strings = hp.string_array
    uniques, _, code = _factorize(np.stack([s["k0"][slots], s["k1"][slots]], axis=1))
    first = _earliest_slot(slots, code, len(uniques), s["first_row"][slots])
    keys: dict[tuple[str, ...], int] = {}
    ident_key = np.empty(len(uniques), dtype=np.int64)
    for i, (op, program) in enumerate(uniques.tolist()):
        f = first[i]
        key = _hlo_key(
            modules,
            "Host",
            int(np.int64(program).view(np.uint64)),
            str(strings[op]).split("::")[-1],
            str(strings[s["extra2"][f]]),
            str(strings[s["extra0"][f]]),
            str(strings[s["extra1"][f]]),
            "",
        )
        ident_key[i] = keys.setdefault(key, len(keys))
    table = _table_of_slots(hp, slots, ident_key[code], list(keys), HLO_IDS)
    return merge_rows(table, HLO_KEY, HLO_IDS)


def _framework_from_slots(
    hp: HostPass, slots: np.ndarray, full_names: Sequence[str], where: str, keep_unknown: np.ndarray
) -> OpTable | None:
    """Framework ops from slots (one per name source) whose events are named ``full_names[i]``.

    Slots whose name is not a framework op are left out, except where
    ``keep_unknown``. An op is keyed by its parsed name (XProf's key); its type
    is that of its earliest event.
    """
    parsed = [parse_framework_op(str(n)) for n in full_names]
    known = np.array([p.kind != "unknown" for p in parsed], dtype=bool) | keep_unknown
    slots = slots[known]
    parsed = [p for p, k in zip(parsed, known.tolist(), strict=True) if k]
    if len(slots) == 0:
        return None
    earliest = hp.slots["first_start_ps"][slots]
    type_of: dict[str, tuple[int, str]] = {}  # name -> (earliest start, type)
    for i, p in enumerate(parsed):
        seen = type_of.get(p.name)
        if seen is None or int(earliest[i]) < seen[0]:
            type_of[p.name] = (int(earliest[i]), p.type)
    index = {name: i for i, name in enumerate(type_of)}
    keys: list[tuple[str, ...]] = [(where, t, name) for name, (_, t) in type_of.items()]
    key_of_slot = np.array([index[p.name] for p in parsed], dtype=np.int64)
    return _table_of_slots(hp, slots, key_of_slot, keys, FRAMEWORK_IDS)


def _host_framework_ops(hp: HostPass, cls: int) -> OpTable | None:
    """Host-side framework ops: TF-op-named host events and host events with a ``tf_op`` stat."""
    s = hp.slots
    slots = hp.slots_of(cls)
    if len(slots) == 0:
        return None
    strings = hp.string_array
    tf = s["k0"][slots]
    md = s["k1"][slots]
    names = [
        str(strings[t]) if t else str(hp.meta.metadata_names[m]) for t, m in zip(tf.tolist(), md.tolist(), strict=True)
    ]
    return _framework_from_slots(hp, slots, names, "Host", keep_unknown=tf != 0)


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
    return merge_rows(table, FRAMEWORK_KEY, FRAMEWORK_IDS, occurrences=max_occurrences)


def _device_framework_from_kernels(hp: HostPass, recs: np.ndarray, tf_ops: np.ndarray) -> OpTable | None:
    """Non-XLA GPU kernels with a ``tf_op`` stat, as XProf: a device op per (framework op, kernel name),
    then per framework op the sums, and as occurrences the most kernels of one name."""
    rec = hp.records
    sel = tf_ops != ""
    recs, tf_ops = recs[sel], tf_ops[sel]
    if len(recs) == 0:
        return None
    op_uniques, _, op_code = _factorize(tf_ops)
    parsed = [parse_framework_op(str(u)) for u in op_uniques]
    _, _, md_code = _factorize(rec["md_row"][recs])
    pair_uniques, _, pair_code = _factorize(np.stack([op_code, md_code], axis=1))
    keys: list[tuple[str, ...]] = [
        ("Device", parsed[o].type or "Unknown", parsed[o].name) for o, _ in pair_uniques.tolist()
    ]
    dur = rec["duration_ps"][recs]
    per_kernel = aggregate(
        Occurrences(keys, pair_code, dur, dur.copy(), rec["flops"][recs], rec["bytes_accessed"][recs]),
        FRAMEWORK_IDS,
    )
    return merge_rows(per_kernel, FRAMEWORK_KEY, FRAMEWORK_IDS, occurrences=max_occurrences)


def _device_framework_from_lines(hp: HostPass, plane_indices: Sequence[int]) -> OpTable | None:
    """Framework ops of derived ``Framework Ops`` / ``TensorFlow Ops`` lines: one occurrence per event."""
    lines: list[int] = []
    names_of = hp.lines["name"]
    for pi in plane_indices:
        on_plane = np.flatnonzero((hp.lines["plane"] == pi) & (hp.lines["events"] > 0)).tolist()
        for wanted in FRAMEWORK_OP_LINES:
            found = [ln for ln in on_plane if names_of[ln] == wanted]
            if found:
                lines.extend(found)
                break
    s = hp.slots
    slots = hp.slots_of(C_ALL)
    slots = slots[np.isin(s["line"][slots], lines)]
    if len(slots) == 0:
        return None
    names = [str(n) for n in hp.md_names(s["k0"][slots])]
    return _framework_from_slots(hp, slots, names, "Device", keep_unknown=np.ones(len(slots), dtype=bool))


def device_type(hp: HostPass) -> str:
    """The kind of the device planes that hold events: TPU, GPU, else CPU."""
    with_events = set(hp.lines["plane"][hp.lines["events"] > 0].tolist())
    kinds = {p.device_type for p in hp.meta.planes_of_kind(PlaneKind.DEVICE) if p.index in with_events}
    return "TPU" if "TPU" in kinds else "GPU" if "GPU" in kinds else "CPU"


def _xla_ops_planes(hp: HostPass) -> set[int]:
    """Device planes with a non-empty XLA Ops line and no GPU streams (TPU)."""
    from xprof_core.index.classify import LF_TPU_OPS

    lines = (hp.lines["flags"] & LF_TPU_OPS) != 0
    return set(hp.lines["plane"][lines & (hp.lines["events"] > 0)].tolist())


def map_op_stats(source: Any, params: Params | None = None) -> Partial:
    """One host's op aggregation: HLO ops and framework ops with counts, times (ps), FLOPs and bytes.

    ``source`` is the host's :class:`~xprof_core.index.passes.HostPass` (or an
    XSpace, walked here). Returns ``{"version", "device_type", "xla_on",
    "peak_teraflops_per_core", "hlo": {...}, "framework": {...}, "reasons":
    {"hlo", "framework"}}``. ``hlo`` and ``framework`` hold one entry per op:
    identity strings (:data:`HLO_IDS`, :data:`FRAMEWORK_IDS`), int64
    ``occurrences``, ``total_ps``, ``self_ps``, ``min_ps`` and float64
    ``flops``, ``bytes``. ``xla_on`` says where XLA ran: "device", "host"
    (CPU-only) or "none".
    """
    from xprof_core.index.passes import host_pass_of

    hp = host_pass_of(source)
    modules = HloModules(hp.meta)
    hlo_tables: list[OpTable] = []
    fw_tables: list[OpTable] = []
    strings = hp.string_array

    tpu = _tpu_hlo_ops(hp, modules)
    if tpu is not None:
        hlo_tables.append(tpu)
    kernel_recs = gpu_kernel_records(hp)
    # The HLO op of every XLA kernel (command-buffer kernels attributed), "" for the others.
    kernel_hlo = kernel_ops(hp, modules).op_of(hp.records["row"][kernel_recs])
    kernel_tf = strings[hp.records["tf_op"][kernel_recs]]
    gpu = _gpu_hlo_ops(hp, modules, kernel_recs, kernel_hlo)
    if gpu is not None:
        hlo_tables.append(gpu)
    non_xla = kernel_hlo == ""
    tf_kernels = _device_framework_from_kernels(hp, kernel_recs[non_xla], kernel_tf[non_xla])
    if tf_kernels is not None:
        fw_tables.append(tf_kernels)

    host_has_xla = len(hp.slots_of(C_HLO)) > 0
    xla_on = "device" if hlo_tables else "host" if host_has_xla else "none"
    if xla_on == "host":
        host = _host_hlo_ops(hp, modules)
        if host is not None:
            hlo_tables.append(host)
    hlo = merge_rows(concat_tables(hlo_tables, HLO_IDS), HLO_KEY, HLO_IDS)
    if len(hlo):
        fw_tables.append(_device_framework_from_hlo(hlo))

    # Device planes with neither XLA ops nor tf_op kernels: their derived framework-op lines.
    kernel_planes = hp.record_plane[kernel_recs]
    with_ops = set(kernel_planes[(kernel_hlo != "") | (kernel_tf != "")].tolist()) | _xla_ops_planes(hp)
    bare = [p.index for p in hp.meta.planes_of_kind(*ON_DEVICE) if p.index not in with_ops]
    from_lines = _device_framework_from_lines(hp, bare)
    if from_lines is not None:
        fw_tables.append(from_lines)
    # Host XLA events reported as HLO ops are not host framework ops as well.
    host_fw = _host_framework_ops(hp, C_FW_NOHLO if xla_on == "host" else C_FW_ALL)
    if host_fw is not None:
        fw_tables.append(host_fw)
    framework = merge_rows(concat_tables(fw_tables, FRAMEWORK_IDS), FRAMEWORK_KEY, FRAMEWORK_IDS)

    peaks = [float(p.stats.get("peak_teraflops_per_second") or 0.0) for p in hp.meta.planes_of_kind(*ON_DEVICE)]
    dtype = device_type(hp)
    return {
        "version": VERSION,
        "device_type": dtype,
        "xla_on": xla_on,
        "peak_teraflops_per_core": max(peaks, default=0.0),
        # XProf's denominator of the ops' time shares: device time from first op to last, gaps included.
        "device_total_time_ps": device_total_time_ps(hp),
        "hlo": hlo.to_partial(),
        "framework": framework.to_partial(),
        "reasons": {
            "hlo": None if len(hlo) else _no_hlo_reason(dtype),
            "framework": None if len(framework) else "no framework ops: no TensorFlow/JAX op events on host or device",
        },
    }


def _no_hlo_reason(dtype: str) -> str:
    if dtype == "GPU":
        return (
            "no XLA ops: no GPU kernel carries an hlo_op stat (a TensorFlow profile without XLA?); "
            "see framework_op_stats"
        )
    return "no XLA ops: no 'XLA Ops' line on a device plane and no host event with an hlo_op stat"


__all__ = ["category_from_name", "device_type", "gpu_kernel_records", "map_op_stats"]
