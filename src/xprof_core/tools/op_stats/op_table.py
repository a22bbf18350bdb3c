"""Per-op tables: one row per op with occurrence counts, times (int64 ps), FLOPs and bytes; how rows merge.

An :class:`Occurrences` table lists op occurrences; :func:`aggregate` sums
them per op into an :class:`OpTable`; :func:`merge_rows` merges rows with
the same key (hosts, cores, framework ops). Sums of picoseconds stay exact
in int64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Version of the op tables a host's partial carries (bump when their content changes).
VERSION = 2  # 2: kernels inside CUDA graphs under their attributed op


@dataclass
class Occurrences:
    """Op occurrences of one kind, one entry per occurrence (all arrays the same length).

    ``key`` indexes ``keys`` (one tuple of identifying strings per distinct
    op); times in ps; ``flops`` and ``bytes`` per occurrence.
    """

    keys: list[tuple[str, ...]]
    key: np.ndarray
    time_ps: np.ndarray
    self_ps: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray


@dataclass
class OpTable:
    """Per-op aggregates: one entry per op, identity columns plus int64/float64 sums."""

    ids: dict[str, list[str]]
    occurrences: np.ndarray
    total_ps: np.ndarray
    self_ps: np.ndarray
    min_ps: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.occurrences)

    def to_partial(self) -> dict[str, Any]:
        return {
            **{k: list(v) for k, v in self.ids.items()},
            "occurrences": self.occurrences,
            "total_ps": self.total_ps,
            "self_ps": self.self_ps,
            "min_ps": self.min_ps,
            "flops": self.flops,
            "bytes": self.bytes,
        }

    @classmethod
    def from_partial(cls, p: dict[str, Any], id_columns: Sequence[str]) -> OpTable:
        return cls(
            {k: [str(x) for x in p[k]] for k in id_columns},
            np.asarray(p["occurrences"], dtype=np.int64),
            np.asarray(p["total_ps"], dtype=np.int64),
            np.asarray(p["self_ps"], dtype=np.int64),
            np.asarray(p["min_ps"], dtype=np.int64),
            np.asarray(p["flops"], dtype=np.float64),
            np.asarray(p["bytes"], dtype=np.float64),
        )

    @classmethod
    def empty(cls, id_columns: Sequence[str]) -> OpTable:
        z = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=np.float64)
        return cls({k: [] for k in id_columns}, z, z.copy(), z.copy(), z.copy(), f, f.copy())


def group_reduce(
    group: np.ndarray, n: int, sums: Sequence[np.ndarray], mins: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(count, sums, mins) per group 0..n-1 of per-item arrays; one stable sort, then reduceat.

    Sums stay exact in int64 (``bincount`` would round ps totals above 2**53
    in float64); groups without items get count 0, sums 0 and mins int64 max.
    """
    count = np.bincount(group, minlength=n).astype(np.int64)
    order = np.argsort(group, kind="stable")
    present = np.flatnonzero(count)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])[present]
    out_sums, out_mins = [], []
    for values in sums:
        out = np.zeros(n, dtype=values.dtype)
        if len(order):
            out[present] = np.add.reduceat(values[order], starts)
        out_sums.append(out)
    for values in mins:
        out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        if len(order):
            out[present] = np.minimum.reduceat(values[order], starts)
        out_mins.append(out)
    return count, out_sums, out_mins


def aggregate(occ: Occurrences, id_columns: Sequence[str]) -> OpTable:
    """Per op: occurrence count, total, self and min time, FLOPs and bytes (ops without occurrences dropped)."""
    count, (total, self_ps, flops, nbytes), (min_ps,) = group_reduce(
        occ.key, len(occ.keys), (occ.time_ps, occ.self_ps, occ.flops, occ.bytes), (occ.time_ps,)
    )
    idx = np.flatnonzero(count)
    ids = {c: [occ.keys[i][j] for i in idx.tolist()] for j, c in enumerate(id_columns)}
    return OpTable(ids, count[idx], total[idx], self_ps[idx], min_ps[idx], flops[idx], nbytes[idx])


def concat_tables(tables: Sequence[OpTable], id_columns: Sequence[str]) -> OpTable:
    if not tables:
        return OpTable.empty(id_columns)
    return OpTable(
        {c: [x for t in tables for x in t.ids[c]] for c in id_columns},
        np.concatenate([t.occurrences for t in tables]),
        np.concatenate([t.total_ps for t in tables]),
        np.concatenate([t.self_ps for t in tables]),
        np.concatenate([t.min_ps for t in tables]),
        np.concatenate([t.flops for t in tables]),
        np.concatenate([t.bytes for t in tables]),
    )


def merge_rows(
    table: OpTable,
    key_columns: Sequence[str],
    id_columns: Sequence[str],
    occurrences: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None,
) -> OpTable:
    """Rows with the same key columns merged: sums, min of mins, identity of the first row.

    ``occurrences(values, group, n)`` combines the occurrence counts (default: sum).
    """
    if len(table) == 0:
        return table
    keys = list(zip(*(table.ids[c] for c in key_columns), strict=True))
    index: dict[tuple[str, ...], int] = {}
    group = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    n = len(index)
    _, (occ, total, self_ps, flops, nbytes), (min_ps, first) = group_reduce(
        group,
        n,
        (table.occurrences, table.total_ps, table.self_ps, table.flops, table.bytes),
        (table.min_ps, np.arange(len(keys), dtype=np.int64)),
    )
    if occurrences is not None:
        occ = occurrences(table.occurrences, group, n)
    ids = {c: [table.ids[c][i] for i in first.tolist()] for c in id_columns}
    return OpTable(ids, occ, total, self_ps, min_ps, flops, nbytes)


def max_occurrences(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.maximum.at(out, group, values)
    return out


HLO_IDS = ("where", "program_id", "hlo_module", "name", "category", "provenance", "expression")
FRAMEWORK_IDS = ("host_or_device", "type", "name")
HLO_KEY = ("where", "program_id", "name")
FRAMEWORK_KEY = ("host_or_device", "name")
