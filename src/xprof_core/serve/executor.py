"""Running map tasks: in this machine's own processes, or on remote workers over gRPC.

Both executors take a list of :class:`MapTask` and return, in the same order,
a :class:`MapResult` per task (the partial, or the error that task hit), so
one bad host never hides the others. Every task has a deadline, enforced end
to end: a task that has not answered by then is a
:class:`~xprof_core.errors.MapTimeoutError` (504) and its computation is
stopped (the local process is killed; the worker's call is cancelled).

The gRPC executor builds its channel from a target such as
``dns:///xprof-worker-service.default.svc.cluster.local:8891``, ``ipv4:10.0.0.1:8891,10.0.0.2:8891``
or ``host1:8891,host2:8891``. Load balancing comes from ``GRPC_LB_POLICY``
when set, else round_robin, and is written into the channel's service config:
grpcio does not read that variable itself, and without it every call would go
to the first address the resolver returned.

Retries are the executor's own and only (the channel has no ``retryPolicy``):
a call that fails with UNAVAILABLE or RESOURCE_EXHAUSTED (a worker died, is
draining, or is full) is tried again, on another worker since round robin
only picks connected ones, after a short backoff, never past the deadline and
never for a bad request. When every attempt finds no worker the task fails
with :class:`~xprof_core.errors.WorkersUnavailableError` (503) within about
two seconds. (gRPC's own retries were dropped because a server-streaming call
under a ``retryPolicy`` could wait far past its deadline once every worker was
killed.) Keepalive pings find workers that stopped answering without closing
their connections (a stopped or frozen process): their connection is closed
after ``keepalive_s`` without an answer, their calls fail UNAVAILABLE and are
retried elsewhere, and round robin leaves them out until they answer again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from xprof_core.errors import (
    MapTimeoutError,
    RemoteMapError,
    WorkersUnavailableError,
    XprofError,
    error_from_fields,
)
from xprof_core.serve.local_pool import ChildPool
from xprof_core.serve.map_task import ERROR_METADATA_KEY
from xprof_core.serve.partials import decode_partial

log = logging.getLogger(__name__)

__all__ = [
    "ERROR_METADATA_KEY",
    "RETRYABLE",
    "Executor",
    "GrpcExecutor",
    "LocalExecutor",
    "MapResult",
    "MapTask",
    "RemoteMapError",
    "normalize_target",
    "service_config",
]

MiB = 1 << 20
# Status codes worth another try (on another worker): the worker was down,
# overloaded or went away mid-call. Never INVALID_ARGUMENT and friends.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
#: Backoff before retry n (seconds): 0.1, 0.2, 0.4, 0.8, capped at 1 s; five attempts span about 1.5 s.
_BACKOFF_S = 0.1
_BACKOFF_MAX_S = 1.0
#: What a caller may wait past a deadline before it stops waiting for the thread doing the call.
_DEADLINE_SLACK_S = 5.0


@dataclass(frozen=True)
class MapTask:
    """One tool on one host file (optionally one shard of it)."""

    tool: str
    host: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    shard: tuple[int, int] | None = None  # (index, count)
    # Tasks with the same affinity run, where the executor can choose, in the same process (a shard's walk
    # and its segments): the local pool honours it; round robin over workers cannot.
    affinity: str | None = None


@dataclass
class MapResult:
    task: MapTask
    partial: Any = None
    error: Exception | None = None
    worker_id: str = "local"
    seconds: float = 0.0
    attempts: int = 1
    timings: dict[str, float] = field(default_factory=dict)
    abandoned: bool = False  # not run (or cut short) because another task of the same map failed

    @property
    def ok(self) -> bool:
        return self.error is None


def _abandoned(task: MapTask) -> MapResult:
    return MapResult(task, error=WorkersUnavailableError("not run: another host's map task failed"), abandoned=True)


class _Batch:
    """One ``map`` call: once a task fails, the request fails, so the others are abandoned
    (not started, and gRPC calls in flight cancelled) instead of running to no purpose."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        self._calls: set[Any] = set()
        self._lock = threading.Lock()

    def track(self, call: Any) -> None:
        with self._lock:
            self._calls.add(call)
        if self.failed.is_set():
            call.cancel()

    def untrack(self, call: Any) -> None:
        with self._lock:
            self._calls.discard(call)

    def done(self, result: MapResult) -> MapResult:
        if not result.ok and not result.abandoned and not self.failed.is_set():
            self.failed.set()
            with self._lock:
                calls = list(self._calls)
            for call in calls:
                call.cancel()
        return result


def _timeout_error(task: MapTask, timeout_s: float) -> MapTimeoutError:
    return MapTimeoutError(f"the {task.tool} map task did not finish within {timeout_s:g} s (--map_timeout)")


