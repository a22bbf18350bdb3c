"""The tables of a file or a run (every host), for ``sql`` and ``export`` on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xprof_core.export.tables import (
    ANALYSIS_TABLES,
    EVENT_TABLES,
    TABLES,
    analysis_table,
    require_pyarrow,
    xspace_table,
)

if TYPE_CHECKING:
    import pyarrow as pa


def source_tables(
    source: Any, names: Iterable[str] = TABLES, hosts: Iterable[str] | None = None
) -> dict[str, pa.Table]:
    """Tables of every selected host of ``source``, concatenated (each row names its host).

    ``source`` is what :func:`xprof_core.execute.run_tool` takes: a host file,
    a session or run folder, or ``(logdir, run)``. ``steps`` and ``ops`` are
    the run's tool results over the selected hosts (steps aligned across
    hosts, op statistics summed).
    """
    from xprof_core.execute import resolve_hosts, run_tool
    from xprof_core.model.load import load

    arrow = require_pyarrow()
    wanted = list(names)
    unknown = [n for n in wanted if n not in TABLES]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r}; tables: {', '.join(TABLES)}")
    pairs = resolve_hosts(source)
    if hosts is not None:
        keep = set(hosts)
        missing = keep - {name for name, _ in pairs}
        if missing:
            raise ValueError(f"unknown hosts {sorted(missing)}")
        pairs = [p for p in pairs if p[0] in keep]
    out: dict[str, Any] = {}
    event_names = [n for n in wanted if n in EVENT_TABLES]
    if event_names:
        parts: dict[str, list[Any]] = {n: [] for n in event_names}
        for host, url in pairs:
            xs = load(url)
            for n in event_names:
                parts[n].append(xspace_table(xs, n, host))
        for n in event_names:
            out[n] = arrow.concat_tables(parts[n], promote_options="permissive") if len(parts[n]) > 1 else parts[n][0]
    selected = [name for name, _ in pairs]
    results: dict[str, Any] = {}

    def results_of(tool: str) -> Any:
        if tool not in results:
            results[tool] = run_tool(tool, [url for _, url in pairs], hosts=selected)
        return results[tool]

    for n in wanted:
        if n in ANALYSIS_TABLES:
            out[n] = analysis_table(n, results_of)
    return {n: out[n] for n in wanted}


__all__ = ["source_tables"]
