"""overview_page: the headline view of a run.

Steps (count, average/min/max/std-dev step time), the per-step breakdown
into event types, hosts, device kind and count, device idle share, the top
device ops by time, and a per-step table.

Multi-host (docs/multi-host.md): only the steps every host marked are kept
(:func:`~xprof_core.index.steps.align_steps`, by step number); a step's time
is the slowest host's (the maximum over hosts, as XProf's step-time summary
takes the maximum over cores); its breakdown is the mean over hosts of each
category; top ops add up over hosts; the device idle share is the mean of
the hosts'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.index.classify import CATEGORIES, UNKNOWN
from xprof_core.index.passes import HostPass, host_pass_of
from xprof_core.index.records import device_records
from xprof_core.index.steps import StepTable, align_steps, host_step_table, union_length_by_group
from xprof_core.model.planes import PlaneKind
from xprof_core.tools.attribution import kernel_ops
from xprof_core.tools.base import Params, Partial, ToolParam
from xprof_core.tools.collectives import map_collectives, reduce_collectives
from xprof_core.tools.datatable import datatable
from xprof_core.tools.index_sections import section
from xprof_core.tools.registry import register

PS_PER_MS = 1e9
TOP_OPS = 10


def device_description(hp: HostPass) -> tuple[str, int, str]:
    """(device type, number of device planes with events, hardware class) of one host."""
    with_events = set(hp.lines["plane"][hp.lines["events"] > 0].tolist())
    devices = hp.meta.planes_of_kind(PlaneKind.DEVICE)
    kinds = [p.device_kind or p.device_type for p in devices if p.index in with_events]
    if not kinds:
        return "CPU", 0, "CPU_ONLY"
    hardware = "TPU" if any(p.device_type == "TPU" for p in devices) else "GPU"
    return max(set(kinds), key=kinds.count), len(kinds), hardware


def device_idle_fraction(hp: HostPass, start_ps: int, end_ps: int) -> tuple[float | None, list[str], list[str]]:
    """Share of [start, end) during which the average device plane *with work* runs nothing.

    A plane has work when it ran something besides copies (kernels, XLA ops). A plane that only
    copied a few buffers (GPU:1 of the V100 demo: 19 copies) is idle nearly all the time; counting
    it would call the devices idle while the ones that work are busy. Returns (fraction or None,
    the planes averaged, the device planes with events left out).
    """
    recs = device_records(hp)
    if len(recs) == 0 or end_ps <= start_ps:
        return None, [], []
    rec = hp.records
    planes = hp.record_plane[recs]
    # Copies: on a copy stream ("Stream #15(MemcpyH2D)") or named as one ("MemcpyH2D", "memcpy").
    line_ids, line_code = np.unique(rec["line"][recs], return_inverse=True)
    line_names = hp.lines["name"]
    copy_line = np.array(["memcpy" in str(line_names[int(i)]).lower() for i in line_ids.tolist()], dtype=bool)
    md_ids, md_code = np.unique(rec["md_row"][recs].astype(np.int64), return_inverse=True)
    md_names = hp.md_names(md_ids).astype(str)
    copy_name = np.char.startswith(np.char.lower(md_names), "memcpy")
    work = ~(copy_line[line_code.reshape(-1)] | copy_name[md_code.reshape(-1)])
    worked = np.unique(planes[work])
    left_out = [hp.meta.planes[int(p)].name for p in np.setdiff1d(np.unique(planes), worked).tolist()]
    keep = np.isin(planes, worked)
    if not keep.any():
        return None, [], left_out
    recs, planes = recs[keep], planes[keep]
    uniq, group = np.unique(planes, return_inverse=True)
    s = np.clip(rec["start_ps"][recs], start_ps, end_ps)
    e = np.clip(rec["start_ps"][recs] + rec["duration_ps"][recs], start_ps, end_ps)
    busy = union_length_by_group(s, e, group.astype(np.int64), len(uniq))
    used = [hp.meta.planes[int(p)].name for p in uniq.tolist()]
    return float(1.0 - busy.mean() / (end_ps - start_ps)), used, left_out


def top_device_ops(hp: HostPass) -> list[tuple[str, int, int]]:
    """(op name, occurrences, total time ps) of the device ops with the most time.

    A GPU kernel of XLA counts under its HLO op (:func:`~xprof_core.tools.attribution.kernel_ops`,
    which also places the kernels of CUDA graphs); other device events under their own name.
    """
    recs = device_records(hp)
    if len(recs) == 0:
        return []
    ops = kernel_ops(hp).op_of(hp.records["row"][recs])
    names = np.where(ops != "", ops, hp.md_names(hp.records["md_row"][recs])).astype(str)
    uniq, inv = np.unique(names, return_inverse=True)
    total = np.bincount(inv, weights=hp.records["duration_ps"][recs].astype(np.float64), minlength=len(uniq))
    count = np.bincount(inv, minlength=len(uniq))
    order = np.argsort(-total, kind="stable")[: TOP_OPS * 4]
    return [(str(uniq[i]), int(count[i]), int(total[i])) for i in order]


def overview_section(hp: HostPass) -> dict[str, Any]:
    """One host's overview figures beside its steps: devices, idle share, top device ops, hostnames."""
    table = host_step_table(hp)
    device_type, device_count, hardware = device_description(hp)
    idle, idle_planes, idle_left_out = (
        device_idle_fraction(hp, int(table.start_ps.min()), int(table.end_ps.max())) if len(table) else (None, [], [])
    )
    return {
        "device_type": device_type,
        "device_count": device_count,
        "hardware_type": hardware,
        "device_idle_fraction": idle,
        "device_idle_planes": idle_planes,
        "device_idle_left_out": idle_left_out,
        "top_ops": top_device_ops(hp),
        "hostnames": hp.meta.hostnames,
        "collectives": map_collectives(hp),
    }


