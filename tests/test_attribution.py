"""Which HLO op each GPU kernel belongs to (tools/attribution.py), inside CUDA graphs included.

The oracle is a pair of H200 profiles of one program (../shared/data/h200/,
see its README): ``jax_dev_cmdbuf`` runs each step's kernels inside a command
buffer (every kernel's ``hlo_op`` is ``command_buffer_1``), ``jax_dev_nocmdbuf``
runs them one by one (every kernel names its own op). Our attribution of the
first must give what the second says directly.

The two files are two compilations of the same program, so their modules are
paired instruction by instruction: the thunk-producing instructions of both
entry schedules, position by position, which must carry the same framework op
(``op_name`` metadata). Autotuning made different choices in a few places (a
Triton GEMM fusion instead of a cuBLAS call, shifting the custom-call numbers;
other cuBLAS algorithms): there the kernel names may differ, and only there.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.index.hlo_proto import HloInstruction, HloModules, hlo_proto_class
from xprof_core.index.steps import build_step_table
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.protos import xplane_pb2
from xprof_core.tools import get_tool
from xprof_core.tools.attribution import (
    RULES,
    KernelOps,
    _align,
    _CostTable,
    _fit_cost,
    kernel_ops,
    scope_tree,
)

from conftest import JAX_DATA, REAL

H200 = REAL.parent / "h200"
CMDBUF = H200 / "jax_dev_cmdbuf.xplane.pb.gz"
NOCMDBUF = H200 / "jax_dev_nocmdbuf.xplane.pb.gz"
THUNK_OPCODES = ("fusion", "custom-call")  # what these modules' entry schedules launch on the GPU
# Per-step wall time the program measured around block_until_ready (../shared/data/h200/README.md).
PROGRAM_STEP_MS = {CMDBUF: 3.8, NOCMDBUF: 4.0}
MEMSET = re.compile(r"^Memset \d+$")


def need_h200() -> None:
    if not (CMDBUF.exists() and NOCMDBUF.exists()):
        pytest.skip(f"the H200 pair is absent ({H200} not found)")


# ---- what one file says, per op and step -----------------------------------------------------


class Attributed:
    """One H200 file: its attribution, its module's thunk instructions and kernels per (op, step)."""

    def __init__(self, path: Path) -> None:
        self.xs = xprof_core.load(str(path))
        self.ops = kernel_ops(self.xs)
        programs = set(self.ops.program_id.tolist())
        assert len(programs) == 1
        self.program_id = int(programs.pop())
        schedule = HloModules(self.xs).entry_schedule(self.program_id)
        assert schedule is not None
        # Everything else in the entry schedule launches nothing (parameters, tuples, bitcasts).
        assert {i.opcode for i in schedule} - set(THUNK_OPCODES) <= {
            "parameter",
            "get-tuple-element",
            "bitcast",
            "tuple",
        }
        self.thunks = [i for i in schedule if i.opcode in THUNK_OPCODES]
        self.config = self._configs()
        # Kernels per (op, step): the step whose window holds the kernel's start.
        table = build_step_table(self.xs)
        self.steps = len(table)
        start = self.xs.start_ps[self.ops.rows]
        step = np.searchsorted(table.start_ps, start, side="right") - 1
        assert (step >= 0).all() and (start < table.end_ps[step]).all()
        names = self.xs.event_names(self.ops.rows)
        self.kernels: dict[str, list[Counter[str]]] = defaultdict(lambda: [Counter() for _ in range(self.steps)])
        for op, s, name in zip(self.ops.op.tolist(), step.tolist(), names.tolist(), strict=True):
            # CUPTI names a memset after its memory kind ("Memset 3": kind:device in Memset_details);
            # a memset node of a CUDA graph reports kind:unknown ("Memset 0"). Same memset.
            self.kernels[op][s][MEMSET.sub("Memset", name)] += 1

    def _configs(self) -> dict[str, tuple[str, str, bytes]]:
        """Instruction name -> (opcode, custom-call target, backend config): what decides its kernels."""
        for md in self.xs.plane("/host:metadata").event_metadata.values():
            if md.stats.get("program_id") == self.program_id:
                proto = hlo_proto_class().FromString(md.stats["Hlo Proto"])
                return {
                    i.name: (i.opcode, i.custom_call_target, i.backend_config)
                    for c in proto.hlo_module.computations
                    for i in c.instructions
                }
        raise AssertionError("no HLO proto for the program")


