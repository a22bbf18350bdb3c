"""``python -m xprof_core.deploy``: render, apply or delete the Kubernetes deployment.

::

    python -m xprof_core.deploy render [OPTIONS] > xprof.yaml
    python -m xprof_core.deploy apply  [OPTIONS] [--context CTX] [--kubeconfig FILE] [--dry-run]
    python -m xprof_core.deploy delete [OPTIONS] [--context CTX] [--kubeconfig FILE] [--dry-run]

Exit status: 0 on success, 2 for invalid options, 1 when the cluster refuses or
cannot be reached (or the ``k8s`` extra is missing).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from xprof_core.deploy.options import (
    DEFAULT_IMAGE,
    NODE_PORT_RANGE,
    PULL_POLICIES,
    SEED_NODE_PORT,
    SERVICE_TYPES,
    Autoscaling,
    DeployOptions,
    HostPathLogdir,
    Logdir,
    ObjectStoreLogdir,
    PvcLogdir,
    ResourceSpec,
)

PROG = "python -m xprof_core.deploy"
_DEFAULTS = DeployOptions()

_EPILOG = """\
examples:
  python -m xprof_core.deploy render > xprof.yaml           # XProf's tutorial topology, our image
  python -m xprof_core.deploy render -n profiling --logdir-pvc profiles --service-type ClusterIP
  python -m xprof_core.deploy render --logdir-url s3://bucket/runs --logdir-secret s3-creds
  python -m xprof_core.deploy apply --context minikube --pull-policy Never
  python -m xprof_core.deploy delete -n profiling

