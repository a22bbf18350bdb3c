# cython: language_level=3, cdivision=True
"""The host index pass: every line's events read once, straight from the wire, and aggregated.

The decoder's ``skip_lines`` mode gives planes, metadata and the byte span of
every line; Python classifies lines and metadata from their names and hands
this module per-plane lookup tables. :class:`IndexPass` then walks each
line's events in file order with no Python object per event and no
per-event columns, and keeps only what the analysis tools read:

* per line and event metadata: count, total, self time (nesting among all
  events of the line), min and max duration (``ALL`` slots);
* self time by nesting among one *class* of events only, per key: host input
  events (``INPUT``), host XLA ops (``HLO``, keyed by hlo_op and program_id),
  framework ops with and without the XLA ones (``FW_ALL``, ``FW_NOHLO``,
  keyed by tf_op or metadata), XLA Ops lines of TPUs with device spans
  (``TPU``, keyed by metadata and whether symbol_id is 0);
* one *record* per event of the device activity lines, of the lines of GPU
  planes that can hold kernels and of ``Steps`` lines, and per host event
  that carries a step marker, a correlation_id or a scope_range_id: times,
  metadata, and the stats the tools join on.

Nesting follows XProf's ancestor stack: in (start, longer first, file
order), an event's parent is the nearest earlier event of its class that ends
no earlier. With a stack that pops events ending before the new one ends,
that is O(n) per line. Lines arrive sorted that way in every profile seen;
one that is not is walked again from a buffer sorted per line.

Stat values are read as in :meth:`XSpace.stat`: an event's own stat, else
(for most roles) its metadata's; the last of repeated stats wins; strings
and ``ref_value`` names are interned into one string table.

:func:`host_breakdown` is the second pass: once the steps are known, the
per-step covered time of each event category over the host lines (merged by
start) and the device intervals, as ``intervals.step_breakdown`` does over
decoded columns.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import numpy as np

from xprof_core._fast.intervals cimport MAX_CATEGORIES, heap_sift_down, union_add
from xprof_core._fast.stats cimport (
    KIND_BYTES, KIND_DOUBLE, KIND_INT64, KIND_NONE, KIND_REF, KIND_STR, KIND_UINT64, StatOut, parse_stat,
)
from xprof_core._fast.wire cimport (
    WT_I32, WT_I64, WT_LEN, WT_VARINT, Cursor, Failure, read_len, read_tag, read_varint, skip_field, sub_cursor,
)

from xprof_core.errors import DecodeError

# --- constants shared with Python (xprof_core/index/build.py keeps the same numbers) ---

# Stat roles: the stats the pass reads.
cdef enum:
    R_STEP_NUM = 0
    R_STEP_NAME = 1
    R_GROUP_ID = 2
    R_CORRELATION_ID = 3
    R_HLO_OP = 4
    R_HLO_MODULE = 5
    R_PROGRAM_ID = 6
    R_TF_OP = 7
    R_FLOPS = 8
    R_BYTES_ACCESSED = 9
    R_DEVICE_OFFSET_PS = 10
    R_DEVICE_DURATION_PS = 11
    R_SYMBOL_ID = 12
    R_KERNEL_DETAILS = 13
    R_EQUATION = 14
    R_HLO_CATEGORY = 15
    R_SCOPE_RANGE_ID = 16
    R_CUDA_GRAPH_NODE_ID = 17
    N_ROLES = 18

# Line flags.
cdef enum:
    LF_HOST = 1          # a host thread: INPUT, HLO and FW classes, marker and launch records
    LF_RECORD_ALL = 2    # device activity: a record per timed event
    LF_TPU_OPS = 4       # an XLA Ops line of a device without streams: TPU op slots
    LF_KERNELS = 8       # a non-derived line of a GPU plane: a record per event with a duration
    LF_STEPS = 16        # a Steps line: a record per event

# Metadata flags.
cdef enum:
    MF_INPUT = 1         # an input-pipeline event (by name)
    MF_FW_NAME = 2       # a name that parses as a framework op

# Slot classes.
cdef enum:
    C_ALL = 0
    C_INPUT = 1
    C_HLO = 2
    C_FW_ALL = 3
    C_FW_NOHLO = 4
    C_TPU = 5
    N_CLASSES = 6

# Nesting stacks of a host line (one per class that nests there).
cdef enum:
    NEST_CLASSES = 5     # C_ALL .. C_FW_NOHLO
    DENSE_CLASSES = 5    # C_ALL .. C_FW_NOHLO have a metadata-keyed variant (slots by metadata row)

# Record flags.
cdef enum:
    RF_TIMED = 1
    RF_CORR = 2
    RF_GROUP = 4
    RF_PROGRAM = 8
    RF_STEP_NUM = 16
    RF_STEP_NAME = 32
    RF_SCOPE = 64
    RF_STEP_NUM_OWN = 128
    RF_NODE = 256

ROLE_NAMES = (
    "step_num", "step_name", "group_id", "correlation_id", "hlo_op", "hlo_module", "program_id", "tf_op",
    "flops", "bytes_accessed", "device_offset_ps", "device_duration_ps", "symbol_id", "kernel_details",
    "equation", "hlo_category", "scope_range_id", "cuda_graph_node_id",
)
# Roles whose value falls back to the event metadata's stat (XSpace.stat's default).
ROLE_METADATA_FALLBACK = (
    False, False, True, False, True, True, True, True, True, True, False, False, True, True, True, True, False, False,
)
CLASS_NAMES = ("all", "input", "hlo", "fw_all", "fw_nohlo", "tpu")


def UnsortedPiece(line):
    """A piece of a split line is not sorted by (start, longer first): the line must not be split."""
    from xprof_core.errors import UnsortedLineError

    return UnsortedLineError(f"line {line} is not sorted by start: it cannot be split into pieces")


# --- C interface ---

cdef struct Vec:
    char* data
    Py_ssize_t n
    Py_ssize_t cap
    Py_ssize_t itemsize


cdef int vec_init(Vec* v, Py_ssize_t itemsize) except -1:
    v.data = NULL
    v.n = 0
    v.cap = 0
    v.itemsize = itemsize
    return 0


cdef int vec_reserve(Vec* v, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef char* p
    if n <= v.cap:
        return 0
    cap = v.cap * 2 if v.cap else 64
    while cap < n:
        cap *= 2
    p = <char*>PyMem_Realloc(v.data, cap * v.itemsize)
    if p == NULL:
        raise MemoryError()
    v.data = p
    v.cap = cap
    return 0


cdef inline int push_i64(Vec* v, int64_t x) except -1:
    if v.n == v.cap:
        vec_reserve(v, v.n + 1)
    (<int64_t*>v.data)[v.n] = x
    v.n += 1
    return 0


cdef inline int push_i32(Vec* v, int32_t x) except -1:
    if v.n == v.cap:
        vec_reserve(v, v.n + 1)
    (<int32_t*>v.data)[v.n] = x
    v.n += 1
    return 0


cdef inline int push_u16(Vec* v, uint16_t x) except -1:
    if v.n == v.cap:
        vec_reserve(v, v.n + 1)
    (<uint16_t*>v.data)[v.n] = x
    v.n += 1
    return 0


cdef inline int push_f64(Vec* v, double x) except -1:
    if v.n == v.cap:
        vec_reserve(v, v.n + 1)
    (<double*>v.data)[v.n] = x
    v.n += 1
    return 0


cdef object vec_array(Vec* v, object dtype):
    out = np.empty(v.n, dtype=dtype)
    cdef char[::1] dst
    if v.n:
        dst = out.view(np.int8)
        memcpy(&dst[0], v.data, v.n * v.itemsize)
    return out


cdef void vec_free(Vec* v) noexcept:
    PyMem_Free(v.data)
    v.data = NULL
    v.n = v.cap = 0


cdef inline uint64_t hash_bytes(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """FNV-1a, 64-bit."""
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ s[i]) * 1099511628211ULL
    return h


cdef inline uint64_t hash_mix(uint64_t h, uint64_t x) noexcept nogil:
    h ^= x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2)
    return h


@cython.final
cdef class StringTable:
    """Interned strings: code -> bytes; code 0 is the empty string."""

    cdef Vec arena        # bytes
    cdef Vec offsets      # int64 start of each string in the arena
    cdef Vec lengths      # int64
    cdef Vec hashes       # int64 (uint64 bits)
    cdef int32_t* slots   # open addressing: string code + 1, 0 = empty
    cdef Py_ssize_t n_slots

    def __cinit__(self):
        vec_init(&self.arena, 1)
        vec_init(&self.offsets, 8)
        vec_init(&self.lengths, 8)
        vec_init(&self.hashes, 8)
        self.n_slots = 1024
        self.slots = <int32_t*>PyMem_Malloc(self.n_slots * sizeof(int32_t))
        if self.slots == NULL:
            raise MemoryError()
        memset(self.slots, 0, self.n_slots * sizeof(int32_t))
        self.intern(NULL, 0)

    def __dealloc__(self):
        vec_free(&self.arena)
        vec_free(&self.offsets)
        vec_free(&self.lengths)
        vec_free(&self.hashes)
        PyMem_Free(self.slots)

    cdef int grow(self) except -1:
        cdef Py_ssize_t n = self.n_slots * 2, i, j
        cdef int32_t* s = <int32_t*>PyMem_Malloc(n * sizeof(int32_t))
        cdef uint64_t h
        if s == NULL:
            raise MemoryError()
        memset(s, 0, n * sizeof(int32_t))
        for i in range(self.offsets.n):
            h = <uint64_t>(<int64_t*>self.hashes.data)[i]
            j = <Py_ssize_t>(h & <uint64_t>(n - 1))
            while s[j] != 0:
                j = (j + 1) & (n - 1)
            s[j] = <int32_t>(i + 1)
        PyMem_Free(self.slots)
        self.slots = s
        self.n_slots = n
        return 0

    cdef int32_t intern(self, const uint8_t* s, Py_ssize_t n) except -1:
        cdef uint64_t h = hash_bytes(s, n)
        cdef Py_ssize_t j = <Py_ssize_t>(h & <uint64_t>(self.n_slots - 1))
        cdef int32_t code
        cdef int64_t off
        while self.slots[j] != 0:
            code = self.slots[j] - 1
            if (<int64_t*>self.hashes.data)[code] == <int64_t>h and (<int64_t*>self.lengths.data)[code] == n:
                off = (<int64_t*>self.offsets.data)[code]
                if n == 0 or memcmp(self.arena.data + off, s, n) == 0:
                    return code
            j = (j + 1) & (self.n_slots - 1)
        code = <int32_t>self.offsets.n
        if code >= 0x7FFFFFFE:
            raise MemoryError("too many distinct strings")
        vec_reserve(&self.arena, self.arena.n + n)
        if n:
            memcpy(self.arena.data + self.arena.n, s, n)
        push_i64(&self.offsets, self.arena.n)
        push_i64(&self.lengths, n)
        push_i64(&self.hashes, <int64_t>h)
        self.arena.n += n
        self.slots[j] = code + 1
        if 2 * self.offsets.n > self.n_slots:
            self.grow()
        return code

    def copy(self):
        """An independent table with the same strings and codes (shards of one host start from one)."""
        cdef StringTable out = StringTable.__new__(StringTable)
        vec_reserve(&out.arena, self.arena.n)
        memcpy(out.arena.data, self.arena.data, self.arena.n)
        out.arena.n = self.arena.n
        vec_reserve(&out.offsets, self.offsets.n)
        memcpy(out.offsets.data, self.offsets.data, self.offsets.n * 8)
        out.offsets.n = self.offsets.n
        vec_reserve(&out.lengths, self.lengths.n)
        memcpy(out.lengths.data, self.lengths.data, self.lengths.n * 8)
        out.lengths.n = self.lengths.n
        vec_reserve(&out.hashes, self.hashes.n)
        memcpy(out.hashes.data, self.hashes.data, self.hashes.n * 8)
        out.hashes.n = self.hashes.n
        PyMem_Free(out.slots)
        out.slots = <int32_t*>PyMem_Malloc(self.n_slots * sizeof(int32_t))
        if out.slots == NULL:
            raise MemoryError()
        memcpy(out.slots, self.slots, self.n_slots * sizeof(int32_t))
        out.n_slots = self.n_slots
        return out

    def add(self, s):
        """The code of ``s`` (str or bytes), interning it."""
        cdef bytes b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else bytes(s)
        return self.intern(<const uint8_t*>b if len(b) else NULL, len(b))

    def __len__(self):
        return self.offsets.n

    def strings(self):
        """Every interned string, by code (invalid UTF-8 replaced)."""
        cdef Py_ssize_t i
        cdef int64_t off, n
        out = []
        for i in range(self.offsets.n):
            off = (<int64_t*>self.offsets.data)[i]
            n = (<int64_t*>self.lengths.data)[i]
            out.append((self.arena.data + off)[:n].decode("utf-8", "replace"))
        return out


# One key-to-slot map per line, for the aggregates.
cdef struct SlotKey:
    int64_t k0
    int64_t k1
    int64_t k2
    int64_t k3


@cython.final
cdef class _SlotMap:
    """(class, keys) -> slot index, open addressing; cleared at every line."""

    cdef int64_t* keys      # 5 int64 per entry: class, k0..k3
    cdef int64_t* vals      # slot index, -1 = empty
    cdef Py_ssize_t cap
    cdef Py_ssize_t n

    def __cinit__(self):
        self.cap = 256
        self.n = 0
        self.keys = <int64_t*>PyMem_Malloc(self.cap * 5 * sizeof(int64_t))
        self.vals = <int64_t*>PyMem_Malloc(self.cap * sizeof(int64_t))
        if self.keys == NULL or self.vals == NULL:
            raise MemoryError()
        self.clear()

    def __dealloc__(self):
        PyMem_Free(self.keys)
        PyMem_Free(self.vals)

    cdef void clear(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.cap):
            self.vals[i] = -1
        self.n = 0

    cdef int grow(self) except -1:
        cdef Py_ssize_t old = self.cap, i, j, c
        cdef int64_t* ok = self.keys
        cdef int64_t* ov = self.vals
        self.cap = old * 2
        self.keys = <int64_t*>PyMem_Malloc(self.cap * 5 * sizeof(int64_t))
        self.vals = <int64_t*>PyMem_Malloc(self.cap * sizeof(int64_t))
        if self.keys == NULL or self.vals == NULL:
            raise MemoryError()
        for i in range(self.cap):
            self.vals[i] = -1
        for i in range(old):
            if ov[i] >= 0:
                j = self.probe(ok + 5 * i)
                for c in range(5):
                    self.keys[5 * j + c] = ok[5 * i + c]
                self.vals[j] = ov[i]
        PyMem_Free(ok)
        PyMem_Free(ov)
        return 0

    cdef inline Py_ssize_t probe(self, const int64_t* key) noexcept:
        cdef uint64_t h = 0
        cdef Py_ssize_t j, c
        for c in range(5):
            h = hash_mix(h, <uint64_t>key[c])
        j = <Py_ssize_t>(h & <uint64_t>(self.cap - 1))
        while self.vals[j] >= 0:
            if (self.keys[5 * j] == key[0] and self.keys[5 * j + 1] == key[1] and self.keys[5 * j + 2] == key[2]
                    and self.keys[5 * j + 3] == key[3] and self.keys[5 * j + 4] == key[4]):
                return j
            j = (j + 1) & (self.cap - 1)
        return j


cdef struct RoleValue:
    uint8_t kind      # KIND_* of the value read (KIND_STR for interned strings, KIND_REF resolved to KIND_STR)
    int64_t value     # integer, double bits, or string code


cdef struct Event:
    int64_t row
    int64_t start     # absolute ps (relative to the line start until the line's timestamp is known)
    int64_t dur
    int64_t md_id
    int32_t md_row
    uint8_t timed
    uint32_t present  # bit r: the event's own stat of role r was read
    RoleValue roles[N_ROLES]


cdef struct StackEntry:
    int64_t end
    int64_t dur
    int64_t child
    int64_t slot


cdef inline bint role_present(Event* ev, int r) noexcept nogil:
    return (ev.present >> r) & 1


# --- the pass ---

@cython.final
cdef class IndexPass:
    """One host's lines walked once; see the module docstring. Build with the per-plane tables, then
    call :meth:`run` and read :meth:`result`."""

    # input
    cdef const uint8_t[::1] buf
    cdef const uint8_t* base
    cdef Py_ssize_t nbuf
    cdef Failure failure
    # per plane: metadata id -> metadata row (sorted ids and their rows, offsets per plane)
    cdef const int64_t[::1] md_ids
    cdef const int32_t[::1] md_rows
    cdef const int64_t[::1] md_begin
    cdef const int64_t[::1] md_end
    cdef const int32_t[::1] md_dense      # dense id -> row table per plane, or empty
    cdef const int64_t[::1] md_dense_begin
    cdef const int64_t[::1] md_dense_size
    # per plane: stat id -> role and interned name (sorted ids, offsets per plane)
    cdef const int64_t[::1] st_ids
    cdef const int8_t[::1] st_roles
    cdef const int32_t[::1] st_names
    cdef const int64_t[::1] st_begin
    cdef const int64_t[::1] st_end
    cdef int64_t* st_dense          # per plane, stat id -> index into the sorted table (-1 absent), when ids are small
    cdef int64_t* st_dense_begin
    cdef int64_t* st_dense_size
    # per metadata row (+1 for unknown): flags and role fallbacks [N_ROLES x (n_md + 1)]
    cdef const uint32_t[::1] md_flags
    cdef const uint8_t[:, ::1] md_role_kind
    cdef const int64_t[:, ::1] md_role_value
    cdef Py_ssize_t n_md
    # strings
    cdef public StringTable strings
    cdef _SlotMap slot_map
    # per line output
    cdef Vec ln_id, ln_display_id, ln_timestamp_ns, ln_duration_ps, ln_events, ln_timed, ln_first_row
    cdef Vec ln_sorted, ln_index
    cdef Vec ln_min_start, ln_max_end
    # Pieces of split lines: the events that found their class's stack empty (roots: their parents, if any,
    # are in an earlier piece) and the entries still open at a piece's end, per class, for the merge.
    cdef bint roots_on
    cdef Vec rt_class, rt_line, rt_end, rt_dur
    cdef Vec op_class, op_line, op_end, op_dur, op_child, op_slot
    cdef list ln_name, ln_display_name
    # slots
    cdef Vec sl_class, sl_line, sl_k0, sl_k1, sl_k2, sl_k3
    cdef Vec sl_count, sl_total, sl_self, sl_min, sl_max, sl_first_row, sl_first_start
    cdef Vec sl_flops, sl_bytes
    cdef Vec sl_extra0, sl_extra1, sl_extra2   # first-seen codes (hlo_category, tf_op, hlo_module)
    # records
    cdef Vec rc_row, rc_start, rc_dur, rc_line, rc_md, rc_flags
    cdef Vec rc_corr, rc_group, rc_program, rc_step, rc_scope, rc_node
    cdef Vec rc_hlo, rc_tf, rc_name, rc_details, rc_module, rc_category, rc_equation
    cdef Vec rc_flops, rc_bytes
    # state
    cdef int64_t row
    cdef Py_ssize_t line_index
    cdef StackEntry* stacks[NEST_CLASSES]
    cdef Py_ssize_t depth[NEST_CLASSES]
    cdef Py_ssize_t stack_cap
    cdef object progress
    # Per metadata row, the slot of the metadata-keyed classes on the current line (-1: none yet);
    # a direct lookup for the hot path instead of hashing. ``touched`` lists the entries to reset.
    cdef int64_t* md_slots
    cdef Vec touched
    # Host lines' timed events in visit order, compactly, for the breakdown pass: per event the start's
    # delta from the previous one and the duration (uint64 varints) and the host category (one byte).
    cdef const int8_t[::1] md_host_category
    cdef Vec stream                     # bytes
    cdef Vec stream_begin, stream_end   # int64 per line (-1: not a host line)
    cdef int64_t stream_prev

    def __cinit__(self, buf, const int64_t[::1] md_ids, const int32_t[::1] md_rows, const int64_t[::1] md_begin,
                  const int64_t[::1] md_end, const int32_t[::1] md_dense, const int64_t[::1] md_dense_begin,
                  const int64_t[::1] md_dense_size, const int64_t[::1] st_ids, const int8_t[::1] st_roles,
                  const int32_t[::1] st_names, const int64_t[::1] st_begin, const int64_t[::1] st_end,
                  const uint32_t[::1] md_flags, const uint8_t[:, ::1] md_role_kind,
                  const int64_t[:, ::1] md_role_value, const int8_t[::1] md_host_category, StringTable strings,
                  progress=None):
        cdef int c
        if isinstance(buf, (bytes, bytearray)) and len(buf) == 0:
            buf = b"\0"[:0]
        self.buf = buf
        self.nbuf = self.buf.shape[0]
        self.base = &self.buf[0] if self.nbuf > 0 else NULL
        self.failure.msg = NULL
        self.failure.at = NULL
        self.md_ids = md_ids
        self.md_rows = md_rows
        self.md_begin = md_begin
        self.md_end = md_end
        self.md_dense = md_dense
        self.md_dense_begin = md_dense_begin
        self.md_dense_size = md_dense_size
        self.st_ids = st_ids
        self.st_roles = st_roles
        self.st_names = st_names
        self.st_begin = st_begin
        self.st_end = st_end
        self.build_dense_stats()
        self.md_flags = md_flags
        self.md_role_kind = md_role_kind
        self.md_role_value = md_role_value
        self.n_md = md_flags.shape[0] - 1
        if md_role_kind.shape[0] != N_ROLES or md_role_kind.shape[1] != self.n_md + 1:
            raise ValueError("md_role_kind must be (N_ROLES, n_md + 1)")
        if md_role_value.shape[0] != N_ROLES or md_role_value.shape[1] != self.n_md + 1:
            raise ValueError("md_role_value must be (N_ROLES, n_md + 1)")
        if md_host_category.shape[0] != self.n_md + 1:
            raise ValueError("md_host_category must have n_md + 1 entries")
        self.md_host_category = md_host_category
        vec_init(&self.stream, 1)
        vec_init(&self.stream_begin, 8)
        vec_init(&self.stream_end, 8)
        self.strings = strings
        self.slot_map = _SlotMap()
        self.progress = progress
        vec_init(&self.ln_id, 8); vec_init(&self.ln_display_id, 8); vec_init(&self.ln_timestamp_ns, 8)
        vec_init(&self.ln_duration_ps, 8); vec_init(&self.ln_events, 8); vec_init(&self.ln_timed, 8)
        vec_init(&self.ln_first_row, 8); vec_init(&self.ln_sorted, 8); vec_init(&self.ln_index, 8)
        self.roots_on = False
        vec_init(&self.rt_class, 8); vec_init(&self.rt_line, 8); vec_init(&self.rt_end, 8); vec_init(&self.rt_dur, 8)
        vec_init(&self.op_class, 8); vec_init(&self.op_line, 8); vec_init(&self.op_end, 8); vec_init(&self.op_dur, 8)
        vec_init(&self.op_child, 8); vec_init(&self.op_slot, 8)
        vec_init(&self.ln_min_start, 8); vec_init(&self.ln_max_end, 8)
        self.ln_name = []
        self.ln_display_name = []
        vec_init(&self.sl_class, 8); vec_init(&self.sl_line, 8); vec_init(&self.sl_k0, 8)
        vec_init(&self.sl_k1, 8); vec_init(&self.sl_k2, 8); vec_init(&self.sl_k3, 8)
        vec_init(&self.sl_count, 8); vec_init(&self.sl_total, 8); vec_init(&self.sl_self, 8)
        vec_init(&self.sl_min, 8); vec_init(&self.sl_max, 8); vec_init(&self.sl_first_row, 8)
        vec_init(&self.sl_first_start, 8); vec_init(&self.sl_flops, 8); vec_init(&self.sl_bytes, 8)
        vec_init(&self.sl_extra0, 8); vec_init(&self.sl_extra1, 8); vec_init(&self.sl_extra2, 8)
        vec_init(&self.rc_row, 8); vec_init(&self.rc_start, 8); vec_init(&self.rc_dur, 8)
        vec_init(&self.rc_line, 4); vec_init(&self.rc_md, 4)
        vec_init(&self.rc_flags, 2); vec_init(&self.rc_corr, 8); vec_init(&self.rc_group, 8)
        vec_init(&self.rc_program, 8); vec_init(&self.rc_step, 8); vec_init(&self.rc_scope, 8)
        vec_init(&self.rc_node, 8); vec_init(&self.rc_equation, 4)
        vec_init(&self.rc_hlo, 4); vec_init(&self.rc_tf, 4); vec_init(&self.rc_name, 4)
        vec_init(&self.rc_details, 4); vec_init(&self.rc_module, 4); vec_init(&self.rc_category, 4)
        vec_init(&self.rc_flops, 8); vec_init(&self.rc_bytes, 8)
        self.row = 0
        self.line_index = 0
        self.md_slots = <int64_t*>PyMem_Malloc(DENSE_CLASSES * (self.n_md + 1) * sizeof(int64_t))
        if self.md_slots == NULL:
            raise MemoryError()
        for c in range(DENSE_CLASSES * (self.n_md + 1)):
            self.md_slots[c] = -1
        vec_init(&self.touched, 8)
        self.stack_cap = 64
        for c in range(NEST_CLASSES):
            self.stacks[c] = <StackEntry*>PyMem_Malloc(self.stack_cap * sizeof(StackEntry))
            if self.stacks[c] == NULL:
                raise MemoryError()
            self.depth[c] = 0

    def __dealloc__(self):
        cdef int c
        for c in range(NEST_CLASSES):
            PyMem_Free(self.stacks[c])
        PyMem_Free(self.st_dense)
        PyMem_Free(self.st_dense_begin)
        PyMem_Free(self.st_dense_size)
        PyMem_Free(self.md_slots)
        vec_free(&self.touched)
        vec_free(&self.stream)
        vec_free(&self.stream_begin)
        vec_free(&self.stream_end)
        vec_free(&self.ln_id); vec_free(&self.ln_display_id); vec_free(&self.ln_timestamp_ns)
        vec_free(&self.ln_duration_ps); vec_free(&self.ln_events); vec_free(&self.ln_timed)
        vec_free(&self.ln_first_row); vec_free(&self.ln_sorted); vec_free(&self.ln_index)
        vec_free(&self.rt_class); vec_free(&self.rt_line); vec_free(&self.rt_end); vec_free(&self.rt_dur)
        vec_free(&self.op_class); vec_free(&self.op_line); vec_free(&self.op_end); vec_free(&self.op_dur)
        vec_free(&self.op_child); vec_free(&self.op_slot)
        vec_free(&self.ln_min_start); vec_free(&self.ln_max_end)
        vec_free(&self.sl_class); vec_free(&self.sl_line); vec_free(&self.sl_k0); vec_free(&self.sl_k1)
        vec_free(&self.sl_k2); vec_free(&self.sl_k3); vec_free(&self.sl_count); vec_free(&self.sl_total)
        vec_free(&self.sl_self); vec_free(&self.sl_min); vec_free(&self.sl_max); vec_free(&self.sl_first_row)
        vec_free(&self.sl_first_start); vec_free(&self.sl_flops); vec_free(&self.sl_bytes)
        vec_free(&self.sl_extra0); vec_free(&self.sl_extra1); vec_free(&self.sl_extra2)
        vec_free(&self.rc_row); vec_free(&self.rc_start); vec_free(&self.rc_dur)
        vec_free(&self.rc_line); vec_free(&self.rc_md); vec_free(&self.rc_flags); vec_free(&self.rc_corr)
        vec_free(&self.rc_group); vec_free(&self.rc_program); vec_free(&self.rc_step); vec_free(&self.rc_scope)
        vec_free(&self.rc_hlo); vec_free(&self.rc_tf); vec_free(&self.rc_name); vec_free(&self.rc_details)
        vec_free(&self.rc_module); vec_free(&self.rc_category); vec_free(&self.rc_flops); vec_free(&self.rc_bytes)
        vec_free(&self.rc_node); vec_free(&self.rc_equation)

    # ---- lookups ----

    cdef inline int32_t md_row_of(self, Py_ssize_t plane, int64_t md_id) noexcept:
        cdef int64_t lo, hi, mid
        cdef int64_t size = self.md_dense_size[plane]
        if size > 0:
            if 0 <= md_id < size:
                return self.md_dense[self.md_dense_begin[plane] + md_id]
            return -1
        lo = self.md_begin[plane]
        hi = self.md_end[plane]
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.md_ids[mid] < md_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.md_end[plane] and self.md_ids[lo] == md_id:
            return self.md_rows[lo]
        return -1

    cdef int build_dense_stats(self) except -1:
        """Direct tables stat id -> sorted-table index for planes whose stat ids are small and dense."""
        cdef Py_ssize_t n_planes = self.st_begin.shape[0], p, total = 0
        cdef int64_t lo, hi, k, last
        self.st_dense_begin = <int64_t*>PyMem_Malloc((n_planes + 1) * sizeof(int64_t))
        self.st_dense_size = <int64_t*>PyMem_Malloc((n_planes + 1) * sizeof(int64_t))
        if self.st_dense_begin == NULL or self.st_dense_size == NULL:
            raise MemoryError()
        for p in range(n_planes):
            lo, hi = self.st_begin[p], self.st_end[p]
            self.st_dense_begin[p] = total
            self.st_dense_size[p] = 0
            if hi > lo and self.st_ids[lo] >= 0:
                last = self.st_ids[hi - 1]
                if last <= 4 * (hi - lo) + 4096:
                    self.st_dense_size[p] = last + 1
                    total += last + 1
        self.st_dense = <int64_t*>PyMem_Malloc((total if total else 1) * sizeof(int64_t))
        if self.st_dense == NULL:
            raise MemoryError()
        for k in range(total):
            self.st_dense[k] = -1
        for p in range(n_planes):
            if self.st_dense_size[p]:
                for k in range(self.st_begin[p], self.st_end[p]):
                    self.st_dense[self.st_dense_begin[p] + self.st_ids[k]] = k
        return 0

    cdef inline Py_ssize_t stat_slot(self, Py_ssize_t plane, int64_t stat_id) noexcept:
        """Index of a stat id in the plane's sorted stat table, or -1."""
        cdef int64_t lo = self.st_begin[plane], hi = self.st_end[plane], mid
        if self.st_dense_size[plane]:
            if 0 <= stat_id < self.st_dense_size[plane]:
                return self.st_dense[self.st_dense_begin[plane] + stat_id]
            return -1
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.st_ids[mid] < stat_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.st_end[plane] and self.st_ids[lo] == stat_id:
            return lo
        return -1

    # ---- errors ----

    cdef object error(self, Py_ssize_t line, int64_t row):
        msg = self.failure.msg.decode("ascii") if self.failure.msg != NULL else "malformed event"
        at = (self.failure.at - self.base) if self.failure.at != NULL else 0
        return DecodeError(msg, at, f"XSpace.lines[{line}].events(row {row})")

    # ---- one event from the wire ----

    cdef int read_event(self, Cursor* c, Py_ssize_t plane, Event* ev, bint want_stats) except? -1:
        """Parse one XEvent payload into ``ev`` (roles only when ``want_stats``). Returns -1 on bad bytes
        (the failure is recorded)."""
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef Cursor sub
        cdef StatOut st
        cdef Py_ssize_t k
        cdef int r
        cdef int64_t offset_ps = 0
        ev.md_id = 0
        ev.dur = 0
        ev.timed = 1
        ev.present = 0
        while c.p < c.end:
            if read_tag(c, &field, &wt) < 0:
                return -1
            if wt == WT_VARINT and (field == 1 or field == 2 or field == 3 or field == 5):
                if read_varint(c, &v) < 0:
                    return -1
                if field == 1:
                    ev.md_id = <int64_t>v
                elif field == 2:
                    offset_ps = <int64_t>v
                    ev.timed = 1
                elif field == 3:
                    ev.dur = <int64_t>v
                else:
                    offset_ps = 0
                    ev.timed = 0
            elif field == 4 and wt == WT_LEN:
                if read_len(c, &s, &e) < 0:
                    return -1
                if not want_stats:
                    continue  # the first walk checked the stats
                sub = sub_cursor(c, s, e)
                if parse_stat(&sub, &st, self.base) < 0:
                    return -1
                k = self.stat_slot(plane, st.metadata_id)
                if k < 0:
                    continue
                r = self.st_roles[k]
                if r < 0:
                    continue
                if st.kind == KIND_STR:
                    ev.roles[r].kind = KIND_STR
                    ev.roles[r].value = self.strings.intern(self.base + st.value, st.length)
                elif st.kind == KIND_REF:
                    k = self.stat_slot(plane, st.value)
                    ev.roles[r].kind = KIND_STR
                    ev.roles[r].value = self.st_names[k] if k >= 0 else 0
                else:
                    ev.roles[r].kind = <uint8_t>st.kind
                    ev.roles[r].value = st.value
                ev.present |= (<uint32_t>1) << r
            elif skip_field(c, field, wt) < 0:
                return -1
        ev.start = offset_ps
        return 0

    # ---- role values with the metadata fallback ----

    cdef inline bint eff(self, Event* ev, int r, RoleValue* out) noexcept:
        """The event's own value of role r, else its metadata's; False when neither has one."""
        cdef int32_t md
        if role_present(ev, r):
            out[0] = ev.roles[r]
            return True
        md = ev.md_row if ev.md_row >= 0 else <int32_t>self.n_md
        if self.md_role_kind[r, md] != KIND_NONE:
            out.kind = self.md_role_kind[r, md]
            out.value = self.md_role_value[r, md]
            return True
        return False

    cdef inline int32_t eff_str(self, Event* ev, int r) noexcept:
        """A string role's code (0 = "" or absent or not a string)."""
        cdef RoleValue v
        if self.eff(ev, r, &v) and v.kind == KIND_STR:
            return <int32_t>v.value
        return 0

    cdef inline bint eff_int(self, Event* ev, int r, int64_t* out, bint metadata) noexcept:
        """An integer role (int64 bits; uint64 as its bits); False when absent or not an integer."""
        cdef RoleValue v
        if metadata:
            if not self.eff(ev, r, &v):
                return False
        elif role_present(ev, r):
            v = ev.roles[r]
        else:
            return False
        if v.kind == KIND_INT64 or v.kind == KIND_UINT64:
            out[0] = v.value
            return True
        return False

    cdef inline double eff_number(self, Event* ev, int r) noexcept:
        """A numeric role as a double (FLOPs, bytes), 0 when absent or a string."""
        cdef RoleValue v
        if not self.eff(ev, r, &v):
            return 0.0
        if v.kind == KIND_DOUBLE:
            return (<double*>&v.value)[0]
        if v.kind == KIND_UINT64:
            return <double><uint64_t>v.value
        if v.kind == KIND_INT64:
            return <double>v.value
        return 0.0

    # ---- slots ----

    cdef int64_t new_slot(self, int cls, int64_t k0, int64_t k1, int64_t k2, int64_t k3, Event* ev) except -1:
        cdef int64_t s = self.sl_class.n
        push_i64(&self.sl_class, cls)
        push_i64(&self.sl_line, self.line_index)
        push_i64(&self.sl_k0, k0)
        push_i64(&self.sl_k1, k1)
        push_i64(&self.sl_k2, k2)
        push_i64(&self.sl_k3, k3)
        push_i64(&self.sl_count, 0)
        push_i64(&self.sl_total, 0)
        push_i64(&self.sl_self, 0)
        push_i64(&self.sl_min, INT64_MAX)
        push_i64(&self.sl_max, INT64_MIN)
        push_i64(&self.sl_first_row, ev.row)
        push_i64(&self.sl_first_start, ev.start)
        push_f64(&self.sl_flops, 0.0)
        push_f64(&self.sl_bytes, 0.0)
        push_i64(&self.sl_extra0, 0)
        push_i64(&self.sl_extra1, 0)
        push_i64(&self.sl_extra2, 0)
        return s

    cdef int64_t slot(self, int cls, int64_t k0, int64_t k1, int64_t k2, int64_t k3, Event* ev) except -1:
        """The slot of (class, keys) on the current line, made on first use."""
        cdef int64_t key[5]
        cdef Py_ssize_t j, c
        cdef int64_t s
        key[0] = cls
        key[1] = k0
        key[2] = k1
        key[3] = k2
        key[4] = k3
        j = self.slot_map.probe(key)
        if self.slot_map.vals[j] >= 0:
            return self.slot_map.vals[j]
        s = self.new_slot(cls, k0, k1, k2, k3, ev)
        for c in range(5):
            self.slot_map.keys[5 * j + c] = key[c]
        self.slot_map.vals[j] = s
        self.slot_map.n += 1
        if 2 * self.slot_map.n > self.slot_map.cap:
            self.slot_map.grow()
        return s

    cdef inline int64_t md_slot(self, int cls, Event* ev) except -1:
        """The slot of (class, the event's metadata row) on the current line: a direct lookup."""
        cdef Py_ssize_t i = cls * (self.n_md + 1) + (ev.md_row if ev.md_row >= 0 else self.n_md)
        cdef int64_t s = self.md_slots[i]
        if s < 0:
            # ALL and INPUT: k0 = metadata row. FW classes: k0 = tf_op code 0 (none), k1 = metadata row.
            if cls < C_FW_ALL:
                s = self.new_slot(cls, ev.md_row, 0, 0, 0, ev)
            else:
                s = self.new_slot(cls, 0, ev.md_row, 0, 0, ev)
            self.md_slots[i] = s
            push_i64(&self.touched, i)
        return s

    cdef void reset_line_slots(self) noexcept:
        cdef Py_ssize_t k
        self.slot_map.clear()
        for k in range(self.touched.n):
            self.md_slots[(<int64_t*>self.touched.data)[k]] = -1
        self.touched.n = 0

    cdef inline void add(self, int64_t s, int64_t dur, int64_t start) noexcept:
        (<int64_t*>self.sl_count.data)[s] += 1
        (<int64_t*>self.sl_total.data)[s] += dur
        if dur < (<int64_t*>self.sl_min.data)[s]:
            (<int64_t*>self.sl_min.data)[s] = dur
        if dur > (<int64_t*>self.sl_max.data)[s]:
            (<int64_t*>self.sl_max.data)[s] = dur
        if start < (<int64_t*>self.sl_first_start.data)[s]:
            (<int64_t*>self.sl_first_start.data)[s] = start

    # ---- nesting ----

    cdef int nest(self, int c, int64_t start, int64_t dur, int64_t s) except -1:
        """Visit an event of class c (in sorted order): close what ended, credit the parent, open it.

        Self time of a closed event = its duration minus its direct children's durations (never below 0),
        added to its slot ``s``.
        """
        cdef StackEntry* st = self.stacks[c]
        cdef Py_ssize_t d = self.depth[c]
        cdef int64_t end = start + dur
        cdef int64_t own
        cdef Py_ssize_t cap
        while d > 0 and st[d - 1].end < end:
            d -= 1
            own = st[d].dur - st[d].child
            (<int64_t*>self.sl_self.data)[st[d].slot] += own if own > 0 else 0
        if d > 0:
            st[d - 1].child += dur
        elif self.roots_on:
            push_i64(&self.rt_class, c)
            push_i64(&self.rt_line, self.line_index)
            push_i64(&self.rt_end, end)
            push_i64(&self.rt_dur, dur)
        if d == self.stack_cap:
            cap = self.stack_cap * 2
            for k in range(NEST_CLASSES):
                self.stacks[k] = <StackEntry*>PyMem_Realloc(self.stacks[k], cap * sizeof(StackEntry))
                if self.stacks[k] == NULL:
                    raise MemoryError()
            self.stack_cap = cap
            st = self.stacks[c]
        st[d].end = end
        st[d].dur = dur
        st[d].child = 0
        st[d].slot = s
        self.depth[c] = d + 1
        return 0

    cdef int export_open(self, int64_t base_ps) except -1:
        """Hand the entries still open at a piece's end to the merge (ends made absolute), bottom first."""
        cdef int c
        cdef Py_ssize_t k
        cdef StackEntry* st
        for c in range(NEST_CLASSES):
            st = self.stacks[c]
            for k in range(self.depth[c]):
                push_i64(&self.op_class, c)
                push_i64(&self.op_line, self.line_index)
                push_i64(&self.op_end, <int64_t>(<uint64_t>st[k].end + <uint64_t>base_ps))
                push_i64(&self.op_dur, st[k].dur)
                push_i64(&self.op_child, st[k].child)
                push_i64(&self.op_slot, st[k].slot)
            self.depth[c] = 0
        return 0

    cdef void close_all(self) noexcept:
        cdef int c
        cdef Py_ssize_t d
        cdef int64_t own
        cdef StackEntry* st
        for c in range(NEST_CLASSES):
            st = self.stacks[c]
            d = self.depth[c]
            while d > 0:
                d -= 1
                own = st[d].dur - st[d].child
                (<int64_t*>self.sl_self.data)[st[d].slot] += own if own > 0 else 0
            self.depth[c] = 0

    # ---- records ----

    cdef int record(self, Event* ev) except -1:
        cdef uint16_t flags = RF_TIMED if ev.timed else 0
        cdef int64_t x
        push_i64(&self.rc_row, ev.row)
        push_i64(&self.rc_start, ev.start)
        push_i64(&self.rc_dur, ev.dur)
        push_i32(&self.rc_line, <int32_t>self.line_index)
        push_i32(&self.rc_md, ev.md_row)
        if self.eff_int(ev, R_CORRELATION_ID, &x, False):
            flags |= RF_CORR
        else:
            x = 0
        push_i64(&self.rc_corr, x)
        if self.eff_int(ev, R_GROUP_ID, &x, True):
            flags |= RF_GROUP
        else:
            x = 0
        push_i64(&self.rc_group, x)
        if self.eff_int(ev, R_PROGRAM_ID, &x, True):
            flags |= RF_PROGRAM
        else:
            x = 0
        push_i64(&self.rc_program, x)
        if self.eff_int(ev, R_STEP_NUM, &x, True):
            flags |= RF_STEP_NUM
            if role_present(ev, R_STEP_NUM):
                flags |= RF_STEP_NUM_OWN
        else:
            x = 0
        push_i64(&self.rc_step, x)
        if self.eff_int(ev, R_SCOPE_RANGE_ID, &x, False):
            flags |= RF_SCOPE
        else:
            x = 0
        push_i64(&self.rc_scope, x)
        if self.eff_int(ev, R_CUDA_GRAPH_NODE_ID, &x, False):
            flags |= RF_NODE
        else:
            x = 0
        push_i64(&self.rc_node, x)
        if role_present(ev, R_STEP_NAME):
            flags |= RF_STEP_NAME
        push_i32(&self.rc_name, <int32_t>(ev.roles[R_STEP_NAME].value if role_present(ev, R_STEP_NAME)
                                          and ev.roles[R_STEP_NAME].kind == KIND_STR else 0))
        push_i32(&self.rc_hlo, self.eff_str(ev, R_HLO_OP))
        push_i32(&self.rc_tf, self.eff_str(ev, R_TF_OP))
        push_i32(&self.rc_details, self.eff_str(ev, R_KERNEL_DETAILS))
        push_i32(&self.rc_module, self.eff_str(ev, R_HLO_MODULE))
        push_i32(&self.rc_category, self.eff_str(ev, R_HLO_CATEGORY))
        push_i32(&self.rc_equation, self.eff_str(ev, R_EQUATION))
        push_f64(&self.rc_flops, self.eff_number(ev, R_FLOPS))
        push_f64(&self.rc_bytes, self.eff_number(ev, R_BYTES_ACCESSED))
        push_u16(&self.rc_flags, flags)
        return 0

    # ---- the host lines' compact streams ----

    cdef inline int stream_event(self, Event* ev, int32_t md) except -1:
        """Append one timed host event (visited in sorted order) to its line's stream."""
        cdef uint64_t delta = <uint64_t>ev.start - <uint64_t>self.stream_prev
        cdef uint64_t dur = <uint64_t>ev.dur
        cdef uint8_t* p
        if self.stream.n + 21 > self.stream.cap:
            vec_reserve(&self.stream, self.stream.n + 21)
        p = <uint8_t*>self.stream.data + self.stream.n
        while delta >= 0x80:
            p[0] = <uint8_t>(delta | 0x80)
            delta >>= 7
            p += 1
        p[0] = <uint8_t>delta
        p += 1
        while dur >= 0x80:
            p[0] = <uint8_t>(dur | 0x80)
            dur >>= 7
            p += 1
        p[0] = <uint8_t>dur
        p += 1
        p[0] = <uint8_t>self.md_host_category[md]
        p += 1
        self.stream.n = p - <uint8_t*>self.stream.data
        self.stream_prev = ev.start
        return 0

    # ---- one event, in sorted order ----

    cdef int visit(self, Event* ev, uint32_t line_flags) except -1:
        cdef int64_t s, x
        cdef uint32_t mf
        cdef int32_t hlo, tf, code
        cdef bint has_hlo, fw
        cdef int32_t md = ev.md_row if ev.md_row >= 0 else <int32_t>self.n_md
        if not ev.timed:
            if (line_flags & LF_KERNELS) and ev.dur > 0:
                self.record(ev)  # kernel_stats counts aggregated kernels too
            return 0
        mf = self.md_flags[md]
        # every line: per metadata, self time among all events of the line
        s = self.md_slot(C_ALL, ev)
        self.add(s, ev.dur, ev.start)
        self.nest(C_ALL, ev.start, ev.dur, s)
        if not (line_flags & LF_HOST):
            # Device lines: FLOPs and bytes too (framework-op lines of devices without XLA ops report them).
            (<double*>self.sl_flops.data)[s] += self.eff_number(ev, R_FLOPS)
            (<double*>self.sl_bytes.data)[s] += self.eff_number(ev, R_BYTES_ACCESSED)
        if line_flags & LF_HOST:
            self.stream_event(ev, md)
            if mf & MF_INPUT:
                s = self.md_slot(C_INPUT, ev)
                self.add(s, ev.dur, ev.start)
                self.nest(C_INPUT, ev.start, ev.dur, s)
            hlo = self.eff_str(ev, R_HLO_OP)
            has_hlo = hlo != 0
            if has_hlo:
                x = 0
                if not self.eff_int(ev, R_PROGRAM_ID, &x, True):
                    x = 0  # an absent program_id reads as 0, as u64_stat does
                s = self.slot(C_HLO, hlo, x, 0, 0, ev)
                if (<int64_t*>self.sl_count.data)[s] == 0:
                    (<int64_t*>self.sl_extra0.data)[s] = self.eff_str(ev, R_HLO_CATEGORY)
                    (<int64_t*>self.sl_extra1.data)[s] = self.eff_str(ev, R_TF_OP)
                    (<int64_t*>self.sl_extra2.data)[s] = self.eff_str(ev, R_HLO_MODULE)
                self.add(s, ev.dur, ev.start)
                (<double*>self.sl_flops.data)[s] += self.eff_number(ev, R_FLOPS)
                (<double*>self.sl_bytes.data)[s] += self.eff_number(ev, R_BYTES_ACCESSED)
                self.nest(C_HLO, ev.start, ev.dur, s)
            tf = self.eff_str(ev, R_TF_OP)
            fw = tf != 0 or (mf & MF_FW_NAME) != 0
            if fw:
                # Key: the tf_op string when set, else the event's metadata.
                s = self.slot(C_FW_ALL, tf, -1, 0, 0, ev) if tf else self.md_slot(C_FW_ALL, ev)
                self.add(s, ev.dur, ev.start)
                (<double*>self.sl_flops.data)[s] += self.eff_number(ev, R_FLOPS)
                (<double*>self.sl_bytes.data)[s] += self.eff_number(ev, R_BYTES_ACCESSED)
                self.nest(C_FW_ALL, ev.start, ev.dur, s)
                if not has_hlo:
                    s = self.slot(C_FW_NOHLO, tf, -1, 0, 0, ev) if tf else self.md_slot(C_FW_NOHLO, ev)
                    self.add(s, ev.dur, ev.start)
                    (<double*>self.sl_flops.data)[s] += self.eff_number(ev, R_FLOPS)
                    (<double*>self.sl_bytes.data)[s] += self.eff_number(ev, R_BYTES_ACCESSED)
                    self.nest(C_FW_NOHLO, ev.start, ev.dur, s)
            if (role_present(ev, R_STEP_NUM) or role_present(ev, R_STEP_NAME) or role_present(ev, R_CORRELATION_ID)
                    or role_present(ev, R_SCOPE_RANGE_ID)):
                self.record(ev)
        if line_flags & (LF_RECORD_ALL | LF_STEPS | LF_KERNELS):
            self.record(ev)
        return 0

    # ---- lines ----

    cdef int walk_line(self, Py_ssize_t plane, int64_t begin, int64_t end, uint32_t line_flags) except -1:
        """One whole line: its fields, and its events visited in (start, longer first) order."""
        return self.walk_piece(plane, begin, end, line_flags, True, True, 0)

    cdef int walk_piece(self, Py_ssize_t plane, int64_t begin, int64_t end, uint32_t line_flags,
                        bint first_part, bint last_part, int64_t given_timestamp_ns) except -1:
        """A line, or a piece of one (a byte range of whole events; the line's own fields are then
        given: ``given_timestamp_ns``). A piece after the first records its roots, a piece before the
        last hands its open entries on (see ``run_pieces``)."""
        cdef bint whole = first_part and last_part
        cdef Cursor c, sub
        cdef uint32_t field, wt
        cdef uint64_t v
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef int64_t line_id = 0, display_id = 0, timestamp_ns = 0, duration_ps = 0
        cdef str name = "", display_name = ""
        cdef Event ev
        cdef int64_t prev_start = 0, prev_end = 0, n = 0, n_timed = 0, first_row = self.row
        cdef int64_t min_start = INT64_MAX, max_end = INT64_MIN
        cdef Py_ssize_t slot_mark = self.sl_class.n, rec_mark = self.rc_row.n, stream_mark = self.stream.n
        cdef Py_ssize_t root_mark = self.rt_end.n
        cdef bint sorted_ = True
        cdef int64_t base_ps, i
        if begin < 0 or end > self.nbuf or begin > end:
            raise DecodeError("line span outside the input", begin, f"XSpace.lines[{self.line_index}]")
        c.p = self.base + begin
        c.end = self.base + end
        c.failure = &self.failure
        self.reset_line_slots()
        self.stream_prev = 0
        self.roots_on = not first_part
        while c.p < c.end:
            if read_tag(&c, &field, &wt) < 0:
                raise self.error(self.line_index, self.row)
            if field == 4 and wt == WT_LEN:
                if read_len(&c, &s, &e) < 0:
                    raise self.error(self.line_index, self.row)
                sub = sub_cursor(&c, s, e)
                ev.row = self.row
                if self.read_event(&sub, plane, &ev, True) < 0:
                    raise self.error(self.line_index, self.row)
                ev.md_row = self.md_row_of(plane, ev.md_id)
                self.row += 1
                n += 1
                if ev.timed:
                    n_timed += 1
                    if ev.start < min_start:
                        min_start = ev.start
                    if ev.start + ev.dur > max_end:
                        max_end = ev.start + ev.dur
                    # (start, longer first) order: a later start, or the same start and an end no later.
                    if n_timed > 1 and (ev.start < prev_start or (ev.start == prev_start and ev.start + ev.dur > prev_end)):
                        sorted_ = False
                    prev_start = ev.start
                    prev_end = ev.start + ev.dur
                if sorted_:
                    self.visit(&ev, line_flags)
            elif wt == WT_VARINT and (field == 1 or field == 10 or field == 3 or field == 9):
                if read_varint(&c, &v) < 0:
                    raise self.error(self.line_index, self.row)
                if field == 1:
                    line_id = <int64_t>v
                elif field == 10:
                    display_id = <int64_t>v
                elif field == 3:
                    timestamp_ns = <int64_t>v
                else:
                    duration_ps = <int64_t>v
            elif (field == 2 or field == 11) and wt == WT_LEN:
                if read_len(&c, &s, &e) < 0:
                    raise self.error(self.line_index, self.row)
                if field == 2:
                    name = (<const char*>s)[:e - s].decode("utf-8", "replace")
                else:
                    display_name = (<const char*>s)[:e - s].decode("utf-8", "replace")
            elif skip_field(&c, field, wt) < 0:
                raise self.error(self.line_index, self.row)
        if not whole:
            # A piece: its line's fields were read by the plan; a piece out of order cannot be merged.
            timestamp_ns = given_timestamp_ns
            if not sorted_:
                raise UnsortedPiece(self.line_index)
        base_ps = <int64_t>(<uint64_t>timestamp_ns * <uint64_t>1000)
        if last_part:
            self.close_all()
        else:
            self.export_open(base_ps)
        self.roots_on = False
        if not sorted_:
            # Undo this line's slots and records, then visit its events from a buffer sorted per line.
            self.sl_class.n = self.sl_line.n = self.sl_k0.n = self.sl_k1.n = self.sl_k2.n = slot_mark
            self.sl_k3.n = self.sl_count.n = self.sl_total.n = self.sl_self.n = self.sl_min.n = slot_mark
            self.sl_max.n = self.sl_first_row.n = self.sl_first_start.n = self.sl_flops.n = slot_mark
            self.sl_bytes.n = self.sl_extra0.n = self.sl_extra1.n = self.sl_extra2.n = slot_mark
            self.truncate_records(rec_mark)
            self.reset_line_slots()
            self.stream.n = stream_mark
            self.stream_prev = 0
            self.row = first_row
            self.walk_sorted(plane, begin, end, line_flags, n)
        # Starts are relative to the line until its timestamp is known: make this line's absolute.
        if base_ps:
            for i in range(root_mark, self.rt_end.n):
                (<int64_t*>self.rt_end.data)[i] = <int64_t>(<uint64_t>(<int64_t*>self.rt_end.data)[i]
                                                            + <uint64_t>base_ps)
            for i in range(rec_mark, self.rc_start.n):
                (<int64_t*>self.rc_start.data)[i] = <int64_t>(<uint64_t>(<int64_t*>self.rc_start.data)[i]
                                                              + <uint64_t>base_ps)
            for i in range(slot_mark, self.sl_first_start.n):
                (<int64_t*>self.sl_first_start.data)[i] = <int64_t>(
                    <uint64_t>(<int64_t*>self.sl_first_start.data)[i] + <uint64_t>base_ps)
        if line_flags & LF_HOST:
            push_i64(&self.stream_begin, stream_mark)
            push_i64(&self.stream_end, self.stream.n)
        else:
            push_i64(&self.stream_begin, -1)
            push_i64(&self.stream_end, -1)
        push_i64(&self.ln_index, self.line_index)
        push_i64(&self.ln_id, line_id)
        push_i64(&self.ln_display_id, display_id)
        push_i64(&self.ln_timestamp_ns, timestamp_ns)
        push_i64(&self.ln_duration_ps, duration_ps)
        push_i64(&self.ln_events, n)
        push_i64(&self.ln_timed, n_timed)
        push_i64(&self.ln_first_row, first_row)
        push_i64(&self.ln_sorted, sorted_)
        push_i64(&self.ln_min_start, <int64_t>(<uint64_t>min_start + <uint64_t>base_ps) if n_timed else 0)
        push_i64(&self.ln_max_end, <int64_t>(<uint64_t>max_end + <uint64_t>base_ps) if n_timed else 0)
        self.ln_name.append(name)
        self.ln_display_name.append(display_name)
        self.line_index += 1
        return 0

    cdef void truncate_records(self, Py_ssize_t mark) noexcept:
        self.rc_row.n = self.rc_start.n = self.rc_dur.n = self.rc_line.n = mark
        self.rc_md.n = self.rc_flags.n = self.rc_corr.n = self.rc_group.n = self.rc_program.n = mark
        self.rc_step.n = self.rc_scope.n = self.rc_hlo.n = self.rc_tf.n = self.rc_name.n = mark
        self.rc_details.n = self.rc_module.n = self.rc_category.n = self.rc_flops.n = self.rc_bytes.n = mark
        self.rc_node.n = self.rc_equation.n = mark

    cdef int walk_sorted(self, Py_ssize_t plane, int64_t begin, int64_t end, uint32_t line_flags,
                         int64_t n) except -1:
        """The events of one line visited in sorted order from a buffer (lines out of order only)."""
        cdef Event* events = <Event*>PyMem_Malloc((n if n > 0 else 1) * sizeof(Event))
        cdef Cursor c, sub
        cdef uint32_t field, wt
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef int64_t k = 0, i
        if events == NULL:
            raise MemoryError()
        try:
            c.p = self.base + begin
            c.end = self.base + end
            c.failure = &self.failure
            while c.p < c.end:
                if read_tag(&c, &field, &wt) < 0:
                    raise self.error(self.line_index, self.row)
                if field == 4 and wt == WT_LEN:
                    if read_len(&c, &s, &e) < 0:
                        raise self.error(self.line_index, self.row)
                    sub = sub_cursor(&c, s, e)
                    events[k].row = self.row
                    if self.read_event(&sub, plane, &events[k], True) < 0:
                        raise self.error(self.line_index, self.row)
                    events[k].md_row = self.md_row_of(plane, events[k].md_id)
                    self.row += 1
                    k += 1
                elif skip_field(&c, field, wt) < 0:
                    raise self.error(self.line_index, self.row)
            starts = np.empty(k, dtype=np.int64)
            ends = np.empty(k, dtype=np.int64)
            for i in range(k):
                starts[i] = events[i].start
                ends[i] = events[i].start + events[i].dur
            order = np.lexsort((-ends, starts)).astype(np.int64)  # stable: file order breaks ties
            for i in range(k):
                self.visit(&events[<Py_ssize_t>order[i]], line_flags)
            self.close_all()
        finally:
            PyMem_Free(events)
        return 0

    cdef int walk_tpu_line(self, Py_ssize_t plane, int64_t begin, int64_t end) except -1:
        cdef bint whole_program
        """TPU op slots of one XLA Ops line: self time by nesting over the device spans
        (``device_offset_ps``/``device_duration_ps`` when an event has both, as XProf), sorted per line."""
        cdef Py_ssize_t n = 0, cap = 1024, i
        cdef Event* events = <Event*>PyMem_Malloc(cap * sizeof(Event))
        cdef Cursor c, sub
        cdef uint32_t field, wt
        cdef const uint8_t* s
        cdef const uint8_t* e
        cdef int64_t row = self.row, off, dd, sym, slot_id
        cdef Event* ev
        if events == NULL:
            raise MemoryError()
        try:
            c.p = self.base + begin
            c.end = self.base + end
            c.failure = &self.failure
            while c.p < c.end:
                if read_tag(&c, &field, &wt) < 0:
                    raise self.error(self.line_index, row)
                if field == 4 and wt == WT_LEN:
                    if read_len(&c, &s, &e) < 0:
                        raise self.error(self.line_index, row)
                    if n == cap:
                        cap *= 2
                        events = <Event*>PyMem_Realloc(events, cap * sizeof(Event))
                        if events == NULL:
                            raise MemoryError()
                    sub = sub_cursor(&c, s, e)
                    events[n].row = row
                    if self.read_event(&sub, plane, &events[n], True) < 0:
                        raise self.error(self.line_index, row)
                    events[n].md_row = self.md_row_of(plane, events[n].md_id)
                    row += 1
                    if not events[n].timed:
                        continue
                    if (self.eff_int(&events[n], R_DEVICE_OFFSET_PS, &off, False)
                            and self.eff_int(&events[n], R_DEVICE_DURATION_PS, &dd, False)):
                        events[n].start = off
                        events[n].dur = dd
                    n += 1
                elif skip_field(&c, field, wt) < 0:
                    raise self.error(self.line_index, row)
            starts = np.empty(n, dtype=np.int64)
            ends = np.empty(n, dtype=np.int64)
            for i in range(n):
                starts[i] = events[i].start
                ends[i] = events[i].start + events[i].dur
            order = np.lexsort((-ends, starts)).astype(np.int64)
            for i in range(n):
                ev = &events[<Py_ssize_t>order[i]]
                # symbol_id 0 is a whole program: it nests, but it is not an op.
                whole_program = self.eff_int(ev, R_SYMBOL_ID, &sym, True) and sym == 0
                slot_id = self.slot(C_TPU, ev.md_row, 1 if whole_program else 0, 0, 0, ev)
                if (<int64_t*>self.sl_count.data)[slot_id] == 0 or ev.row < (<int64_t*>self.sl_first_row.data)[slot_id]:
                    # The op's identity comes from its first event in file order.
                    (<int64_t*>self.sl_first_row.data)[slot_id] = ev.row
                    if not self.eff_int(ev, R_PROGRAM_ID, &sym, True):
                        sym = 0
                    (<int64_t*>self.sl_k2.data)[slot_id] = sym
                    (<int64_t*>self.sl_extra0.data)[slot_id] = self.eff_str(ev, R_HLO_CATEGORY)
                    (<int64_t*>self.sl_extra1.data)[slot_id] = self.eff_str(ev, R_TF_OP)
                    (<int64_t*>self.sl_extra2.data)[slot_id] = self.eff_str(ev, R_HLO_MODULE)
                self.add(slot_id, ev.dur, ev.start)
                (<double*>self.sl_flops.data)[slot_id] += self.eff_number(ev, R_FLOPS)
                (<double*>self.sl_bytes.data)[slot_id] += self.eff_number(ev, R_BYTES_ACCESSED)
                self.nest(0, ev.start, ev.dur, slot_id)
            self.close_all()
        finally:
            PyMem_Free(events)
        return 0

    # ---- Python interface ----

    def run(self, const int32_t[::1] span_plane, const int64_t[::1] span_begin, const int64_t[::1] span_end,
            const uint32_t[::1] span_flags):
        """Walk every line span (in file order); ``span_flags`` are the LF_* flags of each line."""
        cdef Py_ssize_t i
        cdef int64_t mark_row
        cdef int64_t total = span_end[span_end.shape[0] - 1] if span_end.shape[0] else 0
        for i in range(span_plane.shape[0]):
            if span_flags[i] & LF_TPU_OPS:
                # The TPU op slots come from a sorted second walk of the same bytes (before the main walk,
                # which assigns the rows; this one restores the row counter).
                mark_row = self.row
                self.reset_line_slots()
                self.walk_tpu_line(span_plane[i], span_begin[i], span_end[i])
                self.row = mark_row
                # The TPU slots belong to this line: keep them through the main walk's slot map reset.
                self.walk_line(span_plane[i], span_begin[i], span_end[i], span_flags[i])
            else:
                self.walk_line(span_plane[i], span_begin[i], span_end[i], span_flags[i])
            if self.progress is not None and (i & 15) == 15:
                self.progress(span_end[i], total)
        return self.line_index

    def run_pieces(self, const int32_t[::1] plane, const int64_t[::1] begin, const int64_t[::1] end,
                   const uint32_t[::1] flags, const int64_t[::1] line_index, const int64_t[::1] first_row,
                   const uint8_t[::1] first_part, const uint8_t[::1] last_part, const int64_t[::1] timestamp_ns):
        """Walk pieces of lines (whole lines are pieces that are both first and last), each with its
        line's index and first event row in the whole host, so shards of one host merge exactly."""
        cdef Py_ssize_t i
        for i in range(plane.shape[0]):
            self.row = first_row[i]
            self.line_index = line_index[i]
            if (flags[i] & LF_TPU_OPS) and first_part[i] and last_part[i]:
                self.reset_line_slots()
                self.walk_tpu_line(plane[i], begin[i], end[i])
                self.row = first_row[i]
            self.walk_piece(plane[i], begin[i], end[i], flags[i], first_part[i], last_part[i], timestamp_ns[i])
        return plane.shape[0]

    def stream_bytes(self):
        """Bytes held by the host lines' streams."""
        return self.stream.n

    def release_streams(self):
        """Free the host lines' streams (once the breakdown is done)."""
        vec_free(&self.stream)
        vec_init(&self.stream, 1)

    def result(self):
        """The pass's output as numpy columns (see xprof_core.index.build)."""
        i64 = np.int64
        return {
            "lines": {
                "id": vec_array(&self.ln_id, i64),
                "display_id": vec_array(&self.ln_display_id, i64),
                "timestamp_ns": vec_array(&self.ln_timestamp_ns, i64),
                "duration_ps": vec_array(&self.ln_duration_ps, i64),
                "events": vec_array(&self.ln_events, i64),
                "timed": vec_array(&self.ln_timed, i64),
                "first_row": vec_array(&self.ln_first_row, i64),
                "index": vec_array(&self.ln_index, i64),
                "sorted": vec_array(&self.ln_sorted, i64).astype(bool),
                "min_start_ps": vec_array(&self.ln_min_start, i64),
                "max_end_ps": vec_array(&self.ln_max_end, i64),
                "stream_begin": vec_array(&self.stream_begin, i64),
                "stream_end": vec_array(&self.stream_end, i64),
                "name": self.ln_name,
                "display_name": self.ln_display_name,
            },
            "slots": {
                "cls": vec_array(&self.sl_class, i64).astype(np.int8),
                "line": vec_array(&self.sl_line, i64).astype(np.int32),
                "k0": vec_array(&self.sl_k0, i64),
                "k1": vec_array(&self.sl_k1, i64),
                "k2": vec_array(&self.sl_k2, i64),
                "k3": vec_array(&self.sl_k3, i64),
                "count": vec_array(&self.sl_count, i64),
                "total_ps": vec_array(&self.sl_total, i64),
                "self_ps": vec_array(&self.sl_self, i64),
                "min_ps": vec_array(&self.sl_min, i64),
                "max_ps": vec_array(&self.sl_max, i64),
                "first_row": vec_array(&self.sl_first_row, i64),
                "first_start_ps": vec_array(&self.sl_first_start, i64),
                "flops": vec_array(&self.sl_flops, np.float64),
                "bytes": vec_array(&self.sl_bytes, np.float64),
                "extra0": vec_array(&self.sl_extra0, i64),
                "extra1": vec_array(&self.sl_extra1, i64),
                "extra2": vec_array(&self.sl_extra2, i64),
            },
            "records": {
                "row": vec_array(&self.rc_row, i64),
                "start_ps": vec_array(&self.rc_start, i64),
                "duration_ps": vec_array(&self.rc_dur, i64),
                "line": vec_array(&self.rc_line, np.int32),
                "md_row": vec_array(&self.rc_md, np.int32),
                "flags": vec_array(&self.rc_flags, np.uint16),
                "correlation_id": vec_array(&self.rc_corr, i64),
                "group_id": vec_array(&self.rc_group, i64),
                "program_id": vec_array(&self.rc_program, i64),
                "step_num": vec_array(&self.rc_step, i64),
                "scope_range_id": vec_array(&self.rc_scope, i64),
                "cuda_graph_node_id": vec_array(&self.rc_node, i64),
                "equation": vec_array(&self.rc_equation, np.int32),
                "step_name": vec_array(&self.rc_name, np.int32),
                "hlo_op": vec_array(&self.rc_hlo, np.int32),
                "tf_op": vec_array(&self.rc_tf, np.int32),
                "kernel_details": vec_array(&self.rc_details, np.int32),
                "hlo_module": vec_array(&self.rc_module, np.int32),
                "hlo_category": vec_array(&self.rc_category, np.int32),
                "flops": vec_array(&self.rc_flops, np.float64),
                "bytes_accessed": vec_array(&self.rc_bytes, np.float64),
            },
            "roots": {
                "cls": vec_array(&self.rt_class, i64).astype(np.int8),
                "line": vec_array(&self.rt_line, i64),
                "end_ps": vec_array(&self.rt_end, i64),
                "duration_ps": vec_array(&self.rt_dur, i64),
            },
            "open": {
                "cls": vec_array(&self.op_class, i64).astype(np.int8),
                "line": vec_array(&self.op_line, i64),
                "end_ps": vec_array(&self.op_end, i64),
                "duration_ps": vec_array(&self.op_dur, i64),
                "child_ps": vec_array(&self.op_child, i64),
                "slot": vec_array(&self.op_slot, i64),
            },
            "num_events": self.row,
        }


