"""The total device time XProf divides op times by: from each device's first op to its last.

XProf's device op table (``OpMetricsDb``) has a total time that includes the gaps between ops
(its "IDLE" row), and the op tables' shares (hlo_stats' "Total self time (%)") are of that
total, not of the ops' summed self time. Per device plane:

* GPU (planes with ``Stream #`` lines): from the first event start to the last event end over
  the plane's own lines (derived lines left out);
* TPU and other devices: from the first start to the last end of the ``XLA Ops``,
  ``TensorFlow Ops``, ``SparseCore Ops`` and ``Steps`` lines.

The total over a host is the sum over its device planes, and over a run the sum over hosts.
It is read from the host pass's per-line first start and last end. XProf places TPU ops by
their device clock (``device_offset_ps``); the lines' own clock used here puts the TPU file's
shares within 0.001 points of XProf's (21.3818% against 21.3821% for its top op); GPU shares are
XProf's exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xprof_core.index.classify import DERIVED_LINE_MAX, DERIVED_LINE_MIN, DERIVED_LINE_NAMES
from xprof_core.model.planes import PlaneKind

OP_LINES = frozenset({"XLA Ops", "TensorFlow Ops", "SparseCore Ops", "Steps"})


def device_total_time_ps(hp: Any) -> int:
    """Sum over device planes of (last op end - first op start), int ps; 0 without device work.

    ``hp`` is a host pass (:class:`~xprof_core.index.passes.HostPass`): its ``lines`` columns
    ``plane``, ``id``, ``name``, ``events``, ``min_start_ps``, ``max_end_ps`` and its ``meta``.
    """
    lines = hp.lines
    plane_of = np.asarray(lines["plane"])
    names = list(lines["name"])
    ids = np.asarray(lines["id"])
    events = np.asarray(lines["timed"])
    first = np.asarray(lines["min_start_ps"])
    last = np.asarray(lines["max_end_ps"])
    total = 0
    for plane in hp.meta.planes_of_kind(PlaneKind.DEVICE):
        mine = np.flatnonzero((plane_of == plane.index) & (events > 0))
        if not len(mine):
            continue
        gpu = any(names[i].startswith("Stream #") for i in mine.tolist())
        if gpu:
            keep = [
                i
                for i in mine.tolist()
                if not (DERIVED_LINE_MIN <= ids[i] <= DERIVED_LINE_MAX or names[i] in DERIVED_LINE_NAMES)
            ]
        else:
            keep = [i for i in mine.tolist() if names[i] in OP_LINES]
        if keep:
            total += int(last[keep].max() - first[keep].min())
    return total


__all__ = ["device_total_time_ps"]
