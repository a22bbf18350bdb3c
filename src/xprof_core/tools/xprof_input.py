"""XProf's input-pipeline analysis, by XProf's rules: the verdict, its sentences, the per-step
time by event type and the host-side breakdown of input time.

Steps and their time per event type come from :mod:`~xprof_core.tools.xprof_steps` (XProf's
step model: device-marker steps on GPUs, host markers without devices, the first and last of more
than 5 steps dropped). From them, as XProf's ``op_stats_to_input_pipeline_analysis``:

* **Input** = waiting for input (``IteratorGetNext…`` on the host) + host-to-device copies
  (``MemcpyHToD…``, infeed) + the device waiting for the host, as a share of the summed step time;
  **All others** = the step time no event covers.
* **Verdict**, first match: input >= 20% HIGHLY input-bound; input >= 5% MODERATELY input-bound;
  All others >= 3% POTENTIALLY input-bound (I/O or Python could be the cause); else NOT
  input-bound. No step: unknown. Kernel launch (host preparing launches) and device collectives
  are flagged from 3% (moderate) and 15% (high).
* **Host-side breakdown**: the host's input ops (``Iterator::…`` dataset ops, infeed enqueue,
  ``MemcpyHToD``) with their self time (time minus the framework ops nested in them), grouped into
  enqueue, demanded file read, advanced file read (prefetch, interleave, parallel map, cache of a
  file read) and preprocessing (every other dataset op).

:func:`xprof_input_partial` is one host's part (it reads the decoded XSpace);
:func:`xprof_input_result` merges hosts: steps present on every host (by name) are kept, each
the slowest host's. The tool ``xprof_input_pipeline`` answers it; the browser's input pipeline
view shows it above ``input_pipeline_analyzer``'s own reading of the steps (the host index's,
which keeps none of the events XProf's step model reads: step roots, producer/consumer links,
launches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core.index.framework_ops import parse_framework_op
from xprof_core.model.xspace import XSpace
from xprof_core.tools.base import Params, Partial, ToolParam
from xprof_core.tools.datatable import datatable
from xprof_core.tools.event_columns import host_rows
from xprof_core.tools.op_stats.nesting import nesting_parents
from xprof_core.tools.registry import register
from xprof_core.tools.xprof_steps import (
    DEVICE_COLLECTIVES,
    DEVICE_COMPUTE_16,
    DEVICE_COMPUTE_32,
    DEVICE_TO_DEVICE,
    DEVICE_TO_HOST,
    DEVICE_WAIT_DEVICE,
    DEVICE_WAIT_HOST,
    HOST_COMPILE,
    HOST_COMPUTE,
    HOST_PREPARE,
    HOST_TO_DEVICE,
    HOST_WAIT_INPUT,
    UNKNOWN_TIME,
    xprof_steps,
)

PS_PER_MS = 1e9
PS_PER_US = 1e6
# XProf's thresholds (percent of step time).
HIGHLY_INPUT_BOUND_PCT = 20.0
MODERATELY_INPUT_BOUND_PCT = 5.0
ALL_OTHER_PCT = 3.0
HIGHLY_ALL_OTHER_PCT = 15.0
MODERATELY_KERNEL_LAUNCH_PCT = 3.0
HIGHLY_KERNEL_LAUNCH_PCT = 15.0
MODERATELY_COLLECTIVES_PCT = 3.0
HIGHLY_COLLECTIVES_PCT = 15.0
TOP_INPUT_OPS = 50
RULES = (
    f"Input = waiting for input (IteratorGetNext) + host-to-device copies (MemcpyHToD, infeed); "
    f"All others = step time no traced event covers. Input >= {HIGHLY_INPUT_BOUND_PCT:g}%: HIGHLY input-bound; "
    f">= {MODERATELY_INPUT_BOUND_PCT:g}%: MODERATELY; else All others >= {ALL_OTHER_PCT:g}%: POTENTIALLY "
    f"(I/O or Python); else NOT input-bound. Steps as XProf counts them: device step markers on GPUs, host "
    f"markers (train…) without devices; of more than 5 steps the first and last are left out."
)
DATASET_DOC = "https://www.tensorflow.org/guide/data"

# Columns of the per-step table (XProf's ids), and the event types each sums.
STEP_COLUMNS: list[tuple[str, str, tuple[int, ...]]] = [
    ("deviceComputeTimeMs", "Device compute (ms)", (DEVICE_COMPUTE_32, DEVICE_COMPUTE_16)),
    ("deviceToDeviceTimeMs", "Device to device (ms)", (DEVICE_TO_DEVICE, DEVICE_WAIT_DEVICE)),
    ("deviceCollectivesTimeMs", "Device collectives (ms)", (DEVICE_COLLECTIVES,)),
    ("hostComputeTimeMs", "Host compute (ms)", (HOST_COMPUTE,)),
    ("kernelLaunchTimeMs", "Kernel launch (ms)", (HOST_PREPARE,)),
    ("infeedTimeMs", "Input (ms)", (HOST_WAIT_INPUT, HOST_TO_DEVICE, DEVICE_WAIT_HOST)),
    ("outfeedTimeMs", "Output (ms)", (DEVICE_TO_HOST,)),
    ("compileTimeMs", "Compilation (ms)", (HOST_COMPILE,)),
    ("otherTimeMs", "All others (ms)", (UNKNOWN_TIME,)),
]
INPUT_TYPES = (HOST_WAIT_INPUT, HOST_TO_DEVICE, DEVICE_WAIT_HOST)
ENQUEUE, DEMANDED_READ, ADVANCED_READ, PREPROCESSING = (
    "Enqueue",
    "Demanded file read",
    "Advanced file read",
    ("Preprocessing"),
)
_FILE_READERS = ("::TFRecord", "::TextLine", "::FixedLengthRecord", "::SSTable", "::RecordIO", "::ArrayRecord")
_ADVANCED = ("::MemoryReader", "::MemoryWriter", "::Interleave", "::Prefetch", "::ParallelMap")


def input_category(name: str) -> str | None:
    """XProf's input-op category of a host op name, None for an op that is not an input op."""
    op = parse_framework_op(name)
    if op.type.startswith("InfeedEnqueue") or op.type == "MemcpyHToD":
        return ENQUEUE
    if op.kind != "dataset":
        return None
    if name.endswith(_FILE_READERS):
        return ADVANCED_READ if any(a in name for a in _ADVANCED) else DEMANDED_READ
    return PREPROCESSING


