"""The distributed system: gRPC workers, the executors and the aggregator's HTTP API.

In-process servers (port 0) test the worker's contract; real processes on
loopback test the deployment shape: one aggregator and three workers started
with the Kubernetes deployment's own flags. Every process a test starts, it stops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import free_port, http_get, wait_http

from xprof_core.errors import DecodeError
from xprof_core.execute import run_tool
from xprof_core.protos import worker_pb2, worker_pb2_grpc
from xprof_core.serve.executor import RETRYABLE, GrpcExecutor, MapTask, error_from_rpc, normalize_target, service_config
from xprof_core.serve.map_task import ERROR_METADATA_KEY
from xprof_core.serve.partials import decode_partial
from xprof_core.serve.worker import WorkerConfig, create_server, is_under_roots

from conftest import CORRUPTED, JAX_DATA, subprocess_env

SESSION = "2026_01_01_00_00_00"
HOSTS = [f"host{i}" for i in range(6)]


@pytest.fixture()
def logdir(tmp_path: Path) -> Path:
    """A 6-host run of real JAX GPU profiles, read-only like a mounted volume."""
    session = tmp_path / "logdir" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    for h in HOSTS:
        shutil.copyfile(JAX_DATA / "gpu_mlp_train_long.xplane.pb", session / f"{h}.xplane.pb")
    return tmp_path / "logdir"


# --- the worker service in process ---


@pytest.fixture()
def worker(logdir: Path) -> Iterator[tuple[str, object]]:
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[str(logdir)], worker_id="w-test"))
    try:
        yield f"127.0.0.1:{handle.port}", handle
    finally:
        handle.stop(grace_s=0)


def call_map(address: str, tool: str, url: str, **params: str) -> tuple[dict, worker_pb2.MapChunk]:  # type: ignore[type-arg]
    with grpc.insecure_channel(address) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        chunks = list(stub.Map(worker_pb2.MapRequest(tool=tool, host_url=url, params=params), timeout=60))
    data = b"".join(c.data for c in chunks)
    return decode_partial(data), chunks[-1]


def test_worker_maps_a_host(worker, logdir: Path) -> None:  # type: ignore[no-untyped-def]
    address, _ = worker
    url = str(logdir / "plugins" / "profile" / SESSION / "host0.xplane.pb")
    partial, last = call_map(address, "overview_page", url)
    assert last.last and last.worker_id == "w-test"
    assert last.timings.bytes_read == os.path.getsize(url)
    assert last.timings.decode_s > 0 and last.total_bytes > 0
    assert len(partial["steps"]["step_num"]) == 120


def test_worker_streams_large_partials_in_chunks(logdir: Path) -> None:
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[str(logdir)], chunk_bytes=4096))
    try:
        url = str(logdir / "plugins" / "profile" / SESSION / "host0.xplane.pb")
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            chunks = list(
                worker_pb2_grpc.WorkerStub(channel).Map(
                    worker_pb2.MapRequest(tool="overview_page", host_url=url), timeout=60
                )
            )
        assert len(chunks) > 1 and [c.last for c in chunks].count(True) == 1
        assert sum(len(c.data) for c in chunks) == chunks[-1].total_bytes
    finally:
        handle.stop(grace_s=0)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("outside", grpc.StatusCode.PERMISSION_DENIED),
        ("traversal", grpc.StatusCode.PERMISSION_DENIED),
        ("missing", grpc.StatusCode.NOT_FOUND),
        ("unknown_tool", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_worker_error_codes(worker, logdir: Path, case: str, code: grpc.StatusCode) -> None:  # type: ignore[no-untyped-def]
    address, _ = worker
    session = logdir / "plugins" / "profile" / SESSION
    url, tool = {
        "outside": (str(JAX_DATA / "cpu_mlp_train.xplane.pb"), "overview_page"),
        "traversal": (str(session / ".." / ".." / ".." / ".." / "etc" / "passwd"), "overview_page"),
        "missing": (str(session / "nope.xplane.pb"), "overview_page"),
        "unknown_tool": (str(session / "host0.xplane.pb"), "no_such_tool"),
    }[case]
    with pytest.raises(grpc.RpcError) as err:
        call_map(address, tool, url)
    assert err.value.code() == code


def test_worker_reports_bad_bytes_with_offset_and_path(logdir: Path) -> None:
    if not CORRUPTED.exists():
        pytest.skip("the shared real-profile folder ../shared/data/real is absent")
    session = logdir / "plugins" / "profile" / SESSION
    shutil.copyfile(CORRUPTED, session / "bad.xplane.pb")
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[str(logdir)]))
    try:
        with pytest.raises(grpc.RpcError) as err:
            call_map(f"127.0.0.1:{handle.port}", "overview_page", str(session / "bad.xplane.pb"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().endswith("(byte 1, at XSpace)")
        # The offset and path travel as fields in the trailing metadata, not parsed from the message.
        [raw] = [v for k, v in err.value.trailing_metadata() if k == ERROR_METADATA_KEY]
        fields = json.loads(raw)
        assert (fields["type"], fields["offset"], fields["path"]) == ("DecodeError", "1", "XSpace")
        error = error_from_rpc(err.value, MapTask("overview_page", "bad", "x"), 60)
        assert isinstance(error, DecodeError) and (error.offset, error.path) == (1, "XSpace")
        assert error.reason == "length-delimited field runs past the end of its message"
    finally:
        handle.stop(grace_s=0)


def test_worker_health_and_drain(worker) -> None:  # type: ignore[no-untyped-def]
    address, handle = worker
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="xprof_core.v1.Worker"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        handle.service.drain()
        with pytest.raises(grpc.RpcError) as err:
            list(
                worker_pb2_grpc.WorkerStub(channel).Map(
                    worker_pb2.MapRequest(tool="overview_page", host_url="/x"), timeout=5
                )
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_roots_guard() -> None:
    assert is_under_roots("/data/logs/run/h.xplane.pb", ["/data/logs"])
    assert not is_under_roots("/data/logs2/h.xplane.pb", ["/data/logs"])
    assert not is_under_roots("/data/logs/../secret", ["/data/logs"])
    assert is_under_roots("gs://bucket/logs/run/h.xplane.pb", ["gs://bucket/logs"])
    assert not is_under_roots("gs://bucket/logs/../other/h.xplane.pb", ["gs://bucket/logs"])
    assert not is_under_roots("s3://bucket/logs/h.xplane.pb", ["gs://bucket/logs"])
    assert not is_under_roots("", ["/"])


def test_symlink_out_of_the_roots_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape.xplane.pb").symlink_to(JAX_DATA / "cpu_mlp_train.xplane.pb")
    assert not is_under_roots(str(root / "escape.xplane.pb"), [str(root)])


# --- the gRPC executor ---


def test_channel_config_and_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_target("a:1,b:2") == "ipv4:a:1,b:2"
    assert normalize_target("dns:///svc.ns.svc.cluster.local:8891") == "dns:///svc.ns.svc.cluster.local:8891"
    assert service_config("round_robin")["loadBalancingConfig"] == [{"round_robin": {}}]
    # One retry mechanism: the executor's own (transient codes only); the channel has no retryPolicy.
    assert "methodConfig" not in service_config("round_robin")
    assert {c.name for c in RETRYABLE} == {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}
    monkeypatch.setenv("GRPC_LB_POLICY", "pick_first")
    executor = GrpcExecutor("127.0.0.1:1")
    try:
        assert executor.lb_policy == "pick_first"
    finally:
        executor.close()


def test_executor_spreads_work_and_survives_a_dead_worker(logdir: Path) -> None:
    config = WorkerConfig(logdir_roots=[str(logdir)])
    a = create_server("127.0.0.1:0", WorkerConfig(**{**config.__dict__, "worker_id": "a"}))
    b = create_server("127.0.0.1:0", WorkerConfig(**{**config.__dict__, "worker_id": "b"}))
    dead = free_port()  # nothing listens here: calls routed to it fail UNAVAILABLE and are retried
    executor = GrpcExecutor(f"127.0.0.1:{a.port},127.0.0.1:{b.port},127.0.0.1:{dead}", deadline_s=60)
    try:
        session = logdir / "plugins" / "profile" / SESSION
        tasks = [MapTask("overview_page", h, str(session / f"{h}.xplane.pb")) for h in HOSTS]
        results = executor.map(tasks)
        assert all(r.ok for r in results), [str(r.error) for r in results]
        assert {r.worker_id for r in results} <= {"a", "b"}
        assert all(len(r.partial["steps"]["step_num"]) == 120 for r in results)
        # A bad request is not retried.
        bad = executor.map([MapTask("overview_page", "x", str(session / "missing.xplane.pb"))])[0]
        assert not bad.ok and bad.attempts == 1
    finally:
        executor.close()
        a.stop(grace_s=0)
        b.stop(grace_s=0)


# --- real processes: the deployment shape on loopback ---


def _env() -> dict[str, str]:
    return subprocess_env(GRPC_LB_POLICY="round_robin", GRPC_DNS_RESOLVER="native")


class Cluster:
    """One aggregator and three workers as real processes, flags as in the Kubernetes deployment."""

    def __init__(
        self,
        logdir: Path | str,
        env: dict[str, str] | None = None,
        workers: int = 3,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        env = {**_env(), **(env or {})}  # e.g. an object store's endpoint and credentials
        workers_env = {**env, **(worker_env or {})}
        self.worker_http = [free_port() for _ in range(workers)]
        worker_grpc = [free_port() for _ in range(workers)]
        for i in range(workers):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "xprof_core.worker",
                        f"--port={self.worker_http[i]}",
                        f"-gp={worker_grpc[i]}",
                        "--hide_capture_profile_button",
                        "--host",
                        "127.0.0.1",
                        f"--logdir={logdir}",
                        f"--worker_id=worker-{i}",
                    ],
                    env=workers_env,
                )
            )
        self.port = free_port()
        self.agg_grpc = free_port()
        targets = ",".join(f"127.0.0.1:{p}" for p in worker_grpc)
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xprof_core.aggregator",
                    f"--port={self.port}",
                    f"--worker_service_address={targets}",
                    f"-gp={self.agg_grpc}",
                    "--hide_capture_profile_button",
                    "--host",
                    "127.0.0.1",
                    "--logdir",
                    str(logdir),
                ],
                env=env,
            )
        )
        for p in self.worker_http:
            wait_http(f"http://127.0.0.1:{p}/healthz")
        wait_http(f"http://127.0.0.1:{self.port}/healthz")
        self.base = f"http://127.0.0.1:{self.port}/data/plugin/profile"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture()
def cluster(logdir: Path) -> Iterator[Cluster]:
    c = Cluster(logdir)
    try:
        yield c
    finally:
        c.stop()
    assert all(p.returncode == 0 for p in c.procs), [p.returncode for p in c.procs]


def test_cluster_overview_uses_every_worker(cluster: Cluster, logdir: Path) -> None:
    status, body, headers = http_get(f"{cluster.base}/runs")
    assert status == 200 and json.loads(body) == [SESSION]
    status, body, _ = http_get(f"{cluster.base}/hosts?run={SESSION}&tag=overview_page")
    assert [h["hostname"] for h in json.loads(body)] == HOSTS
    status, body, headers = http_get(f"{cluster.base}/data?run={SESSION}&tag=overview_page")
    assert status == 200, body
    page = json.loads(body)
    expected = run_tool("overview_page", logdir / "plugins" / "profile" / SESSION)
    assert page["steps"] == expected["steps"]
    assert page["hosts"] == HOSTS and page["run_environment"]["host_count"] == 6
    served = []
    for p in cluster.worker_http:
        _, metrics, _ = http_get(f"http://127.0.0.1:{p}/metrics")
        line = [
            ln
            for ln in metrics.decode().splitlines()
            if ln.startswith('xprof_worker_tasks_total{outcome="ok",tool="overview_page"}')
        ]
        served.append(float(line[0].split()[-1]) if line else 0.0)
    assert sum(served) == 6
    # Round robin needs every connection up; ask again for tools until all three have served.
    tools = ["input_pipeline_analyzer", "kernel_stats", "framework_op_stats", "hlo_stats"]
    for tool in tools:
        if all(s > 0 for s in served):
            break
        status, _, _ = http_get(f"{cluster.base}/data?run={SESSION}&tag={tool}")
        assert status == 200
        served = []
        for p in cluster.worker_http:
            _, metrics, _ = http_get(f"http://127.0.0.1:{p}/metrics")
            served.append(
                sum(
                    float(ln.split()[-1])
                    for ln in metrics.decode().splitlines()
                    if ln.startswith('xprof_worker_tasks_total{outcome="ok"')
                )
            )
    assert all(s > 0 for s in served), served
    # The second request for the same view is answered from the cache: no new map tasks.
    before = sum(served)
    status, _, _ = http_get(f"{cluster.base}/data?run={SESSION}&tag=overview_page")
    assert status == 200
    after = 0.0
    for p in cluster.worker_http:
        _, metrics, _ = http_get(f"http://127.0.0.1:{p}/metrics")
        after += sum(
            float(ln.split()[-1])
            for ln in metrics.decode().splitlines()
            if ln.startswith('xprof_worker_tasks_total{outcome="ok"')
        )
    assert after == before


def test_cluster_errors(cluster: Cluster, logdir: Path) -> None:
    cases = {
        "data?run=nope&tag=overview_page": 404,
        f"data?run={SESSION}&tag=no_such_tool": 404,
        f"data?run={SESSION}&tag=overview_page&host=nohost": 404,
        f"data?run={SESSION}&tag=overview_page&host=..%2F..%2Fetc%2Fpasswd": 404,
        "data?run=..%2F..%2Fetc&tag=overview_page": 404,
        "data?run=%2Fetc&tag=overview_page": 404,
        f"data?run={SESSION}&tag=overview_page&session_path=%2Fetc": 400,
        f"data?run={SESSION}&tag=overview_page&x=" + "a" * 5000: 400,
        "data?tag=overview_page": 400,
        "no_such_route": 404,
    }
    for path, expected in cases.items():
        status, body, headers = http_get(f"{cluster.base}/{path}")
        assert status == expected, (path, status, body[:200])
        assert "error" in json.loads(body)


def test_cluster_corrupted_host_is_422_and_others_still_work(tmp_path: Path) -> None:
    if not CORRUPTED.exists():
        pytest.skip("the shared real-profile folder ../shared/data/real is absent")
    session = tmp_path / "ld" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    shutil.copyfile(JAX_DATA / "cpu_mlp_train.xplane.pb", session / "good.xplane.pb")
    shutil.copyfile(CORRUPTED, session / "bad.xplane.pb")
    c = Cluster(tmp_path / "ld")
    try:
        status, body, _ = http_get(f"{c.base}/data?run={SESSION}&tag=overview_page&host=bad")
        assert status == 422
        err = json.loads(body)
        assert err["host"] == "bad" and err["offset"] == 1 and err["path"] == "XSpace"
        status, body, _ = http_get(f"{c.base}/data?run={SESSION}&tag=overview_page&host=good")
        assert status == 200 and json.loads(body)["steps"]["count"] == 12
        status, body, _ = http_get(f"{c.base}/data_csv?run={SESSION}&tag=input_pipeline_analyzer&host=good")
        assert status == 200 and body.decode().startswith("Step,Step time (ms)")
    finally:
        c.stop()


def test_aggregator_serves_the_worker_service_on_gp(cluster: Cluster, logdir: Path) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{cluster.agg_grpc}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    partial, last = call_map(
        f"127.0.0.1:{cluster.agg_grpc}",
        "overview_page",
        str(logdir / "plugins" / "profile" / SESSION / "host3.xplane.pb"),
    )
    assert len(partial["steps"]["step_num"]) == 120


def test_config_openapi_metrics_and_landing_page(cluster: Cluster) -> None:
    status, body, _ = http_get(f"{cluster.base}/config")
    assert json.loads(body)["hideCaptureProfileButton"] is True
    status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/openapi.json")
    doc = json.loads(body)
    assert "/data/plugin/profile/data" in doc["paths"] and doc["openapi"].startswith("3.")
    status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/")
    assert status == 200 and SESSION in body.decode() and "overview_page" in body.decode()
    status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/metrics")
    assert b"xprof_http_requests_total" in body
    status, body, _ = http_get(f"http://127.0.0.1:{cluster.port}/readyz")
    assert status == 200 and json.loads(body)["ready"] is True


def test_help_explains_every_flag() -> None:
    for module, flags in (
        (
            "xprof_core.aggregator",
            ["--worker_service_address", "--grpc_port", "--logdir", "--hide_capture_profile_button", "--port"],
        ),
        ("xprof_core.worker", ["--grpc_port", "--port", "--logdir", "--max_concurrency"]),
    ):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], env=_env(), capture_output=True, text=True, check=True
        ).stdout
        for flag in flags:
            assert flag in out, (module, flag)


def test_worker_maps_a_pytorch_trace_and_reports_bad_json(tmp_path: Path) -> None:
    """Kineto trace JSON goes through the worker like XSpace: decoded while streamed, errors with offsets."""
    import gzip

    from xprof_core.demo import DEMO_LOGDIR

    run = tmp_path / "logdir" / "job"
    run.mkdir(parents=True)
    good = run / "w.1700000000000.pt.trace.json.gz"
    shutil.copyfile(next((DEMO_LOGDIR / "torch_transformer_h200").glob("*.pt.trace.json.gz")), good)
    bad = run / "bad.1700000000001.pt.trace.json.gz"
    bad.write_bytes(gzip.compress(b'{"traceEvents": [{"ph": "X", "ts": 1,}]}'))
    handle = create_server("127.0.0.1:0", WorkerConfig(logdir_roots=[str(tmp_path / "logdir")]))
    try:
        partial, last = call_map(f"127.0.0.1:{handle.port}", "overview_page", str(good))
        assert partial["steps"]["step_num"].tolist() == [3, 4, 5]
        assert last.timings.bytes_read > 0 and last.timings.decode_s > 0  # the XSpace bytes the JSON became
        with pytest.raises(grpc.RpcError) as err:
            call_map(f"127.0.0.1:{handle.port}", "overview_page", str(bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The "}" after the trailing comma: offset and path travel in the trailing metadata.
        [raw] = [v for k, v in err.value.trailing_metadata() if k == ERROR_METADATA_KEY]
        fields = json.loads(raw)
        assert (fields["type"], fields["offset"], fields["path"]) == ("DecodeError", "37", "traceEvents[0]")
    finally:
        handle.stop(grace_s=0)
