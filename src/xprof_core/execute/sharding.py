"""The map tasks of a sharded host index: what a worker does for one shard of a huge host.

A host larger than the shard size is not mapped by one process. Three kinds
of internal map task, run by the same executors as tool maps, split the work
(the serving layer's :mod:`xprof_core.serve.sharding` drives them):

``_index_plan``
    skims the host (no event decoded) and returns the :class:`ShardPlan` and
    the host's *skeleton* (its planes' metadata and stats without lines), so
    that the process that merges needs nothing else of the file;
``_index_shard``
    walks one shard's byte ranges (params: ``plan``, that shard's part of the
    plan) and returns its :class:`ShardPass`; the walk stays in this process
    (:data:`SHARD_CACHE`) for the next task;
``_index_segments``
    once the merged steps are known (params: ``steps``), turns the shard's host
    events into per-step segments of the breakdown. With ``walk=0`` a process
    that no longer holds the shard's walk answers ``{"cached": False}`` instead
    of walking again, so the caller can find the process that holds it.

A worker reads only its shard's byte ranges and the plane metadata (the file
is memory-mapped), so its memory follows the shard size, not the host's.
"""

from __future__ import annotations

import base64
import io
import os
import time
import zipfile
from typing import Any

import numpy as np

from xprof_core.errors import ProfileChangedError
from xprof_core.tools.base import Params, Partial

# The default shard size: hosts larger than this are indexed in shards of about this size.
DEFAULT_SHARD_BYTES = 96 << 20

PLAN_TASK = "_index_plan"
SHARD_TASK = "_index_shard"
SEGMENTS_TASK = "_index_segments"
INTERNAL_TASKS = frozenset({PLAN_TASK, SHARD_TASK, SEGMENTS_TASK})