def host_input_ops(xs: XSpace) -> list[tuple[str, int, int, int, str]]:
    """(name, occurrences, total ps, self ps, category) of the host's input ops, most self time first.

    Self time is the op's time minus the framework ops nested in it on its thread (XProf's host op table).
    """
    rows = host_rows(xs)
    if not len(rows):
        return []
    md = xs.event_metadata_row[rows].astype(np.int64)
    uniq, code = np.unique(md, return_inverse=True)
    code = code.reshape(-1)
    names = xs.tables.event_metadata.name
    labels = [names[m] if m >= 0 else "" for m in uniq.tolist()]
    is_op = np.array([parse_framework_op(n).kind != "unknown" for n in labels], dtype=bool)
    category = [input_category(n) for n in labels]
    is_input = np.array([c is not None for c in category], dtype=bool)
    if not is_input.any():
        return []
    ops = np.flatnonzero(is_op[code])
    r = rows[ops]
    start = xs.start_ps[r].astype(np.int64)
    dur = xs.duration_ps[r].astype(np.int64)
    parent = nesting_parents(start, start + dur, xs.line_of_event[r].astype(np.int64))
    children = np.zeros(len(r), dtype=np.int64)
    has_parent = parent >= 0
    np.add.at(children, parent[has_parent], dur[has_parent])
    c = code[ops]
    sel = is_input[c]
    total = np.bincount(c[sel], weights=dur[sel].astype(np.float64), minlength=len(uniq))
    self_ = np.bincount(c[sel], weights=(dur - children)[sel].astype(np.float64), minlength=len(uniq))
    count = np.bincount(c[sel], minlength=len(uniq))
    used = np.flatnonzero(count)
    used = used[np.lexsort((used, -self_[used]))]
    return [
        (labels[i], int(count[i]), int(total[i]), int(self_[i]), str(category[i])) for i in used[: TOP_INPUT_OPS * 2]
    ]


