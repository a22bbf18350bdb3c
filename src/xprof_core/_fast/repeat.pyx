# cython: language_level=3, cdivision=True
"""Repeat a line's events on the wire: copy ``k`` shifted by ``k`` times a span, its ids renumbered.

The kernel of ``scripts/scale_profile.py``, which writes an N-times-longer
XSpace without decoding it. :class:`LineRepeater` works on one plane's lines
(byte ranges of ``XLine`` payloads in the input) and never builds a Python
object per event:

* :meth:`LineRepeater.scan` reads a line once: its header fields, the span of
  its timed events (offsets relative to the line's ``timestamp_ns``), and the
  signed and unsigned range of each selected stat's integer values;
* :meth:`LineRepeater.size` is the byte size of the line's events written
  ``copies`` times (what the enclosing length prefixes need);
* :meth:`LineRepeater.write` writes copy ``k`` of the events, a chunk at a
  time, so memory stays bounded whatever the line's size.

Copy ``k`` of an event has ``offset_ps + k * shift_ps``; every selected stat
(by stat metadata id) with an integer value has ``k * step`` added to it
(modulo 2^64, in the value's own field, so int64 and uint64 stay what they
were); on lines that rename their events (``Steps`` lines, whose event names
are step numbers) a selected metadata id becomes ``first + k - 1`` for
``k >= 1``. Everything else is copied byte for byte; copy 0 is the input.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove

import numpy as np

from xprof_core._fast.wire cimport (
    WT_LEN, WT_VARINT, Cursor, Failure, read_len, read_tag, read_varint, skip_field, sub_cursor,
)

from xprof_core.errors import DecodeError

# Wire field numbers (XLine, XEvent, XStat).
cdef enum:
    LINE_TIMESTAMP_NS = 3
    LINE_EVENTS = 4
    LINE_DURATION_PS = 9
    EVENT_METADATA_ID = 1
    EVENT_OFFSET_PS = 2
    EVENT_DURATION_PS = 3
    EVENT_STATS = 4
    EVENT_NUM_OCCURRENCES = 5
    STAT_METADATA_ID = 1
    STAT_UINT64 = 3
    STAT_INT64 = 4

# --- C interface ---


cdef inline int varint_size(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* put_varint(uint8_t* p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <uint8_t>((v & 0x7F) | 0x80)
        v >>= 7
        p += 1
    p[0] = <uint8_t>v
    return p + 1


cdef struct Out:
    uint8_t* data      # NULL: only count
    int64_t size       # bytes written (or counted)


cdef inline void put_bytes(Out* o, const uint8_t* s, const uint8_t* e) noexcept nogil:
    if o.data != NULL:
        memcpy(o.data + o.size, s, e - s)
    o.size += e - s


cdef inline void put_var(Out* o, uint64_t v) noexcept nogil:
    if o.data != NULL:
        put_varint(o.data + o.size, v)
    o.size += varint_size(v)


# A length-delimited field's body is written 10 bytes (the longest length prefix)
# past where it belongs, then moved back behind its length once its size is
# known: one pass per nested message. Counting, only the size is kept.

cdef inline Out open_body(Out* o) noexcept nogil:
    cdef Out body
    body.data = o.data + o.size + 10 if o.data != NULL else NULL
    body.size = 0
    return body


cdef inline void close_body(Out* o, Out* body) noexcept nogil:
    put_var(o, <uint64_t>body.size)
    if o.data != NULL:
        memmove(o.data + o.size, body.data, body.size)
    o.size += body.size


cdef inline int64_t event_bound(const uint8_t* tag, const uint8_t* s, const uint8_t* e) noexcept nogil:
    """Room enough for any copy of an events field: each rewritten value (2 bytes or more in the
    input) grows by 9 bytes at most and its stat's length prefix by 1, plus scratch for the prefixes."""
    return (s - tag) + 10 + 6 * (e - s) + 32


