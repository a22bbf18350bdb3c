"""The Kubernetes deploy layer: seed parity, options validation, schemas, Dockerfile, apply/delete.

The seed is XProf's Kubernetes tutorial (../shared/seed/kubernetes-deployment.pt.txt,
Portuguese prose around four YAML objects). With default options our manifests must
carry every field of those objects with the same value, except the image and its pull
policy; with XProf's image and ``Never`` they must carry every field, full stop.

Tests that build manifests need the ``k8s`` extra (``kubernetes``, ``PyYAML``) and the
schema tests ``kubernetes-validate``; they skip with the reason when it is missing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import re
import sys
import types
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from xprof_core import __version__
from xprof_core.deploy import entrypoint
from xprof_core.deploy.__main__ import build_parser, main, options_from_args
from xprof_core.deploy.options import (
    RUN_AS_USER,
    Autoscaling,
    DeployOptions,
    HostPathLogdir,
    ObjectStoreLogdir,
    PvcLogdir,
    ResourceSpec,
)

from conftest import ROOT

SEED = ROOT.parent / "shared" / "seed" / "kubernetes-deployment.pt.txt"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
RENDERED = ROOT / "deploy" / "kubernetes" / "xprof.yaml"
NEED_K8S = "the k8s extra is not installed (pip install 'xprof-core[k8s]')"

# Kubernetes minor versions whose strict schemas the rendered objects must satisfy:
# gRPC probes went GA in 1.27, so every one of these has all the fields we use.
SCHEMA_VERSIONS = ("1.29.0", "1.31.0", "1.33.0")

# Options that switch on every optional branch of the builders.
FULL = DeployOptions(
    namespace="profiling",
    worker_replicas=6,
    service_type="LoadBalancer",
    logdir=ObjectStoreLogdir("gs://bucket/runs", secret="gcs-key"),
    autoscaling=Autoscaling(min_replicas=2, max_replicas=12, cpu_utilization_percent=60),
    aggregator_resources=ResourceSpec(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="4Gi"),
)
VARIANTS = {
    "default": DeployOptions(),
    "full": FULL,
    "pvc-clusterip": DeployOptions(service_type="ClusterIP", logdir=PvcLogdir("profiles"), pdb_max_unavailable=None),
    "hostpath-s3-noprobes": DeployOptions(logdir=HostPathLogdir("/mnt/profiles"), probes=False, node_port=0),
    "s3": DeployOptions(logdir=ObjectStoreLogdir("s3://bucket/runs", secret="s3-creds")),
}


@pytest.fixture(scope="module")
def manifests() -> ModuleType:
    """``xprof_core.deploy.manifests``, or a skip when the k8s extra is absent."""
    pytest.importorskip("kubernetes", reason=NEED_K8S)
    pytest.importorskip("yaml", reason=NEED_K8S)
    from xprof_core.deploy import manifests as module

    return module


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (only,) = doc["spec"]["template"]["spec"]["containers"]
    return only


# --- the seed ------------------------------------------------------------------------------------

_YAML_LINE = re.compile(r"^(\s|-|[A-Za-z][\w.-]*:)")


def seed_documents() -> list[dict[str, Any]]:
    """The YAML objects of the seed tutorial: each block runs from ``apiVersion:`` to the first prose line."""
    yaml = pytest.importorskip("yaml", reason=NEED_K8S)
    if not SEED.exists():
        pytest.skip(f"the seed tutorial {SEED} is absent")
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in SEED.read_text(encoding="utf-8").splitlines():
        if current is None:
            if line.startswith("apiVersion:"):
                current = [line]
        elif not line.strip() or _YAML_LINE.match(line):
            current.append(line)
        else:
            blocks.append(current)
            current = None
    if current is not None:
        blocks.append(current)
    return [doc for block in blocks for doc in yaml.safe_load_all("\n".join(block)) if doc]


def assert_carries(seed: Any, ours: Any, path: str = "") -> None:
    """Every field of ``seed`` is in ``ours`` with the same value; lists must match in length and order."""
    if isinstance(seed, dict):
        assert isinstance(ours, dict), f"{path}: expected a mapping, got {ours!r}"
        for key, value in seed.items():
            assert key in ours, f"{path}.{key} is missing (seed has {value!r})"
            assert_carries(value, ours[key], f"{path}.{key}")
    elif isinstance(seed, list):
        assert isinstance(ours, list) and len(ours) == len(seed), f"{path}: ours {ours!r}, seed {seed!r}"
        for i, (s, o) in enumerate(zip(seed, ours, strict=True)):
            assert_carries(s, o, f"{path}[{i}]")
    else:
        assert ours == seed, f"{path}: ours {ours!r}, seed {seed!r}"


def test_seed_holds_the_four_objects() -> None:
    names = [(d["kind"], d["metadata"]["name"]) for d in seed_documents()]
    assert names == [
        ("Deployment", "xprof-aggregator-deployment"),
        ("Service", "xprof-agg-service"),
        ("Deployment", "xprof-worker-deployment"),
        ("Service", "xprof-worker-service"),
    ]


def test_defaults_carry_every_seed_field_but_the_image(manifests: ModuleType) -> None:
    ours = by_name(manifests.manifest_dicts(DeployOptions()))
    for seed in seed_documents():
        seed = json.loads(json.dumps(seed))  # a deep copy to edit
        if seed["kind"] == "Deployment":
            for c in seed["spec"]["template"]["spec"]["containers"]:
                del c["image"], c["imagePullPolicy"]
        assert_carries(seed, ours[(seed["kind"], seed["metadata"]["name"])], seed["metadata"]["name"])


def test_seed_image_and_pull_policy_reproduce_the_seed_entirely(manifests: ModuleType) -> None:
    ours = by_name(manifests.manifest_dicts(DeployOptions(image="xprof:2.21.3", pull_policy="Never")))
    for seed in seed_documents():
        assert_carries(seed, ours[(seed["kind"], seed["metadata"]["name"])], seed["metadata"]["name"])


def test_defaults_exactly(manifests: ModuleType) -> None:
    """The values the brief spells out, checked one by one (also where no seed file is available)."""
    docs = by_name(manifests.manifest_dicts())
    agg = docs[("Deployment", "xprof-aggregator-deployment")]
    agg_svc = docs[("Service", "xprof-agg-service")]
    wrk = docs[("Deployment", "xprof-worker-deployment")]
    wrk_svc = docs[("Service", "xprof-worker-service")]
    assert set(docs) == {
        ("Deployment", "xprof-aggregator-deployment"),
        ("Service", "xprof-agg-service"),
        ("Deployment", "xprof-worker-deployment"),
        ("Service", "xprof-worker-service"),
        ("PodDisruptionBudget", "xprof-worker-pdb"),
    }
    assert agg["spec"]["replicas"] == 1 and wrk["spec"]["replicas"] == 4
    assert agg["spec"]["selector"] == {"matchLabels": {"app": "xprof-aggregator-app"}}
    assert wrk["spec"]["selector"] == {"matchLabels": {"app": "xprof-worker-app"}}
    assert agg["metadata"]["labels"]["app"] == agg["spec"]["template"]["metadata"]["labels"]["app"]
    assert wrk["metadata"]["labels"]["app"] == wrk["spec"]["template"]["metadata"]["labels"]["app"]
    assert agg_svc["spec"]["selector"] == {"app": "xprof-aggregator-app"}
    assert wrk_svc["spec"]["selector"] == {"app": "xprof-worker-app"}

    a, w = container(agg), container(wrk)
    assert (a["name"], w["name"]) == ("aggregator-container", "worker-container")
    assert a["args"] == [
        "--port=10000",
        "--worker_service_address=dns:///xprof-worker-service.default.svc.cluster.local:8891",
        "-gp=50051",
        "--hide_capture_profile_button",
    ]
    assert w["args"] == ["--port=9999", "-gp=8891", "--hide_capture_profile_button"]
    assert a["env"] == [
        {"name": "GRPC_LB_POLICY", "value": "round_robin"},
        {"name": "GRPC_DNS_RESOLVER", "value": "native"},
    ]
    assert "env" not in w
    assert [p["containerPort"] for p in a["ports"]] == [10000]
    assert [p["containerPort"] for p in w["ports"]] == [8891]
    assert a["image"] == w["image"] == f"xprof-core:{__version__}" == "xprof-core:0.1.0"
    assert a["command"] == [*entrypoint.ENTRYPOINT, "aggregator"]
    assert w["command"] == [*entrypoint.ENTRYPOINT, "worker"]

    assert agg_svc["spec"]["type"] == "NodePort"
    assert agg_svc["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 10000, "nodePort": 30001}
    ]
    assert wrk_svc["spec"]["clusterIP"] == "None" and "type" not in wrk_svc["spec"]
    assert wrk_svc["spec"]["ports"] == [{"name": "grpc", "protocol": "TCP", "port": 80, "targetPort": 8891}]


def test_security_context_and_tmp(manifests: ModuleType) -> None:
    for doc in manifests.manifest_dicts():
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == RUN_AS_USER == 10001
        assert pod["automountServiceAccountToken"] is False
        sc = container(doc)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsUser"] == 10001 and sc["runAsNonRoot"] is True
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container(doc)["volumeMounts"]


def test_probes(manifests: ModuleType) -> None:
    docs = by_name(manifests.manifest_dicts())
    a = container(docs[("Deployment", "xprof-aggregator-deployment")])
    w = container(docs[("Deployment", "xprof-worker-deployment")])
    assert a["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 10000}
    assert a["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 10000}
    assert w["readinessProbe"]["grpc"] == {"port": 8891}
    assert w["livenessProbe"]["grpc"] == {"port": 8891}
    for doc in manifests.manifest_dicts(DeployOptions(probes=False)):
        if doc["kind"] == "Deployment":
            assert "readinessProbe" not in container(doc) and "livenessProbe" not in container(doc)


def test_namespace_follows_through(manifests: ModuleType) -> None:
    opts = DeployOptions(namespace="profiling", cluster_domain="corp.local", worker_grpc_port=7000)
    docs = manifests.manifest_dicts(opts)
    assert {d["metadata"]["namespace"] for d in docs} == {"profiling"}
    agg = container(by_name(docs)[("Deployment", "xprof-aggregator-deployment")])
    assert "--worker_service_address=dns:///xprof-worker-service.profiling.svc.corp.local:7000" in agg["args"]
    assert opts.worker_service_address == "dns:///xprof-worker-service.profiling.svc.corp.local:7000"
    wrk = by_name(docs)
    assert container(wrk[("Deployment", "xprof-worker-deployment")])["args"][1] == "-gp=7000"
    assert wrk[("Service", "xprof-worker-service")]["spec"]["ports"][0]["targetPort"] == 7000
    # The default render names the namespace too, so `kubectl apply -n other` fails instead of
    # starting an aggregator that dials the workers of the default namespace.
    assert {d["metadata"]["namespace"] for d in manifests.manifest_dicts()} == {"default"}


def test_name_prefix_renames_everything(manifests: ModuleType) -> None:
    docs = manifests.manifest_dicts(DeployOptions(name_prefix="team-a"))
    assert sorted(d["metadata"]["name"] for d in docs) == [
        "team-a-agg-service",
        "team-a-aggregator-deployment",
        "team-a-worker-deployment",
        "team-a-worker-pdb",
        "team-a-worker-service",
    ]
    agg = container(by_name(docs)[("Deployment", "team-a-aggregator-deployment")])
    assert "--worker_service_address=dns:///team-a-worker-service.default.svc.cluster.local:8891" in agg["args"]


def test_service_types(manifests: ModuleType) -> None:
    def agg_port(opts: DeployOptions) -> tuple[str, dict[str, Any]]:
        svc = by_name(manifests.manifest_dicts(opts))[("Service", "xprof-agg-service")]["spec"]
        return svc["type"], svc["ports"][0]

    assert agg_port(DeployOptions(node_port=32000)) == (
        "NodePort",
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 10000, "nodePort": 32000},
    )
    kind, port = agg_port(DeployOptions(node_port=0))
    assert kind == "NodePort" and "nodePort" not in port
    for service_type in ("ClusterIP", "LoadBalancer"):
        kind, port = agg_port(DeployOptions(service_type=service_type, service_port=8080))
        assert kind == service_type and "nodePort" not in port and port["port"] == 8080


@pytest.mark.parametrize(
    ("logdir", "volume", "arg"),
    [
        (
            PvcLogdir("profiles"),
            {"name": "logdir", "persistentVolumeClaim": {"claimName": "profiles", "readOnly": True}},
            "--logdir=/logdir",
        ),
        (
            HostPathLogdir("/mnt/profiles"),
            {"name": "logdir", "hostPath": {"path": "/mnt/profiles", "type": "Directory"}},
            "--logdir=/logdir",
        ),
    ],
    ids=["pvc", "hostpath"],
)
def test_mounted_logdir(manifests: ModuleType, logdir: Any, volume: dict[str, Any], arg: str) -> None:
    for doc in manifests.manifest_dicts(DeployOptions(logdir=logdir)):
        if doc["kind"] != "Deployment":
            continue
        c = container(doc)
        assert volume in doc["spec"]["template"]["spec"]["volumes"]
        assert {"name": "logdir", "mountPath": "/logdir", "readOnly": True} in c["volumeMounts"]
        assert c["args"][-1] == arg


def test_object_store_logdir(manifests: ModuleType) -> None:
    s3 = DeployOptions(logdir=ObjectStoreLogdir("s3://bucket/runs", secret="s3-creds"))
    gcs = DeployOptions(logdir=ObjectStoreLogdir("gs://bucket/runs", secret="gcs-key"))
    ambient = DeployOptions(logdir=ObjectStoreLogdir("gs://bucket/runs"))
    for doc in manifests.manifest_dicts(s3):
        if doc["kind"] == "Deployment":
            c = container(doc)
            assert c["args"][-1] == "--logdir=s3://bucket/runs"
            assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
            assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp"]
    for doc in manifests.manifest_dicts(gcs):
        if doc["kind"] == "Deployment":
            c = container(doc)
            assert c["args"][-1] == "--logdir=gs://bucket/runs"
            assert {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/run/secrets/xprof-logdir/key.json"} in c[
                "env"
            ]
            assert {"name": "logdir-credentials", "mountPath": "/var/run/secrets/xprof-logdir", "readOnly": True} in c[
                "volumeMounts"
            ]
            assert {"name": "logdir-credentials", "secret": {"secretName": "gcs-key", "defaultMode": 0o440}} in (
                doc["spec"]["template"]["spec"]["volumes"]
            )
    for doc in manifests.manifest_dicts(ambient):
        if doc["kind"] == "Deployment":
            c = container(doc)
            assert c["args"][-1] == "--logdir=gs://bucket/runs"
            assert "envFrom" not in c and len(c["volumeMounts"]) == 1


def test_pdb_and_autoscaler(manifests: ModuleType) -> None:
    docs = by_name(manifests.manifest_dicts(FULL))
    pdb = docs[("PodDisruptionBudget", "xprof-worker-pdb")]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "xprof-worker-app"}}}
    hpa = docs[("HorizontalPodAutoscaler", "xprof-worker-hpa")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xprof-worker-deployment"},
        "minReplicas": 2,
        "maxReplicas": 12,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
            }
        ],
    }
    # The autoscaler owns the replica count: a re-apply must not reset it.
    assert "replicas" not in docs[("Deployment", "xprof-worker-deployment")]["spec"]
    no_pdb = by_name(manifests.manifest_dicts(DeployOptions(pdb_max_unavailable=None)))
    assert not any(kind == "PodDisruptionBudget" for kind, _ in no_pdb)


# --- the rendered file and the command line --------------------------------------------------------


def test_committed_manifest_is_a_fresh_render(manifests: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    committed = RENDERED.read_text(encoding="utf-8")
    assert committed == manifests.render_manifests(), (
        "deploy/kubernetes/xprof.yaml is stale: python -m xprof_core.deploy render -o deploy/kubernetes/xprof.yaml"
    )
    assert main(["render"]) == 0
    assert capsys.readouterr().out == committed


def test_render_is_valid_multi_document_yaml(manifests: ModuleType) -> None:
    import yaml

    text = manifests.render_manifests(FULL)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs == manifests.manifest_dicts(FULL)
    assert text.count("\n---\n") == len(docs) - 1
    assert [d["kind"] for d in docs] == [
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Service",
        "Deployment",
    ]
    assert text == manifests.render_manifests(FULL)  # byte-stable


def test_cli_render_options_and_output_file(manifests: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    code = main(
        [
            "render",
            "-n",
            "profiling",
            "--worker-replicas",
            "8",
            "--logdir-url",
            "s3://b/runs",
            "--logdir-secret",
            "creds",
            "--service-type",
            "ClusterIP",
            "--hpa-max-replicas",
            "16",
            "--worker-requests",
            "cpu=2,memory=4Gi",
            "--worker-limits",
            "none",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    expected = DeployOptions(
        namespace="profiling",
        worker_replicas=8,
        logdir=ObjectStoreLogdir("s3://b/runs", "creds"),
        service_type="ClusterIP",
        autoscaling=Autoscaling(8, 16, 70),
        worker_resources=ResourceSpec(cpu_request="2", memory_request="4Gi"),
    )
    assert out.read_text(encoding="utf-8") == manifests.render_manifests(expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--worker-replicas", "0"], "worker_replicas must be an integer >= 1"),
        (["--node-port", "8080"], "node_port must be in 30000..32767"),
        (["--service-type", "ClusterIP", "--node-port", "30001"], "applies only to service_type NodePort"),
        (["--worker-http-port", "8891"], "worker_http_port and worker_grpc_port are both 8891"),
        (["-n", "My_Namespace"], "namespace must be a DNS-1123 label"),
        (["--hpa-max-replicas", "2", "--hpa-min-replicas", "5"], "min_replicas (5) is greater than"),
        (["--logdir-secret", "creds"], "--logdir-secret goes with --logdir-url"),
        (["--worker-requests", "gpu=1"], "--worker-requests takes cpu=QUANTITY"),
        (["--hpa-min-replicas", "2"], "need --hpa-max-replicas"),
    ],
)
def test_cli_rejects_invalid_options(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["render", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err and err.startswith("python -m xprof_core.deploy render: error:")


def test_cli_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"render", "apply", "delete"}
    for name, sub in subparsers.choices.items():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for action in sub._actions:
            assert action.help, f"{name}: {action.option_strings} has no help"
            for flag in action.option_strings:
                assert flag in text, f"{name} --help does not mention {flag}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "render" in capsys.readouterr().out


# --- options validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"worker_replicas": 0}, "worker_replicas must be an integer >= 1 (got 0)"),
        ({"worker_replicas": -2}, "worker_replicas must be an integer >= 1 (got -2)"),
        ({"worker_replicas": "4"}, "worker_replicas must be an integer >= 1 (got '4')"),
        ({"aggregator_http_port": 0}, "aggregator_http_port must be a port number in 1..65535 (got 0)"),
        ({"worker_grpc_port": 65536}, "worker_grpc_port must be a port number in 1..65535 (got 65536)"),
        ({"service_port": 100000}, "service_port must be a port number in 1..65535"),
        ({"aggregator_http_port": 50051}, "aggregator_http_port and aggregator_grpc_port are both 50051"),
        ({"worker_http_port": 8891}, "worker_http_port and worker_grpc_port are both 8891"),
        ({"namespace": "Profiling"}, "namespace must be a DNS-1123 label"),
        ({"namespace": "my_ns"}, "namespace must be a DNS-1123 label"),
        ({"namespace": "-ns"}, "namespace must be a DNS-1123 label"),
        ({"namespace": "n" * 64}, "namespace must be a DNS-1123 label"),
        ({"name_prefix": "1xprof"}, "name_prefix must be a DNS-1035 label"),
        ({"name_prefix": "x" * 50}, "name_prefix 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is too long"),
        ({"cluster_domain": "Cluster..local"}, "cluster_domain must be a DNS name"),
        ({"node_port": 29999}, "node_port must be in 30000..32767"),
        ({"node_port": 32768}, "node_port must be in 30000..32767"),
        ({"service_type": "ClusterIP", "node_port": 30001}, "node_port=30001 applies only to service_type NodePort"),
        ({"service_type": "Ingress"}, "service_type must be one of NodePort, ClusterIP, LoadBalancer"),
        ({"pull_policy": "Sometimes"}, "pull_policy must be one of Always, IfNotPresent, Never"),
        ({"image": ""}, "image must be a non-empty image reference"),
        ({"image": "xprof core"}, "image must be a non-empty image reference"),
        (
            {"autoscaling": Autoscaling(5, 2)},
            "autoscaling.min_replicas (5) is greater than autoscaling.max_replicas (2)",
        ),
        ({"autoscaling": Autoscaling(0, 2)}, "autoscaling.min_replicas must be an integer >= 1"),
        ({"autoscaling": Autoscaling(1, 2, 0)}, "autoscaling.cpu_utilization_percent must be an integer >= 1"),
        (
            {"autoscaling": Autoscaling(1, 4), "worker_resources": ResourceSpec(memory_request="1Gi")},
            "needs a worker CPU request",
        ),
        ({"worker_resources": ResourceSpec(cpu_request="lots")}, "worker_resources.cpu_request: 'lots' is not"),
        (
            {"aggregator_resources": ResourceSpec(memory_request="4Gi", memory_limit="2Gi")},
            "aggregator_resources: memory request 4Gi is above its limit 2Gi",
        ),
        ({"pdb_max_unavailable": 0}, "pdb_max_unavailable must be an integer >= 1"),
        ({"logdir": ObjectStoreLogdir("https://bucket/runs")}, "logdir url must look like gs://bucket/path"),
        ({"logdir": ObjectStoreLogdir("s3://bucket", secret="Bad_Secret")}, "logdir secret must be a Secret name"),
        ({"logdir": HostPathLogdir("profiles")}, "logdir host path must be an absolute path"),
        ({"logdir": PvcLogdir("Profiles!")}, "logdir claim_name must be a PersistentVolumeClaim name"),
        ({"logdir": "/logdir"}, "logdir must be a PvcLogdir, HostPathLogdir, ObjectStoreLogdir or None"),
    ],
)
def test_invalid_options_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^invalid deploy options: ") as info:
        DeployOptions(**kwargs)
    assert message in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        DeployOptions(worker_replicas=0, namespace="Bad", node_port=1)
    text = str(info.value)
    assert "worker_replicas" in text and "namespace" in text and "node_port" in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aggregator_http_port": 1, "worker_grpc_port": 65535},
        {"node_port": 30000},
        {"node_port": 32767},
        {"node_port": 0},
        {"worker_replicas": 1, "namespace": "a", "name_prefix": "x"},
        {"autoscaling": Autoscaling(3, 3)},
        {
            "aggregator_resources": ResourceSpec(
                cpu_request="500m", cpu_limit="0.5", memory_request="1Gi", memory_limit="1024Mi"
            )
        },
    ],
)
def test_valid_edge_options(kwargs: dict[str, Any]) -> None:
    DeployOptions(**kwargs)


def test_options_are_frozen() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        DeployOptions().worker_replicas = 2  # type: ignore[misc]


# --- schema validation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    """``kubernetes_validate``, or a skip when it is not installed."""
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")


def _shipped(kv: ModuleType, version: str) -> None:
    from kubernetes_validate.utils import all_versions

    if version not in all_versions():
        pytest.skip(f"kubernetes-validate {kv.version.__version__} has no schemas for {version}")


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_pass_strict_schemas(
    manifests: ModuleType, kubernetes_validate: ModuleType, variant: str, version: str
) -> None:
    _shipped(kubernetes_validate, version)
    for doc in manifests.manifest_dicts(VARIANTS[variant]):
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_strict_schemas_reject_broken_documents(
    manifests: ModuleType, kubernetes_validate: ModuleType, version: str
) -> None:
    _shipped(kubernetes_validate, version)
    worker = by_name(manifests.manifest_dicts())[("Deployment", "xprof-worker-deployment")]

    as_string = json.loads(json.dumps(worker))
    as_string["spec"]["replicas"] = "4"
    with pytest.raises(kubernetes_validate.ValidationError, match="'4' is not of type 'integer'"):
        kubernetes_validate.validate(as_string, version, strict=True)

    unknown = json.loads(json.dumps(worker))
    unknown["spec"]["template"]["spec"]["containers"][0]["argz"] = ["--port=1"]
    with pytest.raises(kubernetes_validate.ValidationError, match="argz"):
        kubernetes_validate.validate(unknown, version, strict=True)


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """The Dockerfile's stages: ``{"base", "name", "instructions": [(INSTRUCTION, arguments)]}``.

    Enough of the Dockerfile grammar for our file: comments, backslash continuations,
    ``FROM image [AS name]``.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            if not pending:
                continue
            if line.startswith("#"):  # a comment inside a continued RUN is dropped
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[dict[str, Any]] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM, with their defaults: FROM may use them
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = arguments.strip().partition("=")
            global_args[name] = default
        elif instruction == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", arguments.strip(), re.I)
            assert match, f"cannot parse FROM {arguments!r}"
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], match[1])
            stages.append({"base": base, "name": match[2], "instructions": []})
        elif instruction != "ARG" or stages:
            assert stages, f"{instruction} before the first FROM"
            stages[-1]["instructions"].append((instruction, arguments.strip()))
    return stages


