"""The Kubernetes deployment shape as real processes: cluster DNS names, manifests, faults and load.

Workers and the aggregator run inside a network namespace of their own (see
netns.py), where a Service's cluster DNS name (``svc.ns.svc.cluster.local``)
resolves through the namespace's hosts file the way cluster DNS answers it: a
headless Service's name to every worker address, so the aggregator's
``dns:///...`` target, glibc's resolver (``GRPC_DNS_RESOLVER=native``) and
round-robin balancing are exercised as in a cluster. Clients run inside the
namespace too (a small probe process). The load test needs no DNS and runs on
the host's loopback with test_serving's ``Cluster``.

Every process a test starts, it stops; every namespace it creates is deleted,
with its /etc/netns directory, even when the test fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import psutil
import pytest
from container_image import ImageRoot, mounted_image
from helpers import http_get
from netns import NetworkNamespace, network_namespace
from prometheus_client.parser import text_string_to_metric_families
from test_serving import SESSION, Cluster, _env

from conftest import JAX_DATA

# XProf's Kubernetes deployment (worker.yaml and agg.yaml of its tutorial), verbatim.
WORKER_ARGS = ("--port=9999", "-gp=8891", "--hide_capture_profile_button")
WORKER_HTTP_PORT = 9999
AGGREGATOR_ARGS = (
    "--port=10000",
    "--worker_service_address=dns:///xprof-worker-service.default.svc.cluster.local:8891",
    "-gp=50051",
    "--hide_capture_profile_button",
)
AGGREGATOR_ENV = {"GRPC_LB_POLICY": "round_robin", "GRPC_DNS_RESOLVER": "native"}
WORKER_SERVICE = "xprof-worker-service.default.svc.cluster.local"
CLUSTER_DOMAIN = "cluster.local"  # the cluster's DNS domain: Kubernetes' default, not part of the manifests
API = "/data/plugin/profile"
PROFILE = JAX_DATA / "gpu_mlp_train_long.xplane.pb"  # a real JAX GPU profile, ~1 MB, 120 steps


def make_logdir(root: Path, hosts: int) -> Path:
    """A logdir with one run of ``hosts`` copies of a real profile (host0, host1, ...)."""
    session = root / "logdir" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    for i in range(hosts):
        shutil.copyfile(PROFILE, session / f"host{i}.xplane.pb")
    return root / "logdir"


@pytest.fixture()
def ns() -> Iterator[NetworkNamespace]:
    with network_namespace() as namespace:
        yield namespace


# --- a client inside the namespace ---

# Reads one JSON request per line, answers one JSON line: an HTTP GET (status and
# base64 body) or a grpc.health.v1 Check. No proxy: the names are the namespace's.
PROBE_SOURCE = r"""
import base64, json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "http":
            try:
                with opener.open(req["url"], timeout=req["timeout"]) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            out = {"status": status, "body": base64.b64encode(body).decode()}
        else:
            import grpc
            from grpc_health.v1 import health_pb2, health_pb2_grpc
            with grpc.insecure_channel(req["target"], options=[("grpc.enable_http_proxy", 0)]) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=req["service"]), timeout=req["timeout"])
            out = {"status": reply.status}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)
