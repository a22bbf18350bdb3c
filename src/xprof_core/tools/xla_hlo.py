"""XLA's compiled HLO modules as the memory viewer, graph viewer and roofline read them.

A profile's ``/host:metadata`` plane carries one ``xla.HloProto`` per
compiled program (event metadata with an ``Hlo Proto`` bytes stat): the
optimized module (computations of instructions with shapes, operands and
called computations) and its buffer assignment (logical buffers, buffer
allocations and heap-simulator traces). :class:`HloModuleSet` lists the
modules of a host; :meth:`HloModuleSet.module` parses one into an
:class:`HloModule` with lookup tables (instructions by id and name, users,
the fusion instruction of each fused computation).

The protobuf classes are built at run time from the field numbers of XLA's
``xla/service/hlo.proto`` and ``xla/xla_data.proto`` (only the fields read
here; everything else is skipped as unknown fields by protobuf's parser).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError

from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace

_U64 = (1 << 64) - 1

# ---- the schema ------------------------------------------------------------------------------

# message -> [(field, number, type, repeated)]; type is a scalar kind or a message name.
# Enums are read as int32 (same wire format).
# fmt: off
_SCHEMA: dict[str, list[tuple[str, int, str, bool]]] = {
    "TileProto": [("dimensions", 1, "int64", True)],
    "LayoutProto": [
        ("minor_to_major", 1, "int64", True), ("tiles", 6, "TileProto", True),
        ("element_size_in_bits", 7, "int64", False), ("memory_space", 8, "int64", False),
        ("dynamic_shape_metadata_prefix_bytes", 15, "int64", False),
        ("tail_padding_alignment_in_elements", 16, "int64", False),
    ],
    "ShapeProto": [
        ("element_type", 2, "int32", False), ("dimensions", 3, "int64", True),
        ("tuple_shapes", 4, "ShapeProto", True), ("layout", 5, "LayoutProto", False),
        ("is_dynamic_dimension", 6, "bool", True),
    ],
    "OpMetadata": [
        ("op_type", 1, "string", False), ("op_name", 2, "string", False), ("source_file", 3, "string", False),
        ("source_line", 4, "int32", False), ("deduplicated_name", 12, "string", False),
        ("stack_frame_id", 15, "int32", False),
    ],
    "WindowDimension": [
        ("size", 1, "int64", False), ("stride", 2, "int64", False), ("padding_low", 3, "int64", False),
        ("padding_high", 4, "int64", False), ("window_dilation", 5, "int64", False),
        ("base_dilation", 6, "int64", False), ("window_reversal", 7, "bool", False),
    ],
    "Window": [("dimensions", 1, "WindowDimension", True)],
    "DotDimensionNumbers": [
        ("lhs_contracting_dimensions", 1, "int64", True), ("rhs_contracting_dimensions", 2, "int64", True),
        ("lhs_batch_dimensions", 3, "int64", True), ("rhs_batch_dimensions", 4, "int64", True),
    ],
    "ConvolutionDimensionNumbers": [
        ("kernel_input_feature_dimension", 3, "int64", False),
        ("kernel_output_feature_dimension", 4, "int64", False),
        ("kernel_spatial_dimensions", 6, "int64", True), ("input_batch_dimension", 7, "int64", False),
        ("input_feature_dimension", 8, "int64", False), ("output_batch_dimension", 9, "int64", False),
        ("output_feature_dimension", 10, "int64", False), ("input_spatial_dimensions", 11, "int64", True),
        ("output_spatial_dimensions", 12, "int64", True),
    ],
    "HloInstructionProto": [
        ("name", 1, "string", False), ("opcode", 2, "string", False), ("shape", 3, "ShapeProto", False),
        ("metadata", 7, "OpMetadata", False), ("parameter_number", 9, "int64", False),
        ("fusion_kind", 11, "string", False), ("tuple_index", 13, "int64", False),
        ("dimensions", 14, "int64", True), ("window", 15, "Window", False),
        ("convolution_dimension_numbers", 16, "ConvolutionDimensionNumbers", False),
        ("dynamic_slice_sizes", 20, "int64", True), ("custom_call_target", 28, "string", False),
        ("dot_dimension_numbers", 30, "DotDimensionNumbers", False), ("id", 35, "int64", False),
        ("operand_ids", 36, "int64", True), ("control_predecessor_ids", 37, "int64", True),
        ("called_computation_ids", 38, "int64", True), ("backend_config", 43, "bytes", False),
        ("feature_group_count", 50, "int64", False), ("batch_group_count", 58, "int64", False),
        ("comparison_direction", 63, "string", False),
    ],
    "HloComputationProto": [
        ("name", 1, "string", False), ("instructions", 2, "HloInstructionProto", True), ("id", 5, "int64", False),
        ("root_id", 6, "int64", False), ("is_fusion_computation", 7, "bool", False),
    ],
    "FileLocation": [
        ("file_name_id", 1, "int32", False), ("function_name_id", 2, "int32", False),
        ("line", 3, "int32", False), ("column", 4, "int32", False),
    ],
    "StackFrame": [("file_location_id", 1, "int32", False), ("parent_frame_id", 2, "int32", False)],
    "StackFrameIndexProto": [
        ("file_names", 1, "string", True), ("function_names", 2, "string", True),
        ("file_locations", 3, "FileLocation", True), ("stack_frames", 4, "StackFrame", True),
    ],
    "HloModuleProto": [
        ("name", 1, "string", False), ("entry_computation_name", 2, "string", False),
        ("computations", 3, "HloComputationProto", True), ("id", 5, "int64", False),
        ("entry_computation_id", 6, "int64", False), ("stack_frame_index", 17, "StackFrameIndexProto", False),
    ],
    "Location": [
        ("instruction_name", 2, "string", False), ("shape_index", 3, "int64", True),
        ("instruction_id", 4, "int64", False),
    ],
    "LogicalBufferProto": [
        ("id", 1, "int64", False), ("size", 2, "int64", False), ("defined_at", 3, "Location", False),
        ("color", 4, "int64", False),
    ],
    "Assigned": [("logical_buffer_id", 1, "int64", False), ("offset", 2, "int64", False), ("size", 3, "int64", False)],
    "BufferAllocationProto": [
        ("index", 1, "int64", False), ("size", 2, "int64", False), ("is_thread_local", 3, "bool", False),
        ("is_entry_computation_parameter", 5, "bool", False), ("parameter_number", 6, "int64", False),
        ("maybe_live_out", 7, "bool", False), ("color", 8, "int64", False), ("assigned", 9, "Assigned", True),
        ("is_tuple", 11, "bool", False), ("is_constant", 12, "bool", False),
    ],
    "HeapEvent": [
        ("kind", 1, "int32", False), ("buffer_id", 2, "int64", False), ("computation_name", 3, "string", False),
        ("instruction_name", 4, "string", False), ("share_with_canonical_id", 5, "int64", False),
    ],
    "HeapSimulatorTrace": [
        ("events", 1, "HeapEvent", True), ("whole_module_simulation", 2, "bool", False),
        ("buffer_allocation_index", 3, "int64", False),
    ],
    "BufferAssignmentProto": [
        ("logical_buffers", 1, "LogicalBufferProto", True), ("buffer_allocations", 3, "BufferAllocationProto", True),
        ("heap_simulator_traces", 4, "HeapSimulatorTrace", True),
    ],
    "HloProto": [("hlo_module", 1, "HloModuleProto", False), ("buffer_assignment", 3, "BufferAssignmentProto", False)],
}
# fmt: on


@lru_cache(maxsize=1)
def hlo_proto_class() -> Any:
    """The protobuf class of ``xla.HloProto`` (the fields in ``_SCHEMA``)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    package = "xprof_core.xla_hlo"
    fd = descriptor_pb2.FileDescriptorProto(name="xprof_core_xla_hlo.proto", package=package, syntax="proto3")
    ftype = descriptor_pb2.FieldDescriptorProto
    scalars = {
        "int64": ftype.TYPE_INT64,
        "int32": ftype.TYPE_INT32,
        "bool": ftype.TYPE_BOOL,
        "string": ftype.TYPE_STRING,
        "bytes": ftype.TYPE_BYTES,
    }
    for message, fields in _SCHEMA.items():
        m = fd.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            f = m.field.add(name=name, number=number, label=ftype.LABEL_REPEATED if repeated else ftype.LABEL_OPTIONAL)
            if kind in scalars:
                f.type = scalars[kind]
            else:
                f.type = ftype.TYPE_MESSAGE
                f.type_name = f".{package}.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.HloProto"))


