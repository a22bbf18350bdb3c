"""Communication and computation on the GPUs of each rank: overlap, temporal breakdown, collectives.

HTA's headline figures for distributed PyTorch jobs, on any GPU profile
(Kineto traces and XSpace alike), one host (rank) at a time:

* **temporal breakdown**: over the span from the first to the last device
  activity (``kernel_time``), the time some activity runs a computation
  kernel (``compute``), runs only other activities (``non_compute``:
  communication, memcpy, memset) and runs nothing (``idle``);
* **communication/computation overlap**: the share of the time
  communication kernels run during which a computation kernel runs too;
* **collectives**: NCCL/RCCL kernels by collective (``AllReduce``,
  ``AllGather``, ``ReduceScatter``, ``SendRecv``, ...) with counts and time.

Kernels are typed by name as HTA types them: communication ``^nccl.*Kernel``;
memory ``^Memcpy|^Memset|^dma``; computation anything that is neither a
communication kernel nor names a memcpy, a memset or a sync; other the rest.
Busy time is the union of intervals (overlapping activities on several
streams count once), exact in int64 picoseconds.

Across ranks (``reduce_collectives``) the *straggler* is the rank that
spends the least time in collectives: in synchronous collectives every other
rank waits for the last one to arrive, so the rank that arrives last waits
least. It is named only when at least two ranks run collectives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from xprof_core.index.passes import host_pass_of
from xprof_core.index.records import device_records
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.tools.datatable import datatable

PS_PER_MS = 1e9
COMMUNICATION, MEMORY, COMPUTATION, OTHER = "communication", "memory", "computation", "other"
_COMM = re.compile(r"nccl.*Kernel")
_MEMORY = re.compile(r"Memcpy|Memset|dma")
_NOT_COMPUTE = re.compile(r"(nccl.*Kernel)|(.*(Memcpy)|(Memset))|(.*Sync)")
_COLLECTIVE = re.compile(r"nccl(?:Dev)?Kernel_([A-Za-z]+)")


def kernel_type(name: str) -> str:
    """HTA's kernel type of a device activity name."""
    if _COMM.match(name):
        return COMMUNICATION
    if _MEMORY.match(name):
        return MEMORY
    if not _NOT_COMPUTE.match(name):
        return COMPUTATION
    return OTHER


def collective_of(name: str) -> str:
    """The collective a communication kernel runs (``ncclDevKernel_AllGather_RING_LL`` -> ``AllGather``)."""
    m = _COLLECTIVE.match(name)
    return m.group(1) if m else name


def union_length(start_ps: np.ndarray, end_ps: np.ndarray) -> int:
    """Length (ps) of the union of intervals [start, end)."""
    keep = end_ps > start_ps
    if not keep.any():
        return 0
    s, e = start_ps[keep], end_ps[keep]
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] >= run_end[:-1]
    last = np.append(np.flatnonzero(new)[1:] - 1, len(s) - 1)
    return int((run_end[last] - s[new]).sum())


def _figures(start: np.ndarray, dur: np.ndarray, key: np.ndarray, name_of: dict[int, str]) -> dict[str, Any]:
    """The figures of activities (start, duration in ps) named ``name_of[key]``."""
    out: dict[str, Any] = {
        "kernel_time_ps": 0,
        "idle_ps": 0,
        "compute_ps": 0,
        "non_compute_ps": 0,
        "communication_ps": 0,
        "overlap_ps": 0,
        "collectives": {},
    }
    if len(start) == 0:
        return out
    uniq = np.array(sorted(name_of), dtype=np.int64)
    types = np.array([kernel_type(name_of[k]) for k in uniq.tolist()], dtype=object)
    row_type = types[np.searchsorted(uniq, key)]
    end = start + dur
    comm, comp = row_type == COMMUNICATION, row_type == COMPUTATION
    busy = union_length(start, end)
    compute = union_length(start[comp], end[comp])
    communication = union_length(start[comm], end[comm])
    both = union_length(np.concatenate([start[comm], start[comp]]), np.concatenate([end[comm], end[comp]]))
    kernel_time = int(end.max() - start.min())
    out.update(
        kernel_time_ps=kernel_time,
        idle_ps=kernel_time - busy,
        compute_ps=compute,
        non_compute_ps=busy - compute,
        communication_ps=communication,
        overlap_ps=communication + compute - both,
    )
    collectives: dict[str, list[int]] = {}
    for k, t in zip(uniq.tolist(), types.tolist(), strict=True):
        if t != COMMUNICATION:
            continue
        sel = key == k
        agg = collectives.setdefault(collective_of(name_of[k]), [0, 0])
        agg[0] += int(sel.sum())
        agg[1] += int(dur[sel].sum())
    out["collectives"] = collectives
    return out


