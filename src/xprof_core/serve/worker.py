"""The gRPC worker: runs one tool's map on one host file per call.

A thin service: it checks the request, reads and decodes the file, runs the
tool's ``map`` and streams the serialised partial back in chunks. Core errors
become status codes (bad profile bytes -> INVALID_ARGUMENT with the decoder's
offset and path; missing file -> NOT_FOUND; a path outside the configured
logdir roots -> PERMISSION_DENIED). It never writes next to its input.

Run it as ``python -m xprof_core.worker --port=9999 -gp=8891``: gRPC on
``-gp`` (with the standard ``grpc.health.v1`` health service) and plain HTTP
``/healthz`` and Prometheus ``/metrics`` on ``--port``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from xprof_core.errors import (
    MapTimeoutError,
    WorkersUnavailableError,
    XprofError,
    error_fields,
    grpc_code_name,
)
from xprof_core.protos import worker_pb2, worker_pb2_grpc
from xprof_core.serve.map_task import ERROR_METADATA_KEY, check_task, run_map_task
from xprof_core.storage import access
from xprof_core.storage.logdir import MAX_GUNZIP_RATIO, set_max_gunzip_ratio

log = logging.getLogger(__name__)

SERVICE_NAME = "xprof_core.v1.Worker"
MiB = 1 << 20


def default_logdir_roots() -> list[str]:
    """Roots a worker may read without --logdir: $XPROF_LOGDIR_ROOTS (comma-separated), else the demo logdir."""
    env = os.environ.get("XPROF_LOGDIR_ROOTS")
    if env:
        return [r for r in env.split(",") if r]
    from xprof_core.demo import DEMO_LOGDIR

    return [str(DEMO_LOGDIR)]


@dataclass
class WorkerConfig:
    """How a worker serves. Sizes in bytes, times in seconds."""

    logdir_roots: list[str] = field(default_factory=default_logdir_roots)
    max_concurrency: int = max(1, os.cpu_count() or 1)  # map tasks running at once
    max_queue: int = 64  # calls waiting for a slot; beyond that RESOURCE_EXHAUSTED
    chunk_bytes: int = 1 * MiB
    max_message_bytes: int = 16 * MiB
    max_connection_age_s: float = 60.0  # clients re-resolve DNS and find new pods
    max_connection_age_grace_s: float = 30.0
    grace_s: float = 20.0  # drain window on SIGTERM
    max_gunzip_ratio: float | None = None  # None: storage's default (MAX_GUNZIP_RATIO)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class WorkerMetrics:
    """Prometheus metrics of one worker (own registry, so tests can run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Counter(
            "xprof_worker_tasks", "Map tasks finished, by tool and outcome", ["tool", "outcome"], registry=self.registry
        )
        self.duration = Histogram(
            "xprof_worker_task_seconds", "Wall time of map tasks", ["tool"], registry=self.registry
        )
        self.bytes_read = Counter("xprof_worker_bytes_read", "Profile bytes read", registry=self.registry)
        self.errors = Counter(
            "xprof_worker_errors", "Map tasks that failed, by status code", ["code"], registry=self.registry
        )
        self.in_flight = Gauge("xprof_worker_in_flight", "Map tasks running", registry=self.registry)
        self.queued = Gauge("xprof_worker_queued", "Map tasks waiting for a slot", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def is_under_roots(url: str, roots: Sequence[str]) -> bool:
    """True when ``url`` lies inside one of ``roots`` (see :func:`xprof_core.storage.access.resolve_under_roots`)."""
    return access.is_under_roots(url, roots)


class WorkerService(worker_pb2_grpc.WorkerServicer):
    """The Map RPC. One instance per server; thread-safe.

    Health (``grpc.health.v1``) for the service name ``xprof_core.v1.Worker``
    says NOT_SERVING while every slot is busy (a new call would queue) and while
    draining; the overall status (``""``, what the probes ask) stays SERVING
    until the worker drains, so a busy worker is not restarted.
    """

    def __init__(
        self, config: WorkerConfig, metrics: WorkerMetrics | None = None, health: health.HealthServicer | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics or WorkerMetrics()
        self.health = health
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._draining = threading.Event()

    @property
    def busy(self) -> int:
        """Map tasks running now."""
        with self._busy_lock:
            return self._busy

    def drain(self) -> None:
        """Refuse new calls (UNAVAILABLE, so clients retry elsewhere); running ones finish."""
        self._draining.set()
        self._set_health()

    def _set_health(self) -> None:
        if self.health is None:
            return
        with self._busy_lock:
            saturated = self._busy >= self.config.max_concurrency
        serving = not saturated and not self._draining.is_set()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set(SERVICE_NAME, status)

    def _take_slot(self) -> None:
        with self._busy_lock:
            self._busy += 1
        self._set_health()

    def _give_slot(self) -> None:
        with self._busy_lock:
            self._busy -= 1
        self._slots.release()
        self._set_health()

    def _abort(self, context: grpc.ServicerContext, tool: str, error: BaseException) -> None:
        """End the call with ``error``'s status from the one table; its class and fields travel in
        the trailing metadata, so the caller rebuilds the same error (a DecodeError's offset and path)."""
        code = getattr(grpc.StatusCode, grpc_code_name(error), grpc.StatusCode.INTERNAL)
        message = str(error)
        if not isinstance(error, XprofError):
            log.error("map %s failed: %s", tool, message, exc_info=error)
            message = f"internal error in {tool}: {type(error).__name__}: {error}"
        self.metrics.errors.labels(code.name).inc()
        self.metrics.tasks.labels(tool, "error").inc()
        context.set_trailing_metadata(((ERROR_METADATA_KEY, json.dumps(error_fields(error)).encode()),))
        context.abort(code, message)

    def Map(self, request: worker_pb2.MapRequest, context: grpc.ServicerContext) -> Iterator[worker_pb2.MapChunk]:
        t0 = time.perf_counter()
        tool_name = request.tool
        try:
            if self._draining.is_set():
                raise WorkersUnavailableError("worker is shutting down")
            path = check_task(tool_name, request.host_url, self.config.logdir_roots)
        except XprofError as exc:
            self._abort(context, tool_name, exc)
        # Wait for a slot, but give up when the caller does.
        self.metrics.queued.inc()
        try:
            while not self._slots.acquire(timeout=0.05):
                if not context.is_active():
                    self.metrics.tasks.labels(tool_name, "cancelled").inc()
                    return
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    self._abort(context, tool_name, MapTimeoutError("deadline passed in the worker's queue"))
        finally:
            self.metrics.queued.dec()
        self._take_slot()
        self.metrics.in_flight.inc()
        try:
            yield from self._run(request, path, context, t0)
        finally:
            self.metrics.in_flight.dec()
            self._give_slot()

    def _run(
        self, request: worker_pb2.MapRequest, path: str, context: grpc.ServicerContext, t0: float
    ) -> Iterator[worker_pb2.MapChunk]:
        name = request.tool
        queue_s = time.perf_counter() - t0
        params = dict(request.params)
        if request.HasField("shard") and request.shard.count > 1:
            params["shard_index"] = str(request.shard.index)
            params["shard_count"] = str(request.shard.count)
        try:
            out = run_map_task(name, path, params, self.config.logdir_roots)
        except Exception as exc:  # noqa: BLE001 - ours get their status; a bug is logged and INTERNAL
            self._abort(context, name, exc)
        if not context.is_active():  # the caller went away
            self.metrics.tasks.labels(name, "cancelled").inc()
            return
        self.metrics.bytes_read.inc(out.bytes_read)
        timings = worker_pb2.MapTimings(
            queue_s=queue_s,
            read_s=out.read_s,
            decode_s=out.decode_s,
            map_s=out.map_s,
            encode_s=out.encode_s,
            bytes_read=out.bytes_read,
        )
        data = out.data
        step = self.config.chunk_bytes
        n = max(1, (len(data) + step - 1) // step)
        for i in range(n):
            last = i == n - 1
            chunk = worker_pb2.MapChunk(data=data[i * step : (i + 1) * step], last=last)
            if last:
                chunk.worker_id = self.config.worker_id
                chunk.timings.CopyFrom(timings)
                chunk.total_bytes = len(data)
            yield chunk
        self.metrics.tasks.labels(name, "ok").inc()
        self.metrics.duration.labels(name).observe(time.perf_counter() - t0)
        log.info(
            "map %s %s: %d bytes read, %d bytes out, %.3f s [%s]",
            name,
            request.host_url,
            out.bytes_read,
            len(data),
            time.perf_counter() - t0,
            request.request_id or "-",
        )


def grpc_server_options(config: WorkerConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace_s * 1000)),
        ("grpc.so_reuseport", 0),
        # Let clients ping every second, with or without calls: the aggregator's keepalive finds a
        # stopped worker by its missing answers (a server refusing pings would close the connection).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ]


@dataclass
class WorkerHandle:
    """A running worker service: its server, chosen port and parts, and how to stop it."""

    server: grpc.Server
    port: int
    service: WorkerService
    health: health.HealthServicer

    def stop(self, grace_s: float | None = None) -> bool:
        """Drain: report NOT_SERVING, refuse new calls, let running ones finish within the grace.

        Returns whether the server stopped within the grace (and a few seconds more).
        """
        grace = self.service.config.grace_s if grace_s is None else grace_s
        self.health.enter_graceful_shutdown()
        self.service.drain()
        return bool(self.server.stop(grace).wait(grace + 5.0))


def add_worker_service(
    server: grpc.Server, config: WorkerConfig, metrics: WorkerMetrics | None = None
) -> tuple[WorkerService, health.HealthServicer]:
    """Register the worker and health services on an existing server (the aggregator's -gp)."""
    health_servicer = health.HealthServicer()
    service = WorkerService(config, metrics, health_servicer)
    worker_pb2_grpc.add_WorkerServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return service, health_servicer


def create_server(
    address: str, config: WorkerConfig | None = None, metrics: WorkerMetrics | None = None
) -> WorkerHandle:
    """Start a worker on ``address`` ("host:port"; port 0 picks one). Returns the running handle."""
    config = config or WorkerConfig()
    if config.max_gunzip_ratio is not None:
        set_max_gunzip_ratio(config.max_gunzip_ratio)
    pool = futures.ThreadPoolExecutor(
        max_workers=config.max_concurrency + config.max_queue, thread_name_prefix="xprof-worker"
    )
    server = grpc.server(
        pool, options=grpc_server_options(config), maximum_concurrent_rpcs=config.max_concurrency + config.max_queue
    )
    service, health_servicer = add_worker_service(server, config, metrics)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the worker's gRPC port at {address}")
    server.start()
    return WorkerHandle(server, port, service, health_servicer)


class _HealthHTTPHandler(BaseHTTPRequestHandler):
    """/healthz and /metrics over plain HTTP, for probes and Prometheus."""

    metrics: WorkerMetrics
    healthy: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.split("?")[0] == "/healthz":
            ok = self.healthy.is_set()
            body = b"ok\n" if ok else b"shutting down\n"
            self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
        elif self.path.split("?")[0] == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, self.metrics.render())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("http: " + format, *args)


def start_http(host: str, port: int, metrics: WorkerMetrics, healthy: threading.Event) -> ThreadingHTTPServer:
    handler = type("Handler", (_HealthHTTPHandler,), {"metrics": metrics, "healthy": healthy})
    httpd = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=httpd.serve_forever, name="xprof-worker-http", daemon=True).start()
    return httpd


# --- command line ---


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept XProf's single-dash long flags (``-gp=8891``) the way argparse expects them."""
    return [a.replace("-gp=", "--grpc_port=", 1) if a.startswith("-gp=") else a for a in argv]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xprof_core.worker",
        description="Serve xprof-core map tasks over gRPC (the worker of an aggregator/worker deployment).",
    )
    p.add_argument(
        "--port",
        type=int,
        default=9999,
        help="HTTP port for /healthz and Prometheus /metrics (default 9999; 0 disables)",
    )
    p.add_argument(
        "-gp",
        "--grpc_port",
        type=int,
        default=8891,
        help="gRPC port of the worker service and grpc.health.v1 (default 8891)",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0: every interface)")
    p.add_argument(
        "--logdir",
        action="append",
        default=None,
        help="a logdir root this worker may read (local path, gs://, s3://, memory://); repeat or "
        "comma-separate for several (default: $XPROF_LOGDIR_ROOTS, else the bundled demo logdir)",
    )
    p.add_argument(
        "--max_concurrency",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="map tasks running at once (default: the number of cores)",
    )
    p.add_argument(
        "--max_queue",
        type=int,
        default=64,
        help="calls that may wait for a slot; more are refused with RESOURCE_EXHAUSTED (default 64)",
    )
    p.add_argument(
        "--grace_period",
        type=float,
        default=20.0,
        help="seconds to let running tasks finish after SIGTERM (default 20)",
    )
    p.add_argument(
        "--max_connection_age",
        type=float,
        default=60.0,
        help="seconds before a client connection is closed so clients re-resolve DNS (default 60)",
    )
    p.add_argument("--worker_id", default=None, help="name reported in responses and logs (default host:pid)")
    p.add_argument(
        "--max_gunzip_ratio",
        type=float,
        default=MAX_GUNZIP_RATIO,
        help="a .xplane.pb.gz host file may inflate to this many times its size (and always to 64 MiB); "
        f"larger ones are refused as a gzip bomb (default {MAX_GUNZIP_RATIO:g})",
    )
    p.add_argument(
        "--hide_capture_profile_button",
        action="store_true",
        help="accepted for compatibility with XProf's deployment; the worker has no UI",
    )
    p.add_argument("--log_level", default="INFO", help="logging level (default INFO)")
    return p


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    roots = None
    if args.logdir:
        roots = [r for item in args.logdir for r in item.split(",") if r]
    config = WorkerConfig(
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        grace_s=args.grace_period,
        max_connection_age_s=args.max_connection_age,
        max_gunzip_ratio=args.max_gunzip_ratio,
    )
    if roots:
        config.logdir_roots = roots
    if args.worker_id:
        config.worker_id = args.worker_id
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    metrics = WorkerMetrics()
    handle = create_server(
        f"{args.host}:{args.grpc_port}" if ":" not in args.host else f"[{args.host}]:{args.grpc_port}", config, metrics
    )
    healthy = threading.Event()
    healthy.set()
    httpd = start_http(args.host, args.port, metrics, healthy) if args.port else None
    log.info(
        "worker %s: gRPC on %s:%d, HTTP on %s, logdir roots %s",
        config.worker_id,
        args.host,
        handle.port,
        f"{args.host}:{args.port}" if httpd else "off",
        config.logdir_roots,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: draining (grace %.0f s)", signum, config.grace_s)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    healthy.clear()
    t0 = time.monotonic()
    stopped = handle.stop()
    if httpd is not None:
        httpd.shutdown()
    log.info("worker stopped in %.1f s", time.monotonic() - t0)
    if not stopped or handle.service.busy:
        # A task still computing past the grace would hold the interpreter's exit (it joins
        # the server's threads): the drain is over, so leave without it.
        log.warning("%d map tasks still running after the grace period: exiting without them", handle.service.busy)
        exit_now(0)
    return 0


def exit_now(code: int) -> None:
    """Flush the logs and end the process at once, without waiting for threads still running."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
