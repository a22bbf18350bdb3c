"""The capture route is not an open proxy: it can be switched off, contacts only allowed addresses,
caps targets and answer sizes, answers the same whatever a target did, limits each client, and
never tells a target a path on the aggregator's machine.

Fake profiler services on loopback; the aggregator is a real process with the flags under test.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_capture import PROFILE, FakeServer, free_port
from test_stuck_requests import wait_http

from xprof_core.protos import profiler_service_pb2, profiler_service_pb2_grpc
from xprof_core.storage.logdir import Logdir

from conftest import subprocess_env

ROUTE = "/data/plugin/profile/capture_profile"


@contextmanager
def aggregator(logdir: Path, *flags: str) -> Iterator[int]:
    logdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, "-m", "xprof_core.aggregator", f"--port={port}", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*argv, "--logdir", str(logdir), "--local_workers=1", *flags], env=subprocess_env())
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def request(
    port: int, query: str, source: str = "127.0.0.1", body: bytes | None = None, timeout: float = 60
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request("POST" if body is not None else "GET", f"{ROUTE}?{query}", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture()
def fake() -> Iterator[FakeServer]:
    server = FakeServer("emit", PROFILE.read_bytes())
    try:
        yield server
    finally:
        server.stop()


def test_hide_capture_profile_button_refuses_the_route(tmp_path: Path, fake: FakeServer) -> None:
    with aggregator(tmp_path / "logdir", "--hide_capture_profile_button") as port:
        status, body = request(port, f"service_addr={fake.addr}&duration=100")
        assert status == 403 and "disabled" in body["error"], body
        status, body = request(port, "", body=json.dumps({"service_addr": fake.addr, "duration": 100}).encode())
        assert status == 403, body
    assert fake.servicer.requests == []


def test_only_allowed_addresses_are_contacted(tmp_path: Path, fake: FakeServer) -> None:
    with aggregator(tmp_path / "logdir") as port:  # default: this machine only
        answers = {}
        for addr in ("192.0.2.1:9999", "no-such-host.invalid:9999", "10.1.2.3:6009"):
            t0 = time.monotonic()
            answers[addr] = request(port, f"service_addr={addr}&duration=100")
            assert time.monotonic() - t0 < 5, addr  # refused before any connection attempt
        statuses = {status for status, _ in answers.values()}
        texts = {body["error"].replace(addr, "ADDR") for addr, (_, body) in answers.items()}
        assert statuses == {403} and len(texts) == 1, answers  # one answer whatever the reason
        assert "--capture_allow" in texts.pop()
        status, body = request(port, f"service_addr={fake.addr}&duration=100")
        assert status == 200, body
    with aggregator(tmp_path / "logdir2", "--capture_allow=10.0.0.0/8,192.168.0.0/16") as port:
        status, body = request(port, f"service_addr={fake.addr}&duration=100")
        assert status == 403, body
    assert len(fake.servicer.requests) == 1


def test_targets_per_request_are_capped(tmp_path: Path, fake: FakeServer) -> None:
    addrs = ",".join(f"127.0.0.1:{free_port()}" for _ in range(8)) + f",{fake.addr}"
    with aggregator(tmp_path / "logdir") as port:
        status, body = request(port, f"service_addr={addrs}&duration=100")
        assert status == 400 and "--capture_max_targets" in body["error"], body
    assert fake.servicer.requests == []


def test_answers_over_the_size_cap_are_refused_and_not_stored(tmp_path: Path) -> None:
    big = FakeServer("emit", b"\x0a" * (3 << 20))  # a 3 MiB answer
    logdir = tmp_path / "logdir"
    try:
        with aggregator(logdir, "--capture_max_mb=1") as port:
            status, body = request(port, f"service_addr={big.addr}&duration=100")
            assert status == 502 and body["code"] == "UNAVAILABLE", body
            assert Logdir(logdir).runs() == []
            plugins = logdir / "plugins"
            assert not plugins.exists() or [p.name for p in plugins.iterdir()] == ["profile"]
    finally:
        big.stop()


class _Answering(profiler_service_pb2_grpc.ProfilerServiceServicer):
    """A profiler service that fails in one of several ways."""

    def __init__(self, how: str) -> None:
        self.how = how

    def Profile(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's method name
        if self.how == "internal":
            context.abort(grpc.StatusCode.INTERNAL, "profiler crashed at /home/user/secret")
        if self.how == "busy":
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "Another profiling session is active.")
        return profiler_service_pb2.ProfileResponse(empty_trace=True)


@contextmanager
def failing_targets() -> Iterator[dict[str, str]]:
    """Addresses of targets that each fail differently: nothing listening, a TCP listener that never
    speaks, a gRPC server without the profiler service, and services that fail, are busy or trace nothing."""
    servers = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections (the kernel does) and never answers
    targets = {"closed": f"127.0.0.1:{free_port()}", "silent": f"127.0.0.1:{listener.getsockname()[1]}"}
    plain = grpc.server(futures.ThreadPoolExecutor(2))
    targets["not_a_profiler"] = f"127.0.0.1:{plain.add_insecure_port('127.0.0.1:0')}"
    plain.start()
    servers.append(plain)
    for how in ("internal", "busy", "empty"):
        server = grpc.server(futures.ThreadPoolExecutor(2))
        profiler_service_pb2_grpc.add_ProfilerServiceServicer_to_server(_Answering(how), server)
        targets[how] = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        server.start()
        servers.append(server)
    try:
        yield targets
    finally:
        for server in servers:
            server.stop(0).wait()
        listener.close()


def test_every_failure_gets_the_same_answer(tmp_path: Path) -> None:
    with failing_targets() as targets, aggregator(tmp_path / "logdir", "--capture_per_client=8") as port:
        answers = {}
        with futures.ThreadPoolExecutor(len(targets)) as pool:
            t0 = time.monotonic()

            def timed(addr: str) -> tuple[int, Any, float]:
                status, body = request(port, f"service_addr={addr}&duration=100", timeout=90)
                return status, body, time.monotonic() - t0

            pending = {name: pool.submit(timed, addr) for name, addr in targets.items()}
            for name, fut in pending.items():
                status, body, seconds = fut.result()
                answers[name] = (status, body)
                print(f"{name}: answered {status} after {seconds:.2f} s")
    shapes = {(status, json.dumps({**body, "error": body["error"].replace(targets[name], "ADDR"),
                                    "service_addr": "ADDR"}, sort_keys=True))
              for name, (status, body) in answers.items()}  # fmt: skip
    assert len(shapes) == 1, answers
    status, body = next(iter(answers.values()))
    assert status == 502 and body["code"] == "UNAVAILABLE"
    assert "secret" not in json.dumps(answers)


class _Slow(profiler_service_pb2_grpc.ProfilerServiceServicer):
    """Traces for the requested duration, then answers the profile; records each request."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Profile(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's method name
        self.requests.append(request)
        time.sleep(request.duration_ms / 1000)
        return profiler_service_pb2.ProfileResponse(xspace=PROFILE.read_bytes())


