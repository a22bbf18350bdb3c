# cython: language_level=3
"""One XStat parser, shared by the decoder and the trace JSON renderer.

``parse_stat`` reads one XStat payload from a cursor clamped to it and
reports its value as raw bits: numbers in ``value``, strings and bytes as
their byte offset from ``base`` plus ``length``, so nothing is copied or
decoded. Later members of the value oneof win, as in protobuf.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from xprof_core._fast.wire cimport (
    WT_I64, WT_LEN, WT_VARINT, Cursor, read_fixed64, read_len, read_tag, read_varint, skip_field,
)

# Stat value kinds, in the order of XStat's oneof. Kept in step with model/xspace.py.
cdef enum StatKind:
    KIND_NONE = 0
    KIND_DOUBLE = 1
    KIND_UINT64 = 2
    KIND_INT64 = 3
    KIND_STR = 4
    KIND_BYTES = 5
    KIND_REF = 6


cdef struct StatOut:
    int64_t metadata_id
    int kind
    int64_t value       # int64/uint64 bits, double bits, ref id, or byte offset of a string
    int64_t length      # byte length of a string or bytes value


cdef inline int parse_stat(Cursor* c, StatOut* out, const uint8_t* base) noexcept nogil:
    """Parse one XStat payload; later members of the oneof win, as in protobuf."""
    cdef uint32_t field, wt
    cdef uint64_t v
    cdef const uint8_t* s
    cdef const uint8_t* e
    out.metadata_id = 0
    out.kind = KIND_NONE
    out.value = 0
    out.length = 0
    while c.p < c.end:
        if read_tag(c, &field, &wt) < 0:
            return -1
        if field == 1 and wt == WT_VARINT:
            if read_varint(c, &v) < 0:
                return -1
            out.metadata_id = <int64_t>v
        elif field == 2 and wt == WT_I64:
            if read_fixed64(c, &v) < 0:
                return -1
            out.kind = KIND_DOUBLE
            out.value = <int64_t>v
            out.length = 0
        elif (field == 3 or field == 4 or field == 7) and wt == WT_VARINT:
            if read_varint(c, &v) < 0:
                return -1
            out.kind = KIND_UINT64 if field == 3 else (KIND_INT64 if field == 4 else KIND_REF)
            out.value = <int64_t>v
            out.length = 0
        elif (field == 5 or field == 6) and wt == WT_LEN:
            if read_len(c, &s, &e) < 0:
                return -1
            out.kind = KIND_STR if field == 5 else KIND_BYTES
            out.value = s - base
            out.length = e - s
        elif skip_field(c, field, wt) < 0:
            return -1
    return 0


