"""Capturing a profile from a live program: the client, the run it writes, and the HTTP route.

The end-to-end test traces a real JAX training loop (``jax.profiler.start_server``) through an
aggregator process's ``capture_profile`` route; it is skipped when the interpreter has no JAX
(``XPROF_TEST_JAX_PYTHON`` names another interpreter to run the program with). The other tests
talk to an in-process fake of the profiler service that answers the way current servers do
(the XSpace in the answer), the way old ones do (a file written under ``repository_root``), or
badly, so every path runs without JAX. Every process and server a test starts, it stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import free_port, stop_process

from xprof_core.protos import profiler_service_pb2, profiler_service_pb2_grpc
from xprof_core.serve import capture as capture_module
from xprof_core.serve.capture import (
    CaptureCancelledError,
    CaptureOptions,
    CaptureParamError,
    CaptureTargetError,
    CaptureTimeoutError,
    EmptyTraceError,
    LogdirNotWritableError,
    ProfilerServiceError,
    capture,
    parse_service_addresses,
)
from xprof_core.storage.logdir import Logdir

from conftest import JAX_DATA, subprocess_env

PROFILE = JAX_DATA / "cpu_mlp_train.xplane.pb"
API = "/data/plugin/profile"


# --- a fake profiler service ---


class FakeProfiler(profiler_service_pb2_grpc.ProfilerServiceServicer):
    """Answers Profile like a real server in one of several ways; records each request."""

    def __init__(self, mode: str, data: bytes) -> None:
        self.mode = mode
        self.data = data
        self.requests: list[profiler_service_pb2.ProfileRequest] = []
        self.cancelled = threading.Event()

    def Profile(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's method name
        self.requests.append(request)
        response = profiler_service_pb2.ProfileResponse()
        if self.mode == "slow":  # trace until cancelled or the client's deadline
            while context.is_active():
                time.sleep(0.02)
            self.cancelled.set()
            return response
        if self.mode == "empty":
            response.empty_trace = True
        elif self.mode == "emit":  # current servers: the XSpace in the answer when emit_xspace is set
            assert request.emit_xspace
            response.xspace = self.data
        elif self.mode == "old":  # before emit_xspace: written under repository_root on the server's disk
            session = Path(request.repository_root) / request.session_id
            session.mkdir(parents=True, exist_ok=True)
            (session / (request.host_name.replace(":", "_") + ".xplane.pb")).write_bytes(self.data)
        elif self.mode == "tool_data":  # very old servers: named tool files in the answer
            response.tool_data.add(name="xplane.pb", data=self.data)
        elif self.mode == "elsewhere":  # an old server on another machine: nothing here, nothing in the answer
            pass
        elif self.mode == "busy":
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "Another profiling session is active.")
        return response


class FakeServer:
    def __init__(self, mode: str, data: bytes = b"") -> None:
        self.servicer = FakeProfiler(mode, data)
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        profiler_service_pb2_grpc.add_ProfilerServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.addr = f"127.0.0.1:{self.port}"
        self.host = f"127.0.0.1_{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=0).wait()


@pytest.fixture()
def fake_server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    server = FakeServer(getattr(request, "param", "emit"), PROFILE.read_bytes())
    try:
        yield server
    finally:
        server.stop()


def _session_dirs(logdir: Path) -> list[Path]:
    profile = logdir / "plugins" / "profile"
    return sorted(profile.iterdir()) if profile.is_dir() else []


def _leftovers(logdir: Path) -> list[str]:
    """Anything but plugins/profile under plugins/: staging directories must not stay behind."""
    plugins = logdir / "plugins"
    return sorted(p.name for p in plugins.iterdir() if p.name != "profile") if plugins.is_dir() else []


# --- parameters ---


def test_service_addresses() -> None:
    assert parse_service_addresses("localhost:9999") == ["localhost:9999"]
    assert parse_service_addresses(" grpc://10.0.0.1:6009 , host-1.svc:1,10.0.0.1:6009") == [
        "10.0.0.1:6009",
        "host-1.svc:1",
    ]
    assert parse_service_addresses("[::1]:9999") == ["[::1]:9999"]
    assert capture_module.host_file_stem("10.0.0.1:6009") == "10.0.0.1_6009"


@pytest.mark.parametrize(
    "addr",
    [
        "",
        "   ",
        "localhost",
        "localhost:",
        ":9999",
        "localhost:0",
        "localhost:65536",
        "localhost:99999999",
        "http://localhost:9999",
        "local host:1",
        "a/b:1",
        "localhost:9999/x",
        "localhost:9999,",
        "../x:1",
    ],
)
def test_bad_service_address(addr: str) -> None:
    with pytest.raises(CaptureParamError, match="service_addr|service address"):
        parse_service_addresses(addr)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration_ms": 0}, "'duration' must be in 1..300000"),
        ({"duration_ms": 300_001}, "'duration' must be in 1..300000"),
        ({"duration_ms": 1.5}, "'duration' must be an integer"),
        ({"duration_ms": True}, "'duration' must be an integer"),
        ({"host_tracer_level": 4}, "'host_tracer_level' must be in 0..3"),
        ({"device_tracer_level": -1}, "'device_tracer_level' must be in 0..3"),
        ({"python_tracer_level": 9}, "'python_tracer_level' must be in 0..3"),
        ({"timeout_s": 0.5}, "timeout_s must be a number of seconds above the trace's 1 s"),
    ],
)
def test_bad_parameters_contact_nothing(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"service_addr": "127.0.0.1:1", "duration_ms": 1000, "logdir": tmp_path / "logdir"}
    with pytest.raises(CaptureParamError, match=message.replace("(", r"\(").replace(".", r"\.")):
        capture(**{**args, **kwargs})
    assert not (tmp_path / "logdir").exists()


def test_query_parameters() -> None:
    options = CaptureOptions.from_query(
        {
            "service_addr": "localhost:9999",
            "duration": "2000",
            "host_tracer_level": "3",
            "device_tracer_level": "0",
            "python_tracer_level": "1",
            "num_retry": "2",
            "delay": "10",
            "is_tpu_name": "false",
            "worker_list": "",
        }
    )
    assert options == CaptureOptions(("localhost:9999",), 2000, 3, 0, 1, 2.010 + 60, 2, 10)
    for query, message in [
        ({"service_addr": "localhost:9999"}, "missing parameter 'duration'"),
        ({"service_addr": "localhost:9999", "duration": "1s"}, "must be an integer"),
        ({"duration": "1000"}, "missing parameter 'service_addr'"),
        ({"service_addr": "x:1", "duration": "1000", "is_tpu_name": "true"}, "is_tpu_name"),
        ({"service_addr": "x:1", "duration": "1000", "worker_list": "a:1"}, "worker_list"),
    ]:
        with pytest.raises(CaptureParamError, match=message):
            CaptureOptions.from_query(query)


# --- the client against the fake service ---


def test_capture_stores_the_xspace_verbatim(tmp_path: Path, fake_server: FakeServer) -> None:
    logdir = tmp_path / "logdir"
    result = capture(fake_server.addr, 250, logdir, host_tracer_level=3, device_tracer_level=0, python_tracer_level=1)
    [session] = _session_dirs(logdir)
    assert result.run == session.name and result.session_url == str(session)
    assert result.hosts == [fake_server.host] and result.failures == {}
    stored = session / f"{fake_server.host}.xplane.pb"
    assert stored.read_bytes() == PROFILE.read_bytes()
    assert result.bytes_by_host == {fake_server.host: PROFILE.stat().st_size}
    assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}", session.name)
    assert [(r.name, r.host_names) for r in Logdir(logdir).runs()] == [(result.run, [fake_server.host])]
    assert _leftovers(logdir) == []
    # What the server was asked for: the levels under ProfileOptions version 1 (else ignored), the
    # duration in both places (the server waits on opts.duration_ms), and the XSpace in the answer.
    [request] = fake_server.servicer.requests
    assert request.emit_xspace and request.duration_ms == 250 and request.host_name == fake_server.addr
    assert (request.opts.version, request.opts.duration_ms) == (1, 250)
    assert (request.opts.host_tracer_level, request.opts.device_tracer_level, request.opts.python_tracer_level) == (
        3,
        0,
        1,
    )


@pytest.mark.parametrize("fake_server", ["old", "tool_data"], indirect=True)
def test_capture_from_servers_that_predate_emit_xspace(tmp_path: Path, fake_server: FakeServer) -> None:
    """An old server on this machine writes under repository_root/session_id: our staging directory."""
    result = capture(fake_server.addr, 100, tmp_path)
    assert (Path(result.session_url) / f"{fake_server.host}.xplane.pb").read_bytes() == PROFILE.read_bytes()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fake_server", ["elsewhere"], indirect=True)
def test_old_server_that_wrote_elsewhere(tmp_path: Path, fake_server: FakeServer) -> None:
    with pytest.raises(ProfilerServiceError, match="saved its profile on its own filesystem"):
        capture(fake_server.addr, 100, tmp_path)
    assert _session_dirs(tmp_path) == [] and _leftovers(tmp_path) == []


@pytest.mark.parametrize("fake_server", ["empty"], indirect=True)
def test_empty_trace_is_retried_then_reported(tmp_path: Path, fake_server: FakeServer) -> None:
    with pytest.raises(EmptyTraceError, match="collected no trace events"):
        capture(fake_server.addr, 100, tmp_path, num_retry=2)
    assert len(fake_server.servicer.requests) == 3
    assert _session_dirs(tmp_path) == [] and _leftovers(tmp_path) == []


@pytest.mark.parametrize("fake_server", ["busy"], indirect=True)
def test_service_refusal(tmp_path: Path, fake_server: FakeServer) -> None:
    with pytest.raises(ProfilerServiceError, match="Another profiling session") as info:
        capture(fake_server.addr, 100, tmp_path)
    assert info.value.code == "ALREADY_EXISTS" and capture_module.http_status_for(info.value) == 409


@pytest.mark.parametrize("fake_server", ["slow"], indirect=True)
def test_timeout(tmp_path: Path, fake_server: FakeServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(CaptureTimeoutError, match="did not answer within 0.5 s") as info:
        capture(fake_server.addr, 1, tmp_path, timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    assert info.value.code == "DEADLINE_EXCEEDED" and capture_module.http_status_for(info.value) == 504
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fake_server", ["slow"], indirect=True)
def test_cancel_stops_the_trace(tmp_path: Path, fake_server: FakeServer) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(CaptureCancelledError):
        capture(fake_server.addr, 60_000, tmp_path, cancel=cancel)
    assert time.monotonic() - t0 < 5
    assert fake_server.servicer.cancelled.wait(5)  # the server saw the call go away
    assert _leftovers(tmp_path) == []


def test_unreachable_service_fails_fast(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"  # nothing listens
    t0 = time.monotonic()
    with pytest.raises(ProfilerServiceError, match=f"cannot reach a profiler server at {addr}") as info:
        capture(addr, 1000, tmp_path)
    assert time.monotonic() - t0 < 5
    assert info.value.code == "UNAVAILABLE" and capture_module.http_status_for(info.value) == 502
    assert _session_dirs(tmp_path) == [] and _leftovers(tmp_path) == []


def test_several_hosts_one_run(tmp_path: Path) -> None:
    servers = [FakeServer("emit", PROFILE.read_bytes()) for _ in range(2)]
    dead = f"127.0.0.1:{free_port()}"
    try:
        result = capture(",".join([servers[0].addr, dead, servers[1].addr]), 100, tmp_path)
    finally:
        for s in servers:
            s.stop()
    assert result.hosts == sorted(s.host for s in servers)
    assert list(result.failures) == [dead] and "cannot reach" in result.failures[dead]
    [run] = Logdir(tmp_path).runs()
    assert run.host_names == result.hosts


def test_same_second_captures_get_distinct_runs(
    tmp_path: Path, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_module, "_session_name", lambda: "2026_01_02_03_04_05")
    runs = [capture(fake_server.addr, 10, tmp_path).run for _ in range(3)]
    assert runs == ["2026_01_02_03_04_05", "2026_01_02_03_04_05_2", "2026_01_02_03_04_05_3"]
    assert sorted(r.name for r in Logdir(tmp_path).runs()) == runs


def test_capture_into_an_fsspec_logdir(fake_server: FakeServer) -> None:
    import fsspec

    url = f"memory://capture-test-{os.getpid()}"
    try:
        result = capture(fake_server.addr, 10, url)
        assert result.session_url == f"memory:///capture-test-{os.getpid()}/plugins/profile/{result.run}"
        [run] = Logdir(url).runs()
        assert (run.name, run.host_names) == (result.run, [fake_server.host])
    finally:
        fsspec.filesystem("memory").rm(f"/capture-test-{os.getpid()}", recursive=True)


# --- logdirs that cannot take a run: refused before anything is traced ---


def test_logdir_that_is_a_file(tmp_path: Path, fake_server: FakeServer) -> None:
    logdir = tmp_path / "not_a_dir"
    logdir.write_text("x")
    with pytest.raises(LogdirNotWritableError, match="is not writable: it is not a directory"):
        capture(fake_server.addr, 10, logdir)
    assert fake_server.servicer.requests == []


def test_logdir_without_write_permission(
    tmp_path: Path, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root writes through chmod, so the permission check is simulated here; a read-only mount,
    which stops root too, is tested for real through the aggregator below."""
    real_access = os.access
    monkeypatch.setattr(
        capture_module.os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real_access(path, mode, **kw)
    )
    with pytest.raises(LogdirNotWritableError, match="is not writable .*no write permission") as info:
        capture(fake_server.addr, 10, tmp_path)
    assert info.value.logdir == str(tmp_path) and isinstance(info.value, PermissionError)
    assert fake_server.servicer.requests == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_logdir_read_only_by_permissions(tmp_path: Path, fake_server: FakeServer) -> None:
    (tmp_path / "plugins").mkdir()
    os.chmod(tmp_path / "plugins", 0o555)
    try:
        with pytest.raises(LogdirNotWritableError, match="is not writable"):
            capture(fake_server.addr, 10, tmp_path)
    finally:
        os.chmod(tmp_path / "plugins", 0o755)


