"""One map task, the same way wherever it runs: a gRPC worker or the aggregator's local processes.

:func:`run_map_task` checks the URL against the logdir roots, maps the file
through the one map path (:func:`xprof_core.execute.map_host`: read into memory,
so a file truncated meanwhile is an error, not a SIGBUS) with the parameters the
tool's map reads, and encodes the partial. Failures are :class:`~xprof_core.errors.XprofError`
subclasses whose status comes from the one table in ``errors``; anything else
is a bug, raised as it is, for the caller to log with its traceback and answer
as an internal error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xprof_core.errors import StorageError, XprofError
from xprof_core.serve.partials import encode_partial
from xprof_core.storage.access import resolve_under_roots

__all__ = ["ERROR_METADATA_KEY", "MapOutput", "check_task", "run_map_task"]

#: The gRPC trailing metadata key under which a worker sends what its error was:
#: :func:`~xprof_core.errors.error_fields` as JSON (a DecodeError's offset and path among them).
ERROR_METADATA_KEY = "xprof-error-bin"


@dataclass
class MapOutput:
    """An encoded partial and what producing it took (seconds, bytes)."""

    data: bytes
    bytes_read: int = 0
    read_s: float = 0.0
    decode_s: float = 0.0
    map_s: float = 0.0
    encode_s: float = 0.0


def check_task(tool_name: str, url: str, roots: Sequence[str]) -> str:
    """Refuse an unknown tool or a URL outside ``roots`` before any work; the URL to open."""
    from xprof_core.execute.sharding import INTERNAL_TASKS
    from xprof_core.tools import get_tool

    if tool_name not in INTERNAL_TASKS:  # the tasks of a sharded host index
        get_tool(tool_name)
    return resolve_under_roots(url, roots)


def run_map_task(tool_name: str, url: str, params: Mapping[str, str], roots: Sequence[str]) -> MapOutput:
    """Map one host file under ``roots`` through the one map path (:func:`xprof_core.execute.map_host`)
    and encode the partial."""
    from xprof_core.execute import map_host
    from xprof_core.execute.sharding import INTERNAL_TASKS
    from xprof_core.tools import get_tool
    from xprof_core.tools.params import map_params

    # The tasks of one shard of a huge host take their own parameters (the shard's plan).
    wanted = dict(params) if tool_name in INTERNAL_TASKS else map_params(get_tool(tool_name), params)
    path = resolve_under_roots(url, roots)
    phases: dict[str, float] = {}
    try:
        partial = map_host(tool_name, path, wanted, phases)
    except XprofError:
        raise
    except OSError as exc:  # EIO, a stale mount...: this storage, not the request, failed
        raise StorageError(f"cannot read {url}: {exc.strerror or exc}") from exc
    t = time.perf_counter()
    data = encode_partial(partial)
    return MapOutput(
        data,
        bytes_read=int(phases.get("bytes_read", 0)),
        read_s=phases.get("read_s", 0.0),
        decode_s=phases.get("decode_s", 0.0),
        map_s=phases.get("map_s", 0.0),
        encode_s=time.perf_counter() - t,
    )
