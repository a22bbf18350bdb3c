"""ToolResult: a tool's result, a plain dict that also renders itself in notebooks."""

from __future__ import annotations

from typing import Any

from xprof_core.richrepr import result_html


class ToolResult(dict[str, Any]):
    """A tool's result (JSON-ready dict); in a notebook, its fields and sortable tables."""

    def _repr_html_(self) -> str:
        return result_html(self)


__all__ = ["ToolResult"]