# ---- shapes ----------------------------------------------------------------------------------

# PrimitiveType (xla_data.proto) -> (name as XLA prints it, bits per element).
# fmt: off
PRIMITIVE_TYPES: dict[int, tuple[str, int]] = {
    1: ("pred", 8), 2: ("s8", 8), 3: ("s16", 16), 4: ("s32", 32), 5: ("s64", 64), 6: ("u8", 8), 7: ("u16", 16),
    8: ("u32", 32), 9: ("u64", 64), 10: ("f16", 16), 11: ("f32", 32), 12: ("f64", 64), 13: ("tuple", 0),
    14: ("opaque", 0), 15: ("c64", 64), 16: ("bf16", 16), 17: ("token", 0), 18: ("c128", 128),
    19: ("f8e5m2", 8), 20: ("f8e4m3fn", 8), 21: ("s4", 4), 22: ("u4", 4), 23: ("f8e4m3b11fnuz", 8),
    24: ("f8e5m2fnuz", 8), 25: ("f8e4m3fnuz", 8), 26: ("s2", 2), 27: ("u2", 2), 28: ("f8e4m3", 8),
    29: ("f8e3m4", 8), 30: ("s1", 1), 31: ("u1", 1), 32: ("f4e2m1fn", 4), 33: ("f8e8m0fnu", 8),
}
# fmt: on
TUPLE, OPAQUE, TOKEN = 13, 14, 17
POINTER_BYTES = 8  # a tuple's buffer holds one pointer per element


