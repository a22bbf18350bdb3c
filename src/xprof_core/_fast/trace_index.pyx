# cython: language_level=3, cdivision=True
"""Kernels of the trace viewer's index: nesting depth in O(n log n).

Oracle: tests/test_trace_viewer.py compares ``nesting_depth`` with a naive
quadratic definition on random and hostile inputs, and with the level-by-level
numpy computation on every test profile.
"""

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint8_t

import numpy as np


cdef struct Runs:
    int64_t* value   # per run: M of the levels it covers (non-increasing over runs)
    int64_t* level   # per run: its first level (increasing over runs)
    Py_ssize_t n
    Py_ssize_t cap


cdef inline int runs_push(Runs* r, int64_t level, int64_t value) except -1:
    cdef Py_ssize_t cap
    if r.n == r.cap:
        cap = r.cap * 2 if r.cap else 64
        r.value = <int64_t*>PyMem_Realloc(r.value, cap * sizeof(int64_t))
        r.level = <int64_t*>PyMem_Realloc(r.level, cap * sizeof(int64_t))
        if r.value == NULL or r.level == NULL:
            raise MemoryError()
        r.cap = cap
    r.level[r.n] = level
    r.value[r.n] = value
    r.n += 1
    return 0


def nesting_depth(const int64_t[::1] start, const int64_t[::1] end, const uint8_t[::1] row_first):
    """Nesting depth (int32) of events sorted by (row, start, longer first).

    depth(e) = 1 + the largest depth among the earlier events of e's row still
    open at its start (end > start(e)), 0 when none is: for properly nested
    events the number of enclosing events; events that overlap without nesting
    never share a depth.

    Equivalently, with M_k the largest end among the earlier events of depth
    >= k (non-increasing in k, -inf past the deepest), depth(e) is the first k
    with M_k <= start(e), and e then raises M_0 .. M_depth to at least its end.
    The levels are kept as runs of equal M, so a binary search finds the
    depth and another the first level e raises. Levels above an event's depth
    can never be reached again (later events start no earlier), so they
    collapse into one -inf run: O(n log n) in all, even when every event
    overlaps every other (the level-by-level computation is quadratic there).
    """
    cdef Py_ssize_t n = start.shape[0], i, lo, hi, mid, r, r0
    cdef int64_t s, e, d, j0
    cdef Runs runs
    if end.shape[0] != n or row_first.shape[0] != n:
        raise ValueError("start, end and row_first differ in length")
    out = np.zeros(n, dtype=np.int32)
    cdef int32_t[::1] depth = out
    runs.value = NULL
    runs.level = NULL
    runs.n = 0
    runs.cap = 0
    try:
        runs_push(&runs, 0, INT64_MIN)
        for i in range(n):
            if row_first[i] and i > 0:
                runs.n = 0
                runs_push(&runs, 0, INT64_MIN)
            s = start[i]
            e = end[i]
            # The first run whose M is at most s (the last run is -inf, so there is one).
            lo = 0
            hi = runs.n - 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if runs.value[mid] <= s:
                    hi = mid
                else:
                    lo = mid + 1
            r = lo
            d = runs.level[r]
            depth[i] = <int32_t>d
            if e > runs.value[r]:
                # Levels 0..d with M < e take e: a suffix [j0, d], from the first run below e.
                lo = 0
                hi = r
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if runs.value[mid] < e:
                        hi = mid
                    else:
                        lo = mid + 1
                r0 = lo
                j0 = runs.level[r0] if r0 < r else d
                runs.n = r0
                runs_push(&runs, j0, e)
            else:
                runs.n = r + 1  # nothing raised: level d keeps its M
            runs_push(&runs, d + 1, INT64_MIN)
    finally:
        PyMem_Free(runs.value)
        PyMem_Free(runs.level)
    return out
