"""The execution layer: run a tool's map over hosts and reduce, headless.

``run_tool`` maps each host in process and reduces; the serving layer's
executors fan the same map tasks (:func:`map_host`) out to a process pool or
to gRPC workers.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from xprof_core.errors import ParamError
from xprof_core.execute.sharding import INTERNAL_TASKS, map_internal
from xprof_core.tools import get_tool
from xprof_core.tools.base import Params, Partial, Tool


def resolve_hosts(source: Any) -> list[tuple[str, str]]:
    """(host name, url) pairs from a file, a list of files, a session dir, a ``Run``, or (logdir, run)."""
    from xprof_core.storage.logdir import Logdir, Run, host_name_of

    if isinstance(source, Run):
        return [(h.name, h.url) for h in source.hosts]
    if isinstance(source, tuple) and len(source) == 2:
        run = Logdir(str(source[0])).run(str(source[1]))
        return [(h.name, h.url) for h in run.hosts]
    if isinstance(source, (list, tuple)):
        return [(host_name_of(str(p)), str(p)) for p in source]
    text = str(source)
    if (isinstance(source, Path) or "://" not in text) and os.path.isdir(text):
        runs = Logdir(text).runs()
        if len(runs) != 1:
            names = [r.name for r in runs]
            raise ParamError(f"{text} holds {len(runs)} runs {names}: pass (logdir, run) to choose one")
        return [(h.name, h.url) for h in runs[0].hosts]
    return [(host_name_of(text), text)]


def map_buffer(tool: Tool, buf: Any, params: Params, timings: dict[str, float] | None = None) -> Partial:
    """A tool's map over one host's bytes: the host index for table tools, else the tool's own map of the
    decoded XSpace. The one map path of the local pool, the gRPC worker and ``run_tool``.

    ``timings``, when given, receives ``decode_s`` (the walk of the host's
    bytes, or the decode into columns) and ``map_s`` (what the tool did next).
    """
    t0 = time.perf_counter()
    if tool.needs == "index":
        from xprof_core.index.passes import walk_host
        from xprof_core.tools.host_index import build_host_index

        source: Any = walk_host(buf)
        t1 = time.perf_counter()
        partial = build_host_index(source)
    else:
        from xprof_core.model.xspace import decode_xspace

        source = decode_xspace(buf)
        t1 = time.perf_counter()
        partial = tool.map(source, params)
    if timings is not None:
        timings["decode_s"] = t1 - t0
        timings["map_s"] = time.perf_counter() - t1
    return partial


def map_host(tool: str, url: str, params: Params | None = None, timings: dict[str, float] | None = None) -> Partial:
    """Run a tool's map on one host file: the map path of ``run_tool``, the local pool and the gRPC worker.

    Table tools get the host index, cached in memory by file identity
    (:data:`INDEX_CACHE`), so every table tool after the first reads it; other
    tools get the decoded XSpace, also cached (:data:`XSPACE_CACHE`, bounded
    by the size of the columns), so a zoomed trace window does not decode the
    host again. ``timings``, when given, receives ``read_s``, ``bytes_read``,
    ``decode_s`` and ``map_s`` (zeros for what a cache answered).

    The file is read into memory (:func:`~xprof_core.storage.logdir.read_host_bytes`),
    not mapped: a file truncated while it is read or decoded, or while its decoded
    columns are cached, is then an error (or the copy read), never a SIGBUS.
    """
    from xprof_core.model.load import host_bytes  # trace JSON becomes XSpace wire bytes here

    params = params or {}
    phases = timings if timings is not None else {}
    phases.update(read_s=0.0, bytes_read=0.0, decode_s=0.0, map_s=0.0)
    if tool in INTERNAL_TASKS:  # one shard of a huge host: see execute/sharding.py
        return map_internal(tool, url, params, phases)
    t = get_tool(tool)
    key = _identity(url)
    if t.needs == "index":
        hit = INDEX_CACHE.get(key) if key is not None else None
        if hit is not None:
            return dict(hit)
        t0 = time.perf_counter()
        buf = host_bytes(url)
        phases.update(read_s=time.perf_counter() - t0, bytes_read=float(len(buf)))
        partial = map_buffer(t, buf, params, phases)
        if key is not None:
            INDEX_CACHE.put(key, partial)
            return dict(partial)
        return partial
    xs = XSPACE_CACHE.get(key) if key is not None else None
    if xs is None:
        from xprof_core.model.xspace import decode_xspace

        t0 = time.perf_counter()
        buf = host_bytes(url)
        t1 = time.perf_counter()
        xs = decode_xspace(buf)
        phases.update(read_s=t1 - t0, bytes_read=float(len(buf)), decode_s=time.perf_counter() - t1)
        if key is not None:
            XSPACE_CACHE.put(key, xs, cost=_columns_bytes(xs) + len(buf))  # the columns and their bytes
    t2 = time.perf_counter()
    partial = t.map(xs, params)
    phases["map_s"] = time.perf_counter() - t2
    return partial


def _columns_bytes(xs: Any) -> int:
    """What a decoded host holds in memory beyond its input bytes (columns; indexes roughly as much again)."""
    ev = xs.tables.events
    per_event = sum(int(a.itemsize) for a in (ev.metadata_id, ev.start_ps, ev.duration_ps, ev.offset, ev.has_stats))
    return 2 * per_event * len(ev) + 4096


class _Lru:
    """A thread-safe LRU of per-host results by file identity, bounded by a total cost (entries count 1
    unless a cost is given)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any, cost: int = 1) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._used -= old[1]
            if cost > self.budget:
                return  # larger than the whole cache: not kept
            self._items[key] = (value, cost)
            self._used += cost
            while self._used > self.budget:
                _, (_, c) = self._items.popitem(last=False)
                self._used -= c

    def pop(self, key: str) -> Any:
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._used -= item[1]
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0


