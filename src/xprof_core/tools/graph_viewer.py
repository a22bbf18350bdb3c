"""XProf's ``graph_viewer`` tool: the HLO graph around one op, as JSON the web UI lays out.

Parameters (XProf's): ``module_name`` or ``program_id`` (default: the
largest module that is not a JAX helper), ``node_name`` (an instruction or a
computation; default: the entry computation's root), ``graph_width`` (the
radius, default 3), ``merge_fusion`` (1 draws fusions as single nodes instead
of their fused computations). ``format=dot`` adds the graph as Graphviz DOT
text (``dot -Tsvg``).

Which nodes and edges (XLA's ``hlo_graph_dumper`` neighbourhood, which
XProf's graph viewer renders):

* A breadth-first walk from the op over operands, users and called
  computations' roots, up to ``graph_width`` steps (a step to or from a
  bitcast's operand is free); a tuple's operands are
  walked only from the op itself, a constant's users never, and an op with
  more than 16 users keeps them out ("some users omitted"). Nodes of other
  computations (fused computations, while bodies) are always shown. Nodes
  missing some (or all) operands are de-emphasized; the op is highlighted.
* A fusion is drawn as a cluster of its fused computation when the fusion is
  shown with all its operands (and ``merge_fusion`` is off), otherwise as a
  node. Other non-trivial called computations become clusters too.
* Constants and fused broadcasts of scalar constants are not nodes (they are
  inlined into their users); ``get-tuple-element`` is skipped (edges go from
  the tuple's producer), as is a fusion parameter bound to a constant and a
  tuple parameter read only through get-tuple-elements.
* Edges run from operand to user (from a fusion's operand to the fused
  parameter inside its cluster, from a called computation's root to its
  caller), control dependencies included.

Why JSON laid out in the browser rather than SVG from Graphviz on the
server: the neighbourhoods are small (bounded by the radius and the 16-user
cap), a layered layout of tens of nodes is instant in the browser, every node
can link to another centre without a round trip, and serving needs no
``dot`` binary or a subprocess per request (Graphviz can take minutes on a
large graph and would need its own timeouts and sandbox). ``format=dot``
still gives Graphviz users the graph.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xprof_core.errors import HloModuleNotFoundError
from xprof_core.index.hlo_proto import category_from_opcode
from xprof_core.model.xspace import XSpace
from xprof_core.tools.base import Params, Partial, ToolParam, param_int
from xprof_core.tools.memory_viewer import no_modules_reason, select_module
from xprof_core.tools.registry import register
from xprof_core.tools.xla_hlo import OPAQUE, TOKEN, TUPLE, HloModule, HloModuleSet, num_elements, shape_text

VERSION = 1
DEFAULT_WIDTH = 3
MAX_WIDTH = 20
MAX_USERS_TO_RENDER = 16  # XLA's kMaxUsersToRender
MIN_USERS_TO_OMIT = 3  # XLA's kMinUsersToOmit
SMALL_ELEMENTS = 4096  # XLA's IsSmall
MAX_EDGES_BETWEEN_NODES = 64

NORMAL, HIDE, HIGHLIGHT, SOME_OPERANDS_OMITTED, OMIT_OPERANDS, SOME_USERS_OMITTED = range(6)
_STYLE = {
    NORMAL: "normal",
    HIGHLIGHT: "highlight",
    SOME_OPERANDS_OMITTED: "some_operands_omitted",
    OMIT_OPERANDS: "operands_omitted",
    SOME_USERS_OMITTED: "some_users_omitted",
}


# ---- the neighbourhood filter ----------------------------------------------------------------


class _Filter:
    """Which instructions show, and how: XLA's MakeNodeRadiusAroundFilter, or a whole computation."""

    def __init__(self, m: HloModule, root_comp: int, nodes: dict[int, int]) -> None:
        self.m = m
        self.root_comp = root_comp
        self.nodes = nodes

    @classmethod
    def around(cls, m: HloModule, root: Any, radius: int) -> _Filter:
        """The instructions within ``radius`` steps of ``root``."""
        root_comp = m.computation_of[root.id]
        nodes: dict[int, int] = {}
        work: deque[tuple[int, int]] = deque([(root.id, 0)])
        users = m.users
        while work:
            iid, depth = work.popleft()
            nodes[iid] = NORMAL
            if depth == radius:
                continue
            ins = m.instructions[iid]
            if iid == root.id or ins.opcode != "tuple":
                for op in ins.operand_ids:
                    if op in m.instructions and op not in nodes:
                        # A bitcast adds no information: walking through one costs no step.
                        bitcast = ins.opcode == "bitcast" or m.instructions[op].opcode == "bitcast"
                        work.append((op, depth if bitcast else depth + 1))
            for cid in ins.called_computation_ids:
                comp = m.computations.get(cid)
                if comp is not None:
                    work.append((m.root(comp).id, depth + 1))
            if ins.opcode == "constant":
                continue
            if len(users[iid]) > MAX_USERS_TO_RENDER:
                nodes[iid] = SOME_USERS_OMITTED
                continue
            for user in users[iid]:
                if user not in nodes:
                    work.append((user, depth + 1))

        def displayed(iid: int) -> bool:
            return iid in nodes or m.instructions[iid].opcode == "constant" or m.computation_of.get(iid) != root_comp

        for iid in list(nodes):
            ops = [o for o in m.instructions[iid].operand_ids if o in m.instructions]
            shown = [displayed(o) for o in ops]
            if any(shown) and not all(shown):
                nodes[iid] = SOME_OPERANDS_OMITTED
            elif ops and not any(shown):
                nodes[iid] = OMIT_OPERANDS
            if nodes[iid] == SOME_USERS_OMITTED and all(displayed(u) for u in users[iid]):
                nodes[iid] = NORMAL
        nodes[root.id] = HIGHLIGHT
        return cls(m, root_comp, nodes)

    def result(self, iid: int) -> int:
        if iid in self.nodes:
            return self.nodes[iid]
        return NORMAL if self.m.computation_of.get(iid) != self.root_comp else HIDE

    def show(self, iid: int) -> bool:
        return self.result(iid) != HIDE

    def some_or_all_operands_omitted(self, iid: int) -> bool:
        return self.result(iid) in (SOME_OPERANDS_OMITTED, OMIT_OPERANDS)


