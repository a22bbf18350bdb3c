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
    i64, i32 = np.int64, np.int32
    data = meta._data
    em = meta.tables.event_metadata
    # Event metadata: every plane's rows sorted by id (one sort for all planes).
    rows, md_begin, md_end = data.metadata_by_plane
    md_ids = em.id[rows].astype(i64)
    md_rows = rows.astype(i32)
    # A dense id -> row table per plane whose ids are compact enough (else the pass binary-searches).
    count = md_end - md_begin
    has = count > 0
    top = np.where(has, md_ids[np.maximum(md_end - 1, 0)] if len(md_ids) else 0, -1)
    low = np.where(has, md_ids[np.minimum(md_begin, max(len(md_ids) - 1, 0))] if len(md_ids) else 0, -1)
    dense_ok = has & (low >= 0) & (top <= 4 * count + 1024)
    dense_size = np.where(dense_ok, top + 1, 0).astype(i64)
    dense_begin = np.concatenate([[0], np.cumsum(dense_size)[:-1]]).astype(i64)
    md_dense = np.full(int(dense_size.sum()), -1, dtype=i32)
    if len(md_dense):
        plane_of = np.repeat(np.arange(len(count)), count)
        in_dense = dense_ok[plane_of]
        md_dense[dense_begin[plane_of[in_dense]] + md_ids[in_dense]] = md_rows[in_dense]
    # Stat metadata: ids, roles and interned names, grouped by plane the same way.
    sm = meta.tables.stat_metadata
    srows, st_begin, st_end = data.stat_metadata_by_plane
    st_ids = sm.id[srows].astype(i64)
    names = [sm.name[r] for r in srows.tolist()]
    role_of: dict[str, int] = {}
    code_of: dict[str, int] = {}
    for name in set(names):
        role_of[name] = ROLE.get(name, -1)
        code_of[name] = strings.add(name)
    st_roles = np.array([role_of[n] for n in names], dtype=np.int8)
    st_names = np.array([code_of[n] for n in names], dtype=i32)
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
    return {
        "md_host_category": host_cat,
        "md_ids": md_ids,
        "md_rows": md_rows,
        "md_begin": md_begin.astype(i64),
        "md_end": md_end.astype(i64),
        "md_dense": md_dense,
        "md_dense_begin": dense_begin,
        "md_dense_size": dense_size,
        "st_ids": st_ids,
        "st_roles": st_roles,
        "st_names": st_names,
        "st_begin": st_begin.astype(i64),
        "st_end": st_end.astype(i64),
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