# Host indexes (small: tables of ops, steps and kernels) by file identity.
INDEX_CACHE = _Lru(int(os.environ.get("XPROF_INDEX_CACHE_HOSTS", "64")))
# Decoded hosts for the tools that read events (the trace viewer), bounded by their columns' bytes.
XSPACE_CACHE = _Lru(int(os.environ.get("XPROF_XSPACE_CACHE_BYTES", str(2 << 30))))
# Shard walks between a shard's two tasks (bounded by their streams' and arrays' bytes), and each huge
# host's plane tables (for its shards' walks).
SHARD_CACHE = _Lru(int(os.environ.get("XPROF_SHARD_CACHE_BYTES", str(1 << 30))))
SHARD_TABLES = _Lru(16)


def _identity(url: str) -> str | None:
    """A local file's identity (path, size, mtime, inode), or None for what cannot be checked cheaply."""
    if "://" in url and not url.startswith("file://"):
        return None
    path = url.removeprefix("file://")
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def reduce_partials(tool: str, partials: Sequence[Partial], params: dict[str, Any] | None = None) -> dict[str, Any]:
    return get_tool(tool).reduce(partials, params or {})


def run_tool_json(tool: str, source: Any, hosts: Iterable[str] | None = None, **params: Any) -> bytes:
    """:func:`run_tool`'s result as JSON bytes (tools that render JSON directly skip the Python objects)."""
    import orjson

    render = getattr(get_tool(tool), "reduce_json", None)
    if render is None:
        return orjson.dumps(run_tool(tool, source, hosts, **params), option=orjson.OPT_SERIALIZE_NUMPY)
    data: bytes = render(_map_all(tool, source, hosts, params), params)
    return data


def _map_all(tool: str, source: Any, hosts: Iterable[str] | None, params: dict[str, Any]) -> list[Partial]:
    get_tool(tool)  # fail fast on an unknown name
    pairs = resolve_hosts(source)
    if hosts is not None:
        wanted = set(hosts)
        pairs = [p for p in pairs if p[0] in wanted]
        missing = wanted - {p[0] for p in pairs}
        if missing:
            raise ParamError(f"unknown hosts {sorted(missing)}")
    partials = []
    for name, url in pairs:
        partial = map_host(tool, url, params)
        partial.setdefault("host", name)
        partials.append(partial)
    return partials


def run_tool(tool: str, source: Any, hosts: Iterable[str] | None = None, **params: Any) -> dict[str, Any]:
    """Run a tool headless: map every selected host in process, then reduce.

    ``source`` is a host file path/URL, a list of them, a session or run
    directory, a :class:`~xprof_core.storage.logdir.Run`, or ``(logdir, run_name)``;
    ``hosts`` restricts to those host names. Extra keyword arguments are the
    tool's parameters (as in XProf's ``/data`` query string).
    """
    from xprof_core.execute.result import ToolResult

    return ToolResult(reduce_partials(tool, _map_all(tool, source, hosts, params), params))


__all__ = [
    "INDEX_CACHE",
    "SHARD_CACHE",
    "XSPACE_CACHE",
    "map_buffer",
    "map_host",
    "reduce_partials",
    "resolve_hosts",
    "run_tool",
    "run_tool_json",
]
