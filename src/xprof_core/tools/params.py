"""Which request parameters reach a tool, and which of them its map step reads.

A tool declares its parameters (``params``, :class:`~xprof_core.tools.base.ToolParam`).
Only those reach it: other query parameters neither split the cache nor change what
a tool computes. What a tool's *map* reads decides its partial, so it is what the
partial's cache key holds: nothing for the table tools (their map is the host index,
whatever the request), the declared parameters for a tool that maps the decoded
XSpace itself. A tool with no ``params`` attribute gets every parameter, as before
declarations existed. A test runs each tool with a recording mapping to check that
it reads no parameter it has not declared.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["declared_names", "map_params", "tool_params"]


def declared_names(tool: object) -> frozenset[str] | None:
    """The names of ``tool``'s declared parameters, or None when it declares none at all."""
    params = getattr(tool, "params", None)
    if params is None:
        return None
    return frozenset(p.name for p in params)


def tool_params(tool: object, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters that reach ``tool``: its declared ones (every one when it declares nothing)."""
    names = declared_names(tool)
    if names is None:
        return dict(params)
    return {k: v for k, v in params.items() if k in names}


def map_params(tool: object, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters ``tool``'s map step reads, so what its partial depends on and is cached by."""
    if getattr(tool, "needs", None) == "index":
        return {}  # the map is the host index, the same for every request
    return tool_params(tool, params)