def _last(stage: dict[str, Any], instruction: str) -> str | None:
    found = [args for ins, args in stage["instructions"] if ins == instruction]
    return found[-1] if found else None


def test_dockerfile_is_multi_stage() -> None:
    build, runtime = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    assert (build["base"], build["name"]) == ("python:3.11-slim", "build")
    assert runtime["base"].startswith("python:3.11-slim") and runtime["name"]
    build_runs = " ".join(args for ins, args in build["instructions"] if ins == "RUN")
    assert "build-essential" in build_runs and "cmake" in build_runs
    assert re.search(r"pip wheel\b.*\s\.$", build_runs), "the build stage must build the wheel with `pip wheel .`"
    copies = [args for ins, args in runtime["instructions"] if ins == "COPY"]
    assert any(args.startswith(f"--from={build['name']} /wheels") for args in copies), copies
    runtime_runs = " ".join(args for ins, args in runtime["instructions"] if ins == "RUN")
    assert "pip install" in runtime_runs and ".whl" in runtime_runs
    assert not any(ins == "RUN" and "apt-get install" in args for ins, args in runtime["instructions"])


def test_dockerfile_runs_as_the_manifests_non_root_user() -> None:
    *_, runtime = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    user = _last(runtime, "USER")
    assert user is not None, "the runtime stage must set USER"
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid (got {user!r})"
    assert int(uid) == RUN_AS_USER
    assert "useradd" in " ".join(a for i, a in runtime["instructions"] if i == "RUN") and "10001" in user


