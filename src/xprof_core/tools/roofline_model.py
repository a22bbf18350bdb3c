"""XProf's ``roofline_model`` tool: each HLO op's achieved FLOP rate and bandwidth against the device's roofs.

Per HLO op (the ops of ``hlo_stats``: occurrences and measured time): its FLOPs
and bytes accessed, their rates over the op's total time, its operational
intensity (FLOPs per byte), the attainable rate at that intensity
(``min(peak FLOP/s, intensity x peak bandwidth)``), the roofline efficiency
(achieved / attainable) and what bounds it: XProf's rule, the resource of
highest utilization (compute: FLOP rate / peak; HBM: bandwidth / peak),
"Unknown" when the op has neither FLOPs nor bytes. A "Program" row sums every
op. Peaks: :mod:`~xprof_core.tools.device_peaks`.

FLOPs and bytes: XLA's cost analysis where the profile records it (the
``flops`` / ``bytes_accessed`` stats of TPU ops, XProf's figures); otherwise
(GPU, CPU) :mod:`~xprof_core.tools.hlo_cost` over the op's instruction in
its module's HLO proto (``cost_source`` says which). XProf computes GPU
figures with XLA's GPU cost model: bytes and the FLOPs of dots,
convolutions and data movement agree with ours; its elementwise FLOPs come
from XLA's per-GPU cycle tables (a ``convert`` counts 3, a ``sqrt`` 78) where
we count one per element. XProf reports nothing for cuBLAS / hipBLASLt GEMM
custom calls, nor for command-buffer profiles and CPU profiles; we do.

Parameters: ``max_rows`` (default 1000, XProf's limit; 0 keeps all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.model.xspace import XSpace
from xprof_core.tools.base import Params, Partial, ToolParam, param_int
from xprof_core.tools.datatable import datatable
from xprof_core.tools.device_peaks import GIB, DevicePeaks, device_peaks
from xprof_core.tools.hlo_cost import CostModel
from xprof_core.tools.op_stats import HLO_IDS, OpTable, map_op_stats
from xprof_core.tools.op_stats.op_table import concat_tables, merge_rows
from xprof_core.tools.registry import register
from xprof_core.tools.xla_hlo import HloModuleSet

VERSION = 1
MAX_ROWS = 1000  # XProf's kMaxNumRecords
_KEY = ("where", "program_id", "name")
# Categories whose time contains other ops' (XProf's MayHaveInnerOps): not summed into the program.
_OUTER = frozenset({"while", "call", "conditional", "async-start", "async-done"})


def _model_costs(xs: XSpace, table: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """FLOPs and bytes per op (totals over its occurrences) and where they came from."""
    n = len(table["name"])
    flops = np.asarray(table["flops"], dtype=np.float64).copy()
    nbytes = np.asarray(table["bytes"], dtype=np.float64).copy()
    source = ["profile" if (flops[i] > 0 or nbytes[i] > 0) else "none" for i in range(n)]
    todo = [i for i in range(n) if source[i] == "none"]
    if not todo:
        return flops, nbytes, source
    modules = HloModuleSet(xs)
    by_program = {e.program_id: e for e in modules}
    models: dict[int, CostModel | None] = {}
    occurrences = np.asarray(table["occurrences"], dtype=np.float64)
    for i in todo:
        try:
            pid = int(str(table["program_id"][i])) & ((1 << 64) - 1)
        except ValueError:
            continue
        if pid not in models:
            entry = by_program.get(pid)
            module = modules.module(entry) if entry is not None else None
            models[pid] = CostModel(module) if module is not None else None
        model = models[pid]
        ins = model.m.by_name.get(str(table["name"][i])) if model is not None else None
        if model is None or ins is None:
            continue
        cost = model.cost(ins)
        flops[i] = cost.flops * occurrences[i]
        nbytes[i] = cost.bytes_accessed * occurrences[i]
        source[i] = "cost model"
    return flops, nbytes, source


def map_roofline(xs: XSpace, params: Params) -> Partial:
    """One host's HLO ops with FLOPs and bytes, and the device's peaks."""
    op = map_op_stats(xs)
    hlo = op["hlo"]
    flops, nbytes, source = _model_costs(xs, hlo)
    peaks = device_peaks(xs)
    return {
        "version": VERSION,
        "device": peaks.to_dict(),
        "reason": op["reasons"]["hlo"],
        "ops": {
            **{k: list(hlo[k]) for k in HLO_IDS},
            "occurrences": np.asarray(hlo["occurrences"], dtype=np.int64),
            "total_ps": np.asarray(hlo["total_ps"], dtype=np.int64),
            "self_ps": np.asarray(hlo["self_ps"], dtype=np.int64),
            "min_ps": np.asarray(hlo["min_ps"], dtype=np.int64),
            "flops": flops,
            "bytes": nbytes,
            "cost_source": source,
        },
    }


# ---- reduce -----------------------------------------------------------------------------------

COLUMNS = (
    ("rank", "Rank", "number"),
    ("program_id", "Program ID", "string"),
    ("operation", "Operation", "string"),
    ("category", "Category", "string"),
    ("occurrences", "# Occurrences", "number"),
    ("total_time", "Total time (us)", "number"),
    ("total_self_time", "Total self time (us)", "number"),
    ("total_self_time_percent", "Total self time (%)", "number"),
    ("flops", "FLOPs", "number"),
    ("bytes_accessed", "Bytes accessed", "number"),
    ("measured_flop_rate", "FLOP rate (GFLOP/s)", "number"),
    ("measured_memory_bw", "Memory BW (GiB/s)", "number"),
    ("operational_intensity", "Operational intensity (FLOP/byte)", "number"),
    ("attainable_flop_rate", "Attainable FLOP rate (GFLOP/s)", "number"),
    ("roofline_efficiency", "Roofline efficiency (%)", "number"),
    ("compute_efficiency", "FLOP rate / peak (%)", "number"),
    ("memory_bw_utilization", "Memory BW / peak (%)", "number"),
    ("bound_by", "Bound by", "string"),
    ("cost_source", "FLOPs and bytes from", "string"),
    ("provenance", "Framework op", "string"),
)


@dataclass(frozen=True)
class OpPoint:
    """An op on the roofline (rates per second of the op's total time)."""

    flop_rate: float  # GFLOP/s
    bandwidth: float  # GiB/s
    intensity: float  # FLOP/byte
    attainable: float  # GFLOP/s
    efficiency: float  # achieved / attainable (0..1, above 1 when the model undercounts time)
    compute_util: float
    memory_util: float
    bound_by: str


def roofline_point(flops: float, nbytes: float, time_ps: int, peaks: DevicePeaks) -> OpPoint:
    """Where an op with these FLOPs and bytes in this time sits under the device's roofs."""
    ns = time_ps / 1e3
    flop_rate = flops / ns if ns > 0 else 0.0
    bandwidth = nbytes / ns * 1e9 / GIB if ns > 0 else 0.0
    intensity = flops / nbytes if nbytes > 0 else 0.0
    peak_f, peak_b = peaks.peak_gflops, peaks.peak_hbm_gib_per_s
    compute_util = flop_rate / peak_f if peak_f else 0.0
    memory_util = bandwidth / peak_b if peak_b else 0.0
    if not flops and not nbytes:
        bound = "Unknown"
    elif compute_util == 0 and memory_util == 0:
        bound = "Unknown"  # no peaks known
    else:
        bound = "Compute" if compute_util > memory_util else "HBM"
    # The roof at this intensity, in GFLOP/s (GiB/s x FLOP/byte, bytes counted in 2**30 units).
    roof_memory = intensity * peak_b * GIB / 1e9 if peak_b else float("inf")
    attainable = min(peak_f if peak_f else float("inf"), roof_memory)
    if attainable == float("inf"):
        attainable = 0.0
    efficiency = max(compute_util, memory_util)
    return OpPoint(flop_rate, bandwidth, intensity, attainable, efficiency, compute_util, memory_util, bound)


def reduce_roofline(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """Merge the hosts' ops (summed by program and name) and place each under the device's roofs."""
    max_rows = param_int(params, "max_rows", MAX_ROWS, lo=0)
    for p in partials:
        if p.get("version") != VERSION:
            raise ValueError(f"roofline_model partial version {p.get('version')!r}, expected {VERSION}")
    if not partials:
        return {"version": VERSION, "reason": "no hosts selected", "device": None, "roofline": datatable(COLUMNS, [])}
    devices = [p["device"] for p in partials]
    d = max(devices, key=lambda x: (x["peak_gflops_per_s"] > 0, x["peak_hbm_gib_per_s"] > 0))
    peaks = DevicePeaks(
        d["device"], d["kind"], d["peak_gflops_per_s"], d["peak_hbm_gib_per_s"], d["source"], d["cores"]
    )

    ids = (*HLO_IDS, "cost_source")
    tables = [
        OpTable(
            {k: [str(x) for x in p["ops"][k]] for k in ids},
            np.asarray(p["ops"]["occurrences"], dtype=np.int64),
            np.asarray(p["ops"]["total_ps"], dtype=np.int64),
            np.asarray(p["ops"]["self_ps"], dtype=np.int64),
            np.asarray(p["ops"]["min_ps"], dtype=np.int64),
            np.asarray(p["ops"]["flops"], dtype=np.float64),
            np.asarray(p["ops"]["bytes"], dtype=np.float64),
        )
        for p in partials
    ]
    table = merge_rows(concat_tables(tables, ids), _KEY, ids)
    n = len(table)
    order = np.lexsort((np.arange(n), -table.self_ps)) if n else np.zeros(0, dtype=np.int64)
    inner = np.array([c not in _OUTER for c in table.ids["category"]], dtype=bool) if n else np.zeros(0, dtype=bool)
    total_self = int(table.self_ps.sum())
    program_flops = float(table.flops[inner].sum()) if n else 0.0
    program_bytes = float(table.bytes[inner].sum()) if n else 0.0
    program = roofline_point(program_flops, program_bytes, total_self, peaks)

    rows: list[list[Any]] = []
    if n:
        rows.append(
            _row(
                0,
                "",
                "Program",
                "Program",
                1,
                total_self,
                total_self,
                total_self,
                program_flops,
                program_bytes,
                program,
                "",
                "",
            )
        )
    kept = order[:max_rows] if max_rows else order
    for rank, i in enumerate(kept.tolist(), start=1):
        point = roofline_point(float(table.flops[i]), float(table.bytes[i]), int(table.total_ps[i]), peaks)
        rows.append(
            _row(
                rank,
                table.ids["program_id"][i],
                table.ids["name"][i],
                table.ids["category"][i],
                int(table.occurrences[i]),
                int(table.total_ps[i]),
                int(table.self_ps[i]),
                total_self,
                float(table.flops[i]),
                float(table.bytes[i]),
                point,
                table.ids["cost_source"][i],
                table.ids["provenance"][i],
            )
        )
    reason = None
    if not n:
        reasons = list(dict.fromkeys(str(p["reason"]) for p in partials if p.get("reason")))
        reason = "; ".join(reasons) or "no HLO ops in the profile"
    elif not peaks.peak_gflops:
        reason = f"no peak FLOP rate known for {peaks.device}: rates and intensities only, no roofs"
    return {
        "version": VERSION,
        "reason": reason,
        "hosts": [p.get("host") for p in partials],
        "device": peaks.to_dict(),
        "program": {
            "flops": program_flops,
            "bytes_accessed": program_bytes,
            "time_ps": total_self,
            "flop_rate": program.flop_rate,
            "bandwidth": program.bandwidth,
            "operational_intensity": program.intensity,
            "bound_by": program.bound_by,
        },
        "num_ops": n,
        "num_rows_dropped": n - len(kept),
        "roofline": datatable(COLUMNS, rows),
    }


def _row(
    rank: int,
    program_id: str,
    name: str,
    category: str,
    occurrences: int,
    total_ps: int,
    self_ps: int,
    all_self_ps: int,
    flops: float,
    nbytes: float,
    p: OpPoint,
    source: str,
    provenance: str,
) -> list[Any]:
    return [
        rank,
        program_id,
        name,
        category,
        occurrences,
        total_ps / 1e6,
        self_ps / 1e6,
        100.0 * self_ps / all_self_ps if all_self_ps else 0.0,
        flops,
        nbytes,
        p.flop_rate,
        p.bandwidth,
        p.intensity,
        p.attainable,
        100.0 * p.efficiency,
        100.0 * p.compute_util,
        100.0 * p.memory_util,
        p.bound_by,
        source,
        provenance,
    ]


@dataclass(frozen=True)
class RooflineModelTool:
    """The roofline_model tool object the registry hands out."""

    name: str = "roofline_model"
    version: int = VERSION
    description: str = "HLO ops' FLOP rate and bandwidth against the device's peaks: intensity, roofline, bound by"
    needs: str = "xspace"
    params: tuple[ToolParam, ...] = (
        ToolParam("max_rows", "int", MAX_ROWS, "op rows kept, largest self time first (0: all)", lo=0),
    )

    def map(self, xs: XSpace, params: Params) -> Partial:
        return map_roofline(xs, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return reduce_roofline(partials, params)


ROOFLINE_MODEL = register(RooflineModelTool())
TOOLS = {"roofline_model": ROOFLINE_MODEL}

__all__ = ["COLUMNS", "ROOFLINE_MODEL", "TOOLS", "OpPoint", "map_roofline", "reduce_roofline", "roofline_point"]