def rank_figures(source: Any, rows: np.ndarray | None = None) -> dict[str, Any]:
    """The figures of one rank: of the XSpace event ``rows`` given, else of every device activity
    (the host index's device records: ``Stream #`` lines on GPUs) of an XSpace or host pass.

    Times in ps: ``kernel_time_ps``, ``idle_ps``, ``compute_ps``,
    ``non_compute_ps``, ``communication_ps`` (busy with collectives),
    ``overlap_ps`` (collectives and computation at once), and
    ``collectives``: ``{name: [kernels, total duration ps]}``.
    """
    if rows is not None:
        xs: XSpace = source
        md = xs.event_metadata_row[rows]
        uniq, first = np.unique(md, return_index=True)
        names = dict(zip(uniq.tolist(), (str(n) for n in xs.event_names(rows[first])), strict=True))
        return _figures(xs.start_ps[rows], xs.duration_ps[rows], md, names)
    hp = host_pass_of(source)
    recs = device_records(hp)
    rec = hp.records
    md = rec["md_row"][recs].astype(np.int64)
    uniq = np.unique(md)
    names = dict(zip(uniq.tolist(), (str(n) for n in hp.md_names(uniq)), strict=True))
    return _figures(rec["start_ps"][recs].astype(np.int64), rec["duration_ps"][recs].astype(np.int64), md, names)


def host_rank(source: Any) -> int | None:
    """The rank a host's profile names (Kineto's ``distributedInfo``), if any."""
    meta = source if isinstance(source, XSpace) else host_pass_of(source).meta
    for plane in meta.planes_of_kind(PlaneKind.HOST):
        rank = plane.stats.get("rank")
        return int(rank) if isinstance(rank, int) else None
    return None


def map_collectives(source: Any) -> dict[str, Any]:
    """One host's partial (of an XSpace or its host pass): its rank and :func:`rank_figures`."""
    return {"rank": host_rank(source), **rank_figures(source)}


def reduce_collectives(partials: Sequence[dict[str, Any]], hosts: Sequence[str]) -> dict[str, Any]:
    """Per-rank table, collectives summed over ranks, and the straggler rank (see the module docs)."""
    per_rank = []
    totals: dict[str, list[int]] = {}
    comm_time: dict[str, int] = {}
    for host, p in zip(hosts, partials, strict=True):
        if not p or not p.get("kernel_time_ps"):
            continue
        kernel_time = p["kernel_time_ps"]
        communication = p["communication_ps"]
        coll_ps = sum(v[1] for v in p["collectives"].values())
        if p["collectives"]:
            comm_time[host] = coll_ps
        for name, (count, total) in p["collectives"].items():
            agg = totals.setdefault(name, [0, 0])
            agg[0] += count
            agg[1] += total
        per_rank.append(
            [
                host,
                p.get("rank"),
                100.0 * p["overlap_ps"] / communication if communication else None,
                communication / PS_PER_MS,
                p["compute_ps"] / PS_PER_MS,
                100.0 * p["idle_ps"] / kernel_time,
                100.0 * p["compute_ps"] / kernel_time,
                100.0 * p["non_compute_ps"] / kernel_time,
                kernel_time / PS_PER_MS,
            ]
        )
    straggler = min(comm_time, key=lambda h: comm_time[h]) if len(comm_time) >= 2 else None
    ranks = len(comm_time) or 1
    return {
        "straggler": straggler,
        "per_rank": datatable(
            [
                ("host", "Host", "string"),
                ("rank", "Rank", "number"),
                ("overlap_pct", "Comm/comp overlap (%)", "number"),
                ("communication_ms", "Communication (ms)", "number"),
                ("compute_ms", "Computation (ms)", "number"),
                ("idle_pct", "Idle (%)", "number"),
                ("compute_pct", "Compute (%)", "number"),
                ("non_compute_pct", "Non-compute (%)", "number"),
                ("kernel_time_ms", "Span of device activity (ms)", "number"),
            ],
            per_rank,
        ),
        "collectives": datatable(
            [
                ("collective", "Collective", "string"),
                ("kernels", "Kernels", "number"),
                ("total_ms", "Total time (ms)", "number"),
                ("per_rank_ms", "Time per rank (ms)", "number"),
                ("avg_us", "Avg. kernel (us)", "number"),
            ],
            [
                [name, count, total / PS_PER_MS, total / PS_PER_MS / ranks, total / 1e6 / count]
                for name, (count, total) in sorted(totals.items(), key=lambda kv: -kv[1][1])
            ],
        ),
    }


__all__ = [
    "collective_of",
    "host_rank",
    "kernel_type",
    "map_collectives",
    "rank_figures",
    "reduce_collectives",
    "union_length",
]