@pytest.fixture(scope="module")
def pair() -> tuple[Attributed, Attributed]:
    need_h200()
    return Attributed(NOCMDBUF), Attributed(CMDBUF)


def test_h200_command_buffers_attributed_as_without_them(pair: tuple[Attributed, Attributed]) -> None:
    direct, graph = pair
    assert set(direct.ops.command_buffer.tolist()) == {""}  # every kernel names its op
    assert set(graph.ops.command_buffer.tolist()) == {"command_buffer_1"}  # every kernel names the buffer
    assert direct.steps == graph.steps == 12
    # The two modules, paired by schedule position: same length, same framework op at every position.
    assert len(direct.thunks) == len(graph.thunks)
    for a, b in zip(direct.thunks, graph.thunks, strict=True):
        assert a.op_name == b.op_name, (a.name, b.name)
        if a.name != b.name:  # compiled differently: a renumbered custom call, or cuBLAS vs a Triton GEMM
            assert (a.opcode, b.opcode) in {("custom-call", "custom-call"), ("custom-call", "fusion")}
    # Every kernel attributed, to a thunk of its module; every thunk has kernels: the same set of ops.
    for f in (direct, graph):
        assert f.ops.rule_counts()["unattributed"] == 0
        assert set(f.kernels) == {i.name for i in f.thunks}
    # Per op: kernels per step equal; kernel names equal wherever both compilations built the op alike.
    compared = 0
    for a, b in zip(direct.thunks, graph.thunks, strict=True):
        per_step_a, per_step_b = direct.kernels[a.name], graph.kernels[b.name]
        assert [sum(c.values()) for c in per_step_a] == [sum(c.values()) for c in per_step_b], (a.name, b.name)
        same_build = a.name == b.name and direct.config[a.name] == graph.config[b.name]
        if same_build:
            assert per_step_a == per_step_b, a.name
            compared += 1
    assert compared >= 150  # most ops compared by kernel name, not only by count
    # Where the names differ at all, it is because the builds differ (never a shifted attribution).
    differ = [
        (a.name, b.name)
        for a, b in zip(direct.thunks, graph.thunks, strict=True)
        if direct.kernels[a.name] != graph.kernels[b.name]
    ]
    assert differ and all(direct.config[x] != graph.config[y] for x, y in differ)


