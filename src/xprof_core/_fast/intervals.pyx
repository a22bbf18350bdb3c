# cython: language_level=3, cdivision=True
"""Interval kernels over event columns: covered time per category and step, one linear pass each.

Their oracles: ``priority_union`` against a naive set-of-instants union
(tests/test_intervals.py); ``step_breakdown`` against the numpy path built on
``priority_union`` (tests/test_steps.py).
"""

cimport cython
from libc.stdint cimport int64_t, int32_t

import numpy as np

# --- Python interface ---

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


def step_breakdown(const int64_t[::1] start, const int64_t[::1] duration, const int32_t[::1] metadata_id,
                   const unsigned char[::1] timed, const int64_t[::1] line_begin, const int64_t[::1] line_end,
                   const int64_t[::1] line_lut_offset, const int64_t[::1] lut_size, const signed char[::1] lut,
                   Py_ssize_t default_category,
                   const int64_t[::1] step_start, const int64_t[::1] step_end, const int64_t[::1] marker_duration,
                   const int64_t[::1] x_start, const int64_t[::1] x_end, const int64_t[::1] x_category,
                   const int64_t[::1] x_step, Py_ssize_t n_categories):
    """Per-step priority unions of host lines plus extra intervals, in one merged pass.

    IN: the event columns; the host lines to read as [line_begin, line_end)
    row ranges, each sorted by start; per line, where its plane's category
    table starts in ``lut`` (category by metadata id, -1 or out of range =
    ``default_category``); step windows sorted by start; the duration of each
    step's marker (host events at least that long are the marker or its
    ancestors and are skipped); extra intervals (device work, already clipped
    and assigned to steps) sorted by (step, start). A host event belongs to the
    latest step starting at or before it, if it starts inside that step's
    window; its end is clipped to the window.
    OUT: int64 (n_categories, n_steps) cumulative covered time, as
    ``priority_union``; or None when a line is not sorted by start (the caller
    then takes the general path).
    """
    cdef Py_ssize_t n_lines = line_begin.shape[0]
    cdef Py_ssize_t n_steps = step_start.shape[0]
    cdef Py_ssize_t n_x = x_start.shape[0]
    cdef Py_ssize_t i, r, li, sp = 0, xi = 0, g = -1, c, k, heap_n = 0
    cdef int64_t s, e, md
    if n_categories > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories")
    out = np.zeros((n_categories, n_steps), dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    cdef int64_t run_end[MAX_CATEGORIES]
    cursor_arr = np.zeros(max(n_lines, 1), dtype=np.int64)
    heap_key_arr = np.zeros(max(n_lines, 1), dtype=np.int64)
    heap_item_arr = np.zeros(max(n_lines, 1), dtype=np.intp)
    cdef int64_t[::1] cursor = cursor_arr
    cdef int64_t[::1] heap_key = heap_key_arr
    cdef Py_ssize_t[::1] heap_item = heap_item_arr
    if n_steps == 0:
        return out
    with nogil:
        # Every line must be sorted by start for the merge.
        for li in range(n_lines):
            for r in range(line_begin[li] + 1, line_end[li]):
                if start[r] < start[r - 1]:
                    with gil:
                        return None
        for li in range(n_lines):
            cursor[li] = line_begin[li]
            if line_begin[li] < line_end[li]:
                heap_key[heap_n] = start[line_begin[li]]
                heap_item[heap_n] = li
                heap_n += 1
        i = heap_n // 2
        while i > 0:
            i -= 1
            heap_sift_down(&heap_key[0], &heap_item[0], heap_n, i)
        while heap_n > 0 or xi < n_x:
            r = -1
            if heap_n > 0:
                li = heap_item[0]
                r = cursor[li]
                s = start[r]
                # Advance the line's cursor and fix the heap.
                cursor[li] += 1
                if cursor[li] < line_end[li]:
                    heap_key[0] = start[cursor[li]]
                else:
                    heap_n -= 1
                    heap_key[0] = heap_key[heap_n]
                    heap_item[0] = heap_item[heap_n]
                if heap_n > 0:
                    heap_sift_down(&heap_key[0], &heap_item[0], heap_n, 0)
                if not timed[r]:
                    continue
                while sp + 1 < n_steps and step_start[sp + 1] <= s:
                    sp += 1
                # Extra intervals of earlier steps, or of this step starting earlier, go first.
                while xi < n_x and (x_step[xi] < sp or (x_step[xi] == sp and x_start[xi] <= s)):
                    if x_step[xi] != g:
                        g = x_step[xi]
                        for k in range(n_categories):
                            run_end[k] = x_start[xi]
                    if 0 <= x_category[xi] < n_categories and 0 <= g < n_steps:
                        union_add(run_end, o, g, x_category[xi], n_categories, x_start[xi], x_end[xi])
                    xi += 1
                if s < step_start[sp] or s >= step_end[sp] or duration[r] >= marker_duration[sp]:
                    continue
                e = s + duration[r]
                if e > step_end[sp]:
                    e = step_end[sp]
                if e <= s:
                    continue
                md = metadata_id[r]
                c = default_category
                if 0 <= md < lut_size[li] and lut[line_lut_offset[li] + md] >= 0:
                    c = lut[line_lut_offset[li] + md]
                if sp != g:
                    g = sp
                    for k in range(n_categories):
                        run_end[k] = s
                union_add(run_end, o, g, c, n_categories, s, e)
            else:
                # Only extra intervals remain.
                if x_step[xi] != g:
                    g = x_step[xi]
                    for k in range(n_categories):
                        run_end[k] = x_start[xi]
                if 0 <= x_category[xi] < n_categories and 0 <= g < n_steps:
                    union_add(run_end, o, g, x_category[xi], n_categories, x_start[xi], x_end[xi])
                xi += 1
    return out
