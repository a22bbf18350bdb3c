"""The analysis tools and their registry.

Every tool is a :class:`~xprof_core.tools.base.Tool` registered under XProf's
name for it. Running a tool over hosts is the execution layer's job
(:mod:`xprof_core.execute`).
"""

from __future__ import annotations

import importlib
import importlib.util

from xprof_core.errors import UnknownToolError
from xprof_core.tools.base import Tool

# Modules that define tools, imported on first use (each sets ``TOOLS``: name -> tool).
_TOOL_MODULES = {
    "overview_page": "xprof_core.tools.overview_page",
    "input_pipeline_analyzer": "xprof_core.tools.input_pipeline",
    "framework_op_stats": "xprof_core.tools.op_stats",
    "hlo_stats": "xprof_core.tools.op_stats",
    "op_profile": "xprof_core.tools.op_stats",
    "kernel_stats": "xprof_core.tools.kernel_stats",
    "trace_viewer": "xprof_core.tools.trace_viewer",
    "memory_profile": "xprof_core.tools.memory_profile",
    "memory_viewer": "xprof_core.tools.memory_viewer",
    "roofline_model": "xprof_core.tools.roofline_model",
    "graph_viewer": "xprof_core.tools.graph_viewer",
}


def tool_names() -> list[str]:
    """Names of every tool this build provides (those whose module is present)."""
    names = []
    for name, module in _TOOL_MODULES.items():
        spec = importlib.util.find_spec(module)
        if spec is not None:
            names.append(name)
    return names


def get_tool(name: str) -> Tool:
    """The tool registered as ``name``; UnknownToolError lists the valid names."""
    module = _TOOL_MODULES.get(name)
    if module is None or importlib.util.find_spec(module) is None:
        raise UnknownToolError(f"unknown tool {name!r}; valid tools: {', '.join(tool_names())}")
    tools: dict[str, Tool] = importlib.import_module(module).TOOLS
    return tools[name]


__all__ = ["get_tool", "tool_names"]
