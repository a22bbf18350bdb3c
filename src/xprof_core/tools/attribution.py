"""Which HLO op each GPU kernel belongs to, and which rule said so.

XLA tells the profiler which HLO op launched a kernel through the kernel's
``hlo_op`` stat (with ``program_id`` naming the module). Kernels that run
inside a command buffer (a CUDA graph) are launched by the graph, not by
their op, so their ``hlo_op`` names the command-buffer thunk
(``command_buffer_1``) and every kernel of one graph launch carries the same
``correlation_id`` (the ``cuGraphLaunch``) and ``scope_range_id``. Tools must
not read ``hlo_op`` themselves: :func:`kernel_ops` gives every XLA kernel of a
host its op, and every tool that shows a kernel's op (hlo_stats,
framework_op_stats, op_profile, overview_page's top ops, kernel_stats' op
column) goes through it.

Rules, in the order they are tried (most trusted first); each kernel records
the rule that attributed it (:data:`RULES`):

``hlo_op``
    The kernel's own ``hlo_op`` (its last ``::``-separated level, as XProf
    reads it) is not a command buffer: that is its op.
``scope``
    XLA opens one profiler scope per thunk it runs and stamps the scope id on
    what the thunk launches; ``/host:__ScopeRangeCallStack__`` maps each scope
    to its parent (one plane stat per scope: stat-metadata id = scope id,
    value = parent id). A command-buffer kernel whose scope, or the nearest
    enclosing scope, is the scope of a kernel that names its op directly
    belongs to that op. (Scopes carry no names of their own.)
``hlo_structure``
    A command buffer runs the thunks of a stretch of the entry computation's
    schedule, one command per thunk, in schedule order. The kernels of one
    graph launch (one ``correlation_id``), in the order they ran, are aligned
    with the thunk-producing instructions of that stretch by dynamic
    programming over name compatibility: a kernel fits an instruction when it
    bears the instruction's name (``loop_add_fusion_2`` for
    ``loop_add_fusion.2``), the name of an identical fusion XLA reused the
    kernel of (same name stem: ``fusion_303`` for ``fusion.304``), a library
    kernel for a custom call (cuBLAS ``nvjet_*``, cuDNN, CUTLASS), or a
    memset/memcpy (any op; a memset opens the op after it). A kernel that fits
    no instruction in its place is left out (and goes on to the next rule);
    an alignment that leaves out more than a tenth of the kernels or of the
    instructions is not trusted. The stretch is the whole list of thunk instructions not seen
    outside a command buffer when the program has one command buffer, else
    the runs between such instructions, one per command buffer in number
    order. Schedules with control flow (while, conditional, call, async ops)
    are left to the next rule: their kernel sequence depends on run-time data.
``kernel_name``
    The kernel bears the name of exactly one instruction of its module
    (``gemm_fusion_dot_3`` is ``gemm_fusion_dot.3``). Least trusted: XLA
    reuses one kernel for identical fusions, so ``loop_rsqrt_fusion_7`` also
    runs ``loop_rsqrt_fusion.6``.
``unattributed``
    None of the above: the kernel is reported under
    ``unattributed in command_buffer_N`` with its time, never under a guess.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.index.hlo_proto import HloInstruction, HloModules, kernel_name_key
from xprof_core.index.passes import RF_CORR, RF_NODE, RF_SCOPE, HostPass, host_pass_of
from xprof_core.model.planes import SCOPE_TREE_PLANE, PlaneKind
from xprof_core.model.xspace import XSpace

RULES = ("hlo_op", "scope", "hlo_structure", "kernel_name", "unattributed")
RULE_HLO_OP, RULE_SCOPE, RULE_HLO_STRUCTURE, RULE_KERNEL_NAME, RULE_UNATTRIBUTED = range(len(RULES))
UNATTRIBUTED_PREFIX = "unattributed in "

_COMMAND_BUFFER = re.compile(r"^command_buffer(_\d+)?$")
_COPY_KERNEL = re.compile(r"^(memset|memcpy)", re.IGNORECASE)
_NAME_SUFFIX = re.compile(r"(_\d+)+$")
# Instructions that launch nothing on the device (no thunk).
_NO_THUNK = frozenset(
    {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "add-dependency", "opt-barrier"}
)
# Alignment costs. As an op's first kernel: one that bears the op's name costs 0, a plausible
# one (a reused fusion kernel, a library kernel of a custom call) 1, a memset or memcpy 1. A
# further kernel of the same op costs 1.5 more, except right after a memset or memcpy (a
# memset opens the op whose kernel follows it), and a further memset 2. An op with no kernel
# costs 3, a kernel left out 4; an impossible pairing costs _BIG and is never chosen.
_EXACT, _FITS, _EXTRA, _COPY_FIRST, _COPY_EXTRA = 0.0, 1.0, 1.5, 1.0, 2.0
_NO_KERNEL, _LEFT_OUT, _BIG = 3.0, 4.0, 1e6
# An alignment that leaves out more than this share of the kernels, or of the ops, is not trusted.
MAX_LEFT_OUT_SHARE = 0.1
# The alignment stores two int32 back-pointer tables of (ops x kernels): above this it is skipped.
MAX_ALIGNMENT_CELLS = 10_000_000


def is_unattributed(op: str) -> bool:
    """Whether an op name is the explicit row of a command buffer's unattributed kernels."""
    return op.startswith(UNATTRIBUTED_PREFIX)


