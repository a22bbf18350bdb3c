"""Derived trace lines: what each device stream ran, one level up, as XProf's trace viewer shows it.

:func:`derived_lines` takes a host's :class:`~xprof_core.model.xspace.XSpace` and returns, per
device plane, synthetic lines built from the events of the plane's own lines:

* **GPU planes**, per stream (``Stream #N``), from its kernels (events with ``kernel_details``),
  in start order: ``Framework Name Scope``, ``Framework Ops``, ``XLA Modules``, ``XLA Ops`` and
  ``Source code``, each named ``"<line> - from #<stream id>"`` and shown only when non-empty;
  plus one ``Steps`` line per plane. Consecutive kernels of the same op (same module, same step)
  become one derived event spanning them (XProf's ``DerivedXLineBuilder``):

  - ``XLA Modules``: ``hlo_module(program_id)``;
  - ``XLA Ops``: the ``hlo_op`` (levels separated by ``::`` nest), keyed by its program;
  - ``Framework Ops`` / ``Framework Name Scope``: the framework op of the kernel's HLO op (its
    ``op_name:op_type`` metadata in the host's HLO protos) or, for a kernel outside XLA, its
    ``tf_op`` stat; the op's name scopes (``a/b/op`` -> ``a``, ``b``) nest on the scope line;
  - ``Source code``: the HLO op's ``file:line`` (the file's base name, as XProf writes it);
  - ``Steps``: every event of the plane, in start order, takes the step of the host launch
    that issued it (``correlation_id``), or the step of the event before it (XProf's
    ``ProcessUngroupedEvents``); each run of one step is a step event named
    ``"<marker> <step_num>"`` (``train 3``). Step markers are the host events carrying
    ``step_num`` (JAX's ``StepTraceAnnotation``); a launch belongs to the marker that encloses
    it on its own thread.

  A new XLA Modules event starts new XLA Ops and scope events; a new outermost scope starts a new
  Framework Ops event (XProf's dependent lines).
* **TPU planes**, from the ``XLA Ops`` line (its events carry ``tf_op`` and ``source``):
  ``Framework Name Scope``, ``Framework Ops`` and ``Source code``; consecutive equal events of
  one program run (the ``XLA Modules`` event that holds them) merge; outside any run they merge
  only while the gap to the next is within twice the merged event's length (XProf's rule for
  events without a group).
* Planes that already hold derived lines (older TensorFlow profiles write ``Steps``,
  ``TensorFlow Ops`` ... themselves) get none.

Not derived: XProf's ``Command Buffers`` line, ``Launch Stats`` and TPU ``Host Offload Ops``
rows, and its 1 ns trimming of stacked events of equal span.

Everything is vectorised over events; Python runs per line, per distinct name and per level.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from xprof_core.index.framework_ops import parse_framework_op
from xprof_core.index.hlo_proto import HloModules
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import Line, XSpace
from xprof_core.tools.event_columns import derived, factorize_first_seen, host_rows, string_stat, u64_stat

# Line names, in the order XProf shows them under their stream.
NAME_SCOPE = "Framework Name Scope"
FRAMEWORK_OPS = "Framework Ops"
XLA_MODULES = "XLA Modules"
XLA_OPS = "XLA Ops"
SOURCE = "Source code"
STEPS = "Steps"
STREAM_LINE_ORDER = (NAME_SCOPE, FRAMEWORK_OPS, XLA_MODULES, XLA_OPS, SOURCE)
# XProf's separator of nested HLO op names in one ``hlo_op`` stat.
HLO_LEVEL_SEPARATOR = "::"


@dataclass(frozen=True)
class DerivedLine:
    """One derived line of one plane: events sorted by start, nested events by depth.

    ``start_ps``/``duration_ps`` are absolute int64 ps (the XSpace's own clock);
    ``name`` indexes :attr:`DerivedLines.names`; ``step`` indexes
    :attr:`DerivedLines.step_names` (-1: no step).
    """

    plane: int  # plane index in the XSpace
    name: str  # "XLA Ops - from #14", "Steps", "Framework Ops"
    source_line: int  # XSpace line index it was derived from (-1: the whole plane, the Steps line)
    start_ps: np.ndarray
    duration_ps: np.ndarray
    name_index: np.ndarray  # int32
    step: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.start_ps)


@dataclass(frozen=True)
class DerivedLines:
    """The derived lines of one host (see the module docstring), plus what their events' details show.

    ``details[i]`` belongs to ``names[i]``: the stats XProf's events of that name carry
    (``hlo_module``, ``program_id`` as an exact decimal string, ``tf_op``, ...).
    """

    lines: list[DerivedLine] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    step_names: list[str] = field(default_factory=list)

    @property
    def num_events(self) -> int:
        return sum(len(ln) for ln in self.lines)

    @cached_property
    def events(self) -> DerivedEvents:
        """Every derived event as one set of columns, line after line (an event's *local row*)."""
        if not self.lines:
            z = np.zeros(0, dtype=np.int64)
            return DerivedEvents(z, z, z.astype(np.int32), z.astype(np.int32), z)

        def cat(get: Any, dtype: Any) -> np.ndarray:
            return np.concatenate([get(ln) for ln in self.lines]).astype(dtype)

        return DerivedEvents(
            cat(lambda ln: ln.start_ps, np.int64),
            cat(lambda ln: ln.duration_ps, np.int64),
            np.repeat(np.arange(len(self.lines), dtype=np.int32), [len(ln) for ln in self.lines]),
            cat(lambda ln: ln.name_index, np.int32),
            cat(lambda ln: ln.step, np.int64),
        )

    def render_args(self, local_rows: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The args of derived events as JSON objects: (blob, offsets), event i is ``blob[o[i]:o[i + 1]]``.

        An event's args are its name's details plus ``group_id`` (its step) when it has one, as
        XProf's derived events carry. Each distinct (name, step) is rendered once.
        """
        ev = self.events
        local_rows = np.asarray(local_rows, dtype=np.int64)
        pairs = np.stack([ev.name_index[local_rows].astype(np.int64), ev.step[local_rows]], axis=1)
        if not len(pairs):
            return b"", np.zeros(1, dtype=np.int64)
        uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
        parts = []
        for name, step in uniq.tolist():
            args = dict(self.details[name])
            if step >= 0:
                args["group_id"] = step
            parts.append(orjson.dumps(args))
        lengths = np.array([len(x) for x in parts], dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        return gather_segments(b"".join(parts), starts[inverse.reshape(-1)], lengths[inverse.reshape(-1)])


@dataclass(frozen=True)
class DerivedEvents:
    """All derived events of a host: absolute ``start_ps``, ``duration_ps``, the index of their
    ``line`` in :attr:`DerivedLines.lines`, ``name_index`` and ``step`` (-1: none)."""

    start_ps: np.ndarray
    duration_ps: np.ndarray
    line: np.ndarray
    name_index: np.ndarray
    step: np.ndarray


def gather_segments(blob: bytes, starts: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Byte segments ``blob[starts[i]:starts[i] + lengths[i]]`` laid end to end: (bytes, offsets)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if not total:
        return b"", offsets
    src = np.frombuffer(blob, dtype=np.uint8)
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
    return src[index].tobytes(), offsets


class _Names:
    """Interned derived-event names and their details, keyed by (kind, identity)."""

    def __init__(self) -> None:
        self.index: dict[tuple[Any, ...], int] = {}
        self.names: list[str] = []
        self.details: list[dict[str, Any]] = []

    def get(self, key: tuple[Any, ...], name: str, details: dict[str, Any]) -> int:
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.names)
            self.names.append(name)
            self.details.append(details)
        return i


# --- steps ---


@dataclass(frozen=True)
class _Steps:
    names: list[str]  # per step: "train 3"
    corr_ids: np.ndarray  # sorted uint64 correlation ids of host launches inside a step
    corr_step: np.ndarray  # step of each


def _host_steps(xs: XSpace) -> _Steps:
    """Step markers (host events with ``step_num``, the most common name) and the launches they enclose."""
    empty = _Steps([], np.zeros(0, np.uint64), np.zeros(0, np.int64))
    host = host_rows(xs)
    if not len(host):
        return empty
    nums = xs.stat(host, "step_num", include_metadata=False)
    if not nums.present.any() or nums.values.dtype == object:
        return empty
    marked = host[nums.present]
    names = xs.event_names(marked).astype(str)
    uniq, counts = np.unique(names, return_counts=True)
    marker_name = str(uniq[np.argmax(counts)])
    keep = names == marker_name
    rows = marked[keep]
    step_num = np.asarray(nums.values[nums.present][keep], dtype=np.int64)
    order = np.lexsort((-xs.duration_ps[rows], xs.start_ps[rows]))
    rows, step_num = rows[order], step_num[order]
    step_names = [f"{marker_name} {n}" for n in step_num.tolist()]
    corr = xs.stat(host, "correlation_id", include_metadata=False)
    if not corr.present.any() or corr.values.dtype == object:
        return _Steps(step_names, empty.corr_ids, empty.corr_step)
    launch = host[corr.present]
    launch_ids = corr.values[corr.present].astype(np.int64).view(np.uint64)
    # The marker enclosing each launch on the launch's own thread: markers of a line sorted by start.
    step_of = np.full(len(launch), -1, dtype=np.int64)
    m_line = xs.line_of_event[rows]
    l_line = xs.line_of_event[launch]
    m_start, m_end = xs.start_ps[rows], xs.start_ps[rows] + xs.duration_ps[rows]
    for line in np.unique(m_line).tolist():
        ms = np.flatnonzero(m_line == line)
        ls = np.flatnonzero(l_line == line)
        if not len(ls):
            continue
        t = xs.start_ps[launch[ls]]
        k = np.searchsorted(m_start[ms], t, side="right") - 1
        ok = (k >= 0) & (t + xs.duration_ps[launch[ls]] <= m_end[ms[np.maximum(k, 0)]])
        step_of[ls[ok]] = ms[k[ok]]
    ok = step_of >= 0
    order = np.argsort(launch_ids[ok], kind="stable")
    return _Steps(step_names, launch_ids[ok][order], step_of[ok][order])


def _steps_of(steps: _Steps, xs: XSpace, rows: np.ndarray) -> np.ndarray:
    """Step of each device row through its launch's correlation_id (-1: none)."""
    out = np.full(len(rows), -1, dtype=np.int64)
    if not len(steps.corr_ids) or not len(rows):
        return out
    ids, present = u64_stat(xs, rows, "correlation_id")
    pos = np.clip(np.searchsorted(steps.corr_ids, ids), 0, len(steps.corr_ids) - 1)
    hit = present & (steps.corr_ids[pos] == ids)
    out[hit] = steps.corr_step[pos[hit]]
    return out


def _forward_fill(step: np.ndarray) -> np.ndarray:
    """Each -1 takes the last step before it; leading -1s stay."""
    idx = np.where(step >= 0, np.arange(len(step)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, step[np.maximum(idx, 0)], -1)


# --- the run-merge of DerivedXLineBuilder, vectorised ---


@dataclass
class _Level:
    """Events of one derived line being built: per event, its level, name, span and step."""

    start: list[np.ndarray] = field(default_factory=list)
    end: list[np.ndarray] = field(default_factory=list)
    name: list[np.ndarray] = field(default_factory=list)
    step: list[np.ndarray] = field(default_factory=list)

    def add(self, start: np.ndarray, end: np.ndarray, name: np.ndarray, step: np.ndarray) -> None:
        self.start.append(start)
        self.end.append(end)
        self.name.append(name)
        self.step.append(step)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.start:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z.astype(np.int32), z
        s, e, n, g = (np.concatenate(x) for x in (self.start, self.end, self.name, self.step))
        order = np.lexsort((s - e, s))  # by start, longer (outer) first
        return s[order], e[order], n[order].astype(np.int32), g[order]


def _merge_runs(
    keys: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    step: np.ndarray,
    reset: np.ndarray,
    gpu: bool,
    out: _Level,
) -> np.ndarray:
    """Merge consecutive events with equal keys level by level (XProf's ExpandOrAddEvents).

    IN: ``keys`` (n, L) int64 name ids per level, -1 past an event's last level (an event with
    no level does not touch the line); ``start``/``end`` int64 ps of the n source events in start
    order; ``step`` int64 (-1: none); ``reset`` bool, True where a line this one depends on
    started a new event (an event after a reset starts anew).
    OUT: appends the merged events to ``out``; returns a bool per source event, True where it
    started a new outermost (level 0) event (what the dependent lines reset on).
    """
    n, depth = keys.shape if keys.ndim == 2 else (len(keys), 0)
    new_outer = np.zeros(n, dtype=bool)
    levels = (keys >= 0).sum(axis=1) if depth else np.zeros(n, dtype=np.int64)
    part = np.flatnonzero(levels > 0)
    if not len(part):
        return new_outer
    k = keys[part]
    lv = levels[part]
    g = step[part]
    resets = np.cumsum(reset)
    prev = np.r_[-1, part[:-1]]
    between = np.ones(len(part), dtype=bool)
    between[1:] = resets[part[1:]] - resets[prev[1:]] > 0
    between[0] = True
    col = np.arange(depth)
    lv_prev = np.r_[0, lv[:-1]]
    k_prev = np.vstack([np.full((1, depth), -1, dtype=np.int64), k[:-1]])
    g_prev = np.r_[-2, g[:-1]]
    new = (col[None, :] >= lv_prev[:, None]) | (k != k_prev) | (g != g_prev)[:, None] | between[:, None]
    new = np.logical_or.accumulate(new, axis=1)
    valid = col[None, :] < lv[:, None]
    s, e = start[part], end[part]
    for level in range(depth):
        at = np.flatnonzero(valid[:, level])
        if not len(at):
            continue
        starts_new = new[at, level]
        if not gpu:
            starts_new = _split_by_gap(starts_new, s[at], e[at], g[at])
        first = np.flatnonzero(starts_new)
        out.add(
            s[at][first],
            np.maximum.reduceat(e[at], first),
            k[at[first], level],
            g[at][first],
        )
        if level == 0:
            new_outer[part[at[first]]] = True
    return new_outer


def _split_by_gap(starts_new: np.ndarray, s: np.ndarray, e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """XProf's rule off GPUs: an event without a step joins the merged event before it only when it
    starts within twice that merged event's length after its end. Sequential, over the candidates."""
    out = starts_new.copy()
    begin = end = 0
    for i in range(len(out)):
        if out[i]:
            begin, end = int(s[i]), int(e[i])
            continue
        if g[i] < 0 and end + 2 * (end - begin) < int(s[i]):
            out[i] = True
            begin, end = int(s[i]), int(e[i])
        else:
            end = max(end, int(e[i]))
    return out


def _pad_levels(parts: Sequence[Sequence[int]]) -> np.ndarray:
    """(n, max levels) int64 array of name ids, -1 padded."""
    depth = max((len(p) for p in parts), default=0)
    keys = np.full((len(parts), depth), -1, dtype=np.int64)
    for i, p in enumerate(parts):
        keys[i, : len(p)] = p
    return keys


# --- per stream ---


@dataclass
class _Symbols:
    """Per distinct (program, hlo op): the framework op and source line of the HLO instruction."""

    modules: HloModules
    cache: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)

    def resolve(self, program_id: int | None, hlo_op: str) -> tuple[str, str]:
        key = (-1 if program_id is None else program_id, hlo_op)
        if key not in self.cache:
            ins = None if program_id is None else self.modules.instruction(program_id, hlo_op)
            if ins is None:
                self.cache[key] = ("", "")
            else:
                source = ins.source
                if source:
                    path, _, line = source.rpartition(":")
                    source = f"{posixpath.basename(path)}:{line}"
                # XProf writes "op_name:op_type" even when XLA recorded no framework op: ":".
                self.cache[key] = (ins.provenance or ":", source)
        return self.cache[key]


def _framework_keys(names: _Names, tf_ops: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Per framework op full name: its Framework Ops name id (one level) and its scope name ids."""
    op_keys: list[list[int]] = []
    scope_keys: list[list[int]] = []
    for full in tf_ops:
        if not full:
            op_keys.append([])
            scope_keys.append([])
            continue
        op = parse_framework_op(full)
        shown = (op.type if op.kind in ("tensorflow", "jax") and op.type else op.name) or full
        op_keys.append([names.get(("tf_op", full), shown, {"tf_op": full})])
        scopes = op.name.split("/")[:-1] if op.kind in ("tensorflow", "jax") else []
        scope_keys.append([names.get(("scope", sc), sc, {}) for sc in scopes])
    return op_keys, scope_keys


@dataclass(frozen=True)
class _RowSteps:
    """The step of device rows: ``rows`` sorted, ``step`` of each."""

    rows: np.ndarray
    step: np.ndarray

    def of(self, rows: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.rows, rows), 0, max(len(self.rows) - 1, 0))
        hit = self.rows[pos] == rows if len(self.rows) else np.zeros(len(rows), dtype=bool)
        return np.where(hit, self.step[pos] if len(self.rows) else -1, -1).astype(np.int64)


def _stream_lines(
    xs: XSpace, line: Line, row_steps: _RowSteps, names: _Names, symbols: _Symbols, gpu_suffix: bool
) -> list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """The derived lines of one GPU stream, in XProf's order, as (name, columns)."""
    rows = line.rows[xs.is_timed[line.rows]]
    kernel = xs.stat(rows, "kernel_details").present | xs.stat(rows, "cuda_graph_exec_id").present
    rows = rows[kernel]
    if not len(rows):
        return []
    rows = rows[np.lexsort((-xs.duration_ps[rows], xs.start_ps[rows]))]
    start = xs.start_ps[rows]
    end = start + xs.duration_ps[rows]
    step = row_steps.of(rows)
    module = string_stat(xs, rows, "hlo_module")
    program, has_program = u64_stat(xs, rows, "program_id")
    hlo_op = string_stat(xs, rows, "hlo_op")
    tf_op = string_stat(xs, rows, "tf_op")

    # Distinct (module, program, hlo op, tf_op) combinations: names and symbols resolved once each.
    # Each column is factorized on its own and the codes combined as one int64 (no tuple per kernel).
    columns = [factorize_first_seen(module), factorize_first_seen(hlo_op), factorize_first_seen(tf_op)]
    _, prog_code = np.unique(np.where(has_program, program, 0), return_inverse=True)
    prog_code = prog_code.reshape(-1) * 2 + has_program
    combined = prog_code.astype(np.int64)
    for uniques, codes in columns:
        combined = combined * len(uniques) + codes
    _, first, code = np.unique(combined, return_index=True, return_inverse=True)
    code = code.reshape(-1)
    mod_key, op_levels, fw_full, src_key = [], [], [], []
    for i in first.tolist():
        mod, op, tf = module[i], hlo_op[i], tf_op[i]
        has_prog = bool(has_program[i])
        pid = int(program[i]) if has_prog else None
        if mod:
            shown = f"{mod}({pid})" if pid is not None else mod
            details = {"hlo_module": mod, **({"program_id": str(pid)} if pid is not None else {})}
            mod_key.append(names.get(("module", mod, pid), shown, details))
        else:
            mod_key.append(-1)
        if op:
            parts = op.split(HLO_LEVEL_SEPARATOR)
            prefix = str(pid) if pid is not None else mod
            op_levels.append(
                [
                    names.get(
                        ("hlo_op", prefix, p),
                        p,
                        {"hlo_op": p, "hlo_module": mod, **({"program_id": str(pid)} if pid is not None else {})},
                    )
                    for p in parts
                ]
            )
            framework, source = symbols.resolve(pid, parts[-1])
            fw_full.append(framework)
            src_key.append(names.get(("source", source), source, {}) if source else -1)
        else:
            op_levels.append([])
            fw_full.append(tf)  # a kernel outside XLA: its own framework op
            src_key.append(-1)
    fw_ops, fw_scopes = _framework_keys(names, fw_full)

    mod_keys = np.array(mod_key, dtype=np.int64)[code][:, None]
    op_keys = _pad_levels(op_levels)[code]
    fw_keys = _pad_levels(fw_ops)[code]
    scope_keys = _pad_levels(fw_scopes)[code]
    src_keys = np.array(src_key, dtype=np.int64)[code][:, None]
    none = np.zeros(len(rows), dtype=bool)
    built = {name: _Level() for name in STREAM_LINE_ORDER}
    new_module = _merge_runs(mod_keys, start, end, step, none, True, built[XLA_MODULES])
    _merge_runs(op_keys, start, end, step, new_module, True, built[XLA_OPS])
    new_scope = _merge_runs(scope_keys, start, end, step, new_module, True, built[NAME_SCOPE])
    _merge_runs(fw_keys, start, end, step, new_module | new_scope, True, built[FRAMEWORK_OPS])
    _merge_runs(src_keys, start, end, step, none, True, built[SOURCE])
    suffix = f" - from #{line.id}" if gpu_suffix else ""
    out = []
    for name in STREAM_LINE_ORDER:
        cols = built[name].columns()
        if len(cols[0]):
            out.append((f"{name}{suffix}", cols))
    return out


def _module_runs(xs: XSpace, modules: Line | None, start: np.ndarray) -> np.ndarray:
    """Index of the XLA Modules event (one program run) holding each start, -1 outside every run.

    XProf groups a TPU op with its program run through the host launch; the run that encloses
    the op on the device is the same run.
    """
    out = np.full(len(start), -1, dtype=np.int64)
    if modules is None or not len(modules):
        return out
    rows = modules.rows[xs.is_timed[modules.rows]]
    rows = rows[np.argsort(xs.start_ps[rows], kind="stable")]
    ms = xs.start_ps[rows]
    me = ms + xs.duration_ps[rows]
    k = np.searchsorted(ms, start, side="right") - 1
    ok = (k >= 0) & (start < me[np.maximum(k, 0)])
    out[ok] = k[ok]
    return out


def _tpu_lines(
    xs: XSpace, line: Line, modules: Line | None, names: _Names
) -> list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """Framework Name Scope, Framework Ops and Source code of a TPU plane's XLA Ops line."""
    rows = line.rows[xs.is_timed[line.rows]]
    if not len(rows):
        return []
    rows = rows[np.lexsort((-xs.duration_ps[rows], xs.start_ps[rows]))]
    start = xs.start_ps[rows]
    end = start + xs.duration_ps[rows]
    step = _module_runs(xs, modules, start)
    tf_op = string_stat(xs, rows, "tf_op")
    source = string_stat(xs, rows, "source")
    uniq_tf, code_tf = factorize_first_seen(tf_op)
    fw_ops, fw_scopes = _framework_keys(names, uniq_tf.tolist())
    uniq_src, code_src = factorize_first_seen(source)
    src_key = np.array([names.get(("source", s), s, {}) if s else -1 for s in uniq_src.tolist()], dtype=np.int64)
    none = np.zeros(len(rows), dtype=bool)
    scope, ops, src = _Level(), _Level(), _Level()
    new_scope = _merge_runs(_pad_levels(fw_scopes)[code_tf], start, end, step, none, False, scope)
    _merge_runs(_pad_levels(fw_ops)[code_tf], start, end, step, new_scope, False, ops)
    _merge_runs(src_key[code_src][:, None], start, end, step, none, False, src)
    out = []
    for name, level in ((NAME_SCOPE, scope), (FRAMEWORK_OPS, ops), (SOURCE, src)):
        cols = level.columns()
        if len(cols[0]):
            out.append((name, cols))
    return out


def _steps_line(
    xs: XSpace, rows: np.ndarray, steps: _Steps, names: _Names
) -> tuple[_RowSteps, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]:
    """(step of each device row, the plane's Steps line) from its events in start order."""
    rows = rows[np.lexsort((-xs.duration_ps[rows], xs.start_ps[rows]))]
    step = _forward_fill(_steps_of(steps, xs, rows))
    by_row = np.argsort(rows, kind="stable")
    row_steps = _RowSteps(rows[by_row], step[by_row])
    grouped = step >= 0
    if not grouped.any():
        return row_steps, None
    r, g = rows[grouped], step[grouped]
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    s = xs.start_ps[r]
    e = s + xs.duration_ps[r]
    name = np.array(
        [names.get(("step", int(x)), steps.names[int(x)], {"group_id": int(x)}) for x in g[first]], dtype=np.int32
    )
    return row_steps, (s[first], np.maximum.reduceat(e, first), name, g[first])


def derived_lines(xs: XSpace) -> DerivedLines:
    """The derived lines of every device plane of one host (see the module docstring)."""
    names = _Names()
    out: list[DerivedLine] = []
    steps: _Steps | None = None
    symbols: _Symbols | None = None
    for plane in xs.planes:
        if plane.kind != PlaneKind.DEVICE:
            continue
        lines = [ln for ln in plane.lines if len(ln)]
        if not lines or any(derived(ln, frozenset({STEPS, "TensorFlow Ops", FRAMEWORK_OPS})) for ln in lines):
            continue
        streams = [ln for ln in lines if ln.name.startswith("Stream #")]
        if streams:
            steps = steps or _host_steps(xs)
            symbols = symbols or _Symbols(HloModules(xs))
            rows = np.concatenate([ln.rows for ln in streams])
            rows = rows[xs.is_timed[rows]]
            row_steps, step_cols = _steps_line(xs, rows, steps, names)
            if step_cols is not None:
                out.append(_line(plane.index, STEPS, -1, step_cols))
            for ln in streams:
                for name, cols in _stream_lines(xs, ln, row_steps, names, symbols, True):
                    out.append(_line(plane.index, name, ln.index, cols))
        else:
            modules = next((ln for ln in lines if ln.name == XLA_MODULES), None)
            for ln in lines:
                if ln.name == XLA_OPS:
                    for name, cols in _tpu_lines(xs, ln, modules, names):
                        out.append(_line(plane.index, name, ln.index, cols))
    return DerivedLines(out, names.names, names.details, steps.names if steps else [])


def _line(
    plane: int, name: str, source: int, cols: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> DerivedLine:
    s, e, n, g = cols
    return DerivedLine(
        plane, name, source, s.astype(np.int64), (e - s).astype(np.int64), n.astype(np.int32), g.astype(np.int64)
    )


__all__ = ["DerivedEvents", "DerivedLine", "DerivedLines", "derived_lines", "gather_segments"]
