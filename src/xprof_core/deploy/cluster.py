"""Apply the manifests to a cluster, or delete them, through the ``kubernetes`` client.

``apply`` is idempotent: each object is read first; a missing one (404) is
created, an existing one is patched (a strategic merge patch, like
``kubectl apply`` without its last-applied annotation). A create that loses a race
to another writer (409) falls back to the patch. ``delete`` removes every object
the options describe and ignores the ones already gone.

Objects that the options switch off (the PodDisruptionBudget, the autoscaler) are
removed by ``apply`` when a previous apply created them: a stale autoscaler would
keep resizing the workers against the manifest.

The API classes are looked up on ``kubernetes.client`` at call time, so tests can
swap them for in-memory fakes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from xprof_core.deploy.manifests import Manifest, build_manifests
from xprof_core.deploy.options import DeployOptions

FIELD_MANAGER: Final = "xprof-core"


@dataclass(frozen=True)
class ResourceApi:
    """Which client class and method suffix serve one (apiVersion, kind)."""

    api_class: str  # an attribute of kubernetes.client, e.g. "AppsV1Api"
    suffix: str  # read_<suffix>, create_<suffix>, patch_<suffix>, delete_<suffix>


RESOURCE_APIS: Final[dict[tuple[str, str], ResourceApi]] = {
    ("v1", "Service"): ResourceApi("CoreV1Api", "namespaced_service"),
    ("apps/v1", "Deployment"): ResourceApi("AppsV1Api", "namespaced_deployment"),
    ("policy/v1", "PodDisruptionBudget"): ResourceApi("PolicyV1Api", "namespaced_pod_disruption_budget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ResourceApi(
        "AutoscalingV2Api", "namespaced_horizontal_pod_autoscaler"
    ),
}


@dataclass(frozen=True)
class ObjectRef:
    """The identity of one object in the cluster."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class Change:
    """What ``apply`` or ``delete`` did to one object: created, patched, deleted or absent."""

    ref: ObjectRef
    action: str

    def __str__(self) -> str:
        return f"{self.ref} {self.action}"  # kubectl's style: "deployment/x created"


class ClusterError(RuntimeError):
    """The API server refused an operation; the message names the object and the server's reason."""


def ref_of(obj: Manifest) -> ObjectRef:
    """The identity of a built object."""
    meta = obj.metadata
    assert meta is not None and meta.name is not None and meta.namespace is not None
    assert obj.api_version is not None and obj.kind is not None
    return ObjectRef(obj.api_version, obj.kind, meta.namespace, meta.name)


def switched_off_refs(options: DeployOptions) -> list[ObjectRef]:
    """Optional objects these options do not render (their names, in case an earlier apply made them)."""
    refs = []
    if options.pdb_max_unavailable is None:
        refs.append(ObjectRef("policy/v1", "PodDisruptionBudget", options.namespace, options.worker_pdb))
    if options.autoscaling is None:
        refs.append(ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", options.namespace, options.worker_hpa))
    return refs


def _api(ref: ObjectRef, api_client: Any) -> tuple[Any, str]:
    spec = RESOURCE_APIS.get((ref.api_version, ref.kind))
    if spec is None:
        raise ClusterError(f"{ref}: no client API for {ref.api_version} {ref.kind}")
    return getattr(k8s, spec.api_class)(api_client), spec.suffix


def _reason(exc: ApiException) -> str:
    """The API server's own message when the body carries one, else the HTTP status and reason."""
    try:
        message = json.loads(exc.body or "")["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason or ""
    return f"{exc.status} {message}".strip()


def apply_objects(objects: Iterable[Manifest], api_client: Any = None, *, dry_run: bool = False) -> list[Change]:
    """Create each object that does not exist and patch each one that does, in order.

    ``dry_run`` asks the server to validate and admit each request without storing
    it. Raises ``ClusterError`` on any other API error.
    """
    extra: dict[str, Any] = {"field_manager": FIELD_MANAGER}
    if dry_run:
        extra["dry_run"] = "All"
    changes = []
    for obj in objects:
        ref = ref_of(obj)
        api, suffix = _api(ref, api_client)
        try:
            try:
                getattr(api, f"read_{suffix}")(ref.name, ref.namespace)
                exists = True
            except ApiException as exc:
                if exc.status != 404:
                    raise
                exists = False
            if not exists:
                try:
                    getattr(api, f"create_{suffix}")(ref.namespace, obj, **extra)
                    changes.append(Change(ref, "created"))
                    continue
                except ApiException as exc:
                    if exc.status != 409:  # 409: created meanwhile by someone else; patch it instead
                        raise
            getattr(api, f"patch_{suffix}")(ref.name, ref.namespace, obj, **extra)
            changes.append(Change(ref, "patched"))
        except ApiException as exc:
            raise ClusterError(f"cannot apply {ref} in namespace {ref.namespace}: {_reason(exc)}") from exc
    return changes


def delete_objects(refs: Iterable[ObjectRef], api_client: Any = None, *, dry_run: bool = False) -> list[Change]:
    """Delete each object, in order; one already gone is reported ``absent``, not an error."""
    extra: dict[str, Any] = {"propagation_policy": "Background"}
    if dry_run:
        extra["dry_run"] = "All"
    changes = []
    for ref in refs:
        api, suffix = _api(ref, api_client)
        try:
            getattr(api, f"delete_{suffix}")(ref.name, ref.namespace, **extra)
            changes.append(Change(ref, "deleted"))
        except ApiException as exc:
            if exc.status != 404:
                raise ClusterError(f"cannot delete {ref} in namespace {ref.namespace}: {_reason(exc)}") from exc
            changes.append(Change(ref, "absent"))
    return changes


def apply(options: DeployOptions, api_client: Any = None, *, dry_run: bool = False) -> list[Change]:
    """Bring the cluster to ``options``: apply every object, then remove switched-off ones left over.

    Only leftovers that exist are reported.
    """
    changes = apply_objects(build_manifests(options), api_client, dry_run=dry_run)
    pruned = delete_objects(switched_off_refs(options), api_client, dry_run=dry_run)
    return changes + [c for c in pruned if c.action != "absent"]


def delete(options: DeployOptions, api_client: Any = None, *, dry_run: bool = False) -> list[Change]:
    """Delete the deployment ``options`` describes (and any switched-off optional object), aggregator first."""
    refs = [ref_of(obj) for obj in reversed(build_manifests(options))]
    return delete_objects(refs + switched_off_refs(options), api_client, dry_run=dry_run)
