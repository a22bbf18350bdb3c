"""What events and lines are, from their names: classified once per metadata or per line, never per event.

One place for every name rule the analyses share: which host events are
input-pipeline work, compilation or copies; which device events are
collectives or copies (one memcpy classifier, for host and device); which
lines are device activity, derived lines, steps or XLA ops; which event
names are framework ops.
"""

from __future__ import annotations

import re

from xprof_core.model.planes import ON_DEVICE, PlaneKind
from xprof_core.model.xspace import XSpace

# Event types in priority order (earlier wins an overlap), with what they mean.
CATEGORIES: dict[str, str] = {
    "device_compute": "kernels or XLA ops running on the device",
    "device_collectives": "collective communication on the device (all-reduce, all-gather, NCCL, ...)",
    "device_to_device": "device-to-device copies",
    "host_to_device": "host-to-device copies",
    "device_to_host": "device-to-host copies",
    "device_memset": "device memory sets (memset)",
    "host_compile": "compiling on the host",
    "host_wait_input": "the host waiting for input data",
    "host_compute": "other host work",
}
UNKNOWN = "unknown"
CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}

COLLECTIVE = re.compile(
    r"nccl|rccl|all-?reduce|all-?gather|reduce-?scatter|all-?to-?all|collective|send|recv|ncclDevKernel",
    re.IGNORECASE,
)
INPUT_EVENT = re.compile(
    r"Iterator::|GetNext|IteratorGetNext|tf\.data|InfeedEnqueue|input_pipeline|DataLoader|prefetch|next_batch",
    re.IGNORECASE,
)
COMPILE = re.compile(r"compile|Compilation|autotun", re.IGNORECASE)
# Copies named by the host runtime (host events) ...
_HOST_TO_DEVICE = re.compile(
    r"MemcpyH2D|HostToDevice|H2D|TransferToDevice|BufferFromHostBuffer|DevicePut", re.IGNORECASE
)
_DEVICE_TO_HOST = re.compile(r"MemcpyD2H|DeviceToHost|D2H|TransferFromDevice|ToLiteral", re.IGNORECASE)
# ... and by the device tracer (device events; stream names "Stream #15(MemcpyH2D)" too).
# (CUPTI's names as Kineto writes them: "Memcpy HtoD (Pageable -> Device)".)
_DEVICE_COPY = (
    (re.compile(r"MemcpyD2D|MemcpyP2P|DeviceToDevice|MemcpyDToD|^Memcpy (DtoD|PtoP)"), "device_to_device"),
    (re.compile(r"MemcpyH2D|HostToDevice|MemcpyHToD|^Memcpy HtoD"), "host_to_device"),
    (re.compile(r"MemcpyD2H|DeviceToHost|MemcpyDToH|^Memcpy DtoH"), "device_to_host"),
)
_DEVICE_MEMSET = re.compile(r"Memset")  # CUPTI's "Memset (Device)": Kineto's gpu_memset
_STREAM_COPY = (
    ("MemcpyH2D", "host_to_device"),
    ("MemcpyD2H", "device_to_host"),
    ("MemcpyD2D", "device_to_device"),
    ("MemcpyP2P", "device_to_device"),
)


def copy_direction(name: str, on_host: bool) -> str | None:
    """The copy category of an event name ("host_to_device", ...), or None when it is not a copy."""
    if on_host:
        if _HOST_TO_DEVICE.search(name):
            return "host_to_device"
        if _DEVICE_TO_HOST.search(name):
            return "device_to_host"
        return None
    for pattern, category in _DEVICE_COPY:
        if pattern.search(name):
            return category
    return None


def host_category(name: str) -> int:
    """Category index of a host event by name."""
    if INPUT_EVENT.search(name):
        return CATEGORY_INDEX["host_wait_input"]
    if COMPILE.search(name):
        return CATEGORY_INDEX["host_compile"]
    copy = copy_direction(name, on_host=True)
    return CATEGORY_INDEX[copy] if copy else CATEGORY_INDEX["host_compute"]


def device_category(name: str) -> int:
    """Category index of a device event by name (copies, collectives, else compute)."""
    copy = copy_direction(name, on_host=False)
    if copy:
        return CATEGORY_INDEX[copy]
    if _DEVICE_MEMSET.match(name):
        return CATEGORY_INDEX["device_memset"]
    if COLLECTIVE.search(name):
        return CATEGORY_INDEX["device_collectives"]
    return CATEGORY_INDEX["device_compute"]


