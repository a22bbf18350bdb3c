# cython: language_level=3, cdivision=True
"""Chrome trace JSON rendered in C: args objects from raw stats, and complete ("X") events.

Everything read from the profile is bounds-checked: stat ids and ref values
are compared (unsigned) against the plane's name table, name and args spans
against their blobs, and every wire reader's return code is checked, so a
hostile file renders unknown ids as unknown or raises DecodeError.
Their Python twins are tested equal (tests/test_trace_viewer.py,
tests/test_hostile.py).
"""

import numpy as np

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy

from xprof_core._fast.stats cimport (
    KIND_BYTES, KIND_DOUBLE, KIND_INT64, KIND_REF, KIND_STR, KIND_UINT64, StatOut, parse_stat,
)
from xprof_core._fast.wire cimport WT_LEN, Cursor, Failure, read_len, read_tag, skip_field, sub_cursor

from xprof_core.errors import DecodeError

cdef struct Out:
    char* data
    Py_ssize_t n
    Py_ssize_t cap


cdef int out_reserve(Out* o, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef char* p
    if o.n + extra <= o.cap:
        return 0
    cap = o.cap * 2 if o.cap else 1 << 16
    while cap < o.n + extra:
        cap *= 2
    p = <char*>PyMem_Realloc(o.data, cap)
    if p == NULL:
        raise MemoryError()
    o.data = p
    o.cap = cap
    return 0


cdef inline int out_put(Out* o, const char* s, Py_ssize_t n) except -1:
    out_reserve(o, n)
    memcpy(o.data + o.n, s, n)
    o.n += n
    return 0


cdef int out_json_string(Out* o, const uint8_t* s, Py_ssize_t n) except -1:
    """Write s as a JSON string: quotes, escapes, invalid UTF-8 replaced by U+FFFD."""
    cdef Py_ssize_t i = 0, k, need
    cdef uint8_t b
    cdef const char* hexd = "0123456789abcdef"
    if n < 0 or (n > 0 and s == NULL):
        raise ValueError("invalid string span")
    out_reserve(o, n * 6 + 2)
    o.data[o.n] = 34  # "
    o.n += 1
    while i < n:
        b = s[i]
        if b < 0x80:
            if b == 34 or b == 92:  # " \\
                o.data[o.n] = 92
                o.data[o.n + 1] = b
                o.n += 2
            elif b < 0x20:
                o.data[o.n] = 92; o.data[o.n + 1] = 117; o.data[o.n + 2] = 48; o.data[o.n + 3] = 48
                o.data[o.n + 4] = hexd[b >> 4]; o.data[o.n + 5] = hexd[b & 15]
                o.n += 6
            else:
                o.data[o.n] = b
                o.n += 1
            i += 1
            continue
        # Multi-byte sequence: check its length, continuation bytes and ranges.
        if 0xC2 <= b <= 0xDF:
            need = 1
        elif 0xE0 <= b <= 0xEF:
            need = 2
        elif 0xF0 <= b <= 0xF4:
            need = 3
        else:
            need = -1
        if need > 0 and i + need < n + 1 and i + need <= n - 0:
            for k in range(1, need + 1):
                if i + k >= n or (s[i + k] & 0xC0) != 0x80:
                    need = -1
                    break
            if need > 0 and ((b == 0xE0 and s[i + 1] < 0xA0) or (b == 0xED and s[i + 1] > 0x9F)
                             or (b == 0xF0 and s[i + 1] < 0x90) or (b == 0xF4 and s[i + 1] > 0x8F)):
                need = -1
        else:
            need = -1
        if need > 0:
            memcpy(o.data + o.n, s + i, need + 1)
            o.n += need + 1
            i += need + 1
        else:
            o.data[o.n] = 0xEF; o.data[o.n + 1] = 0xBF; o.data[o.n + 2] = 0xBD  # U+FFFD
            o.n += 3
            i += 1
    o.data[o.n] = 34
    o.n += 1
    return 0


cdef inline int out_digits(Out* o, uint64_t v) except -1:
    """Decimal digits of v (no sign), without printf."""
    cdef char tmp[24]
    cdef int n = 0, k
    out_reserve(o, 24)
    if v == 0:
        o.data[o.n] = 48
        o.n += 1
        return 0
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    for k in range(n):
        o.data[o.n + k] = tmp[n - 1 - k]
    o.n += n
    return 0


cdef int out_int(Out* o, int64_t v) except -1:
    if v < 0:
        out_put(o, "-", 1)
        return out_digits(o, <uint64_t>(-(v + 1)) + 1)
    return out_digits(o, <uint64_t>v)


cdef int out_uint(Out* o, uint64_t v) except -1:
    return out_digits(o, v)


# JavaScript reads JSON numbers as doubles: integers past 2**53 would come out rounded
# (program_id 12190760917235803885 as 12190760917235804000), so a stat past it is written as
# a string of its exact digits.
cdef uint64_t JS_SAFE_INT = 9007199254740992ULL


cdef int out_stat_uint(Out* o, uint64_t v) except -1:
    if v <= JS_SAFE_INT:
        return out_digits(o, v)
    out_put(o, '"', 1)
    out_digits(o, v)
    return out_put(o, '"', 1)


cdef int out_stat_int(Out* o, int64_t v) except -1:
    if -<int64_t>JS_SAFE_INT <= v <= <int64_t>JS_SAFE_INT:
        return out_int(o, v)
    out_put(o, '"', 1)
    out_int(o, v)
    return out_put(o, '"', 1)


cdef int out_double(Out* o, double v) except -1:
    cdef char tmp[40]
    cdef int n
    if not isfinite(v):
        if v != v:
            return out_put(o, '"nan"', 5)
        return out_put(o, '"inf"', 5) if v > 0 else out_put(o, '"-inf"', 6)
    n = snprintf(tmp, 40, "%.17g", v)
    out_put(o, tmp, n)
    # Keep it a float for readers that care (1.0, not 1).
    for k in range(n):
        if tmp[k] == 46 or tmp[k] == 101 or tmp[k] == 69:  # . e E
            return 0
    return out_put(o, ".0", 2)


cdef int out_us(Out* o, int64_t ps) except -1:
    """Picoseconds as an exact decimal of microseconds (trailing zeros trimmed, always a float: "2.0")."""
    cdef bint neg = ps < 0
    cdef uint64_t a = (<uint64_t>(-(ps + 1)) + 1) if neg else <uint64_t>ps
    cdef uint64_t frac = a % 1000000
    cdef char digits[6]
    cdef int k, n = 6
    if neg:
        out_put(o, "-", 1)
    out_digits(o, a // 1000000)
    if frac == 0:
        return out_put(o, ".0", 2)
    for k in range(5, -1, -1):
        digits[k] = <char>(48 + frac % 10)
        frac //= 10
    while digits[n - 1] == 48:
        n -= 1
    out_put(o, ".", 1)
    return out_put(o, digits, n)


cdef object out_finish(Out* o):
    result = (<char*>o.data)[:o.n] if o.n else b""
    PyMem_Free(o.data)
    o.data = NULL
    o.n = o.cap = 0
    return result


ctypedef fused offset_t:
    uint32_t
    int64_t


cdef bint _name_span(uint64_t sid, int64_t base, int64_t limit, const int64_t[::1] name_start,
                     const int64_t[::1] name_end, Py_ssize_t n_slots, Py_ssize_t n_names, int64_t* slot) noexcept:
    """Whether stat id ``sid`` (any 64-bit value read from the file) names a non-empty span of the name table.

    Ids are compared unsigned against the plane's limit, so a negative id as
    int64 is simply unknown; the slot and its span are checked too.
    """
    cdef int64_t k
    if limit <= 0 or base < 0 or sid >= <uint64_t>limit:
        return False
    k = base + <int64_t>sid
    if k < 0 or k >= n_slots:
        return False
    if not (0 <= name_start[k] < name_end[k] <= n_names):
        return False
    slot[0] = k
    return True


cdef object _stat_error(Failure* failure, const uint8_t* base, int64_t row):
    """The DecodeError for a malformed event or stat found while rendering."""
    msg = failure.msg.decode("ascii") if failure.msg != NULL else "malformed event"
    at = (failure.at - base) if failure.at != NULL else 0
    return DecodeError(msg, at, f"XEvent(row {row}).stats")


def render_event_args(buf, const offset_t[::1] event_offset, const int64_t[::1] rows,
                      const int64_t[::1] key_base, const int64_t[::1] key_limit,
                      const uint8_t[::1] names, const int64_t[::1] name_start, const int64_t[::1] name_end,
                      const int64_t[::1] md_row, const uint8_t[::1] md_json, const int64_t[::1] md_json_start,
                      const int64_t[::1] md_json_end, const int64_t[::1] row_plane):
    """JSON args objects of events, from their raw stats: (blob, offsets), object i = blob[offsets[i]:offsets[i+1]].

    IN: the input buffer and event offsets; ``rows``; per plane, where its
    stat names start in the name table (``key_base``) and how many ids it
    covers (``key_limit``); the name table (stat name bytes, unescaped, by
    ``key_base[plane] + stat metadata id``; an empty span = unknown id, written
    as the id); per row its event-metadata row and plane; per metadata row a
    pre-rendered inner fragment of the metadata's stats (``"k":v,...``, empty
    for none), written first so an event's own stat of the same name wins for
    readers that keep the last key. Strings are JSON-escaped (invalid UTF-8
    becomes U+FFFD), bytes become hex strings, refs the referenced name,
    non-finite doubles the strings "nan"/"inf".
    """
    cdef const uint8_t[::1] view = buf
    cdef const uint8_t* base = &view[0] if view.shape[0] > 0 else NULL
    cdef Py_ssize_t nbuf = view.shape[0]
    cdef Py_ssize_t n = rows.shape[0], i, j
    cdef Out o
    o.data = NULL
    o.n = o.cap = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] offs = offsets
    cdef Failure failure
    cdef Cursor c, ev, sub
    cdef uint32_t field, wt
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef uint64_t mid, value
    cdef int64_t off, md, p, key, ref
    cdef bint first
    cdef StatOut st
    cdef const uint8_t* sv
    cdef Py_ssize_t sl
    cdef const char* hexd = "0123456789abcdef"
    cdef Py_ssize_t n_events = event_offset.shape[0], n_planes = key_base.shape[0]
    cdef Py_ssize_t n_names = names.shape[0], n_slots = name_start.shape[0]
    cdef Py_ssize_t n_md = md_json_start.shape[0], n_md_json = md_json.shape[0]
    if md_row.shape[0] != n or row_plane.shape[0] != n:
        raise ValueError("rows, md_row and row_plane differ in length")
    if key_limit.shape[0] != n_planes or name_end.shape[0] != n_slots or md_json_end.shape[0] != n_md:
        raise ValueError("table columns differ in length")
    failure.msg = NULL
    failure.at = NULL
    try:
        for i in range(n):
            offs[i] = o.n
            out_put(&o, "{", 1)
            first = True
            md = md_row[i]
            if 0 <= md < n_md and 0 <= md_json_start[md] < md_json_end[md] <= n_md_json:
                out_put(&o, <const char*>&md_json[md_json_start[md]], md_json_end[md] - md_json_start[md])
                first = False
            if rows[i] < 0 or rows[i] >= n_events:
                raise IndexError(f"event row {rows[i]} out of range")
            off = <int64_t>event_offset[rows[i]]
            if off < 0 or off >= nbuf:
                raise DecodeError("event offset outside the buffer", off, "XEvent")
            c.p = base + off
            c.end = base + nbuf
            c.failure = &failure
            if read_len(&c, &s, &e) < 0:
                raise _stat_error(&failure, base, rows[i])
            ev = sub_cursor(&c, s, e)
            p = row_plane[i]
            if p < 0 or p >= n_planes:
                raise IndexError(f"plane {p} out of range")
            while ev.p < ev.end:
                if read_tag(&ev, &field, &wt) < 0:
                    raise _stat_error(&failure, base, rows[i])
                if not (field == 4 and wt == WT_LEN):
                    if skip_field(&ev, field, wt) < 0:
                        raise _stat_error(&failure, base, rows[i])
                    continue
                if read_len(&ev, &s, &e) < 0:
                    raise _stat_error(&failure, base, rows[i])
                sub = sub_cursor(&ev, s, e)
                if parse_stat(&sub, &st, base) < 0:
                    raise _stat_error(&failure, base, rows[i])
                mid = <uint64_t>st.metadata_id
                value = <uint64_t>st.value
                if not first:
                    out_put(&o, ",", 1)
                first = False
                # Key: the stat's name, or its id when the plane does not name it.
                if _name_span(mid, key_base[p], key_limit[p], name_start, name_end, n_slots, n_names, &key):
                    out_json_string(&o, &names[name_start[key]], name_end[key] - name_start[key])
                else:
                    out_put(&o, '"', 1)
                    out_int(&o, <int64_t>mid)
                    out_put(&o, '"', 1)
                out_put(&o, ":", 1)
                if st.kind == KIND_DOUBLE:
                    out_double(&o, (<double*>&value)[0])
                elif st.kind == KIND_UINT64:
                    out_stat_uint(&o, value)
                elif st.kind == KIND_INT64:
                    out_stat_int(&o, <int64_t>value)
                elif st.kind == KIND_STR:
                    out_json_string(&o, base + st.value, st.length)
                elif st.kind == KIND_BYTES:
                    sv = base + st.value
                    sl = st.length
                    out_reserve(&o, sl * 2 + 2)
                    o.data[o.n] = 34
                    o.n += 1
                    for j in range(sl):
                        o.data[o.n] = hexd[sv[j] >> 4]
                        o.data[o.n + 1] = hexd[sv[j] & 15]
                        o.n += 2
                    o.data[o.n] = 34
                    o.n += 1
                elif st.kind == KIND_REF:
                    if _name_span(value, key_base[p], key_limit[p], name_start, name_end, n_slots, n_names, &ref):
                        out_json_string(&o, &names[name_start[ref]], name_end[ref] - name_start[ref])
                    else:
                        out_put(&o, '""', 2)
                else:
                    out_put(&o, "null", 4)
            out_put(&o, "}", 1)
        offs[n] = o.n
        return out_finish(&o), offsets
    except BaseException:
        PyMem_Free(o.data)
        raise


def render_complete_events(const int64_t[::1] pid, const int64_t[::1] tid, const int64_t[::1] ts_ps,
                           const int64_t[::1] dur_ps, const int64_t[::1] name_idx, const uint8_t[::1] names,
                           const int64_t[::1] name_start, const int64_t[::1] name_end,
                           const uint8_t[::1] args, const int64_t[::1] args_start, const int64_t[::1] args_end,
                           bint leading_comma):
    """Chrome trace "X" events as JSON text: ``,{"ph":"X","pid":..,"tid":..,"ts":..,"dur":..,"name":..,"args":..}``.

    ``ts``/``dur`` are microseconds written exactly from picoseconds; names
    come from the (unescaped) name table by ``name_idx``; args are
    pre-rendered JSON objects (an empty span writes ``{}``). Events are
    comma-separated, with a leading comma when ``leading_comma``.
    """
    cdef Py_ssize_t n = pid.shape[0], i
    cdef Py_ssize_t n_slots = name_start.shape[0], n_names = names.shape[0], n_args = args.shape[0]
    cdef Out o
    cdef int64_t k
    if (tid.shape[0] != n or ts_ps.shape[0] != n or dur_ps.shape[0] != n or name_idx.shape[0] != n
            or args_start.shape[0] != n or args_end.shape[0] != n or name_end.shape[0] != n_slots):
        raise ValueError("event columns differ in length")
    o.data = NULL
    o.n = o.cap = 0
    try:
        for i in range(n):
            if i > 0 or leading_comma:
                out_put(&o, ",", 1)
            out_put(&o, '{"ph":"X","pid":', 16)
            out_int(&o, pid[i])
            out_put(&o, ',"tid":', 7)
            out_int(&o, tid[i])
            out_put(&o, ',"ts":', 6)
            out_us(&o, ts_ps[i])
            out_put(&o, ',"dur":', 7)
            out_us(&o, dur_ps[i])
            out_put(&o, ',"name":', 8)
            k = name_idx[i]
            if k < 0 or k >= n_slots:
                raise IndexError(f"name index {k} out of range")
            if 0 <= name_start[k] < name_end[k] <= n_names:
                out_json_string(&o, &names[name_start[k]], name_end[k] - name_start[k])
            else:
                out_put(&o, '""', 2)
            out_put(&o, ',"args":', 8)
            if 0 <= args_start[i] < args_end[i] <= n_args:
                out_put(&o, <const char*>&args[args_start[i]], args_end[i] - args_start[i])
            else:
                out_put(&o, "{}", 2)
            out_put(&o, "}", 1)
        return out_finish(&o)
    except BaseException:
        PyMem_Free(o.data)
        raise
