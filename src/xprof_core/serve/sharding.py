"""One huge host's index built by many workers: plan, walk the shards, merge, and the breakdown.

:func:`sharded_host_index` drives the internal map tasks of
:mod:`xprof_core.execute.sharding` through an executor (the local process pool
or the gRPC workers, round robin, with their retries):

1. one ``_index_plan`` task cuts the host into shards (a skim of the wire) and
   returns the plan and the host's skeleton (cached by the caller per file
   identity and shard size);
2. one ``_index_shard`` task per shard walks its byte ranges;
3. the shards' walks merge here into the host pass, which finds the steps;
4. ``_index_segments`` tasks turn each shard's host events into the steps'
   breakdown segments. The process that walked a shard still holds its walk;
   a task that lands elsewhere is answered "not cached" and sent again (round
   robin tries the next worker), and after a few tries any worker walks the
   shard again, so a worker lost between the rounds costs time, not the
   answer;
5. the host index is built from the merged pass, exactly as from one walk.

``progress(done, total)`` counts shard tasks (walks, then segments) as they
finish.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xprof_core.errors import UnsortedLineError
from xprof_core.execute.sharding import (
    PLAN_TASK,
    SEGMENTS_TASK,
    SHARD_TASK,
    encode_param,
    encode_shard_plan,
)
from xprof_core.serve.executor import MapResult, MapTask

log = logging.getLogger(__name__)

# How many times a segments task looks for the process that holds its shard's walk before any
# process walks the shard again.
PROBES = 6

Progress = Callable[[int, int], None]


@dataclass
class ShardedRun:
    """What a sharded build did: the index partial, and figures for logs, metrics and benchmarks."""

    partial: dict[str, Any]
    shards: int
    workers: dict[str, int] = field(default_factory=dict)  # worker id -> shard walks
    walk_s: float = 0.0  # wall time of the shard walks
    merge_s: float = 0.0
    segments_s: float = 0.0
    rewalks: int = 0  # segments tasks that walked their shard again


def _raise_failed(results: list[MapResult]) -> None:
    """Raise the first failed task's error (its own class: the caller answers it as for any map task)."""
    for res in results:
        if not res.ok and not res.abandoned:
            raise res.error  # type: ignore[misc]
    for res in results:
        if not res.ok:
            raise res.error  # type: ignore[misc]


def sharded_host_index(
    run_tasks: Callable[[list[MapTask]], list[MapResult]],
    host: str,
    url: str,
    shard_bytes: int,
    plan_partial: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[ShardedRun, dict[str, Any]]:
    """Build one host's index over shards. ``run_tasks`` maps a list of tasks (an executor's ``map`` with
    its timeout bound); ``plan_partial``, when given, is a cached plan task's answer. Returns the run and
    the plan task's answer (for the caller to cache). A failed task's error is raised as it is."""
    try:
        return _build(run_tasks, host, url, shard_bytes, plan_partial, progress, split_lines=True)
    except UnsortedLineError:  # a line cut into pieces is out of order: plan again with every line whole
        log.info("%s: a split line is not sorted by time; planning again with whole lines", url)
        return _build(run_tasks, host, url, shard_bytes, None, progress, split_lines=False)


def _build(
    run_tasks: Callable[[list[MapTask]], list[MapResult]],
    host: str,
    url: str,
    shard_bytes: int,
    plan_partial: dict[str, Any] | None,
    progress: Progress | None,
    split_lines: bool,
) -> tuple[ShardedRun, dict[str, Any]]:
    from xprof_core.index.shards import ShardPass, ShardPlan, merge_shards
    from xprof_core.model.xspace import decode_xspace
    from xprof_core.tools.host_index import build_host_index

    if plan_partial is None:
        params = {"shard_bytes": str(shard_bytes), "split_lines": "1" if split_lines else "0"}
        planned = run_tasks([MapTask(PLAN_TASK, host, url, params)])
        _raise_failed(planned)
        plan_partial = planned[0].partial
    plan = ShardPlan.from_partial(plan_partial["plan"])
    meta = decode_xspace(bytes(plan_partial["skeleton"]))
    n = plan.num_shards
    total = 2 * n
    done = 0
    tag = hashlib.sha256(f"{url}:{time.time_ns()}".encode()).hexdigest()[:12]
    plans = [encode_shard_plan(plan, i) for i in range(n)]
    run = ShardedRun(partial={}, shards=n)

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total)

    tick(0)
    t0 = time.perf_counter()
    walks = run_tasks(
        [
            MapTask(
                SHARD_TASK, host, url, {"plan": plans[i], "token": f"{tag}.{i}"}, shard=(i, n), affinity=f"{tag}.{i}"
            )
            for i in range(n)
        ]
    )
    _raise_failed(walks)
    for walked in walks:
        run.workers[walked.worker_id] = run.workers.get(walked.worker_id, 0) + 1
    tick(n)
    run.walk_s = time.perf_counter() - t0
    passes = [ShardPass.from_partial(walked.partial) for walked in walks]
    del walks

    def segments(start: np.ndarray, end: np.ndarray, marker_dur: np.ndarray) -> dict[str, np.ndarray]:
        t1 = time.perf_counter()
        steps = encode_param({"start_ps": start, "end_ps": end, "marker_ps": marker_dur})
        found: dict[int, dict[str, np.ndarray]] = {}
        pending = list(range(n))
        for attempt in range(PROBES + 1):
            last = attempt == PROBES
            walk = {"walk": "1" if last else "0"}
            tasks = [
                MapTask(
                    SEGMENTS_TASK,
                    host,
                    url,
                    {"plan": plans[i], "token": f"{tag}.{i}", "steps": steps, **walk},
                    shard=(i, n),
                    affinity=f"{tag}.{i}",
                )
                for i in pending
            ]
            results = run_tasks(tasks)
            _raise_failed(results)
            missed = []
            for i, res in zip(pending, results, strict=True):
                if res.partial.get("cached") or last:
                    found[i] = res.partial["segments"]
                    run.rewalks += int(last)
                else:
                    missed.append(i)
            tick(len(pending) - len(missed))
            pending = missed
            if not pending:
                break
        parts = [found[i] for i in range(n)]
        run.segments_s += time.perf_counter() - t1
        keys = ("step", "prefix", "start_ps", "end_ps")
        if not parts:
            return {k: np.zeros(0, np.int64) for k in keys}
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}

    t2 = time.perf_counter()
    hp = merge_shards(meta, plan, passes, segments)
    run.partial = build_host_index(hp)
    run.merge_s = time.perf_counter() - t2 - run.segments_s
    if done < total:  # no steps: the breakdown asked for no segments
        tick(total - done)
    return run, plan_partial


__all__ = ["PROBES", "ShardedRun", "sharded_host_index"]
