"""The typed tables of one decoded host: what ``decode_xspace`` produces, column by column.

Every table is a frozen dataclass of parallel columns (numpy arrays, or
Python lists for the few string columns of small tables). Row order is the
file's: planes in order, each plane's lines in order, each line's events in
order, so a plane owns a contiguous range of lines and a line a contiguous
range of events. Times are int64 picoseconds unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Stat value kinds, in the order of XStat's value oneof (as the decoder numbers them).
KIND_NONE, KIND_DOUBLE, KIND_UINT64, KIND_INT64, KIND_STR, KIND_BYTES, KIND_REF = range(7)
# Owners of the eagerly decoded stats (event stats are decoded on demand from the input bytes).
OWNER_PLANE, OWNER_EVENT_METADATA = 0, 1


@dataclass(frozen=True)
class EventTable:
    """One row per event.

    - ``metadata_id``: int32 (int64 when an id does not fit), the event's metadata id within its plane.
    - ``start_ps``: int64 absolute start, ``line.timestamp_ns * 1000 + offset_ps`` (aggregated events: the
      line's start, as they have no offset).
    - ``duration_ps``: int64.
    - ``offset``: uint32 (int64 for inputs of 4 GiB and more), where the event's length prefix starts in the
      input bytes; event stats are decoded from there on demand.
    - ``has_stats``: bool, whether the event carries stats of its own.
    """

    metadata_id: np.ndarray
    start_ps: np.ndarray
    duration_ps: np.ndarray
    offset: np.ndarray
    has_stats: np.ndarray

    def __len__(self) -> int:
        return len(self.start_ps)


@dataclass(frozen=True)
class AggregatedEventTable:
    """Events that carry ``num_occurrences`` instead of a start: ``event`` (int64 row), ``num_occurrences``."""

    event: np.ndarray
    num_occurrences: np.ndarray

    def __len__(self) -> int:
        return len(self.event)


@dataclass(frozen=True)
class LineTable:
    """One row per line (a thread or a stream): its plane (int32 index), ids, names, start
    (``timestamp_ns``, int64 ns), ``duration_ps`` and its event rows ``[event_begin, event_end)``."""

    plane: np.ndarray
    id: np.ndarray
    display_id: np.ndarray
    name: list[str]
    display_name: list[str]
    timestamp_ns: np.ndarray
    duration_ps: np.ndarray
    event_begin: np.ndarray
    event_end: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True)
class PlaneTable:
    """One row per plane: ``id``, ``name`` and its line rows ``[line_begin, line_end)``."""

    id: np.ndarray
    name: list[str]
    line_begin: np.ndarray
    line_end: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True)
class MetadataTable:
    """One row per event-metadata entry of every plane (rows of a plane in file order; a repeated id is
    resolved by :class:`~xprof_core.model.xspace.Plane`, the last one winning as in protobuf).

    ``metadata`` is the (byte offset, length) of the entry's opaque ``metadata`` bytes in the input, or
    None; ``child_id`` the tuple of child metadata ids.
    """

    plane: np.ndarray
    id: np.ndarray
    name: list[str]
    display_name: list[str]
    metadata: list[tuple[int, int] | None]
    child_id: list[tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True)
class StatMetadataTable:
    """One row per stat-metadata entry of every plane: ``plane``, ``id``, ``name``, ``description``."""

    plane: np.ndarray
    id: np.ndarray
    name: list[str]
    description: list[str]

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True)
class StatTable:
    """The eagerly decoded stats: those of planes and of event metadata (not of events).

    ``owner_kind`` (uint8, :data:`OWNER_PLANE` or :data:`OWNER_EVENT_METADATA`) and ``owner`` (the plane
    index or the metadata row); ``metadata_id`` the stat's id in its plane; ``kind`` (uint8, ``KIND_*``);
    ``value`` the raw int64 bits (integers, double bits, the ref id, or the byte offset of a string or
    bytes value in the input) and ``length`` the byte length of a string or bytes value.
    """

    owner_kind: np.ndarray
    owner: np.ndarray
    metadata_id: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.owner)


@dataclass(frozen=True)
class XSpaceTables:
    """Every table of one decoded host, plus the XSpace's hostnames, errors and warnings."""

    events: EventTable
    aggregated: AggregatedEventTable
    lines: LineTable
    planes: PlaneTable
    event_metadata: MetadataTable
    stat_metadata: StatMetadataTable
    stats: StatTable
    hostnames: list[str]
    errors: list[str]
    warnings: list[str]

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> XSpaceTables:
        """The tables from the compiled decoder's plain column dict (``_fast.decoder.decode_columns``)."""
        return cls(
            EventTable(**columns["events"]),
            AggregatedEventTable(**columns["aggregated"]),
            LineTable(**columns["lines"]),
            PlaneTable(**columns["planes"]),
            MetadataTable(**columns["event_metadata"]),
            StatMetadataTable(**columns["stat_metadata"]),
            StatTable(**columns["stats"]),
            columns["hostnames"],
            columns["errors"],
            columns["warnings"],
        )


__all__ = [
    "KIND_BYTES",
    "KIND_DOUBLE",
    "KIND_INT64",
    "KIND_NONE",
    "KIND_REF",
    "KIND_STR",
    "KIND_UINT64",
    "OWNER_EVENT_METADATA",
    "OWNER_PLANE",
    "AggregatedEventTable",
    "EventTable",
    "LineTable",
    "MetadataTable",
    "PlaneTable",
    "StatMetadataTable",
    "StatTable",
    "XSpaceTables",
]