The containers run `python -m xprof_core.deploy.entrypoint aggregator|worker FLAGS...`
(the image's ENTRYPOINT plus the role), which runs python -m xprof_core.aggregator or
python -m xprof_core.worker with XProf's flags unchanged.
"""


def _resource_arg(flag: str, text: str, *, kind: str) -> dict[str, str]:
    """``"cpu=500m,memory=1Gi"`` → ``{"cpu_request": "500m", ...}``; ``"none"`` → no entries."""
    if text.strip().lower() == "none":
        return {}
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in ("cpu", "memory") or not value:
            raise ValueError(
                f"{flag} takes cpu=QUANTITY and/or memory=QUANTITY separated by ',' or 'none' (got {text!r})"
            )
        fields[f"{key}_{kind}"] = value
    return fields


def _resources(args: argparse.Namespace, component: str, default: ResourceSpec) -> ResourceSpec:
    requests_text = getattr(args, f"{component}_requests")
    limits_text = getattr(args, f"{component}_limits")
    if requests_text is None:
        requests = {k: v for k, v in vars(default).items() if k.endswith("_request") and v is not None}
    else:
        requests = _resource_arg(f"--{component}-requests", requests_text, kind="request")
    if limits_text is None:
        limits = {k: v for k, v in vars(default).items() if k.endswith("_limit") and v is not None}
    else:
        limits = _resource_arg(f"--{component}-limits", limits_text, kind="limit")
    return ResourceSpec(**requests, **limits)


def _logdir(args: argparse.Namespace) -> Logdir | None:
    if args.logdir_secret is not None and args.logdir_url is None:
        raise ValueError("--logdir-secret goes with --logdir-url (a gs:// or s3:// logdir)")
    if args.logdir_pvc is not None:
        return PvcLogdir(args.logdir_pvc)
    if args.logdir_host_path is not None:
        return HostPathLogdir(args.logdir_host_path)
    if args.logdir_url is not None:
        return ObjectStoreLogdir(args.logdir_url, args.logdir_secret)
    return None


def _autoscaling(args: argparse.Namespace) -> Autoscaling | None:
    if args.hpa_max_replicas is None:
        if args.hpa_min_replicas is not None or args.hpa_cpu_percent is not None:
            raise ValueError(
                "--hpa-min-replicas and --hpa-cpu-percent need --hpa-max-replicas (which turns the autoscaler on)"
            )
        return None
    min_replicas = args.worker_replicas if args.hpa_min_replicas is None else args.hpa_min_replicas
    percent = 70 if args.hpa_cpu_percent is None else args.hpa_cpu_percent
    return Autoscaling(min_replicas, args.hpa_max_replicas, percent)


def options_from_args(args: argparse.Namespace) -> DeployOptions:
    """The ``DeployOptions`` the command line describes; raises ``ValueError`` when they are invalid."""
    return DeployOptions(
        image=args.image,
        pull_policy=args.pull_policy,
        namespace=args.namespace,
        name_prefix=args.name_prefix,
        cluster_domain=args.cluster_domain,
        worker_replicas=args.worker_replicas,
        aggregator_http_port=args.aggregator_http_port,
        aggregator_grpc_port=args.aggregator_grpc_port,
        worker_http_port=args.worker_http_port,
        worker_grpc_port=args.worker_grpc_port,
        service_type=args.service_type,
        service_port=args.service_port,
        node_port=args.node_port,
        worker_service_port=args.worker_service_port,
        hide_capture_profile_button=not args.show_capture_profile_button,
        aggregator_resources=_resources(args, "aggregator", _DEFAULTS.aggregator_resources),
        worker_resources=_resources(args, "worker", _DEFAULTS.worker_resources),
        logdir=_logdir(args),
        probes=not args.no_probes,
        pdb_max_unavailable=None if args.no_pdb else args.pdb_max_unavailable,
        autoscaling=_autoscaling(args),
        capture_allow=None if args.capture_allow is None else tuple(a for a in args.capture_allow.split(",") if a),
        capture_max_mb=args.capture_max_mb,
        max_hosts=args.max_hosts,
        max_connections=args.max_connections,
        http_header_timeout_s=args.http_header_timeout,
        worker_keepalive_s=args.worker_keepalive,
        max_gunzip_ratio=args.max_gunzip_ratio,
    )


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    g = parser.add_argument_group("image and placement")
    g.add_argument("--image", default=d.image, help=f"container image for both roles (default: {DEFAULT_IMAGE})")
    g.add_argument(
        "--pull-policy",
        default=d.pull_policy,
        choices=PULL_POLICIES,
        help="imagePullPolicy (default: %(default)s; use Never on minikube for an image built "
        "inside it, as XProf's tutorial does)",
    )
    g.add_argument(
        "-n",
        "--namespace",
        default=d.namespace,
        help="namespace of every object; the aggregator's worker address follows it (default: %(default)s)",
    )
    g.add_argument(
        "--name-prefix",
        default=d.name_prefix,
        help="first word of every object name and app label, e.g. <prefix>-worker-deployment (default: %(default)s)",
    )
    g.add_argument(
        "--cluster-domain",
        default=d.cluster_domain,
        help="the cluster's DNS domain, used in the worker address (default: %(default)s)",
    )

    g = parser.add_argument_group("roles and ports")
    g.add_argument(
        "--worker-replicas",
        type=int,
        metavar="N",
        default=d.worker_replicas,
        help="number of worker pods, >= 1 (default: %(default)s)",
    )
    g.add_argument(
        "--aggregator-http-port",
        type=int,
        metavar="PORT",
        default=d.aggregator_http_port,
        help="aggregator HTTP port, its --port flag and container port (default: %(default)s)",
    )
    g.add_argument(
        "--aggregator-grpc-port",
        type=int,
        metavar="PORT",
        default=d.aggregator_grpc_port,
        help="aggregator gRPC port, its -gp flag (default: %(default)s)",
    )
    g.add_argument(
        "--worker-http-port",
        type=int,
        metavar="PORT",
        default=d.worker_http_port,
        help="worker HTTP port, its --port flag (default: %(default)s)",
    )
    g.add_argument(
        "--worker-grpc-port",
        type=int,
        metavar="PORT",
        default=d.worker_grpc_port,
        help="worker gRPC port: its -gp flag, container port, probe port and the port in the "
        "aggregator's worker address (default: %(default)s)",
    )
    g.add_argument(
        "--show-capture-profile-button",
        action="store_true",
        help="do not pass --hide_capture_profile_button, so the UI shows its capture button "
        "(default: hidden, as in XProf's tutorial)",
    )

    g = parser.add_argument_group("services")
    g.add_argument(
        "--service-type",
        default=d.service_type,
        choices=SERVICE_TYPES,
        help="type of the aggregator's Service (default: %(default)s)",
    )
    g.add_argument(
        "--service-port",
        type=int,
        metavar="PORT",
        default=d.service_port,
        help="port of the aggregator's Service (default: %(default)s)",
    )
    g.add_argument(
        "--node-port",
        type=int,
        metavar="PORT",
        default=None,
        help=f"nodePort of a NodePort Service, {NODE_PORT_RANGE[0]}..{NODE_PORT_RANGE[1]}, or 0 to "
        f"let Kubernetes pick (default: {SEED_NODE_PORT}; only with --service-type NodePort)",
    )
    g.add_argument(
        "--worker-service-port",
        type=int,
        metavar="PORT",
        default=d.worker_service_port,
        help="port of the workers' headless Service (default: %(default)s)",
    )

    g = parser.add_argument_group(
        "resources", "QUANTITIES is cpu=Q,memory=Q (either or both), or 'none'; a flag replaces that default"
    )
    for component, spec in (("aggregator", d.aggregator_resources), ("worker", d.worker_resources)):
        shown_requests = ",".join(f"{k}={v}" for k, v in spec.requests.items()) or "none"
        shown_limits = ",".join(f"{k}={v}" for k, v in spec.limits.items()) or "none"
        g.add_argument(
            f"--{component}-requests",
            metavar="QUANTITIES",
            help=f"{component} resource requests (default: {shown_requests})",
        )
        g.add_argument(
            f"--{component}-limits", metavar="QUANTITIES", help=f"{component} resource limits (default: {shown_limits})"
        )

    g = parser.add_argument_group("logdir", "where the profiles are, read-only, passed to both roles as --logdir")
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--logdir-pvc", metavar="CLAIM", help="an existing PersistentVolumeClaim, mounted read-only at /logdir"
    )
    source.add_argument(
        "--logdir-host-path",
        metavar="PATH",
        help="a directory on the node (minikube mount), mounted read-only at /logdir",
    )
    source.add_argument("--logdir-url", metavar="URL", help="a gs://bucket/path or s3://bucket/path URL")
    g.add_argument(
        "--logdir-secret",
        metavar="SECRET",
        help="Secret with the bucket credentials: for s3:// its keys become env vars "
        "(AWS_ACCESS_KEY_ID, ...); for gs:// its key.json is mounted and "
        "GOOGLE_APPLICATION_CREDENTIALS points at it (default: the pod's ambient identity)",
    )

    g = parser.add_argument_group("availability")
    g.add_argument(
        "--no-probes",
        action="store_true",
        help="leave out readiness and liveness probes (HTTP /readyz, /healthz on the aggregator; "
        "gRPC health on workers)",
    )
    g.add_argument(
        "--pdb-max-unavailable",
        type=int,
        metavar="N",
        default=d.pdb_max_unavailable,
        help="workers a drain may evict at once, >= 1 (default: %(default)s)",
    )
    g.add_argument("--no-pdb", action="store_true", help="no PodDisruptionBudget for the workers")
    g.add_argument(
        "--hpa-max-replicas",
        type=int,
        metavar="N",
        help="turn on a HorizontalPodAutoscaler for the workers with at most N pods",
    )
    g.add_argument(
        "--hpa-min-replicas", type=int, metavar="N", help="the autoscaler's minimum (default: --worker-replicas)"
    )
    g.add_argument(
        "--hpa-cpu-percent",
        type=int,
        metavar="P",
        help="target average CPU utilisation, percent of the CPU request (default: 70)",
    )

    g = parser.add_argument_group(
        "serving limits", "passed to the servers as their flags of the same names (default: the servers' defaults)"
    )
    g.add_argument(
        "--capture-allow",
        metavar="CIDRS",
        help="addresses and CIDR networks the aggregator may capture from, comma-separated "
        "(with --show-capture-profile-button; the aggregator's default: its own pod)",
    )
    g.add_argument(
        "--capture-max-mb", type=int, metavar="N", help="largest profile one capture may receive from a service"
    )
    g.add_argument("--max-hosts", type=int, metavar="N", help="hosts one request may select")
    g.add_argument("--max-connections", type=int, metavar="N", help="open HTTP connections to the aggregator")
    g.add_argument(
        "--http-header-timeout", type=float, metavar="S", help="seconds a connection has to send a request's headers"
    )
    g.add_argument(
        "--worker-keepalive",
        type=float,
        metavar="S",
        help="seconds between the aggregator's pings to each worker; a worker silent that long again "
        "leaves the rotation",
    )
    g.add_argument(
        "--max-gunzip-ratio",
        type=float,
        metavar="R",
        help="a .gz host file may inflate to R times its size (both roles)",
    )


def _add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("cluster")
    g.add_argument("--context", help="kubeconfig context to use (default: the current context)")
    g.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="send every request with dryRun=All: the server validates, nothing is stored",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m xprof_core.deploy`` (``render``, ``apply``, ``delete``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Kubernetes manifests for xprof-core: one aggregator and N gRPC workers behind a "
        "headless Service (the topology of XProf's Kubernetes tutorial). Without options the "
        "names, labels, ports, flags and env are the tutorial's; the image is ours.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{render,apply,delete}")
    render = commands.add_parser(
        "render",
        help="print the manifests as YAML",
        description="Print the manifests as multi-document YAML for kubectl apply -f.",
    )
    _add_option_flags(render)
    render.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    apply = commands.add_parser(
        "apply",
        help="create or update the objects in the cluster (server-side apply)",
        description="Server-side apply each object under the field manager xprof-core (idempotent), in the "
        "kubeconfig's current context: what earlier options set and these do not is removed; also removes "
        "a PodDisruptionBudget or autoscaler switched off since.",
    )
    _add_option_flags(apply)
    _add_cluster_flags(apply)
    delete = commands.add_parser(
        "delete",
        help="delete the objects from the cluster",
        description="Delete every object these options describe; missing ones are reported as absent.",
    )
    _add_option_flags(delete)
    _add_cluster_flags(delete)
    return parser


def _api_client(args: argparse.Namespace) -> Any:
    """A client for the chosen kubeconfig context, or the in-cluster service account when there is none."""
    import kubernetes.config

    try:
        return kubernetes.config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except kubernetes.config.ConfigException:
        if args.kubeconfig is not None or args.context is not None:
            raise
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException as exc:
        raise kubernetes.config.ConfigException(
            "no kubeconfig found ($KUBECONFIG or ~/.kube/config) and not running inside a cluster "
            f"({exc}); pass --kubeconfig FILE or --context NAME"
        ) from exc
    return None  # the client classes then use the default configuration just loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        import urllib3.exceptions
        from kubernetes.config import ConfigException

        from xprof_core.deploy import cluster, manifests
    except ImportError as exc:
        print(
            f"{PROG}: error: the deploy commands need the kubernetes client ({exc}); "
            "install it with: pip install 'xprof-core[k8s]'",
            file=sys.stderr,
        )
        return 1

    if args.command == "render":
        text = manifests.render_manifests(options)
        if args.output is None:
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        return 0

    try:
        api_client = _api_client(args)
        run = cluster.apply if args.command == "apply" else cluster.delete
        for change in run(options, api_client, dry_run=args.dry_run):
            print(f"{change}{' (dry run)' if args.dry_run else ''}")
    except ConfigException as exc:
        print(f"{PROG} {args.command}: error: no usable kubeconfig: {exc}", file=sys.stderr)
        return 1
    except cluster.ClusterError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except urllib3.exceptions.HTTPError as exc:
        print(f"{PROG} {args.command}: error: cannot reach the Kubernetes API server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
