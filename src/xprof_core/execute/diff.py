"""run_diff: compare two runs headless (the ``diff`` tool over :func:`~xprof_core.execute.run_tool`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xprof_core.tools.diff import DEFAULT_TOP, INPUT_TOOLS, diff_results


def run_diff(
    source_a: Any,
    source_b: Any,
    hosts_a: Iterable[str] | None = None,
    hosts_b: Iterable[str] | None = None,
    labels: tuple[str, str] | None = None,
    metric: str = "mean",
    top: int = DEFAULT_TOP,
) -> dict[str, Any]:
    """Diff run B against run A.

    ``source_a`` / ``source_b`` are anything :func:`~xprof_core.execute.run_tool`
    accepts (a host file, a session or run folder, ``(logdir, run)``);
    ``labels`` name them in the result (default: "A" and "B"). See
    :func:`xprof_core.tools.diff.diff_results` for the result.
    """
    from xprof_core.execute import run_tool

    sides = []
    for source, hosts in ((source_a, hosts_a), (source_b, hosts_b)):
        wanted = list(hosts) if hosts is not None else None
        sides.append({tool: run_tool(tool, source, hosts=wanted) for tool in INPUT_TOOLS})
    from xprof_core.execute.result import ToolResult

    return ToolResult(diff_results(sides[0], sides[1], labels=labels or ("A", "B"), metric=metric, top=top))


__all__ = ["run_diff"]
