"""The analysis tools and their registry.

Every tool is a :class:`~xprof_core.tools.base.Tool` registered under XProf's
name for it (:mod:`xprof_core.tools.registry`). Running a tool over hosts is
the execution layer's job (:mod:`xprof_core.execute`).
"""

from __future__ import annotations

from xprof_core.tools.registry import get_tool, register, tool_names, tools

__all__ = ["get_tool", "register", "tool_names", "tools"]
