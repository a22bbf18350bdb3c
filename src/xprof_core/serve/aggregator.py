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
from xprof_core.errors import DecodeError, ProfileNotFoundError, UnknownToolError
from xprof_core.serve.capture import add_capture_routes
from xprof_core.serve.executor import GrpcExecutor, LocalExecutor, MapResult, MapTask, RemoteMapError
from xprof_core.serve.partials import decode_partial, encode_partial
from xprof_core.storage.logdir import Logdir, Run

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


class HttpError(Exception):
    """An error with an HTTP status and a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


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
    local_workers: int | None = None


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


class ProfileService:
    """What the HTTP routes call: runs, hosts and tool results, with caching. No HTTP here."""

    def __init__(self, config: AggregatorConfig, executor: LocalExecutor | GrpcExecutor, metrics: Metrics) -> None:
        self.config = config
        self.logdir = Logdir(config.logdir or "")
        self.executor = executor
        self.metrics = metrics
        self.cache = PartialCache(config.cache_bytes, config.cache_dir)
        self._runs: list[Run] = []
        self._runs_at = 0.0
        self._lock = threading.Lock()

    def runs(self, refresh: bool = False) -> list[Run]:
        with self._lock:
            if refresh or time.monotonic() - self._runs_at > RUNS_TTL_S:
                self._runs = self.logdir.runs()
                self._runs_at = time.monotonic()
            return list(self._runs)

    def run(self, name: str | None) -> Run:
        if not name:
            raise HttpError(400, "missing parameter 'run'")
        if len(name) > 1024:
            raise HttpError(400, "parameter 'run' is too long")
        for r in self.runs():
            if r.name == name:
                return r
        for r in self.runs(refresh=True):
            if r.name == name:
                return r
        raise HttpError(404, f"unknown run {name!r}", runs=[r.name for r in self._runs][:100])

    def tools(self) -> list[str]:
        from xprof_core.tools import tool_names

        return tool_names()

    def select_hosts(self, run: Run, host: str | None, hosts: str | None) -> list[tuple[str, str]]:
        known = {h.name: h.url for h in run.hosts}
        if hosts:
            wanted = [h for h in hosts.split(",") if h]
        elif host and host not in ("ALL_HOSTS", "*"):
            wanted = [host]
        else:
            wanted = sorted(known)
        missing = [h for h in wanted if h not in known]
        if missing:
            raise HttpError(404, f"unknown host {missing[0]!r} in run {run.name!r}", hosts=sorted(known))
        if not wanted:
            raise HttpError(404, f"run {run.name!r} has no hosts")
        return [(h, known[h]) for h in wanted]

    def _cache_key(self, task: MapTask, tool: Any) -> str:
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
        partials: dict[str, Any] = {}
        tasks: list[tuple[MapTask, str]] = []
        for name, url in selected:
            task = MapTask(tool_name, name, url, params)
            key = self._cache_key(task, tool)
            data = self.cache.get(key)
            if data is not None:
                self.metrics.cache.labels("hit").inc()
                partials[name] = decode_partial(data)
            else:
                self.metrics.cache.labels("miss").inc()
                tasks.append((task, key))
        workers: dict[str, str] = {}
        if tasks:
            results: list[MapResult] = self.executor.map([t for t, _ in tasks], timeout_s=self.config.map_timeout_s)
            for (task, key), res in zip(tasks, results, strict=True):
                self.metrics.map_tasks.labels(tool_name, res.worker_id, "ok" if res.ok else "error").inc()
                if not res.ok:
                    raise _http_error_for(task.host, res.error)
                workers[task.host] = res.worker_id
                self.cache.put(key, encode_partial(res.partial))
                partials[task.host] = res.partial
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
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return ToolAnswer(result, [h for h, _ in selected], workers)

    def _diff(self, run_name: str | None, host: str | None, hosts: str | None, params: dict[str, str]) -> ToolAnswer:
        from xprof_core.serve.diff import diff_answer

        def run_tool(run: str | None, tool: str, h: str | None, hs: str | None) -> tuple[dict[str, Any], list[str]]:
            answer = self.tool_result(run, tool, h, hs, {}, as_dict=True)
            return answer.result or {}, answer.hosts

        try:
            result, used = diff_answer(run_tool, run_name, host, hosts, params)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return ToolAnswer(result, used)


def _http_error_for(host: str, error: Exception | None) -> HttpError:
    if isinstance(error, DecodeError):
        return HttpError(
            422,
            f"host {host!r}: the profile is not a valid XSpace: {error.reason}",
            host=host,
            offset=error.offset,
            path=error.path,
        )
    if isinstance(error, ProfileNotFoundError):
        return HttpError(404, f"host {host!r}: {error}", host=host)
    if isinstance(error, RemoteMapError):
        status = {
            "INVALID_ARGUMENT": 400,
            "PERMISSION_DENIED": 403,
            "NOT_FOUND": 404,
            "DEADLINE_EXCEEDED": 504,
            "UNAVAILABLE": 503,
            "RESOURCE_EXHAUSTED": 503,
        }.get(error.code, 502)
        return HttpError(status, f"host {host!r}: {error.message}", host=host, code=error.code)
    if isinstance(error, ValueError):
        return HttpError(400, f"host {host!r}: {error}", host=host)
    return HttpError(500, f"host {host!r}: {error}", host=host)


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
                GrpcExecutor(config.worker_service_address, deadline_s=config.map_timeout_s)
                if config.worker_service_address
                else LocalExecutor(config.local_workers)
            )
        self.executor = executor
        self.metrics = Metrics()
        self.service = ProfileService(config, executor, self.metrics)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        self._routes()

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
        r.add_get(f"{API}/version", self.version)
        add_capture_routes(self.app, lambda: self.service.logdir, lambda: self.service.runs(refresh=True))
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
        if content_type is None or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
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
        help="hide the capture button in the UI (reported by /data/plugin/profile/config)",
    )
    p.add_argument(
        "--cache_dir", default=None, help="also keep computed partials in this directory (never inside the logdir)"
    )
    p.add_argument("--cache_mb", type=int, default=512, help="in-memory partial cache size in MB (default 512)")
    p.add_argument(
        "--map_timeout", type=float, default=300.0, help="deadline in seconds for each host's map task (default 300)"
    )
    p.add_argument(
        "--local_workers",
        type=int,
        default=None,
        help="processes for local map tasks when there are no workers (default: the cores)",
    )
    p.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    return p


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept XProf's ``-gp=N`` spelling (argparse wants ``-gp N`` or ``--grpc_port=N``)."""
    return [a.replace("-gp=", "--grpc_port=", 1) if a.startswith("-gp=") else a for a in argv]


def config_from_args(args: argparse.Namespace) -> AggregatorConfig:
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
        local_workers=args.local_workers,
    )


async def _serve(aggregator: Aggregator, stop: asyncio.Event) -> None:
    runner = web.AppRunner(aggregator.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, aggregator.config.host, aggregator.config.port)
    await site.start()
    shown = "localhost" if aggregator.config.host in ("0.0.0.0", "::") else aggregator.config.host
    print(
        f"xprof-core aggregator: open http://{shown}:{aggregator.config.port}/ "
        f"(logdir {aggregator.config.logdir}; {aggregator.executor.description})",
        flush=True,
    )
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    aggregator = Aggregator(config)
    worker = None
    if config.grpc_port is not None:
        from xprof_core.serve.worker import WorkerConfig, create_server

        worker = create_server(f"{config.host}:{config.grpc_port}", WorkerConfig(logdir_roots=[str(config.logdir)]))
        log.info("worker service on gRPC port %d", worker.port)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(_serve(aggregator, stop))
    finally:
        if worker is not None:
            worker.stop(grace_s=5.0)
        aggregator.executor.close()
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