def test_h200_rule_shares_and_scope_evidence(pair: tuple[Attributed, Attributed]) -> None:
    """The scope rule places exactly the kernels the scope tree vouches for; the schedule does the rest.

    Recording a command buffer opens one scope per command, right after the
    launch's scope: in launches where every command was recorded (the next
    scope id outside the launch's subtree is launch + commands + 1), the host
    CUDA calls made in child scope c (cuBLAS kernels captured into child
    graphs, their memsets) belong to command c - launch - 1. Recomputed here
    from the raw tree, independently of the module's code.
    """
    direct, graph = pair
    assert direct.ops.rule_counts() == {**dict.fromkeys(RULES, 0), "hlo_op": len(direct.ops)}
    xs, ops = graph.xs, graph.ops
    tree = scope_tree(xs)
    kernel_scope = xs.stat(ops.rows, "scope_range_id").values.astype(np.int64)
    launches = sorted(set(kernel_scope.tolist()))
    assert len(launches) == graph.steps  # one graph launch per step
    host = np.concatenate([ln.rows for p in xs.planes_of_kind(PlaneKind.HOST) for ln in p.lines])
    host = host[xs.is_timed[host]]
    col = xs.stat(host, "scope_range_id", include_metadata=False)
    calls = list(zip(xs.event_names(host[col.present]).tolist(), col.values[col.present].tolist(), strict=True))
    position = {ins.name: k for k, ins in enumerate(graph.thunks)}
    expected_scope_kernels = 0
    for launch, following in zip(launches, launches[1:], strict=False):
        if tree[following] - launch - 1 != len(graph.thunks):
            continue  # not every command recorded in this launch
        captured = [(name, scope) for name, scope in calls if tree.get(scope) == launch and not name.startswith("cu")]
        commands = {scope - launch - 1 for _, scope in captured}
        in_launch = kernel_scope == launch
        by_scope = in_launch & (ops.rule == RULES.index("scope"))
        # The captured calls' commands are the launch's custom calls, and those are the scope rule's kernels.
        assert commands == {position[o] for o in set(ops.op[by_scope].tolist())}
        assert commands == {k for k, ins in enumerate(graph.thunks) if ins.opcode == "custom-call"}
        assert int(by_scope.sum()) == len(captured)
        expected_scope_kernels += len(captured)
    assert expected_scope_kernels > 0
    counts = ops.rule_counts()
    assert counts["scope"] == expected_scope_kernels
    assert counts["hlo_structure"] == len(ops) - expected_scope_kernels
    assert counts["hlo_op"] == counts["kernel_name"] == counts["unattributed"] == 0


def test_h200_step_time_is_the_programs_wall_time() -> None:
    """Our GPU step time is the annotated host span (StepTraceAnnotation around block_until_ready).

    The program timed each step around block_until_ready itself; our mean step
    time agrees within 5 %. XProf's step time is a device-only span (first
    kernel to last device event of the step's group, tests/data/XPROF_STEPS.md),
    which leaves out the host time before the launch: it is shorter, as the
    device span we compute alongside shows.
    """
    need_h200()
    for path, program_ms in PROGRAM_STEP_MS.items():
        table = build_step_table(xprof_core.load(str(path)))
        assert table.source == "step_num" and len(table) == 12
        ours = table.step_time_ps / 1e9
        assert float(ours.mean()) == pytest.approx(program_ms, rel=0.05), path.name
        assert (table.host_start_ps <= table.device_start_ps).all() and (table.device_end_ps <= table.host_end_ps).all()
        assert (table.step_time_ps == table.host_end_ps - table.host_start_ps).all()
        device_ms = (table.device_end_ps - table.device_start_ps) / 1e9
        assert (device_ms < ours).all()
    # With command buffers the program ran faster, and so do our step times.
    cmd, nocmd = (build_step_table(xprof_core.load(str(p))).step_time_ps.mean() for p in (CMDBUF, NOCMDBUF))
    assert cmd < nocmd


def test_h200_every_tool_shows_the_attributed_ops(pair: tuple[Attributed, Attributed]) -> None:
    direct, graph = pair
    thunk_names = {i.name for i in graph.thunks}
    hlo = {r["c"][3]["v"]: r for r in run_tool("hlo_stats", str(CMDBUF))["hlo_stats"]["rows"]}
    assert set(hlo) == thunk_names
    # Occurrences per op equal those of the same op run outside command buffers.
    hlo_direct = {r["c"][3]["v"]: r for r in run_tool("hlo_stats", str(NOCMDBUF))["hlo_stats"]["rows"]}
    for a, b in zip(direct.thunks, graph.thunks, strict=True):
        assert hlo[b.name]["c"][6]["v"] == hlo_direct[a.name]["c"][6]["v"], b.name
        assert hlo[b.name]["c"][5]["v"] == f"{b.op_name}:"  # provenance: the op's framework op
    profile = run_tool("op_profile", str(CMDBUF))
    leaves = {leaf["name"] for cat in profile["byCategory"]["children"] for leaf in cat["children"]}
    assert leaves == thunk_names
    framework = run_tool("framework_op_stats", str(CMDBUF))["framework_op_stats"]["rows"]
    device_ops = {r["c"][3]["v"] for r in framework if r["c"][1]["v"] == "Device"}
    assert device_ops == {i.op_name for i in graph.thunks}
    kernels = run_tool("kernel_stats", str(CMDBUF))["kernel_stats"]["rows"]
    assert {r["c"][9]["v"] for r in kernels} == {i.op_name for i in graph.thunks}  # XProf: "XlaModule" everywhere
    overview = run_tool("overview_page", str(CMDBUF))["top_ops"]["rows"]
    assert overview and {r["c"][0]["v"] for r in overview} <= thunk_names | {"MemcpyH2D"}