def is_command_buffer(hlo_op: str) -> bool:
    """Whether an ``hlo_op`` stat (last ``::`` level) names a command-buffer thunk, not an op."""
    return _COMMAND_BUFFER.match(hlo_op.split("::")[-1]) is not None


@dataclass(frozen=True)
class KernelOps:
    """The HLO op of every XLA kernel of one host (events of GPU streams that carry ``hlo_op``).

    Parallel arrays over ``rows`` (int64 event rows, ascending): ``program_id``
    (uint64, 0 when absent), ``op`` (object array of str: the instruction name,
    or ``unattributed in command_buffer_N``), ``rule`` (int8 index into
    :data:`RULES`) and ``command_buffer`` (the command buffer the kernel ran
    in, "" outside command buffers).
    """

    rows: np.ndarray
    program_id: np.ndarray
    op: np.ndarray
    rule: np.ndarray
    command_buffer: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def op_of(self, rows: np.ndarray) -> np.ndarray:
        """The op of each of ``rows`` (object array of str), "" for rows that are not XLA kernels."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full(len(rows), "", dtype=object)
        if len(self.rows) and len(rows):
            pos = np.clip(np.searchsorted(self.rows, rows), 0, len(self.rows) - 1)
            hit = self.rows[pos] == rows
            out[hit] = self.op[pos[hit]]
        return out

    def rule_counts(self, duration_ps: np.ndarray | None = None) -> dict[str, int]:
        """Kernels (or, given the kernels' durations, ps) per rule."""
        weights = None if duration_ps is None else np.asarray(duration_ps, dtype=np.float64)
        counts = np.bincount(self.rule.astype(np.int64), weights=weights, minlength=len(RULES))
        return {name: int(round(float(c))) for name, c in zip(RULES, counts, strict=True)}


def kernel_ops(source: Any, modules: HloModules | None = None) -> KernelOps:
    """The attribution of every XLA kernel of a host (a HostPass or an XSpace), computed once per pass."""
    hp = host_pass_of(source)
    with _LOCK:
        cached = hp.derived.get("kernel_ops")
    if cached is not None:
        return cached
    result = _attribute(hp, modules if modules is not None else HloModules(hp.meta))
    with _LOCK:
        hp.derived["kernel_ops"] = result
    return result


_LOCK = threading.Lock()


# ---- the rules ------------------------------------------------------------------------------


def _u64(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int64).view(np.uint64)


def _xla_kernel_records(hp: HostPass) -> tuple[np.ndarray, np.ndarray]:
    """(records, hlo_op) of the timed events of GPU streams that carry a non-empty ``hlo_op``, by row."""
    from xprof_core.index.records import gpu_kernel_records

    recs = gpu_kernel_records(hp)
    recs = recs[np.argsort(hp.records["row"][recs], kind="stable")]
    hlo = hp.string_array[hp.records["hlo_op"][recs]]
    keep = hlo != ""
    return recs[keep], hlo[keep]


def scope_tree(xs: XSpace) -> dict[int, int]:  # the host's planes and metadata (a host pass's ``meta``)
    """Parent of each profiler scope id, from ``/host:__ScopeRangeCallStack__`` ({} without it).

    Stats of that plane whose metadata carries a name (``process_id``) are not scopes.
    """
    tree: dict[int, int] = {}
    for plane in xs.planes_of_kind(PlaneKind.HOST_OTHER):
        if plane.name != SCOPE_TREE_PLANE:
            continue
        named = {i for i, name in plane.stat_metadata.items() if name}
        for scope, parent in plane.stats_by_id().items():
            if scope not in named and isinstance(parent, int):
                tree[scope] = parent
    return tree


def _attribute(hp: HostPass, modules: HloModules) -> KernelOps:
    recs, hlo = _xla_kernel_records(hp)
    rows = hp.records["row"][recs]
    n = len(recs)
    program = _u64(hp.records["program_id"][recs])
    op = np.empty(n, dtype=object)
    rule = np.full(n, RULE_HLO_OP, dtype=np.int8)
    buffer = np.full(n, "", dtype=object)
    hlo_uniques, hlo_code = np.unique(hlo, return_inverse=True) if n else (np.zeros(0, object), np.zeros(0, int))
    last_level = [str(h).split("::")[-1] for h in hlo_uniques]
    in_buffer_of_code = np.array([_COMMAND_BUFFER.match(h) is not None for h in last_level], dtype=bool)
    op[:] = np.array([*last_level, ""], dtype=object)[hlo_code] if n else op
    in_buffer = in_buffer_of_code[hlo_code] if n else np.zeros(0, dtype=bool)
    if not in_buffer.any():
        return KernelOps(rows, program, op, rule, buffer)
    buffer[in_buffer] = op[in_buffer]
    rule[in_buffer] = RULE_UNATTRIBUTED
    todo = in_buffer.copy()
    launches = _Launches(hp, modules, recs, program, op, rule, buffer)
    _by_scope(hp, launches, op, rule, todo)
    _by_structure(launches, op, rule, todo)
    _by_kernel_name(hp, modules, recs, program, op, rule, todo)
    op[todo] = np.array([UNATTRIBUTED_PREFIX + str(b) for b in buffer[todo]], dtype=object)
    return KernelOps(rows, program, op, rule, buffer)


class _Launches:
    """The command-buffer kernels of a host grouped by graph launch, with what the rules share.

    A launch is the kernels of one command buffer that share a ``correlation_id``
    (the ``cuGraphLaunch``; else a ``scope_range_id``), in the order they ran
    (start time, then graph node id). Built before any rule runs: ``direct_ops``
    are the ops named by kernels outside command buffers.
    """

    def __init__(
        self,
        hp: HostPass,
        modules: HloModules,
        recs: np.ndarray,
        program: np.ndarray,
        op: np.ndarray,
        rule: np.ndarray,
        buffer: np.ndarray,
    ) -> None:
        rec = hp.records
        flags = rec["flags"][recs]
        self.modules = modules
        self.names = hp.md_names(rec["md_row"][recs])
        self.has_scope = (flags & RF_SCOPE) != 0
        self.scope = np.where(self.has_scope, _u64(rec["scope_range_id"][recs]), np.uint64(0))
        has_corr = (flags & RF_CORR) != 0
        corr = _u64(rec["correlation_id"][recs])
        node = np.where((flags & RF_NODE) != 0, _u64(rec["cuda_graph_node_id"][recs]), np.uint64(0))
        self.program, self.buffer = program, buffer
        launch_key = np.where(has_corr, corr, np.where(self.has_scope, self.scope, np.uint64(0)))
        start = rec["start_ps"][recs]
        direct = rule == RULE_HLO_OP
        self.direct_ops: dict[int, set[str]] = {}
        for p, o in zip(program[direct].tolist(), op[direct].tolist(), strict=True):
            self.direct_ops.setdefault(int(p), set()).add(str(o))
        idx = np.flatnonzero(buffer != "")
        groups: dict[tuple[int, str, int], list[int]] = {}
        for i, p, b, k in zip(
            idx.tolist(), program[idx].tolist(), buffer[idx].tolist(), launch_key[idx].tolist(), strict=True
        ):
            groups.setdefault((int(p), str(b), int(k)), []).append(i)
        # (program, command buffer, kernel indices in the order they ran)
        self.groups: list[tuple[int, str, np.ndarray]] = []
        for (p, b, _), members in groups.items():
            m = np.array(members, dtype=np.int64)
            self.groups.append((p, b, m[np.lexsort((node[m], start[m]))]))
        self._stretches: dict[int, dict[str, list[HloInstruction]] | None] = {}

    def stretch(self, program_id: int, buffer: str) -> list[HloInstruction] | None:
        """The thunk instructions command buffer ``buffer`` of the program runs (None: not known)."""
        if program_id not in self._stretches:
            sel = (self.program == program_id) & (self.buffer != "")
            buffers = sorted({str(x) for x in self.buffer[sel]}, key=_buffer_number)
            self._stretches[program_id] = _command_stretches(
                self.modules, program_id, buffers, self.direct_ops.get(program_id, set())
            )
        return (self._stretches[program_id] or {}).get(buffer)


def _by_scope(hp: HostPass, launches: _Launches, op: np.ndarray, rule: np.ndarray, todo: np.ndarray) -> None:
    """Rule ``scope``, from two kinds of scope evidence.

    1. A kernel whose scope, or the nearest enclosing scope, is the scope of a
       kernel that names its op directly belongs to that op.
    2. Recording a command buffer opens one scope per command, in command
       order, right after the launch's own scope (ids are handed out one by
       one). When a launch's scope ``L`` is followed by exactly as many ids as
       the buffer has commands before the next scope outside ``L``'s subtree
       (every command was recorded), a CUDA call made while recording, in
       child scope ``c`` of ``L`` (a library kernel captured into a child
       graph: cuBLAS, a memset), belongs to command ``c - L - 1``. Such host
       calls pair, in time order and by name, with the launch's kernels.
    """
    scope, has_scope = launches.scope, launches.has_scope
    if not (has_scope & todo).any():
        return
    tree = scope_tree(hp.meta)
    program = launches.program
    direct = has_scope & ~todo & (rule == RULE_HLO_OP)
    if direct.any():
        # Scope -> op of the kernels that name it directly; a scope claimed by two ops names neither.
        named: dict[tuple[int, int], str | None] = {}
        for s, p, o in zip(scope[direct].tolist(), program[direct].tolist(), op[direct].tolist(), strict=True):
            if named.setdefault((p, s), o) != o:
                named[(p, s)] = None
        # A scope that holds command-buffer kernels stands for the whole buffer: the walk stops there.
        buffers = set(zip(program[todo & has_scope].tolist(), scope[todo & has_scope].tolist(), strict=True))
        for i in np.flatnonzero(todo & has_scope).tolist():
            p, s = int(program[i]), int(scope[i])
            for _ in range(64):
                found = named.get((p, s))
                if found is not None:
                    op[i], rule[i], todo[i] = found, RULE_SCOPE, False
                    break
                parent = tree.get(s)
                if parent is None or (p, parent) in buffers:
                    break
                s = parent
    if tree and (has_scope & todo).any():
        _by_recording_scopes(hp, launches, tree, op, rule, todo)


def _by_recording_scopes(
    hp: HostPass, launches: _Launches, tree: dict[int, int], op: np.ndarray, rule: np.ndarray, todo: np.ndarray
) -> None:
    """The second kind of scope evidence of :func:`_by_scope` (command index = child scope - launch scope - 1)."""
    from xprof_core.index.records import host_records

    rec = hp.records
    host = host_records(hp)
    host = host[(rec["flags"][host] & RF_SCOPE) != 0]
    if not len(host):
        return
    host = host[np.argsort(rec["row"][host], kind="stable")]
    host_scope = _u64(rec["scope_range_id"][host]).astype(object)
    children: dict[int, list[tuple[int, str, int]]] = {}  # launch scope -> (start, name, child scope)
    host_names = hp.md_names(rec["md_row"][host])
    host_start = rec["start_ps"][host]
    for k, (c, name) in enumerate(zip(host_scope.tolist(), host_names.tolist(), strict=True)):
        parent = tree.get(int(c))
        if parent is not None:
            children.setdefault(parent, []).append((int(host_start[k]), str(name), int(c)))
    if not children:
        return
    known = sorted(set(tree) | set(tree.values()))
    for p, b, members in launches.groups:
        if not todo[members].any() or not launches.has_scope[members[0]]:
            continue
        launch = int(launches.scope[members[0]])
        calls = sorted(children.get(launch, ()))
        stretch = launches.stretch(p, b) if calls else None
        if not calls or stretch is None:
            continue
        # Every command recorded: the next scope id outside the launch's subtree is launch + commands + 1.
        pos = int(np.searchsorted(known, launch, side="right"))
        following = next((x for x in known[pos:] if not _descends(tree, x, launch)), None)
        if following != launch + len(stretch) + 1:
            continue
        found = _pair_calls(calls, [str(launches.names[i]) for i in members.tolist()], launch, stretch)
        if found is None:
            continue
        for k, ins in found.items():
            i = int(members[k])
            if todo[i]:
                op[i], rule[i], todo[i] = ins.name, RULE_SCOPE, False


def _descends(tree: dict[int, int], scope: int, ancestor: int) -> bool:
    for _ in range(64):
        parent = tree.get(scope)
        if parent is None:
            return False
        if parent == ancestor:
            return True
        scope = parent
    return False


def _pair_calls(
    calls: Sequence[tuple[int, str, int]], kernels: Sequence[str], launch: int, stretch: Sequence[HloInstruction]
) -> dict[int, HloInstruction] | None:
    """Kernel index -> instruction for the launch's kernels that a recorded host call names.

    Host calls whose name is a kernel's (``nvjet_...``; ``Memset`` for the
    device's ``Memset 0``) are matched in order with the launch's kernels; a
    call that matches no later kernel, or a command index outside the buffer or
    of an instruction that cannot run that kernel, voids the whole launch.
    """
    out: dict[int, HloInstruction] = {}
    fusion_stems = {_stem(kernel_name_key(i.name)) for i in stretch if i.opcode == "fusion"}
    k = 0
    for _, name, child in calls:
        if not _is_kernel_call(name, kernels):
            continue  # cuGraphCreate and other driver calls
        while k < len(kernels) and not _same_kernel(name, kernels[k]):
            k += 1
        command = child - launch - 1
        if k == len(kernels) or not 0 <= command < len(stretch):
            return None
        ins = stretch[command]
        if _fit_cost(ins, kernels[k], fusion_stems) >= _BIG:
            return None
        out[k] = ins
        k += 1
    return out


def _same_kernel(call: str, kernel: str) -> bool:
    return call == kernel or (_COPY_KERNEL.match(call) is not None and kernel.split(" ")[0] == call)


def _is_kernel_call(call: str, kernels: Sequence[str]) -> bool:
    return any(_same_kernel(call, k) for k in kernels)


def _by_structure(launches: _Launches, op: np.ndarray, rule: np.ndarray, todo: np.ndarray) -> None:
    """Rule ``hlo_structure``: each graph launch's kernels aligned with its command buffer's thunks.

    Whole launches are aligned (kernels another rule placed included); only
    the kernels still open take the result.
    """
    cache: dict[tuple[int, str, tuple[str, ...]], list[str] | None] = {}
    for p, b, members in launches.groups:
        if not todo[members].any():
            continue
        stretch = launches.stretch(p, b)
        if stretch is None:
            continue
        kernel_names = tuple(str(x) for x in launches.names[members])
        key = (p, b, kernel_names)
        if key not in cache:
            cache[key] = _align(stretch, kernel_names)
        assigned = cache[key]
        if assigned is None:
            continue
        for i, name in zip(members.tolist(), assigned, strict=True):
            if name and todo[i]:
                op[i], rule[i], todo[i] = name, RULE_HLO_STRUCTURE, False


def _buffer_number(name: str) -> tuple[int, str]:
    digits = name.rsplit("_", 1)[-1]
    return (int(digits) if digits.isdigit() else -1, name)


def _command_stretches(
    modules: HloModules, program_id: int, buffers: Sequence[str], direct_ops: set[str]
) -> dict[str, list[HloInstruction]] | None:
    """The thunk instructions each command buffer of a program runs, or None when that is not known.

    The entry schedule's thunk-producing instructions, less those whose
    kernels were seen outside command buffers, split into runs at those; one
    run per command buffer (in number order), or the whole list when the
    program has one command buffer.
    """
    schedule = modules.entry_schedule(program_id)
    if schedule is None:
        return None
    thunks = [ins for ins in schedule if ins.opcode not in _NO_THUNK]
    if any(ins.calls_computations for ins in thunks):
        return None
    runs: list[list[HloInstruction]] = [[]]
    for ins in thunks:
        if ins.name in direct_ops:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(ins)
    runs = [r for r in runs if r]
    if len(buffers) == 1 and not direct_ops:
        return {buffers[0]: [ins for r in runs for ins in r]}
    if len(runs) != len(buffers):
        return None
    return dict(zip(buffers, runs, strict=True))


def _fit_cost(ins: HloInstruction, kernel: str, fusion_stems: set[str]) -> float:
    """Cost of ``kernel`` as the first kernel of ``ins`` (``_BIG``: it cannot be one of its kernels).

    ``fusion_stems``: the name stems of the fusions among the candidate
    instructions; a kernel whose stem is none of them is a library kernel.
    """
    if _COPY_KERNEL.match(kernel):
        return _COPY_FIRST
    key, own = kernel_name_key(kernel), kernel_name_key(ins.name)
    if key == own:
        return _EXACT
    stem = _stem(key)
    if ins.opcode == "fusion" and stem == _stem(own):
        return _FITS  # the kernel of an identical fusion, reused
    if stem not in fusion_stems and (ins.opcode != "fusion" or ins.category == "custom fusion"):
        return _FITS  # a library kernel (cuBLAS, cuDNN, CUTLASS) of a custom call or custom fusion
    return _BIG


def _stem(key: str) -> str:
    """A sanitized name without its numeric suffixes (``loop_add_fusion_2`` -> ``loop_add_fusion``)."""
    return _NAME_SUFFIX.sub("", key)


class _CostTable:
    """:func:`_fit_cost` of every distinct kernel name for each instruction, vectorised and cached."""

    def __init__(self, instructions: Sequence[HloInstruction], kernel_names: Sequence[str]) -> None:
        fusion_stems = {_stem(kernel_name_key(ins.name)) for ins in instructions if ins.opcode == "fusion"}
        self.keys = np.array([kernel_name_key(k) for k in kernel_names], dtype=object)
        self.stems = np.array([_stem(k) for k in self.keys.tolist()], dtype=object)
        self.is_copy = np.array([_COPY_KERNEL.match(k) is not None for k in kernel_names], dtype=bool)
        self.is_library = np.array([s not in fusion_stems for s in self.stems.tolist()], dtype=bool) & ~self.is_copy
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}

    def first(self, ins: HloInstruction) -> np.ndarray:
        """Cost of each distinct kernel name as the first kernel of ``ins`` (float64)."""
        own = kernel_name_key(ins.name)
        cache_key = (own, ins.opcode, ins.category)
        if cache_key not in self._cache:
            c = np.full(len(self.keys), _BIG)
            if ins.opcode != "fusion" or ins.category == "custom fusion":
                c[self.is_library] = _FITS
            if ins.opcode == "fusion":
                c[self.stems == _stem(own)] = _FITS
            c[self.keys == own] = _EXACT
            c[self.is_copy] = _COPY_FIRST
            self._cache[cache_key] = c
        return self._cache[cache_key]