def encode_param(arrays: dict[str, Any]) -> str:
    """Named arrays (and numbers) as a task parameter: an ``.npz`` archive in base64 (no pickles)."""
    out = io.BytesIO()
    np.savez(out, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return base64.b64encode(out.getvalue()).decode("ascii")


def decode_param(text: str) -> dict[str, np.ndarray]:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (ValueError, UnicodeEncodeError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"malformed shard parameter: {exc}") from None


def encode_shard_plan(plan: Any, shard: int) -> str:
    """One shard's part of a plan (:meth:`ShardPlan.shard_only`) as a task parameter."""
    part = plan.shard_only(shard).to_partial()
    part.pop("line_name")
    return encode_param(part)


def decode_shard_plan(text: str) -> Any:
    from xprof_core.index.shards import ShardPlan

    fields: dict[str, Any] = dict(decode_param(text))
    for k in ("version", "size_bytes", "shard_bytes"):
        fields[k] = int(fields[k])
    fields["line_name"] = []
    return ShardPlan.from_partial(fields)


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise ValueError(f"missing parameter {name!r}")
    return str(value)


def _shard_key(identity: str | None, url: str, params: Params) -> str:
    return f"{identity or url}#{_required(params, 'token')}"


def map_internal(task: str, url: str, params: Params, timings: dict[str, float]) -> Partial:
    """Run one internal map task on a host file (see the module docstring)."""
    from xprof_core.execute import SHARD_CACHE, _identity
    from xprof_core.index import shards as S

    identity = _identity(url)
    if task == PLAN_TASK:
        return _plan(url, params, timings)
    plan = decode_shard_plan(_required(params, "plan"))
    key = _shard_key(identity, url, params)
    if task == SHARD_TASK:
        sp = _walk(url, plan, identity, timings)
        SHARD_CACHE.put(key, sp, cost=_shard_cost(sp))
        return sp.to_partial()
    if task == SEGMENTS_TASK:
        sp = SHARD_CACHE.get(key)
        if sp is None:
            if params.get("walk") == "0":
                return {"cached": False}
            sp = _walk(url, plan, identity, timings)
        t2 = time.perf_counter()
        steps = decode_param(_required(params, "steps"))
        seg = S.shard_segments(sp, plan, steps["start_ps"], steps["end_ps"], steps["marker_ps"])
        SHARD_CACHE.pop(key)  # the shard's last task
        timings["map_s"] = time.perf_counter() - t2
        return {"cached": True, "segments": seg}
    raise ValueError(f"unknown internal task {task!r}")


def _plan(url: str, params: Params, timings: dict[str, float]) -> Partial:
    """Plan a host's shards and take its skeleton. A local uncompressed XSpace is memory-mapped for
    its planes' metadata and line headers only, and its lines' events are skimmed a window at a time:
    planning a host of any size takes memory for the metadata, not the file."""
    from xprof_core._fast.hostindex import xspace_skeleton
    from xprof_core.index import shards as S
    from xprof_core.model.kineto import is_trace_json_name
    from xprof_core.model.load import host_bytes
    from xprof_core.storage.logdir import open_host_bytes, open_regular_file

    shard_bytes = int(_required(params, "shard_bytes"))
    split = params.get("split_lines") != "0"
    t0 = time.perf_counter()
    whole = url.endswith(".gz") or is_trace_json_name(url)
    fd = None if whole else open_regular_file(url)
    if fd is not None:
        try:
            buf = open_host_bytes(url)
            size = os.fstat(fd).st_size
            if len(buf) != size:
                raise ProfileChangedError(f"{url!r} changed while it was planned")
            plan = S.plan_shards(buf, shard_bytes, split, read_at=lambda off, n: os.pread(fd, n, off))
            skeleton = xspace_skeleton(buf)
        finally:
            os.close(fd)
    else:
        buf = host_bytes(url)
        plan = S.plan_shards(buf, shard_bytes, split)
        skeleton = xspace_skeleton(buf)
    timings.update(decode_s=time.perf_counter() - t0, bytes_read=float(len(buf)))
    return {"plan": plan.to_partial(), "skeleton": skeleton, "size_bytes": len(buf)}


def _walk(url: str, plan: Any, identity: str | None, timings: dict[str, float]) -> Any:
    """Read the shard's pieces and walk them. The planes' tables come from the bytes outside every line,
    read once per host in this process; a trace JSON host is transcoded whole (its shards' offsets are
    those of the wire bytes it becomes)."""
    from xprof_core.execute import SHARD_TABLES
    from xprof_core.index import shards as S
    from xprof_core.model.kineto import is_trace_json_name
    from xprof_core.model.load import host_bytes
    from xprof_core.storage.logdir import read_host_ranges

    t0 = time.perf_counter()
    whole = host_bytes(url) if is_trace_json_name(url) else None
    tables = SHARD_TABLES.get(identity) if identity is not None else None
    read = 0
    if tables is None:
        fill = list(zip(plan.fill_begin.tolist(), plan.fill_end.tolist(), strict=True))
        meta_buf = whole if whole is not None else read_host_ranges(url, fill, plan.size_bytes)
        read += sum(e - b for b, e in fill)
        tables = S.ShardTables(S._meta(meta_buf))
        if identity is not None:
            SHARD_TABLES.put(identity, tables)
    lo, hi = int(plan.shard_begin[0]), int(plan.shard_end[0])
    pieces = list(zip(plan.piece_begin[lo:hi].tolist(), plan.piece_end[lo:hi].tolist(), strict=True))
    buf = whole if whole is not None else read_host_ranges(url, pieces, plan.size_bytes)
    read += sum(e - b for b, e in pieces)
    t1 = time.perf_counter()
    timings.update(read_s=t1 - t0, bytes_read=float(read))
    sp = S.walk_shard(buf, plan, 0, tables)
    timings["decode_s"] = time.perf_counter() - t1
    return sp


def _shard_cost(sp: Any) -> int:
    """Bytes a cached shard walk holds (its host-event streams and its arrays)."""
    held = int(sp.index_pass.stream_bytes()) if sp.index_pass is not None else 0
    for group in (sp.slots, sp.records, sp.roots, sp.open):
        held += sum(int(np.asarray(v).nbytes) for v in group.values())
    return held + 4096


__all__ = [
    "DEFAULT_SHARD_BYTES",
    "INTERNAL_TASKS",
    "PLAN_TASK",
    "SEGMENTS_TASK",
    "SHARD_TASK",
    "decode_param",
    "decode_shard_plan",
    "encode_param",
    "encode_shard_plan",
    "map_internal",
]
