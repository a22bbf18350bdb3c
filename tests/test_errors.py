"""One error model: every exception in errors.py under XprofError, one status table for HTTP and gRPC,
ParamError for bad parameters (so a bug in a tool is a 500 with its traceback logged, never a 400),
errors that cross processes as the same class, and one retry mechanism (the executor's)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import pkgutil
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from helpers import http_get

import xprof_core
from xprof_core import errors
from xprof_core.errors import (
    AccessDeniedError,
    CaptureParamError,
    DecodeError,
    InternalError,
    ParamError,
    ProfileNotFoundError,
    RemoteMapError,
    WorkersUnavailableError,
    XprofError,
    error_fields,
    error_from_fields,
    error_status,
)
from xprof_core.protos import worker_pb2, worker_pb2_grpc
from xprof_core.serve.executor import GrpcExecutor, MapTask
from xprof_core.serve.worker import WorkerConfig, create_server
from xprof_core.tools import get_tool
from xprof_core.tools.base import param_float, param_int

from conftest import JAX_DATA

PROFILE = JAX_DATA / "cpu_mlp_train.xplane.pb"
SESSION = "2026_01_01_00_00_00"


def _all_modules() -> list[str]:
    names = ["xprof_core"]
    for info in pkgutil.walk_packages(xprof_core.__path__, "xprof_core."):
        if ".protos." in info.name or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_every_exception_class_lives_in_errors_under_xprof_error() -> None:
    found = {}
    for name in _all_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")  # private control flow that never leaves its module
            ):
                found[f"{name}.{attr}"] = value
    outside = sorted(k for k, cls in found.items() if cls.__module__ != "xprof_core.errors")
    assert outside == []
    assert len(found) >= 20, sorted(found)
    assert all(issubclass(cls, XprofError) for cls in found.values()), [
        k for k, cls in found.items() if not issubclass(cls, XprofError)
    ]
    # The names tests and users import from their old homes still work, as the same classes.
    from xprof_core.deploy.cluster import ClusterError
    from xprof_core.serve.aggregator import HttpError
    from xprof_core.serve.capture import CaptureError
    from xprof_core.serve.partials import SerializationError
    from xprof_core.storage.logdir import HostNotFoundError, LogdirError, RunNotFoundError

    for cls in (ClusterError, HttpError, CaptureError, SerializationError, HostNotFoundError, LogdirError):
        assert cls is getattr(errors, cls.__name__) and issubclass(cls, XprofError)
    assert issubclass(RunNotFoundError, ProfileNotFoundError)


@pytest.mark.parametrize(
    ("error", "http", "grpc_code"),
    [
        (ParamError("bad"), 400, "INVALID_ARGUMENT"),
        (CaptureParamError("bad duration"), 400, "INVALID_ARGUMENT"),  # not CaptureError's 502
        (DecodeError("bad varint", 8, "XSpace.planes[0]"), 422, "INVALID_ARGUMENT"),
        (ProfileNotFoundError("gone"), 404, "NOT_FOUND"),
        (errors.RunNotFoundError("no run"), 404, "NOT_FOUND"),
        (AccessDeniedError("outside"), 403, "PERMISSION_DENIED"),
        (errors.ProfileTooLargeError("bomb"), 422, "INVALID_ARGUMENT"),
        (errors.MapTimeoutError("slow"), 504, "DEADLINE_EXCEEDED"),
        (WorkersUnavailableError("down"), 503, "UNAVAILABLE"),
        (errors.CaptureTimeoutError("slow", "h:1", "DEADLINE_EXCEEDED"), 504, "DEADLINE_EXCEEDED"),
        (errors.ProfilerBusyError("busy", "h:1", "ALREADY_EXISTS"), 409, "ABORTED"),
        (errors.LogdirNotWritableError("ro", "/logs"), 409, "FAILED_PRECONDITION"),
        (RemoteMapError("RESOURCE_EXHAUSTED", "full"), 503, "RESOURCE_EXHAUSTED"),
        (RemoteMapError("UNKNOWN", "?"), 502, "UNKNOWN"),
        (InternalError("a bug elsewhere"), 500, "INTERNAL"),
        (ValueError("a bug here"), 500, "INTERNAL"),
        (KeyError("a bug here"), 500, "INTERNAL"),
    ],
)
def test_one_status_table(error: BaseException, http: int, grpc_code: str) -> None:
    status = error_status(error)
    assert (status.http, status.grpc) == (http, grpc_code)
    assert hasattr(grpc.StatusCode, status.grpc)


def test_errors_cross_processes_as_the_same_class() -> None:
    decode = DecodeError("length-delimited field runs past the end of its message", 1, "XSpace")
    back = error_from_fields(error_fields(decode), str(decode))
    assert isinstance(back, DecodeError) and (back.reason, back.offset, back.path) == (decode.reason, 1, "XSpace")
    denied = error_from_fields(error_fields(AccessDeniedError("'/etc' is outside")), "'/etc' is outside")
    assert isinstance(denied, AccessDeniedError) and str(denied) == "'/etc' is outside"
    assert error_fields(ValueError("x")) == {"type": "InternalError"}  # a bug is never mistaken for bad input
    assert error_from_fields({"type": "NoSuchError"}, "x") is None


def test_parameter_parsers_raise_param_error() -> None:
    for call in (
        lambda: param_int({"n": "x"}, "n", 0),
        lambda: param_int({"n": "5"}, "n", 0, hi=4),
        lambda: param_int({"n": "9" * 30}, "n", 0),  # beyond int64
        lambda: param_float({"t": "nan"}, "t", None),
        lambda: param_float({"t": "1e400"}, "t", None),
        lambda: param_float({"t": "2"}, "t", None, hi=1.0),
    ):
        with pytest.raises(ParamError):
            call()
    assert param_int({"n": "-3"}, "n", 0) == -3 and param_float({}, "t", None) is None


# --- a bug inside a tool is a 500 (HTTP) / INTERNAL (gRPC) with its traceback logged ------------


@pytest.fixture()
def logdir(tmp_path: Path) -> Path:
    session = tmp_path / "logdir" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    (session / "host0.xplane.pb").write_bytes(PROFILE.read_bytes())
    return tmp_path / "logdir"


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """An aiohttp application on a loopback port, served from a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def _get(url: str) -> tuple[int, bytes]:
    status, body, _ = http_get(url)
    return status, body


