"""Flow arrows of the trace viewer: from a host launch to the device work it started.

A host event and a device event that carry the same ``correlation_id`` stat are one launch (a
``cuLaunchKernel``/``hipModuleLaunchKernel``/``cuGraphLaunch``/host ``MemcpyH2D``) and what it
ran on the GPU; XProf draws an arrow between them (category ``gpu_launch``). A graph launch fans
out to every kernel of the graph: one arrow per (launch, device event) pair.

:func:`flow_index` reads the correlation ids of one host once (cached weakly on the XSpace);
:func:`flows_touching` gives, for the events a trace window keeps, every pair that has at least
one end among them, so an arrow can point to a launch or kernel outside the window.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from xprof_core.model.planes import ON_DEVICE, PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.tools.event_columns import u64_stat

CATEGORY = "gpu_launch"


@dataclass(frozen=True)
class FlowIndex:
    """The launch pairs of one host: ``src``/``dst`` event rows (host launch, device event) and the
    ``correlation_id`` joining them, sorted by ``src``; ``dst_order`` sorts them by ``dst``."""

    src: np.ndarray  # int64 host rows
    dst: np.ndarray  # int64 device rows
    correlation: np.ndarray  # uint64
    dst_order: np.ndarray  # int64 permutation

    def __len__(self) -> int:
        return len(self.src)


_CACHE: weakref.WeakKeyDictionary[XSpace, FlowIndex] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _rows_on(xs: XSpace, *kinds: PlaneKind) -> np.ndarray:
    parts = [ln.rows for p in xs.planes_of_kind(*kinds) for ln in p.lines if len(ln)]
    rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return rows[xs.is_timed[rows]]


def build_flow_index(xs: XSpace) -> FlowIndex:
    """Pair every host event with the device events that carry its ``correlation_id``."""
    host = _rows_on(xs, PlaneKind.HOST, PlaneKind.HOST_OTHER)
    device = _rows_on(xs, *ON_DEVICE)
    h_id, h_ok = u64_stat(xs, host, "correlation_id")
    d_id, d_ok = u64_stat(xs, device, "correlation_id")
    host, h_id = host[h_ok], h_id[h_ok]
    device, d_id = device[d_ok], d_id[d_ok]
    empty = np.zeros(0, dtype=np.int64)
    if not len(host) or not len(device):
        return FlowIndex(empty, empty, np.zeros(0, dtype=np.uint64), empty)
    # One launch per id (the first, as CUPTI ids are unique per process); device events join it.
    order = np.argsort(h_id, kind="stable")
    h_id, host = h_id[order], host[order]
    first = np.r_[True, h_id[1:] != h_id[:-1]]
    h_id, host = h_id[first], host[first]
    pos = np.clip(np.searchsorted(h_id, d_id), 0, len(h_id) - 1)
    hit = h_id[pos] == d_id
    src, dst, corr = host[pos[hit]], device[hit], d_id[hit]
    by_src = np.lexsort((dst, src))
    src, dst, corr = src[by_src], dst[by_src], corr[by_src]
    return FlowIndex(src, dst, corr, np.argsort(dst, kind="stable"))


def flow_index(xs: XSpace) -> FlowIndex:
    """The :class:`FlowIndex` of ``xs``, built once and cached while the XSpace lives."""
    with _LOCK:
        idx = _CACHE.get(xs)
    if idx is None:
        idx = build_flow_index(xs)
        with _LOCK:
            _CACHE[xs] = idx
    return idx


def flows_touching(idx: FlowIndex, rows: np.ndarray) -> np.ndarray:
    """Positions (into ``idx``) of the pairs with a launch or a device event among ``rows``, sorted."""
    if not len(idx) or not len(rows):
        return np.zeros(0, dtype=np.int64)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    by_src = np.flatnonzero(np.isin(idx.src, rows))
    by_dst = idx.dst_order[np.isin(idx.dst[idx.dst_order], rows)]
    return np.union1d(by_src, by_dst).astype(np.int64)


__all__ = ["CATEGORY", "FlowIndex", "build_flow_index", "flow_index", "flows_touching"]
