"""Which records of a host pass each analysis reads: device activity, host markers and launches, GPU kernels."""

from __future__ import annotations

import numpy as np

from xprof_core.index.classify import LF_KERNELS, LF_RECORD_ALL, NON_OP_LINE_NAMES, is_derived_line, is_stream
from xprof_core.index.passes import RF_TIMED, HostPass
from xprof_core.model.planes import PlaneKind


def device_records(hp: HostPass) -> np.ndarray:
    """Records of device activity (``Stream #`` lines on GPUs, XLA Ops lines on TPUs), timed, in row order."""
    rec = hp.records
    on_line = (hp.lines["flags"][rec["line"]] & LF_RECORD_ALL) != 0 if len(rec["line"]) else np.zeros(0, bool)
    return np.flatnonzero(on_line & ((rec["flags"] & RF_TIMED) != 0))


def host_records(hp: HostPass) -> np.ndarray:
    """Records of host events (markers and launches), in row order."""
    rec = hp.records
    if not len(rec["line"]):
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.isin(rec["line"], hp.host_lines()) & ((rec["flags"] & RF_TIMED) != 0))


def gpu_kernel_records(hp: HostPass) -> np.ndarray:
    """Records of timed events on the GPU streams (``Stream #N(...)``; derived lines left out), in row order."""
    rec = hp.records
    if not len(rec["line"]):
        return np.zeros(0, np.int64)
    good_lines = np.zeros(len(hp.lines["name"]), dtype=bool)
    for ln, (plane, line_id, name) in enumerate(
        zip(hp.lines["plane"].tolist(), hp.lines["id"].tolist(), hp.lines["name"], strict=True)
    ):
        p = hp.meta.planes[plane]
        if p.kind is PlaneKind.DEVICE and p.device_type == "GPU" and is_stream(name):
            good_lines[ln] = not is_derived_line(line_id, name, NON_OP_LINE_NAMES)
    return np.flatnonzero(good_lines[rec["line"]] & ((rec["flags"] & RF_TIMED) != 0))


def kernel_records(hp: HostPass) -> np.ndarray:
    """Records of kernel candidates (kernel_stats): events with a duration on the non-derived lines of GPU
    planes, timed or not, in row order."""
    rec = hp.records
    if not len(rec["line"]):
        return np.zeros(0, np.int64)
    on_line = (hp.lines["flags"][rec["line"]] & LF_KERNELS) != 0
    return np.flatnonzero(on_line & (rec["duration_ps"] > 0))


__all__ = ["device_records", "gpu_kernel_records", "host_records", "kernel_records"]