"""


class Probe:
    """A client process inside the namespace (names resolve there); one request at a time."""

    def __init__(self, ns: NetworkNamespace) -> None:
        self.proc = ns.popen(
            [sys.executable, "-c", PROBE_SOURCE], env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the probe in the namespace exited ({self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def get(self, url: str, timeout_s: float = 120.0) -> tuple[int, bytes]:
        """HTTP GET from inside the namespace: (status, body); status 0 when no connection was made."""
        answer = self._ask({"op": "http", "url": url, "timeout": timeout_s})
        if "error" in answer:
            return 0, answer["error"].encode()
        return answer["status"], base64.b64decode(answer["body"])

    def get_json(self, url: str) -> Any:
        status, body = self.get(url)
        assert status == 200, (url, status, body[:500])
        return json.loads(body)

    def grpc_serving(self, target: str, service: str = "") -> bool:
        answer = self._ask({"op": "grpc_health", "target": target, "service": service, "timeout": 2.0})
        return answer.get("status") == 1  # HealthCheckResponse.SERVING

    def wait_http(self, url: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.get(url, timeout_s=2.0)[0] == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s")

    def wait_grpc(self, target: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.grpc_serving(target):
                return
            time.sleep(0.1)
        raise TimeoutError(f"gRPC health of {target} did not report SERVING within {timeout_s} s")

    def worker_metric(self, address: str, name: str, port: int = WORKER_HTTP_PORT, **labels: str) -> float:
        """Sum of a worker's Prometheus samples ``name`` whose labels include ``labels``."""
        status, body = self.get(f"http://{address}:{port}/metrics", timeout_s=10.0)
        assert status == 200, (address, status, body[:200])
        return sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def tasks_served(self, address: str, port: int = WORKER_HTTP_PORT) -> float:
        return self.worker_metric(address, "xprof_worker_tasks_total", port, outcome="ok")


def renew(*paths: Path) -> None:
    """Give host files a new modification time: a new file identity, so the next request maps them again
    (the aggregator's and the workers' caches key on it)."""
    for path in paths:
        st = path.stat()
        t = max(time.time_ns(), st.st_mtime_ns + 1_000_000)
        os.utime(path, ns=(t, t))


def host_files(logdir: Path) -> list[Path]:
    return sorted((logdir / "plugins" / "profile" / SESSION).glob("*.xplane.pb"))


def request_until_every_worker_served(
    probe: Probe, base: str, workers: Mapping[str, int], hosts: int, logdir: Path, max_requests: int = 8
) -> list[float]:
    """Ask for a ``hosts``-host view, then for uncached repeats of it, until every worker has served.

    Round robin spreads calls over the connections that are up; the very first
    request can find only some of them connected, so later ones (the host files
    renewed in between, so they are real map tasks) may be needed. ``workers``
    maps each worker's address to its /metrics port. Returns each worker's
    count of map tasks served; checks none was lost or doubled.
    """
    served = [0.0] * len(workers)
    for i in range(max_requests):
        if i:
            renew(*host_files(logdir))
        page = probe.get_json(f"{base}{API}/data?run={SESSION}&tag=overview_page")
        assert page["run_environment"]["host_count"] == hosts
        assert page["steps"]["count"] == 120
        served = [probe.tasks_served(address, port) for address, port in workers.items()]
        assert sum(served) == hosts * (i + 1), served
        if all(s > 0 for s in served):
            break
    return served