# --- the analysis (XProf's statements, word for word where it has them) ---


def _one(x: float) -> str:
    return f"{x:.1f}"


def input_analysis(input_pct: float, all_other_pct: float) -> tuple[str, str, bool]:
    """(classification, statement, whether All others was reported) as XProf's InputAnalysis."""
    if input_pct >= HIGHLY_INPUT_BOUND_PCT:
        return (
            "host",
            f"Your program is HIGHLY input-bound because {_one(input_pct)}% of the total step time sampled is "
            "waiting for input. Therefore, you should first focus on reducing the input time.",
            False,
        )
    if input_pct >= MODERATELY_INPUT_BOUND_PCT:
        return (
            "both",
            f"Your program is MODERATELY input-bound because {_one(input_pct)}% of the total step time sampled is "
            "waiting for input. Therefore, you would need to reduce both the input time and other time.",
            False,
        )
    if all_other_pct >= ALL_OTHER_PCT:
        return (
            "both",
            f"Your program is POTENTIALLY input-bound because {_one(all_other_pct)}% of the total step time sampled "
            "is spent on 'All Others' time (which could be due to I/O or Python execution or both).",
            True,
        )
    return (
        "device",
        f"Your program is NOT input-bound because only {_one(input_pct)}% of the total step time sampled is waiting "
        "for input. Therefore, you should focus on reducing other time.",
        False,
    )


def _level(pct: float, moderate: float, high: float) -> str:
    return "high" if pct >= high else "moderate" if pct >= moderate else "no"


def _verdict(classification: str, input_pct: float) -> str:
    if classification == "host":
        return "HIGHLY input-bound"
    if classification == "both":
        return "MODERATELY input-bound" if input_pct >= MODERATELY_INPUT_BOUND_PCT else "POTENTIALLY input-bound"
    if classification == "device":
        return "NOT input-bound"
    return "unknown"


def _stats(values: np.ndarray) -> tuple[float, float]:
    """(mean, sample standard deviation) in ms, as XProf's step summaries (0 for fewer than 2)."""
    if not len(values):
        return 0.0, 0.0
    ms = values / PS_PER_MS
    sd = float(np.std(ms, ddof=1)) if len(ms) > 1 else 0.0
    return float(ms.mean()), sd if math.isfinite(sd) else 0.0


def xprof_input_partial(xs: XSpace) -> Partial:
    """One host's part of XProf's analysis: its steps by event type and its host input ops."""
    steps = xprof_steps(xs)
    return {
        "steps": {
            "has_device": steps.has_device,
            "name": steps.name,
            "step_ps": steps.step_ps,
            "type_ps": {str(t): v for t, v in steps.type_ps.items()},
        },
        "input_ops": host_input_ops(xs),
    }