def test_bundled_demo_logdir_is_refused(fake_server: FakeServer) -> None:
    from xprof_core.demo import DEMO_LOGDIR

    with pytest.raises(LogdirNotWritableError, match="demo logdir bundled inside the installed package"):
        capture(fake_server.addr, 10, DEMO_LOGDIR)
    assert fake_server.servicer.requests == []


def test_session_directory_logdir_is_refused(tmp_path: Path, fake_server: FakeServer) -> None:
    shutil.copyfile(PROFILE, tmp_path / "host0.xplane.pb")
    with pytest.raises(CaptureTargetError, match="is itself one session directory"):
        capture(fake_server.addr, 10, tmp_path)


# --- the HTTP route, on a real aggregator process ---


def _env() -> dict[str, str]:
    return subprocess_env()


def _request(
    url: str, data: bytes | None = None, content_type: str = "application/json", timeout: float = 60
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


class AggregatorProcess:
    """``python -m xprof_core.aggregator`` on a free loopback port, optionally behind a wrapper command."""

    def __init__(self, logdir: Path, tmp_path: Path, wrapper: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log = tmp_path / f"aggregator-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    *wrapper,
                    sys.executable,
                    "-m",
                    "xprof_core.aggregator",
                    "--host",
                    "127.0.0.1",
                    f"--port={self.port}",
                    "--logdir",
                    str(logdir),
                    "--local_workers",
                    "1",
                ],
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.base = f"http://127.0.0.1:{self.port}{API}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the aggregator did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def capture(self, query: str, timeout: float = 60) -> tuple[int, Any]:
        return _request(f"{self.base}/capture_profile?{query}", timeout=timeout)

    def stop(self) -> int:
        return stop_process(self.proc)


@pytest.fixture(scope="module")
def aggregator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AggregatorProcess]:
    """One aggregator for the HTTP tests (its logdir gains a run per successful capture)."""
    tmp_path = tmp_path_factory.mktemp("aggregator")
    agg = AggregatorProcess(tmp_path / "logdir", tmp_path)
    try:
        yield agg
    finally:
        assert agg.stop() == 0, agg.log.read_text()[-2000:]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("duration=1000", "missing parameter 'service_addr'"),
        ("service_addr=localhost&duration=1000", "invalid service address 'localhost'"),
        ("service_addr=localhost:70000&duration=1000", "invalid service address"),
        ("service_addr=localhost:9999", "missing parameter 'duration'"),
        ("service_addr=localhost:9999&duration=0", "'duration' must be in 1..300000"),
        ("service_addr=localhost:9999&duration=abc", "'duration' must be an integer"),
        ("service_addr=localhost:9999&duration=1000&host_tracer_level=7", "'host_tracer_level' must be in 0..3"),
        ("service_addr=localhost:9999&duration=1000&python_tracer_level=x", "'python_tracer_level' must be an integer"),
    ],
)
def test_http_bad_parameters(aggregator: AggregatorProcess, query: str, message: str) -> None:
    status, body = aggregator.capture(query)
    assert status == 400 and message in body["error"], body


