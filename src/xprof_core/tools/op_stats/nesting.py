"""Nesting of intervals per line, vectorised: XProf's ancestor stack as numpy.

The host index computes self times in its compiled pass with a stack; these
array versions serve the places that nest a selection of events after the
fact, and are the tests' reference for the pass.
"""

from __future__ import annotations

import numpy as np

from xprof_core.tools.op_stats.op_table import group_reduce


def nesting_parents(start_ps: np.ndarray, end_ps: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Index of each interval's direct parent within its group, -1 for a root (int64, input order).

    Within a group (a line), intervals are visited by start time, longer first
    on ties, then input order; an interval's parent is the nearest earlier one
    that ends no earlier than it does. That is the top of XProf's ancestor stack
    after it pops every event that does not include the new one. Vectorised by
    pointer jumping: each candidate parent skips, all at once, over the events
    its own candidate already ruled out (their ends are all smaller), so the
    loop runs O(log n) rounds, not once per event.
    """
    n = len(start_ps)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    # Lines arrive sorted by start: skip the sort when (group, start) strictly increases.
    if bool(((group[1:] > group[:-1]) | ((group[1:] == group[:-1]) & (start_ps[1:] > start_ps[:-1]))).all()):
        order = np.arange(n, dtype=np.int64)
    else:
        order = np.lexsort((-end_ps, start_ps, group))  # stable: input order breaks the remaining ties
    e = end_ps[order]
    g = group[order]
    cand = np.arange(-1, n - 1, dtype=np.int64)
    # Roots need no search: the first of a group, and any interval ending after all earlier ones of its group.
    firsts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    prefix_max = np.empty(n, dtype=e.dtype)
    for a, b in zip(firsts.tolist(), [*firsts[1:].tolist(), n], strict=True):  # per group (line)
        prefix_max[a:b] = np.maximum.accumulate(e[a:b])
    root = np.zeros(n, dtype=bool)
    root[firsts] = True
    root[1:] |= e[1:] > prefix_max[:-1]
    cand[root] = -1
    active = np.flatnonzero(cand >= 0)
    while len(active):
        c = cand[active]
        moving = active[e[c] < e[active]]
        cand[moving] = cand[cand[moving]]
        active = moving[cand[moving] >= 0]
    parent = np.full(n, -1, dtype=np.int64)
    has = cand >= 0
    parent[order[has]] = order[cand[has]]
    return parent


def self_times(start_ps: np.ndarray, dur_ps: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Self time of each interval (ps): its duration minus its direct children's (never below 0)."""
    parent = nesting_parents(start_ps, start_ps + dur_ps, group)
    has = parent >= 0
    _, (children,), _ = group_reduce(parent[has], len(start_ps), (dur_ps[has].astype(np.int64),), ())
    return np.maximum(dur_ps - children, 0)
