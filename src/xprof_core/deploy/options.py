"""What a deployment looks like: one frozen, validated options object.

``DeployOptions()`` with no arguments describes the topology of XProf's own
Kubernetes tutorial (one aggregator behind a NodePort Service on 30001, four
workers behind a headless Service, the same names, labels, ports and flags),
running our image instead of XProf's. Every field is checked in
``__post_init__``, so an invalid combination raises ``ValueError`` (listing
every problem at once) before any manifest is built.

This module needs only the standard library: the container entrypoint imports
the ``deploy`` package, and the runtime image does not carry the ``k8s`` extra.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final, TypeAlias

from xprof_core._version import __version__

DEFAULT_IMAGE: Final = f"xprof-core:{__version__}"
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
SERVICE_TYPES: Final = ("NodePort", "ClusterIP", "LoadBalancer")
NODE_PORT_RANGE: Final = (30000, 32767)
SEED_NODE_PORT: Final = 30001  # the nodePort of XProf's tutorial, used when NodePort is picked without one

# The image's non-root user (deploy/Dockerfile creates it with this uid and gid).
RUN_AS_USER: Final = 10001

# Where a PVC or hostPath logdir is mounted (read-only) in both containers.
LOGDIR_MOUNT_PATH: Final = "/logdir"
# Where a gs:// credentials Secret is mounted, and the key that holds the service-account JSON.
GCS_CREDENTIALS_DIR: Final = "/var/run/secrets/xprof-logdir"
GCS_CREDENTIALS_KEY: Final = "key.json"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OBJECT_STORE_URL = re.compile(r"^(gs|s3)://[^/\s]+(/\S*)?$")
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_SCALE: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity (``"250m"`` → 0.25, ``"2Gi"`` → 2147483648).

    Only the plain-number and suffix forms are accepted (no exponents, no sign),
    which is every form a resource request is written in by hand.
    Raises ``ValueError`` for anything else.
    """
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as '500m', '2', '512Mi' or '4Gi'")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits decimals
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc
    return number * _QUANTITY_SCALE[match["suffix"] or ""]


@dataclass(frozen=True)
class ResourceSpec:
    """CPU and memory requests and limits of one container, as Kubernetes quantities.

    ``None`` leaves that entry out. CPU limits are off by default on purpose:
    they throttle a decode burst without protecting anything a request does not.
    """

    cpu_request: str | None = None
    memory_request: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None

    @property
    def requests(self) -> dict[str, str]:
        """``{"cpu": ..., "memory": ...}`` with the unset entries left out."""
        return {k: v for k, v in (("cpu", self.cpu_request), ("memory", self.memory_request)) if v is not None}

    @property
    def limits(self) -> dict[str, str]:
        """``{"cpu": ..., "memory": ...}`` with the unset entries left out."""
        return {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v is not None}

    def problems(self, owner: str) -> list[str]:
        """What is wrong with these quantities (empty when valid); ``owner`` prefixes each message."""
        found = []
        values: dict[str, Decimal] = {}
        for name in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                values[name] = parse_quantity(text)
            except ValueError as exc:
                found.append(f"{owner}.{name}: {exc}")
        for resource in ("cpu", "memory"):
            request, limit = values.get(f"{resource}_request"), values.get(f"{resource}_limit")
            if request is not None and limit is not None and request > limit:
                found.append(
                    f"{owner}: {resource} request {getattr(self, f'{resource}_request')} is above "
                    f"its limit {getattr(self, f'{resource}_limit')}"
                )
        return found


@dataclass(frozen=True)
class PvcLogdir:
    """Profiles on an existing PersistentVolumeClaim, mounted read-only at ``/logdir``.

    The claim must allow ``ReadOnlyMany`` (or ``ReadWriteMany``) when workers land
    on more than one node.
    """

    claim_name: str


@dataclass(frozen=True)
class HostPathLogdir:
    """Profiles in a directory of the node (minikube: ``minikube mount``), mounted read-only.

    fsGroup does not apply to hostPath volumes: the files must be readable by uid 10001.
    """

    path: str


