"""The tool registry: tools register themselves with :func:`register`; modules are found, not listed.

Every module of the ``xprof_core.tools`` package (and of its subpackages) is
imported on the first lookup; a tool defined there registers its instance at
import, ``MY_TOOL = register(MyTool())``. Names must be unique.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Any, TypeVar

from xprof_core.errors import UnknownToolError
from xprof_core.tools.base import Tool

T = TypeVar("T")

_TOOLS: dict[str, Tool] = {}
_LOADED = False
_LOCK = threading.RLock()


def register(tool: T) -> T:
    """Register a tool instance under its ``name``; returns it unchanged."""
    instance: Any = tool
    with _LOCK:
        existing = _TOOLS.get(instance.name)
        if existing is not None and type(existing) is not type(instance):
            raise ValueError(f"two tools named {instance.name!r}: {type(existing).__name__} and {type(tool).__name__}")
        _TOOLS[instance.name] = instance
    return tool


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        import xprof_core.tools as package

        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            leaf = info.name.rsplit(".", 1)[-1]
            if not leaf.startswith("_"):
                importlib.import_module(info.name)
        _LOADED = True


def tools() -> dict[str, Tool]:
    """Every registered tool by name."""
    _load_all()
    return dict(_TOOLS)


def tool_names() -> list[str]:
    """Names of every tool this build provides, in a stable order (XProf's first, then by name)."""
    order = [
        "overview_page",
        "input_pipeline_analyzer",
        "framework_op_stats",
        "hlo_stats",
        "op_profile",
        "kernel_stats",
        "trace_viewer",
    ]
    names = list(tools())
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def get_tool(name: str) -> Tool:
    """The tool registered as ``name``; UnknownToolError lists the valid names."""
    found = tools().get(name)
    if found is None:
        raise UnknownToolError(f"unknown tool {name!r}; valid tools: {', '.join(tool_names())}")
    return found


__all__ = ["get_tool", "register", "tool_names", "tools"]
