"""The package's layers: each module imports only its own layer and the layers below, and no import cycles.

Layers, bottom to top (README, "Layout"): the base (version, errors,
progress, protos, the demo data) → storage → the compiled decoder (_fast) →
model → the host index → tools (analysis) → execute → serve → deploy → the command line and
the package's entry points. Every ``import`` statement counts, including
those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xprof_core

PACKAGE = Path(xprof_core.__file__).resolve().parent
# (layer, module name prefixes), bottom first.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "xprof_core._version",
            "xprof_core.errors",
            "xprof_core.progress",
            "xprof_core.protos",
            "xprof_core.demo",
            "xprof_core.richrepr",
        ),
    ),
    ("storage", ("xprof_core.storage",)),
    ("decode", ("xprof_core._fast",)),
    ("model", ("xprof_core.model",)),
    ("index", ("xprof_core.index",)),
    ("analyze", ("xprof_core.tools",)),
    ("execute", ("xprof_core.execute",)),
    ("export", ("xprof_core.export",)),
    ("serve", ("xprof_core.serve",)),
    ("deploy", ("xprof_core.deploy",)),
    (
        "entry",
        (
            "xprof_core.cli",
            "xprof_core.cli_analysis",
            "xprof_core.notebook",
            "xprof_core.aggregator",
            "xprof_core.worker",
        ),
    ),
]
ROOT_MODULE = "xprof_core"  # the package namespace: re-exports, above everything


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    for path in PACKAGE.rglob("*.pyx"):
        out[".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)] = path
    return out


MODULES = module_names()


def layer_of(module: str) -> int:
    if module == ROOT_MODULE:
        return len(LAYERS)
    best = -1
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            best = i
    if best < 0:
        raise AssertionError(f"module {module} belongs to no layer: add it to LAYERS")
    return best


def _resolve(name: str) -> str:
    """The module an imported dotted name refers to: itself, or its longest prefix that is a module."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path) -> set[str]:
    if path.suffix == ".pyx":
        # Cython: only the Python-level imports of xprof_core matter here.
        source = "\n".join(
            line
            for line in path.read_text().splitlines()
            if line.startswith(("import xprof_core", "from xprof_core")) and " cimport " not in line
        )
    else:
        source = path.read_text()
    tree = ast.parse(source)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("xprof_core"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            if not base.startswith("xprof_core"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {_resolve(n) for n in found} - {module}


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != ROOT_MODULE))
def test_module_imports_only_lower_layers(module: str) -> None:
    mine = layer_of(module)
    above = sorted(i for i in GRAPH[module] if layer_of(i) > mine)
    assert not above, f"{module} (layer {LAYERS[mine][0]}) imports higher layers: " + ", ".join(
        f"{i} ({LAYERS[layer_of(i)][0] if layer_of(i) < len(LAYERS) else 'package root'})" for i in above
    )


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # A package importing its own submodules (re-exports) is not a cycle of concern.
            members = [m for m in component if not any(o.startswith(m + ".") for o in component)]
            if len(members) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_layer_table_covers_every_module() -> None:
    for module in MODULES:
        layer_of(module)  # raises for a module outside every layer
    assert layer_of("xprof_core.serve.aggregator") > layer_of("xprof_core.execute") > layer_of("xprof_core.tools")
