# cython: language_level=3, cdivision=True
"""Kineto / Chrome trace JSON -> XSpace wire bytes, in one streaming pass.

The input arrives in chunks (a file read or gunzipped piece by piece); each
call to :meth:`KinetoTranscoder.feed` consumes every complete *unit* of its
chunk (one trace event, or one top-level key with its value) and reports how
many bytes it used, so the caller carries the tail of an incomplete unit into
the next chunk. No Python object is made per event: an event is tokenized
into spans over the input, then encoded straight into the protobuf bytes of
an ``XEvent`` in a buffer of its line (a host thread or a GPU stream).
Names, argument keys and string values are interned in one C hash table and
written as ``ref_value`` stats. :meth:`~KinetoTranscoder.finish` sorts each
line by start time, links CPU launches to GPU kernels through their
``correlation`` (the innermost framework op around the launch becomes the
kernel's ``tf_op``) and writes the whole ``XSpace``: the caller decodes it
with the XSpace decoder.

Times are exact: microsecond decimals become int64 picoseconds with integer
arithmetic (128-bit in between), never through a double. Epoch-based
timestamps (older Kineto) are shifted by a base that is a multiple of 2^36 us,
so that every rank of one job gets the same base.

Bad input fails with a message and the byte offset of the fault; the caller
raises :class:`xprof_core.DecodeError`.
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_Resize
from libc.math cimport isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc, strtod
from libc.stdio cimport snprintf
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy, memset

cdef extern from *:
    """
    typedef __int128 xp_i128;
    """
    ctypedef long long i128 "xp_i128"

# --- C interface ---

# Token kinds of a JSON value span.
cdef enum JKind:
    J_NONE = 0
    J_STR = 1
    J_NUM = 2
    J_TRUE = 3
    J_FALSE = 4
    J_NULL = 5
    J_ARR = 6
    J_OBJ = 7

# Results of the tokenizer.
cdef enum Status:
    ST_OK = 0
    ST_MORE = 1        # the unit runs past the end of the data: feed more
    ST_ERROR = 2

# Where the top-level parser stands between units.
cdef enum TopState:
    T_BEGIN = 0        # before the first byte of the document
    T_KEY = 1          # in the top-level object, expecting a key or '}'
    T_KEY_NEXT = 2     # after a top-level value, expecting ',' or '}'
    T_EVENTS = 3       # in traceEvents, expecting an event or ']'
    T_EVENTS_NEXT = 4  # after an event, expecting ',' or ']'
    T_DONE = 5         # after the document: only whitespace may follow

# Event kinds (flags of an encoded event).
cdef enum EvFlag:
    F_OP = 1           # a framework op (cpu_op): encloses launches and allocations
    F_MEMORY = 2       # an allocation or free: gets the enclosing op as enclosing_op
    F_DEVICE = 4       # a GPU activity with a correlation: gets the launching op as tf_op

# Planes: 0 the host, 1 the flow endpoints, then one per GPU.
cdef enum:
    PLANE_HOST = 0
    PLANE_FLOWS = 1
    MAX_DEPTH = 512
    MAX_DEVICES = 128       # GPU planes; each keeps a flag byte per interned string
    MAX_NUMBER = 400
    INTERN_MAX_LEN = 4096
    STRING_KEY_TAG = 1
    LINE_ANNOTATIONS = 1

DEF TAG_STRING = 0x4000000000000000


cdef struct Span:
    const uint8_t* p
    Py_ssize_t n
    int kind
    bint escaped


cdef struct Arg:
    Span key
    Span value


cdef struct Buf:
    uint8_t* data
    Py_ssize_t n
    Py_ssize_t cap


cdef struct EvRec:
    int64_t start_ps
    int64_t dur_ps
    int64_t off             # where its XEvent payload starts in the line's buffer
    int64_t corr            # its correlation id, 0 when none
    int32_t len             # payload bytes
    int32_t name            # string id of its name
    int32_t flags           # EvFlag bits
    int32_t extra           # string id of the tf_op stat added when writing, -1 for none


cdef struct EvTok:
    Span ph
    Span name
    Span cat
    Span pid
    Span tid
    Span ts
    Span dur
    Span id
    Span bp
    Span s
    Py_ssize_t nargs
    bint has_args


cdef struct Line:
    int32_t plane
    int64_t pid_key
    int64_t tid_key
    int32_t kind
    Buf payload
    EvRec* ev
    Py_ssize_t n
    Py_ssize_t cap
    bint unsorted
    int64_t last_start
    int64_t last_dur


cdef inline int buf_reserve(Buf* b, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap
    cdef uint8_t* p
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 64
    while cap < b.n + extra:
        cap *= 2
    p = <uint8_t*>realloc(b.data, cap)
    if p == NULL:
        return -1
    b.data = p
    b.cap = cap
    return 0


cdef inline void put_varint(Buf* b, uint64_t v) noexcept nogil:
    # The caller reserved 10 bytes.
    while v >= 0x80:
        b.data[b.n] = <uint8_t>(v | 0x80)
        b.n += 1
        v >>= 7
    b.data[b.n] = <uint8_t>v
    b.n += 1


cdef inline int varint_size(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline void put_bytes(Buf* b, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    memcpy(b.data + b.n, p, n)
    b.n += n


cdef inline uint64_t hash_bytes(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    # FNV-1a over 8-byte words, then a final mix: names are short, so simple wins.
    cdef uint64_t h = 0xcbf29ce484222325ULL ^ <uint64_t>n
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * 0x100000001b3ULL
        h ^= h >> 29
        i += 8
    while i < n:
        h = (h ^ p[i]) * 0x100000001b3ULL
        i += 1
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    return h


cdef inline uint64_t hash_int(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    k *= 0xc4ceb9fe1a85ec53ULL
    k ^= k >> 33
    return k


cdef inline bint is_ws(uint8_t c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline const uint8_t* skip_ws(const uint8_t* p, const uint8_t* end) noexcept nogil:
    while p < end and is_ws(p[0]):
        p += 1
    return p


cdef inline bint span_is(Span* s, const char* lit, Py_ssize_t n) noexcept nogil:
    return s.kind == J_STR and not s.escaped and s.n == n and memcmp(s.p, lit, n) == 0


cdef inline bint is_hex(uint8_t c) noexcept nogil:
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


cdef inline int hex_value(uint8_t c) noexcept nogil:
    if c <= 57:
        return c - 48
    if c <= 70:
        return c - 55
    return c - 87


# --- tokenizer: pure, no side effects (a unit that runs out of data is retried) ---

cdef struct Tok:
    const uint8_t* end
    const char* msg          # error message, or NULL
    const uint8_t* at        # where the error is


cdef inline int tok_fail(Tok* t, const char* msg, const uint8_t* at) noexcept nogil:
    t.msg = msg
    t.at = at
    return ST_ERROR


cdef int scan_string(Tok* t, const uint8_t* p, Span* out, const uint8_t** after) noexcept nogil:
    """``p`` is at the opening quote. Validates escapes and control characters."""
    cdef const uint8_t* q = p + 1
    cdef const uint8_t* end = t.end
    cdef uint8_t c
    cdef bint esc = False
    while True:
        if q >= end:
            return ST_MORE
        c = q[0]
        if c == 34:  # '"'
            break
        if c == 92:  # '\\'
            esc = True
            if q + 1 >= end:
                return ST_MORE
            c = q[1]
            if c == 117:  # 'u'
                if q + 6 > end:
                    return ST_MORE
                if not (is_hex(q[2]) and is_hex(q[3]) and is_hex(q[4]) and is_hex(q[5])):
                    return tok_fail(t, "invalid \\u escape in a string", q)
                q += 6
                continue
            if not (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116):
                return tok_fail(t, "invalid escape in a string", q)
            q += 2
            continue
        if c < 32:
            return tok_fail(t, "control character in a string", q)
        q += 1
    out.p = p + 1
    out.n = q - (p + 1)
    out.kind = J_STR
    out.escaped = esc
    after[0] = q + 1
    return ST_OK


cdef int scan_number(Tok* t, const uint8_t* p, Span* out, const uint8_t** after) noexcept nogil:
    """A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?"""
    cdef const uint8_t* q = p
    cdef const uint8_t* end = t.end
    cdef const uint8_t* digits
    if q < end and q[0] == 45:
        q += 1
    if q >= end:
        return ST_MORE
    if q[0] == 48:
        q += 1
    elif 49 <= q[0] <= 57:
        while q < end and 48 <= q[0] <= 57:
            q += 1
    else:
        return tok_fail(t, "invalid number", q)
    if q < end and q[0] == 46:
        q += 1
        digits = q
        while q < end and 48 <= q[0] <= 57:
            q += 1
        if q == digits:
            return ST_MORE if q >= end else tok_fail(t, "invalid number: no digit after '.'", q)
    if q < end and (q[0] == 101 or q[0] == 69):
        q += 1
        if q < end and (q[0] == 43 or q[0] == 45):
            q += 1
        digits = q
        while q < end and 48 <= q[0] <= 57:
            q += 1
        if q == digits:
            return ST_MORE if q >= end else tok_fail(t, "invalid number: no digit in the exponent", q)
    if q >= end:
        return ST_MORE  # a number may go on in the next chunk
    if q - p > MAX_NUMBER:
        return tok_fail(t, "number too long", p)
    out.p = p
    out.n = q - p
    out.kind = J_NUM
    out.escaped = False
    after[0] = q
    return ST_OK


cdef int scan_literal(Tok* t, const uint8_t* p, const char* lit, Py_ssize_t n, int kind,
                      Span* out, const uint8_t** after) noexcept nogil:
    cdef Py_ssize_t avail = t.end - p
    if avail < n:
        if memcmp(p, lit, avail) == 0:
            return ST_MORE
        return tok_fail(t, "invalid literal", p)
    if memcmp(p, lit, n) != 0:
        return tok_fail(t, "invalid literal", p)
    out.p = p
    out.n = n
    out.kind = kind
    out.escaped = False
    after[0] = p + n
    return ST_OK


cdef int scan_value(Tok* t, const uint8_t* p, Span* out, const uint8_t** after) noexcept nogil:
    """Any JSON value at ``p`` (after whitespace); nested values are validated, not built.

    Arrays and objects are walked with an explicit stack of open brackets (no
    recursion), at most MAX_DEPTH deep.
    """
    cdef const uint8_t* end = t.end
    cdef const uint8_t* q
    cdef uint8_t c
    cdef int st
    cdef Span inner
    cdef int depth
    cdef uint8_t stack[MAX_DEPTH]
    cdef bint expect_value
    if p >= end:
        return ST_MORE
    c = p[0]
    if c == 34:
        return scan_string(t, p, out, after)
    if c == 45 or 48 <= c <= 57:
        return scan_number(t, p, out, after)
    if c == 116:
        return scan_literal(t, p, "true", 4, J_TRUE, out, after)
    if c == 102:
        return scan_literal(t, p, "false", 5, J_FALSE, out, after)
    if c == 110:
        return scan_literal(t, p, "null", 4, J_NULL, out, after)
    if c != 91 and c != 123:
        return tok_fail(t, "unexpected character: expected a value", p)
    # Container: state machine over '[' '{' with an explicit stack.
    depth = 1
    stack[0] = c
    q = p + 1
    expect_value = True  # right after an opening bracket: a value, a key or the closing bracket
    while depth > 0:
        q = skip_ws(q, end)
        if q >= end:
            return ST_MORE
        c = q[0]
        if expect_value:
            if (c == 93 and stack[depth - 1] == 91) or (c == 125 and stack[depth - 1] == 123):
                depth -= 1
                q += 1
                expect_value = False
                continue
            if stack[depth - 1] == 123:
                if c != 34:
                    return tok_fail(t, "expected a key string in an object", q)
                st = scan_string(t, q, &inner, &q)
                if st != ST_OK:
                    return st
                q = skip_ws(q, end)
                if q >= end:
                    return ST_MORE
                if q[0] != 58:
                    return tok_fail(t, "expected ':' after a key", q)
                q = skip_ws(q + 1, end)
                if q >= end:
                    return ST_MORE
                c = q[0]
            if c == 91 or c == 123:
                if depth >= MAX_DEPTH:
                    return tok_fail(t, "JSON nested too deeply", q)
                stack[depth] = c
                depth += 1
                q += 1
                continue
            st = scan_value(t, q, &inner, &q)
            if st != ST_OK:
                return st
            expect_value = False
            continue
        # After a value: ',' or the closing bracket.
        if c == 44:
            q += 1
            q = skip_ws(q, end)
            if q >= end:
                return ST_MORE
            if q[0] == 93 or q[0] == 125:
                return tok_fail(t, "trailing comma", q)
            expect_value = True
            continue
        if (c == 93 and stack[depth - 1] == 91) or (c == 125 and stack[depth - 1] == 123):
            depth -= 1
            q += 1
            continue
        return tok_fail(t, "expected ',' or a closing bracket", q)
    out.p = p
    out.n = q - p
    out.kind = J_ARR if p[0] == 91 else J_OBJ
    out.escaped = False
    after[0] = q
    return ST_OK


# --- numbers and times ---

cdef int parse_decimal(Span* s, uint64_t* mant, int* exp10, bint* neg, bint* exact) noexcept nogil:
    """Digits of a JSON number as mantissa x 10^exp10 (at most 19 significant digits kept)."""
    cdef const uint8_t* p = s.p
    cdef const uint8_t* end = s.p + s.n
    cdef uint64_t m = 0
    cdef int e = 0, digits = 0, ex = 0, exsign = 1
    cdef bint ok = True
    neg[0] = False
    if p < end and p[0] == 45:
        neg[0] = True
        p += 1
    while p < end and 48 <= p[0] <= 57:
        if digits < 19:
            m = m * 10 + (p[0] - 48)
            if m:
                digits += 1
        else:
            e += 1
            if p[0] != 48:
                ok = False
        p += 1
    if p < end and p[0] == 46:
        p += 1
        while p < end and 48 <= p[0] <= 57:
            if digits < 19:
                m = m * 10 + (p[0] - 48)
                if m:
                    digits += 1
                e -= 1
            elif p[0] != 48:
                ok = False
            p += 1
    if p < end and (p[0] == 101 or p[0] == 69):
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            exsign = -1 if p[0] == 45 else 1
            p += 1
        while p < end and 48 <= p[0] <= 57:
            if ex < 100000:
                ex = ex * 10 + (p[0] - 48)
            p += 1
    mant[0] = m
    exp10[0] = e + exsign * ex
    exact[0] = ok
    return 0


cdef int decimal_to_i128(uint64_t mant, int exp10, bint neg, int shift, i128* out) noexcept nogil:
    """mant x 10^(exp10 + shift), truncated toward minus infinity; -1 when out of range."""
    cdef int e = exp10 + shift
    cdef i128 v = <i128>mant
    cdef i128 limit = (<i128>1) << 100
    cdef bint dropped = False
    if mant == 0:
        out[0] = 0
        return 0
    while e > 0:
        if v > limit:
            return -1
        v *= 10
        e -= 1
    while e < 0:
        if v % 10:
            dropped = True
        v //= 10
        e += 1
        if v == 0:
            break
    if neg:
        v = -v
        if dropped:
            v -= 1
    out[0] = v
    return 0


cdef inline double span_double(Span* s) noexcept nogil:
    cdef char tmp[MAX_NUMBER + 1]
    memcpy(tmp, s.p, s.n)
    tmp[s.n] = 0
    return strtod(tmp, NULL)


cdef inline bint span_is_integer(Span* s) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(s.n):
        if s.p[i] == 46 or s.p[i] == 101 or s.p[i] == 69:
            return False
    return True


cdef int span_integer(Span* s, int64_t* out, bint* unsigned_big) noexcept nogil:
    """An integral JSON number (no fraction, no exponent): 0 with the value, -1 otherwise.

    Values in (int64 max, uint64 max] come back in ``out`` as their uint64
    bit pattern with ``unsigned_big`` set.
    """
    cdef const uint8_t* p = s.p
    cdef const uint8_t* end = s.p + s.n
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef uint64_t d
    unsigned_big[0] = False
    if s.kind != J_NUM or not span_is_integer(s):
        return -1
    if p < end and p[0] == 45:
        neg = True
        p += 1
    while p < end:
        d = p[0] - 48
        if v > (0xFFFFFFFFFFFFFFFFULL - d) // 10:
            return -1
        v = v * 10 + d
        p += 1
    if neg:
        if v > 0x8000000000000000ULL:
            return -1
        out[0] = <int64_t>(0 - v)
        return 0
    if v > 0x7FFFFFFFFFFFFFFFULL:
        unsigned_big[0] = True
    out[0] = <int64_t>v
    return 0


cdef inline int span_int64(Span* s, int64_t* out) noexcept nogil:
    cdef bint big
    if span_integer(s, out, &big) < 0 or big:
        return -1
    return 0


# --- the transcoder ---

@cython.final
cdef class KinetoTranscoder:
    """Streams Kineto / Chrome trace JSON into XSpace wire bytes (see the module docstring).

    Use: ``feed(chunk, final)`` until the input ends (it returns the bytes it
    consumed; pass the rest again with more data), then ``finish(...)``.
    """
    # interned strings
    cdef Buf arena
    cdef int64_t* s_off
    cdef int32_t* s_len
    cdef uint64_t* s_hash
    cdef Py_ssize_t s_n, s_cap
    cdef int32_t* s_slots
    cdef Py_ssize_t s_nslots
    cdef bint intern_full
    # per plane: a flag byte per string (1: event name, 2: stat name or value)
    cdef uint8_t** pflags
    cdef int64_t* pdevice           # device index per plane (-1 host, -2 flows)
    cdef Py_ssize_t n_planes
    cdef bint object_form           # the document is {"traceEvents": [...], ...}, not a bare array
    # lines
    cdef Line* lines
    cdef Py_ssize_t n_lines, cap_lines
    cdef int64_t* l_slots
    cdef Py_ssize_t l_nslots
    cdef Py_ssize_t last_line
    # correlation id -> op name (filled in finish)
    # parse state
    cdef int state
    cdef int64_t offset             # absolute offset of the current chunk
    cdef int64_t n_events           # events seen (the error path's index)
    cdef Arg* args
    cdef Py_ssize_t args_cap
    cdef Buf scratch                # unescaped strings, built stat texts
    cdef Buf scratch2
    cdef bint have_base
    cdef int64_t base_us
    cdef public list top_items      # (key, raw JSON bytes) of top-level keys other than traceEvents
    cdef public list metadata       # (name, pid_key, tid_key, arg name, str id or int) of 'M' events
    cdef public int64_t skipped     # B/E and unknown-phase events, not decoded
    cdef public int64_t negative_durations
    cdef int64_t ph_counts[256]
    cdef uint8_t stat_tag           # 0x22 (XEvent.stats) or 0x32 (XPlane.stats)
    # well-known string ids
    cdef int32_t id_correlation_id, id_kernel_details, id_step_num, id_cat, id_tf_op, id_ph, id_enclosing_op
    cdef int32_t id_flow_id, id_bp, id_alloc, id_dealloc, id_bytes_allocated, id_bytes_reserved
    cdef int32_t id_bytes_available, id_allocation_bytes, id_requested_bytes, id_addr, id_allocator_name
    cdef int32_t id_flow_phase[3]
    cdef int32_t id_ph_names[4]
    # the last error
    cdef const char* err_msg
    cdef int64_t err_offset
    cdef str err_path

    def __cinit__(self):
        self.s_nslots = 0
        self.l_nslots = 0
        self.state = T_BEGIN
        self.offset = 0
        self.have_base = False
        self.base_us = 0
        self.top_items = []
        self.metadata = []
        self.stat_tag = 0x22
        self.last_line = -1
        if self.grow_strings() < 0 or self.grow_lines() < 0:
            raise MemoryError()
        self.add_plane(-1)  # PLANE_HOST
        self.add_plane(-2)  # PLANE_FLOWS
        self.id_correlation_id = self.intern_c(b"correlation_id", 14)
        self.id_kernel_details = self.intern_c(b"kernel_details", 14)
        self.id_step_num = self.intern_c(b"step_num", 8)
        self.id_cat = self.intern_c(b"cat", 3)
        self.id_tf_op = self.intern_c(b"tf_op", 5)
        self.id_enclosing_op = self.intern_c(b"enclosing_op", 12)
        self.id_ph = self.intern_c(b"ph", 2)
        self.id_flow_id = self.intern_c(b"flow_id", 7)
        self.id_bp = self.intern_c(b"bp", 2)
        self.id_alloc = self.intern_c(b"MemoryAllocation", 16)
        self.id_dealloc = self.intern_c(b"MemoryDeallocation", 18)
        self.id_bytes_allocated = self.intern_c(b"bytes_allocated", 15)
        self.id_bytes_reserved = self.intern_c(b"bytes_reserved", 14)
        self.id_bytes_available = self.intern_c(b"bytes_available", 15)
        self.id_allocation_bytes = self.intern_c(b"allocation_bytes", 16)
        self.id_requested_bytes = self.intern_c(b"requested_bytes", 15)
        self.id_addr = self.intern_c(b"addr", 4)
        self.id_allocator_name = self.intern_c(b"allocator_name", 14)
        self.id_flow_phase[0] = self.intern_c(b"s", 1)
        self.id_flow_phase[1] = self.intern_c(b"t", 1)
        self.id_flow_phase[2] = self.intern_c(b"f", 1)
        self.id_ph_names[0] = self.intern_c(b"i", 1)
        self.id_ph_names[1] = self.intern_c(b"I", 1)
        self.id_ph_names[2] = self.intern_c(b"C", 1)
        self.id_ph_names[3] = self.intern_c(b"X", 1)

    def __dealloc__(self):
        cdef Py_ssize_t i
        free(self.arena.data)
        free(self.s_off)
        free(self.s_len)
        free(self.s_hash)
        free(self.s_slots)
        for i in range(self.n_lines):
            free(self.lines[i].payload.data)
            free(self.lines[i].ev)
        free(self.lines)
        free(self.l_slots)
        free(self.args)
        free(self.scratch.data)
        free(self.scratch2.data)
        for i in range(self.n_planes):
            free(self.pflags[i])
        free(self.pflags)
        free(self.pdevice)

    # ---- strings ----

    cdef int grow_strings(self) except -1:
        cdef Py_ssize_t cap = self.s_cap * 2 if self.s_cap else 1024
        cdef Py_ssize_t i, j, nslots
        cdef int32_t* slots
        self.s_off = <int64_t*>realloc(self.s_off, cap * sizeof(int64_t))
        self.s_len = <int32_t*>realloc(self.s_len, cap * sizeof(int32_t))
        self.s_hash = <uint64_t*>realloc(self.s_hash, cap * sizeof(uint64_t))
        if self.s_off == NULL or self.s_len == NULL or self.s_hash == NULL:
            raise MemoryError()
        for i in range(self.n_planes):
            self.pflags[i] = <uint8_t*>realloc(self.pflags[i], cap)
            if self.pflags[i] == NULL:
                raise MemoryError()
            memset(self.pflags[i] + self.s_cap, 0, cap - self.s_cap)
        self.s_cap = cap
        nslots = cap * 2
        slots = <int32_t*>malloc(nslots * sizeof(int32_t))
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0xFF, nslots * sizeof(int32_t))
        for i in range(self.s_n):
            j = self.s_hash[i] & (nslots - 1)
            while slots[j] >= 0:
                j = (j + 1) & (nslots - 1)
            slots[j] = <int32_t>i
        free(self.s_slots)
        self.s_slots = slots
        self.s_nslots = nslots
        return 0

    cdef int32_t intern_c(self, const uint8_t* p, Py_ssize_t n) except -2:
        """The id of a string (interned on first sight); -1 when the table is full."""
        cdef uint64_t h = hash_bytes(p, n)
        cdef Py_ssize_t j = h & (self.s_nslots - 1)
        cdef int32_t k
        while True:
            k = self.s_slots[j]
            if k < 0:
                break
            if self.s_hash[k] == h and self.s_len[k] == n and memcmp(self.arena.data + self.s_off[k], p, n) == 0:
                return k
            j = (j + 1) & (self.s_nslots - 1)
        if self.intern_full:
            return -1
        if self.s_n + 1 > self.s_cap:
            self.grow_strings()
            return self.intern_c(p, n)
        if buf_reserve(&self.arena, n) < 0:
            raise MemoryError()
        k = <int32_t>self.s_n
        self.s_off[k] = self.arena.n
        self.s_len[k] = <int32_t>n
        self.s_hash[k] = h
        put_bytes(&self.arena, p, n)
        self.s_slots[j] = k
        self.s_n += 1
        if self.s_n >= 0x3FFFFFFF or self.arena.n > (<Py_ssize_t>1 << 31):
            self.intern_full = True  # later new strings are written inline
        return k

    cdef inline void mark(self, int32_t plane, int32_t sid, uint8_t bit) noexcept:
        if sid >= 0:
            self.pflags[plane][sid] |= bit

    cdef int32_t add_plane(self, int64_t device) except -1:
        cdef Py_ssize_t n = self.n_planes
        self.pflags = <uint8_t**>realloc(self.pflags, (n + 1) * sizeof(uint8_t*))
        self.pdevice = <int64_t*>realloc(self.pdevice, (n + 1) * sizeof(int64_t))
        if self.pflags == NULL or self.pdevice == NULL:
            raise MemoryError()
        self.pflags[n] = <uint8_t*>malloc(self.s_cap if self.s_cap else 1)
        if self.pflags[n] == NULL:
            raise MemoryError()
        memset(self.pflags[n], 0, self.s_cap)
        self.pdevice[n] = device
        self.n_planes = n + 1
        return <int32_t>n

    cdef int32_t device_plane(self, int64_t device) except -2:
        cdef Py_ssize_t i
        for i in range(2, self.n_planes):
            if self.pdevice[i] == device:
                return <int32_t>i
        if self.n_planes >= 2 + MAX_DEVICES:
            return -1
        return self.add_plane(device)

    # ---- lines ----

    cdef int grow_lines(self) except -1:
        cdef Py_ssize_t cap = self.cap_lines * 2 if self.cap_lines else 64
        cdef Py_ssize_t nslots = cap * 2, i, j
        cdef int64_t* slots
        cdef Line* ln
        self.lines = <Line*>realloc(self.lines, cap * sizeof(Line))
        if self.lines == NULL:
            raise MemoryError()
        self.cap_lines = cap
        slots = <int64_t*>malloc(nslots * sizeof(int64_t))
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0xFF, nslots * sizeof(int64_t))
        for i in range(self.n_lines):
            ln = &self.lines[i]
            j = self.line_hash(ln.plane, ln.pid_key, ln.tid_key, ln.kind) & (nslots - 1)
            while slots[j] >= 0:
                j = (j + 1) & (nslots - 1)
            slots[j] = i
        free(self.l_slots)
        self.l_slots = slots
        self.l_nslots = nslots
        return 0

    cdef inline uint64_t line_hash(self, int32_t plane, int64_t pid_key, int64_t tid_key, int32_t kind) noexcept:
        return hash_int(<uint64_t>pid_key * 31 + <uint64_t>tid_key * 1000003 + <uint64_t>plane * 7 + <uint64_t>kind)

    cdef Py_ssize_t line_of(self, int32_t plane, int64_t pid_key, int64_t tid_key, int32_t kind) except -1:
        cdef Line* ln
        cdef Py_ssize_t j, i
        if self.last_line >= 0:
            ln = &self.lines[self.last_line]
            if ln.plane == plane and ln.pid_key == pid_key and ln.tid_key == tid_key and ln.kind == kind:
                return self.last_line
        j = self.line_hash(plane, pid_key, tid_key, kind) & (self.l_nslots - 1)
        while True:
            i = self.l_slots[j]
            if i < 0:
                break
            ln = &self.lines[i]
            if ln.plane == plane and ln.pid_key == pid_key and ln.tid_key == tid_key and ln.kind == kind:
                self.last_line = i
                return i
            j = (j + 1) & (self.l_nslots - 1)
        if self.n_lines + 1 > self.cap_lines:
            self.grow_lines()
            return self.line_of(plane, pid_key, tid_key, kind)
        i = self.n_lines
        ln = &self.lines[i]
        memset(ln, 0, sizeof(Line))
        ln.plane = plane
        ln.pid_key = pid_key
        ln.tid_key = tid_key
        ln.kind = kind
        self.l_slots[j] = i
        self.n_lines += 1
        self.last_line = i
        return i

    # ---- errors ----

    cdef int fail(self, const char* msg, const uint8_t* at, const uint8_t* base, str where) noexcept:
        self.err_msg = msg
        self.err_offset = self.offset + (at - base)
        self.err_path = where
        return -1

    def error(self):
        """(message, byte offset, path) of the failure, or None."""
        if self.err_msg == NULL:
            return None
        return (self.err_msg.decode("utf-8", "replace"), self.err_offset, self.err_path)

    # ---- keys of pid / tid ----

    cdef int64_t id_key(self, Span* s) except? -1:
        """A line key from a pid or tid: integers as they are, digit strings as integers, other strings interned."""
        cdef int64_t v
        cdef Py_ssize_t i
        cdef bint digits
        cdef int32_t sid
        if s.kind == J_NUM:
            if span_int64(s, &v) == 0:
                return v & ~(<int64_t>TAG_STRING)
            return 0
        if s.kind == J_STR:
            digits = 0 < s.n <= 18 and not s.escaped
            for i in range(s.n):
                if not (48 <= s.p[i] <= 57):
                    digits = False
                    break
            if digits:
                v = 0
                for i in range(s.n):
                    v = v * 10 + (s.p[i] - 48)
                return v
            sid = self.intern_span(s)
            if sid < 0:
                return TAG_STRING | 0x3FFFFFFF
            return TAG_STRING | sid
        return 0

    cdef int32_t intern_span(self, Span* s) except -2:
        """Intern a string span (unescaped) or a raw JSON text; -1 when it must go inline."""
        cdef Py_ssize_t n
        if s.kind == J_STR and s.escaped:
            n = self.unescape(s)
            if n > INTERN_MAX_LEN:
                return -1
            return self.intern_c(self.scratch.data, n)
        if s.n > INTERN_MAX_LEN:
            return -1
        return self.intern_c(s.p, s.n)

    cdef Py_ssize_t unescape(self, Span* s) except -1:
        """Unescape a string span into ``scratch`` (UTF-8); returns its length."""
        cdef const uint8_t* p = s.p
        cdef const uint8_t* end = s.p + s.n
        cdef uint32_t cp, lo
        cdef uint8_t c
        cdef uint8_t* o
        self.scratch.n = 0
        if buf_reserve(&self.scratch, s.n + 8) < 0:
            raise MemoryError()
        o = self.scratch.data
        while p < end:
            c = p[0]
            if c != 92:
                o[0] = c
                o += 1
                p += 1
                continue
            c = p[1]
            p += 2
            if c == 117:
                cp = (hex_value(p[0]) << 12) | (hex_value(p[1]) << 8) | (hex_value(p[2]) << 4) | hex_value(p[3])
                p += 4
                if 0xD800 <= cp < 0xDC00 and p + 6 <= end and p[0] == 92 and p[1] == 117:
                    lo = (hex_value(p[2]) << 12) | (hex_value(p[3]) << 8) | (hex_value(p[4]) << 4) | hex_value(p[5])
                    if 0xDC00 <= lo < 0xE000:
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        p += 6
                if 0xD800 <= cp < 0xE000:
                    cp = 0xFFFD  # a lone surrogate
                if cp < 0x80:
                    o[0] = <uint8_t>cp
                    o += 1
                elif cp < 0x800:
                    o[0] = <uint8_t>(0xC0 | (cp >> 6))
                    o[1] = <uint8_t>(0x80 | (cp & 0x3F))
                    o += 2
                elif cp < 0x10000:
                    o[0] = <uint8_t>(0xE0 | (cp >> 12))
                    o[1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
                    o[2] = <uint8_t>(0x80 | (cp & 0x3F))
                    o += 3
                else:
                    o[0] = <uint8_t>(0xF0 | (cp >> 18))
                    o[1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
                    o[2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
                    o[3] = <uint8_t>(0x80 | (cp & 0x3F))
                    o += 4
                continue
            if c == 98:
                o[0] = 8
            elif c == 102:
                o[0] = 12
            elif c == 110:
                o[0] = 10
            elif c == 114:
                o[0] = 13
            elif c == 116:
                o[0] = 9
            else:
                o[0] = c
            o += 1
        return o - self.scratch.data

    # ---- the stream ----

    def feed(self, const uint8_t[::1] data, bint final=False):
        """Consume the complete units of ``data``; returns the bytes consumed.

        ``data`` must start where the previous call stopped. With ``final``
        the input ends here: an incomplete unit is an error. Returns -1 on
        bad input (see :meth:`error`).
        """
        cdef const uint8_t* base = &data[0] if data.shape[0] else <const uint8_t*>b""
        cdef const uint8_t* end = base + data.shape[0]
        cdef const uint8_t* p = base
        cdef const uint8_t* unit
        cdef const uint8_t* after
        cdef Tok t
        cdef Span key, value
        cdef int st
        t.end = end
        t.msg = NULL
        while True:
            p = skip_ws(p, end)
            unit = p
            if p >= end:
                break
            if self.state == T_BEGIN:
                if p[0] == 123:
                    self.state = T_KEY
                    self.object_form = True
                elif p[0] == 91:
                    self.state = T_EVENTS
                else:
                    return self.fail("not a trace: expected '{' or '[' at the start", p, base, "$")
                p += 1
                continue
            if self.state == T_DONE:
                return self.fail("data after the end of the trace", p, base, "$")
            if self.state == T_KEY or self.state == T_KEY_NEXT:
                if self.state == T_KEY_NEXT:
                    if p[0] == 44:
                        after = skip_ws(p + 1, end)
                        if after >= end:
                            break
                        if after[0] != 34:
                            return self.fail("expected a key after ','", after, base, "$")
                        p = after
                        self.state = T_KEY
                        continue
                    if p[0] == 125:
                        self.state = T_DONE
                        p += 1
                        continue
                    return self.fail("expected ',' or '}' in the top-level object", p, base, "$")
                if p[0] == 125:
                    self.state = T_DONE
                    p += 1
                    continue
                if p[0] != 34:
                    return self.fail("expected a key in the top-level object", p, base, "$")
                st = scan_string(&t, p, &key, &after)
                if st == ST_MORE:
                    break
                if st == ST_ERROR:
                    return self.fail(t.msg, t.at, base, "$")
                after = skip_ws(after, end)
                if after >= end:
                    break
                if after[0] != 58:
                    return self.fail("expected ':' after a key", after, base, "$")
                after = skip_ws(after + 1, end)
                if after >= end:
                    break
                if span_is(&key, "traceEvents", 11):
                    if after[0] != 91:
                        return self.fail("traceEvents is not an array", after, base, "traceEvents")
                    self.state = T_EVENTS
                    p = after + 1
                    continue
                st = scan_value(&t, after, &value, &p)
                if st == ST_MORE:
                    p = unit
                    break
                if st == ST_ERROR:
                    return self.fail(t.msg, t.at, base, "$")
                self.top_items.append((self.span_text(&key), bytes((<const char*>value.p)[:value.n])))
                self.state = T_KEY_NEXT
                continue
            if self.state == T_EVENTS_NEXT:
                if p[0] == 44:
                    after = skip_ws(p + 1, end)
                    if after >= end:
                        break
                    if after[0] == 93:
                        return self.fail("trailing comma", after, base, "traceEvents")
                    p = after
                    self.state = T_EVENTS
                    continue
                if p[0] == 93:
                    p += 1
                    self.state = T_KEY_NEXT if self.object_form else T_DONE
                    continue
                return self.fail("expected ',' or ']' after a trace event", p, base, "traceEvents")
            # T_EVENTS
            if p[0] == 93:
                p += 1
                self.state = T_KEY_NEXT if self.object_form else T_DONE
                continue
            if p[0] != 123:
                return self.fail("a trace event is not an object", p, base, f"traceEvents[{self.n_events}]")
            st = self.event(&t, p, base, &after)
            if st == ST_MORE:
                p = unit
                break
            if st == ST_ERROR:
                return -1
            self.n_events += 1
            p = after
            self.state = T_EVENTS_NEXT
        if final:
            if self.state == T_DONE or (self.state == T_EVENTS_NEXT and not self.object_form):
                # Chrome's array form may omit the closing ']'.
                self.state = T_DONE
            else:
                return self.fail("truncated trace: the JSON ends early", end, base,
                                 f"traceEvents[{self.n_events}]" if self.state in (T_EVENTS, T_EVENTS_NEXT) else "$")
        consumed = p - base
        self.offset += consumed
        return consumed

    cdef str span_text(self, Span* s):
        cdef Py_ssize_t n
        if s.escaped:
            n = self.unescape(s)
            return (<const char*>self.scratch.data)[:n].decode("utf-8", "replace")
        return (<const char*>s.p)[:s.n].decode("utf-8", "replace")

    # ---- one event ----

    cdef int grow_args(self) except -1:
        cdef Py_ssize_t cap = self.args_cap * 2 if self.args_cap else 64
        self.args = <Arg*>realloc(self.args, cap * sizeof(Arg))
        if self.args == NULL:
            raise MemoryError()
        self.args_cap = cap
        return 0

    cdef int tokenize(self, Tok* t, const uint8_t* p, EvTok* ev, const uint8_t** after) except -1:
        """Phase 1: the fields and args of one event object as spans (no side effect but ``args``)."""
        cdef const uint8_t* end = t.end
        cdef const uint8_t* q = p + 1
        cdef Span key, value
        cdef Span* field
        cdef int st
        memset(ev, 0, sizeof(EvTok))
        q = skip_ws(q, end)
        if q >= end:
            return ST_MORE
        if q[0] == 125:
            after[0] = q + 1
            return ST_OK
        while True:
            if q[0] != 34:
                return tok_fail(t, "expected a key string in a trace event", q)
            st = scan_string(t, q, &key, &q)
            if st != ST_OK:
                return st
            q = skip_ws(q, end)
            if q >= end:
                return ST_MORE
            if q[0] != 58:
                return tok_fail(t, "expected ':' after a key", q)
            q = skip_ws(q + 1, end)
            if q >= end:
                return ST_MORE
            if span_is(&key, "args", 4) and q[0] == 123:
                st = self.tokenize_args(t, q, ev, &q)
                if st != ST_OK:
                    return st
            else:
                st = scan_value(t, q, &value, &q)
                if st != ST_OK:
                    return st
                field = NULL
                if key.n <= 4 and not key.escaped:
                    if span_is(&key, "ph", 2):
                        field = &ev.ph
                    elif span_is(&key, "ts", 2):
                        field = &ev.ts
                    elif span_is(&key, "pid", 3):
                        field = &ev.pid
                    elif span_is(&key, "tid", 3):
                        field = &ev.tid
                    elif span_is(&key, "dur", 3):
                        field = &ev.dur
                    elif span_is(&key, "name", 4):
                        field = &ev.name
                    elif span_is(&key, "cat", 3):
                        field = &ev.cat
                    elif span_is(&key, "id", 2):
                        field = &ev.id
                    elif span_is(&key, "bp", 2):
                        field = &ev.bp
                    elif span_is(&key, "s", 1):
                        field = &ev.s
                if field != NULL:
                    field[0] = value
            q = skip_ws(q, end)
            if q >= end:
                return ST_MORE
            if q[0] == 44:
                q = skip_ws(q + 1, end)
                if q >= end:
                    return ST_MORE
                continue
            if q[0] == 125:
                after[0] = q + 1
                return ST_OK
            return tok_fail(t, "expected ',' or '}' in a trace event", q)

    cdef int tokenize_args(self, Tok* t, const uint8_t* p, EvTok* ev, const uint8_t** after) except -1:
        cdef const uint8_t* end = t.end
        cdef const uint8_t* q = skip_ws(p + 1, end)
        cdef Span key, value
        cdef int st
        ev.has_args = True
        if q >= end:
            return ST_MORE
        if q[0] == 125:
            after[0] = q + 1
            return ST_OK
        while True:
            if q[0] != 34:
                return tok_fail(t, "expected a key string in args", q)
            st = scan_string(t, q, &key, &q)
            if st != ST_OK:
                return st
            q = skip_ws(q, end)
            if q >= end:
                return ST_MORE
            if q[0] != 58:
                return tok_fail(t, "expected ':' after a key", q)
            q = skip_ws(q + 1, end)
            st = scan_value(t, q, &value, &q)
            if st != ST_OK:
                return st
            if ev.nargs == self.args_cap:
                self.grow_args()
            self.args[ev.nargs].key = key
            self.args[ev.nargs].value = value
            ev.nargs += 1
            q = skip_ws(q, end)
            if q >= end:
                return ST_MORE
            if q[0] == 44:
                q = skip_ws(q + 1, end)
                if q >= end:
                    return ST_MORE
                continue
            if q[0] == 125:
                after[0] = q + 1
                return ST_OK
            return tok_fail(t, "expected ',' or '}' in args", q)

    cdef int time_ps(self, Span* s, bint is_start, int64_t* out) except -2:
        """A ts or dur in microseconds as int64 picoseconds (ts shifted by the base); -1 if out of range."""
        cdef uint64_t m
        cdef int e
        cdef bint neg, exact
        cdef i128 v, whole
        parse_decimal(s, &m, &e, &neg, &exact)
        if decimal_to_i128(m, e, neg, 6, &v) < 0:
            return -1
        if is_start:
            if not self.have_base:
                self.have_base = True
                whole = v // 1000000
                if whole >= 8000000000000 or whole <= -8000000000000:
                    self.base_us = <int64_t>((whole >> 36) - 1) << 36
            v -= (<i128>self.base_us) * 1000000
        if v > <i128>9223372036854775807LL or v < -(<i128>9223372036854775807LL):
            return -1
        out[0] = <int64_t>v
        return 0

    cdef int event(self, Tok* t, const uint8_t* p, const uint8_t* base, const uint8_t** after) except -2:
        """Tokenize one event, then encode it into its line; ST_MORE leaves no trace behind."""
        cdef EvTok ev
        cdef int st = self.tokenize(t, p, &ev, after)
        if st == ST_MORE:
            return ST_MORE
        if st == ST_ERROR:
            self.fail(t.msg, t.at, base, f"traceEvents[{self.n_events}]")
            return ST_ERROR
        if self.encode(&ev, p, base) < 0:
            return ST_ERROR
        return ST_OK

    cdef Span* arg(self, EvTok* ev, const char* name, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i
        for i in range(ev.nargs):
            if span_is(&self.args[i].key, name, n):
                return &self.args[i].value
        return NULL

    cdef int encode(self, EvTok* ev, const uint8_t* p, const uint8_t* base) except -2:
        cdef uint8_t ph
        cdef int32_t name_id, cat_id, plane, kind = 0, sid, key_id
        cdef int64_t start_ps = 0, dur_ps = 0, v, dev, corr = 0, pid_key, tid_key
        cdef Py_ssize_t li, i, n, ev_start
        cdef Line* ln
        cdef Span* a
        cdef Span* val
        cdef EvRec* rec
        cdef bint is_kernel = False, is_device = False, is_op = False, is_flow = False, is_memory = False
        cdef int32_t flags = 0
        cdef bint big
        cdef Buf* b
        if ev.ph.kind != J_STR or ev.ph.n != 1:
            return self.fail("trace event without a one-letter 'ph'", p, base, f"traceEvents[{self.n_events}]")
        ph = ev.ph.p[0]
        self.ph_counts[ph] += 1
        if ph == 77:  # 'M': process and thread names
            return self.metadata_event(ev)
        if ph == 115 or ph == 116 or ph == 102:  # 's' 't' 'f': flow endpoints
            is_flow = True
        elif not (ph == 88 or ph == 105 or ph == 73 or ph == 67):  # 'X' 'i' 'I' 'C'
            self.skipped += 1
            return 0
        if ev.ts.kind != J_NUM:
            return self.fail("trace event without a numeric 'ts'", p, base, f"traceEvents[{self.n_events}]")
        if self.time_ps(&ev.ts, True, &start_ps) < 0:
            return self.fail("timestamp out of range", ev.ts.p, base, f"traceEvents[{self.n_events}].ts")
        if ev.dur.kind == J_NUM:
            if self.time_ps(&ev.dur, False, &dur_ps) < 0:
                return self.fail("duration out of range", ev.dur.p, base, f"traceEvents[{self.n_events}].dur")
            if dur_ps < 0:
                self.negative_durations += 1
                dur_ps = 0
        elif ev.dur.kind != J_NONE:
            return self.fail("'dur' is not a number", ev.dur.p, base, f"traceEvents[{self.n_events}].dur")
        # names
        if ev.name.kind == J_STR:
            if ev.name.escaped:
                n = self.unescape(&ev.name)
                name_id = self.intern_c(self.scratch.data, n)
            else:
                name_id = self.intern_c(ev.name.p, ev.name.n)
        else:
            name_id = self.intern_c(<const uint8_t*>b"", 0)
        cat_id = self.intern_span(&ev.cat) if ev.cat.kind == J_STR else -1
        if ev.cat.kind == J_STR and not ev.cat.escaped:
            if span_is(&ev.cat, "kernel", 6) or span_is(&ev.cat, "Kernel", 6):
                is_kernel = is_device = True
            elif (span_is(&ev.cat, "gpu_memcpy", 10) or span_is(&ev.cat, "gpu_memset", 10)
                  or span_is(&ev.cat, "Memcpy", 6) or span_is(&ev.cat, "Memset", 6)):
                is_device = True
            elif span_is(&ev.cat, "gpu_user_annotation", 19):
                is_device = True
                kind = LINE_ANNOTATIONS
            elif span_is(&ev.cat, "cpu_op", 6) or span_is(&ev.cat, "Operator", 8):
                is_op = True
        if (ph == 105 or ph == 73) and span_is(&ev.name, "[memory]", 8):
            a = self.arg(ev, "Bytes", 5)
            if a != NULL and span_int64(a, &v) == 0:
                is_memory = True
                name_id = self.id_alloc if v >= 0 else self.id_dealloc
        # the line
        pid_key = self.id_key(&ev.pid)
        tid_key = self.id_key(&ev.tid)
        if is_flow:
            plane = PLANE_FLOWS
        elif is_device:
            a = self.arg(ev, "device", 6)
            dev = pid_key
            if a != NULL and a.kind == J_NUM and span_int64(a, &v) == 0:
                dev = v
            if dev & TAG_STRING or dev < 0:
                dev = 0
            plane = self.device_plane(dev)
            if plane < 0:
                return self.fail("too many GPU devices", p, base, f"traceEvents[{self.n_events}]")
            pid_key = dev
            a = self.arg(ev, "stream", 6)
            if a != NULL and (a.kind == J_NUM or a.kind == J_STR):
                tid_key = self.id_key(a)
        else:
            plane = PLANE_HOST
        li = self.line_of(plane, pid_key, tid_key, kind)
        ln = &self.lines[li]
        b = &ln.payload
        if buf_reserve(b, 64) < 0:
            raise MemoryError()
        ev_start = b.n
        self.mark(plane, name_id, 1)
        # XEvent: metadata_id, offset_ps, duration_ps, stats
        b.data[b.n] = 0x08
        b.n += 1
        put_varint(b, <uint64_t>(name_id + 1))
        b.data[b.n] = 0x10
        b.n += 1
        put_varint(b, <uint64_t>start_ps)
        if dur_ps:
            b.data[b.n] = 0x18
            b.n += 1
            put_varint(b, <uint64_t>dur_ps)
        if cat_id >= 0:
            self.stat_ref(b, plane, self.id_cat, cat_id)
        if is_flow:
            self.stat_ref(b, plane, self.id_ph, self.id_flow_phase[0 if ph == 115 else (1 if ph == 116 else 2)])
            if ev.id.kind == J_NUM and span_int64(&ev.id, &v) == 0:
                self.stat_int(b, plane, self.id_flow_id, v)
            elif ev.id.kind == J_STR:
                self.stat_value(b, plane, self.id_flow_id, &ev.id)
            if ev.bp.kind == J_STR:
                self.stat_value(b, plane, self.id_bp, &ev.bp)
        elif ph != 88:
            self.stat_ref(b, plane, self.id_ph, self.id_ph_names[0 if ph == 105 else (1 if ph == 73 else 2)])
        # args, in file order
        for i in range(ev.nargs):
            a = &self.args[i].key
            val = &self.args[i].value
            if val.kind == J_NULL:
                continue
            key_id = self.intern_span(a)
            if key_id < 0:
                continue
            self.stat_value(b, plane, key_id, val)
            if span_is(a, "correlation", 11) and span_int64(val, &v) == 0:
                corr = v
                self.stat_int(b, plane, self.id_correlation_id, v)
        # what XProf's tools read
        if is_kernel:
            self.kernel_details(b, plane, ev)
        if ev.name.kind == J_STR and ev.name.n > 13 and memcmp(ev.name.p, b"ProfilerStep#", 13) == 0:
            n = 13
            v = 0
            while n < ev.name.n and 48 <= ev.name.p[n] <= 57 and n < 31:
                v = v * 10 + (ev.name.p[n] - 48)
                n += 1
            if n == ev.name.n:
                self.stat_int(b, plane, self.id_step_num, v)
        if is_memory:
            self.memory_stats(b, plane, ev)
            flags |= F_MEMORY
        if is_op:
            flags |= F_OP
        if is_device and corr:
            flags |= F_DEVICE
        # the event record
        if ln.n == ln.cap:
            ln.cap = ln.cap * 2 if ln.cap else 4
            ln.ev = <EvRec*>realloc(ln.ev, ln.cap * sizeof(EvRec))
            if ln.ev == NULL:
                raise MemoryError()
        rec = &ln.ev[ln.n]
        rec.start_ps = start_ps
        rec.dur_ps = dur_ps
        rec.off = ev_start
        rec.len = <int32_t>(b.n - ev_start)
        rec.name = name_id
        rec.flags = flags
        rec.corr = corr
        rec.extra = -1
        if ln.n and (start_ps < ln.last_start or (start_ps == ln.last_start and dur_ps > ln.last_dur)):
            ln.unsorted = True
        ln.last_start = start_ps
        ln.last_dur = dur_ps
        ln.n += 1
        if b.n - ev_start > 0x7FFFFFFF:
            return self.fail("trace event too large", p, base, f"traceEvents[{self.n_events}]")
        return 0

    # ---- stats ----

    cdef int stat_header(self, Buf* b, int32_t plane, int32_t key, Py_ssize_t body) except -1:
        """Reserve and write the XEvent.stats tag, the XStat length and its metadata id."""
        cdef Py_ssize_t n = body + 1 + varint_size(<uint64_t>(key + 1))
        if buf_reserve(b, n + 12) < 0:
            raise MemoryError()
        self.mark(plane, key, 2)
        b.data[b.n] = self.stat_tag
        b.n += 1
        put_varint(b, <uint64_t>n)
        b.data[b.n] = 0x08
        b.n += 1
        put_varint(b, <uint64_t>(key + 1))
        return 0

    cdef int stat_int(self, Buf* b, int32_t plane, int32_t key, int64_t v) except -1:
        self.stat_header(b, plane, key, 1 + varint_size(<uint64_t>v))
        b.data[b.n] = 0x20
        b.n += 1
        put_varint(b, <uint64_t>v)
        return 0

    cdef int stat_uint(self, Buf* b, int32_t plane, int32_t key, uint64_t v) except -1:
        self.stat_header(b, plane, key, 1 + varint_size(v))
        b.data[b.n] = 0x18
        b.n += 1
        put_varint(b, v)
        return 0

    cdef int stat_double(self, Buf* b, int32_t plane, int32_t key, double d) except -1:
        self.stat_header(b, plane, key, 9)
        b.data[b.n] = 0x11
        b.n += 1
        memcpy(b.data + b.n, &d, 8)  # little-endian hosts only, as the decoder
        b.n += 8
        return 0

    cdef int stat_ref(self, Buf* b, int32_t plane, int32_t key, int32_t sid) except -1:
        self.mark(plane, sid, 2)
        self.stat_header(b, plane, key, 1 + varint_size(<uint64_t>(sid + 1)))
        b.data[b.n] = 0x38
        b.n += 1
        put_varint(b, <uint64_t>(sid + 1))
        return 0

    cdef int stat_text(self, Buf* b, int32_t plane, int32_t key, const uint8_t* s, Py_ssize_t n) except -1:
        self.stat_header(b, plane, key, 1 + varint_size(<uint64_t>n) + n)
        if buf_reserve(b, n + 12) < 0:
            raise MemoryError()
        b.data[b.n] = 0x2A
        b.n += 1
        put_varint(b, <uint64_t>n)
        put_bytes(b, s, n)
        return 0

    cdef int stat_value(self, Buf* b, int32_t plane, int32_t key, Span* val) except -1:
        """An argument as a typed stat: integers, doubles, interned strings and JSON texts."""
        cdef int64_t v
        cdef bint big
        cdef int32_t sid
        cdef Py_ssize_t n
        cdef double d
        if val.kind == J_NUM:
            if span_integer(val, &v, &big) == 0:
                if big:
                    return self.stat_uint(b, plane, key, <uint64_t>v)
                return self.stat_int(b, plane, key, v)
            d = span_double(val)
            return self.stat_double(b, plane, key, d)
        if val.kind == J_TRUE or val.kind == J_FALSE:
            return self.stat_int(b, plane, key, 1 if val.kind == J_TRUE else 0)
        sid = self.intern_span(val)
        if sid >= 0:
            return self.stat_ref(b, plane, key, sid)
        if val.kind == J_STR and val.escaped:
            n = self.unescape(val)
            return self.stat_text(b, plane, key, self.scratch.data, n)
        return self.stat_text(b, plane, key, val.p, val.n)

    cdef int dims(self, Span* s, int64_t* out) noexcept:
        """Up to three integers of a JSON array such as [1024, 1, 1] (missing ones stay as they are)."""
        cdef const uint8_t* q
        cdef const uint8_t* end
        cdef Span num
        cdef int k = 0
        cdef int64_t v
        if s == NULL or s.kind != J_ARR:
            return 0
        q = s.p + 1
        end = s.p + s.n
        while q < end and k < 3:
            while q < end and not (q[0] == 45 or 48 <= q[0] <= 57):
                q += 1
            num.p = q
            while q < end and (q[0] == 45 or 48 <= q[0] <= 57 or q[0] == 46):
                q += 1
            num.n = q - num.p
            num.kind = J_NUM
            if num.n and span_int64(&num, &v) == 0:
                out[k] = v
                k += 1
        return k

    cdef int kernel_details(self, Buf* b, int32_t plane, EvTok* ev) except -1:
        """XProf's ``kernel_details`` text from Kineto's kernel args (registers, shared memory, grid, block).

        Kineto records one shared-memory figure (static + dynamic): it goes in
        ``static_shared``. The occupancy is Kineto's estimate.
        """
        cdef int64_t regs = 0, shared = 0
        cdef int64_t grid[3]
        cdef int64_t block[3]
        cdef double occ = 0
        cdef Span* a
        cdef char text[256]
        cdef int n
        cdef int32_t sid
        grid[0] = grid[1] = grid[2] = block[0] = block[1] = block[2] = 1
        a = self.arg(ev, "registers per thread", 20)
        if a != NULL:
            span_int64(a, &regs)
        a = self.arg(ev, "shared memory", 13)
        if a != NULL:
            span_int64(a, &shared)
        self.dims(self.arg(ev, "grid", 4), grid)
        self.dims(self.arg(ev, "block", 5), block)
        a = self.arg(ev, "est. achieved occupancy %", 25)
        if a != NULL and a.kind == J_NUM:
            occ = span_double(a)
            if not isfinite(occ):
                occ = 0
        n = snprintf(text, 256, b"regs:%lld static_shared:%lld dynamic_shared:0 grid:%lld,%lld,%lld "
                     b"block:%lld,%lld,%lld occ_pct:%g", regs, shared, grid[0], grid[1], grid[2],
                     block[0], block[1], block[2], occ)
        if n < 0 or n >= 256:
            return 0
        sid = self.intern_c(<const uint8_t*>text, n)
        if sid >= 0:
            return self.stat_ref(b, plane, self.id_kernel_details, sid)
        return self.stat_text(b, plane, self.id_kernel_details, <const uint8_t*>text, n)

    cdef int memory_stats(self, Buf* b, int32_t plane, EvTok* ev) except -1:
        """XProf's memory-profile stats of a Kineto ``[memory]`` instant (named by the caller).

        ``Bytes`` > 0 is a ``MemoryAllocation``, < 0 a ``MemoryDeallocation``.
        PyTorch's caching allocator reports what is allocated and what it
        reserved: allocated is XProf's ``bytes_allocated``, reserved but not
        allocated its ``bytes_available``; there is no stack (``bytes_reserved`` 0).
        """
        cdef int64_t nbytes = 0, allocated = 0, reserved = 0, device = -1, device_type = 0, addr = 0
        cdef bint has_bytes, has_alloc, has_res
        cdef Span* a
        cdef char text[64]
        cdef int n
        a = self.arg(ev, "Bytes", 5)
        has_bytes = a != NULL and span_int64(a, &nbytes) == 0
        a = self.arg(ev, "Total Allocated", 15)
        has_alloc = a != NULL and span_int64(a, &allocated) == 0
        a = self.arg(ev, "Total Reserved", 14)
        has_res = a != NULL and span_int64(a, &reserved) == 0
        a = self.arg(ev, "Device Id", 9)
        if a != NULL:
            span_int64(a, &device)
        a = self.arg(ev, "Device Type", 11)
        if a != NULL:
            span_int64(a, &device_type)
        a = self.arg(ev, "Addr", 4)
        if a != NULL:
            span_int64(a, &addr)
        if not has_bytes:
            return 0
        if has_alloc:
            self.stat_int(b, plane, self.id_bytes_allocated, allocated)
        self.stat_int(b, plane, self.id_bytes_reserved, 0)
        if has_alloc and has_res and reserved >= allocated:
            self.stat_int(b, plane, self.id_bytes_available, reserved - allocated)
        self.stat_int(b, plane, self.id_allocation_bytes, nbytes if nbytes >= 0 else -nbytes)
        self.stat_int(b, plane, self.id_requested_bytes, nbytes if nbytes >= 0 else -nbytes)
        self.stat_int(b, plane, self.id_addr, addr)
        if device_type == 0:
            n = snprintf(text, 64, b"CPU")
        else:
            n = snprintf(text, 64, b"GPU_%lld", device)
        self.stat_ref(b, plane, self.id_allocator_name, self.intern_c(<const uint8_t*>text, n))
        return 0

    cdef int metadata_event(self, EvTok* ev) except -1:
        """'M' events: process and thread names and labels, kept for :meth:`finish`."""
        cdef Span* a
        cdef Py_ssize_t i
        cdef str which
        if ev.name.kind != J_STR:
            return 0
        which = self.span_text(&ev.name)
        for i in range(ev.nargs):
            a = &self.args[i].value
            if a.kind == J_STR:
                self.metadata.append((which, self.id_key(&ev.pid), self.id_key(&ev.tid), self.span_text(a)))
            elif a.kind == J_NUM:
                self.metadata.append((which, self.id_key(&ev.pid), self.id_key(&ev.tid),
                                      (<const char*>a.p)[:a.n].decode()))
        return 0

    # ---- what was read ----

    @property
    def num_events(self):
        """Trace events read (every phase, metadata included)."""
        return self.n_events

    def phase_counts(self):
        """{phase letter: events read}."""
        return {chr(i): int(self.ph_counts[i]) for i in range(256) if self.ph_counts[i]}

    def string(self, int64_t sid):
        """The interned string ``sid``."""
        if sid < 0 or sid >= self.s_n:
            raise IndexError(sid)
        return (<const char*>self.arena.data + self.s_off[sid])[:self.s_len[sid]].decode("utf-8", "replace")

    def key_text(self, int64_t key):
        """A pid / tid key as the file wrote it: an int, or the string it was interned from."""
        if key & TAG_STRING:
            return self.string(key & 0x3FFFFFFF)
        return key

    def lines_info(self):
        """(plane, device, pid key, tid key, kind, events, first start ps) of each line, in order of creation."""
        cdef Py_ssize_t i
        cdef Line* ln
        out = []
        for i in range(self.n_lines):
            ln = &self.lines[i]
            out.append((ln.plane, self.pdevice[ln.plane], ln.pid_key, ln.tid_key, ln.kind, ln.n))
        return out

    @property
    def base_ps(self):
        """The shift subtracted from every timestamp (ps): 0, or a multiple of 2^36 us for epoch clocks."""
        return int(self.base_us) * 1000000

    # ---- writing the XSpace ----

    cdef int attribute(self) except -1:
        """Sort every line, then give launches and allocations their enclosing framework op (``extra``).

        Host lines are walked in time order with a stack of open ops; a
        launch's correlation id then finds the op for the GPU activity it
        started. Ops name themselves (their ``tf_op`` is their own name).
        """
        cdef Py_ssize_t i, k, j, top, cap_stack = 0, n_corr = 0, nslots
        cdef Line* ln
        cdef EvRec* r
        cdef int64_t* st_end = NULL
        cdef int32_t* st_name = NULL
        cdef int64_t* ckey = NULL
        cdef int32_t* cval = NULL
        for i in range(self.n_lines):
            ln = &self.lines[i]
            if ln.unsorted:
                qsort(ln.ev, ln.n, sizeof(EvRec), compare_events)
                ln.unsorted = False
            if ln.plane == PLANE_HOST:
                for k in range(ln.n):
                    if ln.ev[k].corr:
                        n_corr += 1
                if ln.n > cap_stack:
                    cap_stack = ln.n
        nslots = 16
        while nslots < 2 * n_corr + 2:
            nslots *= 2
        try:
            st_end = <int64_t*>malloc((cap_stack + 1) * sizeof(int64_t))
            st_name = <int32_t*>malloc((cap_stack + 1) * sizeof(int32_t))
            ckey = <int64_t*>malloc(nslots * sizeof(int64_t))
            cval = <int32_t*>malloc(nslots * sizeof(int32_t))
            if st_end == NULL or st_name == NULL or ckey == NULL or cval == NULL:
                raise MemoryError()
            memset(ckey, 0, nslots * sizeof(int64_t))
            for i in range(self.n_lines):
                ln = &self.lines[i]
                if ln.plane != PLANE_HOST:
                    continue
                top = 0
                for k in range(ln.n):
                    r = &ln.ev[k]
                    while top and st_end[top - 1] <= r.start_ps and not (r.dur_ps == 0 and st_end[top - 1] > r.start_ps):
                        top -= 1
                    if r.flags & F_OP:
                        r.extra = r.name
                        st_end[top] = r.start_ps + r.dur_ps
                        st_name[top] = r.name
                        top += 1
                        continue
                    if top == 0:
                        continue
                    if r.flags & F_MEMORY:
                        r.extra = st_name[top - 1]
                    if r.corr:
                        j = hash_int(<uint64_t>r.corr) & (nslots - 1)
                        while ckey[j] != 0 and ckey[j] != r.corr:
                            j = (j + 1) & (nslots - 1)
                        ckey[j] = r.corr
                        cval[j] = st_name[top - 1]
            for i in range(self.n_lines):
                ln = &self.lines[i]
                if ln.plane < 2:
                    continue
                for k in range(ln.n):
                    r = &ln.ev[k]
                    if not (r.flags & F_DEVICE):
                        continue
                    j = hash_int(<uint64_t>r.corr) & (nslots - 1)
                    while ckey[j] != 0:
                        if ckey[j] == r.corr:
                            r.extra = cval[j]
                            break
                        j = (j + 1) & (nslots - 1)
            for i in range(self.n_lines):
                ln = &self.lines[i]
                for k in range(ln.n):
                    if ln.ev[k].extra >= 0:
                        self.mark(ln.plane, self.extra_key(ln.ev[k].flags), 2)
                        self.mark(ln.plane, ln.ev[k].extra, 2)
        finally:
            free(st_end)
            free(st_name)
            free(ckey)
            free(cval)
        return 0

    cdef inline int32_t extra_key(self, int32_t flags) noexcept:
        """The stat an event's op goes in: ``tf_op`` for ops and GPU activities; ``enclosing_op`` for
        allocation records, which the op tables would otherwise count as occurrences of the op."""
        return self.id_enclosing_op if flags & F_MEMORY else self.id_tf_op

    cdef inline Py_ssize_t extra_size(self, EvRec* r) noexcept:
        cdef Py_ssize_t body
        if r.extra < 0:
            return 0
        body = 1 + varint_size(<uint64_t>(self.extra_key(r.flags) + 1)) + 1 + varint_size(<uint64_t>(r.extra + 1))
        return 1 + varint_size(<uint64_t>body) + body

    cdef Py_ssize_t line_events_size(self, Line* ln) noexcept:
        cdef Py_ssize_t k, total = 0, n
        for k in range(ln.n):
            n = ln.ev[k].len + self.extra_size(&ln.ev[k])
            total += 1 + varint_size(<uint64_t>n) + n
        return total

    cdef Py_ssize_t metadata_size(self, int32_t plane, uint8_t bit) noexcept:
        """Bytes of the event (bit 1) or stat (bit 2) metadata map entries of a plane."""
        cdef Py_ssize_t sid, total = 0, inner, entry
        cdef uint8_t* f = self.pflags[plane]
        for sid in range(self.s_n):
            if f[sid] & bit:
                inner = 1 + varint_size(<uint64_t>(sid + 1)) + 1 + varint_size(<uint64_t>self.s_len[sid]) + self.s_len[sid]
                entry = 1 + varint_size(<uint64_t>(sid + 1)) + 1 + varint_size(<uint64_t>inner) + inner
                total += 1 + varint_size(<uint64_t>entry) + entry
        return total

    cdef void write_metadata(self, Buf* o, int32_t plane, uint8_t bit, uint8_t tag) noexcept:
        cdef Py_ssize_t sid, inner, entry
        cdef uint8_t* f = self.pflags[plane]
        for sid in range(self.s_n):
            if f[sid] & bit:
                inner = 1 + varint_size(<uint64_t>(sid + 1)) + 1 + varint_size(<uint64_t>self.s_len[sid]) + self.s_len[sid]
                entry = 1 + varint_size(<uint64_t>(sid + 1)) + 1 + varint_size(<uint64_t>inner) + inner
                o.data[o.n] = tag
                o.n += 1
                put_varint(o, <uint64_t>entry)
                o.data[o.n] = 0x08
                o.n += 1
                put_varint(o, <uint64_t>(sid + 1))
                o.data[o.n] = 0x12
                o.n += 1
                put_varint(o, <uint64_t>inner)
                o.data[o.n] = 0x08
                o.n += 1
                put_varint(o, <uint64_t>(sid + 1))
                o.data[o.n] = 0x12
                o.n += 1
                put_varint(o, <uint64_t>self.s_len[sid])
                put_bytes(o, self.arena.data + self.s_off[sid], self.s_len[sid])

    cdef void write_line_events(self, Buf* o, Line* ln) noexcept:
        cdef Py_ssize_t k, n, body
        cdef EvRec* r
        for k in range(ln.n):
            r = &ln.ev[k]
            n = r.len + self.extra_size(r)
            o.data[o.n] = 0x22
            o.n += 1
            put_varint(o, <uint64_t>n)
            put_bytes(o, ln.payload.data + r.off, r.len)
            if r.extra >= 0:
                body = 1 + varint_size(<uint64_t>(self.extra_key(r.flags) + 1)) + 1 + varint_size(<uint64_t>(r.extra + 1))
                o.data[o.n] = 0x22
                o.n += 1
                put_varint(o, <uint64_t>body)
                o.data[o.n] = 0x08
                o.n += 1
                put_varint(o, <uint64_t>(self.extra_key(r.flags) + 1))
                o.data[o.n] = 0x38
                o.n += 1
                put_varint(o, <uint64_t>(r.extra + 1))

    def write(self, str hostname, list planes, list warnings=None):
        """The XSpace wire bytes (a bytearray) of everything read.

        ``warnings`` (str) become ``XSpace.warnings``.

        ``planes`` lists the output planes in order, each
        ``(internal plane, plane id, plane name, lines, stats)`` with
        ``lines`` a list of ``(line index, line id, display id, name)`` and
        ``stats`` a list of ``(name, int | float | str)``. Line buffers are
        freed as they are copied, so the peak is about one copy of the events.
        """
        cdef Py_ssize_t total, pi, plane_size, line_size, ev_size, k, li
        cdef int32_t plane, sid
        cdef Buf stats_buf
        cdef Buf o
        cdef bytes raw
        cdef Line* ln
        cdef list sizes = []
        cdef list stat_bytes = []
        cdef bytes host = hostname.encode("utf-8")
        self.attribute()
        # Plane stats first: they mark stat names the metadata must carry.
        self.stat_tag = 0x32
        try:
            for spec in planes:
                plane = spec[0]
                memset(&stats_buf, 0, sizeof(Buf))
                try:
                    for name, value in spec[4]:
                        raw = name.encode("utf-8")
                        sid = self.intern_c(raw, len(raw))
                        if sid < 0:
                            continue
                        if isinstance(value, bool) or isinstance(value, int):
                            if -(1 << 63) <= value < (1 << 63):
                                self.stat_int(&stats_buf, plane, sid, value)
                            elif 0 <= value < (1 << 64):
                                self.stat_uint(&stats_buf, plane, sid, value)
                        elif isinstance(value, float):
                            self.stat_double(&stats_buf, plane, sid, value)
                        else:
                            raw = str(value).encode("utf-8")
                            self.stat_text(&stats_buf, plane, sid, raw, len(raw))
                    stat_bytes.append((<const char*>stats_buf.data)[:stats_buf.n] if stats_buf.n else b"")
                finally:
                    free(stats_buf.data)
        finally:
            self.stat_tag = 0x22
        # Sizes, bottom up.
        total = 0
        for pi, spec in enumerate(planes):
            plane = spec[0]
            line_sizes = []
            plane_size = 1 + varint_size(<uint64_t>spec[1])
            raw = spec[2].encode("utf-8")
            plane_size += 1 + varint_size(len(raw)) + len(raw)
            for li, line_id, display_id, lname in spec[3]:
                ln = &self.lines[<Py_ssize_t>li]
                raw = lname.encode("utf-8")
                line_size = (1 + varint_size(<uint64_t><int64_t>line_id) + 1 + varint_size(<uint64_t><int64_t>display_id)
                             + 1 + varint_size(len(raw)) + len(raw) + self.line_events_size(ln))
                line_sizes.append(line_size)
                plane_size += 1 + varint_size(<uint64_t>line_size) + line_size
            plane_size += self.metadata_size(plane, 1) + self.metadata_size(plane, 2) + len(stat_bytes[pi])
            sizes.append((plane_size, line_sizes))
            total += 1 + varint_size(<uint64_t>plane_size) + plane_size
        if host:
            total += 1 + varint_size(len(host)) + len(host)
        notes = [w.encode("utf-8") for w in (warnings or [])]
        for raw in notes:
            total += 1 + varint_size(len(raw)) + len(raw)
        out = PyByteArray_FromStringAndSize(NULL, total)
        o.data = <uint8_t*>PyByteArray_AS_STRING(out)
        o.n = 0
        o.cap = total
        for pi, spec in enumerate(planes):
            plane = spec[0]
            plane_size, line_sizes = sizes[pi]
            o.data[o.n] = 0x0A
            o.n += 1
            put_varint(&o, <uint64_t>plane_size)
            o.data[o.n] = 0x08
            o.n += 1
            put_varint(&o, <uint64_t>spec[1])
            raw = spec[2].encode("utf-8")
            o.data[o.n] = 0x12
            o.n += 1
            put_varint(&o, len(raw))
            put_bytes(&o, raw, len(raw))
            for k, (li, line_id, display_id, lname) in enumerate(spec[3]):
                ln = &self.lines[<Py_ssize_t>li]
                o.data[o.n] = 0x1A
                o.n += 1
                put_varint(&o, <uint64_t>line_sizes[k])
                o.data[o.n] = 0x08
                o.n += 1
                put_varint(&o, <uint64_t><int64_t>line_id)
                o.data[o.n] = 0x50
                o.n += 1
                put_varint(&o, <uint64_t><int64_t>display_id)
                raw = lname.encode("utf-8")
                o.data[o.n] = 0x12
                o.n += 1
                put_varint(&o, len(raw))
                put_bytes(&o, raw, len(raw))
                self.write_line_events(&o, ln)
                free(ln.payload.data)
                ln.payload.data = NULL
                ln.payload.n = ln.payload.cap = 0
                free(ln.ev)
                ln.ev = NULL
                ln.n = ln.cap = 0
            self.write_metadata(&o, plane, 1, 0x22)
            self.write_metadata(&o, plane, 2, 0x2A)
            raw = stat_bytes[pi]
            put_bytes(&o, raw, len(raw))
        for raw in notes:
            o.data[o.n] = 0x1A  # XSpace.warnings
            o.n += 1
            put_varint(&o, len(raw))
            put_bytes(&o, raw, len(raw))
        if host:
            o.data[o.n] = 0x22
            o.n += 1
            put_varint(&o, len(host))
            put_bytes(&o, host, len(host))
        if o.n != total:
            raise AssertionError(f"XSpace size mismatch: wrote {o.n} of {total} bytes")
        return out


cdef int compare_events(const void* a, const void* b) noexcept nogil:
    """Start time, then longer first (a parent before its children), then file order."""
    cdef const EvRec* x = <const EvRec*>a
    cdef const EvRec* y = <const EvRec*>b
    if x.start_ps != y.start_ps:
        return -1 if x.start_ps < y.start_ps else 1
    if x.dur_ps != y.dur_ps:
        return -1 if x.dur_ps > y.dur_ps else 1
    if x.off != y.off:
        return -1 if x.off < y.off else 1
    return 0