def element_type_name(element_type: int) -> str:
    return PRIMITIVE_TYPES.get(element_type, (f"type{element_type}", 0))[0]


def num_elements(shape: Any) -> int:
    """Elements of an array shape (1 for a scalar, 0 for tuples, tokens and opaque values)."""
    if shape.element_type in (TUPLE, OPAQUE, TOKEN):
        return 0
    n = 1
    for d in shape.dimensions:
        n *= int(d)
    return n


def byte_size(shape: Any) -> int:
    """Bytes of a shape without layout padding: elements x element size; a tuple holds pointers."""
    if shape.element_type == TUPLE:
        return POINTER_BYTES * len(shape.tuple_shapes)
    bits = PRIMITIVE_TYPES.get(shape.element_type, ("", 0))[1]
    return (num_elements(shape) * bits + 7) // 8


def subshape(shape: Any, index: Any) -> Any:
    """The subshape at a shape index (tuple element by element); the shape itself when out of range."""
    for i in index:
        if shape.element_type != TUPLE or not 0 <= i < len(shape.tuple_shapes):
            return shape
        shape = shape.tuple_shapes[i]
    return shape


def _dims_text(shape: Any) -> str:
    dyn = list(shape.is_dynamic_dimension)
    parts = []
    for i, d in enumerate(shape.dimensions):
        parts.append(f"<={d}" if i < len(dyn) and dyn[i] else str(d))
    return ",".join(parts)