def xprof_input_result(partials: Sequence[Partial]) -> dict[str, Any]:
    """XProf's analysis of the hosts' parts (:func:`xprof_input_partial`)."""
    names, step_ps, type_ps = _align(partials)
    n = len(names)
    col = {
        cid: sum((type_ps.get(t, np.zeros(n, dtype=np.int64)) for t in types), np.zeros(n, dtype=np.int64))
        for cid, _, types in STEP_COLUMNS
    }
    total = float(step_ps.sum())
    pct = (lambda v: 100.0 * float(v.sum()) / total) if total else (lambda v: 0.0)
    input_pct = pct(col["infeedTimeMs"])
    all_other_pct = pct(col["otherTimeMs"])
    launch_pct = pct(col["kernelLaunchTimeMs"])
    collectives_pct = pct(col["deviceCollectivesTimeMs"])
    ops = _merge_ops(partials)
    zeros = np.zeros(n, dtype=np.int64)
    h2d = type_ps.get(HOST_TO_DEVICE, zeros) + type_ps.get(DEVICE_WAIT_HOST, zeros)
    breakdown = _host_breakdown(ops, h2d, step_ps)
    tf_data = any(breakdown[k] > 0 for k in (DEMANDED_READ, ADVANCED_READ, PREPROCESSING))
    if not n:
        classification, conclusion, reported = (
            "unknown",
            "No step time measured. Therefore we cannot tell where the performance bottleneck is.",
            False,
        )
    else:
        classification, conclusion, reported = input_analysis(input_pct, all_other_pct)
    if classification in ("host", "both"):
        next_step = (
            "Look at the host-side breakdown below for the input time on the host."
            if tf_data
            else "Consider using the tf.data API to enable the profiler's host-side analysis for input pipeline "
            "(the profiler does not analyse custom input pipelines: ignore the host-side breakdown below)."
        )
    else:
        next_step = "You may skip the rest of this page."
    launch_level = _level(launch_pct, MODERATELY_KERNEL_LAUNCH_PCT, HIGHLY_KERNEL_LAUNCH_PCT) if n else "no"
    coll_level = _level(collectives_pct, MODERATELY_COLLECTIVES_PCT, HIGHLY_COLLECTIVES_PCT) if n else "no"
    other_level = "no" if reported or not n else _level(all_other_pct, ALL_OTHER_PCT, HIGHLY_ALL_OTHER_PCT)
    statements = {
        "kernel_launch": f"{_one(launch_pct)} % of the total step time sampled is spent on 'Kernel Launch'."
        if launch_level != "no"
        else "",
        "device_collectives": f"{_one(collectives_pct)} % of the total step time sampled is spent on 'Device "
        "Collective Communication'."
        if coll_level != "no"
        else "",
        "all_other": f"{_one(all_other_pct)} % of the total step time sampled is spent on 'All Others' time. "
        "This could be due to Python execution overhead."
        if other_level != "no"
        else "",
    }
    averages = {cid: dict(zip(("avg_ms", "sdv_ms"), _stats(col[cid]), strict=True)) for cid, _, _ in STEP_COLUMNS}
    avg_step, sdv_step = _stats(step_ps)
    all_ops_self = sum(o[3] for o in ops) or 1
    return {
        "reason": None if n else "no steps: XProf's step markers are missing (see the rules)",
        "summary": {
            "steps": n,
            "input_percent": input_pct,
            "all_other_percent": all_other_pct,
            "kernel_launch_percent": launch_pct,
            "device_collectives_percent": collectives_pct,
            "classification": classification,
            "verdict": _verdict(classification, input_pct),
            "conclusion": conclusion,
            "next_step": next_step,
            "statements": statements,
            "rules": RULES,
            "tf_data_doc": DATASET_DOC,
            "avg_step_ms": avg_step if n else None,
            "stddev_step_ms": sdv_step if n else None,
            "min_step_ms": float(step_ps.min()) / PS_PER_MS if n else None,
            "max_step_ms": float(step_ps.max()) / PS_PER_MS if n else None,
            "avg_input_ms": averages["infeedTimeMs"]["avg_ms"] if n else None,
            "averages": averages,
        },
        "step_table": datatable(
            [
                ("stepnum", "Step", "string"),
                ("stepTimeMs", "Step time (ms)", "number"),
                *[(cid, label, "number") for cid, label, _ in STEP_COLUMNS],
            ],
            [
                [
                    names[i],
                    float(step_ps[i]) / PS_PER_MS,
                    *[float(col[cid][i]) / PS_PER_MS for cid, _, _ in STEP_COLUMNS],
                ]
                for i in range(n)
            ],
        ),
        "host_breakdown": datatable(
            [("category", "Input time on the host", "string"), ("time_us", "Time (µs)", "number")],
            [[k, v] for k, v in breakdown.items()],
        ),
        "input_ops": datatable(
            [
                ("op_name", "Input op", "string"),
                ("count", "Count", "number"),
                ("time_in_ms", "Total time (ms)", "number"),
                ("self_time_in_ms", "Self time (ms)", "number"),
                ("self_time_in_percent", "Self time (%)", "number"),
                ("category", "Category", "string"),
            ],
            [
                [name, c, t / PS_PER_MS, s / PS_PER_MS, 100.0 * s / all_ops_self, cat]
                for name, c, t, s, cat in ops[:TOP_INPUT_OPS]
            ],
        ),
    }


