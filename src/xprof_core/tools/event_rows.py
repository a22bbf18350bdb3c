"""Event rows of an XSpace as the tools use them: which lines are real, stats and names as numpy columns.

A *row* is an event's index in the XSpace's event columns (int64). The
helpers here work on whole arrays of rows; Python code runs per line or per
distinct value, never per event.
"""

from __future__ import annotations

import numpy as np

from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import Line, XSpace

# ---- derived lines --------------------------------------------------------------------------

# XProf's derived (synthetic) line ids: 0xdeadbeef as a signed 32-bit int and
# the 289 ids after it. Older TF profiles put "Steps", "TensorFlow Ops",
# "TensorFlow Name Scope", "XLA Ops", "XLA Modules" there.
DERIVED_LINE_MIN = -559038737
DERIVED_LINE_MAX = DERIVED_LINE_MIN + 289
DERIVED_LINE_NAMES = frozenset(
    {
        "Steps",
        "Launch Stats",
        "TensorFlow Ops",
        "TensorFlow Name Scope",
        "Framework Ops",
        "Framework Name Scope",
        "XLA Ops",
        "Async XLA Ops",
        "XLA Modules",
        "Source code",
    }
)


def host_lines(xs: XSpace) -> list[Line]:
    """The non-empty lines (threads) of the host CPU planes."""
    return [ln for p in xs.planes_of_kind(PlaneKind.HOST) for ln in p.lines if len(ln)]


def host_rows(xs: XSpace) -> np.ndarray:
    """Rows of every timed event on the host CPU planes, line by line."""
    parts = [ln.rows for ln in host_lines(xs)]
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rows[xs.is_timed[rows]]


def is_derived_line(line: Line, names: frozenset[str] = DERIVED_LINE_NAMES) -> bool:
    """Whether an XSpace line is derived: an id in XProf's derived range, or one of ``names``."""
    return DERIVED_LINE_MIN <= line.id <= DERIVED_LINE_MAX or line.name in names


# ---- stat columns ---------------------------------------------------------------------------


def string_stat(xs: XSpace, rows: np.ndarray, name: str) -> np.ndarray:
    """The string stat ``name`` of each row as an object array of str, "" where absent.

    A stat that is not a string (an integer column) reads as absent.
    """
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


def number_stat(xs: XSpace, rows: np.ndarray, name: str) -> np.ndarray:
    """A numeric stat as float64, 0 where absent (FLOPs and bytes, which may exceed int64 sums)."""
    col = xs.stat(rows, name)
    if col.values.dtype == object:
        return np.zeros(len(rows), dtype=np.float64)
    return np.where(col.present, col.values.astype(np.float64), 0.0)


# ---- factorizing ----------------------------------------------------------------------------


def factorize_first_seen(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uniques in first-seen order, int64 codes) of a 1-D object array of str.

    Hashing beats sorting here: np.unique on a million long, mostly equal
    strings spends seconds comparing common prefixes. The per-element work
    runs in C (dict.fromkeys, map over a bound method), not in Python code.
    """
    items = values.tolist()
    lookup = {v: i for i, v in enumerate(dict.fromkeys(items))}
    codes = np.fromiter(map(lookup.__getitem__, items), dtype=np.int64, count=len(items))
    uniques = np.empty(len(lookup), dtype=object)
    uniques[:] = list(lookup)
    return uniques, codes


def factorize_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted uniques, int64 codes) of a 1-D array, or of the rows of a 2-D one."""
    uniques, _, codes = factorize_sorted_with_first(values)
    return uniques, codes


def factorize_sorted_with_first(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted uniques, index of each unique's first occurrence, int64 codes) of a 1-D array or of 2-D rows."""
    if values.ndim == 1 and values.dtype.kind in "iu" and len(values) > 4096:
        # Dense small integers (metadata rows, codes): count instead of sort, O(n).
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 4 * len(values) + 65536:
            shifted = values.astype(np.int64) - lo if lo else values.astype(np.int64, copy=False)
            seen = np.zeros(hi - lo + 1, dtype=bool)
            seen[shifted] = True
            present = np.flatnonzero(seen)
            code_of = np.full(hi - lo + 1, -1, dtype=np.int64)
            code_of[present] = np.arange(len(present), dtype=np.int64)
            codes = code_of[shifted]
            first = np.full(len(present), len(codes), dtype=np.int64)
            np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))  # first occurrence of each
            return (present + lo).astype(values.dtype), first, codes
    if values.ndim == 2:
        uniques, first, codes = np.unique(values, axis=0, return_index=True, return_inverse=True)
    else:
        uniques, first, codes = np.unique(values, return_index=True, return_inverse=True)
    return uniques, first.astype(np.int64), codes.reshape(-1).astype(np.int64)


__all__ = [
    "DERIVED_LINE_MAX",
    "DERIVED_LINE_MIN",
    "DERIVED_LINE_NAMES",
    "factorize_first_seen",
    "factorize_sorted",
    "factorize_sorted_with_first",
    "host_lines",
    "host_rows",
    "is_derived_line",
    "number_stat",
    "string_stat",
    "u64_stat",
]