def _layout_text(layout: Any) -> str:
    """XLA's ``Layout::ToString``: ``{1,0}``, ``{3,2,1,0:T(8,128)(2,1)}``, with element size and memory space."""
    extra = []
    if len(layout.tiles):
        extra.append(
            "T" + "".join("(" + ",".join("*" if d == -1 else str(d) for d in t.dimensions) + ")" for t in layout.tiles)
        )
    if layout.tail_padding_alignment_in_elements not in (0, 1):
        extra.append(f"L({layout.tail_padding_alignment_in_elements})")
    if layout.element_size_in_bits:
        extra.append(f"E({layout.element_size_in_bits})")
    if layout.memory_space:
        extra.append(f"S({layout.memory_space})")
    if layout.dynamic_shape_metadata_prefix_bytes:
        extra.append(f"M({layout.dynamic_shape_metadata_prefix_bytes})")
    text = ",".join(str(d) for d in layout.minor_to_major)
    return "{" + text + (":" + "".join(extra) if extra else "") + "}"


def shape_text(shape: Any, with_layout: bool = False) -> str:
    """XLA's ``ShapeUtil::HumanString`` (``f32[256,512]``), or ``HumanStringWithLayout`` (``f32[256,512]{1,0}``)."""
    if shape.element_type == TUPLE:
        return "(" + ", ".join(shape_text(s, with_layout) for s in shape.tuple_shapes) + ")"
    name = element_type_name(shape.element_type)
    if shape.element_type in (OPAQUE, TOKEN):
        return f"{name}[]"
    text = f"{name}[{_dims_text(shape)}]"
    if with_layout and shape.HasField("layout"):
        text += _layout_text(shape.layout)
    return text


# ---- a parsed module -------------------------------------------------------------------------


