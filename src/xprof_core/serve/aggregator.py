"""The aggregator: XProf's HTTP API, with map tasks fanned out to workers.

``python -m xprof_core.aggregator --port=10000 --worker_service_address=dns:///svc:8891 -gp=50051``
serves the routes of XProf's profile plugin under ``/data/plugin/profile/``
(``runs``, ``run_tools``, ``hosts``, ``data``, ``data_csv``, ``config``,
``version``), an OpenAPI document, ``/healthz``, ``/readyz``, ``/metrics``
and the web UI at ``/`` (the static files of ``xprof_core/ui`` under ``/ui/``).
A tool request becomes one map task per selected host (run in parallel, only
for hosts whose partial is not cached) and one reduce here. Map tasks run on
the workers behind ``--worker_service_address`` or, without it, in a local
process pool (the embedded default). ``-gp`` also serves the worker service in
this process, so an aggregator alone is a working system. With no ``--logdir``
it serves the bundled demo logdir.

The logdir is only ever read: caches live in memory and, optionally, in
``--cache_dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import html
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from xprof_core._version import __version__
from xprof_core.errors import (
    DecodeError,
    HttpError,
    InternalError,
    ParamError,
    RemoteMapError,
    RunNotFoundError,
    UnknownToolError,
    XprofError,
    error_status,
)
from xprof_core.execute.sharding import DEFAULT_SHARD_BYTES
from xprof_core.serve.capture import (
    DEFAULT_CAPTURE_ALLOW,
    DEFAULT_CAPTURE_MAX_MB,
    DEFAULT_CAPTURE_MAX_TARGETS,
    DEFAULT_CAPTURES_PER_CLIENT,
    DEFAULT_CAPTURES_PER_MINUTE,
    CapturePolicy,
    add_capture_routes,
    parse_networks,
)
from xprof_core.serve.executor import GrpcExecutor, LocalExecutor, MapResult, MapTask
from xprof_core.serve.http_limits import ConnectionGate, GatedProtocol
from xprof_core.serve.partials import decode_partial, encode_partial
from xprof_core.storage.logdir import MAX_GUNZIP_RATIO, Logdir, Run

log = logging.getLogger(__name__)

API = "/data/plugin/profile"
# Query parameters that select what to run; every other one is a tool parameter.
SELECTORS = {"run", "tag", "tool", "host", "hosts", "tqx", "session_path", "run_path", "use_saved_result"}
MAX_PARAMS = 32
MAX_PARAM_CHARS = 512
RUNS_TTL_S = 5.0
# The web UI: static files shipped in the package, served under /ui/ (no build step).
UI_DIR = Path(__file__).resolve().parent.parent / "ui"
UI_CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain",
}
# index.html holds this marker; the server puts a <noscript> list of runs there.
UI_NOSCRIPT_MARKER = "<!-- xprof:noscript -->"


@dataclass
class AggregatorConfig:
    logdir: str | None = None
    port: int = 10000
    host: str = "0.0.0.0"
    grpc_port: int | None = None
    worker_service_address: str | None = None
    hide_capture_profile_button: bool = False
    cache_bytes: int = 512 << 20
    cache_dir: str | None = None
    map_timeout_s: float = 300.0
    shard_bytes: int = DEFAULT_SHARD_BYTES  # hosts larger than this are indexed in shards (0: never)
    local_workers: int | None = None
    max_hosts: int = 1024  # hosts one request may select
    max_gunzip_ratio: float = MAX_GUNZIP_RATIO
    worker_keepalive_s: float = 10.0
    http_header_timeout_s: float = 15.0
    max_connections: int = 1024
    shutdown_timeout_s: float = 10.0
    capture: CapturePolicy = field(default_factory=CapturePolicy)


class PartialCache:
    """Bounded LRU of encoded partials (bytes), optionally mirrored to a directory."""

    def __init__(self, max_bytes: int, directory: str | None = None) -> None:
        self.max_bytes = max_bytes
        self.directory = directory
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        if directory:
            os.makedirs(directory, exist_ok=True)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                return data
        if self.directory:
            path = os.path.join(self.directory, key + ".xpc")
            with contextlib.suppress(OSError):
                with open(path, "rb") as f:
                    data = f.read()
                self._put_memory(key, data)
                return data
        return None

    def put(self, key: str, data: bytes) -> None:
        self._put_memory(key, data)
        if self.directory:
            tmp = os.path.join(self.directory, f".{key}.{os.getpid()}.tmp")
            with contextlib.suppress(OSError):
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, os.path.join(self.directory, key + ".xpc"))

    def _put_memory(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "xprof_http_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "xprof_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.map_tasks = Counter(
            "xprof_map_tasks",
            "Map tasks by tool, worker and outcome",
            ["tool", "worker", "outcome"],
            registry=self.registry,
        )
        self.cache = Counter("xprof_partial_cache", "Partial cache lookups", ["result"], registry=self.registry)


@dataclass
class ToolAnswer:
    result: dict[str, Any] | None  # None when the tool rendered its JSON itself (``body``)
    hosts: list[str]
    workers: dict[str, str] = field(default_factory=dict)  # host -> worker id
    body: bytes | None = None  # the result as JSON bytes, for tools that render it directly


class RunIndex:
    """The logdir's runs, listed at most once at a time and kept for ``ttl_s``.

    Listing a logdir of thousands of runs takes seconds, so requests never wait
    for one they do not need: a stale listing is served while a background scan
    refreshes it, and a run missing from the listing is looked up by name
    (one directory, not the whole tree) instead of forcing a rescan. A caller that
    needs a fresh listing (``/runs``, after a capture) waits for a scan that started
    after it asked; concurrent callers share that scan.
    """

    def __init__(self, logdir: Logdir, ttl_s: float = RUNS_TTL_S) -> None:
        self.logdir = logdir
        self.ttl_s = ttl_s
        self.scans = 0  # full listings done, for metrics and tests
        self._runs: list[Run] = []
        self._by_name: dict[str, Run] = {}
        self._listed_at: float | None = None  # when the last scan started (monotonic)
        self._lock = threading.Lock()  # the fields above
        self._scan_lock = threading.Lock()  # one scan at a time
        self._refreshing = False

    def _scan(self, asked_at: float) -> list[Run]:
        """A listing from a scan that started at or after ``asked_at`` (one scan at a time)."""
        with self._scan_lock:
            with self._lock:
                if self._listed_at is not None and self._listed_at >= asked_at:
                    return list(self._runs)
            started = time.monotonic()
            runs = self.logdir.runs()
            with self._lock:
                self.scans += 1
                self._runs = runs
                self._by_name = {r.name: r for r in runs}
                self._listed_at = started
            return list(runs)

    def _refresh_in_background(self) -> None:
        def refresh() -> None:
            try:
                self._scan(time.monotonic())
            except Exception:  # noqa: BLE001 - a failed refresh keeps the old listing; the next one retries
                log.exception("listing the runs of %s failed", self.logdir.url)
            finally:
                with self._lock:
                    self._refreshing = False

        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=refresh, name="xprof-runs", daemon=True).start()

    def runs(self, fresh: bool = False) -> list[Run]:
        """Every run: from a scan started now when ``fresh``, else the cached listing (refreshed
        in the background once older than the TTL; the first call waits for a scan)."""
        now = time.monotonic()
        if fresh:
            return self._scan(now)
        with self._lock:
            listed_at, runs = self._listed_at, list(self._runs)
        if listed_at is None:
            return self._scan(now)
        if now - listed_at > self.ttl_s:
            self._refresh_in_background()
        return runs

    def run(self, name: str) -> Run:
        """The run called ``name``: from the listing, else looked up on its own; RunNotFoundError."""
        self.runs()  # a first listing, or a background refresh when stale
        with self._lock:
            found = self._by_name.get(name)
        if found is not None:
            return found
        run = self.logdir.run(name)  # RunNotFoundError for names that are not runs (cheap: one directory)
        with self._lock:
            self._by_name.setdefault(run.name, run)
        return run

    def names(self, limit: int) -> list[str]:
        with self._lock:
            return [r.name for r in self._runs][:limit]


class ProfileService:
    """What the HTTP routes call: runs, hosts and tool results, with caching.

    Its errors are :class:`~xprof_core.errors.HttpError` (status and JSON body) or
    another XprofError, whose status the one table in :mod:`xprof_core.errors` gives;
    anything else is a bug, answered 500 with its traceback logged.
    """

    def __init__(self, config: AggregatorConfig, executor: LocalExecutor | GrpcExecutor, metrics: Metrics) -> None:
        self.config = config
        self.logdir = Logdir(config.logdir or "")
        self.executor = executor
        self.metrics = metrics
        self.cache = PartialCache(config.cache_bytes, config.cache_dir)
        # Sharded index builds in flight: one per host (others wait), and their progress for /api/progress.
        self._building: dict[str, threading.Event] = {}
        self._building_lock = threading.Lock()
        self.progress: dict[str, dict[str, Any]] = {}
        self.index = RunIndex(self.logdir)

    def runs(self, refresh: bool = False) -> list[Run]:
        runs = self.index.runs(fresh=refresh)
        if self.logdir.root_error is not None:  # the storage refused the logdir itself: say so, not "no runs"
            raise self.logdir.root_error
        return runs

    def run(self, name: str | None) -> Run:
        if not name:
            raise HttpError(400, "missing parameter 'run'")
        if len(name) > 1024:
            raise HttpError(400, "parameter 'run' is too long")
        try:
            return self.index.run(name)
        except RunNotFoundError:
            raise HttpError(404, f"unknown run {name[:200]!r}", runs=self.index.names(100)) from None

    def tools(self) -> list[str]:
        from xprof_core.tools import tool_names

        return tool_names()

    def select_hosts(self, run: Run, host: str | None, hosts: str | None) -> list[tuple[str, str]]:
        """The (name, url) of each host asked for, each once, in the order asked (all hosts, sorted,
        by default); at most ``--max_hosts`` of them."""
        known = {h.name: h.url for h in run.hosts}
        if hosts:
            wanted = list(dict.fromkeys(h for h in hosts.split(",") if h))  # each host once
        elif host and host not in ("ALL_HOSTS", "*"):
            wanted = [host]
        else:
            wanted = sorted(known)
        missing = [h for h in wanted if h not in known]
        if missing:
            raise HttpError(404, f"unknown host {missing[0][:200]!r} in run {run.name!r}", hosts=sorted(known)[:1000])
        if not wanted:
            raise HttpError(404, f"run {run.name!r} has no hosts")
        if len(wanted) > self.config.max_hosts:
            raise HttpError(
                400,
                f"{len(wanted)} hosts selected, more than --max_hosts={self.config.max_hosts} per request: "
                f"name fewer with 'hosts'",
            )
        return [(h, known[h]) for h in wanted]

    def _cache_key(self, task: MapTask, tool: Any) -> str:
        """A partial's identity: the file (and its size and mtime when local), shard, and what the map made
        of it: the host index for table tools, else the tool, its version and the parameters its map reads
        (others do not change the partial)."""
        try:
            st = os.stat(task.url)
            identity = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            identity = "remote"
        if tool.needs == "index":
            # Every table tool's map is the host index: one cached partial per host serves them all.
            from xprof_core.tools.index_sections import INDEX_KIND, INDEX_VERSION

            raw = orjson.dumps([INDEX_KIND, INDEX_VERSION, task.url, identity, task.shard])
        else:
            raw = orjson.dumps([task.tool, tool.version, task.url, identity, sorted(task.params.items()), task.shard])
        return hashlib.sha256(raw).hexdigest()[:40]

    def tool_result(
        self,
        run_name: str | None,
        tool_name: str | None,
        host: str | None,
        hosts: str | None,
        params: dict[str, str],
        as_dict: bool = False,
    ) -> ToolAnswer:
        from xprof_core.tools import get_tool
        from xprof_core.tools.params import map_params, tool_params

        if not tool_name:
            raise HttpError(400, "missing parameter 'tag' (the tool name)")
        if tool_name == "diff":  # two runs, not a map/reduce over one: see serve/diff.py
            return self._diff(run_name, host, hosts, params)
        try:
            tool = get_tool(tool_name)
        except UnknownToolError as exc:
            raise HttpError(404, str(exc), tools=self.tools()) from None
        run = self.run(run_name)
        selected = self.select_hosts(run, host, hosts)
        params = tool_params(tool, params)  # what the tool reads; the rest is dropped
        partials: dict[str, Any] = {}
        tasks: list[tuple[MapTask, str]] = []
        for name, url in selected:
            task = MapTask(tool_name, name, url, map_params(tool, params))
            key = self._cache_key(task, tool)
            data = self.cache.get(key)
            if data is not None:
                self.metrics.cache.labels("hit").inc()
                partials[name] = decode_partial(data)
            else:
                self.metrics.cache.labels("miss").inc()
                tasks.append((task, key))
        workers: dict[str, str] = {}
        huge = self._huge_hosts(run, tool, [t for t, _ in tasks])
        for task, key in [(t, k) for t, k in tasks if t.host in huge]:
            partials[task.host], workers[task.host] = self._sharded_index(run.name, task, key, huge[task.host])
        tasks = [(t, k) for t, k in tasks if t.host not in huge]
        if tasks:
            results: list[MapResult] = self.executor.map([t for t, _ in tasks], timeout_s=self.config.map_timeout_s)
            failed = None
            for (task, key), res in zip(tasks, results, strict=True):
                if res.abandoned:
                    continue
                self.metrics.map_tasks.labels(tool_name, res.worker_id, "ok" if res.ok else "error").inc()
                if not res.ok:
                    failed = failed or (task.host, res.error)
                    continue
                workers[task.host] = res.worker_id
                self.cache.put(key, encode_partial(res.partial))  # kept even when another host failed
                partials[task.host] = res.partial
            if failed is not None:
                raise _http_error_for(*failed)
        ordered = []
        for name, _ in selected:
            p = dict(partials[name])
            p["host"] = name
            ordered.append(p)
        try:
            # Tools with a direct JSON renderer (trace_viewer) skip building an object per event.
            render = getattr(tool, "reduce_json", None)
            if render is not None and not as_dict:
                return ToolAnswer(None, [h for h, _ in selected], workers, body=render(ordered, params))
            result = tool.reduce(ordered, params)
        except ParamError as exc:
            raise HttpError(400, str(exc)) from None
        return ToolAnswer(result, [h for h, _ in selected], workers)

    def _huge_hosts(self, run: Run, tool: Any, tasks: list[MapTask]) -> dict[str, int]:
        """The hosts of these tasks indexed in shards (table tools only): name -> size in bytes.

        Compressed hosts and trace JSON are mapped whole: every shard task would have to inflate or
        transcode the whole file to reach its byte ranges."""
        from xprof_core.model.kineto import is_trace_json_name

        if tool.needs != "index" or self.config.shard_bytes <= 0 or not tasks:
            return {}
        sizes = {h.name: h.size_bytes for h in run.hosts}
        return {
            t.host: sizes[t.host]
            for t in tasks
            if sizes.get(t.host, 0) > self.config.shard_bytes
            and not t.url.endswith(".gz")
            and not is_trace_json_name(t.url)
        }

    def _sharded_index(self, run_name: str, task: MapTask, key: str, size: int) -> tuple[dict[str, Any], str]:
        """One huge host's index built in shards by the executor's processes or workers (one build at a
        time per host: a concurrent request waits for it), cached like any host index. Its progress is
        listed by ``/api/progress`` while it runs."""
        from xprof_core.index.shards import PLAN_VERSION
        from xprof_core.serve.sharding import sharded_host_index

        with self._building_lock:
            running = self._building.get(key)
            event = running if running is not None else threading.Event()
            if running is None:
                self._building[key] = event
        if running is not None:
            event.wait(self.config.map_timeout_s * 4)
            data = self.cache.get(key)
            if data is None:
                raise HttpError(503, f"host {task.host!r}: the sharded index built by another request failed")
            return decode_partial(data), "shards"
        shard_bytes = self.config.shard_bytes
        plan_key = hashlib.sha256(orjson.dumps(["shard-plan", PLAN_VERSION, key, shard_bytes])).hexdigest()[:40]
        entry = {"run": run_name, "host": task.host, "bytes": size, "done": 0, "total": 0, "started": time.time()}
        with self._building_lock:
            self.progress[key] = entry

        def progress(done: int, total: int) -> None:
            entry["done"], entry["total"] = done, total

        try:
            cached_plan = self.cache.get(plan_key)
            built, plan_answer = sharded_host_index(
                lambda tasks: self.executor.map(tasks, timeout_s=self.config.map_timeout_s),
                task.host,
                task.url,
                shard_bytes,
                decode_partial(cached_plan) if cached_plan is not None else None,
                progress,
            )
        except HttpError:
            raise
        except XprofError as exc:
            self.metrics.map_tasks.labels(task.tool, "shards", "error").inc()
            raise _http_error_for(task.host, exc) from None
        finally:
            with self._building_lock:
                self.progress.pop(key, None)
                self._building.pop(key, None)
            event.set()
        if cached_plan is None:
            self.cache.put(plan_key, encode_partial(plan_answer))
        for worker, count in built.workers.items():
            self.metrics.map_tasks.labels("_index_shard", worker, "ok").inc(count)
        self.cache.put(key, encode_partial(built.partial))
        log.info(
            "host %s: index in %d shards of %d MiB by %s: walks %.2f s, merge %.2f s, segments %.2f s%s",
            task.host,
            built.shards,
            shard_bytes >> 20,
            ", ".join(f"{w} ({n})" for w, n in sorted(built.workers.items())),
            built.walk_s,
            built.merge_s,
            built.segments_s,
            f", {built.rewalks} shards walked again" if built.rewalks else "",
        )
        return built.partial, f"{len(built.workers)} workers, {built.shards} shards"

    def _diff(self, run_name: str | None, host: str | None, hosts: str | None, params: dict[str, str]) -> ToolAnswer:
        from xprof_core.serve.diff import diff_answer

        def run_tool(run: str | None, tool: str, h: str | None, hs: str | None) -> tuple[dict[str, Any], list[str]]:
            answer = self.tool_result(run, tool, h, hs, {}, as_dict=True)
            return answer.result or {}, answer.hosts

        try:
            result, used = diff_answer(run_tool, run_name, host, hosts, params)
        except ParamError as exc:
            raise HttpError(400, str(exc)) from None
        return ToolAnswer(result, used)


def _http_error_for(host: str, error: Exception | None) -> HttpError:
    """A map task's error as the HTTP answer: status from the one table, the host named."""
    if error is None:
        error = InternalError("no result")
    status = error_status(error)
    if isinstance(error, DecodeError):
        return HttpError(
            status.http,
            f"host {host!r}: the profile is not a valid XSpace: {error.reason}",
            host=host,
            offset=error.offset,
            path=error.path,
        )
    message = error.message if isinstance(error, RemoteMapError) else str(error)
    if status.http >= 500:
        log.error("host %s: %s: %s", host, type(error).__name__, message)
    return HttpError(status.http, f"host {host!r}: {message}", host=host, code=status.grpc)