# ---- the alignment and the rules on synthetic input -------------------------------------------


def _ins(name: str, opcode: str = "fusion", category: str = "loop fusion") -> HloInstruction:
    return HloInstruction(name, "", category, "", opcode)


def test_align_places_reused_kernels_memsets_and_library_kernels() -> None:
    schedule = [
        _ins("loop_add_fusion"),
        _ins("loop_add_fusion.1"),  # identical to the first: XLA runs the first's kernel
        _ins("custom-call.3", "custom-call", "custom-call"),
        _ins("input_reduce_fusion.2", category="input fusion"),
    ]
    kernels = ["loop_add_fusion", "loop_add_fusion", "Memset 0", "nvjet_sm90_tss", "input_reduce_fusion_2"]
    assert _align(schedule, kernels) == [
        "loop_add_fusion",
        "loop_add_fusion.1",
        "custom-call.3",  # a memset opens the op after it
        "custom-call.3",
        "input_reduce_fusion.2",
    ]
    # A kernel that fits nowhere in its place is left out; too many left out and nothing is trusted.
    long = [_ins(f"loop_add_fusion.{k}") for k in range(12)]
    kernels = ["loop_add_fusion"] * 12
    assert _align(long, kernels) == [i.name for i in long]
    names = [i.name for i in long]
    assert _align(long, [*kernels[:6], "nvjet_x", *kernels[6:]]) == [*names[:6], "", *names[6:]]
    assert _align(long, [*kernels[:6], "nvjet_x", "nvjet_y", *kernels[6:]]) is None  # 2 of 14 left out
    # An op without kernels costs, but is allowed (XLA may run a command without a kernel).
    assert _align(schedule, ["loop_add_fusion", "loop_add_fusion_1", "nvjet", "input_reduce_fusion_2"]) is not None
    assert _align(schedule[:2], ["input_reduce_fusion_2"]) is None  # fits nowhere: all left out


def test_fit_cost_agrees_with_the_vectorised_costs() -> None:
    schedule = [_ins("loop_add_fusion.4"), _ins("custom-call.1", "custom-call", "custom-call")]
    schedule.append(_ins("gemm_fusion_dot.3", category="custom fusion"))
    stems = {"loop_add_fusion", "gemm_fusion_dot"}
    names = ["loop_add_fusion_4", "loop_add_fusion_2", "Memset 3", "nvjet_x", "gemm_fusion_dot_9", "cutlass_y"]
    table = _CostTable(schedule, names)
    for ins in schedule:
        assert table.first(ins).tolist() == [_fit_cost(ins, name, stems) for name in names], ins.name
    # A loop fusion runs its own kernel, a reused one, or a memset; never a library kernel.
    costs = dict(zip(names, table.first(schedule[0]).tolist(), strict=True))
    assert costs["loop_add_fusion_4"] < costs["loop_add_fusion_2"] < costs["nvjet_x"]
    assert costs["nvjet_x"] == costs["cutlass_y"] == costs["gemm_fusion_dot_9"] >= 1e6


