"""The Kubernetes deploy layer: options, manifests, and apply/delete against a cluster.

::

    from xprof_core.deploy import DeployOptions, render_manifests, apply
    print(render_manifests(DeployOptions(namespace="profiling", worker_replicas=8)))

``DeployOptions`` and friends need only the standard library. The builders
(``build_manifests``, ``render_manifests``, ``manifest_dicts``) and the cluster
operations (``apply``, ``delete``) need the ``k8s`` extra (``kubernetes``,
``PyYAML``); they are imported on first use, so the container entrypoint
(``xprof_core.deploy.entrypoint``) runs in an image without that extra.

Command line: ``python -m xprof_core.deploy {render,apply,delete} --help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xprof_core.deploy.options import (
    Autoscaling,
    DeployOptions,
    HostPathLogdir,
    Logdir,
    ObjectStoreLogdir,
    PvcLogdir,
    ResourceSpec,
)

if TYPE_CHECKING:
    from xprof_core.deploy.cluster import apply, delete
    from xprof_core.deploy.manifests import build_manifests, manifest_dicts, render_manifests

# Name → module for the exports that import the kubernetes client.
_LAZY = {
    "build_manifests": "xprof_core.deploy.manifests",
    "manifest_dicts": "xprof_core.deploy.manifests",
    "render_manifests": "xprof_core.deploy.manifests",
    "apply": "xprof_core.deploy.cluster",
    "delete": "xprof_core.deploy.cluster",
}

__all__ = [
    "Autoscaling",
    "DeployOptions",
    "HostPathLogdir",
    "Logdir",
    "ObjectStoreLogdir",
    "PvcLogdir",
    "ResourceSpec",
    "apply",
    "build_manifests",
    "delete",
    "manifest_dicts",
    "render_manifests",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