def stream_copy_category(line_name: str) -> int | None:
    """A stream named for copies ("Stream #15(MemcpyH2D)"): every event on it is that copy."""
    found = None
    for pattern, category in _STREAM_COPY:
        if pattern in line_name:
            found = CATEGORY_INDEX[category]  # the last match wins
    return found


# ---- lines ----

# XProf's derived (synthetic) line ids: 0xdeadbeef as a signed 32-bit int and
# the 289 ids after it. Older TF profiles put "Steps", "TensorFlow Ops",
# "TensorFlow Name Scope", "XLA Ops", "XLA Modules" there.
DERIVED_LINE_MIN = -559038737
DERIVED_LINE_MAX = DERIVED_LINE_MIN + 289
DERIVED_LINE_NAMES = frozenset(
    {
        "Steps",
        "Launch Stats",
        "TensorFlow Ops",
        "TensorFlow Name Scope",
        "Framework Ops",
        "Framework Name Scope",
        "XLA Ops",
        "Async XLA Ops",
        "XLA Modules",
        "Source code",
    }
)
# Lines whose events are not ops: XProf's derived lines, "XLA TraceMe" and "Overlay".
NON_OP_LINE_NAMES = DERIVED_LINE_NAMES | {"XLA TraceMe", "Overlay"}
FRAMEWORK_OP_LINES = ("Framework Ops", "TensorFlow Ops")


def is_derived_line(line_id: int, name: str, names: frozenset[str] = DERIVED_LINE_NAMES) -> bool:
    """Whether a line is derived: an id in XProf's derived range, or one of ``names``."""
    return DERIVED_LINE_MIN <= line_id <= DERIVED_LINE_MAX or name in names


def is_stream(name: str) -> bool:
    return name.startswith("Stream #")


# Line flags of the index pass (the same numbers as _fast/hostindex.pyx).
LF_HOST = 1  # a host thread
LF_RECORD_ALL = 2  # device activity: a record per event
LF_TPU_OPS = 4  # an XLA Ops line of a device without streams
LF_KERNELS = 8  # a non-derived line of a GPU plane
LF_STEPS = 16  # a Steps line of a device


def line_flags(meta: XSpace, plane_of_line: list[int], ids: list[int], names: list[str]) -> list[int]:
    """The index pass's flags of every line, from its plane, id and name."""
    streams: set[int] = {p for p, n in zip(plane_of_line, names, strict=True) if is_stream(n)}
    flags = []
    for p, line_id, name in zip(plane_of_line, ids, names, strict=True):
        plane = meta.planes[p]
        f = 0
        if plane.kind is PlaneKind.HOST:
            f |= LF_HOST
        elif plane.kind in ON_DEVICE:
            has_streams = p in streams
            if (has_streams and is_stream(name)) or (not has_streams and name in ("XLA Ops", "Async XLA Ops")):
                f |= LF_RECORD_ALL
            if not has_streams and name == "XLA Ops":
                f |= LF_TPU_OPS
            if name == "Steps":
                f |= LF_STEPS
            if is_gpu_plane_of(plane.kind, plane.device_type, plane.device_index) and not is_derived_line(
                line_id, name
            ):
                f |= LF_KERNELS
        flags.append(f)
    return flags


def is_gpu_plane_of(kind: PlaneKind, device_type: str, device_index: int | None) -> bool:
    """A ``/device:GPU:<n>`` plane."""
    return kind is PlaneKind.DEVICE and device_type == "GPU" and device_index is not None


__all__ = [
    "CATEGORIES",
    "CATEGORY_INDEX",
    "COLLECTIVE",
    "COMPILE",
    "DERIVED_LINE_MAX",
    "DERIVED_LINE_MIN",
    "DERIVED_LINE_NAMES",
    "FRAMEWORK_OP_LINES",
    "INPUT_EVENT",
    "LF_HOST",
    "LF_KERNELS",
    "LF_RECORD_ALL",
    "LF_STEPS",
    "LF_TPU_OPS",
    "NON_OP_LINE_NAMES",
    "UNKNOWN",
    "copy_direction",
    "device_category",
    "host_category",
    "is_derived_line",
    "is_gpu_plane_of",
    "is_stream",
    "line_flags",
    "stream_copy_category",
]