# ---- trivial computations (reduce's "add", "max" ...) ----------------------------------------

_TRIVIAL = {
    "add": "add",
    "multiply": "multiply",
    "minimum": "min",
    "maximum": "max",
    "xor": "xor",
    "and": "and",
    "or": "or",
}
_COMPARE = {"LE": "less-or-equal", "GE": "greater-or-equal", "GT": "greater-than", "LT": "less-than"}
_COMPARE_SYMMETRIC = {"EQ": "equal-to", "NE": "not-equal-to"}


def _is_scalar(shape: Any) -> bool:
    return shape.element_type not in (TUPLE, OPAQUE, TOKEN) and num_elements(shape) == 1


def trivial_computation(m: HloModule, comp: Any) -> str | None:
    """XLA's MatchTrivialComputation: "add" for ``return p0 + p1`` over scalars, and the like."""
    if len(comp.instructions) != 3:
        return None
    root = m.root(comp)
    ops = m.operands(root)
    if len(ops) != 2 or not _is_scalar(root.shape):
        return None
    if not all(o.opcode == "parameter" and _is_scalar(o.shape) for o in ops):
        return None
    numbers = [o.parameter_number for o in ops]
    if sorted(numbers) != [0, 1]:
        return None
    if root.opcode == "compare":
        direction = root.comparison_direction
        if direction in _COMPARE_SYMMETRIC:
            return _COMPARE_SYMMETRIC[direction]
        return _COMPARE.get(direction) if numbers == [0, 1] else None
    return _TRIVIAL.get(root.opcode)


# ---- the graph -------------------------------------------------------------------------------


