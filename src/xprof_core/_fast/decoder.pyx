# cython: language_level=3, cdivision=True
"""XSpace wire bytes -> columnar tables.

One pass over the input, no Python object per event. Events land in four
int64 columns (metadata id, absolute start in ps, duration in ps, byte offset
of the event in the input); their stats are checked for well-formedness during
the pass but decoded only on demand (``gather_event_stats``), so the output
stays about as wide as the input. Planes, lines and metadata are few and come
back as small Python lists and numpy columns.
"""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from xprof_core._fast.stats cimport StatOut, parse_stat
from xprof_core._fast.wire cimport (
    WT_LEN, WT_VARINT, Cursor, Failure, read_len, read_tag, read_varint, skip_field, sub_cursor,
)

import gc

import numpy as np

from xprof_core.errors import DecodeError

# Stat owners in the eager stat table.
cdef enum Owner:
    OWNER_PLANE = 0
    OWNER_EVENT_METADATA = 1

# What the decoder was inside when it failed, for the error path.
cdef enum Where:
    IN_SPACE = 0
    IN_PLANE = 1
    IN_LINE = 2
    IN_EVENT = 3
    IN_EVENT_STAT = 4
    IN_PLANE_STAT = 5
    IN_EVENT_METADATA = 6
    IN_EVENT_METADATA_STAT = 7
    IN_STAT_METADATA = 8


# --- C interface ---

cdef extern from *:
    """
    /* Column memory. Most of a cold decode is page faults on fresh output
       memory, so on Linux large columns live in anonymous mappings marked for
       transparent huge pages (one fault per 2 MiB instead of per 4 KiB) and
       grow with mremap (pages move, bytes are not copied). Elsewhere, and for
       small columns, plain malloc/realloc. */
    #include <stdlib.h>
    #include <string.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #define XP_HAVE_MAP 1
    #else
    #define XP_HAVE_MAP 0
    #endif
    #define XP_MAP_MIN ((size_t)1 << 21)

    static size_t xp_round(size_t n) {
        return (n + XP_MAP_MIN - 1) & ~(XP_MAP_MIN - 1);
    }

    /* Resize a block of old_bytes (0: none yet) to new_bytes; returns NULL on
       failure, leaving the old block valid. *mapped tracks the block's kind. */
    static void* xp_resize(void* p, size_t old_bytes, size_t new_bytes, int* mapped) {
    #if XP_HAVE_MAP
        if (*mapped) {
            void* q = mremap(p, xp_round(old_bytes), xp_round(new_bytes), MREMAP_MAYMOVE);
            return q == MAP_FAILED ? NULL : q;
        }
        if (new_bytes >= XP_MAP_MIN) {
            void* q = mmap(NULL, xp_round(new_bytes), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (q == MAP_FAILED) return NULL;
    #ifdef MADV_HUGEPAGE
            madvise(q, xp_round(new_bytes), MADV_HUGEPAGE);
    #endif
            if (p != NULL) {
                memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
                free(p);
            }
            *mapped = 1;
            return q;
        }
    #endif
        return realloc(p, new_bytes ? new_bytes : 1);
    }

    static void xp_release(void* p, size_t bytes, int mapped) {
    #if XP_HAVE_MAP
        if (mapped) { if (p != NULL) munmap(p, xp_round(bytes)); return; }
    #endif
        free(p);
    }
    """
    void* xp_resize(void* p, size_t old_bytes, size_t new_bytes, int* mapped) nogil
    void xp_release(void* p, size_t bytes, int mapped) nogil


