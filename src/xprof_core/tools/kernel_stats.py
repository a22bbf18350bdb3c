"""XProf's ``kernel_stats`` tool: one row per GPU kernel and launch configuration.

A *kernel* is an event with a non-empty ``kernel_details`` stat on a GPU
device plane (``/device:GPU:<n>``), on a line that is not a derived line
(``Steps``, ``TensorFlow Ops``, ``XLA Ops`` ...), with a non-zero duration.
Memcpy/memset events carry ``memcpy_details`` instead and so drop out; NVIDIA
``Stream #N(Compute)`` and AMD ``Stream #N(Kernel)`` lines both qualify.

Kernels are grouped like XProf's ``KernelReport`` key: kernel name, grid and
block dims, registers per thread, static and dynamic shared memory, whether
the kernel uses Tensor/Matrix Cores, whether its op is Tensor-Core eligible,
and the op name. The occupancy of a group is that of its first kernel (XProf
keeps the first key it inserted; occupancy is not part of the key).

The op name follows XProf: the name part of the ``tf_op`` stat
(``"XlaModule:"`` gives ``XlaModule``), replaced by the ``op_name`` metadata
of the kernel's HLO instruction when the module of that ``program_id`` is
among the HLO protos of ``/host:metadata`` (keyed, as in XProf, by the
event-metadata id unless it carries a ``program_id`` stat). The instruction
is the one :func:`~xprof_core.tools.attribution.kernel_ops` gives the kernel:
its ``hlo_op``, or for kernels inside a CUDA graph (``hlo_op =
command_buffer_N``, where XProf shows ``XlaModule``) the op the attribution
rules found; a graph kernel none of them could place shows
``unattributed in command_buffer_N``.

(XProf's source writes that name as ``op_name:op_type``; XProf 2.24.2 shows
JAX's HLO op names, whose op_type is empty, without the colon, and so do we:
the metadata op_name alone.)

``map`` returns per-group aggregates (durations in ps); ``reduce`` merges the
hosts' groups and builds XProf's DataTable. Across hosts (docs/multi-host.md)
a kernel group's occurrences and total time add up, its min is the smallest
of the hosts' minima, its max the largest of their maxima and its average
the merged total over the merged occurrences; the occupancy is the first
host's; ``merge_hosts=0`` keeps one row per host instead. The table is rows by total duration descending, at most
``max_kernels`` of them (XProf keeps 1000). Durations are exact sums of ps;
XProf first truncates each kernel to whole ns and its average to whole ns,
which changes nothing for the ns-resolution traces CUPTI and ROCm write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.index.classify import is_gpu_plane_of
from xprof_core.index.framework_ops import tf_op_name
from xprof_core.index.hlo_proto import HloModules
from xprof_core.index.passes import RF_PROGRAM, HostPass, host_pass_of
from xprof_core.index.records import kernel_records
from xprof_core.model.planes import ON_DEVICE, PlaneKind
from xprof_core.model.xspace import Plane
from xprof_core.tools.attribution import is_unattributed, kernel_ops
from xprof_core.tools.base import Params, Partial, ToolParam, param_int
from xprof_core.tools.datatable import datatable
from xprof_core.tools.index_sections import section
from xprof_core.tools.registry import register

VERSION = 2  # 2: kernels inside CUDA graphs under their attributed op
MAX_KERNELS = 1000  # XProf's kMaxNumOfKernels


# (id, label, type): XProf's columns in XProf's order, then the two shared-memory
# halves that XProf's KernelReport has but its table sums into shmem_bytes.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "Rank", "number"),
    ("kernel_name", "Kernel Name", "string"),
    ("registers_per_thread", "Registers per thread", "number"),
    ("shmem_bytes", "Shared Mem bytes", "number"),
    ("block_dim", "Block dim", "string"),
    ("grid_dim", "Grid dim", "string"),
    ("occupancy_pct", "Theoretical Occupancy %", "number"),
    ("is_op_tensor_core_eligible", "Op is TensorCore eligible", "boolean"),
    ("is_kernel_using_tensor_core", "Kernel uses TensorCore", "boolean"),
    ("op_name", "Op Name", "string"),
    ("occurrences", "Occurrences", "number"),
    ("total_duration_us", "Total Duration (μs)", "number"),
    ("avg_duration_us", "Avg Duration (μs)", "number"),
    ("min_duration_us", "Min Duration (μs)", "number"),
    ("max_duration_us", "Max Duration (μs)", "number"),
    ("static_shmem_bytes", "Static Shared Mem bytes", "number"),
    ("dynamic_shmem_bytes", "Dynamic Shared Mem bytes", "number"),
)

# Per-group launch configuration, in the order of the partial's "config" rows.
CONFIG_FIELDS = (
    "registers_per_thread",
    "static_shmem_bytes",
    "dynamic_shmem_bytes",
    "grid_x",
    "grid_y",
    "grid_z",
    "block_x",
    "block_y",
    "block_z",
)

# ---- launch parameters -----------------------------------------------------

_UINT32 = re.compile(r"\s*\+?\d+\s*")


def _uint32(text: str) -> int | None:
    if not _UINT32.fullmatch(text):
        return None
    value = int(text)
    return value if value <= 0xFFFFFFFF else None


def parse_kernel_details(details: str) -> tuple[tuple[int, ...], float]:
    """Launch config and occupancy % from a ``kernel_details`` string.

    Returns ``((regs, static_shared, dynamic_shared, grid x, y, z, block x, y, z), occ_pct)``.
    Tokens are ``key:value`` split on spaces and newlines; unknown or malformed
    tokens are ignored (AMD's ``private_mem`` / ``group_mem``, old TF's
    ``shm``), grid and block default to 1,1,1 and the rest to 0, as in XProf.
    """
    regs = static = dynamic = 0
    grid = [1, 1, 1]
    block = [1, 1, 1]
    occ = 0.0
    for token in re.split(r"[ \n]", details):
        parts = token.split(":")
        if len(parts) != 2:
            continue
        key, text = parts
        if key in ("regs", "static_shared", "dynamic_shared"):
            value = _uint32(text)
            if value is None:
                continue
            if key == "regs":
                regs = value
            elif key == "static_shared":
                static = value
            else:
                dynamic = value
        elif key in ("grid", "block"):
            dims = [_uint32(d) for d in text.split(",")]
            if len(dims) == 3 and all(d is not None for d in dims):
                (grid if key == "grid" else block)[:] = dims  # type: ignore[assignment]
        elif key == "occ_pct":
            try:
                occ = float(text)
            except ValueError:
                continue
    return (regs, static, dynamic, *grid, *block), occ


# ---- Tensor Core heuristics ---------------------------------------------------

# XProf's list of kernel-name fragments of NVIDIA kernels that use Tensor Cores
# (cuBLAS/cuDNN naming: volta_h884gemm, turing_fp16_s1688cudnn, sm80_xmma_gemm),
# plus fragments of newer kernels: CUTLASS "tensorop", Hopper wgmma, cuBLASLt
# "nvjet" GEMMs and fused multi-head attention.
NVIDIA_TENSOR_CORE_FRAGMENTS = (
    "16816",
    "c1688",
    "conv1x1",
    "conv2d_c1_k1",
    "dgrad_1x1_stride_2x2",
    "direct_group",
    "first_layer_wgrad_kernel",
    "h1688",
    "h884",
    "hmma",
    "i16832",
    "i8816",
    "s884",
    "s1688",
    "xmma_gemm",
    "xmma_implicit_gemm",
    "xmma_sparse_conv",
    "xmma_sparse_gemm",
    "xmma_warp_specialized_implicit_gemm",
    "tensorop",
    "wgmma",
    "nvjet",
    "fmha",
    "flash_fwd",
    "flash_bwd",
)
# AMD Matrix Cores (MFMA/WMMA): rocBLAS/hipBLASLt Tensile kernels name their
# MFMA tile (Cijk_..._MI16x16x16x1_...), Composable Kernel uses "xdl"/"Xdl",
# CK-tile attention kernels are Fmha*.
_AMD_MATRIX_CORE = re.compile(r"_MI\d+x\d+x\d+|mfma|wmma|xdl|fmha", re.IGNORECASE)


def is_kernel_using_tensor_core(kernel_name: str, device_vendor: str = "") -> bool:
    """Name heuristic: does this kernel run on Tensor Cores (NVIDIA) or Matrix Cores (AMD)?"""
    if device_vendor.lower() == "amd":
        return _AMD_MATRIX_CORE.search(kernel_name) is not None
    return any(f in kernel_name for f in NVIDIA_TENSOR_CORE_FRAGMENTS)


def is_op_tensor_core_eligible(op_name: str) -> bool:
    """XProf's (non-exhaustive) list of ops that can use Tensor Cores, plus XLA dots/convolutions."""
    ends = (
        "Conv2D",
        "Conv2DBackpropFilter",
        "Conv2DBackpropInput",
        "Conv3D",
        "DepthwiseConv2dNative",
        "DepthwiseConv2dNativeBackpropFilter",
        "DepthwiseConv2dNativeBackpropInput",
        "/MatMul",
        "FusedMatMul",
        "/CudnnRNN",
        "XlaDot",
        "XlaDotV2",
    )
    contains = (
        "BatchMatMul",
        "CudnnRNNV",
        "CudnnRNNForward",
        "CudnnRNNBackprop",
        "dot_general",
        "conv_general_dilated",
    )
    return op_name.endswith(ends) or any(c in op_name for c in contains)


