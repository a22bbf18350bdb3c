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
    memset/memcpy (any op; a memset opens the op after it). Every kernel must
    fit the instruction it is given, or the launch is not attributed by this
    rule. The stretch is the whole list of thunk instructions not seen
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
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xprof_core.model.xspace import XSpace
from xprof_core.tools.event_rows import factorize_first_seen, is_derived_line, string_stat, u64_stat
from xprof_core.tools.hlo_proto import HloInstruction, HloModules, kernel_name_key

RULES = ("hlo_op", "scope", "hlo_structure", "kernel_name", "unattributed")
RULE_HLO_OP, RULE_SCOPE, RULE_HLO_STRUCTURE, RULE_KERNEL_NAME, RULE_UNATTRIBUTED = range(len(RULES))
UNATTRIBUTED_PREFIX = "unattributed in "
SCOPE_TREE_PLANE = "/host:__ScopeRangeCallStack__"

_COMMAND_BUFFER = re.compile(r"^command_buffer(_\d+)?$")
_GPU_PLANE = re.compile(r"^/device:GPU:\d+$")
_COPY_KERNEL = re.compile(r"^(memset|memcpy)", re.IGNORECASE)
_NAME_SUFFIX = re.compile(r"(_\d+)+$")
# Instructions that launch nothing on the device (no thunk).
_NO_THUNK = frozenset(
    {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "add-dependency", "opt-barrier"}
)
# Alignment costs: a kernel that bears its op's name costs nothing, a plausible one 1, an
# op's extra kernels half a point more (one kernel per op is the common case), a memset or
# memcpy 0.5 as an op's first kernel and 1.5 as a later one (so it opens the op after it),
# an op with no kernel 3, a kernel left out 4; an impossible pairing costs _BIG and voids
# the alignment.
_EXACT, _FITS, _EXTRA, _COPY_FIRST, _NO_KERNEL, _LEFT_OUT, _BIG = 0.0, 1.0, 0.5, 0.5, 3.0, 4.0, 1e6
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


_CACHE: weakref.WeakKeyDictionary[XSpace, KernelOps] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def kernel_ops(xs: XSpace, modules: HloModules | None = None) -> KernelOps:
    """The attribution of every XLA kernel of ``xs`` (computed once per XSpace, then cached)."""
    with _LOCK:
        cached = _CACHE.get(xs)
    if cached is not None:
        return cached
    result = _attribute(xs, modules if modules is not None else HloModules(xs))
    with _LOCK:
        _CACHE[xs] = result
    return result


# ---- the rules ------------------------------------------------------------------------------


def _xla_kernel_rows(xs: XSpace) -> tuple[np.ndarray, np.ndarray]:
    """(rows, hlo_op) of the timed events of GPU streams that carry a non-empty ``hlo_op``."""
    parts = [
        ln.rows
        for p in xs.planes
        if _GPU_PLANE.match(p.name)
        for ln in p.lines
        if ln.name.startswith("Stream #") and not is_derived_line(ln) and len(ln)
    ]
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    rows = np.sort(rows[xs.is_timed[rows]])
    hlo = string_stat(xs, rows, "hlo_op")
    keep = hlo != ""
    return rows[keep], hlo[keep]


def scope_tree(xs: XSpace) -> dict[int, int]:
    """Parent of each profiler scope id, from ``/host:__ScopeRangeCallStack__`` ({} without it).

    Stats of that plane whose metadata carries a name (``process_id``) are not scopes.
    """
    tree: dict[int, int] = {}
    for plane in xs.find_planes(f"^{re.escape(SCOPE_TREE_PLANE)}$"):
        named = {i for i, name in plane.stat_metadata.items() if name}
        for scope, parent in plane.stats_by_id().items():
            if scope not in named and isinstance(parent, int):
                tree[scope] = parent
    return tree