@dataclass
class _Builder:
    m: HloModule
    f: _Filter
    merge_fusion: bool

    def __post_init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.clusters: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.node_ids: set[int] = set()
        self.cluster_of_comp: dict[int, str] = {}
        self.pair_edges: dict[tuple[int, int], int] = {}

    # -- XLA's predicates --

    def is_fused(self, ins: Any) -> bool:
        comp = self.m.computations[self.m.computation_of[ins.id]]
        return self.m.is_fusion_computation(comp)

    def fused_comp(self, ins: Any) -> Any:
        for cid in ins.called_computation_ids:
            return self.m.computations.get(cid)
        return None

    def show_subcomputation(self, comp: Any) -> bool:
        m, f = self.m, self.f
        if m.is_fusion_computation(comp):
            caller = m.caller_of.get(comp.id)
            if caller is None or not f.show(caller) or f.some_or_all_operands_omitted(caller) or self.merge_fusion:
                return False
        elif trivial_computation(m, comp) is not None:
            return False
        return any(f.show(i.id) for i in comp.instructions)

    def show_fusion_subcomputation(self, ins: Any) -> bool:
        comp = self.fused_comp(ins)
        return comp is not None and self.show_subcomputation(comp)

    def is_fused_broadcast_of_constant_scalar(self, ins: Any) -> bool:
        if ins.opcode != "broadcast" or not self.is_fused(ins):
            return False
        ops = self.m.operands(ins)
        return len(ops) == 1 and ops[0].opcode == "constant" and num_elements(ops[0].shape) == 1

    def fusion_parameter_constant(self, ins: Any) -> bool:
        if ins.opcode != "parameter" or not self.is_fused(ins):
            return False
        fusion = self.m.instructions.get(self.m.caller_of.get(self.m.computation_of[ins.id], -1))
        if fusion is None:
            return False
        ops = self.m.operands(fusion)
        n = int(ins.parameter_number)
        return 0 <= n < len(ops) and ops[n].opcode == "constant"

    def merge_into_users(self, ins: Any) -> bool:
        m = self.m
        comp = m.computations[m.computation_of[ins.id]]
        if (ins.opcode == "get-tuple-element" and m.root(comp).id != ins.id) or self.fusion_parameter_constant(ins):
            return True
        if ins.opcode != "parameter" or ins.shape.element_type != TUPLE or self.is_fused(ins):
            return False
        users = m.users[ins.id]
        shown = [u for u in users if self.f.show(u)]
        return len(shown) > MIN_USERS_TO_OMIT and all(m.instructions[u].opcode == "get-tuple-element" for u in shown)

    def node_for_edge(self, ins: Any) -> Any:
        if ins.opcode == "get-tuple-element":
            ops = self.m.operands(ins)
            if ops:
                ins = ops[0]
        while ins.opcode == "fusion" and self.show_fusion_subcomputation(ins):
            comp = self.fused_comp(ins)
            ins = self.m.root(comp)
        return ins

    # -- emitting --

    def dump_computation(self, comp: Any, cluster: str | None) -> None:
        for ins in comp.instructions:
            if not self.f.show(ins.id):
                continue
            for cid in ins.called_computation_ids:
                sub = self.m.computations.get(cid)
                if sub is not None and self.show_subcomputation(sub):
                    self.dump_subcomputation(sub, ins, cluster)
            self.dump_instruction(ins, cluster)

    def dump_subcomputation(self, comp: Any, parent: Any, cluster: str | None) -> None:
        if parent.opcode != "fusion":
            src = self.node_for_edge(self.m.root(comp))
            self.edges.append({"from": src.name, "to": parent.name, "kind": "subcomputation", "computation": comp.name})
        if comp.id in self.cluster_of_comp:
            return
        cid = f"cluster:{comp.name}"
        self.cluster_of_comp[comp.id] = cid
        fused = parent.opcode == "fusion"
        self.clusters.append(
            {
                "id": cid,
                "computation": comp.name,
                "instruction": parent.name,
                "kind": "fusion" if fused else "subcomputation",
                "category": category_from_opcode(parent.opcode, parent.fusion_kind) if fused else "",
                "highlight": self.f.result(parent.id) == HIGHLIGHT,
                "parent": cluster,
            }
        )
        self.dump_computation(comp, cid)

    def dump_instruction(self, ins: Any, cluster: str | None) -> None:
        m = self.m
        comp = m.computations[m.computation_of[ins.id]]
        is_root = m.root(comp).id == ins.id
        if (ins.opcode == "constant" or self.is_fused_broadcast_of_constant_scalar(ins)) and not is_root:
            return
        if self.merge_into_users(ins):
            return
        if ins.opcode == "fusion" and self.show_fusion_subcomputation(ins):
            return
        self.node_ids.add(ins.id)
        result = self.f.result(ins.id)
        style = _STYLE.get(result, "normal")
        src_file, src_line, _ = m.source(ins)
        trivial = (
            [t for t in (trivial_computation(m, c) for c in self._called(ins)) if t] if ins.opcode != "fusion" else []
        )
        self.nodes.append(
            {
                "name": ins.name,
                "opcode": ins.opcode,
                "shape": shape_text(ins.shape, with_layout=_multidim(ins.shape) and ins.opcode != "tuple"),
                "category": category_from_opcode(ins.opcode, ins.fusion_kind),
                "computation": comp.name,
                "cluster": cluster,
                "style": style,
                "is_root": is_root,
                "parameter_number": int(ins.parameter_number) if ins.opcode == "parameter" else None,
                "fused": ins.opcode == "fusion",
                "subcomputation": trivial[0] if len(trivial) == 1 else None,
                "op_name": ins.metadata.op_name,
                "source": f"{src_file}:{src_line}" if src_file else "",
            }
        )
        self.add_incoming_edges(ins, comp)

    def _called(self, ins: Any) -> list[Any]:
        return [self.m.computations[c] for c in ins.called_computation_ids if c in self.m.computations]

    def add_incoming_edges(self, ins: Any, comp: Any) -> None:
        m = self.m
        multi = len(ins.operand_ids) > 1

        def add(frm: Any, operand_index: int | None, control: bool = False) -> None:
            # At most 64 edges between two nodes (XLA's cap, for parameters passed through many times).
            if self.pair_edges.get((frm.id, ins.id), 0) > MAX_EDGES_BETWEEN_NODES:
                return
            frm = self.node_for_edge(frm)
            if (
                not self.f.show(frm.id)
                or frm.opcode == "constant"
                or self.is_fused_broadcast_of_constant_scalar(frm)
                or self.merge_into_users(frm)
            ):
                return
            self.pair_edges[(frm.id, ins.id)] = self.pair_edges.get((frm.id, ins.id), 0) + 1
            edge: dict[str, Any] = {"from": frm.name, "to": ins.name, "kind": "control" if control else "data"}
            edge["operand_index"] = operand_index if (multi and not control) else None
            edge["small"] = _is_small(frm.shape)
            self.edges.append(edge)

        if ins.opcode == "parameter" and self.is_fused(ins):
            if comp.id != self.f.root_comp:
                fusion = m.instructions.get(m.caller_of.get(comp.id, -1))
                ops = m.operands(fusion) if fusion is not None else []
                n = int(ins.parameter_number)
                if 0 <= n < len(ops):
                    add(ops[n], 0)
        else:
            for i, op in enumerate(m.operands(ins)):
                add(op, i)
            for pred in ins.control_predecessor_ids:
                if pred in m.instructions:
                    add(m.instructions[pred], 0, control=True)


