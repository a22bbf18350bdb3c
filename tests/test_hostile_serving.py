"""Hostile requests and files against the aggregator and the workers (tests/data/hostile/).

Repeated hosts and unknown parameters, out-of-range numbers, NUL bytes in UI paths, fsspec URLs
that escape the logdir roots, symlinks out of the logdir, FIFOs, files truncated while they are
read, gzip bombs, unknown run names against a large logdir, and slow half-sent requests.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_errors import serve_app
from test_stuck_requests import free_port, wait_http

from xprof_core.errors import ProfileChangedError, ProfileTooLargeError, RunNotFoundError
from xprof_core.protos import worker_pb2, worker_pb2_grpc
from xprof_core.serve.aggregator import Aggregator, AggregatorConfig, ProfileService
from xprof_core.serve.executor import LocalExecutor
from xprof_core.serve.worker import SERVICE_NAME, WorkerConfig, create_server
from xprof_core.storage.logdir import Logdir, open_host_bytes, read_host_bytes
from xprof_core.tools import get_tool

from conftest import JAX_DATA, ROOT, subprocess_env

HOSTILE = ROOT / "tests" / "data" / "hostile"
REQUESTS = json.loads((HOSTILE / "requests.json").read_text())
BOMB = HOSTILE / "gzip_bomb_128mib.xplane.pb.gz"
PROFILE = JAX_DATA / "cpu_mlp_train.xplane.pb"
SESSION = "2026_01_01_00_00_00"
API = "/data/plugin/profile"


@pytest.fixture()
def logdir(tmp_path: Path) -> Path:
    """A logdir of one run with hosts host0..host5, and a valid profile outside it."""
    session = tmp_path / "root" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    for i in range(6):
        shutil.copyfile(PROFILE, session / f"host{i}.xplane.pb")
    (tmp_path / "outside").mkdir()
    shutil.copyfile(PROFILE, tmp_path / "outside" / "escape.xplane.pb")
    return tmp_path / "root"


def session_of(logdir: Path) -> Path:
    return logdir / "plugins" / "profile" / SESSION


def get(url: str, timeout: float = 60) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


@contextmanager
def aggregator(logdir: Path, **config: Any) -> Iterator[tuple[str, Aggregator]]:
    """An in-process aggregator (one local map process unless a worker address is given)."""
    agg = Aggregator(AggregatorConfig(logdir=str(logdir), local_workers=1, **config))
    try:
        with serve_app(agg.app) as base:
            yield base, agg
    finally:
        agg.executor.close()


@contextmanager
def worker(roots: list[str], **config: Any) -> Iterator[str]:
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=roots, **config))
    try:
        yield f"127.0.0.1:{handle.port}"
    finally:
        handle.stop(grace_s=0)


def call_map(address: str, tool: str, url: str, timeout: float = 30, **params: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        try:
            list(stub.Map(worker_pb2.MapRequest(tool=tool, host_url=url, params=params), timeout=timeout))
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def metric(base: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    _, body = get(f"{base}/metrics")
    return sum(
        s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# --- repeated hosts, too many hosts, and parameters no tool reads ---------------------------------


def test_repeated_hosts_are_mapped_once(logdir: Path) -> None:
    spec = REQUESTS["repeated_hosts"]
    hosts = ",".join([spec["host"]] * spec["copies"])
    with aggregator(logdir) as (base, _):
        status, page = get(f"{base}{API}/data?run={SESSION}&tag=input_pipeline_analyzer&hosts={hosts}")
        assert status == 200, page
        assert metric(base, "xprof_map_tasks_total") == 1


def test_hosts_per_request_are_bounded(logdir: Path) -> None:
    with aggregator(logdir, max_hosts=4) as (base, _):
        status, body = get(f"{base}{API}/data?run={SESSION}&tag=overview_page")  # all six hosts
        assert status == 400 and "--max_hosts=4" in body["error"], body
        status, _ = get(f"{base}{API}/data?run={SESSION}&tag=overview_page&hosts=host0,host1,host0,host1")
        assert status == 200


def test_unknown_and_reduce_only_parameters_do_not_defeat_the_cache(logdir: Path) -> None:
    with aggregator(logdir) as (base, _):
        view = f"{base}{API}/data?run={SESSION}&host=host0"
        assert get(f"{view}&tag=hlo_stats&nonce=1")[0] == 200
        assert get(f"{view}&tag=hlo_stats&nonce=2&max_ops=3")[0] == 200  # unknown, then a reduce-only one
        assert get(f"{view}&tag=hlo_stats&whatever=x")[0] == 200
        assert metric(base, "xprof_map_tasks_total") == 1
        assert metric(base, "xprof_partial_cache_total", result="hit") == 2
        # A parameter the map reads does make a new partial.
        assert get(f"{view}&tag=trace_viewer&resolution=100")[0] == 200
        assert get(f"{view}&tag=trace_viewer&resolution=200")[0] == 200
        assert metric(base, "xprof_map_tasks_total") == 3


def test_tools_read_only_the_parameters_they_declare() -> None:
    """Only declared parameters reach a tool, and a partial is cached by those its map reads: so each
    tool, run with a recording mapping on real profiles, reads no parameter it has not declared, and a
    table tool's map (the host index) reads none."""
    from xprof_core.execute import map_buffer
    from xprof_core.tools import tool_names
    from xprof_core.tools.params import declared_names

    class Recording(dict):  # type: ignore[type-arg]
        def __init__(self) -> None:
            super().__init__()
            self.read: set[str] = set()

        def get(self, key: Any, default: Any = None) -> Any:
            self.read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: Any) -> Any:
            self.read.add(key)
            return super().__getitem__(key)

        def __contains__(self, key: Any) -> bool:
            self.read.add(key)
            return super().__contains__(key)

    undeclared: dict[str, set[str]] = {}
    for profile in (PROFILE, JAX_DATA / "gpu_mlp_train.xplane.pb"):
        buf = profile.read_bytes()
        for name in tool_names():
            tool = get_tool(name)
            declared = declared_names(tool)
            assert declared is not None, f"{name} declares no parameters"
            mapping = Recording()
            partial = map_buffer(tool, buf, mapping)
            if tool.needs == "index":
                assert mapping.read == set(), (name, mapping.read)
            undeclared.setdefault(name, set()).update(mapping.read - declared)
            mapping = Recording()
            tool.reduce([{**partial, "host": "h"}], mapping)
            undeclared[name].update(mapping.read - declared)
    assert {k: v for k, v in undeclared.items() if v} == {}