@cython.final
cdef class _Column:
    """A growable column of 4- or 8-byte integers handed to numpy without a copy.

    Growth doubles the capacity without copying bytes where the platform
    allows (see xp_resize), and nothing is zero-filled: only the rows written
    are ever touched. ``finish`` trims the block and returns a numpy array that
    views it through the buffer protocol (the column stays alive as the
    array's base and frees the block when the array goes). ``kind`` is the
    struct format of a row: "q" int64, "i" int32, "I" uint32 or "B" uint8.
    """
    cdef char* data
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef Py_ssize_t itemsize
    cdef int mapped
    cdef bytes kind
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t capacity, bytes kind=b"q"):
        self.kind = kind
        self.itemsize = 8 if kind == b"q" else (1 if kind == b"B" else 4)
        self.mapped = 0
        self.data = NULL
        self.cap = 0
        self.n = 0
        self.resize(capacity if capacity > 16 else 16)

    def __dealloc__(self):
        xp_release(self.data, self.cap * self.itemsize, self.mapped)

    cdef int resize(self, Py_ssize_t cap) except -1:
        cdef void* p = xp_resize(self.data, self.cap * self.itemsize, cap * self.itemsize, &self.mapped)
        if p == NULL:
            raise MemoryError(f"cannot grow a column to {cap:,} rows")
        self.data = <char*>p
        self.cap = cap
        return 0

    cdef inline int push(self, int64_t v) except -1:
        if self.n == self.cap:
            self.resize(self.cap * 2)
        if self.itemsize == 8:
            (<int64_t*>self.data)[self.n] = v
        elif self.itemsize == 4:
            (<int32_t*>self.data)[self.n] = <int32_t>v  # callers check the range
        else:
            (<uint8_t*>self.data)[self.n] = <uint8_t>v
        self.n += 1
        return 0

    def __getbuffer__(self, Py_buffer* view, int flags):
        self.shape[0] = self.n
        self.strides[0] = self.itemsize
        view.buf = <void*>self.data
        view.obj = self
        view.len = self.n * self.itemsize
        view.readonly = 0
        view.itemsize = self.itemsize
        view.format = self.kind
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass

    cdef object finish(self):
        if self.n < self.cap:
            self.resize(self.n if self.n > 16 else 16)
        # Once exported, the column is never written or resized again.
        return np.frombuffer(self, dtype=np.dtype(self.kind.decode()))


class _WideIds(Exception):
    """An event metadata id outside int32: decode again with int64 ids."""


cdef struct Path:
    int where
    Py_ssize_t plane
    Py_ssize_t line
    Py_ssize_t event
    Py_ssize_t stat
    Py_ssize_t metadata


