"""The execution layer: run a tool's map over hosts and reduce, headless.

``run_tool`` maps each host in process and reduces; the serving layer's
executors fan the same map tasks (:func:`map_host`) out to a process pool or
to gRPC workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from xprof_core.tools import get_tool
from xprof_core.tools.base import Partial


def resolve_hosts(source: Any) -> list[tuple[str, str]]:
    """(host name, url) pairs from a file, a list of files, a session dir, a ``Run``, or (logdir, run)."""
    from xprof_core.storage.logdir import Logdir, Run, host_name_of

    if isinstance(source, Run):
        return [(h.name, h.url) for h in source.hosts]
    if isinstance(source, tuple) and len(source) == 2:
        run = Logdir(str(source[0])).run(str(source[1]))
        return [(h.name, h.url) for h in run.hosts]
    if isinstance(source, (list, tuple)):
        return [(host_name_of(str(p)), str(p)) for p in source]
    text = str(source)
    if (isinstance(source, Path) or "://" not in text) and os.path.isdir(text):
        runs = Logdir(text).runs()
        if len(runs) != 1:
            names = [r.name for r in runs]
            raise ValueError(f"{text} holds {len(runs)} runs {names}: pass (logdir, run) to choose one")
        return [(h.name, h.url) for h in runs[0].hosts]
    return [(host_name_of(text), text)]


def map_host(tool: str, url: str, params: dict[str, Any] | None = None) -> Partial:
    """Decode one host file and run the tool's map on it."""
    from xprof_core.model.load import load

    return get_tool(tool).map(load(url), params or {})


def reduce_partials(tool: str, partials: Sequence[Partial], params: dict[str, Any] | None = None) -> dict[str, Any]:
    return get_tool(tool).reduce(partials, params or {})


def run_tool_json(tool: str, source: Any, hosts: Iterable[str] | None = None, **params: Any) -> bytes:
    """:func:`run_tool`'s result as JSON bytes (tools that render JSON directly skip the Python objects)."""
    import orjson

    render = getattr(get_tool(tool), "reduce_json", None)
    if render is None:
        return orjson.dumps(run_tool(tool, source, hosts, **params), option=orjson.OPT_SERIALIZE_NUMPY)
    data: bytes = render(_map_all(tool, source, hosts, params), params)
    return data


def _map_all(tool: str, source: Any, hosts: Iterable[str] | None, params: dict[str, Any]) -> list[Partial]:
    get_tool(tool)  # fail fast on an unknown name
    pairs = resolve_hosts(source)
    if hosts is not None:
        wanted = set(hosts)
        pairs = [p for p in pairs if p[0] in wanted]
        missing = wanted - {p[0] for p in pairs}
        if missing:
            raise ValueError(f"unknown hosts {sorted(missing)}")
    partials = []
    for name, url in pairs:
        partial = map_host(tool, url, params)
        partial.setdefault("host", name)
        partials.append(partial)
    return partials


def run_tool(tool: str, source: Any, hosts: Iterable[str] | None = None, **params: Any) -> dict[str, Any]:
    """Run a tool headless: map every selected host in process, then reduce.

    ``source`` is a host file path/URL, a list of them, a session or run
    directory, a :class:`~xprof_core.storage.logdir.Run`, or ``(logdir, run_name)``;
    ``hosts`` restricts to those host names. Extra keyword arguments are the
    tool's parameters (as in XProf's ``/data`` query string).
    """
    from xprof_core.execute.result import ToolResult

    return ToolResult(reduce_partials(tool, _map_all(tool, source, hosts, params), params))


__all__ = ["map_host", "reduce_partials", "resolve_hosts", "run_tool", "run_tool_json"]
