"""A slow, obviously-correct reference for ``xprof_core._fast.decoder``.

Everything here goes through protobuf's own parser (``XSpace.FromString``) and plain Python loops, so it can
be trusted as the meaning of an XSpace and used to check the fast decoder field by field.

Some of the fast decoder's columns are byte positions in the input buffer, which protobuf cannot know. The
reference therefore speaks a *content form*, and :func:`normalize_columns` / :func:`normalize_event_stats`
turn the fast decoder's output into that same form by reading the positions back out of the buffer:

* ``events["offset"]``: the parsed ``XEvent`` message of each event instead of the offset of its length
  prefix (the fast decoder's offset is re-parsed with ``XEvent.FromString``).
* ``stats["value"]`` and the event stats' ``value``: a list of Python objects; for kinds ``str`` and
  ``bytes`` the ``str`` / ``bytes`` value itself instead of its byte offset, for the other kinds the int64
  bits as a Python ``int``.
* ``event_metadata["metadata"]``: the ``bytes`` value instead of ``(offset, length)``. proto3 ``bytes``
  fields have no presence, so an absent field (``None`` in the fast decoder) and an empty one are both
  ``b""``.

Protobuf's map containers do not iterate in wire order (upb keeps maps in hash tables), so the content form
orders ``event_metadata`` and ``stat_metadata`` by ``(plane, id)`` instead of wire order, and the eager
``stats`` table by owner: per plane, the plane's own stats, then the stats of each of its event metadata
in that ``(plane, id)`` order; the stats of one owner stay in wire order. Everything else (planes, lines,
events, aggregated events, event stats, errors, warnings, hostnames) is in wire order, as in the fast
decoder.

All other columns have exactly the keys, dtypes and values of ``decode_columns``.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any

import numpy as np
from helpers import read_varint

from xprof_core.protos import xplane_pb2

Buffer = bytes | bytearray | memoryview | mmap.mmap
Columns = dict[str, Any]
StatValue = int | str | bytes

# Stat value kinds, in the order of XStat's oneof (as in decoder.pyx).
KIND_NONE = 0
KIND_DOUBLE = 1
KIND_UINT64 = 2
KIND_INT64 = 3
KIND_STR = 4
KIND_BYTES = 5
KIND_REF = 6

# Owners of the eager stats table.
OWNER_PLANE = 0
OWNER_EVENT_METADATA = 1

_KIND_OF_ONEOF = {
    None: KIND_NONE,
    "double_value": KIND_DOUBLE,
    "uint64_value": KIND_UINT64,
    "int64_value": KIND_INT64,
    "str_value": KIND_STR,
    "bytes_value": KIND_BYTES,
    "ref_value": KIND_REF,
}


def wrap_int64(x: int) -> int:
    """``x`` reduced to a signed 64-bit integer, two's complement wraparound."""
    return (x + 2**63) % 2**64 - 2**63


def double_bits(x: float) -> int:
    """The IEEE-754 bits of ``x`` as a signed 64-bit integer."""
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def stat_row(stat: xplane_pb2.XStat) -> tuple[int, int, StatValue, int]:
    """``(metadata_id, kind, value, length)`` of one stat, in content form."""
    which = stat.WhichOneof("value")
    kind = _KIND_OF_ONEOF[which]
    if kind == KIND_NONE:
        return stat.metadata_id, kind, 0, 0
    if kind == KIND_DOUBLE:
        return stat.metadata_id, kind, double_bits(stat.double_value), 0
    if kind == KIND_STR:
        return stat.metadata_id, kind, stat.str_value, len(stat.str_value.encode("utf-8"))
    if kind == KIND_BYTES:
        return stat.metadata_id, kind, stat.bytes_value, len(stat.bytes_value)
    return stat.metadata_id, kind, wrap_int64(getattr(stat, which)), 0


def parse_space(buf: Buffer) -> xplane_pb2.XSpace:
    """The XSpace in ``buf``, parsed by protobuf."""
    return xplane_pb2.XSpace.FromString(bytes(buf))