@cython.final
cdef class _Decoder:
    # input
    cdef const uint8_t[::1] buf
    cdef const uint8_t* base
    cdef Failure failure
    cdef Path path
    cdef bint wide_ids
    cdef bint skip_lines  # record each line's byte span instead of decoding it
    cdef _Column sp_plane, sp_begin, sp_end
    # events
    cdef _Column ev_metadata_id
    cdef _Column ev_start_ps
    cdef _Column ev_duration_ps
    cdef _Column ev_offset
    cdef _Column ev_has_stats
    cdef _Column agg_event
    cdef _Column agg_count
    # lines
    cdef _Column ln_plane, ln_id, ln_display_id, ln_timestamp_ns, ln_duration_ps, ln_event_begin, ln_event_end
    cdef list ln_name, ln_display_name
    # planes
    cdef _Column pl_id, pl_line_begin, pl_line_end
    cdef list pl_name
    # event metadata (all planes)
    cdef _Column em_plane, em_id
    cdef list em_name, em_display_name, em_metadata, em_children
    # stat metadata (all planes)
    cdef _Column sm_plane, sm_id
    cdef list sm_name, sm_description
    # eager stats (plane stats and event-metadata stats)
    cdef _Column st_owner_kind, st_owner, st_metadata_id, st_kind, st_value, st_length
    # space
    cdef list errors, warnings, hostnames
    cdef object progress

    def __cinit__(self, const uint8_t[::1] buf, progress=None, bint wide_ids=False, bint skip_lines=False):
        self.buf = buf
        self.progress = progress
        self.wide_ids = wide_ids
        self.skip_lines = skip_lines
        self.sp_plane = _Column(16, b"i"); self.sp_begin = _Column(16); self.sp_end = _Column(16)
        self.base = &buf[0] if buf.shape[0] > 0 else NULL
        self.failure.msg = NULL
        self.failure.at = NULL
        # A compact JAX profile spends about 25-40 bytes per event; start near
        # that and let geometric growth handle the rest.
        cdef Py_ssize_t guess = buf.shape[0] // 32 + 64
        # Narrow columns where the values provably fit: offsets into an input
        # under 4 GiB, and metadata ids (retried as int64 if one does not fit).
        self.ev_metadata_id = _Column(guess, b"q" if wide_ids else b"i")
        self.ev_start_ps = _Column(guess)
        self.ev_duration_ps = _Column(guess)
        self.ev_offset = _Column(guess, b"I" if buf.shape[0] <= 0xFFFFFFFF else b"q")
        # 1 where the event carries stats: stat queries skip the others without reading them.
        self.ev_has_stats = _Column(guess, b"B")
        self.agg_event = _Column(16)
        self.agg_count = _Column(16)
        self.ln_plane = _Column(16, b"i"); self.ln_id = _Column(16); self.ln_display_id = _Column(16)
        self.ln_timestamp_ns = _Column(16); self.ln_duration_ps = _Column(16)
        self.ln_event_begin = _Column(16); self.ln_event_end = _Column(16)
        self.ln_name = []; self.ln_display_name = []
        self.pl_id = _Column(16); self.pl_line_begin = _Column(16); self.pl_line_end = _Column(16)
        self.pl_name = []
        self.em_plane = _Column(64, b"i"); self.em_id = _Column(64)
        self.em_name = []; self.em_display_name = []; self.em_metadata = []; self.em_children = []
        self.sm_plane = _Column(64, b"i"); self.sm_id = _Column(64)
        self.sm_name = []; self.sm_description = []
        self.st_owner_kind = _Column(64); self.st_owner = _Column(64)
        self.st_metadata_id = _Column(64); self.st_kind = _Column(64)
        self.st_value = _Column(64); self.st_length = _Column(64)
        self.errors = []; self.warnings = []; self.hostnames = []

    # ---- error reporting (cold) ----

    cdef object error(self):
        cdef Path p = self.path
        cdef Py_ssize_t offset = self.failure.at - self.base if self.failure.at != NULL else 0
        parts = ["XSpace"]
        if p.where >= IN_PLANE:
            parts.append(f"planes[{p.plane}]")
        if p.where in (IN_LINE, IN_EVENT, IN_EVENT_STAT):
            parts.append(f"lines[{p.line}]")
        if p.where in (IN_EVENT, IN_EVENT_STAT):
            parts.append(f"events[{p.event}]")
        if p.where in (IN_EVENT_METADATA, IN_EVENT_METADATA_STAT):
            parts.append(f"event_metadata[{p.metadata}]")
        if p.where == IN_STAT_METADATA:
            parts.append(f"stat_metadata[{p.metadata}]")
        if p.where in (IN_EVENT_STAT, IN_PLANE_STAT, IN_EVENT_METADATA_STAT):
            parts.append(f"stats[{p.stat}]")
        msg = self.failure.msg.decode("ascii") if self.failure.msg != NULL else "decode failed"
        return DecodeError(msg, offset, ".".join(parts))

    cdef str text(self, const uint8_t* s, const uint8_t* e):
        # Names are UTF-8 by contract; a damaged byte should not hide the profile.
        return (<const char*>s)[:e - s].decode("utf-8", "replace")

    # ---- messages ----

    cdef int push_stat(self, Cursor* c, int owner_kind, int64_t owner) except? -1:
        cdef StatOut st
        if parse_stat(c, &st, self.base) < 0:
            return -1
        self.st_owner_kind.push(owner_kind)
        self.st_owner.push(owner)
        self.st_metadata_id.push(st.metadata_id)
        self.st_kind.push(st.kind)
        self.st_value.push(st.value)
        self.st_length.push(st.length)
        return 0

    cdef int parse_event(self, Cursor* c, const uint8_t* at) except? -1:
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef int64_t metadata_id = 0, offset_ps = 0, duration_ps = 0, occurrences = 0
        cdef bint aggregated = False
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor sub
        cdef StatOut st
        self.path.stat = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if wt == WT_VARINT and (field == 1 or field == 2 or field == 3 or field == 5):
                if read_varint(c, &v) < 0:
                    return -1
                if field == 1:
                    metadata_id = <int64_t>v
                elif field == 2:
                    offset_ps = <int64_t>v
                    aggregated = False
                elif field == 3:
                    duration_ps = <int64_t>v
                else:
                    occurrences = <int64_t>v
                    offset_ps = 0
                    aggregated = True
            elif field == 4 and wt == WT_LEN:
                # Stats are checked here but decoded only on demand.
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_EVENT_STAT
                if parse_stat(&sub, &st, self.base) < 0:
                    return -1
                self.path.where = IN_EVENT
                self.path.stat += 1
            elif skip_field(c, field, wt) < 0:
                return -1
        if not self.wide_ids and (metadata_id > 2147483647 or metadata_id < -2147483648):
            raise _WideIds()
        if aggregated:
            self.agg_event.push(self.ev_offset.n)
            self.agg_count.push(occurrences)
        self.append_event(metadata_id, offset_ps, duration_ps, at - self.base, self.path.stat > 0)
        return 0

    cdef inline int append_event(self, int64_t metadata_id, int64_t offset_ps, int64_t duration_ps,
                                 int64_t offset, bint has_stats) except -1:
        """Append one row to the event columns, which grow in lockstep (one capacity check)."""
        cdef Py_ssize_t n = self.ev_start_ps.n
        if n == self.ev_start_ps.cap:
            self.ev_metadata_id.resize(n * 2)
            self.ev_start_ps.resize(n * 2)
            self.ev_duration_ps.resize(n * 2)
            self.ev_offset.resize(n * 2)
            self.ev_has_stats.resize(n * 2)
        (<uint8_t*>self.ev_has_stats.data)[n] = has_stats
        if self.ev_metadata_id.itemsize == 4:
            (<int32_t*>self.ev_metadata_id.data)[n] = <int32_t>metadata_id
        else:
            (<int64_t*>self.ev_metadata_id.data)[n] = metadata_id
        (<int64_t*>self.ev_start_ps.data)[n] = offset_ps
        (<int64_t*>self.ev_duration_ps.data)[n] = duration_ps
        if self.ev_offset.itemsize == 4:
            (<uint32_t*>self.ev_offset.data)[n] = <uint32_t>offset
        else:
            (<int64_t*>self.ev_offset.data)[n] = offset
        self.ev_metadata_id.n = n + 1
        self.ev_start_ps.n = n + 1
        self.ev_duration_ps.n = n + 1
        self.ev_offset.n = n + 1
        self.ev_has_stats.n = n + 1
        return 0

    cdef int parse_line(self, Cursor* c, Py_ssize_t plane) except? -1:
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef int64_t line_id = 0, display_id = 0, timestamp_ns = 0, duration_ps = 0
        cdef str name = "", display_name = ""
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef const uint8_t* at
        cdef Cursor sub
        cdef Py_ssize_t begin = self.ev_offset.n, i
        cdef int64_t base_ps
        cdef int64_t* starts
        self.path.event = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == 4 and wt == WT_LEN:
                at = c.p
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_EVENT
                if self.parse_event(&sub, at) < 0:
                    return -1
                self.path.where = IN_LINE
                self.path.event += 1
                if self.progress is not None and (self.ev_offset.n & 0xFFFF) == 0:
                    self.progress(c.p - self.base, self.buf.shape[0])
            elif wt == WT_VARINT and (field == 1 or field == 10 or field == 3 or field == 9):
                if read_varint(c, &v) < 0:
                    return -1
                if field == 1:
                    line_id = <int64_t>v
                elif field == 10:
                    display_id = <int64_t>v
                elif field == 3:
                    timestamp_ns = <int64_t>v
                else:
                    duration_ps = <int64_t>v
            elif (field == 2 or field == 11) and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                if field == 2:
                    name = self.text(s, e)
                else:
                    display_name = self.text(s, e)
            elif skip_field(c, field, wt) < 0:
                return -1
        # Offsets are relative to the line start, which may come after the
        # events on the wire: make them absolute once the line is complete.
        # Unsigned arithmetic: hostile values wrap instead of being undefined.
        if timestamp_ns != 0:
            base_ps = <int64_t>(<uint64_t>timestamp_ns * <uint64_t>1000)
            starts = <int64_t*>self.ev_start_ps.data
            for i in range(begin, self.ev_offset.n):
                starts[i] = <int64_t>(<uint64_t>starts[i] + <uint64_t>base_ps)
        self.ln_plane.push(plane)
        self.ln_id.push(line_id)
        self.ln_display_id.push(display_id)
        self.ln_name.append(name)
        self.ln_display_name.append(display_name)
        self.ln_timestamp_ns.push(timestamp_ns)
        self.ln_duration_ps.push(duration_ps)
        self.ln_event_begin.push(begin)
        self.ln_event_end.push(self.ev_offset.n)
        return 0

    cdef int parse_event_metadata(self, Cursor* c, Py_ssize_t plane) except? -1:
        """One map entry: key=1 (id), value=2 (XEventMetadata).

        A value that occurs more than once is merged, as protobuf merges
        repeated occurrences of a message field: scalars last-wins, repeated
        fields appended.
        """
        cdef uint32_t field, wt, f2, w2
        cdef uint64_t v
        cdef int64_t key = 0
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor val, sub
        cdef Py_ssize_t index = self.em_id.n
        cdef str name = "", display_name = ""
        cdef object metadata = None
        cdef list children = None
        self.path.stat = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == 1 and wt == WT_VARINT:
                if read_varint(c, &v) < 0:
                    return -1
                key = <int64_t>v
            elif field == 2 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                val = sub_cursor(c, s, e)
                while val.p < val.end:
                    if read_tag(&val, &f2, &w2) < 0:
                        return -1
                    if (f2 == 2 or f2 == 4 or f2 == 3) and w2 == WT_LEN:
                        if read_len(&val, &s, &e) < 0:
                            return -1
                        if f2 == 2:
                            name = self.text(s, e)
                        elif f2 == 4:
                            display_name = self.text(s, e)
                        else:
                            metadata = (s - self.base, e - s)
                    elif f2 == 5 and w2 == WT_LEN:
                        if read_len(&val, &s, &e) < 0:
                            return -1
                        sub = sub_cursor(&val, s, e)
                        self.path.where = IN_EVENT_METADATA_STAT
                        if self.push_stat(&sub, OWNER_EVENT_METADATA, index) < 0:
                            return -1
                        self.path.where = IN_EVENT_METADATA
                        self.path.stat += 1
                    elif f2 == 6 and (w2 == WT_VARINT or w2 == WT_LEN):
                        if children is None:
                            children = []
                        if w2 == WT_VARINT:
                            if read_varint(&val, &v) < 0:
                                return -1
                            children.append(<int64_t>v)
                        else:  # packed repeated int64
                            if read_len(&val, &s, &e) < 0:
                                return -1
                            sub = sub_cursor(&val, s, e)
                            while sub.p < sub.end:
                                if read_varint(&sub, &v) < 0:
                                    return -1
                                children.append(<int64_t>v)
                    elif skip_field(&val, f2, w2) < 0:
                        return -1
            elif skip_field(c, field, wt) < 0:
                return -1
        self.em_plane.push(plane)
        self.em_id.push(key)
        self.em_name.append(name)
        self.em_display_name.append(display_name)
        self.em_metadata.append(metadata)
        self.em_children.append(tuple(children) if children else ())
        return 0

    cdef int parse_stat_metadata(self, Cursor* c, Py_ssize_t plane) except? -1:
        """One map entry: key=1 (id), value=2 (XStatMetadata), values merged."""
        cdef uint32_t field, wt, f2, w2
        cdef uint64_t v
        cdef int64_t key = 0
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor val
        cdef str name = "", description = ""
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == 1 and wt == WT_VARINT:
                if read_varint(c, &v) < 0:
                    return -1
                key = <int64_t>v
            elif field == 2 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                val = sub_cursor(c, s, e)
                while val.p < val.end:
                    if read_tag(&val, &f2, &w2) < 0:
                        return -1
                    if (f2 == 2 or f2 == 3) and w2 == WT_LEN:
                        if read_len(&val, &s, &e) < 0:
                            return -1
                        if f2 == 2:
                            name = self.text(s, e)
                        else:
                            description = self.text(s, e)
                    elif skip_field(&val, f2, w2) < 0:
                        return -1
            elif skip_field(c, field, wt) < 0:
                return -1
        self.sm_plane.push(plane)
        self.sm_id.push(key)
        self.sm_name.append(name)
        self.sm_description.append(description)
        return 0

    cdef int parse_plane(self, Cursor* c) except? -1:
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef int64_t plane_id = 0
        cdef str name = ""
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor sub
        cdef Py_ssize_t plane = self.pl_id.n
        cdef Py_ssize_t line_begin = self.sp_begin.n if self.skip_lines else self.ln_id.n
        cdef Py_ssize_t n_em = 0, n_sm = 0, n_st = 0
        self.path.line = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == 3 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                if self.skip_lines:
                    self.sp_plane.push(plane)
                    self.sp_begin.push(s - self.base)
                    self.sp_end.push(e - self.base)
                    self.path.line += 1
                    continue
                sub = sub_cursor(c, s, e)
                self.path.where = IN_LINE
                if self.parse_line(&sub, plane) < 0:
                    return -1
                self.path.line += 1
            elif field == 4 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_EVENT_METADATA
                self.path.metadata = n_em
                if self.parse_event_metadata(&sub, plane) < 0:
                    return -1
                n_em += 1
            elif field == 5 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_STAT_METADATA
                self.path.metadata = n_sm
                if self.parse_stat_metadata(&sub, plane) < 0:
                    return -1
                n_sm += 1
            elif field == 6 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_PLANE_STAT
                self.path.stat = n_st
                if self.push_stat(&sub, OWNER_PLANE, plane) < 0:
                    return -1
                n_st += 1
            elif field == 1 and wt == WT_VARINT:
                if read_varint(c, &v) < 0:
                    return -1
                plane_id = <int64_t>v
            elif field == 2 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                name = self.text(s, e)
            elif skip_field(c, field, wt) < 0:
                return -1
            self.path.where = IN_PLANE
        self.pl_id.push(plane_id)
        self.pl_name.append(name)
        self.pl_line_begin.push(line_begin)
        self.pl_line_end.push(self.sp_begin.n if self.skip_lines else self.ln_id.n)
        return 0

    cdef int parse_space(self, Cursor* c) except? -1:
        cdef uint32_t field, wt
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor sub
        self.path.where = IN_SPACE
        self.path.plane = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if field == 1 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                sub = sub_cursor(c, s, e)
                self.path.where = IN_PLANE
                if self.parse_plane(&sub) < 0:
                    return -1
                self.path.where = IN_SPACE
                self.path.plane += 1
            elif (field == 2 or field == 3 or field == 4) and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                (self.errors if field == 2 else self.warnings if field == 3 else self.hostnames).append(
                    self.text(s, e))
            elif skip_field(c, field, wt) < 0:
                return -1
        return 0

    cdef dict run(self):
        cdef Cursor c
        c.p = self.base
        c.end = self.base + self.buf.shape[0] if self.base != NULL else NULL
        c.failure = &self.failure
        rc = self.parse_space(&c)
        if rc < 0 or self.failure.msg != NULL:
            raise self.error()
        if self.progress is not None:
            self.progress(self.buf.shape[0], self.buf.shape[0])
        out = {
            "events": {
                "metadata_id": self.ev_metadata_id.finish(),
                "start_ps": self.ev_start_ps.finish(),
                "duration_ps": self.ev_duration_ps.finish(),
                "offset": self.ev_offset.finish(),
                "has_stats": self.ev_has_stats.finish(),
            },
            "aggregated": {
                "event": self.agg_event.finish(),
                "num_occurrences": self.agg_count.finish(),
            },
            "lines": {
                "plane": self.ln_plane.finish(),
                "id": self.ln_id.finish(),
                "display_id": self.ln_display_id.finish(),
                "name": self.ln_name,
                "display_name": self.ln_display_name,
                "timestamp_ns": self.ln_timestamp_ns.finish(),
                "duration_ps": self.ln_duration_ps.finish(),
                "event_begin": self.ln_event_begin.finish(),
                "event_end": self.ln_event_end.finish(),
            },
            "planes": {
                "id": self.pl_id.finish(),
                "name": self.pl_name,
                "line_begin": self.pl_line_begin.finish(),
                "line_end": self.pl_line_end.finish(),
            },
            "event_metadata": {
                "plane": self.em_plane.finish(),
                "id": self.em_id.finish(),
                "name": self.em_name,
                "display_name": self.em_display_name,
                "metadata": self.em_metadata,
                "child_id": self.em_children,
            },
            "stat_metadata": {
                "plane": self.sm_plane.finish(),
                "id": self.sm_id.finish(),
                "name": self.sm_name,
                "description": self.sm_description,
            },
            "stats": {
                "owner_kind": self.st_owner_kind.finish().astype(np.uint8),
                "owner": self.st_owner.finish(),
                "metadata_id": self.st_metadata_id.finish(),
                "kind": self.st_kind.finish().astype(np.uint8),
                "value": self.st_value.finish(),
                "length": self.st_length.finish(),
            },
            "errors": self.errors,
            "warnings": self.warnings,
            "hostnames": self.hostnames,
        }
        if self.skip_lines:
            out["line_spans"] = {
                "plane": self.sp_plane.finish(),
                "begin": self.sp_begin.finish(),
                "end": self.sp_end.finish(),
            }
        return out