@dataclass
class HloModule:
    """One parsed ``xla.HloProto``: the module, its lookup tables and its buffer assignment."""

    name: str  # XProf's module name: "<module>(<program id>)"
    program_id: int
    proto: Any = field(repr=False)

    @property
    def module(self) -> Any:
        return self.proto.hlo_module

    @property
    def buffer_assignment(self) -> Any:
        return self.proto.buffer_assignment

    @cached_property
    def computations(self) -> dict[int, Any]:
        return {c.id: c for c in self.module.computations}

    @cached_property
    def computation_of(self) -> dict[int, int]:
        """Computation id of each instruction id."""
        return {i.id: c.id for c in self.module.computations for i in c.instructions}

    @cached_property
    def instructions(self) -> dict[int, Any]:
        return {i.id: i for c in self.module.computations for i in c.instructions}

    @cached_property
    def by_name(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in self.module.computations:
            for i in c.instructions:
                out.setdefault(i.name, i)
        return out

    @cached_property
    def computation_by_name(self) -> dict[str, Any]:
        return {c.name: c for c in self.module.computations}

    @cached_property
    def users(self) -> dict[int, list[int]]:
        """Users of each instruction id, in instruction order, each user once."""
        out: dict[int, list[int]] = {i: [] for i in self.instructions}
        for c in self.module.computations:
            for ins in c.instructions:
                for op in dict.fromkeys(ins.operand_ids):
                    if op in out:
                        out[op].append(ins.id)
        return out

    @cached_property
    def caller_of(self) -> dict[int, int]:
        """For each called computation id: the (first) instruction id that calls it."""
        out: dict[int, int] = {}
        for c in self.module.computations:
            for ins in c.instructions:
                for cid in ins.called_computation_ids:
                    out.setdefault(cid, ins.id)
        return out

    @property
    def entry(self) -> Any:
        comps = self.computations
        if self.module.entry_computation_id in comps:
            return comps[self.module.entry_computation_id]
        by_name = self.computation_by_name
        if self.module.entry_computation_name in by_name:
            return by_name[self.module.entry_computation_name]
        return self.module.computations[-1]

    def is_fusion_computation(self, computation: Any) -> bool:
        if computation.is_fusion_computation:
            return True
        caller = self.caller_of.get(computation.id)
        return caller is not None and self.instructions[caller].opcode == "fusion"

    def root(self, computation: Any) -> Any:
        ins = self.instructions.get(computation.root_id)
        return ins if ins is not None else computation.instructions[-1]

    def operands(self, ins: Any) -> list[Any]:
        return [self.instructions[i] for i in ins.operand_ids if i in self.instructions]

    def source(self, ins: Any) -> tuple[str, int, str]:
        """(file, line, stack) of an instruction, XProf's rule: its metadata's source, else its first stack frame."""
        md = ins.metadata
        stack = self.stack_frames(md.stack_frame_id)
        if md.source_file:
            return md.source_file, int(md.source_line), stack
        if stack:
            first = stack.split("\n", 1)[0].split(":")
            if len(first) >= 2:
                line = int(first[1]) if first[1].lstrip("-").isdigit() else 0
                return first[0], line, stack
        return "", 0, stack

    def stack_frames(self, frame_id: int) -> str:
        """The call stack from a 1-based frame id: ``file:line:column`` lines, innermost first."""
        index = self.module.stack_frame_index
        frames = index.stack_frames
        out = []
        seen = 0
        while 0 < frame_id <= len(frames) and seen <= len(frames):
            frame = frames[frame_id - 1]
            frame_id = frame.parent_frame_id
            seen += 1
            name, line, column = "", -1, -1
            loc_id = frame.file_location_id
            if 0 < loc_id <= len(index.file_locations):
                loc = index.file_locations[loc_id - 1]
                line, column = loc.line, loc.column
                if 0 < loc.file_name_id <= len(index.file_names):
                    name = index.file_names[loc.file_name_id - 1]
            out.append(f"{name}:{line}:{column}")
        return "\n".join(out)


# ---- the modules of a host -------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleEntry:
    """A module of a host's ``/host:metadata`` plane, not parsed yet."""

    name: str
    program_id: int
    proto: bytes = field(repr=False)


class HloModuleSet:
    """The HLO modules of one host, in XProf's names (``jit_step(1234)``), parsed on demand."""

    def __init__(self, xs: XSpace) -> None:
        self.entries: dict[str, ModuleEntry] = {}
        for plane in xs.planes_of_kind(PlaneKind.METADATA):
            for md_id, md in sorted(plane.event_metadata.items()):
                proto = md.stats.get("Hlo Proto")
                if not isinstance(proto, bytes):
                    continue
                pid = md.stats.get("program_id", md_id)
                program_id = int(pid) & _U64 if isinstance(pid, int) else md_id & _U64
                name = md.name if md.name.endswith(")") else f"{md.name}({program_id})"
                self.entries.setdefault(name, ModuleEntry(name, program_id, proto))
        self._parsed: dict[str, HloModule | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ModuleEntry]:
        return iter(self.entries.values())

    def names(self) -> list[str]:
        return sorted(self.entries)

    def find(self, module_name: str | None = None, program_id: str | int | None = None) -> ModuleEntry | None:
        """The module named ``module_name`` (XProf's name, or the bare module name) or of ``program_id``."""
        if module_name:
            if module_name in self.entries:
                return self.entries[module_name]
            for e in self.entries.values():
                if e.name.split("(", 1)[0] == module_name:
                    return e
            return None
        if program_id not in (None, ""):
            pid = int(str(program_id)) & _U64
            for e in self.entries.values():
                if e.program_id == pid:
                    return e
        return None

    def default(self) -> ModuleEntry | None:
        """The module a viewer opens without a choice: the largest one that is not a JAX helper (``jit__*``)."""
        entries = list(self.entries.values())
        if not entries:
            return None
        own = [e for e in entries if not e.name.startswith("jit__")] or entries
        return max(own, key=lambda e: (len(e.proto), e.name))

    def module(self, entry: ModuleEntry) -> HloModule | None:
        """The parsed module, None when its proto does not parse."""
        if entry.name not in self._parsed:
            try:
                proto = hlo_proto_class().FromString(entry.proto)
            except ProtoDecodeError:
                proto = None
            self._parsed[entry.name] = None if proto is None else HloModule(entry.name, entry.program_id, proto)
        return self._parsed[entry.name]


__all__ = [
    "HloModule",
    "HloModuleSet",
    "ModuleEntry",
    "PRIMITIVE_TYPES",
    "byte_size",
    "element_type_name",
    "hlo_proto_class",
    "num_elements",
    "shape_text",
    "subshape",
]