# --- the skeleton of a host: everything but its lines ---

def xspace_skeleton(buf):
    """The host's XSpace without its lines, as wire bytes: planes with their ids, names, metadata and
    stats, and the space's hostnames, errors and warnings, in their original order (so event-metadata
    rows number as in the host). What a process that merges shards needs of a host it does not read."""
    cdef const uint8_t[::1] view = buf if len(buf) else b"\0"
    cdef const uint8_t* base = &view[0]
    cdef Py_ssize_t nbuf = len(buf)
    cdef Failure failure
    cdef Cursor c, pc
    cdef uint32_t field, wt, f2, w2
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef const uint8_t* at
    cdef const uint8_t* at2
    failure.msg = NULL
    failure.at = NULL
    c.p = base
    c.end = base + nbuf
    c.failure = &failure
    out = bytearray()
    while c.p < c.end:
        at = c.p
        if read_tag(&c, &field, &wt) < 0:
            break
        if field == 1 and wt == WT_LEN:
            if read_len(&c, &s, &e) < 0:
                break
            plane = bytearray()
            pc.p = s
            pc.end = e
            pc.failure = &failure
            while pc.p < pc.end:
                at2 = pc.p
                if read_tag(&pc, &f2, &w2) < 0:
                    break
                if skip_field(&pc, f2, w2) < 0:
                    break
                if not (f2 == 3 and w2 == WT_LEN):  # every field of the plane but its lines
                    plane += (<const char*>at2)[:pc.p - at2]
            out += b"\x0a" + _varint_bytes(len(plane)) + plane
        else:
            if skip_field(&c, field, wt) < 0:
                break
            out += (<const char*>at)[:c.p - at]
    if failure.msg != NULL:
        raise DecodeError(failure.msg.decode("ascii"), failure.at - base, "XSpace")
    return bytes(out)


