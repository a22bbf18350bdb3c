"""Running map tasks: in this process's pool, or on remote workers over gRPC.

Both executors take a list of :class:`MapTask` and return, in the same order,
a :class:`MapResult` per task (the partial, or the error that task hit), so
one bad host never hides the others.

The gRPC executor builds its channel from a target such as
``dns:///xprof-worker-service.default.svc.cluster.local:8891``, ``ipv4:10.0.0.1:8891,10.0.0.2:8891``
or ``host1:8891,host2:8891``. Load balancing comes from ``GRPC_LB_POLICY``
when set, else round_robin, and is written into the channel's service config:
grpcio does not read that variable itself, and without it every call would go
to the first address the resolver returned.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from xprof_core.errors import DecodeError, ProfileNotFoundError, XprofError
from xprof_core.serve.partials import decode_partial, encode_partial

log = logging.getLogger(__name__)

MiB = 1 << 20
# Status codes worth another try (on another worker): the worker was down,
# overloaded or went away mid-call. Never INVALID_ARGUMENT and friends.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclass(frozen=True)
class MapTask:
    """One tool on one host file (optionally one shard of it)."""

    tool: str
    host: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    shard: tuple[int, int] | None = None  # (index, count)


@dataclass
class MapResult:
    task: MapTask
    partial: Any = None
    error: Exception | None = None
    worker_id: str = "local"
    seconds: float = 0.0
    attempts: int = 1
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class RemoteMapError(XprofError):
    """A worker refused or failed a map task; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _run_local(task: MapTask) -> tuple[bytes, float]:
    """Worker-process body: map one host and return the encoded partial."""
    from xprof_core.execute import map_host

    t0 = time.perf_counter()
    params = dict(task.params)
    if task.shard is not None:
        params["shard_index"], params["shard_count"] = str(task.shard[0]), str(task.shard[1])
    partial = map_host(task.tool, task.url, params)
    return encode_partial(partial), time.perf_counter() - t0