def _hlo_proto(instructions: list[tuple[str, str]], scheduled: bool = True) -> bytes:
    """An HloProto with one entry computation of (name, opcode) instructions, in schedule order."""
    proto = hlo_proto_class()()
    module = proto.hlo_module
    module.name = "jit_step"
    comp = module.computations.add(name="main", id=1)
    for k, (name, opcode) in enumerate(instructions, start=1):
        ins = comp.instructions.add(name=name, opcode=opcode, id=100 + k)
        ins.metadata.op_name = f"jit(step)/{name.split('.')[0]}"
        if opcode == "fusion":
            ins.fusion_kind = "kLoop"
    module.entry_computation_id = 1
    if scheduled:
        seq = module.schedule.sequences.add(key=1)
        seq.value.instruction_ids.extend(100 + k for k in range(1, len(instructions) + 1))
    return bytes(proto.SerializeToString())


def _graph_space(
    kernels: list[tuple[str, int, dict[str, Any]]],
    hlo_proto: bytes | None = None,
    tree: dict[int, int] | None = None,
) -> XSpace:
    """One GPU stream of kernels (name, duration ps, stats), back to back; optional HLO proto and scope tree."""
    space = xplane_pb2.XSpace()
    gpu = space.planes.add(id=1, name="/device:GPU:0")
    stat_names = ("hlo_op", "program_id", "correlation_id", "scope_range_id", "kernel_details")
    for i, stat in enumerate(stat_names, start=1):
        gpu.stat_metadata[i].id = i
        gpu.stat_metadata[i].name = stat
    line = gpu.lines.add(id=1, name="Stream #7(Compute)")
    names: dict[str, int] = {}
    start = 0
    for name, dur, stats in kernels:
        md = names.setdefault(name, len(names) + 1)
        gpu.event_metadata[md].id = md
        gpu.event_metadata[md].name = name
        ev = line.events.add(metadata_id=md, offset_ps=start, duration_ps=dur)
        start += dur
        for k, v in stats.items():
            sid = stat_names.index(k) + 1
            if isinstance(v, str):
                ev.stats.add(metadata_id=sid, str_value=v)
            else:
                ev.stats.add(metadata_id=sid, int64_value=v)
    if hlo_proto is not None:
        meta = space.planes.add(id=2, name="/host:metadata")
        meta.stat_metadata[1].id = 1
        meta.stat_metadata[1].name = "Hlo Proto"
        meta.stat_metadata[2].id = 2
        meta.stat_metadata[2].name = "program_id"
        md = meta.event_metadata[1]
        md.id = 1
        md.name = "jit_step(7)"
        md.stats.add(metadata_id=1, bytes_value=hlo_proto)
        md.stats.add(metadata_id=2, int64_value=7)
    if tree is not None:
        scopes = space.planes.add(id=3, name="/host:__ScopeRangeCallStack__")
        for child, parent in tree.items():
            scopes.stats.add(metadata_id=child, int64_value=parent)
    return xprof_core.decode_xspace(space.SerializeToString())


def _tool(name: str, xs: XSpace) -> dict[str, Any]:
    tool = get_tool(name)
    return tool.reduce([tool.map(xs, {})], {})


def _ops(xs: XSpace) -> list[tuple[str, str]]:
    ops: KernelOps = kernel_ops(xs)
    return [(str(o), RULES[r]) for o, r in zip(ops.op.tolist(), ops.rule.tolist(), strict=True)]


GRAPH = {"hlo_op": "command_buffer_1", "program_id": 7, "correlation_id": 40, "scope_range_id": 1000}
MODULE = [("p.1", "parameter"), ("loop_add_fusion", "fusion"), ("loop_add_fusion.1", "fusion"), ("t", "tuple")]