def test_dockerfile_entrypoint_matches_the_manifests(manifests: ModuleType) -> None:
    *_, runtime = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    raw = _last(runtime, "ENTRYPOINT")
    assert raw is not None and raw.startswith("["), "ENTRYPOINT must use the exec (JSON) form"
    assert tuple(json.loads(raw)) == entrypoint.ENTRYPOINT
    for doc in manifests.manifest_dicts():
        if doc["kind"] == "Deployment":
            command = container(doc)["command"]
            assert command[:-1] == json.loads(raw) and command[-1] in entrypoint.ROLE_MODULES
    exposed = {int(p) for p in (_last(runtime, "EXPOSE") or "").split()}
    assert {10000, 50051, 9999, 8891} <= exposed


# --- the container entrypoint --------------------------------------------------------------------


def test_entrypoint_dispatches_to_the_role(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "fake_role.py").write_text(
        "import sys\nimport fake_role_log\nfake_role_log.argv = list(sys.argv)\n", encoding="utf-8"
    )
    log = ModuleType("fake_role_log")
    monkeypatch.setitem(sys.modules, "fake_role_log", log)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(entrypoint, "ROLE_MODULES", {"worker": "fake_role"})
    monkeypatch.setattr(sys, "argv", ["entrypoint"])
    monkeypatch.setattr(entrypoint, "_exit_on_sigterm", lambda: None)
    assert entrypoint.main(["worker", "--port=9999", "-gp=8891", "--hide_capture_profile_button"]) == 0
    assert log.argv[1:] == ["--port=9999", "-gp=8891", "--hide_capture_profile_button"]