def test_limits_are_per_client_and_no_path_is_sent(tmp_path: Path) -> None:
    servicer = _Slow()
    server = grpc.server(futures.ThreadPoolExecutor(8))
    profiler_service_pb2_grpc.add_ProfilerServiceServicer_to_server(servicer, server)
    addr = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        with aggregator(tmp_path / "logdir") as port, futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(request, port, f"service_addr={addr}&duration=3000")
            deadline = time.monotonic() + 10
            while not servicer.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            status, body = request(port, f"service_addr={addr}&duration=100")  # the same client
            assert status == 429, body
            status, body = request(port, f"service_addr={addr}&duration=100", source="127.0.0.2")  # another
            assert status == 200, body
            assert first.result(30)[0] == 200
    finally:
        server.stop(0).wait()
    assert len(servicer.requests) == 2
    for sent in servicer.requests:  # nothing of the aggregator's filesystem reaches the target
        assert sent.repository_root == "" and sent.session_id == "", sent
        assert str(tmp_path) not in str(sent)


def test_a_running_capture_does_not_lock_out_others(tmp_path: Path) -> None:
    """Captures from several clients run at once; none waits for another."""
    servicer = _Slow()
    server = grpc.server(futures.ThreadPoolExecutor(8))
    profiler_service_pb2_grpc.add_ProfilerServiceServicer_to_server(servicer, server)
    addr = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    sources = [f"127.0.0.{i}" for i in range(2, 8)]
    try:
        with aggregator(tmp_path / "logdir") as port, futures.ThreadPoolExecutor(len(sources)) as pool:
            t0 = time.monotonic()
            results = list(pool.map(lambda s: request(port, f"service_addr={addr}&duration=2000", source=s), sources))
            elapsed = time.monotonic() - t0
    finally:
        server.stop(0).wait()
    assert [status for status, _ in results] == [200] * len(sources), results
    assert elapsed < 8, elapsed  # concurrent: about one 2 s trace, not six