def _align(instructions: Sequence[HloInstruction], kernels: Sequence[str]) -> list[str] | None:
    """The instruction of each kernel (in order; "" for a kernel left out), or None when the
    best alignment is not trusted (see the module docstring and the costs above).

    Dynamic programming over (instructions, kernels), one numpy pass per
    instruction: ``F[j]`` is the best cost with the instructions so far closed
    and kernels ``[0, j)`` placed; an instruction takes a contiguous block of
    kernels (prefix sums and a running minimum give every block end at once).
    """
    n, m = len(instructions), len(kernels)
    if m == 0:
        return []
    if n == 0 or n * (m + 1) > MAX_ALIGNMENT_CELLS:
        return None
    first_seen = {k: i for i, k in enumerate(dict.fromkeys(kernels))}
    kernel_uniques = list(first_seen)
    kernel_code = np.fromiter((first_seen[k] for k in kernels), dtype=np.int64, count=m)
    table = _CostTable(instructions, [str(k) for k in kernel_uniques])
    is_copy = table.is_copy[kernel_code]
    after_copy = np.zeros(m, dtype=bool)
    after_copy[1:] = is_copy[:-1]
    j_all = np.arange(m + 1, dtype=np.int64)
    f = j_all * _LEFT_OUT  # F before the first instruction: leading kernels left out
    block_start = np.zeros((n, m + 1), dtype=np.int32)  # start of the block ending at j (-1: empty)
    left_from = np.zeros((n, m + 1), dtype=np.int32)  # F_{i+1}[j] came from H[left_from] + left-out kernels
    for i, ins in enumerate(instructions):
        cf = table.first(ins)[kernel_code]
        ce = np.where(after_copy, cf, cf + _EXTRA)
        ce[is_copy] = _COPY_EXTRA
        e_cum = np.concatenate(([0.0], np.cumsum(ce)))
        a = f[:m] + cf - e_cum[1:]  # a[s]: block starting at kernel s
        run = np.minimum.accumulate(a)
        arg = np.maximum.accumulate(np.where(a <= run, np.arange(m), 0))  # latest start reaching the minimum
        g = np.full(m + 1, np.inf)
        g[1:] = e_cum[1:] + run
        h = f + _NO_KERNEL
        took = g < h
        h = np.where(took, g, h)
        block_start[i] = np.where(took, np.concatenate(([0], arg)), -1)
        # Kernels after this instruction's block that fit no instruction.
        b = h - j_all * _LEFT_OUT
        run_b = np.minimum.accumulate(b)
        left_from[i] = np.maximum.accumulate(np.where(b <= run_b, j_all, 0))
        f = j_all * _LEFT_OUT + run_b
    out = [""] * m
    empty_ops = 0
    j = m
    for i in range(n - 1, -1, -1):
        j = int(left_from[i][j])
        s = int(block_start[i][j])
        if s >= 0:
            for k in range(s, j):
                out[k] = instructions[i].name
            j = s
        else:
            empty_ops += 1
    if out.count("") > MAX_LEFT_OUT_SHARE * m or empty_ops > MAX_LEFT_OUT_SHARE * n:
        return None
    return out


