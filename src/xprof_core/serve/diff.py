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

from typing import TYPE_CHECKING, Any

from xprof_core.tools.base import param_int
from xprof_core.tools.diff import DEFAULT_TOP, INPUT_TOOLS, diff_results

if TYPE_CHECKING:
    from xprof_core.serve.aggregator import ProfileService, ToolAnswer

TOOL_NAME = "diff"
#: The query parameters the diff reads itself (``table`` is data_csv's); none reaches the tools it runs.
PARAMS = ("run2", "host2", "hosts2", "metric", "top", "table")


def diff_answer(
    service: ProfileService, run_a: str | None, host: str | None, hosts: str | None, params: dict[str, str]
) -> ToolAnswer:
    """Run the input tools on both runs and diff B against A."""
    from xprof_core.serve.aggregator import HttpError, ToolAnswer

    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise HttpError(400, f"unknown diff parameter {unknown[0]!r}; the diff takes {', '.join(PARAMS)}")
    run_b = params.get("run2")
    if not run_b:
        raise HttpError(400, "missing parameter 'run2' (the run to compare with 'run')")
    try:
        top = param_int(params, "top", DEFAULT_TOP, lo=1, hi=1000)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    sides: list[dict[str, Any]] = []
    selected: list[str] = []
    for run, h, hs in ((run_a, host, hosts), (run_b, params.get("host2"), params.get("hosts2"))):
        results: dict[str, Any] = {}
        for tool in INPUT_TOOLS:
            answer = service.tool_result(run, tool, h, hs, {}, as_dict=True)
            results[tool] = answer.result
        sides.append(results)
        selected.extend(answer.hosts)
    try:
        result = diff_results(
            sides[0], sides[1], labels=(str(run_a), run_b), metric=params.get("metric", "mean"), top=top
        )
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return ToolAnswer(result, list(dict.fromkeys(selected)))


__all__ = ["PARAMS", "TOOL_NAME", "diff_answer"]