def is_einsum_tensor_core_eligible(equation: str) -> bool:
    """An einsum with exactly two operands (``ab,bc->ac``)."""
    sides = equation.split("->") if equation else []
    return len(sides) == 2 and len(sides[0].split(",")) == 2


# ---- map ------------------------------------------------------------------------


@dataclass(frozen=True)
class _RowGroups:
    """Equal rows of an (n, k) int64 key matrix, grouped by a stable lexicographic sort.

    ``order`` lists the rows group by group (input order within a group),
    ``starts`` is where each group begins in ``order``, ``codes[i]`` is the
    group of row i. (np.unique(axis=0) does the same but sorts rows as opaque
    bytes, an order of magnitude slower on a million rows.)
    """

    order: np.ndarray
    starts: np.ndarray
    codes: np.ndarray

    @classmethod
    def of(cls, key: np.ndarray) -> _RowGroups:
        n = len(key)
        order = np.lexsort(key.T[::-1]) if n else np.empty(0, dtype=np.int64)
        ordered = key[order]
        new = np.ones(n, dtype=bool)
        if n > 1:
            np.any(ordered[1:] != ordered[:-1], axis=1, out=new[1:])
        codes = np.empty(n, dtype=np.int64)
        codes[order] = np.cumsum(new) - 1
        return cls(order, np.flatnonzero(new), codes)