# --- HTTP ---


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status=status, content_type="application/json"
    )


def _tool_params(request: web.Request) -> dict[str, str]:
    params = {k: v for k, v in request.query.items() if k not in SELECTORS}
    if len(params) > MAX_PARAMS:
        raise HttpError(400, f"too many parameters ({len(params)} > {MAX_PARAMS})")
    for k, v in params.items():
        if len(k) > 64 or len(v) > MAX_PARAM_CHARS:
            raise HttpError(400, f"parameter {k[:64]!r} is too long")
    return params


def _check_session_path(request: web.Request) -> str | None:
    """XProf lets session_path name any directory; we only accept a run inside the logdir."""
    sp = request.query.get("session_path") or request.query.get("run_path")
    if sp is None:
        return None
    raise HttpError(400, "session_path/run_path are not accepted: name a run of this logdir with 'run'")


class Aggregator:
    """The aiohttp application and everything it holds."""

    def __init__(self, config: AggregatorConfig, executor: LocalExecutor | GrpcExecutor | None = None) -> None:
        self.config = config
        if config.logdir is None:
            from xprof_core.demo import DEMO_LOGDIR

            config.logdir = str(DEMO_LOGDIR)
            log.info("no --logdir given: serving the bundled demo logdir %s", config.logdir)
        if executor is None:
            executor = (
                GrpcExecutor(
                    config.worker_service_address,
                    deadline_s=config.map_timeout_s,
                    keepalive_s=config.worker_keepalive_s,
                )
                if config.worker_service_address
                else LocalExecutor(
                    config.local_workers, roots=[config.logdir], max_gunzip_ratio=config.max_gunzip_ratio
                )
            )
        self.executor = executor
        self.metrics = Metrics()
        self.service = ProfileService(config, executor, self.metrics)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        self._routes()
        # Before aiohttp waits for the requests in flight: their map tasks end now (503), not at their deadline.
        self.app.on_shutdown.append(self._close_executor)

    async def _close_executor(self, app: web.Application) -> None:
        self.executor.close()

    def _routes(self) -> None:
        r = self.app.router
        r.add_get("/", self.index)
        r.add_get("/ui/{path:.+}", self.ui_file)
        r.add_get(f"{API}/runs", self.runs)
        r.add_get(f"{API}/run_tools", self.run_tools)
        r.add_get(f"{API}/hosts", self.hosts)
        r.add_get(f"{API}/data", self.data)
        r.add_get(f"{API}/data_csv", self.data_csv)
        r.add_get(f"{API}/config", self.config_route)
        r.add_get(f"{API}/progress", self.progress_route)
        r.add_get(f"{API}/version", self.version)
        add_capture_routes(
            self.app, lambda: self.service.logdir, lambda: self.service.runs(refresh=True), self.config.capture
        )
        r.add_get("/openapi.json", self.openapi)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics_route)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        t0 = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        try:
            response = await handler(request)
        except HttpError as exc:
            response = _json(exc.body, exc.status)
        except XprofError as exc:  # ours, with a status from the one table
            response = _json({"error": str(exc)}, error_status(exc).http)
        except web.HTTPNotFound:
            response = _json({"error": f"no route {request.path}", "see": "/openapi.json"}, 404)
        except web.HTTPException as exc:
            response = _json({"error": exc.reason}, exc.status)
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            log.exception("error serving %s", request.path_qs)
            response = _json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(body, bytes) and len(body) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        self.metrics.requests.labels(route, str(response.status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
        return response

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def runs(self, request: web.Request) -> web.Response:
        runs = await self._in_thread(self.service.runs, True)
        return _json([r.name for r in runs])

    async def run_tools(self, request: web.Request) -> web.Response:
        _check_session_path(request)
        await self._in_thread(self.service.run, request.query.get("run"))
        return _json(self.service.tools())

    async def hosts(self, request: web.Request) -> web.Response:
        _check_session_path(request)
        run = await self._in_thread(self.service.run, request.query.get("run"))
        return _json([{"hostname": h.name} for h in run.hosts])

    async def _answer(self, request: web.Request, as_dict: bool = False) -> ToolAnswer:
        _check_session_path(request)
        q = request.query
        params = _tool_params(request)
        return await self._in_thread(
            self.service.tool_result,
            q.get("run"),
            q.get("tag") or q.get("tool"),
            q.get("host"),
            q.get("hosts"),
            params,
            as_dict,
        )

    async def data(self, request: web.Request) -> web.Response:
        answer = await self._answer(request)
        if answer.body is not None:
            response = web.Response(body=answer.body, content_type="application/json")
        else:
            response = _json(answer.result)
        response.headers["X-Xprof-Hosts"] = ",".join(answer.hosts)
        if answer.workers:
            response.headers["X-Xprof-Workers"] = ",".join(sorted(set(answer.workers.values())))
        return response

    async def data_csv(self, request: web.Request) -> web.Response:
        from xprof_core.tools.datatable import to_csv

        answer = await self._answer(request, as_dict=True)
        result = answer.result or {}
        tables = {k: v for k, v in result.items() if isinstance(v, dict) and "cols" in v and "rows" in v}
        if not tables:
            raise HttpError(400, f"tool {request.query.get('tag') or request.query.get('tool')!r} has no table")
        name = request.query.get("table") or next(iter(tables))
        if name not in tables:
            raise HttpError(404, f"no table {name!r}", tables=sorted(tables))
        return web.Response(
            text=to_csv(tables[name]),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    async def config_route(self, request: web.Request) -> web.Response:
        return _json(
            {
                "hideCaptureProfileButton": self.config.hide_capture_profile_button,
                "srcPathPrefix": "",
                "enableTabNameLabel": False,
                "executor": self.executor.description,
            }
        )

    async def progress_route(self, request: web.Request) -> web.Response:
        """Long work in flight: the hosts being indexed in shards, with shard tasks done and total."""
        with self.service._building_lock:
            builds = [dict(e) for e in self.service.progress.values()]
        now = time.time()
        for b in builds:
            b["seconds"] = round(now - b.pop("started"), 3)
        return _json({"builds": sorted(builds, key=lambda b: (b["run"], b["host"]))})

    async def version(self, request: web.Request) -> web.Response:
        return web.Response(text=__version__, content_type="text/plain")

    async def openapi(self, request: web.Request) -> web.Response:
        from xprof_core.serve.openapi import openapi_document

        return _json(openapi_document(self.service.tools()))

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            await self._in_thread(self.service.runs)
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            return _json({"ready": False, "error": str(exc)}, 503)
        return _json({"ready": True, "logdir": self.config.logdir, "executor": self.executor.description})

    async def metrics_route(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def index(self, request: web.Request) -> web.Response:
        """The web UI's page, with a server-rendered list of runs for browsers without JavaScript."""
        page = await self._in_thread((UI_DIR / "index.html").read_text, "utf-8")
        runs = await self._in_thread(self.service.runs)
        tools = self.service.tools()
        parts = [
            f"<noscript><p>Logdir: <code>{html.escape(str(self.config.logdir))}</code> "
            f"&middot; {html.escape(self.executor.description)}</p>"
        ]
        if not runs:
            parts.append("<p>No runs found.</p>")
        for run in runs:
            q = f"run={_q(run.name)}"
            parts.append(
                f"<h2>{html.escape(run.name)}</h2><p>Hosts: "
                f"{html.escape(', '.join(h.name for h in run.hosts)) or 'none'}</p><ul>"
            )
            for tool in tools:
                parts.append(f"<li><a href='{API[1:]}/data?{q}&amp;tag={tool}'>{tool}</a></li>")
            parts.append("</ul>")
        parts.append("</noscript>")
        return web.Response(
            text=page.replace(UI_NOSCRIPT_MARKER, "".join(parts), 1),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    async def ui_file(self, request: web.Request) -> web.Response:
        """A static file of the UI folder; never anything outside it (no '..', no links out, no dotfiles)."""
        rel = request.match_info["path"]
        parts = rel.split("/")
        content_type = UI_CONTENT_TYPES.get(os.path.splitext(rel)[1].lower())
        if content_type is None or any(
            p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts
        ):
            raise HttpError(404, f"no UI file {rel[:200]!r}")
        path = (UI_DIR / rel).resolve()
        if not path.is_relative_to(UI_DIR) or not path.is_file():
            raise HttpError(404, f"no UI file {rel[:200]!r}")
        body = await self._in_thread(path.read_bytes)
        charset = None if content_type.startswith("image/png") else "utf-8"
        return web.Response(
            body=body,
            content_type=content_type,
            charset=charset,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


# --- command line ---


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xprof_core.aggregator",
        description="Serve profiles over HTTP (XProf's API) and fan tool work out to gRPC workers.",
    )
    p.add_argument("--port", type=int, default=10000, help="HTTP port (default 10000)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument(
        "--logdir",
        default=None,
        help="the logdir to serve: a local path, gs://, s3:// or memory:// URL "
        "(default: the bundled demo logdir of real profiles)",
    )
    p.add_argument(
        "--worker_service_address",
        default=None,
        help="gRPC target of the workers, e.g. dns:///xprof-worker-service.default.svc.cluster.local:8891, "
        "ipv4:10.0.0.1:8891,10.0.0.2:8891 or host1:8891,host2:8891; load balancing from "
        "GRPC_LB_POLICY, else round_robin (default: run map tasks in a local process pool)",
    )
    p.add_argument(
        "-gp",
        "--grpc_port",
        type=int,
        default=None,
        help="also serve the worker service (and grpc.health.v1) in this process on this port",
    )
    p.add_argument(
        "--hide_capture_profile_button",
        action="store_true",
        help="hide the capture button in the UI (reported by /data/plugin/profile/config) and refuse "
        "capture_profile requests (403): without it, anyone who reaches this server may capture from the "
        "addresses --capture_allow permits, into the logdir",
    )
    p.add_argument(
        "--capture_allow",
        default=",".join(DEFAULT_CAPTURE_ALLOW),
        help="addresses and CIDR networks, comma-separated, that capture_profile may contact; a name must "
        "resolve only into them (default: this machine, 127.0.0.0/8,::1; 0.0.0.0/0,::/0 allows any)",
    )
    p.add_argument(
        "--capture_max_mb",
        type=int,
        default=DEFAULT_CAPTURE_MAX_MB,
        help=f"largest profile a capture may receive from one service, in MB (default {DEFAULT_CAPTURE_MAX_MB})",
    )
    p.add_argument(
        "--capture_max_targets",
        type=int,
        default=DEFAULT_CAPTURE_MAX_TARGETS,
        help=f"service addresses one capture may name (default {DEFAULT_CAPTURE_MAX_TARGETS})",
    )
    p.add_argument(
        "--capture_per_client",
        type=int,
        default=DEFAULT_CAPTURES_PER_CLIENT,
        help=f"captures one client address may run at once (default {DEFAULT_CAPTURES_PER_CLIENT}; "
        f"at most {DEFAULT_CAPTURES_PER_MINUTE} a minute)",
    )
    p.add_argument(
        "--cache_dir", default=None, help="also keep computed partials in this directory (never inside the logdir)"
    )
    p.add_argument("--cache_mb", type=int, default=512, help="in-memory partial cache size in MB (default 512)")
    p.add_argument(
        "--map_timeout", type=float, default=300.0, help="deadline in seconds for each host's map task (default 300)"
    )
    p.add_argument(
        "--shard_mb",
        type=float,
        default=DEFAULT_SHARD_BYTES >> 20,
        help="index hosts larger than this many MB in shards of about this size, walked by all the workers "
        f"(or local processes) at once and merged exactly; 0: one task per host (default {DEFAULT_SHARD_BYTES >> 20})",
    )
    p.add_argument(
        "--local_workers",
        type=int,
        default=None,
        help="processes for local map tasks when there are no workers (default: the cores)",
    )
    p.add_argument(
        "--max_hosts",
        type=int,
        default=1024,
        help="hosts one request may select (repeated names count once; default 1024)",
    )
    p.add_argument(
        "--max_gunzip_ratio",
        type=float,
        default=MAX_GUNZIP_RATIO,
        help="a .xplane.pb.gz host file may inflate to this many times its size (and always to 64 MiB); "
        f"larger ones are refused as a gzip bomb (default {MAX_GUNZIP_RATIO:g})",
    )
    p.add_argument(
        "--worker_keepalive",
        type=float,
        default=10.0,
        help="seconds between pings to each worker; one that does not answer within as long again is taken "
        "out of rotation and its map tasks go to another worker (default 10)",
    )
    p.add_argument(
        "--http_header_timeout",
        type=float,
        default=15.0,
        help="seconds a connection has to send a complete request's headers, from when it opens or its last "
        "answer ends; idle and half-sent connections are closed after it (default 15)",
    )
    p.add_argument(
        "--max_connections",
        type=int,
        default=1024,
        help="open HTTP connections at most; more are closed at once (default 1024)",
    )
    p.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    return p


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept XProf's ``-gp=N`` spelling (argparse wants ``-gp N`` or ``--grpc_port=N``)."""
    return [a.replace("-gp=", "--grpc_port=", 1) if a.startswith("-gp=") else a for a in argv]


def config_from_args(args: argparse.Namespace) -> AggregatorConfig:
    """The configuration the flags describe; SystemExit with the reason for flags that cannot work."""
    try:
        allow = parse_networks(args.capture_allow)
    except ValueError as exc:
        raise SystemExit(f"--capture_allow: {exc}") from None
    for flag, value in (
        ("--max_hosts", args.max_hosts),
        ("--max_connections", args.max_connections),
        ("--capture_max_mb", args.capture_max_mb),
        ("--capture_max_targets", args.capture_max_targets),
        ("--capture_per_client", args.capture_per_client),
    ):
        if value < 1:
            raise SystemExit(f"{flag} must be at least 1 (got {value})")
    if args.shard_mb < 0:
        raise SystemExit(f"--shard_mb must be 0 (no shards) or more (got {args.shard_mb})")
    for flag, number in (
        ("--max_gunzip_ratio", args.max_gunzip_ratio),
        ("--worker_keepalive", args.worker_keepalive),
        ("--http_header_timeout", args.http_header_timeout),
        ("--map_timeout", args.map_timeout),
    ):
        if not number > 0:
            raise SystemExit(f"{flag} must be positive (got {number})")
    if args.cache_dir and args.logdir and "://" not in args.logdir:
        cache, logdir = os.path.realpath(args.cache_dir), os.path.realpath(args.logdir)
        if cache == logdir or cache.startswith(logdir + os.sep):
            raise SystemExit("--cache_dir must not be inside --logdir (the logdir may be read-only)")
    return AggregatorConfig(
        logdir=args.logdir,
        port=args.port,
        host=args.host,
        grpc_port=args.grpc_port,
        worker_service_address=args.worker_service_address,
        hide_capture_profile_button=args.hide_capture_profile_button,
        cache_bytes=args.cache_mb << 20,
        cache_dir=args.cache_dir,
        map_timeout_s=args.map_timeout,
        shard_bytes=int(args.shard_mb * (1 << 20)),
        local_workers=args.local_workers,
        max_hosts=args.max_hosts,
        max_gunzip_ratio=args.max_gunzip_ratio,
        worker_keepalive_s=args.worker_keepalive,
        http_header_timeout_s=args.http_header_timeout,
        max_connections=args.max_connections,
        capture=CapturePolicy(
            enabled=not args.hide_capture_profile_button,
            allow=allow,
            max_targets=args.capture_max_targets,
            max_bytes=args.capture_max_mb << 20,
            per_client=args.capture_per_client,
        ),
    )


async def _serve(aggregator: Aggregator, stop: asyncio.Event) -> None:
    config = aggregator.config
    # keepalive_timeout: a connection gets this long, from when it opens or its last answer ends, to
    # deliver a complete request's headers (see http_limits).
    runner = web.AppRunner(
        aggregator.app,
        access_log=None,
        keepalive_timeout=config.http_header_timeout_s,
        shutdown_timeout=config.shutdown_timeout_s,
    )
    await runner.setup()
    assert runner.server is not None
    http_server = runner.server
    gate = ConnectionGate(config.max_connections)
    server = await asyncio.get_running_loop().create_server(
        lambda: GatedProtocol(http_server, gate), config.host, config.port, reuse_address=True, backlog=1024
    )
    shown = "localhost" if aggregator.config.host in ("0.0.0.0", "::") else aggregator.config.host
    print(
        f"xprof-core aggregator: open http://{shown}:{aggregator.config.port}/ "
        f"(logdir {aggregator.config.logdir}; {aggregator.executor.description})",
        flush=True,
    )
    await stop.wait()
    server.close()
    await runner.cleanup()  # closes the executor first, then waits for requests (shutdown_timeout_s at most)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    config.max_connections = _fit_connections(config.max_connections)
    aggregator = Aggregator(config)
    worker = None
    if config.grpc_port is not None:
        from xprof_core.serve.worker import WorkerConfig, create_server

        worker = create_server(
            f"{config.host}:{config.grpc_port}",
            WorkerConfig(logdir_roots=[str(config.logdir)], max_gunzip_ratio=config.max_gunzip_ratio),
        )
        log.info("worker service on gRPC port %d", worker.port)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    t0 = 0.0
    try:
        loop.run_until_complete(_serve(aggregator, stop))
        t0 = time.monotonic()
    finally:
        if worker is not None:
            worker.stop(grace_s=5.0)
        aggregator.executor.close()
        loop.close()
    _exit_when_threads_linger(LINGER_S)
    log.info("aggregator stopped in %.1f s", time.monotonic() - t0 if t0 else 0.0)
    return 0


def _fit_connections(limit: int) -> int:
    """``--max_connections``, within what this process may open: the soft file limit is raised as far as
    the hard one allows, else the connection limit is lowered to leave room for files and workers."""
    import resource

    spare = 256  # profiles, the cache directory, gRPC channels, the map processes' pipes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < limit + spare:
        raised = limit + spare if hard == resource.RLIM_INFINITY else min(limit + spare, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < limit + spare:
        fitted = max(16, soft - spare)
        log.warning("--max_connections=%d lowered to %d: this process may open %d files", limit, fitted, soft)
        return fitted
    return limit


#: After shutdown, how long threads still working (a reduce, a listing) may delay the exit.
LINGER_S = 3.0


def _exit_when_threads_linger(timeout_s: float) -> None:
    """Give threads still running a moment; then leave without them (the interpreter's exit would
    join them, however long they take)."""
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    lingering = [
        t.name for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()
    ]
    if lingering:
        log.warning("exiting with %d threads still running: %s", len(lingering), ", ".join(lingering[:5]))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