def _i64(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _i32(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def _u8(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.uint8)


def decode_reference(buf: Buffer) -> Columns:
    """What ``decode_columns(buf)`` must return, in content form (see the module docstring)."""
    space = parse_space(buf)
    ev_metadata_id: list[int] = []
    ev_start_ps: list[int] = []
    ev_duration_ps: list[int] = []
    ev_message: list[xplane_pb2.XEvent] = []
    agg_event: list[int] = []
    agg_count: list[int] = []
    lines: dict[str, list[Any]] = {
        k: []
        for k in (
            "plane",
            "id",
            "display_id",
            "name",
            "display_name",
            "timestamp_ns",
            "duration_ps",
            "event_begin",
            "event_end",
        )
    }
    planes: dict[str, list[Any]] = {k: [] for k in ("id", "name", "line_begin", "line_end")}
    em: dict[str, list[Any]] = {k: [] for k in ("plane", "id", "name", "display_name", "metadata", "child_id")}
    sm: dict[str, list[Any]] = {k: [] for k in ("plane", "id", "name", "description")}
    st: dict[str, list[Any]] = {k: [] for k in ("owner_kind", "owner", "metadata_id", "kind", "value", "length")}

    def add_stat(owner_kind: int, owner: int, stat: xplane_pb2.XStat) -> None:
        for key, value in zip(
            ("owner_kind", "owner", "metadata_id", "kind", "value", "length"),
            (owner_kind, owner, *stat_row(stat)),
            strict=True,
        ):
            st[key].append(value)

    for plane_index, plane in enumerate(space.planes):
        line_begin = len(lines["id"])
        for line in plane.lines:
            event_begin = len(ev_metadata_id)
            line_start_ps = line.timestamp_ns * 1000
            for event in line.events:
                if event.WhichOneof("data") == "num_occurrences":
                    agg_event.append(len(ev_metadata_id))
                    agg_count.append(event.num_occurrences)
                    start_ps = line_start_ps
                else:
                    start_ps = line_start_ps + event.offset_ps
                ev_metadata_id.append(event.metadata_id)
                ev_start_ps.append(wrap_int64(start_ps))
                ev_duration_ps.append(event.duration_ps)
                ev_message.append(event)
            for key, value in (
                ("plane", plane_index),
                ("id", line.id),
                ("display_id", line.display_id),
                ("name", line.name),
                ("display_name", line.display_name),
                ("timestamp_ns", line.timestamp_ns),
                ("duration_ps", line.duration_ps),
                ("event_begin", event_begin),
                ("event_end", len(ev_metadata_id)),
            ):
                lines[key].append(value)
        planes["id"].append(plane.id)
        planes["name"].append(plane.name)
        planes["line_begin"].append(line_begin)
        planes["line_end"].append(len(lines["id"]))

        for stat in plane.stats:
            add_stat(OWNER_PLANE, plane_index, stat)
        for md_id in sorted(plane.event_metadata):
            md = plane.event_metadata[md_id]
            for stat in md.stats:
                add_stat(OWNER_EVENT_METADATA, len(em["id"]), stat)
            for key, value in (
                ("plane", plane_index),
                ("id", md_id),
                ("name", md.name),
                ("display_name", md.display_name),
                ("metadata", md.metadata),
                ("child_id", tuple(md.child_id)),
            ):
                em[key].append(value)
        for sm_id in sorted(plane.stat_metadata):
            smd = plane.stat_metadata[sm_id]
            for key, value in (
                ("plane", plane_index),
                ("id", sm_id),
                ("name", smd.name),
                ("description", smd.description),
            ):
                sm[key].append(value)

    return {
        "events": {
            # int32 unless an id needs more (then the decoder retries with int64 ids).
            "metadata_id": _i64(ev_metadata_id)
            if any(not -(2**31) <= i < 2**31 for i in ev_metadata_id)
            else np.asarray(ev_metadata_id, dtype=np.int32),
            "start_ps": _i64(ev_start_ps),
            "duration_ps": _i64(ev_duration_ps),
            "offset": ev_message,
            "has_stats": np.asarray([len(e.stats) > 0 for e in ev_message], dtype=np.uint8),
        },
        "aggregated": {"event": _i64(agg_event), "num_occurrences": _i64(agg_count)},
        "lines": {
            "plane": _i32(lines["plane"]),
            **{k: _i64(lines[k]) for k in ("id", "display_id")},
            "name": lines["name"],
            "display_name": lines["display_name"],
            **{k: _i64(lines[k]) for k in ("timestamp_ns", "duration_ps", "event_begin", "event_end")},
        },
        "planes": {
            "id": _i64(planes["id"]),
            "name": planes["name"],
            "line_begin": _i64(planes["line_begin"]),
            "line_end": _i64(planes["line_end"]),
        },
        "event_metadata": {
            "plane": _i32(em["plane"]),
            "id": _i64(em["id"]),
            "name": em["name"],
            "display_name": em["display_name"],
            "metadata": em["metadata"],
            "child_id": em["child_id"],
        },
        "stat_metadata": {
            "plane": _i32(sm["plane"]),
            "id": _i64(sm["id"]),
            "name": sm["name"],
            "description": sm["description"],
        },
        "stats": {
            "owner_kind": _u8(st["owner_kind"]),
            "owner": _i64(st["owner"]),
            "metadata_id": _i64(st["metadata_id"]),
            "kind": _u8(st["kind"]),
            "value": st["value"],
            "length": _i64(st["length"]),
        },
        "errors": list(space.errors),
        "warnings": list(space.warnings),
        "hostnames": list(space.hostnames),
    }


def reference_event_stats(buf: Buffer) -> Columns:
    """What ``gather_event_stats`` must return for every event row and no metadata filter, in content form."""
    space = parse_space(buf)
    out: dict[str, list[Any]] = {k: [] for k in ("row", "metadata_id", "kind", "value", "length")}
    row = 0
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                for stat in event.stats:
                    for key, value in zip(
                        ("row", "metadata_id", "kind", "value", "length"), (row, *stat_row(stat)), strict=True
                    ):
                        out[key].append(value)
                row += 1
    return {
        "row": _i64(out["row"]),
        "metadata_id": _i64(out["metadata_id"]),
        "kind": _u8(out["kind"]),
        "value": out["value"],
        "length": _i64(out["length"]),
    }


# --- the fast decoder's output, in content form ---


def _resolve_values(kinds: np.ndarray, values: np.ndarray, lengths: np.ndarray, data: bytes) -> list[StatValue]:
    """Stat values in content form: strings and bytes read out of ``data``, other kinds as Python ints."""
    out: list[StatValue] = []
    for kind, value, length in zip(kinds.tolist(), values.tolist(), lengths.tolist(), strict=True):
        if kind in (KIND_STR, KIND_BYTES):
            payload = data[value : value + length]
            assert len(payload) == length, f"string stat at {value}+{length} runs past the buffer"
            out.append(payload.decode("utf-8") if kind == KIND_STR else payload)
        else:
            out.append(value)
    return out


def normalize_columns(columns: Columns, buf: Buffer) -> Columns:
    """``decode_columns(buf)`` output in content form, comparable with :func:`decode_reference`."""
    data = bytes(buf)

    events = dict(columns["events"])
    messages = []
    for offset in events["offset"].tolist():
        length, start = read_varint(data, offset)
        messages.append(xplane_pb2.XEvent.FromString(data[start : start + length]))
    events["offset"] = messages

    # Event metadata by (plane, id); a stable sort keeps duplicates (which protobuf would merge) visible.
    em_in = columns["event_metadata"]
    em_keys = list(zip(em_in["plane"].tolist(), em_in["id"].tolist(), strict=True))
    em_order = sorted(range(len(em_keys)), key=lambda i: em_keys[i])
    em_new_index = {old: new for new, old in enumerate(em_order)}
    em = {
        key: (value[em_order] if isinstance(value, np.ndarray) else [value[i] for i in em_order])
        for key, value in em_in.items()
    }
    em["metadata"] = [b"" if m is None else data[m[0] : m[0] + m[1]] for m in em["metadata"]]

    sm_in = columns["stat_metadata"]
    sm_keys = list(zip(sm_in["plane"].tolist(), sm_in["id"].tolist(), strict=True))
    sm_order = sorted(range(len(sm_keys)), key=lambda i: sm_keys[i])
    sm = {
        key: (value[sm_order] if isinstance(value, np.ndarray) else [value[i] for i in sm_order])
        for key, value in sm_in.items()
    }

    # Eager stats by owner: (plane, plane stats first, then event metadata in (plane, id) order).
    st_in = columns["stats"]
    owner_kind = st_in["owner_kind"].tolist()
    owner = st_in["owner"].tolist()
    em_plane = em_in["plane"].tolist()
    new_owner = [o if k == OWNER_PLANE else em_new_index[o] for k, o in zip(owner_kind, owner, strict=True)]
    sort_keys = [
        (o, k, 0) if k == OWNER_PLANE else (em_plane[old], k, o)
        for k, o, old in zip(owner_kind, new_owner, owner, strict=True)
    ]
    st_order = sorted(range(len(sort_keys)), key=lambda i: sort_keys[i])
    stats = {key: value[st_order] for key, value in st_in.items()}
    stats["owner"] = np.asarray([new_owner[i] for i in st_order], dtype=st_in["owner"].dtype)
    stats["value"] = _resolve_values(stats["kind"], stats["value"], stats["length"], data)

    return {
        **columns,
        "events": events,
        "event_metadata": em,
        "stat_metadata": sm,
        "stats": stats,
    }


def normalize_event_stats(stats: Columns, buf: Buffer) -> Columns:
    """``gather_event_stats`` output in content form, comparable with :func:`reference_event_stats`."""
    out = dict(stats)
    out["value"] = _resolve_values(stats["kind"], stats["value"], stats["length"], bytes(buf))
    return out