@cython.final
cdef class LineRepeater:
    """Scan, size and write the repeated events of one plane's lines (see the module docstring).

    ``buf`` is the whole input (bytes-like, read in place); ``stat_ids`` the
    stat metadata ids whose integer values are renumbered, ``stat_steps`` what
    each adds per copy; ``md_old`` (sorted) the event metadata ids that renaming
    lines replace, ``md_first`` the id each takes in copy 1; ``shift_ps`` what
    every offset gains per copy. Begin and end offsets are of an ``XLine``
    payload in ``buf``.
    """

    cdef const uint8_t[::1] buf
    cdef const uint8_t* base
    cdef Py_ssize_t n
    cdef Failure failure
    cdef const uint64_t[::1] stat_ids
    cdef const uint64_t[::1] stat_steps
    cdef const uint64_t[::1] md_old
    cdef const uint64_t[::1] md_first
    cdef uint64_t shift_ps

    def __cinit__(self, buf, stat_ids, stat_steps, md_old, md_first, int64_t shift_ps):
        self.buf = buf
        self.n = self.buf.shape[0]
        self.base = &self.buf[0] if self.n > 0 else NULL
        self.stat_ids = np.ascontiguousarray(stat_ids, dtype=np.uint64)
        self.stat_steps = np.ascontiguousarray(stat_steps, dtype=np.uint64)
        self.md_old = np.ascontiguousarray(md_old, dtype=np.uint64)
        self.md_first = np.ascontiguousarray(md_first, dtype=np.uint64)
        if self.stat_ids.shape[0] != self.stat_steps.shape[0] or self.md_old.shape[0] != self.md_first.shape[0]:
            raise ValueError("stat_ids/stat_steps and md_old/md_first must have the same lengths")
        self.shift_ps = <uint64_t>shift_ps

    cdef Cursor cursor(self, int64_t begin, int64_t end) except *:
        cdef Cursor c
        if begin < 0 or end > self.n or begin > end:
            raise ValueError(f"byte range [{begin}, {end}) outside the input of {self.n} bytes")
        self.failure.msg = NULL
        self.failure.at = NULL
        c.p = self.base + begin
        c.end = self.base + end
        c.failure = &self.failure
        return c

    cdef object error(self, int64_t line_begin):
        msg = self.failure.msg.decode() if self.failure.msg != NULL else "malformed line"
        at = self.failure.at - self.base if self.failure.at != NULL else line_begin
        return DecodeError(msg, at, f"XLine at byte {line_begin}")

    cdef inline Py_ssize_t stat_index(self, uint64_t md) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.stat_ids.shape[0]):
            if self.stat_ids[i] == md:
                return i
        return -1

    cdef inline Py_ssize_t md_index(self, uint64_t md) noexcept nogil:
        cdef Py_ssize_t lo = 0, hi = self.md_old.shape[0], mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.md_old[mid] < md:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < self.md_old.shape[0] and self.md_old[lo] == md else -1

    # -- one stat, one event --

    cdef int stat_body(self, Cursor* c, uint64_t k, Out* o) noexcept nogil:
        """Copy k of one XStat payload (the cursor spans it) into o; -1 on malformed input."""
        cdef const uint8_t* start = c.p
        cdef const uint8_t* at
        cdef uint32_t field, wt
        cdef uint64_t v, md = 0, step = 0
        cdef Py_ssize_t i
        cdef Cursor scan = c[0]
        while scan.p < scan.end:  # the metadata id may follow the value; the last one counts
            if read_tag(&scan, &field, &wt) < 0:
                return -1
            if field == STAT_METADATA_ID and wt == WT_VARINT:
                if read_varint(&scan, &md) < 0:
                    return -1
            elif skip_field(&scan, field, wt) < 0:
                return -1
        i = self.stat_index(md)
        if i >= 0:
            step = self.stat_steps[i] * k
        if step == 0:
            put_bytes(o, start, c.end)
            c.p = c.end
            return 0
        while c.p < c.end:
            at = c.p
            if read_tag(c, &field, &wt) < 0:
                return -1
            if (field == STAT_UINT64 or field == STAT_INT64) and wt == WT_VARINT:
                put_bytes(o, at, c.p)  # the tag as it was
                if read_varint(c, &v) < 0:
                    return -1
                put_var(o, v + step)
            else:
                if skip_field(c, field, wt) < 0:
                    return -1
                put_bytes(o, at, c.p)
        return 0

    cdef int event_body(self, Cursor* c, uint64_t k, bint rename, Out* o) noexcept nogil:
        """Copy k of one XEvent payload (the cursor spans it) into o; -1 on malformed input."""
        cdef const uint8_t* at
        cdef const uint8_t* tag_end
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef Py_ssize_t i
        cdef Cursor sub
        cdef Out body
        while c.p < c.end:
            at = c.p
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == EVENT_OFFSET_PS and wt == WT_VARINT:
                put_bytes(o, at, c.p)
                if read_varint(c, &v) < 0:
                    return -1
                put_var(o, v + self.shift_ps * k)
            elif field == EVENT_METADATA_ID and wt == WT_VARINT and rename and k > 0:
                put_bytes(o, at, c.p)
                if read_varint(c, &v) < 0:
                    return -1
                i = self.md_index(v)
                put_var(o, v if i < 0 else self.md_first[i] + k - 1)
            elif field == EVENT_STATS and wt == WT_LEN:
                tag_end = c.p
                if read_len(c, &s, &e) < 0:
                    return -1
                put_bytes(o, at, tag_end)
                sub = sub_cursor(c, s, e)
                body = open_body(o)
                if self.stat_body(&sub, k, &body) < 0:
                    return -1
                close_body(o, &body)
            else:
                if skip_field(c, field, wt) < 0:
                    return -1
                put_bytes(o, at, c.p)
        return 0

    cdef int event(self, const uint8_t* tag, const uint8_t* tag_end, const uint8_t* s, const uint8_t* e,
                   uint64_t k, bint rename, Out* o) noexcept nogil:
        """Copy k of one events field (tag [tag, tag_end), payload [s, e)) into o, tag and length included.

        Writing, ``o`` must have room for ``event_bound`` bytes."""
        cdef Cursor sub
        cdef Out body
        if k == 0:
            put_bytes(o, tag, e)
            return 0
        put_bytes(o, tag, tag_end)
        sub.p = s
        sub.end = e
        sub.failure = &self.failure
        body = open_body(o)
        if self.event_body(&sub, k, rename, &body) < 0:
            return -1
        close_body(o, &body)
        return 0

    # --- Python interface ---

    def scan(self, int64_t begin, int64_t end, int64_t[::1] smin, int64_t[::1] smax, uint64_t[::1] umin,
             uint64_t[::1] umax, int64_t[::1] seen):
        """Read one line: ``(head, tail, timestamp_ns, duration_ps, events, timed, first_ps, last_ps)``.

        ``head`` and ``tail`` are the line's fields other than its events, as they
        are on the wire, before the first event and after it (a line is ``head``,
        its events, ``tail``); ``first_ps``/``last_ps`` the earliest offset and
        latest offset + duration of its timed events (0, 0 when none). The integer
        values of the stats in ``stat_ids`` widen ``smin``/``smax`` (as int64),
        ``umin``/``umax`` (as uint64) and count in ``seen``, by the stat's index.
        """
        cdef Cursor c = self.cursor(begin, end)
        cdef Cursor ev, st
        cdef const uint8_t* at
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef const uint8_t* ss
        cdef const uint8_t* se
        cdef uint32_t field, wt, f2, w2, f3, w3
        cdef uint64_t v, md, value, timestamp_ns = 0, duration_ps = 0
        cdef int64_t off, dur, first = 0, last = 0, events = 0, timed = 0
        cdef bint is_timed, has_value
        cdef Py_ssize_t i
        cdef Out header, tail
        cdef Out* other
        if smin.shape[0] < self.stat_ids.shape[0] or smax.shape[0] < self.stat_ids.shape[0] or \
                umin.shape[0] < self.stat_ids.shape[0] or umax.shape[0] < self.stat_ids.shape[0] or \
                seen.shape[0] < self.stat_ids.shape[0]:
            raise ValueError("range arrays shorter than stat_ids")
        header.data = <uint8_t*>PyMem_Malloc(max(end - begin, 1))
        header.size = 0
        tail.data = <uint8_t*>PyMem_Malloc(max(end - begin, 1))
        tail.size = 0
        if header.data == NULL or tail.data == NULL:
            PyMem_Free(header.data)
            PyMem_Free(tail.data)
            raise MemoryError()
        other = &header
        try:
            with nogil:
                while c.p < c.end:
                    at = c.p
                    if read_tag(&c, &field, &wt) < 0:
                        break
                    if field == LINE_EVENTS and wt == WT_LEN:
                        other = &tail
                        if read_len(&c, &s, &e) < 0:
                            break
                        ev = sub_cursor(&c, s, e)
                        off = 0
                        dur = 0
                        is_timed = True
                        events += 1
                        while ev.p < ev.end:
                            if read_tag(&ev, &f2, &w2) < 0:
                                break
                            if f2 == EVENT_OFFSET_PS and w2 == WT_VARINT:
                                if read_varint(&ev, &v) < 0:
                                    break
                                off = <int64_t>v
                            elif f2 == EVENT_DURATION_PS and w2 == WT_VARINT:
                                if read_varint(&ev, &v) < 0:
                                    break
                                dur = <int64_t>v
                            elif f2 == EVENT_NUM_OCCURRENCES and w2 == WT_VARINT:
                                if read_varint(&ev, &v) < 0:
                                    break
                                is_timed = False
                            elif f2 == EVENT_STATS and w2 == WT_LEN and self.stat_ids.shape[0] > 0:
                                if read_len(&ev, &ss, &se) < 0:
                                    break
                                st = sub_cursor(&ev, ss, se)
                                md = 0
                                value = 0
                                has_value = False
                                while st.p < st.end:
                                    if read_tag(&st, &f3, &w3) < 0:
                                        break
                                    if f3 == STAT_METADATA_ID and w3 == WT_VARINT:
                                        if read_varint(&st, &md) < 0:
                                            break
                                    elif (f3 == STAT_UINT64 or f3 == STAT_INT64) and w3 == WT_VARINT:
                                        if read_varint(&st, &value) < 0:
                                            break
                                        has_value = True
                                    elif skip_field(&st, f3, w3) < 0:
                                        break
                                if self.failure.msg != NULL:
                                    break
                                i = self.stat_index(md)
                                if has_value and i >= 0:
                                    if seen[i] == 0 or <int64_t>value < smin[i]:
                                        smin[i] = <int64_t>value
                                    if seen[i] == 0 or <int64_t>value > smax[i]:
                                        smax[i] = <int64_t>value
                                    if seen[i] == 0 or value < umin[i]:
                                        umin[i] = value
                                    if seen[i] == 0 or value > umax[i]:
                                        umax[i] = value
                                    seen[i] += 1
                            elif skip_field(&ev, f2, w2) < 0:
                                break
                        if self.failure.msg != NULL:
                            break
                        if is_timed:
                            if timed == 0 or off < first:
                                first = off
                            if timed == 0 or off + dur > last:
                                last = off + dur
                            timed += 1
                    elif field == LINE_DURATION_PS and wt == WT_VARINT:
                        if read_varint(&c, &duration_ps) < 0:
                            break
                        put_bytes(other, at, c.p)
                    elif field == LINE_TIMESTAMP_NS and wt == WT_VARINT:
                        if read_varint(&c, &timestamp_ns) < 0:
                            break
                        put_bytes(other, at, c.p)
                    else:
                        if skip_field(&c, field, wt) < 0:
                            break
                        put_bytes(other, at, c.p)
            if self.failure.msg != NULL:
                raise self.error(begin)
            head = PyBytes_FromStringAndSize(<char*>header.data, header.size)
            rest = PyBytes_FromStringAndSize(<char*>tail.data, tail.size)
        finally:
            PyMem_Free(header.data)
            PyMem_Free(tail.data)
        return head, rest, <int64_t>timestamp_ns, <int64_t>duration_ps, events, timed, first, last

    def size(self, int64_t begin, int64_t end, int64_t copies, bint rename=False):
        """Bytes of the line's events written ``copies`` times (tags and lengths included)."""
        cdef Cursor c = self.cursor(begin, end)
        cdef const uint8_t* at
        cdef const uint8_t* tag_end
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef uint32_t field, wt
        cdef uint64_t k
        cdef Out o
        o.data = NULL
        o.size = 0
        with nogil:
            while c.p < c.end:
                at = c.p
                if read_tag(&c, &field, &wt) < 0:
                    break
                if field == LINE_EVENTS and wt == WT_LEN:
                    tag_end = c.p
                    if read_len(&c, &s, &e) < 0:
                        break
                    for k in range(<uint64_t>copies):
                        if self.event(at, tag_end, s, e, k, rename, &o) < 0:
                            break
                    if self.failure.msg != NULL:
                        break
                elif skip_field(&c, field, wt) < 0:
                    break
        if self.failure.msg != NULL:
            raise self.error(begin)
        return o.size

    def write(self, int64_t begin, int64_t end, int64_t copy, bint rename=False, int64_t chunk_bytes=1 << 22):
        """Copy ``copy`` of the line's events from ``begin`` on: ``(bytes, next_begin)``.

        Stops after the event that brings the chunk to ``chunk_bytes`` or more;
        call again from ``next_begin`` until it equals ``end``.
        """
        cdef Cursor c = self.cursor(begin, end)
        cdef const uint8_t* at
        cdef const uint8_t* tag_end
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef uint32_t field, wt
        cdef Out o
        cdef int64_t cap = max(chunk_bytes, 64) + (1 << 16), need
        cdef uint8_t* grown
        o.size = 0
        o.data = <uint8_t*>PyMem_Malloc(cap)
        if o.data == NULL:
            raise MemoryError()
        try:
            while c.p < c.end and o.size < chunk_bytes:
                at = c.p
                if read_tag(&c, &field, &wt) < 0:
                    break
                if field == LINE_EVENTS and wt == WT_LEN:
                    tag_end = c.p
                    if read_len(&c, &s, &e) < 0:
                        break
                    need = o.size + event_bound(at, s, e)
                    if need > cap:
                        cap = max(2 * cap, need)
                        grown = <uint8_t*>PyMem_Realloc(o.data, cap)
                        if grown == NULL:
                            raise MemoryError()
                        o.data = grown
                    if self.event(at, tag_end, s, e, <uint64_t>copy, rename, &o) < 0:
                        break
                elif skip_field(&c, field, wt) < 0:
                    break
            if self.failure.msg != NULL:
                raise self.error(begin)
            chunk = PyBytes_FromStringAndSize(<char*>o.data, o.size)
        finally:
            PyMem_Free(o.data)
        return chunk, <int64_t>(c.p - self.base)