def _empty_partial(reason: str | None) -> Partial:
    return {
        "version": VERSION,
        "reason": reason,
        "kernel_name": [],
        "op_name": [],
        "config": np.zeros((0, len(CONFIG_FIELDS)), dtype=np.int64),
        "occupancy_pct": np.zeros(0, dtype=np.float64),
        "is_kernel_using_tensor_core": np.zeros(0, dtype=bool),
        "is_op_tensor_core_eligible": np.zeros(0, dtype=bool),
        "occurrences": np.zeros(0, dtype=np.int64),
        "total_ps": np.zeros(0, dtype=np.int64),
        "min_ps": np.zeros(0, dtype=np.int64),
        "max_ps": np.zeros(0, dtype=np.int64),
    }


def is_gpu_plane(plane: Plane) -> bool:
    """A ``/device:GPU:<n>`` plane."""
    return is_gpu_plane_of(plane.kind, plane.device_type, plane.device_index)


def _no_kernels_reason(hp: HostPass) -> str:
    xs = hp.meta
    if not any(is_gpu_plane(p) for p in xs.planes_of_kind(PlaneKind.DEVICE)):
        on_device = xs.planes_of_kind(*ON_DEVICE)
        devices = sorted({p.name.rsplit(":", 1)[0] if p.device_index is not None else p.name for p in on_device})
        what = f"device planes: {', '.join(devices)}" if devices else "CPU-only profile"
        return f"kernel_stats applies to GPU profiles; this profile has no /device:GPU planes ({what})"
    return "the GPU planes hold no kernel events (no event with a kernel_details stat)"


