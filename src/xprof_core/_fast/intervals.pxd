# cython: language_level=3
"""Inline interval helpers shared by the interval kernels and the host index pass."""

from libc.stdint cimport int64_t

cdef enum:
    MAX_CATEGORIES = 64


cdef inline void union_add(int64_t* run_end, int64_t[:, ::1] o, Py_ssize_t g, Py_ssize_t c,
                            Py_ssize_t n_categories, int64_t s, int64_t e) noexcept nogil:
    """Add [s, e) of category c to every cumulative set k >= c of group g."""
    cdef Py_ssize_t k
    for k in range(c, n_categories):
        if s >= run_end[k]:
            o[k, g] += e - s
            run_end[k] = e
        elif e > run_end[k]:
            o[k, g] += e - run_end[k]
            run_end[k] = e


cdef inline void heap_sift_down(int64_t* key, Py_ssize_t* item, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t child
    cdef int64_t k = key[i]
    cdef Py_ssize_t it = item[i]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and key[child + 1] < key[child]:
            child += 1
        if key[child] >= k:
            break
        key[i] = key[child]
        item[i] = item[child]
        i = child
    key[i] = k
    item[i] = it
