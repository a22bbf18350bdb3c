"""The HLO modules of a host: ``Hlo Proto`` stats of ``/host:metadata``, read by program id.

Each module's ``xla.HloProto`` is parsed on first use, and only for what the
tools need of an instruction: its name, its ``op_name``/``op_type`` metadata
(the framework op it came from), its opcode and fusion kind (its category,
XLA's ``HloInstruction::ToCategory``), its custom-call target and backend
config, and the module's schedule (the order in which the entry computation
runs, which is the order of its thunks: see :mod:`~xprof_core.tools.attribution`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from google.protobuf.message import DecodeError

from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace

_U64 = (1 << 64) - 1

# ---- categories -----------------------------------------------------------------------------

_DATA_FORMATTING = frozenset({"transpose", "copy", "copy-start", "copy-done", "bitcast", "reshape", "dynamic-reshape"})
# fmt: off
_ELEMENTWISE = frozenset({
    "abs", "add", "and", "atan2", "bitcast-convert", "cbrt", "ceil", "clamp", "clz", "compare", "complex",
    "convert", "cos", "divide", "erf", "exponential", "exponential-minus-one", "floor", "imag", "is-finite",
    "log", "log-plus-one", "logistic", "maximum", "minimum", "multiply", "negate", "not", "or", "popcnt",
    "power", "real", "reduce-precision", "remainder", "round-nearest-afz", "round-nearest-even", "rsqrt",
    "select", "shift-left", "shift-right-arithmetic", "shift-right-logical", "sign", "sine", "sqrt",
    "stochastic-convert", "subtract", "tan", "tanh", "xor",
})
# fmt: on
_FUSION_KINDS = {
    "kLoop": "loop fusion",
    "kInput": "input fusion",
    "kOutput": "output fusion",
    "kCustom": "custom fusion",
}


def category_from_opcode(opcode: str, fusion_kind: str = "") -> str:
    """XLA's ``HloInstruction::ToCategory`` from an opcode and a fusion kind (``kLoop`` ...)."""
    if opcode == "fusion":
        return _FUSION_KINDS.get(fusion_kind, "fusion")
    if opcode in _DATA_FORMATTING:
        return "data formatting"
    if opcode in _ELEMENTWISE:
        return "non-fusion elementwise"
    return opcode


# ---- the proto ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def hlo_proto_class() -> Any:
    """A protobuf class for the parts of ``xla.HloProto`` that the tools read.

    Field numbers follow xla/service/hlo.proto and xla/xla_data.proto:
    HloProto.hlo_module=1; HloModuleProto.name=1, computations=3,
    entry_computation_id=6, schedule=7; HloScheduleProto.sequences=1 (a map
    int64 -> InstructionSequence, read as its repeated entry message);
    InstructionSequence.instruction_ids=1; HloComputationProto.name=1,
    instructions=2, id=5; HloInstructionProto.name=1, opcode=2, metadata=7,
    fusion_kind=11, custom_call_target=28, id=35, called_computation_ids=38,
    backend_config=43; OpMetadata.op_type=1, op_name=2, source_file=3,
    source_line=4. The rest of the message is skipped as unknown fields by
    protobuf's C parser.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    package = "xprof_core.hlo_proto"
    fd = descriptor_pb2.FileDescriptorProto(name="xprof_core_hlo_proto.proto", package=package, syntax="proto3")
    ftype = descriptor_pb2.FieldDescriptorProto
    # (field, number, type: "string", "bytes", "int64", "int32" or a message name, repeated)
    layout: dict[str, list[tuple[str, int, str, bool]]] = {
        "OpMetadata": [
            ("op_type", 1, "string", False),
            ("op_name", 2, "string", False),
            ("source_file", 3, "string", False),
            ("source_line", 4, "int32", False),
        ],
        "Instruction": [
            ("name", 1, "string", False),
            ("opcode", 2, "string", False),
            ("metadata", 7, "OpMetadata", False),
            ("fusion_kind", 11, "string", False),
            ("custom_call_target", 28, "string", False),
            ("id", 35, "int64", False),
            ("called_computation_ids", 38, "int64", True),
            ("backend_config", 43, "bytes", False),
        ],
        "Computation": [
            ("name", 1, "string", False),
            ("instructions", 2, "Instruction", True),
            ("id", 5, "int64", False),
        ],
        "InstructionSequence": [("instruction_ids", 1, "int64", True)],
        "SequenceEntry": [("key", 1, "int64", False), ("value", 2, "InstructionSequence", False)],
        "Schedule": [("sequences", 1, "SequenceEntry", True)],
        "Module": [
            ("name", 1, "string", False),
            ("computations", 3, "Computation", True),
            ("entry_computation_id", 6, "int64", False),
            ("schedule", 7, "Schedule", False),
        ],
        "HloProto": [("hlo_module", 1, "Module", False)],
    }
    scalars = {
        "string": ftype.TYPE_STRING,
        "bytes": ftype.TYPE_BYTES,
        "int64": ftype.TYPE_INT64,
        "int32": ftype.TYPE_INT32,
    }
    for message, fields in layout.items():
        m = fd.message_type.add(name=message)
        for name, number, type_name, repeated in fields:
            f = m.field.add(name=name, number=number, label=ftype.LABEL_REPEATED if repeated else ftype.LABEL_OPTIONAL)
            if type_name in scalars:
                f.type = scalars[type_name]
            else:
                f.type = ftype.TYPE_MESSAGE
                f.type_name = f".{package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.HloProto"))


# ---- modules by program id ------------------------------------------------------------------


@dataclass(frozen=True)
class HloInstruction:
    """What the tools need of one HLO instruction."""

    name: str
    op_name: str  # OpMetadata.op_name: the framework op, "" when XLA recorded none
    category: str  # category_from_opcode of its opcode and fusion kind
    provenance: str  # XProf's TfOpName: "op_name:op_type", "" without op_name
    opcode: str = ""
    custom_call_target: str = ""  # custom-call instructions only
    calls_computations: bool = False  # fusions excepted: while, conditional, call, async ops ...
    source: str = ""  # "file:line" of the framework code it came from, "" when XLA recorded none


def kernel_name_key(name: str) -> str:
    """An instruction or kernel name as XLA's GPU backends sanitize it into a kernel name.

    '.' and '-' become '_'; ROCm kernel symbols end in ".kd".
    """
    return name.removesuffix(".kd").replace(".", "_").replace("-", "_")


@dataclass(frozen=True)
class _Module:
    """A parsed module: instructions by name, instruction names by kernel_name_key (first wins in
    both), and the entry computation's instructions in the order it runs (None when unscheduled)."""

    by_name: dict[str, HloInstruction]
    by_kernel: dict[str, str]
    entry_order: list[str] | None