def test_a_bug_in_reduce_is_a_500_with_its_traceback_logged(
    logdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from xprof_core.serve.aggregator import Aggregator, AggregatorConfig

    tool = get_tool("overview_page")

    def broken_reduce(self: Any, partials: Any, params: Any) -> Any:
        raise ValueError("a bug in the tool")

    monkeypatch.setattr(type(tool), "reduce", broken_reduce)
    aggregator = Aggregator(AggregatorConfig(logdir=str(logdir), local_workers=1))
    try:
        with serve_app(aggregator.app) as base, caplog.at_level(logging.ERROR):
            status, body = _get(f"{base}/data/plugin/profile/data?run={SESSION}&tag=overview_page")
            assert status == 500, body
            assert b"a bug in the tool" in body
            # A bad parameter is still the client's error: 400.
            status, body = _get(f"{base}/data/plugin/profile/data?run={SESSION}&tag=hlo_stats&max_ops=-1")
            assert status == 400 and b"max_ops" in body, body
    finally:
        aggregator.executor.close()
    logged = [r for r in caplog.records if r.exc_info and "a bug in the tool" in str(r.exc_info[1])]
    assert logged, [r.getMessage() for r in caplog.records]


def test_a_bug_in_map_on_a_worker_is_internal(
    logdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tool = get_tool("memory_profile")  # a tool whose map is its own (the table tools' map is the host index)

    def broken_map(self: Any, xs: Any, params: Any) -> Any:
        raise ValueError("a bug in the map")

    monkeypatch.setattr(type(tool), "map", broken_map)
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[str(logdir)]))
    url = str(logdir / "plugins" / "profile" / SESSION / "host0.xplane.pb")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel, caplog.at_level(logging.ERROR):
            stub = worker_pb2_grpc.WorkerStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Map(worker_pb2.MapRequest(tool="memory_profile", host_url=url), timeout=60))
            assert err.value.code() == grpc.StatusCode.INTERNAL
            assert "a bug in the map" in err.value.details()
            with pytest.raises(grpc.RpcError) as bad:
                list(
                    stub.Map(
                        worker_pb2.MapRequest(tool="trace_viewer", host_url=url, params={"resolution": "x"}),
                        timeout=60,
                    )
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        handle.stop(grace_s=0)
    assert any(r.exc_info and "a bug in the map" in str(r.exc_info[1]) for r in caplog.records)


# --- one retry mechanism: the executor's --------------------------------------------------------


class CountingWorker(worker_pb2_grpc.WorkerServicer):
    """Fails the first ``failures`` calls with ``code``, then answers an empty partial."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0
        self._lock = threading.Lock()

    def Map(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's method name
        from xprof_core.serve.partials import encode_partial

        with self._lock:
            self.calls += 1
            n = self.calls
        if n <= self.failures:
            context.abort(self.code, f"call {n} refused")
        data = encode_partial({"version": 1})
        yield worker_pb2.MapChunk(data=data, last=True, total_bytes=len(data), worker_id="counting")


@contextmanager
def counting_worker(failures: int, code: grpc.StatusCode) -> Iterator[tuple[CountingWorker, str]]:
    servicer = CountingWorker(failures, code)
    server = grpc.server(futures.ThreadPoolExecutor(4))
    worker_pb2_grpc.add_WorkerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait()


def test_unavailable_is_retried_by_the_executor_alone() -> None:
    task = MapTask("overview_page", "h", "/x.xplane.pb")
    with counting_worker(2, grpc.StatusCode.UNAVAILABLE) as (servicer, address):
        executor = GrpcExecutor(address, deadline_s=30)
        try:
            [result] = executor.map([task])
        finally:
            executor.close()
    assert result.ok and result.attempts == 3
    assert servicer.calls == 3  # no second layer of retries under the executor's


def test_retries_stop_after_the_attempts_with_503() -> None:
    task = MapTask("overview_page", "h", "/x.xplane.pb")
    with counting_worker(100, grpc.StatusCode.UNAVAILABLE) as (servicer, address):
        executor = GrpcExecutor(address, deadline_s=30)
        t0 = time.monotonic()
        try:
            [result] = executor.map([task])
        finally:
            executor.close()
        elapsed = time.monotonic() - t0
    assert isinstance(result.error, WorkersUnavailableError) and error_status(result.error).http == 503
    assert result.attempts == executor.attempts == servicer.calls
    assert elapsed < 5, elapsed


def test_a_bad_request_is_not_retried() -> None:
    task = MapTask("overview_page", "h", "/x.xplane.pb")
    with counting_worker(100, grpc.StatusCode.INVALID_ARGUMENT) as (servicer, address):
        executor = GrpcExecutor(address, deadline_s=30)
        try:
            [result] = executor.map([task])
        finally:
            executor.close()
    assert not result.ok and result.attempts == 1 and servicer.calls == 1
    assert isinstance(result.error, RemoteMapError) and result.error.code == "INVALID_ARGUMENT"
