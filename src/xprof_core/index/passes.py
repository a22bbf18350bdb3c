"""Run the compiled index pass over one host's bytes and wrap its output for the analyses.

:func:`walk_host` decodes the planes and metadata (the decoder's
``skip_lines`` mode), classifies lines and metadata by name, builds the
lookup tables the pass needs, and walks every line once
(``_fast.hostindex.IndexPass``). The result, :class:`HostPass`, holds only
aggregates and a record per device event (and per host step marker or
launch): what the analyses in :mod:`xprof_core.index.build` turn into the
host index.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from xprof_core._fast import hostindex as _hostindex
from xprof_core._fast.decoder import decode_columns
from xprof_core.index.classify import INPUT_EVENT, LF_HOST, host_category, line_flags
from xprof_core.index.framework_ops import parse_framework_op
from xprof_core.model.tables import XSpaceTables
from xprof_core.model.xspace import XSpace

ROLES = _hostindex.ROLE_NAMES
ROLE = {name: i for i, name in enumerate(ROLES)}
# Slot classes (the pass's C_* numbers).
C_ALL, C_INPUT, C_HLO, C_FW_ALL, C_FW_NOHLO, C_TPU = range(6)
# Metadata flags.
MF_INPUT, MF_FW_NAME = 1, 2
# Record flags.
RF_TIMED, RF_CORR, RF_GROUP, RF_PROGRAM, RF_STEP_NUM, RF_STEP_NAME, RF_SCOPE, RF_STEP_NUM_OWN, RF_NODE = (
    1 << i for i in range(9)
)
# Stat kinds (model/tables.py).
_KIND_DOUBLE, _KIND_INT64, _KIND_STR = 1, 3, 4


@dataclass
class HostPass:
    """What one walk of a host's lines gives (see ``_fast/hostindex.pyx`` for the columns).

    ``meta`` is the host's planes and metadata as an XSpace without events;
    ``lines`` one entry per line (plane, flags, ids, names, counts, first and
    last times); ``slots`` the aggregates; ``records`` the per-event records;
    ``strings`` the interned strings that string codes index.
    """

    meta: XSpace
    lines: dict[str, Any]
    slots: dict[str, np.ndarray]
    records: dict[str, np.ndarray]
    strings: list[str]
    num_events: int
    spans: dict[str, np.ndarray]
    index_pass: Any  # the compiled pass, kept for the breakdown pass over the same bytes
    derived: dict[str, Any] = field(default_factory=dict)  # what analyses computed from it once (the steps)

    @cached_property
    def string_array(self) -> np.ndarray:
        out = np.empty(len(self.strings), dtype=object)
        out[:] = self.strings
        return out

    @cached_property
    def record_plane(self) -> np.ndarray:
        return self.lines["plane"][self.records["line"]] if len(self.records["line"]) else np.zeros(0, np.int32)

    def slots_of(self, cls: int) -> np.ndarray:
        """Indices of the slots of one class."""
        return np.flatnonzero(self.slots["cls"] == cls)

    def md_names(self, md_rows: np.ndarray, display: bool = False) -> np.ndarray:
        """Event names of metadata rows (-1: "")."""
        table = self.meta.metadata_display_names if display else self.meta.metadata_names
        return table[md_rows]

    def host_lines(self) -> np.ndarray:
        """Indices of the non-empty lines of the host planes, in order."""
        return np.flatnonzero(((self.lines["flags"] & LF_HOST) != 0) & (self.lines["events"] > 0))


def _plane_tables(meta: XSpace, strings: Any) -> dict[str, Any]:
    """The per-plane lookup tables and per-metadata flags and stat fallbacks of the pass."""
    md_ids, md_rows, md_begin, md_end = [], [], [], []
    dense, dense_begin, dense_size = [], [], []
    at = dense_at = 0
    for plane in meta.planes:
        ids = plane.metadata_ids.astype(np.int64)
        rows = plane.metadata_rows.astype(np.int32)
        md_ids.append(ids)
        md_rows.append(rows)
        md_begin.append(at)
        at += len(ids)
        md_end.append(at)
        if len(ids) and ids[0] >= 0 and ids[-1] <= 4 * len(ids) + 65536:
            table = np.full(int(ids[-1]) + 1, -1, dtype=np.int32)
            table[ids] = rows
            dense.append(table)
            dense_begin.append(dense_at)
            dense_size.append(len(table))
            dense_at += len(table)
        else:
            dense_begin.append(dense_at)
            dense_size.append(0)
    st_ids, st_roles, st_names, st_begin, st_end = [], [], [], [], []
    at = 0
    for plane in meta.planes:
        items = sorted(plane.stat_metadata.items())
        st_ids.append(np.array([k for k, _ in items], dtype=np.int64))
        st_roles.append(np.array([ROLE.get(v, -1) for _, v in items], dtype=np.int8))
        st_names.append(np.array([strings.add(v) for _, v in items], dtype=np.int32))
        st_begin.append(at)
        at += len(items)
        st_end.append(at)
    em = meta.tables.event_metadata
    n_md = len(em)
    md_flags = np.zeros(n_md + 1, dtype=np.uint32)
    for row, name in enumerate(em.name):
        f = 0
        if INPUT_EVENT.search(name):
            f |= MF_INPUT
        if parse_framework_op(name).kind != "unknown":
            f |= MF_FW_NAME
        md_flags[row] = f
    role_kind = np.zeros((len(ROLES), n_md + 1), dtype=np.uint8)
    role_value = np.zeros((len(ROLES), n_md + 1), dtype=np.int64)
    fallback = [ROLE[name] for name, ok in zip(ROLES, _hostindex.ROLE_METADATA_FALLBACK, strict=True) if ok]
    for row in meta.metadata_rows_with_stats().tolist():
        stats = meta.metadata_stats(row)
        for r in fallback:
            value = stats.get(ROLES[r])
            if value is None:
                continue
            if isinstance(value, str):
                role_kind[r, row], role_value[r, row] = _KIND_STR, strings.add(value)
            elif isinstance(value, float):
                role_kind[r, row], role_value[r, row] = _KIND_DOUBLE, np.float64(value).view(np.int64)
            elif isinstance(value, int):
                role_kind[r, row], role_value[r, row] = _KIND_INT64, np.uint64(value & (2**64 - 1)).view(np.int64)
    host_cat = np.full(n_md + 1, -1, dtype=np.int8)  # the last entry: unknown metadata (the default category)
    host_cat[:n_md] = [host_category(name) for name in em.name]
    i64, i32 = np.int64, np.int32
    return {
        "md_host_category": host_cat,
        "md_ids": np.concatenate(md_ids) if md_ids else np.zeros(0, i64),
        "md_rows": np.concatenate(md_rows) if md_rows else np.zeros(0, i32),
        "md_begin": np.array(md_begin, i64),
        "md_end": np.array(md_end, i64),
        "md_dense": np.concatenate(dense) if dense else np.zeros(0, i32),
        "md_dense_begin": np.array(dense_begin, i64),
        "md_dense_size": np.array(dense_size, i64),
        "st_ids": np.concatenate(st_ids) if st_ids else np.zeros(0, i64),
        "st_roles": np.concatenate(st_roles) if st_roles else np.zeros(0, np.int8),
        "st_names": np.concatenate(st_names) if st_names else np.zeros(0, i32),
        "st_begin": np.array(st_begin, i64),
        "st_end": np.array(st_end, i64),
        "md_flags": md_flags,
        "md_role_kind": role_kind,
        "md_role_value": role_value,
    }


def walk_host(buf: Any, progress: Callable[[int, int], None] | None = None) -> HostPass:
    """One walk of a host's bytes (bytes, memoryview or mmap); raises DecodeError on bad input."""
    cols = decode_columns(buf, skip_lines=True)
    meta = XSpace(buf, XSpaceTables.from_columns(cols))
    spans = cols["line_spans"]
    ids, names = _hostindex.line_headers(buf, spans["begin"], spans["end"])
    flags = np.array(line_flags(meta, spans["plane"].tolist(), ids.tolist(), names), dtype=np.uint32)
    strings = _hostindex.StringTable()
    index_pass = _hostindex.IndexPass(buf, **_plane_tables(meta, strings), strings=strings, progress=progress)
    # The pass makes few Python objects and no cycles: keep the cyclic collector out of it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        index_pass.run(spans["plane"], spans["begin"], spans["end"], flags)
    finally:
        if gc_was_enabled:
            gc.enable()
    out = index_pass.result()
    lines = out["lines"]
    lines["plane"] = spans["plane"]
    lines["flags"] = flags
    return HostPass(
        meta=meta,
        lines=lines,
        slots=out["slots"],
        records=out["records"],
        strings=strings.strings(),
        num_events=int(out["num_events"]),
        spans=spans,
        index_pass=index_pass,
    )


_PASSES: weakref.WeakKeyDictionary[XSpace, HostPass] = weakref.WeakKeyDictionary()


def host_pass_of(source: Any) -> HostPass:
    """The host pass of a HostPass (itself) or of a decoded XSpace (walked once, kept with the XSpace)."""
    if isinstance(source, HostPass):
        return source
    if isinstance(source, XSpace):
        hp = _PASSES.get(source)
        if hp is None:
            hp = _PASSES[source] = walk_host(source.buffer)
        return hp
    raise TypeError(f"expected a HostPass or an XSpace, got {type(source).__name__}")


__all__ = ["ROLE", "ROLES", "HostPass", "host_pass_of", "walk_host"]
