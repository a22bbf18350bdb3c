"""XProf's ``memory_viewer`` tool: the compiler's static view of one HLO module's memory.

Data: the buffer assignment that XLA stores with each module's HLO proto on
the ``/host:metadata`` plane (logical buffers, the buffer allocations they
are assigned to, and the heap simulator's trace of the temporary
allocation). Parameters, as XProf's: ``module_name`` (``jit_step(1234)``) or
``program_id``, and ``memory_space`` (the buffer color, default 0: HBM).
Without a module the viewer opens the largest module that is not a JAX
helper (``jit__normal`` and the like).

What it computes (XProf's ``hlo_proto_to_memory_visualization_utils.cc``):

* **Heap over program order.** Replaying the heap simulator trace of the
  memory space (the trace of its temporary allocation, else the trace with
  most events of that color): ALLOC adds a buffer, FREE removes it when its
  last sharer is freed, SHARE_WITH reuses a freed canonical buffer's memory.
  Every event is a point; the buffers of indefinite lifetime (entry
  parameters, constants, thread-local and maybe-live-out allocations) are
  added to every point. Thread-local allocations (a reducer's scalars) are
  counted as non-reusable and nowhere else.
* **Peak.** The first point of largest heap: its size (padded and unpadded),
  its position, and the buffers live there: the indefinite ones (largest
  logical buffer of each allocation, for memory space 0), then the trace's
  live buffers in program order; buffers under 16 KiB are summed into one
  "small" entry. ``max_heap`` lists them largest first.
* **Totals.** Entry parameters, non-reusable (thread-local and tuple),
  maybe-live-out, all allocations but thread-local ones, and the indefinite
  ones, in MiB.
* **Buffer blocks.** For each allocation with a heap trace: each logical
  buffer's offset, size and live span in program order (the allocation
  timeline), and each buffer's span (``logical_buffer_spans``).

Results are exact replays of the proto, so they agree with XProf's to the
bit (MiB as bytes / 2**20); XProf orders allocations of equal size by hash
order, we by size then position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xprof_core.errors import HloModuleNotFoundError
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.tools.base import Params, Partial, ToolParam, param_int
from xprof_core.tools.datatable import datatable
from xprof_core.tools.registry import register
from xprof_core.tools.xla_hlo import HloModule, HloModuleSet, byte_size, shape_text

VERSION = 1
SMALL_BUFFER_BYTES = 16 * 1024  # XProf's kSmallBufferSize
MIB = float(1 << 20)
ALLOC, FREE, SHARE_WITH = 0, 1, 2


def _mib(n: int) -> float:
    return n / MIB


# ---- the buffer assignment -------------------------------------------------------------------


@dataclass
class _Allocation:
    proto: Any
    trace_id: int | None = None

    @property
    def indefinite(self) -> bool:
        # Thread-local allocations (a reducer's scalars) live in registers or stack, not in this memory.
        p = self.proto
        return bool(p.is_entry_computation_parameter or p.is_constant or p.maybe_live_out)

    @property
    def category(self) -> str:
        p = self.proto
        if p.is_entry_computation_parameter:
            return "Parameter"
        if p.maybe_live_out:
            return "Output"
        if p.is_thread_local:
            return "Thread-local"
        if p.is_constant:
            return "Constant"
        return "Temporary"

    @property
    def reusable(self) -> bool:
        return not self.proto.is_thread_local and not self.proto.is_tuple


@dataclass
class _Buffer:
    """A logical buffer as assigned: its allocation, instruction, offset and sizes."""

    proto: Any
    allocation: _Allocation
    instruction: Any
    offset: int
    shape: Any
    unpadded: int
    span: list[int] | None = None
    ref_count: int = 0
    canonical: _Buffer | None = field(default=None, repr=False)

    @property
    def id(self) -> int:
        return int(self.proto.id)

    @property
    def size(self) -> int:
        return int(self.proto.size)

    def root(self) -> _Buffer:
        b = self
        while b.canonical is not None:
            b = b.canonical
        return b

    def inc(self) -> int:
        if self.canonical is not None:
            return self.canonical.inc()
        self.ref_count += 1
        return self.ref_count

    def dec(self) -> int:
        if self.canonical is not None:
            return self.canonical.dec()
        self.ref_count -= 1
        return self.ref_count

    @property
    def name_with_index(self) -> str:
        index = list(self.proto.defined_at.shape_index)
        return self.instruction.name + ("{" + ",".join(map(str, index)) + "}" if index else "")


def _resolve_shape(shape: Any, index: Sequence[int]) -> Any:
    """XProf's ResolveShapeIndex: the tuple element named by the last index, else the shape itself."""
    if len(index):
        i = int(index[-1])
        if 0 <= i < len(shape.tuple_shapes):
            return shape.tuple_shapes[i]
    return shape


