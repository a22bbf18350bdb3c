"""Apply the manifests to a cluster, or delete them, through the ``kubernetes`` client.

``apply`` is server-side apply (``kubectl apply --server-side --force-conflicts``):
each object is sent whole as an apply patch under the field manager
``xprof-core``. The API server creates it when missing and otherwise makes it
equal to what was sent in every field this manager set: a field, list item or
env var that an earlier apply set and this one leaves out is removed (a
strategic merge patch would keep it, merging lists by name), while fields other
managers own (a ``kubectl rollout restart`` annotation, status) stay. Conflicts
with other managers are forced: the options win. ``delete`` removes every
object the options describe and ignores the ones already gone.

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
from xprof_core.errors import ClusterError

FIELD_MANAGER: Final = "xprof-core"
APPLY_PATCH: Final = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ResourceApi:
    """Which client class and method suffix serve one (apiVersion, kind)."""

    api_class: str  # an attribute of kubernetes.client, e.g. "AppsV1Api"
    suffix: str  # read_<suffix>, patch_<suffix>_with_http_info, delete_<suffix>


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
    """Server-side apply each object, in order: "created" when it was new, else "patched".

    ``dry_run`` asks the server to validate and admit each request without storing
    it. Raises ``ClusterError`` on any API error.
    """
    extra: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY_PATCH}
    if dry_run:
        extra["dry_run"] = "All"
    changes = []
    for obj in objects:
        ref = ref_of(obj)
        api, suffix = _api(ref, api_client)
        try:
            try:
                getattr(api, f"read_{suffix}")(ref.name, ref.namespace)
                existed = True
            except ApiException as exc:
                if exc.status != 404:
                    raise
                existed = False
            reply = getattr(api, f"patch_{suffix}_with_http_info")(ref.name, ref.namespace, obj, **extra)
            created = not existed and _status_code(reply) == 201  # 200: someone created it meanwhile
            changes.append(Change(ref, "created" if created else "patched"))
        except ApiException as exc:
            raise ClusterError(f"cannot apply {ref} in namespace {ref.namespace}: {_reason(exc)}") from exc
    return changes


def _status_code(reply: Any) -> int | None:
    """The HTTP status of a ``*_with_http_info`` reply: an ApiResponse (client 35 and later) or a
    (data, status, headers) tuple (earlier clients)."""
    status = getattr(reply, "status_code", None)
    if status is None and isinstance(reply, tuple) and len(reply) > 1:
        status = reply[1]
    return int(status) if status is not None else None


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