cdef bytes _varint_bytes(uint64_t v):
    cdef uint8_t tmp[10]
    cdef int n = 0
    while v >= 0x80:
        tmp[n] = <uint8_t>(v | 0x80)
        v >>= 7
        n += 1
    tmp[n] = <uint8_t>v
    return (<const char*>tmp)[:n + 1]


# --- pieces of lines, for shards ---

def line_pieces(buf, const int64_t[::1] span_begin, const int64_t[::1] span_end, int64_t piece_bytes,
                const uint8_t[::1] splittable):
    """Cut lines into pieces of about ``piece_bytes`` at event boundaries, with a fast skim (each
    field's tag and length only; no event is decoded).

    Returns per line its header fields (``id``, ``name``, ``timestamp_ns``) and event count, and per
    piece its line, byte range ``[begin, end)`` (the first piece of a line starts at the line's start,
    the last ends at its end, so the line's own fields fall in one of them), the line-relative index of
    its first event, and whether it is its line's first and last piece. Lines not ``splittable`` stay
    whole.
    """
    cdef const uint8_t[::1] view = buf if len(buf) else b"\0"
    cdef const uint8_t* base = &view[0]
    cdef Py_ssize_t nbuf = len(buf), i
    cdef Failure failure
    cdef Cursor c
    cdef uint32_t field, wt
    cdef uint64_t v
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef const uint8_t* at
    cdef int64_t n_events, piece_start, piece_first
    cdef Vec p_line, p_begin, p_end, p_first_event, p_first, p_last
    failure.msg = NULL
    failure.at = NULL
    n_lines = span_begin.shape[0]
    ids = np.zeros(n_lines, dtype=np.int64)
    stamps = np.zeros(n_lines, dtype=np.int64)
    counts = np.zeros(n_lines, dtype=np.int64)
    names = []
    vec_init(&p_line, 8); vec_init(&p_begin, 8); vec_init(&p_end, 8)
    vec_init(&p_first_event, 8); vec_init(&p_first, 8); vec_init(&p_last, 8)
    try:
        for i in range(n_lines):
            if span_begin[i] < 0 or span_end[i] > nbuf or span_begin[i] > span_end[i]:
                raise DecodeError("line span outside the input", span_begin[i], f"XSpace.lines[{i}]")
            c.p = base + span_begin[i]
            c.end = base + span_end[i]
            c.failure = &failure
            name = ""
            n_events = 0
            piece_start = span_begin[i]
            piece_first = 0
            while c.p < c.end:
                at = c.p
                if read_tag(&c, &field, &wt) < 0:
                    break
                if field == 4 and wt == WT_LEN:
                    if splittable[i] and n_events > piece_first and (at - base) - piece_start >= piece_bytes:
                        push_i64(&p_line, i); push_i64(&p_begin, piece_start); push_i64(&p_end, at - base)
                        push_i64(&p_first_event, piece_first)
                        push_i64(&p_first, piece_start == span_begin[i]); push_i64(&p_last, 0)
                        piece_start = at - base
                        piece_first = n_events
                    if read_len(&c, &s, &e) < 0:
                        break
                    n_events += 1
                elif wt == WT_VARINT and (field == 1 or field == 3):
                    if read_varint(&c, &v) < 0:
                        break
                    if field == 1:
                        ids[i] = <int64_t>v
                    else:
                        stamps[i] = <int64_t>v
                elif field == 2 and wt == WT_LEN:
                    if read_len(&c, &s, &e) < 0:
                        break
                    name = (<const char*>s)[:e - s].decode("utf-8", "replace")
                elif skip_field(&c, field, wt) < 0:
                    break
            if failure.msg != NULL:
                raise DecodeError(failure.msg.decode("ascii"), failure.at - base, f"XSpace.lines[{i}]")
            push_i64(&p_line, i); push_i64(&p_begin, piece_start); push_i64(&p_end, span_end[i])
            push_i64(&p_first_event, piece_first)
            push_i64(&p_first, piece_start == span_begin[i]); push_i64(&p_last, 1)
            counts[i] = n_events
            names.append(name)
        i64 = np.int64
        return {
            "lines": {"id": ids, "name": names, "timestamp_ns": stamps, "events": counts},
            "pieces": {
                "line": vec_array(&p_line, i64),
                "begin": vec_array(&p_begin, i64),
                "end": vec_array(&p_end, i64),
                "first_event": vec_array(&p_first_event, i64),
                "first_part": vec_array(&p_first, i64).astype(np.uint8),
                "last_part": vec_array(&p_last, i64).astype(np.uint8),
            },
        }
    finally:
        vec_free(&p_line); vec_free(&p_begin); vec_free(&p_end)
        vec_free(&p_first_event); vec_free(&p_first); vec_free(&p_last)