def _attribute(xs: XSpace, modules: HloModules) -> KernelOps:
    rows, hlo = _xla_kernel_rows(xs)
    n = len(rows)
    program, _ = u64_stat(xs, rows, "program_id")
    op = np.empty(n, dtype=object)
    rule = np.full(n, RULE_HLO_OP, dtype=np.int8)
    buffer = np.full(n, "", dtype=object)
    hlo_uniques, hlo_code = factorize_first_seen(hlo)
    last_level = [str(h).split("::")[-1] for h in hlo_uniques]
    in_buffer_of_code = np.array([_COMMAND_BUFFER.match(h) is not None for h in last_level], dtype=bool)
    op[:] = np.array(last_level + [""], dtype=object)[hlo_code]
    in_buffer = in_buffer_of_code[hlo_code] if n else np.zeros(0, dtype=bool)
    if not in_buffer.any():
        return KernelOps(rows, program, op, rule, buffer)
    buffer[in_buffer] = op[in_buffer]
    rule[in_buffer] = RULE_UNATTRIBUTED
    todo = in_buffer.copy()
    _by_scope(xs, rows, program, op, rule, todo)
    _by_structure(xs, modules, rows, program, op, rule, buffer, todo)
    _by_kernel_name(xs, modules, rows, program, op, rule, todo)
    op[todo] = np.array([UNATTRIBUTED_PREFIX + str(b) for b in buffer[todo]], dtype=object)
    return KernelOps(rows, program, op, rule, buffer)


def _by_scope(
    xs: XSpace, rows: np.ndarray, program: np.ndarray, op: np.ndarray, rule: np.ndarray, todo: np.ndarray
) -> None:
    """Rule ``scope``: the nearest scope (own or enclosing) of a kernel that names its op directly."""
    scope, has_scope = u64_stat(xs, rows, "scope_range_id")
    direct = has_scope & ~todo & (rule == RULE_HLO_OP)
    if not (has_scope & todo).any() or not direct.any():
        return
    tree = scope_tree(xs)
    # Scope -> op of the kernels that name it directly; a scope claimed by two ops names neither.
    named: dict[tuple[int, int], str | None] = {}
    for s, p, o in zip(scope[direct].tolist(), program[direct].tolist(), op[direct].tolist(), strict=True):
        key = (p, s)
        if named.setdefault(key, o) != o:
            named[key] = None
    # A scope that holds command-buffer kernels stands for the whole buffer: the walk stops there.
    buffers = set(zip(program[todo & has_scope].tolist(), scope[todo & has_scope].tolist(), strict=True))
    for i in np.flatnonzero(todo & has_scope).tolist():
        p, s = int(program[i]), int(scope[i])
        seen = 0
        while True:
            found = named.get((p, s))
            if found is not None:
                op[i], rule[i], todo[i] = found, RULE_SCOPE, False
                break
            parent = tree.get(s)
            seen += 1
            if parent is None or seen > 64 or (p, parent) in buffers:
                break
            s = parent


def _by_structure(
    xs: XSpace,
    modules: HloModules,
    rows: np.ndarray,
    program: np.ndarray,
    op: np.ndarray,
    rule: np.ndarray,
    buffer: np.ndarray,
    todo: np.ndarray,
) -> None:
    """Rule ``hlo_structure``: each graph launch's kernels aligned with its command buffer's thunks."""
    if not todo.any() or not len(modules):
        return
    corr, has_corr = u64_stat(xs, rows, "correlation_id")
    scope, has_scope = u64_stat(xs, rows, "scope_range_id")
    node, _ = u64_stat(xs, rows, "cuda_graph_node_id")
    # One launch: the kernels of one command buffer sharing a correlation id (else a scope id).
    launch_key = np.where(has_corr, corr, np.where(has_scope, scope, np.uint64(0)))
    names = xs.event_names(rows)
    start = xs.start_ps[rows]
    direct = rule == RULE_HLO_OP
    direct_ops: dict[int, set[str]] = {}
    for p, o in zip(program[direct].tolist(), op[direct].tolist(), strict=True):
        direct_ops.setdefault(int(p), set()).add(str(o))
    cache: dict[tuple[int, str, tuple[str, ...]], list[str] | None] = {}
    stretches: dict[int, dict[str, list[HloInstruction]] | None] = {}
    # Whole launches are aligned (kernels another rule placed included); only open kernels take the result.
    idx = np.flatnonzero(buffer != "")
    groups: dict[tuple[int, str, int], list[int]] = {}
    for i, p, b, k in zip(
        idx.tolist(), program[idx].tolist(), buffer[idx].tolist(), launch_key[idx].tolist(), strict=True
    ):
        groups.setdefault((int(p), str(b), int(k)), []).append(i)
    for (p, b, _), members in groups.items():
        if not todo[members].any():
            continue
        if p not in stretches:
            all_buffers = sorted({str(x) for x in buffer[(program == p) & (buffer != "")]}, key=_buffer_number)
            stretches[p] = _command_stretches(modules, p, all_buffers, direct_ops.get(p, set()))
        stretch = (stretches[p] or {}).get(b)
        if stretch is None:
            continue
        m = np.array(members, dtype=np.int64)
        m = m[np.lexsort((node[m], start[m]))]  # the order the kernels ran in
        kernel_names = tuple(str(x) for x in names[m])
        key = (p, b, kernel_names)
        if key not in cache:
            cache[key] = _align(stretch, kernel_names)
        assigned = cache[key]
        if assigned is None:
            continue
        for i, name in zip(m.tolist(), assigned, strict=True):
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


