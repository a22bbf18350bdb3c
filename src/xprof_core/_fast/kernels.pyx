# cython: language_level=3, cdivision=True
"""Aggregation kernels over event columns: one linear pass, no Python objects.

Each kernel has a slow, obvious oracle in the tests (tests/test_kernels.py).
"""

cimport cython
from libc.stdint cimport int64_t, int32_t

import numpy as np

# --- C interface ---

cdef enum:
    MAX_CATEGORIES = 64


# --- Python interface ---

@cython.boundscheck(False)
@cython.wraparound(False)
def priority_union(const int64_t[::1] start, const int64_t[::1] end, const int64_t[::1] category,
                   const int64_t[::1] group, const int64_t[::1] order, Py_ssize_t n_groups,
                   Py_ssize_t n_categories):
    """Covered time per (category prefix, group): out[k, g] = |union of intervals of group g with category <= k|.

    IN: intervals [start, end) in ps with a category (0 = highest priority) and
    a group (a step), and ``order``, a permutation that visits them sorted by
    (group, start). OUT: int64 array (n_categories, n_groups). Time a category
    wins is then ``out[k] - out[k - 1]``: higher priorities take overlaps.
    One pass, O(n x n_categories).
    """
    if n_categories > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories")
    out = np.zeros((n_categories, n_groups), dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    cdef int64_t run_end[MAX_CATEGORIES]
    cdef Py_ssize_t i, j, k, c, g, prev_g = -1
    cdef int64_t s, e
    cdef Py_ssize_t n = order.shape[0]
    with nogil:
        for i in range(n):
            j = order[i]
            s = start[j]
            e = end[j]
            if e <= s:
                continue
            g = group[j]
            c = category[j]
            if g < 0 or g >= n_groups or c < 0 or c >= n_categories:
                continue
            if g != prev_g:
                for k in range(n_categories):
                    run_end[k] = s
                prev_g = g
            # This interval belongs to every cumulative set k >= c.
            for k in range(c, n_categories):
                if s >= run_end[k]:
                    o[k, g] += e - s
                    run_end[k] = e
                elif e > run_end[k]:
                    o[k, g] += e - run_end[k]
                    run_end[k] = e
    return out
