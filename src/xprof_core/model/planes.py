"""What a plane is, from its name: the one place that reads XSpace plane-name conventions.

Profilers name planes by convention (XProf's ``xplane_schema``):
``/host:CPU`` holds the host threads, ``/device:GPU:0`` / ``/device:TPU:3``
a device, ``/device:CUSTOM:...`` other accelerators' or collectives' traces,
``/host:metadata`` HLO protos and other metadata, ``Task Environment`` the
profile's start and stop times. Every module asks here instead of matching
names itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


class PlaneKind(str, Enum):
    """The role of a plane."""

    HOST = "host"  # /host:CPU: host threads
    DEVICE = "device"  # /device:<TYPE>:<n>: one accelerator (GPU, TPU, ...)
    CUSTOM = "custom"  # /device:CUSTOM:<name>: other device-side traces (collectives, offload, ...)
    METADATA = "metadata"  # /host:metadata: HLO protos and the like
    HOST_OTHER = "host_other"  # other /host: planes (scope-range call stacks, ...)
    ENVIRONMENT = "environment"  # Task Environment
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PlaneIdentity:
    """A plane's kind, and for devices their type (``GPU``, ``TPU``, ...) and index."""

    kind: PlaneKind
    device_type: str = ""
    device_index: int | None = None


# Planes whose events run on an accelerator (a device, or a custom device-side trace).
ON_DEVICE = (PlaneKind.DEVICE, PlaneKind.CUSTOM)

HOST_PLANE = "/host:CPU"
METADATA_PLANE = "/host:metadata"
# The profiler's scope tree (one plane stat per scope: stat-metadata id = scope id, value = its parent).
SCOPE_TREE_PLANE = "/host:__ScopeRangeCallStack__"
TASK_ENVIRONMENT_PLANE = "Task Environment"
_DEVICE = re.compile(r"^/device:([A-Za-z_]+):(\d+)$")


@lru_cache(maxsize=4096)
def plane_identity(name: str) -> PlaneIdentity:
    """The :class:`PlaneIdentity` of a plane name (cached: hosts repeat few names over many planes)."""
    if name == HOST_PLANE or name.startswith(HOST_PLANE + ":"):
        return PlaneIdentity(PlaneKind.HOST)
    if name == METADATA_PLANE:
        return PlaneIdentity(PlaneKind.METADATA)
    if name.startswith("/device:CUSTOM"):
        return PlaneIdentity(PlaneKind.CUSTOM, "CUSTOM")
    m = _DEVICE.match(name)
    if m:
        return PlaneIdentity(PlaneKind.DEVICE, m.group(1), int(m.group(2)))
    if name.startswith("/device:"):
        # A device plane without an index ("/device:TPU:0 SparseCore 1", future layouts): still a device.
        return PlaneIdentity(PlaneKind.DEVICE, name.split(":")[1])
    if name.startswith("/host:"):
        return PlaneIdentity(PlaneKind.HOST_OTHER)
    if name == TASK_ENVIRONMENT_PLANE:
        return PlaneIdentity(PlaneKind.ENVIRONMENT)
    return PlaneIdentity(PlaneKind.OTHER)


__all__ = [
    "HOST_PLANE",
    "ON_DEVICE",
    "METADATA_PLANE",
    "SCOPE_TREE_PLANE",
    "TASK_ENVIRONMENT_PLANE",
    "PlaneIdentity",
    "PlaneKind",
    "plane_identity",
]