def test_http_unreachable_service(aggregator: AggregatorProcess) -> None:
    addr = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    status, body = aggregator.capture(f"service_addr={addr}&duration=1000")
    assert time.monotonic() - t0 < 10
    assert status == 502 and body["code"] == "UNAVAILABLE" and body["service_addr"] == addr, body
    assert "cannot reach a profiler server" in body["error"]


def test_http_capture_get_and_post(aggregator: AggregatorProcess, fake_server: FakeServer) -> None:
    status, body = aggregator.capture(f"service_addr={fake_server.addr}&duration=100&host_tracer_level=1")
    assert status == 200, body
    assert body["hosts"] == [fake_server.host] and body["run"] in body["result"]
    assert fake_server.servicer.requests[0].opts.host_tracer_level == 1
    status, runs = _request(f"{aggregator.base}/runs")
    assert status == 200 and body["run"] in runs
    status, hosts = _request(f"{aggregator.base}/hosts?run={body['run']}")
    assert hosts == [{"hostname": fake_server.host}]
    # POST with a JSON body, as a script would; then with a form.
    payload = json.dumps({"service_addr": fake_server.addr, "duration": 100}).encode()
    status, second = _request(f"{aggregator.base}/capture_profile", payload)
    assert status == 200 and second["run"] != body["run"], second
    form = f"service_addr={fake_server.addr}&duration=100".encode()
    status, third = _request(f"{aggregator.base}/capture_profile", form, "application/x-www-form-urlencoded")
    assert status == 200, third
    status, bad = _request(f"{aggregator.base}/capture_profile", b"[1]")
    assert status == 400 and "JSON object" in bad["error"]
    status, runs = _request(f"{aggregator.base}/runs")
    assert {body["run"], second["run"], third["run"]} <= set(runs)