def _parse_module(raw: bytes) -> _Module | None:
    try:
        proto = hlo_proto_class().FromString(raw)
    except DecodeError:  # XProf skips a module it cannot parse
        return None
    module = proto.hlo_module
    by_name: dict[str, HloInstruction] = {}
    by_kernel: dict[str, str] = {}
    name_of_id: dict[int, str] = {}
    for comp in module.computations:
        for ins in comp.instructions:
            md = ins.metadata
            prov = f"{md.op_name}:{md.op_type}" if md.op_name else ""
            category = category_from_opcode(ins.opcode, ins.fusion_kind)
            calls = ins.opcode != "fusion" and len(ins.called_computation_ids) > 0
            by_name.setdefault(
                ins.name,
                HloInstruction(
                    ins.name,
                    md.op_name,
                    category,
                    prov,
                    ins.opcode,
                    ins.custom_call_target,
                    calls,
                    f"{md.source_file}:{md.source_line}" if md.source_file else "",
                ),
            )
            by_kernel.setdefault(kernel_name_key(ins.name), ins.name)
            name_of_id.setdefault(ins.id, ins.name)
    entry_order = None
    for seq in module.schedule.sequences:
        if seq.key == module.entry_computation_id:
            entry_order = [name_of_id.get(i, "") for i in seq.value.instruction_ids]
            if "" in entry_order:  # a schedule naming unknown instructions is not trusted
                entry_order = None
    return _Module(by_name, by_kernel, entry_order)


class HloModules:
    """The HLO modules of a host (``Hlo Proto`` stats of ``/host:metadata``), parsed on first use.

    Modules are keyed by ``program_id`` (an unsigned 64-bit int): the
    metadata's ``program_id`` stat, else its event-metadata id (XProf's key).
    A module that does not parse is skipped, as XProf does.
    """

    def __init__(self, xs: XSpace) -> None:
        self._protos: dict[int, bytes] = {}
        self._modules: dict[int, _Module | None] = {}
        for plane in xs.planes_of_kind(PlaneKind.METADATA):
            for md_id, md in plane.event_metadata.items():
                proto = md.stats.get("Hlo Proto")
                if isinstance(proto, bytes):
                    program_id = md.stats.get("program_id", md_id)
                    if isinstance(program_id, int):
                        self._protos.setdefault(program_id & _U64, proto)

    def __len__(self) -> int:
        return len(self._protos)

    def _module(self, program_id: int) -> _Module | None:
        if program_id not in self._modules:
            raw = self._protos.get(program_id)
            self._modules[program_id] = None if raw is None else _parse_module(raw)
        return self._modules[program_id]

    def instruction(self, program_id: int, name: str) -> HloInstruction | None:
        """The instruction ``name`` of module ``program_id``; None when either is unknown."""
        module = self._module(program_id & _U64)
        return None if module is None else module.by_name.get(name)

    def instruction_of_kernel(self, program_id: int, kernel_name: str) -> HloInstruction | None:
        """The instruction a GPU kernel is named after (``loop_add_fusion_2`` -> ``loop_add_fusion.2``)."""
        module = self._module(program_id & _U64)
        if module is None:
            return None
        name = module.by_kernel.get(kernel_name_key(kernel_name))
        return None if name is None else module.by_name.get(name)

    def entry_schedule(self, program_id: int) -> list[HloInstruction] | None:
        """The entry computation's instructions in the order the module runs them.

        None when the module is unknown or carries no schedule for its entry
        computation (XLA:GPU modules are scheduled; the order of the
        instructions in the proto is only a valid topological order).
        """
        module = self._module(program_id & _U64)
        if module is None or module.entry_order is None:
            return None
        return [module.by_name[name] for name in module.entry_order]


__all__ = ["HloInstruction", "HloModules", "category_from_opcode", "hlo_proto_class", "kernel_name_key"]
