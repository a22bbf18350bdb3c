"""The columnar XSpace: one host's profile as numpy columns.

``decode_xspace`` turns wire bytes into an :class:`XSpace`. Events live in
flat int64 columns ordered plane by plane, line by line (so every line and
every plane owns a contiguous row range); times are absolute int64
picoseconds. Event stats are decoded on demand from the input bytes, which the
XSpace keeps alive, so decoding stays about as large as the file itself.

Typical use::

    xs = xprof_core.load("host.xplane.pb")
    gpu = xs.plane("/device:GPU:0")
    rows = xs.select(plane=r"/device:GPU", line=r"Stream", name=r"gemm")
    names = xs.event_names(rows)
    corr = xs.stat(rows, "correlation_id")   # StatColumn(values, present)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, overload

import numpy as np

import xprof_core._fast.decoder as _decoder
from xprof_core.model.planes import PlaneKind, plane_identity
from xprof_core.model.tables import (
    KIND_BYTES,
    KIND_DOUBLE,
    KIND_INT64,
    KIND_NONE,
    KIND_REF,
    KIND_STR,
    KIND_UINT64,
    OWNER_EVENT_METADATA,
    OWNER_PLANE,
    XSpaceTables,
)

Rows = np.ndarray  # int64 event row indices
Pattern = str | re.Pattern[str] | None


def _regex(pattern: Pattern) -> re.Pattern[str] | None:
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(pattern)


@dataclass(frozen=True)
class StatColumn:
    """One stat for a set of events.

    ``values[i]`` is the stat of the i-th event asked for, valid where
    ``present[i]``; elsewhere it is 0, NaN or None depending on dtype. Integer
    stats come back as int64 (uint64 as uint64), doubles as float64, strings
    (and ``ref_value`` names) as an object array of str, bytes as objects.
    """

    values: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class EventMetadata:
    """An interned event name and what every event of that name shares."""

    id: int
    name: str
    display_name: str
    stats: dict[str, Any]
    child_ids: tuple[int, ...]
    metadata: bytes


class _HostData:
    """What one decoded host holds, shared by its :class:`XSpace`, :class:`Plane` and :class:`Line` views.

    Nothing here points back at the views, so the views form no reference
    cycle: dropping the last reference to an XSpace (or to a Plane or Line
    taken from it) frees the columns at once, without waiting for the cyclic
    garbage collector. Per-plane caches live here, keyed by plane index.
    """

    def __init__(self, buffer: Any, tables: XSpaceTables) -> None:
        self.buffer = buffer  # kept alive: event stats are decoded from it on demand
        self.tables = tables
        self.plane_cache: dict[tuple[int, str], Any] = {}

    def cached(self, plane: int, key: str, make: Callable[[], Any]) -> Any:
        hit = self.plane_cache.get((plane, key), _MISSING)
        if hit is _MISSING:
            hit = self.plane_cache[(plane, key)] = make()
        return hit

    def line(self, index: int) -> Line:
        ln = self.tables.lines
        return Line(
            self,
            index,
            int(ln.plane[index]),
            int(ln.id[index]),
            int(ln.display_id[index]),
            ln.name[index],
            ln.display_name[index],
            int(ln.timestamp_ns[index]),
            int(ln.duration_ps[index]),
            int(ln.event_begin[index]),
            int(ln.event_end[index]),
        )

    @cached_property
    def metadata_by_plane(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every plane's event-metadata rows sorted by id, the last row of a repeated id kept (protobuf map
        semantics): (rows, begin, end) with plane p's rows at ``rows[begin[p]:end[p]]``. One sort for
        all planes."""
        return _group_last_by_plane(self.tables.event_metadata.plane, self.tables.event_metadata.id, self.n_planes)

    @cached_property
    def stat_metadata_by_plane(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :attr:`metadata_by_plane`, for the stat metadata."""
        return _group_last_by_plane(self.tables.stat_metadata.plane, self.tables.stat_metadata.id, self.n_planes)

    @property
    def n_planes(self) -> int:
        return len(self.tables.planes)

    @cached_property
    def owner_stat_rows(self) -> dict[tuple[int, int], np.ndarray]:
        st = self.tables.stats
        key = st.owner_kind.astype(np.int64) << 40 | st.owner
        order = np.argsort(key, kind="stable")
        uniq, starts = np.unique(key[order], return_index=True)
        bounds = np.append(starts, len(order))
        return {(int(u >> 40), int(u & ((1 << 40) - 1))): order[bounds[i] : bounds[i + 1]] for i, u in enumerate(uniq)}

    def stat_metadata(self, plane: int) -> dict[int, str]:
        def make() -> dict[int, str]:
            sm = self.tables.stat_metadata
            rows, begin, end = self.stat_metadata_by_plane
            return {int(sm.id[r]): sm.name[r] for r in rows[begin[plane] : end[plane]].tolist()}

        result: dict[int, str] = self.cached(plane, "stat_metadata", make)
        return result

    def decode_values(self, kinds: np.ndarray, values: np.ndarray, lengths: np.ndarray, plane: int) -> list[Any]:
        """Python values of raw stat cells (small tables only)."""
        buf = memoryview(self.buffer)
        names = self.stat_metadata(plane)
        out: list[Any] = []
        for k, v, n in zip(kinds.tolist(), values.tolist(), lengths.tolist(), strict=True):
            if k == KIND_DOUBLE:
                out.append(float(np.int64(v).view(np.float64)))
            elif k == KIND_UINT64:
                out.append(v & 0xFFFFFFFFFFFFFFFF)
            elif k == KIND_INT64:
                out.append(v)
            elif k == KIND_STR:
                out.append(bytes(buf[v : v + n]).decode("utf-8", "replace"))
            elif k == KIND_BYTES:
                out.append(bytes(buf[v : v + n]))
            elif k == KIND_REF:
                out.append(names.get(v & 0xFFFFFFFFFFFFFFFF, ""))
            else:
                out.append(None)
        return out

    def owner_stats(self, owner_kind: int, owner: int, plane: int) -> dict[str, Any]:
        rows = self.owner_stat_rows.get((owner_kind, owner))
        if rows is None:
            return {}
        st = self.tables.stats
        values = self.decode_values(st.kind[rows], st.value[rows], st.length[rows], plane)
        names = self.stat_metadata(plane)
        keys = [names.get(int(m), str(int(m))) for m in st.metadata_id[rows]]
        return dict(zip(keys, values, strict=True))

    def event_metadata(self, row: int) -> EventMetadata:
        em = self.tables.event_metadata
        meta = em.metadata[row]
        raw = bytes(memoryview(self.buffer)[meta[0] : meta[0] + meta[1]]) if meta else b""
        plane = int(em.plane[row])
        return EventMetadata(
            int(em.id[row]),
            em.name[row],
            em.display_name[row],
            self.owner_stats(OWNER_EVENT_METADATA, row, plane),
            tuple(em.child_id[row]),
            raw,
        )


_MISSING = object()


@dataclass(eq=False)
class Line:
    """A thread or a stream: a contiguous range of event rows."""

    _data: _HostData
    index: int
    plane_index: int
    id: int
    display_id: int
    name: str
    display_name: str
    timestamp_ns: int
    duration_ps: int
    begin: int
    end: int

    def __repr__(self) -> str:
        return f"Line({self.index}, {self.name!r}, plane={self.plane_index}, events={len(self)})"

    @property
    def plane(self) -> Plane:
        return Plane(self._data, self.plane_index)

    @property
    def rows(self) -> Rows:
        """Event rows of this line, in file order."""
        return np.arange(self.begin, self.end, dtype=np.int64)

    def __len__(self) -> int:
        return self.end - self.begin


class Plane:
    """A host, device or metadata plane with its lines and interned names.

    A light view on the decoded host: two Plane objects of the same plane
    share every cached table, and compare equal.
    """

    def __init__(self, data: _HostData, index: int) -> None:
        tables = data.tables
        self._data = data
        self.index = index
        self.id = int(tables.planes.id[index])
        self.name: str = tables.planes.name[index]
        self.line_begin = int(tables.planes.line_begin[index])
        self.line_end = int(tables.planes.line_end[index])
        identity = plane_identity(self.name)
        self.kind: PlaneKind = identity.kind
        self.device_type: str = identity.device_type  # "GPU", "TPU", ... for device planes, else ""
        self.device_index: int | None = identity.device_index  # n of /device:<TYPE>:<n>, else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plane) and other._data is self._data and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self._data), self.index))

    def __repr__(self) -> str:
        return f"Plane({self.index}, {self.name!r}, lines={len(self.lines)}, events={self.num_events})"

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        return self._data.cached(self.index, key, make)

    @cached_property
    def lines(self) -> list[Line]:
        # Cached on this view, not in the shared host data: Lines point at that data.
        return [self._data.line(i) for i in range(self.line_begin, self.line_end)]

    def line(self, name: str) -> Line:
        """The first line with this name (or display name)."""
        for ln in self.lines:
            if name in (ln.name, ln.display_name):
                return ln
        raise KeyError(f"plane {self.name!r} has no line {name!r}")

    @property
    def event_begin(self) -> int:
        ev = self._data.tables.lines.event_begin
        return int(ev[self.line_begin]) if self.line_end > self.line_begin else 0

    @property
    def event_end(self) -> int:
        ev = self._data.tables.lines.event_end
        return int(ev[self.line_end - 1]) if self.line_end > self.line_begin else 0

    @property
    def num_events(self) -> int:
        return self.event_end - self.event_begin

    @property
    def metadata_rows(self) -> np.ndarray:
        """Rows of this plane's entries in the event-metadata table, sorted by id (the last of a repeated id)."""

        def make() -> np.ndarray:
            rows, begin, end = self._data.metadata_by_plane
            return rows[begin[self.index] : end[self.index]]

        result: np.ndarray = self._cached("metadata_rows", make)
        return result

    @property
    def metadata_ids(self) -> np.ndarray:
        """Sorted event-metadata ids of this plane."""
        result: np.ndarray = self._cached(
            "metadata_ids", lambda: self._data.tables.event_metadata.id[self.metadata_rows]
        )
        return result

    @property
    def metadata_lut(self) -> np.ndarray | None:
        """Dense table: event-metadata id -> metadata row (int32, -1 absent; the last slot stands for ids past
        the end), or None when ids are negative or sparse.

        Profilers number metadata 1, 2, 3, ...: a table lookup then beats a
        binary search over millions of events.
        """

        def make() -> np.ndarray | None:
            ids = self.metadata_ids
            if len(ids) == 0 or ids[0] < 0 or ids[-1] > max(4 * len(ids), 1 << 16):
                return None
            lut = np.full(int(ids[-1]) + 2, -1, dtype=np.int32)
            lut[ids] = self.metadata_rows
            return lut

        result: np.ndarray | None = self._cached("metadata_lut", make)
        return result

    def metadata_rows_for(self, metadata_ids: np.ndarray) -> np.ndarray:
        """Global event-metadata row for each id, or -1 where the plane lacks it."""
        ids = self.metadata_ids
        if len(ids) == 0:
            return np.full(len(metadata_ids), -1, dtype=np.int64)
        lut = self.metadata_lut
        if lut is not None:
            clipped = np.clip(metadata_ids, 0, len(lut) - 1)
            rows = lut[clipped]
            if (metadata_ids < 0).any():
                rows = np.where(metadata_ids < 0, -1, rows)
            return rows
        pos = np.searchsorted(ids, metadata_ids)
        pos_c = np.minimum(pos, len(ids) - 1)
        found = ids[pos_c] == metadata_ids
        return np.where(found, self.metadata_rows[pos_c], -1)

    @property
    def event_metadata(self) -> dict[int, EventMetadata]:
        """Event metadata by id."""

        def make() -> dict[int, EventMetadata]:
            em = self._data.tables.event_metadata
            return {int(em.id[r]): self._data.event_metadata(int(r)) for r in self.metadata_rows}

        result: dict[int, EventMetadata] = self._cached("event_metadata", make)
        return result

    @property
    def stat_metadata(self) -> dict[int, str]:
        """Stat names by stat-metadata id (protobuf map semantics: the last entry wins)."""
        return self._data.stat_metadata(self.index)

    def stat_ids(self, name: str) -> np.ndarray:
        """Stat-metadata ids that carry ``name`` in this plane (usually one)."""
        return np.array(sorted(k for k, v in self.stat_metadata.items() if v == name), dtype=np.int64)

    @property
    def stats(self) -> dict[str, Any]:
        """Plane-level stats by name (device capabilities and the like)."""
        result: dict[str, Any] = self._cached(
            "stats", lambda: self._data.owner_stats(OWNER_PLANE, self.index, self.index)
        )
        return result

    def stats_by_id(self) -> dict[int, Any]:
        """Plane-level stats by stat-metadata id, named or not.

        Some planes use the id itself as data: ``/host:__ScopeRangeCallStack__``
        stores its scope tree as one stat per scope (metadata id = scope id,
        value = parent scope id), without stat metadata for most of them.
        """
        rows = self._data.owner_stat_rows.get((OWNER_PLANE, self.index))
        if rows is None:
            return {}
        st = self._data.tables.stats
        values = self._data.decode_values(st.kind[rows], st.value[rows], st.length[rows], self.index)
        return dict(zip((int(m) for m in st.metadata_id[rows]), values, strict=True))

    @property
    def device_kind(self) -> str:
        """A short hardware description from the plane's stats ("" when unknown).

        Newer profiles name the device; older GPU profiles only carry
        capability stats, from which a description is built (no vendor stat
        means NVIDIA: only AMD's plugin writes ``device_vendor``).
        """
        stats = self.stats
        for key in ("gpu_device_name", "device_type_string"):
            if stats.get(key):
                return str(stats[key])
        if "compute_cap_major" in stats:
            vendor = stats.get("device_vendor") or "NVIDIA"
            major, minor = stats["compute_cap_major"], stats.get("compute_cap_minor", 0)
            # AMD names its architectures gfx<major><minor><stepping>; the pair identifies the
            # MI300 (gfx942) and MI350 (gfx950) series, as XProf resolves it.
            gfx = {(9, 4): "gfx942", (9, 5): "gfx950"}.get((major, minor)) if vendor == "AMD" else None
            if gfx:
                return f"AMD GPU - {gfx}"
            cc = f"{major}.{minor}"
            cores = f", {stats['core_count']} cores" if "core_count" in stats else ""
            return f"{vendor} GPU (compute capability {cc}{cores})"
        return str(stats.get("device_vendor", ""))

    def event_name(self, metadata_id: int) -> str:
        md = self.event_metadata.get(int(metadata_id))
        return md.name if md is not None else ""


def _group_last_by_plane(
    plane: np.ndarray, ids: np.ndarray, n_planes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by plane and sorted by id within it, keeping the last row of a repeated (plane, id)."""
    order = np.lexsort((np.arange(len(ids)), ids, plane))
    p, i = plane[order], ids[order]
    if len(order):
        keep = np.append((p[1:] != p[:-1]) | (i[1:] != i[:-1]), True)
        order, p = order[keep], p[keep]
    planes = np.arange(n_planes)
    return order, np.searchsorted(p, planes, side="left"), np.searchsorted(p, planes, side="right")


class _Planes(Sequence["Plane"]):
    """The planes of a host, made on first use: a host of millions of (empty) planes costs nothing
    until its planes are read."""

    def __init__(self, data: _HostData) -> None:
        self._data = data
        self._made: list[Plane | None] = [None] * data.n_planes

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, i: int) -> Plane: ...
    @overload
    def __getitem__(self, i: slice) -> list[Plane]: ...
    def __getitem__(self, i: int | slice) -> Plane | list[Plane]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self._made)))]
        plane = self._made[i]
        if plane is None:
            plane = self._made[i] = Plane(self._data, i if i >= 0 else len(self._made) + i)
        return plane

    def __iter__(self) -> Iterator[Plane]:
        made, data = self._made, self._data
        for i, plane in enumerate(made):
            if plane is None:
                plane = made[i] = Plane(data, i)
            yield plane

    def __repr__(self) -> str:
        return repr(list(self))


class XSpace:
    """The decoded profile of one host. Build it with :func:`decode_xspace`.

    ``tables`` holds the typed columns (:mod:`xprof_core.model.tables`); the
    attributes below are the event columns most code reads.
    """

    def __init__(self, buffer: Any, tables: XSpaceTables) -> None:
        self._data = _HostData(buffer, tables)
        ev = tables.events
        self.tables = tables
        self.metadata_id: np.ndarray = ev.metadata_id
        self.start_ps: np.ndarray = ev.start_ps
        self.duration_ps: np.ndarray = ev.duration_ps
        self.event_offset: np.ndarray = ev.offset
        self.has_stats: np.ndarray = ev.has_stats.view(bool)  # events without stats are never read for them
        self.hostnames: list[str] = tables.hostnames
        self.errors: list[str] = tables.errors
        self.warnings: list[str] = tables.warnings
        self.planes: Sequence[Plane] = _Planes(self._data)

    @property
    def buffer(self) -> Any:
        """The input bytes (event stats are decoded from them on demand)."""
        return self._data.buffer

    # ---- sizes and tables ----

    @property
    def num_events(self) -> int:
        return len(self.start_ps)

    @property
    def num_lines(self) -> int:
        return len(self.tables.lines)

    def __repr__(self) -> str:
        return f"XSpace(planes={len(self.planes)}, lines={self.num_lines}, events={self.num_events})"

    def __iter__(self) -> Iterator[Plane]:
        return iter(self.planes)

    def planes_of_kind(self, *kinds: PlaneKind) -> list[Plane]:
        """The planes of the given kinds, in file order (found from the planes' names, without making a
        Plane of every other plane)."""
        found = [self._planes_by_kind.get(k) for k in kinds]
        rows = np.sort(np.concatenate([f for f in found if f is not None] or [np.zeros(0, np.int64)]))
        return [self.planes[i] for i in rows.tolist()]

    @cached_property
    def _planes_by_kind(self) -> dict[PlaneKind, np.ndarray]:
        names = self.tables.planes.name
        order = list(PlaneKind)
        code_of = {n: order.index(plane_identity(n).kind) for n in set(names)}
        codes = np.fromiter((code_of[n] for n in names), dtype=np.int8, count=len(names))
        return {k: np.flatnonzero(codes == i) for i, k in enumerate(order) if (codes == i).any()}

    @cached_property
    def origin_ps(self) -> int:
        """Time zero of the profile (ps): the earliest start of a timed event.

        Not the ``Task Environment`` profile start: TPU profiles and some
        host planes keep times relative to the session, not the Unix epoch.
        """
        timed = self.start_ps[self.is_timed]
        return int(timed.min()) if len(timed) else 0

    @property
    def end_ps(self) -> np.ndarray:
        """Event end times (start + duration), int64 ps."""
        return self.start_ps + self.duration_ps

    @cached_property
    def line_of_event(self) -> np.ndarray:
        """Line index of every event (int32), derived from the line row ranges."""
        lines = self.tables.lines
        counts = lines.event_end - lines.event_begin
        return np.repeat(np.arange(len(counts), dtype=np.int32), counts)

    @cached_property
    def plane_of_event(self) -> np.ndarray:
        """Plane index of every event (int32)."""
        return self.tables.lines.plane[self.line_of_event]

    @cached_property
    def num_occurrences(self) -> np.ndarray:
        """Per event: the count of an aggregated event, 0 for a timed event."""
        out = np.zeros(self.num_events, dtype=np.int64)
        agg = self.tables.aggregated
        out[agg.event] = agg.num_occurrences
        return out

    @cached_property
    def is_timed(self) -> np.ndarray:
        """True for events with a start offset, False for aggregated (count-only) events."""
        mask = np.ones(self.num_events, dtype=bool)
        mask[self.tables.aggregated.event] = False
        return mask

    @cached_property
    def event_metadata_row(self) -> np.ndarray:
        """Global event-metadata row of every event, -1 where the id is unknown."""
        out = np.full(self.num_events, -1, dtype=np.int64)
        for plane in self.planes:
            b, e = plane.event_begin, plane.event_end
            if e > b:
                out[b:e] = plane.metadata_rows_for(self.metadata_id[b:e])
        return out

    @cached_property
    def metadata_names(self) -> np.ndarray:
        """Name of every event-metadata row (object array of str), plus a last entry "" that row -1
        (an unknown id) reads."""
        names = self.tables.event_metadata.name
        arr = np.empty(len(names) + 1, dtype=object)
        arr[:-1] = names
        arr[-1] = ""
        return arr

    @cached_property
    def metadata_display_names(self) -> np.ndarray:
        """Display name (else name) of every event-metadata row, plus "" for row -1, as :attr:`metadata_names`."""
        em = self.tables.event_metadata
        arr = np.empty(len(em.name) + 1, dtype=object)
        arr[:-1] = [d or n for d, n in zip(em.display_name, em.name, strict=True)]
        arr[-1] = ""
        return arr

    def metadata_stats(self, row: int) -> dict[str, Any]:
        """The stats of the event-metadata entry at ``row`` (shared by every event of that metadata)."""
        plane = int(self.tables.event_metadata.plane[row])
        return self._data.owner_stats(OWNER_EVENT_METADATA, row, plane)

    def metadata_rows_with_stats(self) -> np.ndarray:
        """Event-metadata rows that carry stats, sorted."""
        st = self.tables.stats
        return np.unique(st.owner[st.owner_kind == OWNER_EVENT_METADATA])

    # ---- lookups ----

    def line(self, index: int) -> Line:
        """The line at ``index`` of the line table."""
        return self._data.line(index)

    @property
    def lines(self) -> list[Line]:
        return [self.line(i) for i in range(self.num_lines)]

    def plane(self, name: str) -> Plane:
        """The plane with exactly this name."""
        for p in self.planes:
            if p.name == name:
                return p
        raise KeyError(f"no plane named {name!r}; planes: {[p.name for p in self.planes]}")

    def find_planes(self, pattern: Pattern) -> list[Plane]:
        """Planes whose name matches the regex (``re.search``); all when None."""
        rx = _regex(pattern)
        return [p for p in self.planes if rx is None or rx.search(p.name)]

    def event_metadata(self, row: int) -> EventMetadata:
        """The event metadata at a global row of the metadata table."""
        return self._data.event_metadata(row)

    def event_names(self, rows: Rows | None = None, display: bool = False) -> np.ndarray:
        """Event names (object array of str) of the given rows (all when None)."""
        md = self.event_metadata_row if rows is None else self.event_metadata_row[rows]
        table = self.metadata_display_names if display else self.metadata_names
        return table[md]

    # ---- selection ----

    def select(
        self,
        plane: Pattern = None,
        line: Pattern = None,
        name: Pattern = None,
        start_ps: int | None = None,
        end_ps: int | None = None,
        timed_only: bool = False,
    ) -> Rows:
        """Rows of the events that match every given filter, in file order.

        ``plane``, ``line`` and ``name`` are regexes (``re.search``) on the
        plane name, the line name (or display name) and the event name.
        ``[start_ps, end_ps)`` keeps events that overlap the window (absolute
        ps); a zero-length event counts when its start lies inside.
        """
        prx, lrx, nrx = _regex(plane), _regex(line), _regex(name)
        ranges: list[np.ndarray] = []
        for p in self.planes:
            if prx is not None and not prx.search(p.name):
                continue
            for ln in p.lines:
                if lrx is not None and not (lrx.search(ln.name) or lrx.search(ln.display_name)):
                    continue
                if ln.end > ln.begin:
                    ranges.append(np.arange(ln.begin, ln.end, dtype=np.int64))
        rows = np.concatenate(ranges) if ranges else np.empty(0, dtype=np.int64)
        if nrx is not None and len(rows):
            names = self.metadata_names
            ok = np.fromiter((bool(nrx.search(n)) for n in names), dtype=bool, count=len(names))
            rows = rows[ok[self.event_metadata_row[rows]]]
        if start_ps is not None or end_ps is not None:
            s = self.start_ps[rows]
            keep = np.ones(len(rows), dtype=bool)
            if end_ps is not None:
                keep &= s < end_ps
            if start_ps is not None:
                keep &= (s + self.duration_ps[rows] > start_ps) | (s >= start_ps)
            rows = rows[keep]
        if timed_only:
            rows = rows[self.is_timed[rows]]
        return rows

    # ---- stats ----

    def event_stats(self, row: int) -> dict[str, Any]:
        """All stats of one event by name, its metadata's stats included (the event's win)."""
        return next(self.iter_event_stats(np.array([row], dtype=np.int64)))

    def iter_event_stats(self, rows: Rows, chunk: int = 65536) -> Iterator[dict[str, Any]]:
        """Stats dict of each event in ``rows``, decoded in chunks (one pass per chunk)."""
        rows = np.asarray(rows, dtype=np.int64)
        no_filter = np.empty(0, dtype=np.int64)
        for lo in range(0, len(rows), chunk):
            part = rows[lo : lo + chunk]
            raw = _decoder.gather_event_stats(self.buffer, self.event_offset, part, no_filter)
            bounds = np.searchsorted(raw["row"], np.arange(len(part) + 1))
            planes = self.plane_of_event[part]
            md_rows = self.event_metadata_row[part]
            for i in range(len(part)):
                plane = self.planes[int(planes[i])]
                md_row = int(md_rows[i])
                out = dict(self.metadata_stats(md_row)) if md_row >= 0 else {}
                b, e = bounds[i], bounds[i + 1]
                if e > b:
                    values = self._data.decode_values(
                        raw["kind"][b:e], raw["value"][b:e], raw["length"][b:e], plane.index
                    )
                    for m, v in zip(raw["metadata_id"][b:e].tolist(), values, strict=True):
                        out[plane.stat_metadata.get(m, str(m))] = v
                yield out

    def stat(self, rows: Rows, name: str, include_metadata: bool = True) -> StatColumn:
        """The stat ``name`` of each event in ``rows``, vectorised.

        Events that lack it on themselves fall back to their event metadata's
        stat (XProf reads both) unless ``include_metadata`` is False.
        """
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
        kinds = np.zeros(n, dtype=np.uint8)
        values = np.zeros(n, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        ref_planes = np.zeros(n, dtype=np.int32)
        if n == 0:
            return StatColumn(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
        planes = self.plane_of_event[rows]
        st = self.tables.stats
        one_plane = bool((planes == planes[0]).all())
        for pi in [int(planes[0])] if one_plane else np.unique(planes).tolist():
            plane = self.planes[pi]
            ids = plane.stat_ids(name)
            if len(ids) == 0:
                continue
            idx = np.arange(n) if one_plane else np.flatnonzero(planes == pi)
            carrying = idx[self.has_stats[rows[idx]]]  # only events that carry stats are read
            raw = _decoder.gather_event_stats(self.buffer, self.event_offset, rows[carrying], ids)
            # Repeated stats on one event: the last one wins (numpy assignment order).
            pos = carrying[raw["row"]]
            kinds[pos] = raw["kind"]
            values[pos] = raw["value"]
            lengths[pos] = raw["length"]
            ref_planes[idx] = pi
            if include_metadata:
                missing = idx[kinds[idx] == KIND_NONE]
                if len(missing):
                    md_rows = self.event_metadata_row[rows[missing]]
                    sel = (st.owner_kind == OWNER_EVENT_METADATA) & np.isin(st.metadata_id, ids)
                    srow = np.flatnonzero(sel)
                    if len(srow):
                        # Map metadata row -> its stat row (last wins).
                        lookup = np.full(len(self.tables.event_metadata) + 1, -1, dtype=np.int64)
                        lookup[st.owner[srow]] = srow
                        hit = lookup[md_rows]
                        ok = hit >= 0
                        m, h = missing[ok], hit[ok]
                        kinds[m] = st.kind[h]
                        values[m] = st.value[h]
                        lengths[m] = st.length[h]
        return self._stat_column(kinds, values, lengths, ref_planes)

    def _stat_column(
        self, kinds: np.ndarray, values: np.ndarray, lengths: np.ndarray, ref_planes: np.ndarray
    ) -> StatColumn:
        present = kinds != KIND_NONE
        found = set(np.unique(kinds[present]).tolist())
        if not found:
            return StatColumn(np.zeros(len(kinds), dtype=np.int64), present)
        if found <= {KIND_INT64, KIND_UINT64}:
            ints = np.where(present, values, 0)
            # uint64 past 2**63 shows as negative int64: keep such columns unsigned.
            if KIND_UINT64 in found and KIND_INT64 not in found and (ints < 0).any():
                return StatColumn(ints.view(np.uint64), present)
            return StatColumn(ints, present)
        if found <= {KIND_DOUBLE}:
            return StatColumn(np.where(present, values.view(np.float64), np.nan), present)
        if found <= {KIND_DOUBLE, KIND_INT64, KIND_UINT64}:
            as_float = np.where(kinds == KIND_DOUBLE, values.view(np.float64), values.astype(np.float64))
            return StatColumn(np.where(present, as_float, np.nan), present)
        # Strings, bytes, refs or a mix: Python objects, each distinct content decoded once.
        out = np.empty(len(kinds), dtype=object)
        idx = np.flatnonzero(present)
        text = (kinds == KIND_STR) | (kinds == KIND_BYTES)
        if text.sum() > 256:
            done = self._decode_text_cells(kinds, values, lengths, np.flatnonzero(text), out)
            idx = idx[~done[idx]]
        cache: dict[tuple[int, int, int, int], Any] = {}
        for i in idx.tolist():
            key = (int(kinds[i]), int(values[i]), int(lengths[i]), int(ref_planes[i]))
            if key not in cache:
                cache[key] = self._data.decode_values(kinds[i : i + 1], values[i : i + 1], lengths[i : i + 1], key[3])[
                    0
                ]
            out[i] = cache[key]
        return StatColumn(out, present)

    def _decode_text_cells(
        self, kinds: np.ndarray, values: np.ndarray, lengths: np.ndarray, idx: np.ndarray, out: np.ndarray
    ) -> np.ndarray:
        """Fill ``out[idx]`` with the str/bytes cells at ``idx``; returns a mask of the cells filled.

        Every event stores its own copy of a string, so offsets differ while
        contents repeat: cells are grouped by length, their bytes gathered into
        an (n, length) matrix (in bounded chunks), and each distinct content is
        decoded once and shared.
        """
        data = np.frombuffer(self.buffer, dtype=np.uint8)
        done = np.zeros(len(kinds), dtype=bool)
        chunk_bytes = 64 << 20
        for length in np.unique(lengths[idx]).tolist():
            sel = idx[lengths[idx] == length]
            for kind in (KIND_STR, KIND_BYTES):
                cells = sel[kinds[sel] == kind]
                if len(cells) == 0:
                    continue
                if length == 0:
                    out[cells] = "" if kind == KIND_STR else b""
                    done[cells] = True
                    continue
                step = max(1, chunk_bytes // length)
                cols = np.arange(length, dtype=np.int64)
                for lo in range(0, len(cells), step):
                    part = cells[lo : lo + step]
                    matrix = data[values[part][:, None] + cols]
                    keys = np.ascontiguousarray(matrix).view(f"V{length}").ravel()
                    uniq, inverse = np.unique(keys, return_inverse=True)
                    decoded = np.empty(len(uniq), dtype=object)
                    for j, u in enumerate(uniq.tolist()):
                        raw = bytes(u)
                        decoded[j] = raw.decode("utf-8", "replace") if kind == KIND_STR else raw
                    out[part] = decoded[inverse.ravel()]
                    done[part] = True
        return done

    # ---- export ----

    def to_pandas(self, rows: Rows | None = None, stats: Sequence[str] = ()) -> Any:
        """A pandas DataFrame of events (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install pandas") from exc
        if rows is None:
            rows = np.arange(self.num_events, dtype=np.int64)
        lines = self.tables.lines
        line_idx = self.line_of_event[rows]
        plane_names = np.array([p.name for p in self.planes] + [""], dtype=object)
        line_names = np.array([*lines.name, ""], dtype=object)
        data: dict[str, Any] = {
            "plane": plane_names[lines.plane[line_idx]] if len(rows) else [],
            "line": line_names[line_idx] if len(rows) else [],
            "name": self.event_names(rows),
            "start_ps": self.start_ps[rows],
            "duration_ps": self.duration_ps[rows],
            "num_occurrences": self.num_occurrences[rows],
        }
        for s in stats:
            col = self.stat(rows, s)
            data[s] = pd.array(col.values, dtype=object) if col.values.dtype == object else col.values
            if not col.present.all():
                data[s] = pd.Series(data[s]).where(col.present, None)
        return pd.DataFrame(data)

    # ---- SQL, Arrow and notebooks (optional features, implemented above the model) ----

    def to_arrow(self) -> dict[str, Any]:
        """Every table of this profile as a pyarrow Table, by name (``pip install 'xprof-core[arrow]'``).

        Tables: events, lines, planes, metadata, stats (long form), steps and
        ops; ``xprof_core.export.tables.SCHEMA`` documents their columns.
        """
        from xprof_core.model.features import feature

        return feature("arrow")(self)

    def sql(self, query: str, output: str = "pandas") -> Any:
        """Run a DuckDB SQL query over this profile's tables (see :meth:`to_arrow`).

        Returns a pandas DataFrame, or a pyarrow Table with ``output="arrow"``
        (``pip install 'xprof-core[sql]'``). Example::

            xs.sql("SELECT name, sum(duration_ps) / 1e6 AS us FROM events GROUP BY name ORDER BY us DESC LIMIT 10")
        """
        from xprof_core.model.features import feature

        return feature("sql")(self, query, output)

    def _repr_html_(self) -> str:
        from xprof_core.model.xspace_html import xspace_html

        return xspace_html(self)


def decode_xspace(buf: Any, progress: Callable[[int, int], None] | None = None) -> XSpace:
    """Decode XSpace wire bytes into a columnar :class:`XSpace`.

    ``buf`` is bytes, bytearray, memoryview or mmap, read in place without a
    copy and kept alive by the result. ``progress(done_bytes, total_bytes)``
    is called now and then during long decodes. Raises
    :class:`xprof_core.DecodeError` on bad input.
    """
    return XSpace(buf, XSpaceTables.from_columns(_decoder.decode_columns(buf, progress)))