@pytest.mark.parametrize("fake_server", ["slow"], indirect=True)
def test_http_shutdown_cancels_a_running_capture(tmp_path: Path, fake_server: FakeServer) -> None:
    agg = AggregatorProcess(tmp_path / "logdir", tmp_path)
    answer: list[tuple[int, Any]] = []
    thread = threading.Thread(
        target=lambda: answer.append(agg.capture(f"service_addr={fake_server.addr}&duration=120000", timeout=130))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not fake_server.servicer.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake_server.servicer.requests, "the capture never reached the service"
        t0 = time.monotonic()
        assert agg.stop() == 0, agg.log.read_text()[-2000:]
        assert time.monotonic() - t0 < 10
        assert fake_server.servicer.cancelled.wait(5)
        thread.join(10)
        assert answer and answer[0][0] == 503, answer
    finally:
        agg.stop()
        thread.join(10)


def test_http_logdir_not_a_directory(tmp_path: Path) -> None:
    logdir = tmp_path / "file"
    logdir.write_text("x")
    agg = AggregatorProcess(logdir, tmp_path)
    try:
        status, body = agg.capture(f"service_addr=127.0.0.1:{free_port()}&duration=100")
    finally:
        assert agg.stop() == 0
    assert status == 409 and "is not writable" in body["error"] and body["logdir"] == str(logdir), body


def _read_only_mount_works(tmp_path: Path) -> bool:
    """Whether this machine lets us bind-mount a directory read-only in a private mount namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    script = 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null'
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(probe)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_http_read_only_logdir(tmp_path: Path, fake_server: FakeServer) -> None:
    """A logdir on a read-only mount (as Kubernetes mounts volumes readOnly): root cannot write either."""
    if not _read_only_mount_works(tmp_path):
        pytest.skip("cannot bind-mount read-only here (needs unshare -rm with user and mount namespaces)")
    logdir = tmp_path / "logdir"
    (logdir / "plugins" / "profile").mkdir(parents=True)
    wrapper = ("unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(logdir))
    agg = AggregatorProcess(logdir, tmp_path, wrapper)
    try:
        status, body = agg.capture(f"service_addr={fake_server.addr}&duration=100")
    finally:
        assert agg.stop() == 0
    assert status == 409, body
    assert "is not writable" in body["error"] and "read-only" in body["error"], body
    assert fake_server.servicer.requests == []  # refused before tracing


# --- end to end: a real JAX program ---

TRAIN = """
import sys, time
import jax, jax.numpy as jnp

jax.profiler.start_server(int(sys.argv[1]))

@jax.jit
def step(w, x):
    loss = lambda w: jnp.mean((jnp.tanh(x @ w) @ w.T) ** 2)
    return w - 0.01 * jax.grad(loss)(w)

w, x = jnp.ones((128, 128)) * 0.01, jnp.ones((32, 128))
i = 0
while True:
    with jax.profiler.StepTraceAnnotation("train", step_num=i):
        w = step(w, x)
        w.block_until_ready()
    if i == 0:
        print("ready", flush=True)
    i += 1
    time.sleep(0.002)
"""


def _jax_python() -> str:
    python = os.environ.get("XPROF_TEST_JAX_PYTHON") or sys.executable
    try:
        found = subprocess.run([python, "-c", "import jax, jax.profiler"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run {python} to check for JAX: {exc}")
    if found.returncode != 0:
        pytest.skip(
            f"JAX is not importable by {python} (pip install jax, or set XPROF_TEST_JAX_PYTHON to an "
            f"interpreter that has it)"
        )
    return python


@pytest.fixture()
def jax_program(tmp_path: Path) -> Iterator[str]:
    """A JAX training loop serving the profiler on a free loopback port, until stopped."""
    python = _jax_python()
    port = free_port()
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    log = tmp_path / "train.log"
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([python, str(script), str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the JAX program did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_capture_a_live_jax_program(jax_program: str, aggregator: AggregatorProcess) -> None:
    status, body = aggregator.capture(f"service_addr={jax_program}&duration=1000", timeout=120)
    assert status == 200, body
    run = body["run"]
    assert body["hosts"] == [jax_program.replace(":", "_")]
    status, runs = _request(f"{aggregator.base}/runs")
    assert status == 200 and run in runs
    status, page = _request(f"{aggregator.base}/data?run={run}&tag=overview_page", timeout=120)
    assert status == 200, page
    # The steps are the program's StepTraceAnnotation("train", step_num=i) spans.
    assert page["steps"]["count"] > 0, page["steps"]
    assert (page["step_source"], page["step_name"]) == ("step_num", "train"), page