@dataclass(frozen=True)
class OverviewPage:
    name: str = "overview_page"
    version: int = 4  # 2: top ops are HLO ops (attributed), not kernel names; 3: communication per rank;
    # 4: idle over the devices with work
    description: str = "steps, step-time breakdown, device idle share, top ops, run environment, communication per rank"

    needs: str = "index"
    params: tuple[ToolParam, ...] = ()

    def map(self, source: Any, params: Params) -> Partial:
        hp = host_pass_of(source)
        return {"version": self.version, "steps": host_step_table(hp).to_partial(), **overview_section(hp)}

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        partials = [section(p, self.name) for p in partials]
        hosts = [p.get("host", f"host{i}") for i, p in enumerate(partials)]
        tables = [StepTable.from_partial(p["steps"]) for p in partials]
        steps, index = align_steps(tables)
        n = len(steps)
        cats = [*CATEGORIES, UNKNOWN]
        if n:
            per_host_time = np.stack([t.step_time_ps[ix] for t, ix in zip(tables, index, strict=True)])
            step_time = per_host_time.max(axis=0)  # a step lasts as long as its slowest host
            breakdown = {
                c: np.stack([t.breakdown_ps[c][ix] for t, ix in zip(tables, index, strict=True)]).mean(axis=0)
                for c in cats
            }
        else:
            step_time = np.zeros(0)
            breakdown = {c: np.zeros(0) for c in cats}
        window_total = sum(float(b.sum()) for b in breakdown.values())
        breakdown_pct = {c: (100.0 * float(breakdown[c].sum()) / window_total if window_total else 0.0) for c in cats}
        ms = step_time / PS_PER_MS
        reasons = sorted({t.reason for t in tables if t.reason})
        # Without step markers the single pseudo-step spans the whole profile:
        # report no steps, and give its length and breakdown as whole-profile figures.
        no_markers = bool(tables) and all(t.source == "none" for t in tables)
        whole_profile_ms = float(ms.max()) if no_markers and n else None
        if no_markers:
            n, ms = 0, ms[:0]
        idle = [p["device_idle_fraction"] for p in partials if p["device_idle_fraction"] is not None]
        top: dict[str, list[int]] = {}
        for p in partials:
            for name, count, total in p["top_ops"]:
                agg = top.setdefault(name, [0, 0])
                agg[0] += count
                agg[1] += total
        all_time = sum(v[1] for v in top.values()) or 1
        top_rows = sorted(top.items(), key=lambda kv: -kv[1][1])[:TOP_OPS]
        step_cols = [("stepnum", "Step", "number"), ("steptime_ms", "Step time (ms)", "number")]
        step_cols += [(f"{c}_ms", f"{c.replace('_', ' ').capitalize()} (ms)", "number") for c in cats]
        columns = [steps[:n].astype(np.int64).tolist(), ms[:n].tolist()]
        columns += [(np.asarray(breakdown[c][:n], dtype=np.float64) / PS_PER_MS).tolist() for c in cats]
        step_rows = [list(r) for r in zip(*columns, strict=True)] if n else []
        device_types = sorted({p["device_type"] for p in partials})
        communication = reduce_collectives([p.get("collectives") or {} for p in partials], hosts)
        return {
            "version": self.version,
            "hosts": hosts,
            "run_environment": {
                "host_count": len(partials),
                "hostnames": sorted({h for p in partials for h in p.get("hostnames", [])}),
                "hardware_type": partials[0]["hardware_type"] if partials else "",
                "device_type": ", ".join(device_types),
                "device_count": int(sum(p["device_count"] for p in partials)),
            },
            "step_source": tables[0].source if tables else "none",
            "step_name": tables[0].name if tables else "",
            "reason": "; ".join(reasons) if reasons else None,
            "steps": {
                "count": n,
                "avg_ms": float(ms.mean()) if n else None,
                "min_ms": float(ms.min()) if n else None,
                "max_ms": float(ms.max()) if n else None,
                "stddev_ms": float(ms.std()) if n else None,
            },
            "whole_profile_ms": whole_profile_ms,
            "breakdown_pct": breakdown_pct,
            "device_idle_pct": 100.0 * float(np.mean(idle)) if idle else None,
            # Which device planes the idle share averages (those with work) and which it leaves out.
            "device_idle_basis": {
                "planes": sorted({n for p in partials for n in p.get("device_idle_planes", [])}),
                "left_out": sorted({n for p in partials for n in p.get("device_idle_left_out", [])}),
            },
            "top_ops": datatable(
                [
                    ("op_name", "Operation", "string"),
                    ("occurrences", "Occurrences", "number"),
                    ("total_time_ms", "Total time (ms)", "number"),
                    ("time_fraction", "Time (%)", "number"),
                ],
                [[name, c, t / PS_PER_MS, 100.0 * t / all_time] for name, (c, t) in top_rows],
            ),
            "step_table": datatable(step_cols, step_rows),
            # GPU time split, comm/comp overlap and collectives per rank (tools.collectives).
            "communication_per_rank": communication["per_rank"],
            "collectives": communication["collectives"],
            "straggler": communication["straggler"],
        }


OVERVIEW_PAGE = register(OverviewPage())
