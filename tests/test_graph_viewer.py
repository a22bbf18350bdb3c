"""graph_viewer against XProf 2.24.2's Graphviz neighbourhoods (nodes, their styles, edges, clusters)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from golden_tools import golden_entries, golden_path, short

from xprof_core.errors import HloModuleNotFoundError
from xprof_core.execute import run_tool
from xprof_core.tools.graph_viewer import to_dot

from conftest import JAX_DATA, V100, need

VIEWS = [
    (key, g["module"], view)
    for key, g in golden_entries("graph_viewer")
    for view in g.get("views", [])
    if "error" not in view
]
GRAPHS = [v for v in VIEWS if "adjacent" not in v[2]]
ADJACENT = [v for v in VIEWS if "adjacent" in v[2]]
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"
_STYLE = {"highlight": "highlight", "normal": "normal"}


def comparable(r: dict[str, Any]) -> dict[str, Any]:
    """Our graph in the recorded form of XProf's DOT."""
    edges = set()
    for e in r["edges"]:
        edges.add(f"{e['computation']} => {e['to']}" if e["kind"] == "subcomputation" else f"{e['from']} -> {e['to']}")
    kinds = {"fusion": "Fused expression", "subcomputation": "Subcomputation"}
    clusters = sorted(f"{kinds[c['kind']]}: {c['instruction']}" for c in r["clusters"])
    return {
        "title": r["title"],
        "root": r["root"],
        "nodes": {n["name"]: _STYLE.get(n["style"], "dashed") for n in r["nodes"]},
        "clusters": clusters,
        "edges": sorted(edges),
    }


def test_views_are_recorded() -> None:
    assert len(GRAPHS) >= 90 and len(ADJACENT) >= 45
    assert {v["width"] for _, _, v in GRAPHS} == {1, 2}


@pytest.mark.parametrize(
    ("key", "module", "view"), GRAPHS, ids=[f"{short(k)}:{v['node']}:{v['width']}" for k, _, v in GRAPHS]
)
def test_neighbourhood_equals_xprof(key: str, module: str, view: dict[str, Any]) -> None:
    r = run_tool(
        "graph_viewer", need(golden_path(key)), module_name=module, node_name=view["node"], graph_width=view["width"]
    )
    ours = comparable(r)
    assert ours["title"] == view["title"]
    assert ours["root"] == view["root"]
    assert ours["nodes"] == view["nodes"]
    assert ours["edges"] == view["edges"]
    assert ours["clusters"] == view["clusters"]


@pytest.mark.parametrize(("key", "module", "view"), ADJACENT, ids=[f"{short(k)}:{v['node']}" for k, _, v in ADJACENT])
def test_adjacent_nodes_equal_xprof(key: str, module: str, view: dict[str, Any]) -> None:
    r = run_tool("graph_viewer", need(golden_path(key)), module_name=module, node_name=view["node"], graph_width=0)
    assert r["operands"] == view["adjacent"]["operand_names"]
    assert r["users"] == view["adjacent"]["consumer_names"]


def test_merge_fusion_draws_fusions_as_nodes() -> None:
    r = run_tool("graph_viewer", need(CPU), module_name="jit_train_step(24)", node_name="dot.2", graph_width=2)
    merged = run_tool(
        "graph_viewer", need(CPU), module_name="jit_train_step(24)", node_name="dot.2", graph_width=2, merge_fusion="1"
    )
    assert r["clusters"] and not merged["clusters"]
    fused_names = {c["instruction"] for c in r["clusters"]}
    merged_nodes = {n["name"] for n in merged["nodes"]}
    assert fused_names <= merged_nodes
    assert all(n["cluster"] is None for n in merged["nodes"])
    # Every edge joins two drawn nodes, merged or not.
    for g in (r, merged):
        names = {n["name"] for n in g["nodes"]}
        assert all(e["from"] in names and e["to"] in names for e in g["edges"] if e["kind"] == "data")


def test_defaults_computations_and_errors() -> None:
    r = run_tool("graph_viewer", need(CPU))
    assert r["module_name"] == "jit_train_step(24)" and r["center"] == "tuple.3" and r["width"] == 3
    assert r["center"] in r["entry_instructions"]
    whole = run_tool("graph_viewer", need(CPU), module_name="jit_train_step(24)", node_name="fused_computation.3")
    assert whole["center_is_computation"] and whole["title"] == "Computation fused_computation.3"
    assert {n["name"] for n in whole["nodes"]} == {"param_0.3", "param_1.3", "dot_general.1"}
    with pytest.raises(HloModuleNotFoundError, match="no instruction or computation named"):
        run_tool("graph_viewer", need(CPU), module_name="jit_train_step(24)", node_name="nope.1")
    empty = run_tool("graph_viewer", need(V100))
    assert empty["modules"] == [] and "/host:metadata" in empty["reason"]


def test_dot_output_lays_out_with_graphviz() -> None:
    r = run_tool(
        "graph_viewer", need(CPU), module_name="jit_train_step(24)", node_name="dot.2", graph_width=2, format="dot"
    )
    assert r["dot"] == to_dot(r)
    assert r["dot"].count(" -> ") == len(r["edges"])
    assert r["dot"].count("subgraph ") == len(r["clusters"])
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz is not installed (apt-get install graphviz): the DOT text is checked, not rendered")
    out = subprocess.run([dot, "-Tsvg"], input=r["dot"].encode(), capture_output=True, timeout=60, check=True)
    assert out.stdout.count(b'<g id="node') == len(r["nodes"])