class LocalExecutor:
    """Map tasks in child processes on this machine (the aggregator's embedded default).

    ``roots`` are the logdir roots the children may read (the aggregator's
    logdir): a host file that is a symlink out of them is refused, as a worker
    refuses it.
    """

    def __init__(
        self, max_workers: int | None = None, roots: Sequence[str] = (), max_gunzip_ratio: float | None = None
    ) -> None:
        self.max_workers = max_workers or max(1, os.cpu_count() or 1)
        self._pool = ChildPool(self.max_workers, roots, max_gunzip_ratio)
        self._threads = futures.ThreadPoolExecutor(self.max_workers, thread_name_prefix="xprof-local")
        self.description = f"in-process pool of {self.max_workers} processes"

    def _run(self, task: MapTask, deadline: float, timeout_s: float, batch: _Batch) -> MapResult:
        if batch.failed.is_set():
            return _abandoned(task)
        return batch.done(self._run_one(task, deadline, timeout_s))

    def _run_one(self, task: MapTask, deadline: float, timeout_s: float) -> MapResult:
        t0 = time.perf_counter()
        try:
            out = self._pool.run(task.tool, task.url, task.params, deadline, affinity=task.affinity)
        except MapTimeoutError:
            return MapResult(task, error=_timeout_error(task, timeout_s), seconds=time.perf_counter() - t0)
        except XprofError as exc:
            return MapResult(task, error=exc, seconds=time.perf_counter() - t0)
        timings = {"read_s": out.read_s, "decode_s": out.decode_s, "map_s": out.map_s, "encode_s": out.encode_s}
        return MapResult(task, decode_partial(out.data), seconds=time.perf_counter() - t0, timings=timings)

    def map(self, tasks: Sequence[MapTask], timeout_s: float | None = None) -> list[MapResult]:
        timeout = timeout_s or 300.0
        deadline = time.monotonic() + timeout
        batch = _Batch()
        futs = [self._threads.submit(self._run, t, deadline, timeout, batch) for t in tasks]
        return [_result_by(f, t, deadline, timeout) for f, t in zip(futs, tasks, strict=True)]

    def close(self) -> None:
        """Stop the children (a running task's is killed) and the threads; returns within seconds."""
        self._pool.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


def _result_by(fut: futures.Future[MapResult], task: MapTask, deadline: float, timeout_s: float) -> MapResult:
    """The future's result, waiting no longer than the deadline (and a little slack)."""
    try:
        return fut.result(timeout=max(0.0, deadline - time.monotonic()) + _DEADLINE_SLACK_S)
    except futures.TimeoutError:
        fut.cancel()
        return MapResult(task, error=_timeout_error(task, timeout_s))
    except futures.CancelledError:
        return MapResult(task, error=WorkersUnavailableError("the aggregator is shutting down"))


def service_config(lb_policy: str) -> dict[str, Any]:
    """The channel's service config: the load-balancing policy. No ``retryPolicy``: the executor retries."""
    return {"loadBalancingConfig": [{lb_policy: {}}]}


def normalize_target(target: str) -> str:
    """Accept ``dns:///name:port``, ``ipv4:a:p,b:p`` and bare ``a:p,b:p`` lists (made an ipv4/ipv6 list)."""
    target = target.strip()
    if "," in target and ":///" not in target and not target.startswith(("ipv4:", "ipv6:")):
        parts = [p.strip() for p in target.split(",") if p.strip()]
        scheme = "ipv6:" if all(p.startswith("[") for p in parts) else "ipv4:"
        return scheme + ",".join(parts)
    return target


def error_from_rpc(exc: grpc.RpcError, task: MapTask, timeout_s: float) -> Exception:
    """Turn a worker's status back into the error it came from: the class and fields it sent in
    the trailing metadata, else a MapTimeoutError for a passed deadline, else RemoteMapError."""
    code = exc.code()
    details = exc.details() or ""
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_METADATA_KEY:
            try:
                fields = json.loads(value)
            except ValueError:
                break
            if isinstance(fields, dict):
                error = error_from_fields({str(k): str(v) for k, v in fields.items()}, details)
                if error is not None:
                    return error
            break
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return _timeout_error(task, timeout_s)
    return RemoteMapError(code.name, details)