def _multidim(shape: Any) -> bool:
    if shape.element_type == TUPLE:
        return any(_multidim(s) for s in shape.tuple_shapes)
    return len(shape.dimensions) > 1


def _is_small(shape: Any) -> bool:
    if shape.element_type == TUPLE:
        return sum(num_elements(s) if s.element_type != TUPLE else 0 for s in shape.tuple_shapes) < SMALL_ELEMENTS
    if shape.element_type in (OPAQUE, TOKEN):
        return True
    return num_elements(shape) < SMALL_ELEMENTS


def neighborhood(
    m: HloModule, node_name: str, width: int = DEFAULT_WIDTH, merge_fusion: bool = False
) -> dict[str, Any]:
    """The graph around ``node_name`` (an instruction, or a computation drawn whole)."""
    ins = m.by_name.get(node_name)
    comp: Any = None if ins is not None else m.computation_by_name.get(node_name)
    if ins is None and comp is None:
        raise HloModuleNotFoundError(f"no instruction or computation named {node_name!r} in {m.name}")
    if ins is not None:
        f = _Filter.around(m, ins, width)
        comp = m.computations[f.root_comp]
        title = f"Neighborhood of {width} nodes around {ins.name}"
    else:
        # A whole computation: every instruction shows (XLA's RenderGraph with the default filter).
        f = _Filter(m, comp.id, {i.id: NORMAL for i in comp.instructions})
        title = f"Computation {comp.name}"
    b = _Builder(m, f, merge_fusion)
    b.dump_computation(comp, None)
    root_edge = b.node_for_edge(m.root(comp))
    root_tag = None
    if (
        f.show(root_edge.id)
        and root_edge.opcode != "constant"
        and not b.is_fused_broadcast_of_constant_scalar(root_edge)
    ):
        root_tag = root_edge.name
    caller = m.caller_of.get(comp.id)
    users = m.users
    center = ins if ins is not None else m.root(comp)
    return {
        "title": title,
        "computation": comp.name,
        "fusion_instruction": m.instructions[caller].name
        if caller is not None and m.is_fusion_computation(comp)
        else None,
        "center": center.name,
        "center_is_computation": ins is None,
        "width": width,
        "nodes": b.nodes,
        "clusters": b.clusters,
        "edges": b.edges,
        "root": root_tag,
        "operands": _adjacent(m, center, lambda x: [m.instructions[o] for o in x.operand_ids if o in m.instructions]),
        "users": _adjacent(m, center, lambda x: [m.instructions[u] for u in users[x.id]]),
    }