def _stem(key: str) -> str:
    """A sanitized name without its numeric suffixes (``loop_add_fusion_2`` -> ``loop_add_fusion``)."""
    return _NAME_SUFFIX.sub("", key)


def _align(instructions: Sequence[HloInstruction], kernels: Sequence[str]) -> list[str] | None:
    """The instruction of each kernel (in order; "" for a kernel left out), or None when no
    alignment fits every kernel to its instruction (see the module docstring for the costs).

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
    kernel_uniques, kernel_code = factorize_first_seen(np.array(kernels, dtype=object))
    keys = [kernel_name_key(str(k)) for k in kernel_uniques]
    fusion_stems = {_stem(kernel_name_key(ins.name)) for ins in instructions if ins.opcode == "fusion"}
    is_copy = np.array([_COPY_KERNEL.match(str(k)) is not None for k in kernel_uniques], dtype=bool)
    stems = np.array([_stem(k) for k in keys], dtype=object)
    is_library = np.array([s not in fusion_stems for s in stems.tolist()], dtype=bool) & ~is_copy
    key_array = np.array(keys, dtype=object)
    costs: dict[tuple[str, str, bool], np.ndarray] = {}

    def first_cost(ins: HloInstruction) -> np.ndarray:
        """Cost of each distinct kernel name as the first kernel of ``ins``."""
        own = kernel_name_key(ins.name)
        library_ok = ins.opcode != "fusion" or ins.category == "custom fusion"
        cache_key = (own, ins.opcode, library_ok)
        if cache_key not in costs:
            c = np.full(len(keys), _BIG)
            if ins.opcode == "fusion":
                c[stems == _stem(own)] = _FITS
            if library_ok:
                c[is_library] = _FITS
            c[is_copy] = _COPY_FIRST
            c[key_array == own] = _EXACT
            costs[cache_key] = c
        return costs[cache_key]

    inf = np.inf
    j_all = np.arange(m + 1, dtype=np.int64)
    f = j_all * _LEFT_OUT  # F before the first instruction: leading kernels left out
    block_start = np.zeros((n, m + 1), dtype=np.int32)  # start of the block ending at j (-1: empty)
    left_from = np.zeros((n, m + 1), dtype=np.int32)  # F_{i+1}[j] came from H[left_from] + left-out kernels
    for i, ins in enumerate(instructions):
        cf = first_cost(ins)[kernel_code]
        ce = cf + _EXTRA
        ce[is_copy[kernel_code]] = _FITS + _EXTRA  # an extra memset costs more than a first one
        e_cum = np.concatenate(([0.0], np.cumsum(ce)))
        a = f[:m] + cf - e_cum[1:]  # a[s]: block starting at kernel s
        run = np.minimum.accumulate(a)
        arg = np.maximum.accumulate(np.where(a <= run, np.arange(m), 0))  # latest start reaching the minimum
        g = np.full(m + 1, inf)
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
    if not f[m] < _BIG:
        return None
    out = [""] * m
    j = m
    for i in range(n - 1, -1, -1):
        j = int(left_from[i][j])
        s = int(block_start[i][j])
        if s >= 0:
            for k in range(s, j):
                out[k] = instructions[i].name
            j = s
    return out


def _by_kernel_name(
    xs: XSpace,
    modules: HloModules,
    rows: np.ndarray,
    program: np.ndarray,
    op: np.ndarray,
    rule: np.ndarray,
    todo: np.ndarray,
) -> None:
    """Rule ``kernel_name``: the one instruction of the module whose name the kernel bears."""
    if not todo.any() or not len(modules):
        return
    idx = np.flatnonzero(todo)
    names = xs.event_names(rows[idx])
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
    "RULES",
    "RULE_HLO_OP",
    "RULE_HLO_STRUCTURE",
    "RULE_KERNEL_NAME",
    "RULE_SCOPE",
    "RULE_UNATTRIBUTED",
    "SCOPE_TREE_PLANE",
    "UNATTRIBUTED_PREFIX",
    "KernelOps",
    "is_command_buffer",
    "is_unattributed",
    "kernel_ops",
    "scope_tree",
]