class GrpcExecutor:
    """Map tasks on remote workers over one load-balanced gRPC channel."""

    def __init__(
        self,
        target: str,
        lb_policy: str | None = None,
        deadline_s: float = 300.0,
        attempts: int = 5,
        max_message_bytes: int = 16 * MiB,
        max_parallel: int = 64,
        keepalive_s: float = 10.0,
    ) -> None:
        self.target = normalize_target(target)
        self.lb_policy = lb_policy or os.environ.get("GRPC_LB_POLICY") or "round_robin"
        self.deadline_s = deadline_s
        self.attempts = max(1, attempts)
        keepalive_ms = max(1000, int(keepalive_s * 1000))
        options = [
            ("grpc.service_config", json.dumps(service_config(self.lb_policy))),
            ("grpc.enable_retries", 0),  # one retry mechanism: the executor's
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Re-resolve DNS often enough to find new worker pods.
            ("grpc.dns_min_time_between_resolutions_ms", 5000),
            # Ping every connection, busy or idle; one that does not answer within keepalive_s is
            # closed, its calls fail UNAVAILABLE (and are retried elsewhere), and it leaves the rotation.
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", keepalive_ms),
            ("grpc.http2.ping_timeout_ms", keepalive_ms),  # what bounds the wait for a ping's answer
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # A connection attempt to a worker that does not answer gives up after this long.
            ("grpc.min_reconnect_backoff_ms", 5000),
        ]
        self.channel = grpc.insecure_channel(self.target, options=options)
        from xprof_core.protos import worker_pb2_grpc

        self.stub = worker_pb2_grpc.WorkerStub(self.channel)
        self._pool = futures.ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="xprof-grpc")
        self.description = f"gRPC workers at {self.target} ({self.lb_policy})"
        self._warm = False
        self._closed = False

    def _attempt(
        self, request: Any, task: MapTask, remaining: float, attempt: int, t0: float, batch: _Batch
    ) -> MapResult:
        chunks = []
        final = None
        call = self.stub.Map(request, timeout=remaining, wait_for_ready=False)
        batch.track(call)
        try:
            for chunk in call:
                chunks.append(chunk.data)
                if chunk.last:
                    final = chunk
        finally:
            batch.untrack(call)
        if final is None:
            raise RemoteMapError("DATA_LOSS", "stream ended without its last chunk")
        data = b"".join(chunks)
        if final.total_bytes != len(data):
            raise RemoteMapError("DATA_LOSS", f"got {len(data)} of {final.total_bytes} bytes")
        t = final.timings
        return MapResult(
            task,
            decode_partial(data),
            worker_id=final.worker_id,
            seconds=time.perf_counter() - t0,
            attempts=attempt,
            timings={
                "queue_s": t.queue_s,
                "read_s": t.read_s,
                "decode_s": t.decode_s,
                "map_s": t.map_s,
                "encode_s": t.encode_s,
            },
        )

    def _call(self, task: MapTask, deadline: float, timeout_s: float, batch: _Batch) -> MapResult:
        if batch.failed.is_set():
            return _abandoned(task)
        return batch.done(self._call_one(task, deadline, timeout_s, batch))

    def _call_one(self, task: MapTask, deadline: float, timeout_s: float, batch: _Batch) -> MapResult:
        from xprof_core.protos import worker_pb2

        request = worker_pb2.MapRequest(
            tool=task.tool, host_url=task.url, params=task.params, request_id=uuid.uuid4().hex[:12]
        )
        if task.shard is not None:
            request.shard.index, request.shard.count = task.shard
        t0 = time.perf_counter()
        why = "no attempt was made"
        attempt = 0
        while attempt < self.attempts and not self._closed:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if batch.failed.is_set():
                return _abandoned(task)
            try:
                return self._attempt(request, task, remaining, attempt, t0, batch)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.CANCELLED and batch.failed.is_set():
                    return _abandoned(task)
                if code not in RETRYABLE:
                    error = error_from_rpc(exc, task, timeout_s)
                    if self._closed and code == grpc.StatusCode.CANCELLED:
                        error = WorkersUnavailableError("the aggregator is shutting down")
                    return MapResult(task, error=error, attempts=attempt, seconds=time.perf_counter() - t0)
                why = f"{code.name}: {exc.details() or ''}"
            except RemoteMapError as exc:  # a stream cut short: the worker went away mid-answer
                why = str(exc)
            if attempt < self.attempts:
                # A worker died, is draining or is full: round robin sends the next try to another one.
                log.warning("map %s on %s: %s (attempt %d), retrying", task.tool, task.host, why, attempt)
                time.sleep(max(0.0, min(_BACKOFF_S * 2 ** (attempt - 1), _BACKOFF_MAX_S, deadline - time.monotonic())))
        seconds = time.perf_counter() - t0
        if self._closed:
            return MapResult(task, error=WorkersUnavailableError("the aggregator is shutting down"), attempts=attempt)
        if time.monotonic() >= deadline:
            return MapResult(task, error=_timeout_error(task, timeout_s), attempts=attempt, seconds=seconds)
        error = WorkersUnavailableError(f"no worker could take the {task.tool} map task ({attempt} attempts): {why}")
        return MapResult(task, error=error, attempts=attempt, seconds=seconds)

    def _warm_up(self) -> None:
        """Before the first fan-out, let the balancer connect to the workers it resolved.

        Round robin only picks among connected subchannels: without this, the
        whole first request lands on whichever worker answered first.
        """
        if self._warm:
            return
        self._warm = True
        try:
            grpc.channel_ready_future(self.channel).result(timeout=2.0)
        except grpc.FutureTimeoutError:
            return  # no worker yet: calls fail over to the retry loop
        time.sleep(0.3)  # the other subchannels connect in parallel; give them a moment

    def map(self, tasks: Sequence[MapTask], timeout_s: float | None = None) -> list[MapResult]:
        timeout = timeout_s or self.deadline_s
        deadline = time.monotonic() + timeout
        if len(tasks) > 1:
            self._warm_up()
        batch = _Batch()
        futs = [self._pool.submit(self._call, t, deadline, timeout, batch) for t in tasks]
        return [_result_by(f, t, deadline, timeout) for f, t in zip(futs, tasks, strict=True)]

    def close(self) -> None:
        """Cancel every call in flight and stop; returns at once (the calls' threads end on their cancel)."""
        self._closed = True
        self.channel.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


Executor = LocalExecutor | GrpcExecutor
