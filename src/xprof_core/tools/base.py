"""The tool contract: map one host to a small partial, reduce partials to a result.

A tool is a module-level object satisfying :class:`Tool`, registered with
:func:`xprof_core.tools.register`. ``map`` runs on one host (anywhere: in
process or on a worker) and returns a *partial*: a dict whose values are
JSON types or numpy arrays, small compared with the host's events, carrying
``"version"``. ``reduce`` merges the partials of the selected hosts (in host
order) into the result the user sees. Both are pure functions of their
inputs, so results cache by (file identity, partial key, params, version).

What ``map`` reads is declared by ``needs``:

* ``"index"``: the host index (:mod:`xprof_core.tools.host_index`), built by
  one pass over the host and shared by every table tool: such a tool's map
  output *is* its section of the index, and the partial that travels and is
  cached is the whole index, whichever table tool asked first;
* ``"xspace"``: the decoded columns (:class:`~xprof_core.model.xspace.XSpace`),
  for tools that read events themselves (the trace viewer).

``params`` declares a tool's parameters (name, type, default, range) for the
documentation, the OpenAPI document and cache keys.

A tool that does not apply to a profile (kernel_stats on a TPU trace) returns
an empty result with a ``"reason"``, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from xprof_core.errors import ParamError

Partial = dict[str, Any]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class ToolParam:
    """One declared parameter of a tool: ``kind`` is "int", "float", "bool" or "str"."""

    name: str
    kind: str
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None


class Tool(Protocol):
    """What the registry needs from a tool."""

    name: str
    version: int
    description: str
    needs: str  # "index" or "xspace"
    params: tuple[ToolParam, ...]

    def map(self, source: Any, params: Params) -> Partial: ...

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]: ...


#: The range of an integer parameter unless a tool narrows it: what an int64 column can hold.
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def param_int(params: Params, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    """An integer parameter (query strings arrive as str), range-checked; :class:`ParamError` when not.

    Values outside ``[lo, hi]`` are refused, and always values an int64 cannot hold.
    """
    raw = params.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"parameter {key!r} must be an integer, got {str(raw)[:40]!r}") from None
    low = INT64_MIN if lo is None else max(lo, INT64_MIN)
    high = INT64_MAX if hi is None else min(hi, INT64_MAX)
    if not low <= value <= high:
        raise ParamError(f"parameter {key!r} must be within [{low}, {high}], got {str(raw)[:40]}")
    return value


def param_flag(params: Params, key: str, default: bool = False) -> bool:
    """A yes/no parameter: "1", "true", "yes", "on" (any case) are yes, "0", "false", "no", "off", "" no."""
    raw = params.get(key)
    if raw is None:
        return default
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ParamError(f"parameter {key!r} must be a yes/no flag (1 or 0), got {str(raw)[:40]!r}")


def param_float(
    params: Params, key: str, default: float | None, lo: float | None = None, hi: float | None = None
) -> float | None:
    """A finite float parameter within ``[lo, hi]``, or None when absent or empty; :class:`ParamError` when not."""
    raw = params.get(key, default)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"parameter {key!r} must be a number, got {str(raw)[:40]!r}") from None
    if not math.isfinite(value):
        raise ParamError(f"parameter {key!r} must be a finite number, got {str(raw)[:40]}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = "-inf" if lo is None else f"{lo:g}"
        high = "inf" if hi is None else f"{hi:g}"
        raise ParamError(f"parameter {key!r} must be within [{low}, {high}], got {value:g}")
    return value
