"""The op-statistics views: ``framework_op_stats``, ``hlo_stats`` and ``op_profile`` from the hosts' op tables.

Each host's partial (:mod:`~xprof_core.tools.op_stats.host_map`) holds two
op tables, HLO ops and framework ops; the views sum them by key over hosts
and render XProf's tables and trees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.tools.base import Params, Partial, ToolParam, param_int
from xprof_core.tools.datatable import Column, datatable
from xprof_core.tools.index_sections import section
from xprof_core.tools.op_stats.op_table import (
    FRAMEWORK_IDS,
    HLO_IDS,
    VERSION,
    OpTable,
    concat_tables,
    merge_rows,
)
from xprof_core.tools.registry import register

PS_PER_US = 1e6


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


def _device_total_time_ps(partials: Sequence[Partial]) -> int | None:
    """The hosts' device time summed (:mod:`~xprof_core.tools.device_time`); None when a partial lacks it."""
    times = [p.get("device_total_time_ps") for p in partials]
    if not times or any(t is None for t in times):
        return None
    return int(sum(int(t) for t in times if t is not None))


def reduce_hlo_stats(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """XProf's hlo_stats table: one row per HLO op by self time.

    Shares (%) are of the total device time as XProf counts it (each device's first op to its
    last, gaps included: :mod:`~xprof_core.tools.device_time`), summed over hosts; of the ops'
    summed self time only when a partial does not carry it.
    """
    max_ops = param_int(params, "max_ops", 0, lo=0)
    table = reduce_hlo(partials)
    order = _ranked(table)
    if max_ops:
        order = order[:max_ops]
    total_self = int(table.self_ps.sum())
    device_time = _device_total_time_ps(partials)
    if device_time is not None and device_time >= total_self:
        total_self = device_time
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
    props = {
        **_common(partials),
        "reason": None if rows else _reason(partials, "hlo"),
        "total_device_time_us": total_self / PS_PER_US,
    }
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
    time share, when the device reports its peak). The trees leave idle time out;
    ``totalTimePs`` is the device time as XProf counts it (first op to last, gaps
    included) and ``idleTimePs`` its part with no op, so a viewer can show shares
    with idle included. Parameter ``op_profile_limit`` keeps that many ops per
    category (default 100, 0 keeps all), as XProf.
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
    # The device time the ops ran in (XProf's, gaps included) and its idle part, for "exclude idle" off.
    device_time = _device_total_time_ps(partials)
    total_time = total_self if device_time is None else device_time
    return {
        "totalTimePs": float(max(total_time, total_self)),
        "idleTimePs": float(max(total_time - total_self, 0)),
        "byCategory": tree("by category", "category", lambda c: c),
        "byProgram": tree("by program", "program_id", lambda pid: f"{modules.get(pid) or 'program'}({pid})"),
        "deviceType": common["device_type"],
        "reason": reason,
        **common,
    }


@dataclass(frozen=True)
class _OpStatsTool:
    """One of the three op-statistics tools; they share :func:`map_op_stats` (the index's op_stats section)."""

    name: str
    description: str
    reducer: Callable[[Sequence[Partial], Params], dict[str, Any]]
    params: tuple[ToolParam, ...] = ()
    version: int = VERSION
    needs: str = "index"

    def map(self, source: Any, params: Params) -> Partial:
        from xprof_core.tools.op_stats.host_map import map_op_stats

        return map_op_stats(source, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return self.reducer([section(p, self.name) for p in partials], params)


_MAX_OPS = ToolParam("max_ops", "int", 0, "rows kept (0 keeps all)", lo=0)
FRAMEWORK_OP_STATS = register(
    _OpStatsTool(
        "framework_op_stats",
        "TensorFlow/JAX ops on host and device: occurrences, total and self time, FLOPs",
        reduce_framework_op_stats,
        (_MAX_OPS,),
    )
)
HLO_STATS = register(
    _OpStatsTool(
        "hlo_stats",
        "HLO ops: category, occurrences, total and self time, FLOPs and bytes",
        reduce_hlo_stats,
        (_MAX_OPS,),
    )
)
OP_PROFILE = register(
    _OpStatsTool(
        "op_profile",
        "HLO op time by category and by program (tree)",
        reduce_op_profile,
        (ToolParam("op_profile_limit", "int", 100, "ops kept per category (0 keeps all)", lo=0),),
    )
)
TOOLS = {"framework_op_stats": FRAMEWORK_OP_STATS, "hlo_stats": HLO_STATS, "op_profile": OP_PROFILE}
