"""input_pipeline_analyzer: is the run input-bound?

Per step, the time the host spent waiting for input data against the rest of
the step, a verdict on the whole run, and the host input ops (tf.data
iterators, infeed, data loaders) that took the most time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.index.passes import C_INPUT, HostPass, host_pass_of
from xprof_core.index.steps import StepTable, align_steps, host_step_table
from xprof_core.tools.base import Params, Partial, ToolParam
from xprof_core.tools.datatable import datatable
from xprof_core.tools.index_sections import section
from xprof_core.tools.registry import register

PS_PER_MS = 1e9
# Input share of step time (%) at or above which a run is MODERATELY / HIGHLY input-bound:
# XProf's kModeratelyInfeedBoundThresholdInPercent and kHighlyInfeedBoundThresholdInPercent
# (op_stats_to_input_pipeline_analysis.cc, InputAnalysis: "< 5 NOT, < 20 MODERATELY, else HIGHLY").
MODERATELY_INPUT_BOUND_PCT = 5.0
HIGHLY_INPUT_BOUND_PCT = 20.0
TOP_INPUT_OPS = 20


def input_bound_verdict(input_pct: float) -> str:
    """XProf's input-bound classification of a run from its input share of step time (%)."""
    if input_pct >= HIGHLY_INPUT_BOUND_PCT:
        return "HIGHLY input-bound"
    if input_pct >= MODERATELY_INPUT_BOUND_PCT:
        return "MODERATELY input-bound"
    return "NOT input-bound"


def input_ops(hp: HostPass) -> list[tuple[str, int, int, int]]:
    """(name, occurrences, total ps, self ps) of host input-pipeline events, most time first.

    Self time subtracts the time of the input events nested inside (same
    thread): the host pass nests input events among themselves, with the same
    ancestor rule as every other nesting (XProf's).
    """
    s = hp.slots
    slots = hp.slots_of(C_INPUT)
    if len(slots) == 0:
        return []
    names = hp.md_names(s["k0"][slots]).astype(str)
    uniq, inv = np.unique(names, return_inverse=True)
    total = np.bincount(inv, weights=s["total_ps"][slots].astype(np.float64), minlength=len(uniq))
    self_ = np.bincount(inv, weights=s["self_ps"][slots].astype(np.float64), minlength=len(uniq))
    count = np.bincount(inv, weights=s["count"][slots].astype(np.float64), minlength=len(uniq))
    used = np.flatnonzero(count)
    used = used[np.argsort(-self_[used], kind="stable")][: TOP_INPUT_OPS * 2]
    return [(str(uniq[i]), int(count[i]), int(total[i]), int(self_[i])) for i in used]


@dataclass(frozen=True)
class InputPipelineAnalyzer:
    name: str = "input_pipeline_analyzer"
    version: int = 2  # 2: XProf's input-bound thresholds (5 %, 20 %)
    description: str = "per-step input wait versus compute, input-bound verdict, top host input ops"

    needs: str = "index"
    params: tuple[ToolParam, ...] = ()

    def map(self, source: Any, params: Params) -> Partial:
        hp = host_pass_of(source)
        return {"version": self.version, "steps": host_step_table(hp).to_partial(), "input_ops": input_ops(hp)}

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        """Multi-host rules (docs/multi-host.md): steps are those on every host (:func:`align_steps`);
        per step, the step time is the slowest host's and the input wait the longest any host
        waited (a synchronous job waits for its slowest input); the run's input share is
        Σ wait / Σ step time over the kept steps (XProf's ratio of totals), classified by
        :func:`input_bound_verdict`. Input ops are summed over hosts.
        """
        partials = [section(p, self.name) for p in partials]
        tables = [StepTable.from_partial(p["steps"]) for p in partials]
        steps, index = align_steps(tables)
        n = len(steps)
        if n:
            time = np.stack([t.step_time_ps[ix] for t, ix in zip(tables, index, strict=True)]).max(axis=0)
            wait = np.stack([t.breakdown_ps["host_wait_input"][ix] for t, ix in zip(tables, index, strict=True)]).max(
                axis=0
            )
        else:
            time = wait = np.zeros(0, dtype=np.int64)
        if tables and all(t.source == "none" for t in tables):
            # No step markers: no per-step table; the verdict covers the whole profile.
            whole_time, whole_wait = int(time.sum()), int(wait.sum())
            n, steps, time, wait = 0, steps[:0], time[:0], wait[:0]
        else:
            whole_time = whole_wait = 0
        compute = np.maximum(time - wait, 0)
        if n:
            input_pct = 100.0 * float(wait.sum()) / float(time.sum()) if time.sum() else 0.0
        else:
            input_pct = 100.0 * whole_wait / whole_time if whole_time else 0.0
        verdict = "unknown" if not n and not whole_time else input_bound_verdict(input_pct)
        merged: dict[str, list[int]] = {}
        for p in partials:
            for name, count, total, self_ in p["input_ops"]:
                agg = merged.setdefault(name, [0, 0, 0])
                agg[0] += count
                agg[1] += total
                agg[2] += self_
        all_self = sum(v[2] for v in merged.values()) or 1
        ops = sorted(merged.items(), key=lambda kv: -kv[1][2])[:TOP_INPUT_OPS]
        reasons = sorted({t.reason for t in tables if t.reason})
        return {
            "version": self.version,
            "reason": "; ".join(reasons) if reasons else None,
            "summary": {
                "steps": n,
                "input_percent": input_pct,
                "verdict": verdict,
                "avg_step_ms": float(time.mean()) / PS_PER_MS if n else None,
                "avg_input_ms": float(wait.mean()) / PS_PER_MS if n else None,
            },
            "step_table": datatable(
                [
                    ("stepnum", "Step", "number"),
                    ("steptime_ms", "Step time (ms)", "number"),
                    ("input_ms", "Waiting for input (ms)", "number"),
                    ("compute_ms", "Other (ms)", "number"),
                ],
                [
                    [
                        int(steps[i]),
                        float(time[i]) / PS_PER_MS,
                        float(wait[i]) / PS_PER_MS,
                        float(compute[i]) / PS_PER_MS,
                    ]
                    for i in range(n)
                ],
            ),
            "input_ops": datatable(
                [
                    ("op_name", "Input op", "string"),
                    ("count", "Count", "number"),
                    ("time_in_ms", "Total time (ms)", "number"),
                    ("self_time_in_ms", "Self time (ms)", "number"),
                    ("self_time_in_percent", "Self time (%)", "number"),
                ],
                [[name, c, t / PS_PER_MS, s / PS_PER_MS, 100.0 * s / all_self] for name, (c, t, s) in ops],
            ),
        }


INPUT_PIPELINE_ANALYZER = register(InputPipelineAnalyzer())