@dataclass(frozen=True)
class XprofInputPipeline:
    name: str = "xprof_input_pipeline"
    version: int = 1
    description: str = (
        "XProf's input-pipeline analysis by XProf's rules: verdict, step time by event type, host-side breakdown"
    )
    needs: str = "xspace"
    params: tuple[ToolParam, ...] = ()

    def map(self, source: Any, params: Params) -> Partial:
        return {"version": self.version, **xprof_input_partial(source)}

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return {"version": self.version, **xprof_input_result(partials)}


XPROF_INPUT_PIPELINE = register(XprofInputPipeline())


def _align(partials: Sequence[Partial]) -> tuple[list[str], np.ndarray, dict[int, np.ndarray]]:
    """Steps present on every host (by name), each the slowest host's: (names, step ps, ps per type)."""
    hosts = []
    for p in partials:
        s = p["steps"]
        hosts.append(
            (
                list(s["name"]),
                np.asarray(s["step_ps"], dtype=np.int64),
                {int(t): np.asarray(v, dtype=np.int64) for t, v in s["type_ps"].items()},
            )
        )
    if not hosts:
        return [], np.zeros(0, dtype=np.int64), {}
    common = [n for n in hosts[0][0] if all(n in h[0] for h in hosts[1:])]
    types = sorted({t for h in hosts for t in h[2]})
    step = np.zeros(len(common), dtype=np.int64)
    by_type = {t: np.zeros(len(common), dtype=np.int64) for t in types}
    for k, name in enumerate(common):
        best = max(range(len(hosts)), key=lambda h: int(hosts[h][1][hosts[h][0].index(name)]))
        names, ps, tps = hosts[best]
        i = names.index(name)
        step[k] = ps[i]
        for t in types:
            if t in tps:
                by_type[t][k] = tps[t][i]
    return common, step, by_type


def _merge_ops(partials: Sequence[Partial]) -> list[tuple[str, int, int, int, str]]:
    merged: dict[str, list[Any]] = {}
    for p in partials:
        for name, count, total, self_, cat in p["input_ops"]:
            agg = merged.setdefault(name, [0, 0, 0, cat])
            agg[0] += count
            agg[1] += total
            agg[2] += self_
    ops = [(name, c, t, s, cat) for name, (c, t, s, cat) in merged.items()]
    ops.sort(key=lambda o: (-o[3], o[0]))
    return ops


def _host_breakdown(
    ops: list[tuple[str, int, int, int, str]], h2d: np.ndarray, step_ps: np.ndarray
) -> dict[str, float]:
    """XProf's host-side breakdown of input time (µs): enqueue, file reads, preprocessing, unclassified."""
    by_cat = {ENQUEUE: 0.0, DEMANDED_READ: 0.0, ADVANCED_READ: 0.0, PREPROCESSING: 0.0}
    for _, _, _, self_ps, cat in ops:
        by_cat[cat] = by_cat.get(cat, 0.0) + self_ps / PS_PER_US
    enqueue = by_cat[ENQUEUE]
    reads = by_cat[DEMANDED_READ] + by_cat[ADVANCED_READ] + by_cat[PREPROCESSING]
    # The share of step time spent copying to the device scales the non-enqueue input time.
    avg_step = float(step_ps.mean()) if len(step_ps) else 0.0
    ratio = min(1.0, float(h2d.mean()) / avg_step) if avg_step and len(h2d) else 0.0
    non_enqueue = enqueue * (1.0 - ratio) / ratio if ratio else reads

    def scaled(v: float) -> float:
        return non_enqueue * v / reads if reads else 0.0

    demanded, advanced, preprocessing = (scaled(by_cat[k]) for k in (DEMANDED_READ, ADVANCED_READ, PREPROCESSING))
    return {
        ENQUEUE: enqueue,
        DEMANDED_READ: demanded,
        ADVANCED_READ: advanced,
        PREPROCESSING: preprocessing,
        "Unclassified (not enqueue)": max(0.0, non_enqueue - demanded - advanced - preprocessing),
    }
