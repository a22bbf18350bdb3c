"""Event rows and their stats as numpy columns, for the analyses that read the decoded XSpace directly
(derived trace lines, launch arrows, trace search, XProf's step model, device time).

A *row* is an event's index in the XSpace's event columns (int64). Everything works on whole
arrays of rows; Python runs per line or per distinct value, never per event.
"""

from __future__ import annotations

import numpy as np

from xprof_core.index.classify import DERIVED_LINE_NAMES, is_derived_line
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import Line, XSpace


def host_lines(xs: XSpace) -> list[Line]:
    """The non-empty lines (threads) of the host CPU planes."""
    return [ln for p in xs.planes if p.kind == PlaneKind.HOST for ln in p.lines if len(ln)]


def host_rows(xs: XSpace) -> np.ndarray:
    """Rows of every timed event on the host CPU planes, line by line."""
    parts = [ln.rows for ln in host_lines(xs)]
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rows[xs.is_timed[rows]]


def derived(line: Line, names: frozenset[str] = DERIVED_LINE_NAMES) -> bool:
    """Whether a line is one of XProf's derived lines (an id in the derived range, or one of ``names``)."""
    return is_derived_line(line.id, line.name, names)


def string_stat(xs: XSpace, rows: np.ndarray, name: str) -> np.ndarray:
    """The string stat ``name`` of each row as an object array of str, "" where absent (or not a string)."""
    col = xs.stat(rows, name)
    out = np.full(len(rows), "", dtype=object)
    if col.values.dtype == object:
        out[col.present] = col.values[col.present]
    return out


def u64_stat(xs: XSpace, rows: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values as uint64, present) of an integer stat; a non-integer stat reads as absent."""
    col = xs.stat(rows, name)
    if col.values.dtype == object or col.values.dtype == np.float64:
        return np.zeros(len(rows), dtype=np.uint64), np.zeros(len(rows), dtype=bool)
    return np.where(col.present, col.values, 0).astype(np.int64).view(np.uint64), col.present


def factorize_first_seen(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uniques in first-seen order, int64 codes) of a 1-D object array of str.

    Hashing beats sorting on long, mostly equal strings; the per-element work runs in C
    (``dict.fromkeys``, ``map`` over a bound method), not in Python code.
    """
    items = values.tolist()
    lookup = {v: i for i, v in enumerate(dict.fromkeys(items))}
    codes = np.fromiter(map(lookup.__getitem__, items), dtype=np.int64, count=len(items))
    uniques = np.empty(len(lookup), dtype=object)
    uniques[:] = list(lookup)
    return uniques, codes


__all__ = ["derived", "factorize_first_seen", "host_lines", "host_rows", "string_stat", "u64_stat"]