def _by_kernel_name(
    hp: HostPass,
    modules: HloModules,
    recs: np.ndarray,
    program: np.ndarray,
    op: np.ndarray,
    rule: np.ndarray,
    todo: np.ndarray,
) -> None:
    """Rule ``kernel_name``: the one instruction of the module whose name the kernel bears."""
    if not todo.any() or not len(modules):
        return
    idx = np.flatnonzero(todo)
    names = hp.md_names(hp.records["md_row"][recs[idx]])
    found: dict[tuple[int, str], str | None] = {}
    for i, p, name in zip(idx.tolist(), program[idx].tolist(), names.tolist(), strict=True):
        key = (int(p), str(name))
        if key not in found:
            ins = modules.instruction_of_kernel(int(p), str(name))
            found[key] = ins.name if ins is not None else None
        hit = found[key]
        if hit is not None:
            op[i], rule[i], todo[i] = hit, RULE_KERNEL_NAME, False


__all__ = [
    "MAX_ALIGNMENT_CELLS",
    "MAX_LEFT_OUT_SHARE",
    "RULES",
    "RULE_HLO_OP",
    "RULE_HLO_STRUCTURE",
    "RULE_KERNEL_NAME",
    "RULE_SCOPE",
    "RULE_UNATTRIBUTED",
    "UNATTRIBUTED_PREFIX",
    "KernelOps",
    "is_command_buffer",
    "is_unattributed",
    "kernel_ops",
    "scope_tree",
]