@dataclass(frozen=True)
class ObjectStoreLogdir:
    """Profiles in a bucket, read through fsspec: ``gs://bucket/path`` or ``s3://bucket/path``.

    ``secret`` names a Secret with the credentials; without one, the pods use the
    ambient identity (GKE Workload Identity, EKS IRSA).

    * ``s3://``: the Secret's keys become environment variables (``envFrom``), so it
      holds ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and optionally
      ``AWS_ENDPOINT_URL`` / ``AWS_DEFAULT_REGION``.
    * ``gs://``: Google's client libraries read a key *file*, so the Secret is mounted
      read-only and ``GOOGLE_APPLICATION_CREDENTIALS`` points at its ``key.json``
      (``kubectl create secret generic NAME --from-file=key.json=sa.json``).
    """

    url: str
    secret: str | None = None

    @property
    def scheme(self) -> str:
        """``"gs"`` or ``"s3"``."""
        return self.url.split("://", 1)[0]


Logdir: TypeAlias = PvcLogdir | HostPathLogdir | ObjectStoreLogdir


@dataclass(frozen=True)
class Autoscaling:
    """A HorizontalPodAutoscaler (autoscaling/v2) for the workers on average CPU utilisation.

    While it is on, the worker Deployment leaves ``replicas`` out so that applying
    the manifests again does not undo the autoscaler's decisions.
    """

    min_replicas: int
    max_replicas: int
    cpu_utilization_percent: int = 70


def _default_aggregator_resources() -> ResourceSpec:
    return ResourceSpec(cpu_request="250m", memory_request="512Mi", memory_limit="2Gi")