def _adjacent(m: HloModule, ins: Any, step: Any) -> list[str]:
    """XProf's adjacent nodes: operands (or users), looking through get-tuple-element."""
    out: list[str] = []

    def walk(x: Any) -> None:
        for y in step(x):
            if y.name.startswith("get-tuple-element"):
                walk(y)
            else:
                out.append(y.name)

    walk(ins)
    return out


# ---- DOT -------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: dict[str, Any]) -> str:
    """The graph as Graphviz DOT (clusters for fused computations), for ``dot -Tsvg``."""
    lines = ["digraph G {", "rankdir = TB;", "compound = true;", f"label = {_dot_quote(graph['title'])};"]
    by_cluster: dict[str | None, list[dict[str, Any]]] = {}
    for n in graph["nodes"]:
        by_cluster.setdefault(n["cluster"], []).append(n)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for c in graph["clusters"]:
        children.setdefault(c["parent"], []).append(c)

    def node_line(n: dict[str, Any]) -> str:
        label = "\n".join((n["name"], n["opcode"], n["shape"]))
        shape = "diamond" if n["style"] == "highlight" else "box"
        style = "dashed" if n["style"] not in ("normal", "highlight") else "solid"
        return f"{_dot_quote(n['name'])} [label={_dot_quote(label)}, shape={shape}, style={style}];"

    def emit(cluster: str | None, indent: str) -> None:
        for c in children.get(cluster, []):
            lines.append(f"{indent}subgraph {_dot_quote('cluster_' + c['computation'])} {{")
            what = "Fused expression for" if c["kind"] == "fusion" else "Subcomputation for"
            lines.append(f"{indent}  label = {_dot_quote(what + ' ' + c['instruction'])};")
            emit(c["id"], indent + "  ")
            lines.append(f"{indent}}}")
        for n in by_cluster.get(cluster, []):
            lines.append(indent + node_line(n))

    emit(None, "")
    for e in graph["edges"]:
        attrs = " [style=dashed]" if e["kind"] != "data" else ""
        lines.append(f"{_dot_quote(e['from'])} -> {_dot_quote(e['to'])}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- the tool --------------------------------------------------------------------------------


def map_graph_viewer(xs: XSpace, params: Params) -> Partial:
    modules = HloModuleSet(xs)
    width = param_int(params, "graph_width", DEFAULT_WIDTH, lo=0, hi=MAX_WIDTH)
    merge_fusion = str(params.get("merge_fusion", "0")).lower() in ("1", "true")
    base: Partial = {"version": VERSION, "modules": modules.names()}
    try:
        entry = select_module(modules, params)
    except HloModuleNotFoundError as exc:
        return {**base, "reason": str(exc), "not_found": True, "result": None}
    if entry is None:
        return {**base, "reason": no_modules_reason(xs), "result": None}
    m = modules.module(entry)
    if m is None:
        return {**base, "reason": f"the HLO proto of {entry.name} does not parse", "result": None}
    node = str(params.get("node_name") or "") or m.root(m.entry).name
    try:
        graph = neighborhood(m, node, width, merge_fusion)
    except HloModuleNotFoundError as exc:
        return {**base, "reason": str(exc), "not_found": True, "result": None}
    graph.update(
        module_name=m.name,
        program_id=str(m.program_id),
        entry_computation=m.entry.name,
        entry_instructions=[i.name for i in m.entry.instructions],
    )
    if str(params.get("format", "")).lower() == "dot":
        graph["dot"] = to_dot(graph)
    return {**base, "reason": None, "result": graph}


def reduce_graph_viewer(partials: Sequence[Partial], params: Params) -> dict[str, Any]:
    for p in partials:
        if p.get("version") != VERSION:
            raise ValueError(f"graph_viewer partial version {p.get('version')!r}, expected {VERSION}")
    names = sorted({n for p in partials for n in p.get("modules", [])})
    for p in partials:
        if p.get("result") is not None:
            return {"version": VERSION, "reason": None, "modules": names, "host": p.get("host"), **p["result"]}
    if partials and all(p.get("not_found") for p in partials):
        raise HloModuleNotFoundError(str(partials[0]["reason"]))
    reasons = list(dict.fromkeys(str(p["reason"]) for p in partials if p.get("reason")))
    return {"version": VERSION, "reason": "; ".join(reasons) or "no hosts selected", "modules": names}


@dataclass(frozen=True)
class GraphViewerTool:
    """The graph_viewer tool object the registry hands out."""

    name: str = "graph_viewer"
    version: int = VERSION
    description: str = "the HLO graph around an op: operands, users and fused computations to a chosen depth"
    needs: str = "xspace"
    params: tuple[ToolParam, ...] = (
        ToolParam("module_name", "str", None, "the HLO module, e.g. 'jit_step(1234)'"),
        ToolParam("program_id", "str", None, "the HLO module by program id"),
        ToolParam("node_name", "str", None, "the op (or computation) at the centre; default: the entry's root"),
        ToolParam("graph_width", "int", DEFAULT_WIDTH, "how many steps from the centre to draw", lo=0, hi=MAX_WIDTH),
        ToolParam("merge_fusion", "bool", False, "1 draws fusions as single nodes"),
        ToolParam("format", "str", None, "'dot' adds the graph as Graphviz DOT text"),
    )

    def map(self, xs: XSpace, params: Params) -> Partial:
        return map_graph_viewer(xs, params)

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]:
        return reduce_graph_viewer(partials, params)


GRAPH_VIEWER = register(GraphViewerTool())
TOOLS = {"graph_viewer": GRAPH_VIEWER}

__all__ = [
    "GRAPH_VIEWER",
    "TOOLS",
    "map_graph_viewer",
    "neighborhood",
    "reduce_graph_viewer",
    "to_dot",
    "trivial_computation",
]