def test_entrypoint_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoint.main([]) == 2
    assert "the first argument must be a role" in capsys.readouterr().err
    assert entrypoint.main(["--port=10000"]) == 2
    assert "got '--port=10000'" in capsys.readouterr().err
    monkeypatch.setattr(entrypoint, "ROLE_MODULES", {"worker": "xprof_core.no_such_role"})
    assert entrypoint.main(["worker"]) == 1
    assert "no xprof_core.no_such_role module" in capsys.readouterr().err
    assert entrypoint.main(["--help"]) == 0
    assert "aggregator,worker" in capsys.readouterr().out


def test_entrypoint_makes_sigterm_end_pid_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """PID 1 ignores default-action signals: the entrypoint installs a SIGTERM handler unless one exists."""
    import signal

    installed: dict[int, Any] = {}
    monkeypatch.setattr(entrypoint.signal, "getsignal", lambda signum: signal.SIG_DFL)
    monkeypatch.setattr(entrypoint.signal, "signal", lambda signum, handler: installed.setdefault(signum, handler))
    entrypoint._exit_on_sigterm()
    with pytest.raises(SystemExit) as info:
        installed[signal.SIGTERM](signal.SIGTERM, None)
    assert info.value.code == 128 + signal.SIGTERM

    installed.clear()
    monkeypatch.setattr(entrypoint.signal, "getsignal", lambda signum: signal.SIG_IGN)
    entrypoint._exit_on_sigterm()
    assert installed == {}  # a handler the role (or the runtime) set is left alone