# --- out-of-range numbers: 400 from the aggregator, INVALID_ARGUMENT from a worker ------------------


def test_out_of_range_numbers_are_bad_requests(logdir: Path) -> None:
    url = str(session_of(logdir) / "host0.xplane.pb")
    with aggregator(logdir) as (base, _), worker([str(logdir)]) as address:
        for tool, key, value in REQUESTS["out_of_range_params"]:
            status, body = get(f"{base}{API}/data?run={SESSION}&tag={tool}&host=host0&{key}={value}")
            assert status == 400 and key in body["error"], (tool, key, value, status, body)
            code = call_map(address, tool, url, **{key: value})
            if tool == "trace_viewer":  # only trace_viewer's map reads parameters
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (tool, key, value, code)
            else:
                assert code == grpc.StatusCode.OK, (tool, key, value, code)


def test_nul_in_a_ui_path_is_404(logdir: Path) -> None:
    with aggregator(logdir) as (base, _):
        for path in REQUESTS["ui_paths"]:
            status, body = get(f"{base}/ui/{path}")
            assert status == 404, (path, status, body)
        assert get(f"{base}/ui/app.js")[0] == 200


# --- the logdir roots: fsspec URLs and symlinks ------------------------------------------------------


def test_fsspec_urls_cannot_escape_the_roots(logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = logdir.parent / "outside" / "escape.xplane.pb"
    monkeypatch.chdir(session_of(logdir))  # relative paths and cwd-relative chains start inside the root
    cwd_escape = os.path.relpath(outside, session_of(logdir))
    with worker([str(logdir)]) as address:
        assert call_map(address, "overview_page", str(session_of(logdir) / "host0.xplane.pb")) == grpc.StatusCode.OK
        for template in REQUESTS["escaping_urls"]:
            url = template.format(root=logdir, outside=outside, cwd_escape=cwd_escape)
            code = call_map(address, "overview_page", url)
            assert code == grpc.StatusCode.PERMISSION_DENIED, (url, code)


def test_symlinks_out_of_the_logdir_are_refused_alike(logdir: Path) -> None:
    (session_of(logdir) / "escape.xplane.pb").symlink_to(logdir.parent / "outside" / "escape.xplane.pb")
    (session_of(logdir) / "inside.xplane.pb").symlink_to("host0.xplane.pb")  # a link inside is fine
    answers = {}
    with worker([str(logdir)]) as address:
        for mode, config in (("local", {}), ("workers", {"worker_service_address": address})):
            with aggregator(logdir, **config) as (base, _):
                answers[mode] = get(f"{base}{API}/data?run={SESSION}&tag=overview_page&host=escape")
                assert get(f"{base}{API}/data?run={SESSION}&tag=overview_page&host=inside")[0] == 200
    assert answers["local"][0] == answers["workers"][0] == 403, answers
    assert answers["local"][1] == answers["workers"][1], answers  # the same answer, word for word


# --- FIFOs, saturation and truncated files ----------------------------------------------------------


def test_a_fifo_is_refused_at_once_and_holds_no_slot(logdir: Path) -> None:
    fifo = session_of(logdir) / "fifo.xplane.pb"
    os.mkfifo(fifo)
    try:
        with worker([str(logdir)], max_concurrency=1) as address:
            t0 = time.monotonic()
            assert call_map(address, "overview_page", str(fifo), timeout=5) == grpc.StatusCode.NOT_FOUND
            seconds = time.monotonic() - t0
            print(f"a FIFO host file refused in {seconds * 1000:.1f} ms")
            assert seconds < 5
            # The only slot is free: a real profile maps.
            url = str(session_of(logdir) / "host0.xplane.pb")
            assert call_map(address, "overview_page", url, timeout=10) == grpc.StatusCode.OK
    finally:
        with suppress(OSError):  # a reader blocked on the FIFO (the bug) would keep a thread alive: let it go
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_health_reports_a_saturated_worker(logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = get_tool("memory_profile")  # a tool whose map is its own (the table tools' map is the host index)
    release = threading.Event()
    real_map = type(tool).map

    def slow_map(self: Any, xs: Any, params: Any) -> Any:
        release.wait(30)
        return real_map(self, xs, params)

    monkeypatch.setattr(type(tool), "map", slow_map)
    url = str(session_of(logdir) / "host0.xplane.pb")

    def status(address: str, service: str) -> int:
        with grpc.insecure_channel(address) as channel:
            return int(
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                .status
            )

    with worker([str(logdir)], max_concurrency=1) as address, futures.ThreadPoolExecutor(1) as pool:
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        assert status(address, SERVICE_NAME) == serving
        pending = pool.submit(call_map, address, "memory_profile", url)
        deadline = time.monotonic() + 10
        while status(address, SERVICE_NAME) == serving and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(address, SERVICE_NAME) == not_serving  # every slot busy: new calls would queue
        assert status(address, "") == serving  # the process is alive: probes must not restart it
        release.set()
        assert pending.result(30) == grpc.StatusCode.OK
        assert status(address, SERVICE_NAME) == serving


def test_a_file_that_shrinks_while_read_is_an_error(tmp_path: Path) -> None:
    from xprof_core.storage import logdir as storage

    path = tmp_path / "h.xplane.pb"
    path.write_bytes(PROFILE.read_bytes())
    fd, size = storage._open_regular(str(path), str(path))
    try:
        os.truncate(path, 100)  # truncated after it was opened and measured
        with pytest.raises(ProfileChangedError, match="changed while it was read"):
            storage._read_fd(fd, size, str(path))
    finally:
        os.close(fd)
    assert read_host_bytes(path) == PROFILE.read_bytes()[:100]


def test_truncating_files_under_a_worker_never_kills_it(tmp_path: Path) -> None:
    """A worker process maps a 16 MB host over and over while another thread truncates and restores
    the file: each call answers (a partial, ABORTED or INVALID_ARGUMENT), and the worker lives."""
    session = tmp_path / "root" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    # Repeated XSpace messages concatenate into one XSpace with their planes repeated.
    content = (JAX_DATA / "gpu_mlp_train_long.xplane.pb").read_bytes() * 16
    path = session / "big.xplane.pb"
    path.write_bytes(content)
    port = free_port()
    http = free_port()
    argv = [sys.executable, "-m", "xprof_core.worker", f"--port={http}", f"-gp={port}", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*argv, f"--logdir={tmp_path / 'root'}"], env=subprocess_env())
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            with open(path, "r+b") as f:
                f.truncate(4096)
                time.sleep(0.002)
                f.seek(0)
                f.write(content)
            time.sleep(0.002)

    codes: list[grpc.StatusCode] = []
    try:
        wait_http(f"http://127.0.0.1:{http}/healthz", proc)
        thread = threading.Thread(target=churn, daemon=True)
        thread.start()
        for _ in range(40):
            codes.append(call_map(f"127.0.0.1:{port}", "overview_page", str(path), timeout=30))
            if proc.poll() is not None:
                break
        stop.set()
        thread.join(10)
        assert proc.poll() is None, f"the worker died ({proc.returncode}) after {len(codes)} calls: {codes}"
        allowed = {grpc.StatusCode.OK, grpc.StatusCode.ABORTED, grpc.StatusCode.INVALID_ARGUMENT}
        assert set(codes) <= allowed, codes
        path.write_bytes(content)
        assert call_map(f"127.0.0.1:{port}", "overview_page", str(path)) == grpc.StatusCode.OK
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- gzip bombs ------------------------------------------------------------------------------------

_BOMB_CHILD = r"""
import resource, sys, time, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from xprof_core.errors import ProfileTooLargeError
from xprof_core.storage.logdir import read_host_bytes
tracemalloc.start()
t0 = time.monotonic()
try:
    read_host_bytes(sys.argv[1])
    print("read")
except ProfileTooLargeError as exc:
    print("refused", round(time.monotonic() - t0, 3), tracemalloc.get_traced_memory()[1] >> 20, exc)
"""


def test_a_gzip_bomb_is_refused_early(tmp_path: Path) -> None:
    """The 190 KiB file inflates to 128 MiB of events (16.7 M): refused after 64 MiB, in little memory."""
    proc = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(BOMB)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = proc.stdout.split()
    assert words[0] == "refused", proc.stdout
    print(f"gzip bomb refused in {words[1]} s, {words[2]} MiB allocated at the peak")
    assert int(words[2]) < 100  # the 64 MiB allowed, and one 16 MiB piece of inflation
    assert "--max_gunzip_ratio" in proc.stdout
    with pytest.raises(ProfileTooLargeError):
        open_host_bytes(BOMB)
    # However low the ratio, any file may inflate to 64 MiB.
    with pytest.raises(ProfileTooLargeError, match="inflates past 67108864 bytes"):
        read_host_bytes(BOMB, max_gunzip_ratio=1)


def test_a_gzip_bomb_in_a_run_is_422(logdir: Path) -> None:
    shutil.copyfile(BOMB, session_of(logdir) / "bomb.xplane.pb.gz")
    with aggregator(logdir) as (base, _):
        status, body = get(f"{base}{API}/data?run={SESSION}&tag=overview_page&host=bomb")
        assert status == 422 and "--max_gunzip_ratio" in body["error"], body
    with worker([str(logdir)]) as address:
        code = call_map(address, "overview_page", str(session_of(logdir) / "bomb.xplane.pb.gz"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


# --- unknown run names against many runs ------------------------------------------------------------


@pytest.fixture()
def many_runs(tmp_path: Path) -> Path:
    profile = tmp_path / "many" / "plugins" / "profile"
    for i in range(2000):
        session = profile / f"2025_01_01_00_{i // 60:02d}_{i % 60:02d}_{i}"
        session.mkdir(parents=True)
        (session / "h.xplane.pb").write_bytes(b"")
    return tmp_path / "many"


def test_unknown_runs_do_not_rescan_and_scans_coalesce(many_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = ProfileService(AggregatorConfig(logdir=str(many_runs)), LocalExecutor(1), _metrics())
    scans = []
    real_runs = Logdir.runs

    def counted(self: Logdir) -> Any:
        scans.append(time.monotonic())
        time.sleep(0.5)  # a slow listing (a big logdir, object storage)
        return real_runs(self)

    monkeypatch.setattr(Logdir, "runs", counted)
    try:
        known = service.runs()[0].name
        assert len(scans) == 1
        lookups = [f"no_such_run_{i}" for i in range(30)] + [known] * 10

        def lookup(name: str) -> str:
            try:
                return service.run(name).name
            except Exception as exc:  # noqa: BLE001 - the test counts them
                return type(exc).__name__

        t0 = time.monotonic()
        with futures.ThreadPoolExecutor(40) as pool:
            found = list(pool.map(lookup, lookups))
        seconds = time.monotonic() - t0
        print(f"30 unknown and 10 known run names at once: {seconds:.2f} s, {len(scans) - 1} scans")
        assert found == ["HttpError"] * 30 + [known] * 10
        assert len(scans) == 1  # no rescans for unknown names
        assert seconds < 2
        # Fresh listings asked for at once share scans.
        with futures.ThreadPoolExecutor(20) as pool:
            listings = list(pool.map(lambda _: len(service.runs(refresh=True)), range(20)))
        assert listings == [2000] * 20 and len(scans) <= 3, len(scans)
    finally:
        service.executor.close()
    with pytest.raises(RunNotFoundError):
        Logdir(many_runs).run("../../etc")


def _metrics() -> Any:
    from xprof_core.serve.aggregator import Metrics

    return Metrics()


# --- slow half-sent requests and too many connections --------------------------------------------------


@contextmanager
def aggregator_process(logdir: Path, *flags: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    argv = [sys.executable, "-m", "xprof_core.aggregator", f"--port={port}", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*argv, "--logdir", str(logdir), *flags], env=subprocess_env())
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (BlockingIOError, TimeoutError):
        return False


def _trickle(socks: list[socket.socket], until: Callable[[], bool], every_s: float = 0.2) -> None:
    while not until():
        for s in socks:
            with suppress(OSError):
                s.send(b"X")
        time.sleep(every_s)


def test_half_sent_requests_are_dropped(logdir: Path) -> None:
    with aggregator_process(logdir, "--http_header_timeout=1") as (port, proc):
        slow = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        done = threading.Event()
        trickler = threading.Thread(target=_trickle, args=(slow, done.is_set), daemon=True)
        trickler.start()
        t0 = time.monotonic()
        # Meanwhile the server answers others.
        assert get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200
        for s in slow:
            s.settimeout(max(0.1, 10 - (time.monotonic() - t0)))
        closed_after = []
        for s in slow:
            if _closed_by_server(s):
                closed_after.append(time.monotonic() - t0)
        done.set()
        trickler.join(5)
        print(f"{len(closed_after)} of 40 half-sent requests dropped, the last after {max(closed_after or [0]):.2f} s")
        assert len(closed_after) == 40 and max(closed_after) < 5, closed_after
        for s in slow:
            s.close()
        assert get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200
        assert proc.poll() is None


def test_connections_past_the_limit_are_closed_at_once(logdir: Path) -> None:
    with aggregator_process(logdir, "--max_connections=50") as (port, proc):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
        try:
            refused: set[socket.socket] = set()
            deadline = time.monotonic() + 5  # well within the 15 s header timeout
            while len(refused) < 20 and time.monotonic() < deadline:
                readable, _, _ = select.select([s for s in idle if s not in refused], [], [], 0.1)
                refused.update(s for s in readable if _closed_by_server(s))
            time.sleep(0.3)
            readable, _, _ = select.select([s for s in idle if s not in refused], [], [], 0)
            print(f"{len(refused)} of 70 connections refused at --max_connections=50")
            assert len(refused) == 20 and readable == [], (len(refused), len(readable))
        finally:
            for s in idle:
                s.close()
        time.sleep(0.3)  # the server sees them go
        assert get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200  # room again
        assert proc.poll() is None