class ServiceCluster:
    """XProf's deployment inside a namespace: workers behind the headless Service name, one aggregator."""

    def __init__(
        self,
        ns: NetworkNamespace,
        logdir: Path,
        worker_extra: Sequence[str] = (),
        aggregator_extra: Sequence[str] = (),
    ) -> None:
        self.ns = ns
        self.logdir = logdir
        self.worker_extra = tuple(worker_extra)
        self.aggregator_extra = tuple(aggregator_extra)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.aggregator: subprocess.Popen[bytes] | None = None
        self.probe = Probe(ns)
        self.base = "http://127.0.0.1:10000"  # the aggregator binds 0.0.0.0 of the namespace, as in its pod

    def start_worker(self, address: str, wait: bool = True) -> None:
        # The deployment's args verbatim, plus two that Kubernetes makes unnecessary:
        # --host: in Kubernetes each pod has its own IP and binds all of its interfaces; here
        #   the replicas share one namespace, so each binds its own loopback address, the one
        #   the Service name resolves to for it (and all of them keep ports 9999 and 8891).
        # --logdir: the profiles volume mounted in each pod; here the test's logdir.
        argv = [
            sys.executable,
            "-m",
            "xprof_core.worker",
            *WORKER_ARGS,
            "--host",
            address,
            "--logdir",
            str(self.logdir),
            *self.worker_extra,
        ]
        self.workers[address] = self.ns.popen(argv, env=_env())
        if wait:
            self.wait_worker(address)

    def metrics_ports(self) -> dict[str, int]:
        return dict.fromkeys(self.workers, WORKER_HTTP_PORT)

    def wait_worker(self, address: str) -> None:
        self.probe.wait_http(f"http://{address}:{WORKER_HTTP_PORT}/healthz")

    def publish(self, addresses: Sequence[str]) -> None:
        """Point the headless Service's name at these workers (what cluster DNS does for ready pods)."""
        self.ns.set_hosts({WORKER_SERVICE: list(addresses)})

    def start_aggregator(self, wait: bool = True) -> None:
        # The deployment's args and env verbatim, plus --logdir (the mounted profiles volume).
        argv = [sys.executable, "-m", "xprof_core.aggregator", *AGGREGATOR_ARGS, "--logdir", str(self.logdir)]
        argv += self.aggregator_extra
        self.aggregator = self.ns.popen(argv, env={**_env(), **AGGREGATOR_ENV})
        if wait:
            self.probe.wait_http(f"{self.base}/readyz")

    def stop(self) -> dict[str, int]:
        """SIGTERM everything (aggregator first, as `delete` does) and return each exit status."""
        procs: dict[str, subprocess.Popen[bytes]] = {"aggregator": self.aggregator} if self.aggregator else {}
        procs.update(self.workers)
        return dict(zip(procs, NetworkNamespace.stop(*procs.values()), strict=True))


def start_service_cluster(
    ns: NetworkNamespace,
    tmp_path: Path,
    hosts: int,
    workers: int,
    worker_extra: Sequence[str] = (),
    aggregator_extra: Sequence[str] = (),
    logdir: Path | None = None,
) -> ServiceCluster:
    cluster = ServiceCluster(ns, logdir or make_logdir(tmp_path, hosts), worker_extra, aggregator_extra)
    addresses = [f"127.0.1.{i + 1}" for i in range(workers)]
    cluster.publish(addresses)
    for address in addresses:  # all at once (the aggregator dials the workers on its first request)
        cluster.start_worker(address, wait=False)
    cluster.start_aggregator(wait=False)
    for address in addresses:
        cluster.wait_worker(address)
    cluster.probe.wait_http(f"{cluster.base}/readyz")
    return cluster


# --- a. the headless Service name ---