def map_kernel_stats(source: Any, params: Params | None = None) -> Partial:
    """One host's kernel groups: names, op names, launch configs and duration aggregates (ps).

    ``source`` is the host pass (or an XSpace, walked here). Kernels are the
    records of the non-derived lines of GPU planes with a non-zero duration
    and a non-empty ``kernel_details`` stat. Each distinct launch context
    (metadata, kernel_details, tf_op, equation, HLO op, program_id) gets its
    kernel name, launch config, op name and Tensor Core flags once, and the
    kernels group by XProf's key.
    """
    hp = host_pass_of(source)
    rec = hp.records
    recs = kernel_records(hp)
    strings = hp.string_array
    recs = recs[rec["kernel_details"][recs] != 0]
    if len(recs) == 0:
        return _empty_partial(_no_kernels_reason(hp))
    md = rec["md_row"][recs].astype(np.int64)
    details = rec["kernel_details"][recs].astype(np.int64)
    tf = rec["tf_op"][recs].astype(np.int64)
    eq = rec["equation"][recs].astype(np.int64)
    has_program = (rec["flags"][recs] & RF_PROGRAM) != 0
    program = np.where(has_program, rec["program_id"][recs], 0)
    # The HLO op of each kernel (command-buffer kernels attributed), "" for kernels outside XLA.
    modules = HloModules(hp.meta)
    hlo_names = kernel_ops(hp, modules).op_of(rec["row"][recs])
    hlo_uniques, hlo = np.unique(hlo_names.astype(str), return_inverse=True)

    # Kernel names and Tensor Core use, per metadata row (a metadata row belongs to one plane).
    em_plane = hp.meta.tables.event_metadata.plane
    vendors = [str(p.stats.get("device_vendor", "")) for p in hp.meta.planes]
    md_uniques, md_code = np.unique(md, return_inverse=True)
    md_names = hp.md_names(md_uniques)
    md_tc = np.array(
        [
            is_kernel_using_tensor_core(str(n), vendors[int(em_plane[m])] if m >= 0 else "")
            for n, m in zip(md_names, md_uniques.tolist(), strict=True)
        ],
        dtype=bool,
    )
    name_of_md: dict[str, int] = {}
    md_name_code = np.array([name_of_md.setdefault(str(n), len(name_of_md)) for n in md_names], dtype=np.int64)
    name_code = md_name_code[md_code.reshape(-1)]
    using_tc = md_tc[md_code.reshape(-1)]

    # Launch configs, parsed once per distinct kernel_details string.
    detail_uniques, detail_code = np.unique(details, return_inverse=True)
    parsed = [parse_kernel_details(str(strings[d])) for d in detail_uniques.tolist()]
    detail_config = np.array([p[0] for p in parsed], dtype=np.int64).reshape(-1, len(CONFIG_FIELDS))
    detail_occ = np.array([p[1] for p in parsed], dtype=np.float64)
    configs = _RowGroups.of(detail_config)
    config_uniques = detail_config[configs.order[configs.starts]]
    config_code = configs.codes[detail_code.reshape(-1)]

    # Op name and eligibility per distinct (tf_op, equation, HLO op, program_id, Tensor Core use).
    context = np.stack([tf, eq, hlo.reshape(-1), has_program, program, using_tc], axis=1)
    contexts = _RowGroups.of(context)
    ctx_uniques, ctx_code = context[contexts.order[contexts.starts]], contexts.codes
    op_names: dict[str, int] = {}
    ctx_op = np.empty(len(ctx_uniques), dtype=np.int64)
    ctx_eligible = np.empty(len(ctx_uniques), dtype=bool)
    for i, (t, e, h, p_ok, p, tc) in enumerate(ctx_uniques.tolist()):
        op, eligible = "", False
        tf_full = str(strings[t])
        if tf_full:
            op = tf_op_name(tf_full)
            eligible = is_einsum_tensor_core_eligible(str(strings[e])) or is_op_tensor_core_eligible(op) or bool(tc)
        hlo_full = str(hlo_uniques[h])
        if is_unattributed(hlo_full):  # a command-buffer kernel no rule could place: say so
            op = hlo_full
        elif hlo_full and p_ok and len(modules):
            ins = modules.instruction(int(np.int64(p).view(np.uint64)), hlo_full)
            if ins is not None:
                op = ins.op_name
                eligible = is_op_tensor_core_eligible(op) or eligible
        ctx_op[i] = op_names.setdefault(op, len(op_names))
        ctx_eligible[i] = eligible

    # Group by XProf's key; kernels are in file order, so the first of a group sets its occupancy.
    order = np.argsort(rec["row"][recs], kind="stable")
    key = np.stack([name_code, config_code, ctx_op[ctx_code], ctx_eligible[ctx_code], using_tc], axis=1)[order]
    groups = _RowGroups.of(key)
    first = groups.order[groups.starts]
    durations = rec["duration_ps"][recs][order][groups.order]
    group_keys = key[first]
    name_table = np.array(list(name_of_md), dtype=object)
    op_table = np.array(list(op_names), dtype=object)
    return {
        "version": VERSION,
        "reason": None,
        "kernel_name": [str(x) for x in name_table[group_keys[:, 0]]],
        "op_name": [str(x) for x in op_table[group_keys[:, 2]]],
        "config": config_uniques[group_keys[:, 1]].astype(np.int64),
        "occupancy_pct": detail_occ[detail_code.reshape(-1)[order][first]],
        "is_kernel_using_tensor_core": group_keys[:, 4].astype(bool),
        "is_op_tensor_core_eligible": group_keys[:, 3].astype(bool),
        "occurrences": np.diff(np.r_[groups.starts, len(groups.order)]).astype(np.int64),
        "total_ps": np.add.reduceat(durations, groups.starts).astype(np.int64),
        "min_ps": np.minimum.reduceat(durations, groups.starts).astype(np.int64),
        "max_ps": np.maximum.reduceat(durations, groups.starts).astype(np.int64),
    }