# --- Python interface ---

def decode_columns(buf, progress=None, bint skip_lines=False):
    """Decode XSpace wire bytes into plain columns (see xprof_core.model.tables).

    ``buf`` is any contiguous bytes-like object (bytes, bytearray, memoryview,
    mmap); it is read in place, never copied. ``progress(done, total)`` (bytes)
    is called every 65536 events and at the end. Raises DecodeError on bad input.

    With ``skip_lines`` the lines are not decoded: the event and line columns
    stay empty, ``line_spans`` gives each line's payload as byte offsets
    ``[begin, end)`` with its plane (planes' ``line_begin``/``line_end`` index
    those spans), and everything else (planes, metadata, their stats) is
    decoded as usual. The host index walks the lines itself from there.
    """
    cdef const uint8_t[::1] view
    if isinstance(buf, (bytes, bytearray)) and len(buf) == 0:
        view = b"\0"[:0]
    else:
        view = buf
    # The decoder makes many small, acyclic objects (names, tuples): keep the
    # cyclic collector from scanning them again and again mid-decode.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return _Decoder(view, progress, False, skip_lines).run()
        except _WideIds:
            return _Decoder(view, progress, True, skip_lines).run()
    finally:
        if gc_was_enabled:
            gc.enable()


ctypedef fused offset_t:
    uint32_t
    int64_t