def _default_worker_resources() -> ResourceSpec:
    return ResourceSpec(cpu_request="1", memory_request="2Gi", memory_limit="8Gi")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DeployOptions:
    """Everything that varies between deployments; the defaults reproduce XProf's tutorial.

    Ports are container ports unless named ``service_port``; ``node_port`` applies
    only to a NodePort Service (``None``: 30001, as in the tutorial; ``0``: let
    Kubernetes pick one). ``name_prefix`` ("xprof") starts every object name and
    ``app`` label, so two installations can share a namespace.
    """

    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    namespace: str = "default"
    name_prefix: str = "xprof"
    cluster_domain: str = "cluster.local"
    worker_replicas: int = 4
    aggregator_http_port: int = 10000
    aggregator_grpc_port: int = 50051
    worker_http_port: int = 9999
    worker_grpc_port: int = 8891
    service_type: str = "NodePort"
    service_port: int = 80
    node_port: int | None = None
    worker_service_port: int = 80
    hide_capture_profile_button: bool = True
    aggregator_resources: ResourceSpec = field(default_factory=_default_aggregator_resources)
    worker_resources: ResourceSpec = field(default_factory=_default_worker_resources)
    logdir: Logdir | None = None
    probes: bool = True
    pdb_max_unavailable: int | None = 1
    autoscaling: Autoscaling | None = None
    # Serving limits, passed as the servers' flags of the same names; None leaves a flag out (its default).
    capture_allow: tuple[str, ...] | None = None  # aggregator --capture_allow (needs the capture button shown)
    capture_max_mb: int | None = None  # aggregator --capture_max_mb
    max_hosts: int | None = None  # aggregator --max_hosts
    max_connections: int | None = None  # aggregator --max_connections
    http_header_timeout_s: float | None = None  # aggregator --http_header_timeout
    worker_keepalive_s: float | None = None  # aggregator --worker_keepalive
    max_gunzip_ratio: float | None = None  # aggregator and workers --max_gunzip_ratio

    def aggregator_limit_flags(self) -> list[str]:
        """The aggregator's flags for the serving limits that are set."""
        flags = []
        if self.capture_allow is not None:
            flags.append(f"--capture_allow={','.join(self.capture_allow)}")
        for flag, value in (
            ("--capture_max_mb", self.capture_max_mb),
            ("--max_hosts", self.max_hosts),
            ("--max_connections", self.max_connections),
            ("--http_header_timeout", self.http_header_timeout_s),
            ("--worker_keepalive", self.worker_keepalive_s),
            ("--max_gunzip_ratio", self.max_gunzip_ratio),
        ):
            if value is not None:
                flags.append(f"{flag}={value:g}" if isinstance(value, float) else f"{flag}={value}")
        return flags

    def worker_limit_flags(self) -> list[str]:
        """The workers' flags for the serving limits that are set."""
        return [] if self.max_gunzip_ratio is None else [f"--max_gunzip_ratio={self.max_gunzip_ratio:g}"]

    def __post_init__(self) -> None:
        found = self.problems()
        if found:
            raise ValueError("invalid deploy options: " + "; ".join(found))

    # --- names -----------------------------------------------------------------------------------
    # Object names, as in XProf's tutorial with "xprof" replaced by name_prefix.

    @property
    def aggregator_app(self) -> str:
        """The aggregator's ``app`` label value (its Deployment and Service selector)."""
        return f"{self.name_prefix}-aggregator-app"

    @property
    def worker_app(self) -> str:
        """The workers' ``app`` label value (their Deployment, Service and PDB selector)."""
        return f"{self.name_prefix}-worker-app"

    @property
    def aggregator_deployment(self) -> str:
        """The aggregator Deployment (``xprof-aggregator-deployment``)."""
        return f"{self.name_prefix}-aggregator-deployment"

    @property
    def aggregator_service(self) -> str:
        """The aggregator's Service (``xprof-agg-service``)."""
        return f"{self.name_prefix}-agg-service"

    @property
    def worker_deployment(self) -> str:
        """The worker Deployment (``xprof-worker-deployment``)."""
        return f"{self.name_prefix}-worker-deployment"

    @property
    def worker_service(self) -> str:
        """The workers' headless Service (``xprof-worker-service``)."""
        return f"{self.name_prefix}-worker-service"

    @property
    def worker_pdb(self) -> str:
        """The workers' PodDisruptionBudget (``xprof-worker-pdb``)."""
        return f"{self.name_prefix}-worker-pdb"

    @property
    def worker_hpa(self) -> str:
        """The workers' HorizontalPodAutoscaler (``xprof-worker-hpa``)."""
        return f"{self.name_prefix}-worker-hpa"

    @property
    def worker_service_address(self) -> str:
        """The gRPC target the aggregator dials: every ready worker pod, via the headless Service's DNS.

        The port is the workers' container gRPC port, not the Service port: a headless
        Service resolves to pod IPs, so no Service port mapping happens.
        """
        host = f"{self.worker_service}.{self.namespace}.svc.{self.cluster_domain}"
        return f"dns:///{host}:{self.worker_grpc_port}"

    @property
    def effective_node_port(self) -> int | None:
        """The nodePort to write, or ``None`` to leave it to Kubernetes (or when not a NodePort)."""
        if self.service_type != "NodePort":
            return None
        if self.node_port is None:
            return SEED_NODE_PORT
        return self.node_port or None

    # --- validation ------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every reason these options cannot render (empty when they can)."""
        found: list[str] = []
        if not isinstance(self.image, str) or not self.image or any(c.isspace() for c in self.image):
            found.append(f"image must be a non-empty image reference without spaces (got {self.image!r})")
        if self.pull_policy not in PULL_POLICIES:
            found.append(f"pull_policy must be one of {', '.join(PULL_POLICIES)} (got {self.pull_policy!r})")
        found += _dns_label_problems("namespace", self.namespace)
        prefix_problems = _dns_label_problems("name_prefix", self.name_prefix, start_with_letter=True)
        found += prefix_problems
        if not prefix_problems:
            # Service names are DNS-1035 labels (hence the leading letter), and every name
            # derived from the prefix must still fit in 63 characters.
            for name in (
                self.aggregator_deployment,
                self.aggregator_service,
                self.worker_deployment,
                self.worker_service,
                self.worker_pdb,
                self.worker_hpa,
            ):
                if len(name) > 63:
                    found.append(
                        f"name_prefix {self.name_prefix!r} is too long: {name!r} has {len(name)} characters "
                        "and a Kubernetes name has at most 63"
                    )
                    break
        if not isinstance(self.cluster_domain, str) or not _DNS1123_SUBDOMAIN.match(self.cluster_domain):
            found.append(f"cluster_domain must be a DNS name such as 'cluster.local' (got {self.cluster_domain!r})")

        if not _is_int(self.worker_replicas) or self.worker_replicas < 1:
            found.append(f"worker_replicas must be an integer >= 1 (got {self.worker_replicas!r})")
        for name in (
            "aggregator_http_port",
            "aggregator_grpc_port",
            "worker_http_port",
            "worker_grpc_port",
            "service_port",
            "worker_service_port",
        ):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= 65535:
                found.append(f"{name} must be a port number in 1..65535 (got {value!r})")
        if self.aggregator_http_port == self.aggregator_grpc_port:
            found.append(
                f"aggregator_http_port and aggregator_grpc_port are both {self.aggregator_http_port}: "
                "the aggregator's HTTP and gRPC servers need different ports"
            )
        if self.worker_http_port == self.worker_grpc_port:
            found.append(
                f"worker_http_port and worker_grpc_port are both {self.worker_http_port}: "
                "a worker's HTTP and gRPC servers need different ports"
            )

        if self.service_type not in SERVICE_TYPES:
            found.append(f"service_type must be one of {', '.join(SERVICE_TYPES)} (got {self.service_type!r})")
        if self.node_port is not None:
            low, high = NODE_PORT_RANGE
            if self.service_type != "NodePort":
                found.append(
                    f"node_port={self.node_port!r} applies only to service_type NodePort "
                    f"(service_type is {self.service_type!r})"
                )
            elif not _is_int(self.node_port) or not (self.node_port == 0 or low <= self.node_port <= high):
                found.append(
                    f"node_port must be in {low}..{high}, the default NodePort range, or 0 to let "
                    f"Kubernetes pick (got {self.node_port!r})"
                )
        if not isinstance(self.hide_capture_profile_button, bool):
            found.append("hide_capture_profile_button must be a bool")
        if not isinstance(self.probes, bool):
            found.append("probes must be a bool")

        for owner in ("aggregator_resources", "worker_resources"):
            spec = getattr(self, owner)
            if not isinstance(spec, ResourceSpec):
                found.append(f"{owner} must be a ResourceSpec (got {type(spec).__name__})")
            else:
                found += spec.problems(owner)

        found += _logdir_problems(self.logdir)

        if self.pdb_max_unavailable is not None and (
            not _is_int(self.pdb_max_unavailable) or self.pdb_max_unavailable < 1
        ):
            found.append(
                "pdb_max_unavailable must be an integer >= 1, or None for no PodDisruptionBudget "
                f"(got {self.pdb_max_unavailable!r}; 0 would block every node drain)"
            )
        found += self._autoscaling_problems()
        found += self._limit_problems()
        return found

    def _limit_problems(self) -> list[str]:
        found = []
        if self.capture_allow is not None:
            if not isinstance(self.capture_allow, tuple) or not all(isinstance(a, str) for a in self.capture_allow):
                found.append(
                    f"capture_allow must be a tuple of addresses or CIDR networks (got {self.capture_allow!r})"
                )
            else:
                for item in self.capture_allow:
                    try:
                        ipaddress.ip_network(item.strip("[]"), strict=False)
                    except ValueError:
                        found.append(f"capture_allow: {item!r} is not an address or CIDR network")
        if self.hide_capture_profile_button and (self.capture_allow is not None or self.capture_max_mb is not None):
            found.append(
                "capture_allow and capture_max_mb apply only when the capture button is shown "
                "(hide_capture_profile_button=False): a hidden button refuses every capture"
            )
        for name in ("capture_max_mb", "max_hosts", "max_connections"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                found.append(f"{name} must be an integer >= 1 (got {value!r})")
        for name in ("http_header_timeout_s", "worker_keepalive_s", "max_gunzip_ratio"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0):
                found.append(f"{name} must be a positive number (got {value!r})")
        return found

    def _autoscaling_problems(self) -> list[str]:
        hpa = self.autoscaling
        if hpa is None:
            return []
        if not isinstance(hpa, Autoscaling):
            return [f"autoscaling must be an Autoscaling or None (got {type(hpa).__name__})"]
        found = []
        if not _is_int(hpa.min_replicas) or hpa.min_replicas < 1:
            found.append(f"autoscaling.min_replicas must be an integer >= 1 (got {hpa.min_replicas!r})")
        if not _is_int(hpa.max_replicas) or hpa.max_replicas < 1:
            found.append(f"autoscaling.max_replicas must be an integer >= 1 (got {hpa.max_replicas!r})")
        elif _is_int(hpa.min_replicas) and hpa.min_replicas > hpa.max_replicas:
            found.append(
                f"autoscaling.min_replicas ({hpa.min_replicas}) is greater than "
                f"autoscaling.max_replicas ({hpa.max_replicas})"
            )
        if not _is_int(hpa.cpu_utilization_percent) or hpa.cpu_utilization_percent < 1:
            found.append(
                f"autoscaling.cpu_utilization_percent must be an integer >= 1 (got {hpa.cpu_utilization_percent!r})"
            )
        if isinstance(self.worker_resources, ResourceSpec) and self.worker_resources.cpu_request is None:
            found.append(
                "autoscaling on CPU utilisation needs a worker CPU request (worker_resources.cpu_request), "
                "since utilisation is measured against it"
            )
        return found


def _dns_label_problems(what: str, value: object, *, start_with_letter: bool = False) -> list[str]:
    """Why ``value`` is not a DNS label (RFC 1123, or RFC 1035 with ``start_with_letter``)."""
    pattern = _DNS1035_LABEL if start_with_letter else _DNS1123_LABEL
    if isinstance(value, str) and len(value) <= 63 and pattern.match(value):
        return []
    first = "a lowercase letter" if start_with_letter else "a lowercase letter or digit"
    return [
        f"{what} must be a DNS-{1035 if start_with_letter else 1123} label: at most 63 lowercase letters, "
        f"digits and '-', starting with {first} and ending with a letter or digit (got {value!r})"
    ]


def _logdir_problems(logdir: object) -> list[str]:
    if logdir is None:
        return []
    if isinstance(logdir, PvcLogdir):
        if (
            not isinstance(logdir.claim_name, str)
            or not _DNS1123_SUBDOMAIN.match(logdir.claim_name)
            or len(logdir.claim_name) > 253
        ):
            return [f"logdir claim_name must be a PersistentVolumeClaim name (got {logdir.claim_name!r})"]
        return []
    if isinstance(logdir, HostPathLogdir):
        if not isinstance(logdir.path, str) or not logdir.path.startswith("/"):
            return [f"logdir host path must be an absolute path on the node (got {logdir.path!r})"]
        return []
    if isinstance(logdir, ObjectStoreLogdir):
        found = []
        if not isinstance(logdir.url, str) or not _OBJECT_STORE_URL.match(logdir.url):
            found.append(f"logdir url must look like gs://bucket/path or s3://bucket/path (got {logdir.url!r})")
        if logdir.secret is not None and (
            not isinstance(logdir.secret, str) or not _DNS1123_SUBDOMAIN.match(logdir.secret)
        ):
            found.append(f"logdir secret must be a Secret name (got {logdir.secret!r})")
        return found
    return [f"logdir must be a PvcLogdir, HostPathLogdir, ObjectStoreLogdir or None (got {type(logdir).__name__})"]