# ---- reduce ---------------------------------------------------------------------

# A group's identity across hosts: XProf's KernelReport key.
GroupKey = tuple[str, tuple[int, ...], bool, bool, str]


@dataclass
class _Group:
    occupancy_pct: float
    occurrences: int
    total_ps: int
    min_ps: int
    max_ps: int


def _sort_key(item: tuple[GroupKey, _Group]) -> tuple[Any, ...]:
    """Total duration descending, then XProf's tie order (name, grid, block, regs, shmem, flags, op)."""
    (name, config, tc, eligible, op), group = item
    regs, static, dynamic, gx, gy, gz, bx, by, bz = config
    return (-group.total_ps, name, gx, gy, gz, bx, by, bz, regs, static, dynamic, tc, eligible, op)


def _merge(partials: Sequence[Partial], merge_hosts: bool) -> dict[tuple[int, GroupKey], _Group]:
    groups: dict[tuple[int, GroupKey], _Group] = {}
    for host, part in enumerate(partials):
        configs = np.asarray(part["config"], dtype=np.int64).reshape(-1, len(CONFIG_FIELDS)).tolist()
        columns = zip(
            part["kernel_name"],
            configs,
            np.asarray(part["is_kernel_using_tensor_core"]).tolist(),
            np.asarray(part["is_op_tensor_core_eligible"]).tolist(),
            part["op_name"],
            np.asarray(part["occupancy_pct"]).tolist(),
            np.asarray(part["occurrences"]).tolist(),
            np.asarray(part["total_ps"]).tolist(),
            np.asarray(part["min_ps"]).tolist(),
            np.asarray(part["max_ps"]).tolist(),
            strict=True,
        )
        for name, config, tc, eligible, op, occ, count, total, lo, hi in columns:
            key = (0 if merge_hosts else host, (str(name), tuple(config), bool(tc), bool(eligible), str(op)))
            g = groups.get(key)
            if g is None:
                groups[key] = _Group(float(occ), int(count), int(total), int(lo), int(hi))
            else:  # the first host's occupancy stays, as XProf keeps the first key inserted
                g.occurrences += int(count)
                g.total_ps += int(total)
                g.min_ps = min(g.min_ps, int(lo))  # the fastest run on any host
                g.max_ps = max(g.max_ps, int(hi))  # the slowest run on any host
    return groups


