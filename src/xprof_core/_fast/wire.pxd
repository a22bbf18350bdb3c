# cython: language_level=3
"""Protobuf wire cursor: two pointers and inline readers.

Every reader checks against ``end`` before it touches a byte, varints stop at
10 bytes, and lengths are compared with the bytes left before any use, so no
read can leave the buffer and no length is trusted. Readers return 0 on
success and -1 on failure after recording the first failure in the shared
``Failure``; the caller turns that into one DecodeError at the top.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef enum WireType:
    WT_VARINT = 0
    WT_I64 = 1
    WT_LEN = 2
    WT_SGROUP = 3
    WT_EGROUP = 4
    WT_I32 = 5

# Protobuf's own parser refuses messages nested deeper than this.
cdef enum:
    MAX_GROUP_DEPTH = 100

cdef struct Failure:
    const char* msg        # static message of the first failure, or NULL
    const uint8_t* at      # where it happened


cdef struct Cursor:
    const uint8_t* p       # next byte to read
    const uint8_t* end     # one past the last byte of the current message
    Failure* failure       # shared by a cursor and all its sub-cursors


cdef inline Cursor sub_cursor(Cursor* c, const uint8_t* start, const uint8_t* stop) noexcept nogil:
    """A cursor over one length-delimited payload, clamped to its declared length."""
    cdef Cursor s
    s.p = start
    s.end = stop
    s.failure = c.failure
    return s


cdef inline int fail(Cursor* c, const char* msg, const uint8_t* at) noexcept nogil:
    if c.failure.msg == NULL:
        c.failure.msg = msg
        c.failure.at = at
    return -1


cdef inline int read_varint(Cursor* c, uint64_t* out) noexcept nogil:
    cdef const uint8_t* p = c.p
    cdef uint64_t b
    cdef uint64_t result
    cdef int shift
    if p < c.end and p[0] < 0x80:
        out[0] = p[0]
        c.p = p + 1
        return 0
    result = 0
    shift = 0
    while True:
        if p >= c.end:
            return fail(c, "truncated varint", c.p)
        b = p[0]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 70:
            return fail(c, "varint longer than 10 bytes", c.p)
    out[0] = result
    c.p = p
    return 0


cdef inline int read_tag(Cursor* c, uint32_t* field, uint32_t* wtype) noexcept nogil:
    cdef uint64_t key
    cdef const uint8_t* at = c.p
    # Fields 1-15 have one-byte tags: the common case, checked in one comparison (field 0 excluded).
    if at < c.end and 8 <= at[0] < 0x80:
        field[0] = at[0] >> 3
        wtype[0] = at[0] & 7
        c.p = at + 1
        return 0
    if read_varint(c, &key) < 0:
        return -1
    if key >> 3 == 0:
        return fail(c, "invalid field number 0", at)
    if key >> 3 > 536870911 or c.p - at > 5:
        return fail(c, "invalid tag (field number above 2^29-1 or tag longer than 5 bytes)", at)
    field[0] = <uint32_t>(key >> 3)
    wtype[0] = <uint32_t>(key & 7)
    return 0


cdef inline int read_len(Cursor* c, const uint8_t** start, const uint8_t** stop) noexcept nogil:
    """Read a length prefix; the payload is [start, stop) and the cursor skips it."""
    cdef uint64_t n
    cdef const uint8_t* at = c.p
    if read_varint(c, &n) < 0:
        return -1
    if n > <uint64_t>(c.end - c.p):
        return fail(c, "length-delimited field runs past the end of its message", at)
    start[0] = c.p
    stop[0] = c.p + n
    c.p = c.p + n
    return 0


cdef inline int read_fixed64(Cursor* c, uint64_t* out) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    if c.end - c.p < 8:
        return fail(c, "truncated fixed64", c.p)
    for i in range(8):
        v |= (<uint64_t>c.p[i]) << (8 * i)
    out[0] = v
    c.p += 8
    return 0


cdef inline int skip_field(Cursor* c, uint32_t field, uint32_t wtype) noexcept nogil:
    """Skip one field whose tag was just read, by its wire type."""
    cdef uint64_t v
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef uint32_t f2, w2
    cdef int depth
    cdef uint32_t open_fields[MAX_GROUP_DEPTH + 1]
    if wtype == WT_VARINT:
        return read_varint(c, &v)
    if wtype == WT_I64:
        return read_fixed64(c, &v)
    if wtype == WT_LEN:
        return read_len(c, &s, &e)
    if wtype == WT_I32:
        if c.end - c.p < 4:
            return fail(c, "truncated fixed32", c.p)
        c.p += 4
        return 0
    if wtype == WT_SGROUP:
        # Deprecated groups: skip nested fields up to the matching end tag.
        # Each end tag must close the innermost open group's field number.
        depth = 1
        open_fields[0] = field
        while depth > 0:
            if c.p >= c.end:
                return fail(c, "unterminated group", c.p)
            if read_tag(c, &f2, &w2) < 0:
                return -1
            if w2 == WT_SGROUP:
                if depth >= MAX_GROUP_DEPTH:
                    return fail(c, "groups nested too deeply", c.p)
                open_fields[depth] = f2
                depth += 1
            elif w2 == WT_EGROUP:
                depth -= 1
                if open_fields[depth] != f2:
                    return fail(c, "end-group tag does not match its start", c.p)
            elif skip_field(c, f2, w2) < 0:
                return -1
        return 0
    if wtype == WT_EGROUP:
        return fail(c, "end-group tag without a start", c.p)
    return fail(c, "invalid wire type", c.p)