def test_structure_rule_and_the_kernel_name_fallback() -> None:
    kernels = [("loop_add_fusion", 10, GRAPH), ("loop_add_fusion", 20, GRAPH)]
    placed = _graph_space(kernels, _hlo_proto(MODULE))
    assert _ops(placed) == [("loop_add_fusion", "hlo_structure"), ("loop_add_fusion.1", "hlo_structure")]
    # Unscheduled module: only the kernel's name is left, and it names the first fusion for both.
    named = _graph_space(kernels, _hlo_proto(MODULE, scheduled=False))
    assert _ops(named) == [("loop_add_fusion", "kernel_name")] * 2
    rows = {r["c"][3]["v"]: r["c"][6]["v"] for r in _tool("hlo_stats", placed)["hlo_stats"]["rows"]}
    assert rows == {"loop_add_fusion": 1, "loop_add_fusion.1": 1}


def test_unattributed_kernels_are_reported_with_their_time() -> None:
    """No HLO proto for the program: nothing can place the kernels, and no tool guesses."""
    launch = {**GRAPH, "kernel_details": "regs:32 static_shared:0 dynamic_shared:0 grid:8,1,1 block:128,1,1"}
    xs = _graph_space([("loop_add_fusion", 10, launch), ("nvjet_tss", 32, launch)])
    assert _ops(xs) == [("unattributed in command_buffer_1", "unattributed")] * 2
    (row,) = _tool("hlo_stats", xs)["hlo_stats"]["rows"]
    cells = [c["v"] for c in row["c"]]
    # Two occurrences: without step markers or group ids every kernel is one (as in XProf).
    assert (cells[2], cells[3], cells[6]) == ("unattributed", "unattributed in command_buffer_1", 2)
    assert cells[7] == pytest.approx(42e-6)  # total time, µs
    kernel_rows = _tool("kernel_stats", xs)["kernel_stats"]["rows"]
    assert {(r["c"][1]["v"], r["c"][9]["v"]) for r in kernel_rows} == {
        ("loop_add_fusion", "unattributed in command_buffer_1"),  # XProf: "XlaModule"
        ("nvjet_tss", "unattributed in command_buffer_1"),
    }
    ops = kernel_ops(xs)
    assert ops.rule_counts(xs.duration_ps[ops.rows])["unattributed"] == 42


def test_scope_rule_takes_the_op_of_an_enclosing_scope() -> None:
    """A graph kernel whose scope nests inside the scope of a kernel that names its op is that op's."""
    own = {"hlo_op": "custom-call.2", "program_id": 7, "correlation_id": 41, "scope_range_id": 2000}
    nested = {**GRAPH, "scope_range_id": 2001}
    xs = _graph_space([("nvjet_a", 10, own), ("nvjet_b", 10, nested)], tree={2001: 2000, 2000: 1})
    assert scope_tree(xs) == {2001: 2000, 2000: 1}
    assert _ops(xs) == [("custom-call.2", "hlo_op"), ("custom-call.2", "scope")]


def test_direct_kernels_keep_their_hlo_op() -> None:
    xs = _graph_space([("k", 10, {"hlo_op": "module::fusion.3", "program_id": 7})])
    assert _ops(xs) == [("fusion.3", "hlo_op")]  # the last "::" level, as XProf reads it


@pytest.mark.parametrize("name", ["gpu_mlp_train", "gpu_mlp_train_long", "gpu_mlp_train_pytrace"])
def test_h100_profiles_are_fully_attributed(name: str) -> None:
    """The H100 profiles run every step in one CUDA graph: each kernel placed, once per step per op."""
    xs = xprof_core.load(str(JAX_DATA / f"{name}.xplane.pb"))
    ops = kernel_ops(xs)
    assert ops.rule_counts()["hlo_structure"] == len(ops) > 0
    steps = len(build_step_table(xs))
    counts = Counter(ops.op.tolist())
    assert set(counts.values()) == {steps}
    names = xs.event_names(ops.rows)
    for op, kernel in zip(ops.op.tolist(), names.tolist(), strict=True):
        assert re.sub(r"[._]\d+$", "", op).replace(".", "_") == re.sub(r"_\d+$", "", kernel)