def test_deploy_package_imports_without_the_kubernetes_client() -> None:
    """The runtime image has no k8s extra: the entrypoint's imports must not need it."""
    import subprocess

    code = (
        "import sys; sys.modules['kubernetes'] = None; sys.modules['yaml'] = None\n"
        "import xprof_core.deploy.entrypoint, xprof_core.deploy\n"
        "print(xprof_core.deploy.DeployOptions().worker_replicas)\n"
    )
    import xprof_core

    src = str(Path(str(xprof_core.__file__)).parent.parent)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=src, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


def test_serving_limits_reach_the_servers_flags(manifests: ModuleType) -> None:
    from xprof_core.serve import aggregator, worker

    assert DeployOptions().aggregator_limit_flags() == [] and DeployOptions().worker_limit_flags() == []
    argv = [
        "render",
        "--show-capture-profile-button",
        "--capture-allow=10.0.0.0/8,192.168.1.7",
        "--capture-max-mb=64",
        "--max-hosts=256",
        "--max-connections=500",
        "--http-header-timeout=5",
        "--worker-keepalive=3",
        "--max-gunzip-ratio=50",
    ]
    opts = options_from_args(build_parser().parse_args(argv))
    docs = manifests.manifest_dicts(opts)
    by_name = {d["metadata"]["name"]: d for d in docs}
    agg_args = by_name["xprof-aggregator-deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    worker_args = by_name["xprof-worker-deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert agg_args[3:] == [
        "--capture_allow=10.0.0.0/8,192.168.1.7",
        "--capture_max_mb=64",
        "--max_hosts=256",
        "--max_connections=500",
        "--http_header_timeout=5",
        "--worker_keepalive=3",
        "--max_gunzip_ratio=50",
    ]
    assert worker_args == ["--port=9999", "-gp=8891", "--max_gunzip_ratio=50"]
    # The servers accept them, with these values.
    config = aggregator.config_from_args(aggregator.build_parser().parse_args(agg_args))
    assert config.max_hosts == 256 and config.capture.max_bytes == 64 << 20 and config.worker_keepalive_s == 3
    assert [str(n) for n in config.capture.allow] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert worker.config_from_args(worker.build_parser().parse_args(worker_args)).max_gunzip_ratio == 50
    for bad, message in (
        ({"capture_allow": ("10.0.0.0/8",)}, "apply only when the capture button is shown"),
        ({"hide_capture_profile_button": False, "capture_allow": ("nope",)}, "not an address or CIDR"),
        ({"max_hosts": 0}, "max_hosts must be an integer >= 1"),
        ({"max_gunzip_ratio": -1.0}, "max_gunzip_ratio must be a positive number"),
    ):
        with pytest.raises(ValueError, match=message):
            DeployOptions(**bad)  # type: ignore[arg-type]


# --- apply and delete against an in-memory cluster ---------------------------------------------


# Lists the API server merges item by item, by this key (strategic merge patch and server-side
# apply alike); every other list is replaced whole.
KEYED_LISTS = {
    "containers": "name",
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def merge_object(live: Any, owned: Any, new: Any, key: str | None = None) -> Any:
    """How the API server updates ``live`` with ``new``.

    A strategic merge patch (``owned`` None) changes the fields ``new`` names and keeps every
    other one, keyed list items included. A server-side apply (``owned``: what the same field
    manager applied last time) also removes what that manager applied before and no longer
    sends; fields nobody applied (set by others) stay.
    """
    if isinstance(live, dict) and isinstance(new, dict):
        out = {}
        for k, v in live.items():
            if k in new:
                out[k] = merge_object(v, (owned or {}).get(k) if isinstance(owned, dict) else None, new[k], k)
            elif not (isinstance(owned, dict) and k in owned):
                out[k] = v
        out.update({k: v for k, v in new.items() if k not in live})
        return out
    item_key = KEYED_LISTS.get(key or "")
    if isinstance(live, list) and isinstance(new, list) and item_key:

        def by_key(items: Any) -> dict[Any, Any]:
            return {i.get(item_key): i for i in items or [] if isinstance(i, dict)}

        live_items, owned_items, new_items = by_key(live), by_key(owned), by_key(new)
        out_list = [
            merge_object(v, owned_items.get(k), new_items[k]) if k in new_items else v
            for k, v in live_items.items()
            if k in new_items or k not in owned_items
        ]
        return out_list + [v for k, v in new_items.items() if k not in live_items]
    return new


class FakeCluster:
    """The four client APIs the deploy layer uses, over one in-memory store.

    Reads of a missing object and patches or deletes of one raise ``ApiException(404)``,
    a create of an existing one ``ApiException(409)``, as the API server does; a
    ``dry_run`` request changes nothing. A patch is a strategic merge patch, or a
    server-side apply when sent as ``application/apply-patch+yaml`` (it then creates a
    missing object, 201, and needs a field manager); see :func:`merge_object`. Every
    call is logged as (verb, kind, name).
    """

    API_CLASSES = ("CoreV1Api", "AppsV1Api", "PolicyV1Api", "AutoscalingV2Api")

    def __init__(self) -> None:
        from kubernetes.client import ApiClient

        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}  # last server-side apply, by object
        self.calls: list[tuple[str, str, str]] = []
        self._serializer = ApiClient()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import kubernetes.client

        for api_class in self.API_CLASSES:
            monkeypatch.setattr(kubernetes.client, api_class, self._api_class(api_class))

    def _api_class(self, api_class: str) -> type:
        cluster = self

        class FakeApi:
            def __init__(self, api_client: Any = None) -> None:
                self.api_client = api_client

            def __getattr__(self, attr: str) -> Any:
                verb, _, resource = attr.partition("_namespaced_")
                with_info = resource.endswith("_with_http_info")
                resource = resource.removesuffix("_with_http_info")
                if verb not in ("read", "create", "patch", "delete") or not resource:
                    raise AttributeError(f"{api_class} fake has no {attr}")
                call = functools.partial(getattr(cluster, verb), resource)
                if not with_info:
                    return lambda *a, **kw: call(*a, **kw)[0] if verb == "patch" else call(*a, **kw)
                return lambda *a, **kw: types.SimpleNamespace(data=(r := call(*a, **kw))[0], status_code=r[1])

        FakeApi.__name__ = api_class
        return FakeApi

    @staticmethod
    def _kind_key(kind: str) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()

    @staticmethod
    def _error(status: int, reason: str) -> Exception:
        from kubernetes.client.exceptions import ApiException

        exc = ApiException(status=status, reason=reason)
        exc.body = json.dumps({"message": reason})  # set afterwards: clients before v35 take no body=
        return exc

    def read(self, resource: str, name: str, namespace: str) -> dict[str, Any]:
        self.calls.append(("read", resource, name))
        try:
            return self.objects[(resource, namespace, name)]
        except KeyError:
            raise self._error(404, f"{resource} {name!r} not found") from None

    def create(self, resource: str, namespace: str, body: Any, **kwargs: Any) -> dict[str, Any]:
        assert self._kind_key(body.kind) == resource, f"{body.kind} sent to the {resource} endpoint"
        assert body.metadata.namespace == namespace
        name = body.metadata.name
        self.calls.append(("create", resource, name))
        if (resource, namespace, name) in self.objects:
            raise self._error(409, f"{resource} {name!r} already exists")
        stored = self._serializer.sanitize_for_serialization(body)
        if kwargs.get("dry_run") != "All":
            self.objects[(resource, namespace, name)] = stored
        return stored

    def patch(self, resource: str, name: str, namespace: str, body: Any, **kwargs: Any) -> tuple[dict[str, Any], int]:
        assert self._kind_key(body.kind) == resource and body.metadata.name == name
        apply = kwargs.get("_content_type") == "application/apply-patch+yaml"
        if apply:
            assert kwargs.get("field_manager") and kwargs.get("force") is True
        self.calls.append(("apply" if apply else "patch", resource, name))
        key = (resource, namespace, name)
        sent = self._serializer.sanitize_for_serialization(body)
        live = self.objects.get(key)
        if live is None and not apply:
            raise self._error(404, f"{resource} {name!r} not found")
        result = sent if live is None else merge_object(live, self.applied.get(key) if apply else None, sent)
        if kwargs.get("dry_run") != "All":
            self.objects[key] = result
            if apply:
                self.applied[key] = copy.deepcopy(sent)  # what this manager set, apart from the live object
        return result, 201 if live is None else 200

    def delete(self, resource: str, name: str, namespace: str, **kwargs: Any) -> None:
        self.calls.append(("delete", resource, name))
        if (resource, namespace, name) not in self.objects:
            raise self._error(404, f"{resource} {name!r} not found")
        if kwargs.get("dry_run") != "All":
            del self.objects[(resource, namespace, name)]
            self.applied.pop((resource, namespace, name), None)


@pytest.fixture
def fake_cluster(manifests: ModuleType, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster()
    cluster.install(monkeypatch)
    return cluster


def test_apply_creates_then_patches_then_delete_removes(manifests: ModuleType, fake_cluster: FakeCluster) -> None:
    from xprof_core.deploy import cluster

    opts = DeployOptions(namespace="profiling")
    expected = manifests.manifest_dicts(opts)
    first = cluster.apply(opts)
    assert [c.action for c in first] == ["created"] * len(expected)
    assert [str(c) for c in first][:2] == [
        "service/xprof-worker-service created",
        "deployment/xprof-worker-deployment created",
    ]
    assert sorted(fake_cluster.objects.values(), key=json.dumps) == sorted(expected, key=json.dumps)

    second = cluster.apply(opts)
    assert [c.action for c in second] == ["patched"] * len(expected)
    assert len(fake_cluster.objects) == len(expected)  # nothing duplicated
    assert not any(verb == "create" for verb, *_ in fake_cluster.calls[-2 * len(expected) :])

    removed = cluster.delete(opts)
    assert {c.action for c in removed if c.ref.kind != "HorizontalPodAutoscaler"} == {"deleted"}
    assert fake_cluster.objects == {}
    assert {c.action for c in cluster.delete(opts)} == {"absent"}  # deleting twice is not an error


def test_apply_removes_what_the_options_no_longer_set(manifests: ModuleType, fake_cluster: FakeCluster) -> None:
    """An env var, volume and mount dropped from the options leave the Deployment (server-side apply),
    where a strategic merge patch would keep them (lists merge by name); fields set by others stay."""
    from xprof_core.deploy import cluster

    with_key = DeployOptions(logdir=ObjectStoreLogdir("gs://bucket/logs", secret="gcs-key"))
    cluster.apply(with_key)
    key = ("deployment", "default", "xprof-worker-deployment")
    pod = fake_cluster.objects[key]["spec"]["template"]
    assert [e["name"] for e in pod["spec"]["containers"][0]["env"]] == ["GOOGLE_APPLICATION_CREDENTIALS"]
    # Someone else (kubectl rollout restart) annotates the pod template.
    pod["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = "2026-01-01T00:00:00Z"
    changes = cluster.apply(DeployOptions(logdir=ObjectStoreLogdir("gs://bucket/logs")))
    assert "deployment/xprof-worker-deployment patched" in [str(c) for c in changes]
    pod = fake_cluster.objects[key]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    plain = manifests.manifest_dicts(DeployOptions(logdir=ObjectStoreLogdir("gs://bucket/logs")))[1]
    plain_pod = plain["spec"]["template"]["spec"]
    assert "env" not in container, container["env"]
    assert container["volumeMounts"] == plain_pod["containers"][0]["volumeMounts"]  # the key's mount is gone
    assert pod["spec"]["volumes"] == plain_pod["volumes"]
    assert pod["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    assert container["args"] == plain_pod["containers"][0]["args"]
    assert {verb for verb, *_ in fake_cluster.calls} == {
        "read",
        "apply",
        "delete",
    }  # delete: the pruning of a switched-off HPA


def test_apply_prunes_a_switched_off_autoscaler(manifests: ModuleType, fake_cluster: FakeCluster) -> None:
    from xprof_core.deploy import cluster

    cluster.apply(FULL)
    hpa_key = ("horizontal_pod_autoscaler", "profiling", "xprof-worker-hpa")
    assert hpa_key in fake_cluster.objects
    without = DeployOptions(namespace="profiling", worker_replicas=6)
    changes = cluster.apply(without)
    assert "horizontalpodautoscaler/xprof-worker-hpa deleted" in [str(c) for c in changes]
    assert hpa_key not in fake_cluster.objects
    worker = fake_cluster.objects[("deployment", "profiling", "xprof-worker-deployment")]
    assert worker["spec"]["replicas"] == 6


def test_apply_dry_run_stores_nothing(manifests: ModuleType, fake_cluster: FakeCluster) -> None:
    from xprof_core.deploy import cluster

    changes = cluster.apply(DeployOptions(), dry_run=True)
    assert changes and {c.action for c in changes} == {"created"}
    assert fake_cluster.objects == {}


def test_create_race_falls_back_to_patch(
    manifests: ModuleType, fake_cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xprof_core.deploy import cluster

    real_read = fake_cluster.read

    def read_that_misses_then_someone_creates(resource: str, name: str, namespace: str) -> dict[str, Any]:
        try:
            return real_read(resource, name, namespace)
        except Exception:
            fake_cluster.objects[(resource, namespace, name)] = {"created": "by someone else"}
            raise

    monkeypatch.setattr(fake_cluster, "read", read_that_misses_then_someone_creates)
    changes = cluster.apply(DeployOptions())
    assert {c.action for c in changes} == {"patched"}
    assert not any(v == {"created": "by someone else"} for v in fake_cluster.objects.values())


def test_api_errors_become_clear_cluster_errors(
    manifests: ModuleType, fake_cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xprof_core.deploy import cluster

    def forbidden(resource: str, name: str, namespace: str) -> None:
        raise fake_cluster._error(403, f'services "{name}" is forbidden: User "dev" cannot get resource')

    monkeypatch.setattr(fake_cluster, "read", forbidden)
    with pytest.raises(
        cluster.ClusterError,
        match=r"cannot apply service/xprof-worker-service in namespace "
        r"default: 403 services .* is forbidden",
    ):
        cluster.apply(DeployOptions())


def test_cli_apply_and_delete(
    manifests: ModuleType,
    fake_cluster: FakeCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kubernetes.config

    contexts: list[str | None] = []

    def fake_client(config_file: str | None = None, context: str | None = None) -> None:
        contexts.append(context)

    monkeypatch.setattr(kubernetes.config, "new_client_from_config", fake_client)
    assert main(["apply", "--context", "minikube", "--worker-replicas", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "service/xprof-worker-service created" and len(out) == 5
    assert main(["apply", "--context", "minikube", "--worker-replicas", "2"]) == 0
    assert all(line.endswith(" patched") for line in capsys.readouterr().out.splitlines())
    worker = fake_cluster.objects[("deployment", "default", "xprof-worker-deployment")]
    assert worker["spec"]["replicas"] == 2
    assert main(["delete", "--context", "minikube"]) == 0
    assert fake_cluster.objects == {}
    assert contexts == ["minikube"] * 3

    def refused(resource: str, name: str, namespace: str) -> None:
        raise fake_cluster._error(401, "Unauthorized")

    monkeypatch.setattr(fake_cluster, "read", refused)
    assert main(["apply"]) == 1
    assert "error: cannot apply service/xprof-worker-service in namespace default: 401 Unauthorized" in (
        capsys.readouterr().err
    )


def test_cli_reports_a_missing_kubeconfig(
    manifests: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "--kubeconfig", str(tmp_path / "missing.yaml")]) == 1
    assert "error: no usable kubeconfig" in capsys.readouterr().err