def line_pieces_stream(read_at, const int64_t[::1] span_begin, const int64_t[::1] span_end, int64_t piece_bytes,
                       const uint8_t[::1] splittable, Py_ssize_t window=16 << 20):
    """:func:`line_pieces` reading the lines through ``read_at(offset, size) -> bytes`` a window at a time
    (``os.pread`` on a file): the same answer, with memory bounded by the window however large a line is.
    Only each field's tag and length are read; events are skipped by their length."""
    cdef const uint8_t[::1] wv
    cdef const uint8_t* base
    cdef Failure failure
    cdef Cursor c
    cdef uint32_t field, wt
    cdef uint64_t v, n
    cdef int64_t pos, end, wstart, wend, at, hdr_end, n_events, piece_start, piece_first, span0
    cdef Py_ssize_t i
    cdef Vec p_line, p_begin, p_end, p_first_event, p_first, p_last
    if window < 4096:
        window = 4096
    failure.msg = NULL
    failure.at = NULL
    n_lines = span_begin.shape[0]
    ids = np.zeros(n_lines, dtype=np.int64)
    stamps = np.zeros(n_lines, dtype=np.int64)
    counts = np.zeros(n_lines, dtype=np.int64)
    names = []
    vec_init(&p_line, 8); vec_init(&p_begin, 8); vec_init(&p_end, 8)
    vec_init(&p_first_event, 8); vec_init(&p_first, 8); vec_init(&p_last, 8)
    try:
        for i in range(n_lines):
            span0 = span_begin[i]
            pos = span0
            end = span_end[i]
            if pos < 0 or pos > end:
                raise DecodeError("line span outside the input", pos, f"XSpace.lines[{i}]")
            win = b""
            wstart = wend = pos
            name = ""
            n_events = 0
            piece_start = pos
            piece_first = 0
            while pos < end:
                if wend - pos < 64 and wend < end:
                    win = read_at(pos, min(<int64_t>window, end - pos))
                    if len(win) == 0:
                        raise DecodeError("the file ends inside a line", pos, f"XSpace.lines[{i}]")
                    wstart = pos
                    wend = pos + len(win)
                    wv = win
                    base = &wv[0]
                c.p = base + (pos - wstart)
                c.end = base + (wend - wstart)
                c.failure = &failure
                at = pos
                if read_tag(&c, &field, &wt) < 0 or (wt == WT_VARINT and read_varint(&c, &v) < 0):
                    raise DecodeError(failure.msg.decode("ascii"), at, f"XSpace.lines[{i}]")
                if wt == WT_VARINT:
                    pos = wstart + (c.p - base)
                    if field == 1:
                        ids[i] = <int64_t>v
                    elif field == 3:
                        stamps[i] = <int64_t>v
                elif wt == WT_I64:
                    pos = wstart + (c.p - base) + 8
                elif wt == WT_I32:
                    pos = wstart + (c.p - base) + 4
                elif wt == WT_LEN:
                    if read_varint(&c, &n) < 0:
                        raise DecodeError(failure.msg.decode("ascii"), at, f"XSpace.lines[{i}]")
                    hdr_end = wstart + (c.p - base)
                    if n > <uint64_t>(end - hdr_end):
                        raise DecodeError("length-delimited field runs past the end of its message", at,
                                          f"XSpace.lines[{i}]")
                    if field == 4:
                        if splittable[i] and n_events > piece_first and at - piece_start >= piece_bytes:
                            push_i64(&p_line, i); push_i64(&p_begin, piece_start); push_i64(&p_end, at)
                            push_i64(&p_first_event, piece_first)
                            push_i64(&p_first, piece_start == span0); push_i64(&p_last, 0)
                            piece_start = at
                            piece_first = n_events
                        n_events += 1
                    elif field == 2:
                        name = read_at(hdr_end, <Py_ssize_t>n).decode("utf-8", "replace")
                    pos = hdr_end + <int64_t>n
                else:
                    raise DecodeError(f"unsupported wire type {wt} in a line", at, f"XSpace.lines[{i}]")
            if pos != end:
                raise DecodeError("a field runs past the end of its line", end, f"XSpace.lines[{i}]")
            push_i64(&p_line, i); push_i64(&p_begin, piece_start); push_i64(&p_end, end)
            push_i64(&p_first_event, piece_first)
            push_i64(&p_first, piece_start == span0); push_i64(&p_last, 1)
            counts[i] = n_events
            names.append(name)
        i64 = np.int64
        return {
            "lines": {"id": ids, "name": names, "timestamp_ns": stamps, "events": counts},
            "pieces": {
                "line": vec_array(&p_line, i64),
                "begin": vec_array(&p_begin, i64),
                "end": vec_array(&p_end, i64),
                "first_event": vec_array(&p_first_event, i64),
                "first_part": vec_array(&p_first, i64).astype(np.uint8),
                "last_part": vec_array(&p_last, i64).astype(np.uint8),
            },
        }
    finally:
        vec_free(&p_line); vec_free(&p_begin); vec_free(&p_end)
        vec_free(&p_first_event); vec_free(&p_first); vec_free(&p_last)