def reduce_kernel_stats(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """Merge the hosts' kernel groups into XProf's kernel_stats DataTable.

    Parameters: ``max_kernels`` (rows kept, longest total first; default
    1000 as XProf, 0 keeps all) and ``merge_hosts`` (1, the default, sums a
    kernel over hosts; 0 keeps one row per host and kernel, as XProf's
    multi-host table does).
    """
    max_kernels = param_int(params, "max_kernels", MAX_KERNELS, lo=0)
    merge_hosts = bool(param_int(params, "merge_hosts", 1, lo=0, hi=1))
    for part in partials:
        if part.get("version") != VERSION:
            raise ValueError(f"kernel_stats partial version {part.get('version')!r}, expected {VERSION}")
    groups = _merge(partials, merge_hosts)
    ranked = sorted(((k, g) for (_, k), g in groups.items()), key=_sort_key)
    kept = ranked[:max_kernels] if max_kernels else ranked
    rows = []
    for rank, ((name, config, tc, eligible, op), g) in enumerate(kept, start=1):
        regs, static, dynamic, gx, gy, gz, bx, by, bz = config
        rows.append(
            (
                rank,
                name,
                regs,
                static + dynamic,
                f"{bx},{by},{bz}",
                f"{gx},{gy},{gz}",
                g.occupancy_pct,
                eligible,
                tc,
                op,
                g.occurrences,
                g.total_ps / 1e6,
                g.total_ps / g.occurrences / 1e6,
                g.min_ps / 1e6,
                g.max_ps / 1e6,
                static,
                dynamic,
            )
        )
    reason: str | None = None
    if not groups:
        reasons = list(dict.fromkeys(str(p["reason"]) for p in partials if p.get("reason")))
        reason = "; ".join(reasons) if reasons else "no hosts selected"
    total_ps = sum(g.total_ps for g in groups.values())
    return {
        "kernel_stats": datatable(COLUMNS, rows),
        "reason": reason,
        "hosts": [p.get("host") for p in partials],
        "num_kernels": len(ranked),
        "num_rows_dropped": len(ranked) - len(kept),
        "total_occurrences": sum(g.occurrences for g in groups.values()),
        "total_duration_us": total_ps / 1e6,
    }


@dataclass(frozen=True)
class KernelStatsTool:
    """The kernel_stats tool object the registry hands out."""

    name: str = "kernel_stats"
    version: int = VERSION
    description: str = "GPU kernels by name and launch configuration: occurrences, durations, occupancy, Tensor Cores"
    needs: str = "index"
    params: tuple[ToolParam, ...] = (
        ToolParam("max_kernels", "int", MAX_KERNELS, "rows kept, longest total first (0 keeps all)", lo=0),
        ToolParam("merge_hosts", "int", 1, "1 sums a kernel over hosts; 0 keeps a row per host and kernel", 0, 1),
    )

    def map(self, source: Any, params: Params) -> Partial:
        return map_kernel_stats(source, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return reduce_kernel_stats([section(p, self.name) for p in partials], params)


KERNEL_STATS = register(KernelStatsTool())
TOOLS = {"kernel_stats": KERNEL_STATS}  # the module's tools by name

__all__ = [
    "COLUMNS",
    "KERNEL_STATS",
    "TOOLS",
    "is_einsum_tensor_core_eligible",
    "is_kernel_using_tensor_core",
    "is_op_tensor_core_eligible",
    "map_kernel_stats",
    "parse_kernel_details",
    "reduce_kernel_stats",
    "tf_op_name",
]