def gather_event_stats(buf, const offset_t[::1] event_offset, const int64_t[::1] rows,
                       const int64_t[::1] metadata_ids):
    """Decode the stats of selected events.

    ``event_offset`` is the events' ``offset`` column (where each event's
    length prefix starts in ``buf``); ``rows`` are the events wanted;
    ``metadata_ids``, when not empty, keeps only stats with those metadata ids.
    Returns a dict of columns: ``row`` (position in ``rows``), ``metadata_id``,
    ``kind``, ``value``, ``length``, one entry per stat found.
    """
    cdef const uint8_t[::1] view = buf
    cdef const uint8_t* base = &view[0] if view.shape[0] > 0 else NULL
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t i, j, nwant = metadata_ids.shape[0]
    cdef int64_t off
    cdef Failure failure
    cdef Cursor c, ev, sub
    cdef uint32_t field, wt
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef StatOut st
    cdef bint keep
    cdef _Column out_row = _Column(rows.shape[0])
    cdef _Column out_md = _Column(rows.shape[0])
    cdef _Column out_kind = _Column(rows.shape[0])
    cdef _Column out_value = _Column(rows.shape[0])
    cdef _Column out_length = _Column(rows.shape[0])
    failure.msg = NULL
    failure.at = NULL
    for i in range(rows.shape[0]):
        if rows[i] < 0 or rows[i] >= event_offset.shape[0]:
            raise IndexError(f"event row {rows[i]} out of range")
        off = <int64_t>event_offset[rows[i]]
        if off < 0 or off >= n:
            raise DecodeError("event offset outside the buffer", off, "XEvent")
        c.p = base + off
        c.end = base + n
        c.failure = &failure
        if read_len(&c, &s, &e) < 0:
            raise DecodeError(failure.msg.decode("ascii"), failure.at - base, "XEvent")
        ev = sub_cursor(&c, s, e)
        while ev.p < ev.end:
            if read_tag(&ev, &field, &wt) < 0:
                break
            if field == 4 and wt == WT_LEN:
                if read_len(&ev, &s, &e) < 0:
                    break
                sub = sub_cursor(&ev, s, e)
                if parse_stat(&sub, &st, base) < 0:
                    break
                keep = nwant == 0
                for j in range(nwant):
                    if metadata_ids[j] == st.metadata_id:
                        keep = True
                        break
                if keep:
                    out_row.push(i)
                    out_md.push(st.metadata_id)
                    out_kind.push(st.kind)
                    out_value.push(st.value)
                    out_length.push(st.length)
            elif skip_field(&ev, field, wt) < 0:
                break
        if failure.msg != NULL:
            raise DecodeError(failure.msg.decode("ascii"), failure.at - base, f"XEvent(row {rows[i]}).stats")
    return {
        "row": out_row.finish(),
        "metadata_id": out_md.finish(),
        "kind": out_kind.finish().astype(np.uint8),
        "value": out_value.finish(),
        "length": out_length.finish(),
    }