class _Assignment:
    """Lookup tables over a module's buffer assignment (XProf's HloProtoBufferWrapper)."""

    def __init__(self, module: HloModule) -> None:
        self.module = module
        ba = module.buffer_assignment
        protos = {lb.id: lb for lb in ba.logical_buffers}
        self.allocations: dict[int, _Allocation] = {}
        self.buffers: dict[int, _Buffer] = {}
        instructions = module.instructions
        for alloc_proto in ba.buffer_allocations:
            alloc = _Allocation(alloc_proto)
            self.allocations[int(alloc_proto.index)] = alloc
            for assigned in alloc_proto.assigned:
                lb = protos.get(assigned.logical_buffer_id)
                if lb is None:
                    continue
                ins = instructions.get(lb.defined_at.instruction_id)
                if ins is None:
                    continue
                shape = _resolve_shape(ins.shape, lb.defined_at.shape_index)
                self.buffers[int(lb.id)] = _Buffer(lb, alloc, ins, int(assigned.offset), shape, byte_size(shape))
        # A trace belongs to the allocation of its first event's buffer (the trace's own index is not trusted).
        for i, trace in enumerate(ba.heap_simulator_traces):
            if len(trace.events) and trace.events[0].buffer_id in self.buffers:
                self.buffers[trace.events[0].buffer_id].allocation.trace_id = i

    def allocations_of(self, color: int) -> list[_Allocation]:
        return [a for _, a in sorted(self.allocations.items()) if int(a.proto.color) == color]

    def trace_id(self, color: int) -> int:
        """The heap trace of a memory space: its temporary allocation's, else the one with most events of it."""
        for a in self.allocations_of(color):
            if not a.indefinite and a.trace_id is not None:
                return a.trace_id
        best, best_count = -1, 0
        for i, trace in enumerate(self.module.buffer_assignment.heap_simulator_traces):
            count = sum(
                1
                for e in trace.events
                if e.buffer_id in self.buffers and self.buffers[e.buffer_id].proto.color == color
            )
            if count > best_count:
                best, best_count = i, count
        return best

    def indefinite_buffers(self, color: int) -> list[_Buffer]:
        """The largest logical buffer of each indefinite allocation of the memory space."""
        out = []
        for a in self.allocations_of(color):
            if not a.indefinite:
                continue
            best: _Buffer | None = None
            for assigned in a.proto.assigned:
                b = self.buffers.get(assigned.logical_buffer_id)
                if b is not None and b.size > (best.size if best else 0):
                    best = b
            if best is not None:
                out.append(best)
        return out


# ---- the heap replay -------------------------------------------------------------------------


@dataclass
class _Replay:
    heap: list[int] = field(default_factory=list)
    unpadded: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    peak_bytes: int = 0
    peak_unpadded_bytes: int = 0
    peak_position: int = 0
    peak_buffers: list[int] = field(default_factory=list)  # buffer ids live at the peak, program order
    peak_display: dict[int, int] = field(default_factory=dict)
    seen: dict[int, _Buffer] = field(default_factory=dict)
    error: str | None = None


