"""The tool contract: map one host's XSpace to a small partial, reduce partials to a result.

A tool is a module-level object satisfying :class:`Tool`. ``map`` runs on one
host (anywhere: in process or on a worker) and returns a *partial*: a dict
whose values are JSON types or numpy arrays, small compared with the host's
events, carrying ``"version"``. ``reduce`` merges the partials of the
selected hosts (in host order) into the result the user sees. Both are pure
functions of their inputs, so results cache by (file identity, tool, params,
tool version).

A tool that does not apply to a profile (kernel_stats on a TPU trace) returns
an empty result with a ``"reason"``, not an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from xprof_core.model.xspace import XSpace

Partial = dict[str, Any]
Params = Mapping[str, Any]


class Tool(Protocol):
    """What the registry needs from a tool."""

    name: str
    version: int
    description: str

    def map(self, xs: XSpace, params: Params) -> Partial: ...

    def reduce(self, partials: Sequence[Partial], params: Params) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HostInput:
    """One host handed to a map task: its display name and decoded XSpace."""

    name: str
    xspace: XSpace = field(repr=False)


def param_int(params: Params, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
    """An integer parameter (query strings arrive as str), range-checked."""
    raw = params.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {key!r} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"parameter {key!r} must be within [{lo}, {hi}], got {value}")
    return value


def param_float(params: Params, key: str, default: float | None) -> float | None:
    """A float parameter or None when absent or empty."""
    raw = params.get(key, default)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {key!r} must be a number, got {raw!r}") from None
