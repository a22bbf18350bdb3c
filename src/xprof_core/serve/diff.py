"""The ``diff`` tool over HTTP: ``/data?tag=diff&run=A&run2=B``.

A diff is not a map/reduce over one run's hosts: it runs the op-stats family
of tools on run A and on run B (each through the service, so every host's
partial is computed once and cached as for any other request) and compares
their results with :func:`xprof_core.tools.diff.diff_results`.

Parameters besides ``run``/``host``/``hosts`` (which select A's hosts):
``run2`` (required), ``host2``/``hosts2`` (B's hosts; default all),
``metric`` (mean, p50, p90, p99) and ``top`` (rows of the regression and
improvement tables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xprof_core.errors import ParamError
from xprof_core.tools.base import param_int
from xprof_core.tools.diff import DEFAULT_TOP, INPUT_TOOLS, diff_results

TOOL_NAME = "diff"
#: The query parameters the diff reads itself (``table`` is data_csv's); none reaches the tools it runs.
PARAMS = ("run2", "host2", "hosts2", "metric", "top", "table")
#: What the service gives the diff: (run, tool, host, hosts) -> (the tool's result, the hosts it ran on).
ToolRunner = Callable[[str | None, str, str | None, str | None], tuple[dict[str, Any], list[str]]]


def diff_answer(
    run_tool: ToolRunner, run_a: str | None, host: str | None, hosts: str | None, params: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Run the input tools on both runs and diff B against A: (the diff, the hosts of A and B).

    Bad parameters raise ParamError; the service's own errors (an unknown run or
    host, a corrupted file) pass through from ``run_tool``.
    """
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ParamError(f"unknown diff parameter {unknown[0]!r}; the diff takes {', '.join(PARAMS)}")
    run_b = params.get("run2")
    if not run_b:
        raise ParamError("missing parameter 'run2' (the run to compare with 'run')")
    top = param_int(params, "top", DEFAULT_TOP, lo=1, hi=1000)
    metric = params.get("metric", "mean")
    sides: list[dict[str, Any]] = []
    selected: list[str] = []
    for run, h, hs in ((run_a, host, hosts), (run_b, params.get("host2"), params.get("hosts2"))):
        results: dict[str, Any] = {}
        for tool in INPUT_TOOLS:
            results[tool], used = run_tool(run, tool, h, hs)
        sides.append(results)
        selected.extend(used)
    result = diff_results(sides[0], sides[1], labels=(str(run_a), run_b), metric=metric, top=top)
    return result, list(dict.fromkeys(selected))


__all__ = ["PARAMS", "TOOL_NAME", "ToolRunner", "diff_answer"]