def _replay(asg: _Assignment, color: int) -> _Replay:
    """XProf's ProcessHeapSimulatorTrace over the memory space's trace."""
    r = _Replay()
    trace_id = asg.trace_id(color)
    traces = asg.module.buffer_assignment.heap_simulator_traces
    if not 0 <= trace_id < len(traces):
        return r
    events = traces[trace_id].events
    last = len(events) - 1
    heap = unpadded = 0
    live: list[int] = []
    display: dict[int, int] = {}
    seen_allocations: set[int] = set()

    def grow(canonical: _Buffer, init_span: bool) -> None:
        nonlocal heap, unpadded
        live.append(canonical.id)
        heap += canonical.size
        unpadded += canonical.unpadded
        if heap > r.peak_bytes:
            r.peak_bytes = heap
            r.peak_position = len(r.heap) - 1
            r.peak_unpadded_bytes = unpadded
            r.peak_buffers = list(live)
            r.peak_display = dict(display)
        if init_span:
            canonical.span = [len(r.heap) - 1, last]

    for ev in events:
        r.heap.append(heap)
        r.unpadded.append(unpadded)
        r.names.append(ev.instruction_name)
        buf = asg.buffers.get(ev.buffer_id)
        if buf is None:
            continue
        r.seen[buf.id] = buf
        seen_allocations.add(int(buf.allocation.proto.index))
        if ev.kind == ALLOC:
            buf.inc()
            grow(buf, True)
        elif ev.kind == FREE:
            count = buf.dec()
            if count < 0:
                r.error = f"buffer {buf.id} is freed more than once"
                return r
            if count == 0:
                # The last holder frees the canonical buffer's memory: the canonical buffer's span
                # ends here unless it ended before (when it was freed and a sharer reused its memory).
                root = buf.root()
                live[:] = [x for x in live if x != root.id]
                heap -= root.size
                unpadded -= root.unpadded
                if heap < 0:
                    r.error = f"the heap size went negative ({heap} bytes)"
                    return r
                if root.span is not None and root.span[1] == last:
                    root.span[1] = len(r.heap) - 1
            if buf.span is not None and buf.canonical is not None:
                buf.span[1] = len(r.heap) - 1
        elif ev.kind == SHARE_WITH:
            canonical = asg.buffers.get(ev.share_with_canonical_id)
            if canonical is None:
                continue
            buf.canonical = canonical
            if canonical.inc() == 1:
                # Sharing a freed buffer's memory: the sharer now shows in that place.
                root = canonical.root()
                display[root.id] = buf.id
                buf.span = [len(r.heap) - 1, last]
                grow(root, False)
        else:
            r.error = f"unknown heap simulator event kind {ev.kind}"
            return r
    r.heap.append(heap)
    r.unpadded.append(unpadded)
    r.names.append("")
    if len(seen_allocations) != 1:
        r.error = f"the heap trace spans {len(seen_allocations)} buffer allocations, not one"
    return r


# ---- the result ------------------------------------------------------------------------------

HEAP_COLUMNS = (
    ("rank", "Rank", "number"),
    ("instruction_name", "Instruction", "string"),
    ("size_mib", "Size (MiB)", "number"),
    ("unpadded_mib", "Unpadded size (MiB)", "number"),
    ("padding_mib", "Padding (MiB)", "number"),
    ("shape", "Shape", "string"),
    ("allocation_type", "Allocation type", "string"),
    ("op_code", "Op code", "string"),
    ("tf_op_name", "Framework op", "string"),
    ("source", "Source", "string"),
    ("logical_buffer_id", "Logical buffer", "number"),
)


def _heap_object(module: HloModule, b: _Buffer) -> dict[str, Any]:
    ins = b.instruction
    shape = shape_text(b.shape, with_layout=True)
    src_file, src_line, stack = module.source(ins)
    return {
        "logical_buffer_id": b.id,
        "label": f"{ins.name}: {shape} # {ins.metadata.op_name}",
        "instruction_name": b.name_with_index,
        "size_bytes": b.size,
        "unpadded_bytes": b.unpadded,
        "shape": shape,
        "allocation_type": b.allocation.category,
        "op_code": ins.opcode,
        "tf_op_name": ins.metadata.op_name,
        "source": f"{src_file}:{src_line}" if src_file else "",
        "stack": stack,
    }