class LocalExecutor:
    """Map tasks in a process pool on this machine (the aggregator's embedded default)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or max(1, os.cpu_count() or 1)
        self._pool: futures.ProcessPoolExecutor | None = None
        self.description = f"in-process pool of {self.max_workers} processes"

    def _get_pool(self) -> futures.ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # forkserver/spawn: safe with the aggregator's threads and event loop.
            ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            self._pool = futures.ProcessPoolExecutor(max_workers=self.max_workers, mp_context=ctx)
        return self._pool

    def map(self, tasks: Sequence[MapTask], timeout_s: float | None = None) -> list[MapResult]:
        pool = self._get_pool()
        submitted = [(t, pool.submit(_run_local, t)) for t in tasks]
        results = []
        for task, fut in submitted:
            try:
                data, seconds = fut.result(timeout=timeout_s)
                results.append(MapResult(task, decode_partial(data), seconds=seconds))
            except (XprofError, ValueError, OSError) as exc:  # DecodeError is a ValueError
                results.append(MapResult(task, error=exc))
            except futures.process.BrokenProcessPool as exc:
                self._pool = None  # a crashed child poisons the pool: start afresh next time
                results.append(MapResult(task, error=RemoteMapError("UNAVAILABLE", f"map process died: {exc}")))
            except futures.TimeoutError:
                results.append(MapResult(task, error=RemoteMapError("DEADLINE_EXCEEDED", "map task timed out")))
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def service_config(lb_policy: str) -> dict[str, Any]:
    """The channel's service config: load-balancing policy plus transparent retries of transient codes."""
    return {
        "loadBalancingConfig": [{lb_policy: {}}],
        "methodConfig": [
            {
                "name": [{"service": "xprof_core.v1.Worker"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": [c.name for c in RETRYABLE],
                },
            }
        ],
    }


def normalize_target(target: str) -> str:
    """Accept ``dns:///name:port``, ``ipv4:a:p,b:p`` and bare ``a:p,b:p`` lists (made an ipv4/ipv6 list)."""
    target = target.strip()
    if "," in target and ":///" not in target and not target.startswith(("ipv4:", "ipv6:")):
        parts = [p.strip() for p in target.split(",") if p.strip()]
        scheme = "ipv6:" if all(p.startswith("[") for p in parts) else "ipv4:"
        return scheme + ",".join(parts)
    return target


class GrpcExecutor:
    """Map tasks on remote workers over one load-balanced gRPC channel."""

    def __init__(
        self,
        target: str,
        lb_policy: str | None = None,
        deadline_s: float = 300.0,
        attempts: int = 3,
        max_message_bytes: int = 16 * MiB,
        max_parallel: int = 64,
    ) -> None:
        self.target = normalize_target(target)
        self.lb_policy = lb_policy or os.environ.get("GRPC_LB_POLICY") or "round_robin"
        self.deadline_s = deadline_s
        self.attempts = attempts
        options = [
            ("grpc.service_config", json.dumps(service_config(self.lb_policy))),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Re-resolve DNS often enough to find new worker pods.
            ("grpc.dns_min_time_between_resolutions_ms", 5000),
        ]
        self.channel = grpc.insecure_channel(self.target, options=options)
        from xprof_core.protos import worker_pb2_grpc

        self.stub = worker_pb2_grpc.WorkerStub(self.channel)
        self._pool = futures.ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="xprof-grpc")
        self.description = f"gRPC workers at {self.target} ({self.lb_policy})"
        self._warm = False

    def _call(self, task: MapTask, deadline: float) -> MapResult:
        from xprof_core.protos import worker_pb2

        request = worker_pb2.MapRequest(
            tool=task.tool, host_url=task.url, params=task.params, request_id=uuid.uuid4().hex[:12]
        )
        if task.shard is not None:
            request.shard.index, request.shard.count = task.shard
        t0 = time.perf_counter()
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                chunks = []
                final = None
                for chunk in self.stub.Map(request, timeout=remaining, wait_for_ready=attempt > 1):
                    chunks.append(chunk.data)
                    if chunk.last:
                        final = chunk
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
            except grpc.RpcError as exc:
                code = exc.code()
                if code in RETRYABLE and attempt < self.attempts:
                    # A worker died or is overloaded mid-call: round robin sends the retry elsewhere.
                    log.warning("map %s on %s: %s (attempt %d), retrying", task.tool, task.host, code.name, attempt)
                    last_error = exc
                    time.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))
                    continue
                return MapResult(
                    task,
                    error=_error_from_status(code, exc.details() or ""),
                    attempts=attempt,
                    seconds=time.perf_counter() - t0,
                )
            except RemoteMapError as exc:
                last_error = exc
                continue
        if isinstance(last_error, grpc.RpcError):
            last_error = _error_from_status(last_error.code(), last_error.details() or "")
        return MapResult(
            task,
            error=last_error or RemoteMapError("DEADLINE_EXCEEDED", "no time left to retry"),
            attempts=self.attempts,
            seconds=time.perf_counter() - t0,
        )

    def _warm_up(self) -> None:
        """Before the first fan-out, let the balancer connect to the workers it resolved.

        Round robin only picks among connected subchannels: without this, the
        whole first request lands on whichever worker answered first.
        """
        if self._warm:
            return
        self._warm = True
        try:
            grpc.channel_ready_future(self.channel).result(timeout=5.0)
        except grpc.FutureTimeoutError:
            return  # no worker yet: calls wait for one (wait_for_ready on retries)
        time.sleep(0.3)  # the other subchannels connect in parallel; give them a moment

    def map(self, tasks: Sequence[MapTask], timeout_s: float | None = None) -> list[MapResult]:
        deadline = time.monotonic() + (timeout_s or self.deadline_s)
        if len(tasks) > 1:
            self._warm_up()
        futs = [self._pool.submit(self._call, t, deadline) for t in tasks]
        return [f.result() for f in futs]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self.channel.close()


def _error_from_status(code: grpc.StatusCode, details: str) -> Exception:
    """Turn a worker's status back into the core error it came from, where one fits."""
    if code == grpc.StatusCode.INVALID_ARGUMENT and "[offset=" in details:
        # "<message> (byte N, at PATH) [offset=N path=PATH]"
        try:
            tail = details.rsplit("[offset=", 1)[1].rstrip("]")
            off, path = tail.split(" path=", 1)
            message = details.rsplit(" (byte ", 1)[0]
            return DecodeError(message, int(off), path)
        except (IndexError, ValueError):
            pass
    if code == grpc.StatusCode.NOT_FOUND:
        return ProfileNotFoundError(details)
    return RemoteMapError(code.name, details)


Executor = LocalExecutor | GrpcExecutor