# --- line headers ---

def line_headers(buf, const int64_t[::1] span_begin, const int64_t[::1] span_end):
    """(ids, names) of lines from their byte spans, read without decoding events.

    Writers put a line's id and name before its events; a line that does
    not is scanned to its end, skipping the events.
    """
    cdef const uint8_t[::1] view = buf if len(buf) else b"\0"
    cdef const uint8_t* base = &view[0]
    cdef Py_ssize_t nbuf = len(buf), i
    cdef Failure failure
    cdef Cursor c
    cdef uint32_t field, wt
    cdef uint64_t v
    cdef const uint8_t* s
    cdef const uint8_t* e
    cdef int64_t line_id
    cdef bint have_name, seen_event
    failure.msg = NULL
    failure.at = NULL
    ids = np.zeros(span_begin.shape[0], dtype=np.int64)
    names = []
    for i in range(span_begin.shape[0]):
        if span_begin[i] < 0 or span_end[i] > nbuf or span_begin[i] > span_end[i]:
            raise DecodeError("line span outside the input", span_begin[i], f"XSpace.lines[{i}]")
        c.p = base + span_begin[i]
        c.end = base + span_end[i]
        c.failure = &failure
        line_id = 0
        name = ""
        have_name = False
        seen_event = False
        while c.p < c.end:
            if read_tag(&c, &field, &wt) < 0:
                break
            if field == 1 and wt == WT_VARINT:
                if read_varint(&c, &v) < 0:
                    break
                line_id = <int64_t>v
            elif field == 2 and wt == WT_LEN:
                if read_len(&c, &s, &e) < 0:
                    break
                name = (<const char*>s)[:e - s].decode("utf-8", "replace")
                have_name = True
            elif field == 4:
                if skip_field(&c, field, wt) < 0:
                    break
                seen_event = True
                if have_name:
                    break  # the name came before the events, as writers put it
            elif skip_field(&c, field, wt) < 0:
                break
        if failure.msg != NULL:
            raise DecodeError(failure.msg.decode("ascii"), failure.at - base, f"XSpace.lines[{i}]")
        ids[i] = line_id
        names.append(name)
    return ids, names