def memory_viewer_result(
    module: HloModule, color: int = 0, small_buffer_bytes: int = SMALL_BUFFER_BYTES
) -> dict[str, Any]:
    """The memory viewer's figures for one module and memory space (sizes in bytes and MiB)."""
    asg = _Assignment(module)
    replay = _replay(asg, color)
    indefinite = asg.indefinite_buffers(color)
    indefinite_bytes = sum(int(b.allocation.proto.size) for b in indefinite)
    objects: list[dict[str, Any]] = []
    small = 0

    def add(b: _Buffer) -> None:
        nonlocal small
        if b.size < small_buffer_bytes:
            small += b.size
        else:
            objects.append(_heap_object(module, b))

    if color == 0:
        for b in indefinite:
            add(b)
    for buffer_id in replay.peak_buffers:
        shown = asg.buffers.get(replay.peak_display.get(buffer_id, buffer_id))
        if shown is None:
            break
        add(shown)
    if small:
        objects.append(
            {
                "logical_buffer_id": -1,
                "label": f"small (<{small_buffer_bytes} bytes)",
                "instruction_name": f"small (<{small_buffer_bytes} bytes)",
                "size_bytes": small,
                "unpadded_bytes": 0,
                "shape": "",
                "allocation_type": "",
                "op_code": "",
                "tf_op_name": "",
                "source": "",
                "stack": "",
            }
        )
    by_size = sorted(range(len(objects)), key=lambda i: (-objects[i]["size_bytes"], i))

    allocations = asg.allocations_of(color)
    totals = {
        "entry_computation_parameters_mib": _mib(
            sum(int(a.proto.size) for a in allocations if a.proto.is_entry_computation_parameter)
        ),
        "non_reusable_mib": _mib(sum(int(a.proto.size) for a in allocations if not a.reusable)),
        "maybe_live_out_mib": _mib(sum(int(a.proto.size) for a in allocations if a.proto.maybe_live_out)),
        "total_buffer_allocation_mib": _mib(sum(int(a.proto.size) for a in allocations if not a.proto.is_thread_local)),
        "indefinite_buffer_allocation_mib": _mib(sum(int(a.proto.size) for a in allocations if a.indefinite)),
    }
    add_mib = _mib(indefinite_bytes)
    blocks = _buffer_blocks(module, asg, color, replay)
    return {
        "module_name": module.name,
        "hlo_module_name": module.module.name,
        "program_id": str(module.program_id),
        "entry_computation_name": module.module.entry_computation_name,
        "memory_space": color,
        "memory_spaces": sorted({int(a.proto.color) for a in asg.allocations.values()}),
        "peak_heap_mib": _mib(replay.peak_bytes) + add_mib,
        "peak_unpadded_heap_mib": _mib(replay.peak_unpadded_bytes) + add_mib,
        "peak_heap_bytes": replay.peak_bytes + indefinite_bytes,
        "peak_heap_size_position": replay.peak_position,
        "indefinite_bytes": indefinite_bytes,
        "heap_sizes_mib": [_mib(h) + add_mib for h in replay.heap],
        "unpadded_heap_sizes_mib": [_mib(h) + add_mib for h in replay.unpadded],
        "hlo_instruction_names": replay.names,
        "max_heap": objects,
        "max_heap_by_size": by_size,
        "max_heap_table": datatable(
            HEAP_COLUMNS,
            [
                [
                    rank,
                    o["instruction_name"],
                    _mib(o["size_bytes"]),
                    _mib(o["unpadded_bytes"]),
                    _mib(max(o["size_bytes"] - o["unpadded_bytes"], 0)) if o["logical_buffer_id"] >= 0 else 0.0,
                    o["shape"],
                    o["allocation_type"],
                    o["op_code"],
                    o["tf_op_name"],
                    o["source"],
                    o["logical_buffer_id"],
                ]
                for rank, o in enumerate((objects[i] for i in by_size), start=1)
            ],
        ),
        "logical_buffer_spans": {str(b.id): [b.span[0], b.span[1]] for b in replay.seen.values() if b.span is not None},
        "buffer_blocks": blocks,
        "indefinite_lifetimes": _indefinite_lifetimes(asg, allocations),
        **totals,
        "error": replay.error,
    }


def _indefinite_lifetimes(asg: _Assignment, allocations: list[_Allocation]) -> list[dict[str, Any]]:
    out = []
    for a in allocations:
        if not a.indefinite:
            continue
        attributes = []
        if a.proto.is_entry_computation_parameter:
            attributes.append("entry computation parameter")
        if a.proto.maybe_live_out:
            attributes.append("may-be live out")
        if a.reusable:
            attributes.append("reusable")
        buffers = []
        for assigned in a.proto.assigned:
            b = asg.buffers.get(assigned.logical_buffer_id)
            buffers.append(
                {
                    "id": int(assigned.logical_buffer_id),
                    "size_mib": _mib(int(assigned.size)),
                    "hlo_name": b.instruction.name if b else "",
                    "shape": shape_text(b.shape, with_layout=True) if b else "",
                }
            )
        out.append(
            {
                "id": int(a.proto.index),
                "size_mib": _mib(int(a.proto.size)),
                "attributes": attributes,
                "buffers": buffers,
            }
        )
    return out