def test_headless_service_name_spreads_a_six_host_view_over_three_workers(ns: NetworkNamespace, tmp_path: Path) -> None:
    cluster = start_service_cluster(ns, tmp_path, hosts=6, workers=3)
    workers = list(cluster.workers)
    # The aggregator resolves the name as the test set it up: three addresses, via glibc.
    out = ns.run(
        [
            sys.executable,
            "-c",
            "import socket; print(sorted({a[4][0] for a in "
            f"socket.getaddrinfo({WORKER_SERVICE!r}, 8891, proto=socket.IPPROTO_TCP)}}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == str(workers)
    served = request_until_every_worker_served(cluster.probe, cluster.base, cluster.metrics_ports(), 6, cluster.logdir)
    assert all(s > 0 for s in served), dict(zip(workers, served, strict=True))
    config = cluster.probe.get_json(f"{cluster.base}{API}/config")
    assert config["hideCaptureProfileButton"] is True
    assert WORKER_SERVICE in config["executor"] and "round_robin" in config["executor"]
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes


# --- b. the rendered manifests, run as Kubernetes would run them ---


def _selects(service: dict[str, Any], deployment: dict[str, Any]) -> bool:
    selector = service["spec"].get("selector") or {}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_port(container: dict[str, Any], target: int | str) -> int:
    """A Service targetPort: a number, or the name of one of the container's ports."""
    if isinstance(target, int):
        return target
    return next(int(p["containerPort"]) for p in container["ports"] if p.get("name") == target)


def _wait_ready(probe: Probe, container: dict[str, Any], address: str) -> None:
    """Wait until the container's own readinessProbe passes against the replica at ``address``."""
    readiness = container["readinessProbe"]
    if "httpGet" in readiness:
        get = readiness["httpGet"]
        probe.wait_http(f"http://{address}:{_container_port(container, get['port'])}{get['path']}")
    elif "grpc" in readiness:
        probe.wait_grpc(f"{address}:{_container_port(container, readiness['grpc']['port'])}")
    else:
        raise AssertionError(f"this test runs httpGet and grpc readiness probes only, not {readiness}")


@pytest.mark.parametrize("runtime", ["python", "image"])
def test_rendered_manifests_run_as_kubernetes_would(ns: NetworkNamespace, tmp_path: Path, runtime: str) -> None:
    """Every Deployment's replicas, started from their container spec, serve through the Services' names.

    ``python``: the container's command with this interpreter standing in for the image's.
    ``image``: the command as it is, run from the root filesystem of the image as built (see
    container_image.py; skipped unless ``$XPROF_TEST_IMAGE`` names one), with the image's
    user and environment plus the container's env: nothing of this machine's Python is used.
    """
    with contextlib.ExitStack() as stack:
        image = stack.enter_context(mounted_image()) if runtime == "image" else None
        _run_rendered_manifests(ns, tmp_path, image)


def _run_rendered_manifests(ns: NetworkNamespace, tmp_path: Path, image: ImageRoot | None) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (the k8s extra) is needed to read the manifests")
    pytest.importorskip("kubernetes", reason="the kubernetes client (the k8s extra) renders the manifests")
    from xprof_core.deploy import render_manifests

    docs = [d for d in yaml.safe_load_all(render_manifests()) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert deployments and services
    logdir = make_logdir(tmp_path, 6)

    # Give every pod its own loopback address, and every Service its cluster DNS name:
    # a headless Service's name lists every pod it selects, any other one names its single pod
    # (standing in for the Service's virtual IP, which kube-proxy would forward to that pod).
    pods: dict[str, list[str]] = {}
    for i, dep in enumerate(deployments):
        pods[dep["metadata"]["name"]] = [f"127.0.{i + 1}.{r + 1}" for r in range(int(dep["spec"]["replicas"]))]
    names: dict[str, list[str]] = {}
    entry: tuple[str, int] | None = None  # the user-facing Service: its DNS name and targetPort
    for svc in services:
        selected = [dep for dep in deployments if _selects(svc, dep)]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)} Deployments"
        dep = selected[0]
        dns = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.{CLUSTER_DOMAIN}"
        names[dns] = pods[dep["metadata"]["name"]]
        if svc["spec"].get("clusterIP") != "None":
            assert len(names[dns]) == 1, "a virtual-IP Service is emulated for a single replica only"
            container = dep["spec"]["template"]["spec"]["containers"][0]
            assert entry is None, "expected one user-facing (non-headless) Service"
            entry = (dns, _container_port(container, svc["spec"]["ports"][0]["targetPort"]))
    assert entry is not None
    ns.set_hosts(names)

    probe = Probe(ns)
    procs: list[subprocess.Popen[bytes]] = []
    metrics_ports: dict[str, int] = {}  # worker address -> its HTTP /metrics port
    for dep in deployments:  # all at once, as a fresh apply starts them
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        command, args = container["command"], container["args"]
        assert command[:3] == ["python", "-m", "xprof_core.deploy.entrypoint"], command
        manifest_env = {}
        for var in container.get("env") or []:
            assert "value" in var, f"this test passes literal env values only, not {var}"
            manifest_env[var["name"]] = var["value"]
        role = command[3]
        for address in pods[dep["metadata"]["name"]]:
            # Only the per-replica --host (each pod has its own IP; here the replicas share one
            # namespace and each binds its own loopback address) and --logdir (the mounted volume).
            if image is None:  # this interpreter stands in for the image's `python`
                env = {k: v for k, v in _env().items() if not k.startswith("GRPC_")}  # only the manifest's GRPC_*
                argv = [sys.executable, *command[1:], *args, "--host", address, "--logdir", str(logdir)]
                procs.append(ns.popen(argv, env={**env, **manifest_env}))
            else:
                security = container.get("securityContext") or {}
                assert image.entrypoint == command[:3], (image.entrypoint, command)
                assert image.user.split(":")[0] == str(security.get("runAsUser")), (image.user, security)
                argv = image.argv(
                    [*command, *args, "--host", address, "--logdir", "/logdir"],
                    tmp_path / "pods" / address,
                    env=manifest_env,
                    volumes={str(logdir): "/logdir"},
                    read_only_root=bool(security.get("readOnlyRootFilesystem")),
                )
                procs.append(ns.popen(argv))
            if role == "worker":
                metrics_ports[address] = int(next(a.split("=", 1)[1] for a in args if a.startswith("--port=")))
    for dep in deployments:  # every replica passes its own readinessProbe
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        for address in pods[dep["metadata"]["name"]]:
            _wait_ready(probe, container, address)

    if image is not None:  # every server runs from the image's root, as its user
        for proc in procs:
            assert os.readlink(f"/proc/{proc.pid}/root").startswith(str(tmp_path / "pods")), proc.args
            assert psutil.Process(proc.pid).uids().real == int(image.user.split(":")[0])
            assert psutil.Process(proc.pid).exe().startswith(str(tmp_path / "pods"))  # the image's interpreter
    workers = list(metrics_ports)
    assert len(workers) == 4  # the worker Deployment's replicas
    # The aggregator found them through the worker Service's name, as its flag says.
    flag = next(
        a
        for d in deployments
        for a in d["spec"]["template"]["spec"]["containers"][0]["args"]
        if a.startswith("--worker_service_address=")
    )
    host, _, grpc_port = flag.split("dns:///", 1)[1].rpartition(":")
    assert sorted(names[host]) == sorted(workers), (flag, names)
    worker_svc = next(svc for svc in services if svc["spec"].get("clusterIP") == "None")
    assert int(grpc_port) == worker_svc["spec"]["ports"][0]["targetPort"], (flag, worker_svc["spec"]["ports"])
    dns, port = entry
    base = f"http://{dns}:{port}"
    assert probe.get_json(f"{base}{API}/runs") == [SESSION]
    served = request_until_every_worker_served(probe, base, metrics_ports, 6, logdir)
    assert all(s > 0 for s in served), dict(zip(workers, served, strict=True))
    codes = NetworkNamespace.stop(*procs)
    assert codes == [0] * len(procs), codes


# --- c. faults: a worker dies mid-request; a new worker joins the name ---


def _aggregator_map_tasks(probe: Probe, base: str, tool: str) -> dict[tuple[str, str], float]:
    """The aggregator's count of map results, by (worker id, outcome), for ``tool``."""
    status, body = probe.get(f"{base}/metrics", timeout_s=10.0)
    assert status == 200
    return {
        (s.labels["worker"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "xprof_map_tasks_total" and s.labels.get("tool") == tool
    }


def test_worker_killed_mid_request_is_retried_elsewhere(ns: NetworkNamespace, tmp_path: Path) -> None:
    hosts = 12  # ~2 s of map work on two cores: long enough to kill a worker while it maps
    cluster = start_service_cluster(ns, tmp_path, hosts=hosts, workers=3)
    workers = list(cluster.workers)
    worker_ids = {w: f"{socket.gethostname()}:{cluster.workers[w].pid}" for w in workers}  # the workers' default id
    request_until_every_worker_served(cluster.probe, cluster.base, cluster.metrics_ports(), hosts, cluster.logdir)
    before = {w: cluster.probe.tasks_served(w) for w in workers}
    agg_before = _aggregator_map_tasks(cluster.probe, cluster.base, "overview_page")
    client = Probe(ns)
    renew(*host_files(cluster.logdir))  # uncached: every host is mapped again
    url = f"{cluster.base}{API}/data?run={SESSION}&tag=overview_page"
    with futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, url)
        victim = None
        deadline = time.monotonic() + 20
        while victim is None and not pending.done() and time.monotonic() < deadline:
            busy = [w for w in workers if cluster.probe.worker_metric(w, "xprof_worker_in_flight") > 0]
            victim = busy[0] if busy else None
        assert victim is not None, "no worker was seen mapping while the request was in flight"
        cluster.workers[victim].send_signal(signal.SIGKILL)
        status, body = pending.result(timeout=120)
    # The victim died holding a map task, yet every host's partial arrived: the task ran again on
    # another worker (the executor retries UNAVAILABLE, and round robin picks a live worker).
    assert status == 200, body[:500]
    page = json.loads(body)
    assert page["run_environment"]["host_count"] == hosts and page["steps"]["count"] == 120
    assert cluster.workers[victim].wait(timeout=10) == -signal.SIGKILL
    agg_after = _aggregator_map_tasks(cluster.probe, cluster.base, "overview_page")
    delivered = {
        w: agg_after.get((worker_ids[w], "ok"), 0.0) - agg_before.get((worker_ids[w], "ok"), 0.0) for w in workers
    }
    assert sum(delivered.values()) == hosts, delivered  # each host mapped once, by a known worker
    assert not any(outcome == "error" for _, outcome in agg_after), agg_after
    for w in workers:
        if w != victim:  # what the survivors say they served is what the aggregator got from them
            assert cluster.probe.tasks_served(w) - before[w] == delivered[w], (w, delivered)
    codes = cluster.stop()
    assert all(code == 0 for w, code in codes.items() if w != victim), codes


def test_a_sharded_host_survives_a_worker_killed_mid_request(ns: NetworkNamespace, tmp_path: Path) -> None:
    """One huge host (a real profile repeated 48 times, ~47 MB) cut into 1 MB shards over three workers;
    one worker is killed while the shards are out. Its shard tasks run again on the others (and the
    shards it had walked are walked again for their segments): the answer is the one-pass answer."""
    from xprof_core.execute import run_tool

    session = tmp_path / "logdir" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    big = session / "huge.xplane.pb"
    scaler = Path(__file__).resolve().parents[1] / "scripts" / "scale_profile.py"
    subprocess.run([sys.executable, str(scaler), str(PROFILE), str(big), "--times", "48"], env=_env(), check=True)
    expected = run_tool("overview_page", big)
    cluster = start_service_cluster(
        ns, tmp_path, hosts=1, workers=3, aggregator_extra=["--shard_mb=1"], logdir=tmp_path / "logdir"
    )
    client = Probe(ns)
    url = f"{cluster.base}{API}/data?run={SESSION}&tag=overview_page"
    victim = next(iter(cluster.workers))
    with futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, url)
        seen = None
        deadline = time.monotonic() + 60
        while seen is None and not pending.done() and time.monotonic() < deadline:
            builds = cluster.probe.get_json(f"{cluster.base}{API}/progress")["builds"]
            seen = builds[0] if builds and 0 < builds[0]["done"] < builds[0]["total"] else None
        assert seen is not None, "the sharded build was not seen in flight"
        assert seen["host"] == "huge" and seen["bytes"] == big.stat().st_size and seen["total"] > 40
        cluster.workers[victim].send_signal(signal.SIGKILL)
        status, body = pending.result(timeout=300)
    assert status == 200, body[:500]
    page = json.loads(body)
    assert page["steps"] == json.loads(json.dumps(expected["steps"]))
    assert page["steps"]["count"] > 48 * 100  # the copies' steps, every one (a lost shard would drop some)
    assert cluster.workers[victim].wait(timeout=10) == -signal.SIGKILL
    codes = cluster.stop()
    assert all(code == 0 for w, code in codes.items() if w != victim), codes


def test_a_new_worker_behind_the_name_receives_work(ns: NetworkNamespace, tmp_path: Path) -> None:
    # A short connection age makes the aggregator reconnect, and so re-resolve the name, every ~2 s.
    cluster = start_service_cluster(ns, tmp_path, hosts=6, workers=3, worker_extra=["--max_connection_age=2"])
    request_until_every_worker_served(cluster.probe, cluster.base, cluster.metrics_ports(), 6, cluster.logdir)
    new = "127.0.1.4"
    cluster.start_worker(new)
    cluster.publish(list(cluster.workers))  # the fourth pod became ready: cluster DNS lists it
    t0 = time.monotonic()
    i = 0
    while cluster.probe.tasks_served(new) == 0:
        assert time.monotonic() - t0 < 20, "the new worker got no work within 20 s"
        i += 1
        renew(*host_files(cluster.logdir))  # new file identities: real map tasks
        cluster.probe.get_json(f"{cluster.base}{API}/data?run={SESSION}&tag=kernel_stats")
        time.sleep(0.2)
    print(f"the new worker served after {time.monotonic() - t0:.1f} s ({i} uncached requests)")
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes


# --- d. load ---


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def test_concurrent_clients_on_cached_and_uncached_views(tmp_path: Path) -> None:
    logdir = make_logdir(tmp_path, 6)
    cluster = Cluster(logdir)  # one aggregator + three workers on loopback
    aggregator = cluster.procs[-1]
    clients, per_client = 32, 20
    cached = [
        f"data?run={SESSION}&tag={tool}"
        for tool in ("overview_page", "input_pipeline_analyzer", "kernel_stats", "framework_op_stats")
    ]

    files = host_files(logdir)

    def view(client: int, i: int, round_name: str) -> str:
        if i % 2 == 0:
            return cached[(client + i) % len(cached)]
        # Uncached: one host whose file was just renewed, so its cache key is new.
        host = (client + i) % 6
        renew(files[host])
        return f"data?run={SESSION}&tag=kernel_stats&host=host{host}"

    def client_run(client: int, requests: int, round_name: str) -> list[str]:
        errors = []
        for i in range(requests):
            status, body, _ = http_get(f"{cluster.base}/{view(client, i, round_name)}")
            if status != 200 or not json.loads(body):
                errors.append(f"{view(client, i, round_name)}: {status} {body[:200]!r}")
        return errors

    def run_round(requests: int, round_name: str) -> list[str]:
        with futures.ThreadPoolExecutor(clients) as pool:
            return [e for errs in pool.map(lambda c: client_run(c, requests, round_name), range(clients)) for e in errs]

    try:
        assert run_round(4, "warm") == []
        warm_rss = _rss(aggregator.pid)
        t0 = time.monotonic()
        assert run_round(per_client, "full") == []
        elapsed = time.monotonic() - t0
        full_rss = _rss(aggregator.pid)
        # Not growing without bound: 640 more requests (320 of them new cache entries of a few KB)
        # may cost some allocator slack, never a copy of every response.
        assert full_rss <= warm_rss * 1.25 + (32 << 20), (warm_rss, full_rss)
        print(
            f"{clients * per_client} requests in {elapsed:.1f} s; aggregator RSS "
            f"{warm_rss / 2**20:.0f} MiB after warm-up, {full_rss / 2**20:.0f} MiB after the run"
        )
    finally:
        cluster.stop()
    assert all(p.returncode == 0 for p in cluster.procs), [p.returncode for p in cluster.procs]