# --- the breakdown pass ---

cdef struct LineCursor:
    const uint8_t* p
    const uint8_t* end
    int64_t start      # the current event (absolute ps)
    int64_t dur
    int cat
    bint done


cdef inline uint64_t stream_varint(LineCursor* lc) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while lc.p < lc.end:
        b = lc.p[0]
        lc.p += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 64:
            break
    return v


cdef inline void advance(LineCursor* lc) noexcept nogil:
    """Move a line cursor to its next event (``done`` when none is left)."""
    if lc.p >= lc.end:
        lc.done = True
        return
    lc.start = <int64_t>(<uint64_t>lc.start + stream_varint(lc))
    lc.dur = <int64_t>stream_varint(lc)
    lc.cat = <int8_t>lc.p[0] if lc.p < lc.end else -1
    lc.p += 1


def host_breakdown(IndexPass index, const int64_t[::1] stream_begin, const int64_t[::1] stream_end,
                   const int64_t[::1] line_base_ps, Py_ssize_t default_category,
                   const int64_t[::1] step_start, const int64_t[::1] step_end, const int64_t[::1] marker_duration,
                   const int64_t[::1] x_start, const int64_t[::1] x_end, const int64_t[::1] x_category,
                   const int64_t[::1] x_step, Py_ssize_t n_categories):
    """Per-step cumulative covered time of the host lines (their compact streams from the first walk,
    merged by start) plus extra intervals: the rules of ``intervals.step_breakdown``.

    IN: per host line the byte range of its stream and the line's absolute start (ps); steps sorted by
    start with their marker durations; device intervals sorted by (step, start). A host event belongs to
    the latest step starting at or before it, if it starts inside that step's window; events as long as
    the step's marker or longer are left out; its end is clipped to the window; a category -1 counts as
    ``default_category``. OUT: int64 (n_categories, n_steps).
    """
    cdef Py_ssize_t n_lines = stream_begin.shape[0], n_steps = step_start.shape[0], n_x = x_start.shape[0]
    cdef Py_ssize_t i, li, sp = 0, xi = 0, g = -1, c, k, heap_n = 0
    cdef int64_t s, e, dur
    cdef LineCursor* cur
    cdef const uint8_t* data = <const uint8_t*>index.stream.data
    cdef int64_t n_bytes = index.stream.n
    if n_categories > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories")
    if line_base_ps.shape[0] != n_lines or stream_end.shape[0] != n_lines:
        raise ValueError("stream_begin, stream_end and line_base_ps differ in length")
    out = np.zeros((n_categories, n_steps), dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    cdef int64_t run_end[MAX_CATEGORIES]
    if n_steps == 0:
        return out
    cur = <LineCursor*>PyMem_Malloc((n_lines if n_lines else 1) * sizeof(LineCursor))
    heap_key_arr = np.zeros(max(n_lines, 1), dtype=np.int64)
    heap_item_arr = np.zeros(max(n_lines, 1), dtype=np.intp)
    cdef int64_t[::1] heap_key = heap_key_arr
    cdef Py_ssize_t[::1] heap_item = heap_item_arr
    if cur == NULL:
        raise MemoryError()
    try:
        for li in range(n_lines):
            if not (0 <= stream_begin[li] <= stream_end[li] <= n_bytes):
                raise ValueError(f"stream range of line {li} outside the streams")
            cur[li].p = data + stream_begin[li]
            cur[li].end = data + stream_end[li]
            cur[li].start = line_base_ps[li]
            cur[li].done = False
            advance(&cur[li])
            if not cur[li].done:
                heap_key[heap_n] = cur[li].start
                heap_item[heap_n] = li
                heap_n += 1
        with nogil:
            i = heap_n // 2
            while i > 0:
                i -= 1
                heap_sift_down(&heap_key[0], &heap_item[0], heap_n, i)
            while heap_n > 0 or xi < n_x:
                if heap_n > 0:
                    li = heap_item[0]
                    s = cur[li].start
                    dur = cur[li].dur
                    e = s + dur
                    c = cur[li].cat if 0 <= cur[li].cat < n_categories else default_category
                    advance(&cur[li])
                    if not cur[li].done:
                        heap_key[0] = cur[li].start
                    else:
                        heap_n -= 1
                        heap_key[0] = heap_key[heap_n]
                        heap_item[0] = heap_item[heap_n]
                    if heap_n > 0:
                        heap_sift_down(&heap_key[0], &heap_item[0], heap_n, 0)
                    while sp + 1 < n_steps and step_start[sp + 1] <= s:
                        sp += 1
                    while xi < n_x and (x_step[xi] < sp or (x_step[xi] == sp and x_start[xi] <= s)):
                        if x_step[xi] != g:
                            g = x_step[xi]
                            for k in range(n_categories):
                                run_end[k] = x_start[xi]
                        if 0 <= x_category[xi] < n_categories and 0 <= g < n_steps:
                            union_add(run_end, o, g, x_category[xi], n_categories, x_start[xi], x_end[xi])
                        xi += 1
                    if s < step_start[sp] or s >= step_end[sp] or dur >= marker_duration[sp]:
                        continue
                    if e > step_end[sp]:
                        e = step_end[sp]
                    if e <= s:
                        continue
                    if sp != g:
                        g = sp
                        for k in range(n_categories):
                            run_end[k] = s
                    union_add(run_end, o, g, c, n_categories, s, e)
                else:
                    if x_step[xi] != g:
                        g = x_step[xi]
                        for k in range(n_categories):
                            run_end[k] = x_start[xi]
                    if 0 <= x_category[xi] < n_categories and 0 <= g < n_steps:
                        union_add(run_end, o, g, x_category[xi], n_categories, x_start[xi], x_end[xi])
                    xi += 1
    finally:
        PyMem_Free(cur)
    return out


def breakdown_segments(IndexPass index, const int64_t[::1] stream_begin, const int64_t[::1] stream_end,
                       const int64_t[::1] line_base_ps, Py_ssize_t default_category,
                       const int64_t[::1] step_start, const int64_t[::1] step_end,
                       const int64_t[::1] marker_duration, Py_ssize_t n_categories):
    """The host events of some pieces of lines, as ``host_breakdown`` reads them, turned into the disjoint
    segments each category prefix covers per step: (step, prefix, start, end) columns sorted by (step,
    prefix, start). Unions of segments from the pieces of every shard give the host's breakdown exactly.

    The streams of the pieces are merged by start; every piece's stream must be sorted (the index pass
    refuses pieces that are not).
    """
    cdef Py_ssize_t n_lines = stream_begin.shape[0], n_steps = step_start.shape[0]
    cdef Py_ssize_t i, li, sp = 0, g = -1, c, k, heap_n = 0
    cdef int64_t s, e, dur
    cdef LineCursor* cur
    cdef const uint8_t* data = <const uint8_t*>index.stream.data
    cdef int64_t n_bytes = index.stream.n
    cdef int64_t run_start[MAX_CATEGORIES]
    cdef int64_t run_end[MAX_CATEGORIES]
    cdef Vec o_step, o_k, o_start, o_end
    if n_categories > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories")
    vec_init(&o_step, 8); vec_init(&o_k, 8); vec_init(&o_start, 8); vec_init(&o_end, 8)
    cur = <LineCursor*>PyMem_Malloc((n_lines if n_lines else 1) * sizeof(LineCursor))
    heap_key_arr = np.zeros(max(n_lines, 1), dtype=np.int64)
    heap_item_arr = np.zeros(max(n_lines, 1), dtype=np.intp)
    cdef int64_t[::1] heap_key = heap_key_arr
    cdef Py_ssize_t[::1] heap_item = heap_item_arr
    if cur == NULL:
        raise MemoryError()
    try:
        for k in range(n_categories):
            run_start[k] = 0
            run_end[k] = 0
        for li in range(n_lines):
            if not (0 <= stream_begin[li] <= stream_end[li] <= n_bytes):
                raise ValueError(f"stream range of piece {li} outside the streams")
            cur[li].p = data + stream_begin[li]
            cur[li].end = data + stream_end[li]
            cur[li].start = line_base_ps[li]
            cur[li].done = False
            advance(&cur[li])
            if not cur[li].done:
                heap_key[heap_n] = cur[li].start
                heap_item[heap_n] = li
                heap_n += 1
        i = heap_n // 2
        while i > 0:
            i -= 1
            heap_sift_down(&heap_key[0], &heap_item[0], heap_n, i)
        while heap_n > 0 and n_steps > 0:
            li = heap_item[0]
            s = cur[li].start
            dur = cur[li].dur
            e = s + dur
            c = cur[li].cat if 0 <= cur[li].cat < n_categories else default_category
            advance(&cur[li])
            if not cur[li].done:
                heap_key[0] = cur[li].start
            else:
                heap_n -= 1
                heap_key[0] = heap_key[heap_n]
                heap_item[0] = heap_item[heap_n]
            if heap_n > 0:
                heap_sift_down(&heap_key[0], &heap_item[0], heap_n, 0)
            while sp + 1 < n_steps and step_start[sp + 1] <= s:
                sp += 1
            if s < step_start[sp] or s >= step_end[sp] or dur >= marker_duration[sp]:
                continue
            if e > step_end[sp]:
                e = step_end[sp]
            if e <= s:
                continue
            if sp != g:
                if g >= 0:
                    for k in range(n_categories):
                        if run_end[k] > run_start[k]:
                            push_i64(&o_step, g); push_i64(&o_k, k)
                            push_i64(&o_start, run_start[k]); push_i64(&o_end, run_end[k])
                g = sp
                for k in range(n_categories):
                    run_start[k] = s
                    run_end[k] = s
            for k in range(c, n_categories):
                if s > run_end[k]:
                    if run_end[k] > run_start[k]:
                        push_i64(&o_step, g); push_i64(&o_k, k)
                        push_i64(&o_start, run_start[k]); push_i64(&o_end, run_end[k])
                    run_start[k] = s
                    run_end[k] = e
                elif e > run_end[k]:
                    run_end[k] = e
        if g >= 0:
            for k in range(n_categories):
                if run_end[k] > run_start[k]:
                    push_i64(&o_step, g); push_i64(&o_k, k)
                    push_i64(&o_start, run_start[k]); push_i64(&o_end, run_end[k])
        i64 = np.int64
        out = {"step": vec_array(&o_step, i64), "prefix": vec_array(&o_k, i64).astype(np.int8),
               "start_ps": vec_array(&o_start, i64), "end_ps": vec_array(&o_end, i64)}
    finally:
        PyMem_Free(cur)
        vec_free(&o_step); vec_free(&o_k); vec_free(&o_start); vec_free(&o_end)
    order = np.lexsort((out["start_ps"], out["prefix"], out["step"]))
    return {name: column[order] for name, column in out.items()}