def _buffer_blocks(module: HloModule, asg: _Assignment, color: int, replay: _Replay) -> list[dict[str, Any]]:
    """The allocation timeline: per allocation with a heap trace, each buffer's offset, size and live span."""
    traced = [a for a in asg.allocations_of(color) if not a.indefinite and a.trace_id is not None]
    traces = module.buffer_assignment.heap_simulator_traces
    steps = max(
        (len(traces[a.trace_id].events) for a in traced if a.trace_id is not None and a.trace_id < len(traces)),
        default=0,
    )
    out: list[dict[str, Any]] = []
    offset = 0
    for a in traced:
        out.append(
            {
                "logical_buffer_id": -1,
                "name": a.category,
                "offset": offset,
                "size": int(a.proto.size),
                "start_step": 0,
                "end_step": steps,
                "category": a.category,
            }
        )
        for assigned in a.proto.assigned:
            b = asg.buffers.get(assigned.logical_buffer_id)
            if b is None or b.span is None:
                continue
            out.append(
                {
                    "logical_buffer_id": b.id,
                    "name": b.name_with_index,
                    "offset": offset + b.offset,
                    "size": b.size,
                    "start_step": b.span[0],
                    "end_step": b.span[1],
                    "category": a.category,
                    "shape": shape_text(b.shape, with_layout=True),
                    "tf_op_name": b.instruction.metadata.op_name,
                    "unpadded_size": b.unpadded,
                }
            )
        offset += int(a.proto.size)
    return out


# ---- the tool --------------------------------------------------------------------------------


def select_module(modules: HloModuleSet, params: Params) -> Any:
    """The module named by ``module_name`` / ``program_id``, else the default; None when the host has none."""
    name = params.get("module_name") or None
    pid = params.get("program_id") or None
    if name is None and pid is None:
        return modules.default()
    entry = modules.find(name, pid)
    if entry is None:
        what = f"module_name {name!r}" if name else f"program_id {pid!r}"
        raise HloModuleNotFoundError(f"no HLO module with {what}; modules: {', '.join(modules.names()) or 'none'}")
    return entry


def no_modules_reason(xs: XSpace) -> str:
    if not xs.planes_of_kind(PlaneKind.METADATA):
        return "the profile has no /host:metadata plane, where XLA records its HLO modules and buffer assignments"
    return "the /host:metadata plane holds no HLO proto (no XLA module was compiled while profiling)"


def map_memory_viewer(xs: XSpace, params: Params) -> Partial:
    modules = HloModuleSet(xs)
    color = param_int(params, "memory_space", 0, lo=0)
    base: Partial = {"version": VERSION, "modules": modules.names()}
    try:
        entry = select_module(modules, params)
    except HloModuleNotFoundError as exc:
        return {**base, "reason": str(exc), "not_found": True, "result": None}
    if entry is None:
        return {**base, "reason": no_modules_reason(xs), "result": None}
    module = modules.module(entry)
    if module is None:
        return {**base, "reason": f"the HLO proto of {entry.name} does not parse", "result": None}
    if not len(module.buffer_assignment.buffer_allocations):
        return {**base, "reason": f"{entry.name} carries no buffer assignment", "result": None}
    return {**base, "reason": None, "result": memory_viewer_result(module, color)}


def reduce_memory_viewer(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    """The first selected host that has the module (a program is compiled alike on every host)."""
    for p in partials:
        if p.get("version") != VERSION:
            raise ValueError(f"memory_viewer partial version {p.get('version')!r}, expected {VERSION}")
    names = sorted({n for p in partials for n in p.get("modules", [])})
    for p in partials:
        if p.get("result") is not None:
            return {"version": VERSION, "reason": None, "modules": names, "host": p.get("host"), **p["result"]}
    if partials and all(p.get("not_found") for p in partials):
        raise HloModuleNotFoundError(str(partials[0]["reason"]))
    reasons = list(dict.fromkeys(str(p["reason"]) for p in partials if p.get("reason")))
    return {"version": VERSION, "reason": "; ".join(reasons) or "no hosts selected", "modules": names}


@dataclass(frozen=True)
class MemoryViewerTool:
    """The memory_viewer tool object the registry hands out."""

    name: str = "memory_viewer"
    version: int = VERSION
    description: str = "one HLO module's buffers: heap over program order, the peak and what is live at it"
    needs: str = "xspace"
    params: tuple[ToolParam, ...] = (
        ToolParam("module_name", "str", None, "the HLO module, e.g. 'jit_step(1234)'"),
        ToolParam("program_id", "str", None, "the HLO module by program id"),
        ToolParam("memory_space", "int", 0, "the memory space (buffer color)", lo=0),
    )

    def map(self, xs: XSpace, params: Params) -> Partial:
        return map_memory_viewer(xs, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return reduce_memory_viewer(partials, params)


MEMORY_VIEWER = register(MemoryViewerTool())
TOOLS = {"memory_viewer": MEMORY_VIEWER}

__all__ = [
    "MEMORY_VIEWER",
    "TOOLS",
    "HloModuleNotFoundError",
    "map_memory_viewer",
    "no_modules_reason",
    "memory_viewer_result",
    "reduce_memory_viewer",
    "select_module",
]
