"""The Cython XSpace decoder against a pure-protobuf reference, on real profiles and hand-built wire bytes.

``reference_decoder`` parses with protobuf and says what ``decode_columns`` and ``gather_event_stats`` must
return, in a *content form* where byte positions are replaced by what they point at (see its docstring).
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError

from xprof_core._fast.decoder import decode_columns, gather_event_stats
from xprof_core.errors import DecodeError
from xprof_core.model.xspace import decode_xspace
from xprof_core.protos import xplane_pb2 as pb

from conftest import JAX_DATA, NO_REAL, REAL, jax_files, real_xplane_files
from reference_decoder import (
    KIND_BYTES,
    KIND_DOUBLE,
    KIND_INT64,
    KIND_NONE,
    KIND_REF,
    KIND_STR,
    KIND_UINT64,
    OWNER_EVENT_METADATA,
    OWNER_PLANE,
    Buffer,
    Columns,
    decode_reference,
    double_bits,
    normalize_columns,
    normalize_event_stats,
    parse_space,
    reference_event_stats,
)

# --- comparison ---


def assert_same(actual: Any, expected: Any, where: str = "columns") -> None:
    """Assert that two decoder outputs are equal: same keys in the same order, same dtypes, same values."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: a {type(actual).__name__}, not a dict"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key, value in expected.items():
            assert_same(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{where}: a {type(actual).__name__}, not an ndarray"
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
        if not np.array_equal(actual, expected):
            i = int(np.flatnonzero(actual != expected)[0])
            raise AssertionError(f"{where}[{i}]: {actual[i]!r} != {expected[i]!r}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: a {type(actual).__name__}, not a list"
        assert len(actual) == len(expected), f"{where}: {len(actual)} rows != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            if type(a) is not type(e) or a != e:
                raise AssertionError(f"{where}[{i}]: {a!r} != {e!r}")
    else:
        raise TypeError(f"{where}: unexpected {type(expected).__name__} in a decoder output")


def all_event_stats(buf: Buffer, columns: Columns) -> Columns:
    """``gather_event_stats`` over every event row, with no metadata filter."""
    offsets = columns["events"]["offset"]
    return gather_event_stats(buf, offsets, np.arange(len(offsets), dtype=np.int64), np.empty(0, np.int64))


def check_against_reference(buf: Buffer) -> tuple[Columns, Columns]:
    """Decode ``buf`` with both decoders, assert they agree, and return the fast columns and event stats."""
    ours = decode_columns(buf)
    assert_same(normalize_columns(ours, buf), decode_reference(buf))
    stats = all_event_stats(buf, ours)
    assert_same(normalize_event_stats(stats, buf), reference_event_stats(buf))
    return ours, stats


def check_raw_layout(columns: Columns, size: int) -> None:
    """The byte-position columns point inside a buffer of ``size`` bytes, events in order.

    Event offsets are uint32 for inputs under 4 GiB (int64 beyond), stat values int64.
    """
    offsets = columns["events"]["offset"]
    assert offsets.dtype == (np.uint32 if size <= 0xFFFFFFFF else np.int64)
    assert np.all(np.diff(offsets) > 0), "events are not in wire order"
    assert offsets.size == 0 or (offsets[0] >= 0 and offsets[-1] < size)
    stats = columns["stats"]
    assert stats["value"].dtype == np.int64 and stats["length"].dtype == np.int64
    strings = np.isin(stats["kind"], [KIND_STR, KIND_BYTES])
    assert np.all(stats["value"][strings] >= 0)
    assert np.all(stats["value"][strings] + stats["length"][strings] <= size)
    assert np.all(stats["length"][~strings] == 0)
    for metadata in columns["event_metadata"]["metadata"]:
        assert metadata is None or (metadata[0] >= 0 and metadata[0] + metadata[1] <= size)


# --- real profiles ---


def _profile_params() -> list[Any]:
    if REAL.is_dir():
        params = [pytest.param(p, id=f"real/{p.relative_to(REAL).as_posix()}") for p in real_xplane_files()]
    else:
        params = [pytest.param(None, id="real", marks=pytest.mark.skip(reason=NO_REAL))]
    return params + [pytest.param(p, id=f"jax/{p.name}") for p in jax_files()]


PROFILES = _profile_params()


def test_profiles_found() -> None:
    """The JAX profiles are in the repository; the real ones are counted when their folder is present."""
    jax = [p for p in PROFILES if p.id.startswith("jax/")]
    assert len(jax) == 4
    if REAL.is_dir():
        assert len(PROFILES) - len(jax) >= 9


@pytest.mark.parametrize("path", PROFILES)
def test_profile_columns_match_reference(path: Path) -> None:
    buf = path.read_bytes()
    ours = decode_columns(buf)
    expected = decode_reference(buf)
    assert_same(normalize_columns(ours, buf), expected)
    check_raw_layout(ours, len(buf))
    assert len(expected["planes"]["id"]) > 0
    assert len(expected["events"]["metadata_id"]) > 0
    assert len(expected["event_metadata"]["id"]) > 0


@pytest.mark.parametrize("path", PROFILES)
def test_profile_event_stats_match_reference(path: Path) -> None:
    buf = path.read_bytes()
    stats = all_event_stats(buf, decode_columns(buf))
    expected = reference_event_stats(buf)
    assert_same(normalize_event_stats(stats, buf), expected)
    assert len(expected["row"]) > 0


@pytest.mark.parametrize("path", PROFILES)
def test_profile_event_stats_selected_rows_and_ids(path: Path) -> None:
    """``row`` is the position in ``rows`` (here every third event, backwards) and the id filter applies."""
    buf = path.read_bytes()
    offsets = decode_columns(buf)["events"]["offset"]
    everything = reference_event_stats(buf)
    wanted = [md for md, _ in Counter(everything["metadata_id"].tolist()).most_common(2)]
    rows = np.arange(0, len(offsets), 3, dtype=np.int64)[::-1].copy()
    got = gather_event_stats(buf, offsets, rows, np.asarray(wanted, dtype=np.int64))

    by_row: dict[int, list[int]] = {}
    for i, row in enumerate(everything["row"].tolist()):
        by_row.setdefault(row, []).append(i)
    keep = [
        (pos, i)
        for pos, row in enumerate(rows.tolist())
        for i in by_row.get(row, [])
        if everything["metadata_id"][i] in wanted
    ]
    expected = {
        "row": np.asarray([pos for pos, _ in keep], dtype=np.int64),
        **{key: everything[key][[i for _, i in keep]] for key in ("metadata_id", "kind")},
        "value": [everything["value"][i] for _, i in keep],
        "length": everything["length"][[i for _, i in keep]],
    }
    assert_same(normalize_event_stats(got, buf), expected)
    assert len(keep) > 0


# --- wire bytes by hand ---


def varint(value: int) -> bytes:
    """A base-128 varint; negative values as their 64-bit two's complement (ten bytes)."""
    value &= 2**64 - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    """A field's tag."""
    return varint(field << 3 | wire_type)


def f_varint(field: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return key(field, 0) + varint(value)


def f_fixed64(field: int, value: int) -> bytes:
    """A fixed64 field (wire type 1), little-endian."""
    return key(field, 1) + struct.pack("<Q", value & (2**64 - 1))


def f_len(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return key(field, 2) + varint(len(payload)) + payload


def f_group(field: int, body: bytes) -> bytes:
    """A group (wire types 3 and 4 around ``body``)."""
    return key(field, 3) + body + key(field, 4)


def f_fixed32(field: int, value: int) -> bytes:
    """A fixed32 field (wire type 5), little-endian."""
    return key(field, 5) + struct.pack("<I", value & (2**32 - 1))


# Unknown fields of every wire type, a nested group included, and the largest field number.
UNKNOWN = (
    f_varint(1000, 2**64 - 1)
    + f_fixed64(1001, 0x0123456789ABCDEF)
    + f_len(1002, b"\x08\x01not a message \xff")
    + f_fixed32(1003, 0xDEADBEEF)
    + f_group(1004, f_varint(1, 5) + f_group(7, f_len(2, b"x") + f_fixed32(3, 1)) + f_fixed64(4, 2))
    + f_varint(2**29 - 1, 1)
)

# Per message type, its own known field numbers under the wrong wire type: protobuf treats them as unknown.
WRONG_WIRE_TYPES = {
    "XSpace": f_varint(1, 5) + f_fixed32(2, 1) + f_group(3, f_varint(1, 1)) + f_fixed64(4, 1),
    "XPlane": (
        f_len(1, varint(5)) + f_varint(2, 1) + f_fixed64(3, 0) + f_varint(4, 1) + f_fixed32(5, 1) + f_group(6, b"")
    ),
    "XLine": (
        f_fixed64(1, 9)
        + f_varint(2, 1)
        + f_len(3, varint(7))
        + f_varint(4, 3)
        + f_fixed32(9, 1)
        + f_group(10, f_varint(3, 1))
        + f_varint(11, 0)
    ),
    "XEvent": f_fixed32(1, 1) + f_fixed64(2, 77) + f_group(3, b"") + f_varint(4, 1) + f_len(5, varint(3)),
    "XStat": (
        f_len(1, varint(99))
        + f_varint(2, 1)
        + f_fixed64(3, 1)
        + f_len(4, varint(1))
        + f_varint(5, 1)
        + f_fixed32(6, 1)
        + f_fixed64(7, 1)
    ),
    "XEventMetadata": (
        f_len(1, varint(99))
        + f_varint(2, 1)
        + f_varint(3, 1)
        + f_fixed32(4, 1)
        + f_varint(5, 1)
        + f_fixed64(6, 13)
        + f_fixed32(6, 14)
        + f_group(6, b"")
    ),
    "EventMetadataEntry": f_len(1, varint(99)) + f_varint(2, 1) + f_group(2, b""),
    "XStatMetadata": f_fixed64(1, 99) + f_varint(2, 1) + f_fixed64(3, 1),
    "StatMetadataEntry": f_fixed64(1, 99) + f_fixed32(2, 1),
}


def build_space(noise: Callable[[str], bytes]) -> bytes:
    """A small XSpace using every message type, with ``noise(message_type)`` around and between its fields.

    With ``noise`` returning ``b""`` it is an ordinary message. A second plane stat and a second event
    metadata follow the stat metadata on the wire, and that metadata's id sorts before the first one's.
    """

    def message(name: str, *fields: bytes) -> bytes:
        junk = noise(name)
        return junk + junk.join(fields) + junk

    def stat(*fields: bytes) -> bytes:
        return message("XStat", *fields)

    event = message(
        "XEvent",
        f_varint(1, 10),
        f_varint(2, 5),
        f_varint(3, 6),
        f_len(4, stat(f_varint(1, 2), f_len(5, "héllo".encode()))),
        f_len(4, stat(f_varint(1, 3), f_fixed64(2, double_bits(2.5)))),
    )
    aggregated = message("XEvent", f_varint(1, 4), f_varint(5, 12), f_len(4, stat(f_varint(1, 2))))
    line = message(
        "XLine",
        f_varint(1, 1),
        f_varint(10, 2),
        f_len(2, b"l"),
        f_len(11, b"L"),
        f_varint(3, 100),
        f_varint(9, 9),
        f_len(4, event),
        f_len(4, aggregated),
    )
    em_10 = message(
        "XEventMetadata",
        f_varint(1, 10),
        f_len(2, b"op"),
        f_len(4, b"Op"),
        f_len(3, b"\x00\x01"),
        f_len(5, stat(f_varint(1, 1), f_varint(7, 2))),
        f_len(6, varint(11) + varint(12)),
        f_varint(6, 13),
    )
    em_4 = message("XEventMetadata", f_len(2, b"four"), f_len(5, stat(f_varint(1, 3), f_varint(3, 44))))
    sm_2 = message("XStatMetadata", f_varint(1, 2), f_len(2, b"s"), f_len(3, b"d"))
    plane = message(
        "XPlane",
        f_varint(1, 3),
        f_len(2, b"p"),
        f_len(3, line),
        f_len(4, message("EventMetadataEntry", f_varint(1, 10), f_len(2, em_10))),
        f_len(5, message("StatMetadataEntry", f_varint(1, 2), f_len(2, sm_2))),
        f_len(6, stat(f_varint(1, 1), f_varint(4, -3))),
        f_len(4, message("EventMetadataEntry", f_varint(1, 4), f_len(2, em_4))),
        f_len(6, stat(f_varint(1, 2), f_len(6, b"\xff\x00"))),
    )
    return message(
        "XSpace",
        f_len(1, plane),
        f_len(2, b"e"),
        f_len(3, b"w"),
        f_len(4, b"h"),
        f_len(1, message("XPlane", f_varint(1, 8))),
    )


def without_offsets(columns: Columns) -> Columns:
    """Normalized columns less the events' messages, which keep their unknown fields."""
    return {**columns, "events": {k: v for k, v in columns["events"].items() if k != "offset"}}


def assert_decodes_like_clean_space(buf: bytes) -> None:
    """``buf``, a :func:`build_space` with or without noise, decodes like the plain one, with real values."""
    clean = build_space(lambda name: b"")
    clean_columns, clean_stats = check_against_reference(clean)
    ours = decode_columns(buf)
    stats = all_event_stats(buf, ours)
    normalized = normalize_columns(ours, buf)
    clean_normalized = normalize_columns(clean_columns, clean)
    assert_same(without_offsets(normalized), without_offsets(clean_normalized))
    assert_same(normalize_event_stats(stats, buf), normalize_event_stats(clean_stats, clean))
    for event in normalized["events"]["offset"]:
        event.DiscardUnknownFields()
    assert normalized["events"]["offset"] == clean_normalized["events"]["offset"]

    assert ours["planes"]["id"].tolist() == [3, 8]
    assert ours["planes"]["name"] == ["p", ""]
    assert ours["planes"]["line_begin"].tolist() == [0, 1]
    assert ours["planes"]["line_end"].tolist() == [1, 1]
    lines = ours["lines"]
    assert (lines["id"].tolist(), lines["display_id"].tolist()) == ([1], [2])
    assert (lines["name"], lines["display_name"]) == (["l"], ["L"])
    assert (lines["timestamp_ns"].tolist(), lines["duration_ps"].tolist()) == ([100], [9])
    assert (lines["event_begin"].tolist(), lines["event_end"].tolist()) == ([0], [2])
    events = ours["events"]
    assert events["metadata_id"].tolist() == [10, 4]
    assert events["start_ps"].tolist() == [100_005, 100_000]
    assert events["duration_ps"].tolist() == [6, 0]
    assert ours["aggregated"]["event"].tolist() == [1]
    assert ours["aggregated"]["num_occurrences"].tolist() == [12]
    em = normalized["event_metadata"]
    assert em["id"].tolist() == [4, 10]
    assert em["name"] == ["four", "op"]
    assert em["display_name"] == ["", "Op"]
    assert em["metadata"] == [b"", b"\x00\x01"]
    assert em["child_id"] == [(), (11, 12, 13)]
    sm = ours["stat_metadata"]
    assert (sm["id"].tolist(), sm["name"], sm["description"]) == ([2], ["s"], ["d"])
    st = normalized["stats"]
    assert st["owner_kind"].tolist() == [OWNER_PLANE, OWNER_PLANE, OWNER_EVENT_METADATA, OWNER_EVENT_METADATA]
    assert st["owner"].tolist() == [0, 0, 0, 1]
    assert st["metadata_id"].tolist() == [1, 2, 3, 1]
    assert st["kind"].tolist() == [KIND_INT64, KIND_BYTES, KIND_UINT64, KIND_REF]
    assert st["value"] == [-3, b"\xff\x00", 44, 2]
    assert st["length"].tolist() == [0, 2, 0, 0]
    ev = normalize_event_stats(stats, buf)
    assert ev["row"].tolist() == [0, 0, 1]
    assert ev["metadata_id"].tolist() == [2, 3, 2]
    assert ev["kind"].tolist() == [KIND_STR, KIND_DOUBLE, KIND_NONE]
    assert ev["value"] == ["héllo", double_bits(2.5), 0]
    assert ev["length"].tolist() == [6, 0, 0]
    assert (ours["errors"], ours["warnings"], ours["hostnames"]) == (["e"], ["w"], ["h"])


MAP_ENTRIES = ("EventMetadataEntry", "StatMetadataEntry")

NOISES: dict[str, Callable[[str], bytes]] = {
    "unknown-fields": lambda name: UNKNOWN,
    "wrong-wire-types": WRONG_WIRE_TYPES.__getitem__,
}


def test_plain_hand_built_space() -> None:
    assert_decodes_like_clean_space(build_space(lambda name: b""))


@pytest.mark.parametrize("noise", NOISES)
def test_noise_in_every_message_type(noise: str) -> None:
    """Unknown fields (every wire type, groups nested), or known field numbers under the wrong wire type."""
    buf = build_space(lambda name: b"" if name in MAP_ENTRIES else NOISES[noise](name))
    clean = build_space(lambda name: b"")
    assert len(buf) > 3 * len(clean)
    parsed = parse_space(buf)
    parsed.DiscardUnknownFields()
    assert parsed == parse_space(clean), "protobuf did not take all the noise as unknown fields"
    check_against_reference(buf)
    assert_decodes_like_clean_space(buf)


def _parse_with_pure_python_protobuf(tmp_path: Path, noisy: bytes, clean: bytes) -> str:
    """Parse both buffers with protobuf's pure-Python implementation, in a child process."""
    (tmp_path / "noisy.pb").write_bytes(noisy)
    (tmp_path / "clean.pb").write_bytes(clean)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from google.protobuf.internal import api_implementation\n"
        "from xprof_core.protos.xplane_pb2 import XSpace\n"
        "assert api_implementation.Type() == 'python', api_implementation.Type()\n"
        "noisy = XSpace.FromString(Path(sys.argv[1]).read_bytes())\n"
        "noisy.DiscardUnknownFields()\n"
        "clean = XSpace.FromString(Path(sys.argv[2]).read_bytes())\n"
        "print(noisy == clean, len(noisy.planes[0].event_metadata), len(noisy.planes[0].stat_metadata))\n"
    )
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "noisy.pb"), str(tmp_path / "clean.pb")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("noise", NOISES)
def test_noise_in_map_entries_too(noise: str, tmp_path: Path) -> None:
    """Noise inside the map entry messages as well: the entries still count, their noise is skipped.

    On the wire a map field is a repeated entry message (``key = 1``, ``value = 2``), and protobuf's
    pure-Python parser skips unknown fields inside an entry as in any message. upb, the parser behind
    ``FromString`` here, instead moves a whole entry that has unknown fields into its parent's unknown
    fields, so the entry vanishes from the map and the reference decoder cannot be the judge: the
    pure-Python parser is, in a child process.
    """
    buf = build_space(NOISES[noise])
    clean = build_space(lambda name: b"")
    assert _parse_with_pure_python_protobuf(tmp_path, buf, clean) == "True 2 1"
    assert_decodes_like_clean_space(buf)


def test_num_occurrences_events_are_aggregated_at_the_line_start() -> None:
    space = pb.XSpace(
        planes=[
            pb.XPlane(
                lines=[
                    pb.XLine(
                        id=1,
                        timestamp_ns=1_000,
                        events=[
                            pb.XEvent(metadata_id=1, offset_ps=5, duration_ps=3),
                            pb.XEvent(metadata_id=2, num_occurrences=7),
                            pb.XEvent(metadata_id=3, offset_ps=9, duration_ps=1),
                            pb.XEvent(
                                metadata_id=4, num_occurrences=0
                            ),  # set to zero is still set: a oneof has presence
                        ],
                    ),
                    pb.XLine(id=2, events=[pb.XEvent(metadata_id=5, num_occurrences=2, duration_ps=8)]),
                ]
            )
        ]
    )
    ours, _ = check_against_reference(space.SerializeToString())
    assert ours["aggregated"]["event"].tolist() == [1, 3, 4]
    assert ours["aggregated"]["num_occurrences"].tolist() == [7, 0, 2]
    assert ours["events"]["metadata_id"].tolist() == [1, 2, 3, 4, 5]
    assert ours["events"]["start_ps"].tolist() == [1_000_005, 1_000_000, 1_000_009, 1_000_000, 0]
    assert ours["events"]["duration_ps"].tolist() == [3, 0, 1, 0, 8]


def test_event_oneof_last_member_on_the_wire_wins() -> None:
    events = [
        f_varint(1, 1) + f_varint(5, 3) + f_varint(2, 40),  # count, then offset: a timed event
        f_varint(1, 2) + f_varint(2, 40) + f_varint(5, 3),  # offset, then count: aggregated
        f_varint(1, 3) + f_varint(2, 40) + f_varint(2, 50),  # the last offset
    ]
    line = f_varint(3, 7) + b"".join(f_len(4, e) for e in events)
    ours, _ = check_against_reference(f_len(1, f_len(3, line)))
    assert ours["events"]["start_ps"].tolist() == [7_040, 7_000, 7_050]
    assert ours["aggregated"]["event"].tolist() == [1]
    assert ours["aggregated"]["num_occurrences"].tolist() == [3]


def test_line_timestamp_after_its_events() -> None:
    def events() -> bytes:
        return f_len(4, pb.XEvent(metadata_id=1, offset_ps=10, duration_ps=2).SerializeToString()) + f_len(
            4, pb.XEvent(metadata_id=2, num_occurrences=4).SerializeToString()
        )

    late = f_varint(1, 7) + f_len(2, b"late") + events() + f_varint(3, 2_000) + f_varint(9, 55)
    twice = f_varint(3, 1) + events() + f_varint(3, 5)  # the last timestamp wins
    before = f_varint(3, 3) + events()
    buf = f_len(1, f_len(3, late) + f_len(3, twice) + f_len(3, before))
    ours, _ = check_against_reference(buf)
    assert ours["lines"]["timestamp_ns"].tolist() == [2_000, 5, 3]
    assert ours["lines"]["duration_ps"].tolist() == [55, 0, 0]
    assert ours["lines"]["event_begin"].tolist() == [0, 2, 4]
    assert ours["lines"]["event_end"].tolist() == [2, 4, 6]
    assert ours["events"]["start_ps"].tolist() == [2_000_010, 2_000_000, 5_010, 5_000, 3_010, 3_000]
    assert ours["aggregated"]["event"].tolist() == [1, 3, 5]


def test_start_wraps_around_like_int64() -> None:
    def wrap(x: int) -> int:
        return (x + 2**63) % 2**64 - 2**63

    lines = [
        pb.XLine(timestamp_ns=2**62, events=[pb.XEvent(offset_ps=-5)]),
        pb.XLine(timestamp_ns=-(2**63), events=[pb.XEvent(offset_ps=-1), pb.XEvent(num_occurrences=1)]),
        pb.XLine(timestamp_ns=2**63 - 1, events=[pb.XEvent(offset_ps=2**63 - 1)]),
    ]
    ours, _ = check_against_reference(pb.XSpace(planes=[pb.XPlane(lines=lines)]).SerializeToString())
    assert ours["events"]["start_ps"].tolist() == [
        wrap(2**62 * 1000 - 5),
        wrap(-(2**63) * 1000 - 1),
        wrap(-(2**63) * 1000),
        wrap((2**63 - 1) * 1000 + 2**63 - 1),
    ]
    assert ours["lines"]["timestamp_ns"].tolist() == [2**62, -(2**63), 2**63 - 1]


def test_child_id_packed_unpacked_and_mixed() -> None:
    mixed = (
        f_len(2, b"mixed")
        + f_len(6, varint(1) + varint(-2) + varint(2**40))
        + f_varint(6, 3)
        + f_len(6, b"")
        + f_varint(6, 4)
        + f_len(6, varint(5))
    )
    unpacked = f_len(2, b"unpacked") + f_varint(6, 7) + f_varint(6, -8)
    packed = pb.XEventMetadata(name="packed", child_id=[9, -10, 2**62]).SerializeToString()
    assert packed.count(key(6, 2)) == 1  # protobuf writes repeated int64 packed
    entries = [f_varint(1, 1) + f_len(2, mixed), f_varint(1, 2) + f_len(2, unpacked), f_varint(1, 3) + f_len(2, packed)]
    buf = f_len(1, b"".join(f_len(4, e) for e in entries))
    ours, _ = check_against_reference(buf)
    em = normalize_columns(ours, buf)["event_metadata"]
    assert em["name"] == ["mixed", "unpacked", "packed"]
    assert em["child_id"] == [(1, -2, 2**40, 3, 4, 5), (7, -8), (9, -10, 2**62)]


def test_stat_kinds_and_ref_values() -> None:
    neg_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_1234))[0]
    event = pb.XEvent(
        metadata_id=1,
        stats=[
            pb.XStat(metadata_id=1),
            pb.XStat(metadata_id=2, double_value=-0.0),
            pb.XStat(metadata_id=2, double_value=neg_nan),
            pb.XStat(metadata_id=3, uint64_value=2**64 - 1),
            pb.XStat(metadata_id=3, uint64_value=2**63),
            pb.XStat(metadata_id=4, int64_value=-5),
            pb.XStat(metadata_id=5, str_value="ünïcode"),
            pb.XStat(metadata_id=5, str_value=""),
            pb.XStat(metadata_id=6, bytes_value=b"\xff\x00"),
            pb.XStat(metadata_id=7, ref_value=8),
            pb.XStat(metadata_id=7, ref_value=2**64 - 1),
        ],
    ).SerializeToString()
    event += f_len(4, f_varint(1, 9) + f_len(5, b"abc") + f_varint(4, 9))  # str, then int64: int64 wins
    event += f_len(4, f_varint(1, 9) + f_varint(7, 8) + f_fixed64(2, double_bits(1.5)))  # ref, then double
    plane = pb.XPlane(
        stat_metadata={8: pb.XStatMetadata(id=8, name="ref target")},
        event_metadata={1: pb.XEventMetadata(id=1, stats=[pb.XStat(metadata_id=7, ref_value=8)])},
        stats=[pb.XStat(metadata_id=7, ref_value=8), pb.XStat(metadata_id=2, double_value=1e300)],
    ).SerializeToString()
    buf = f_len(1, plane + f_len(3, f_len(4, event)))
    ours, stats = check_against_reference(buf)

    ev = normalize_event_stats(stats, buf)
    assert ev["row"].tolist() == [0] * 13
    assert ev["metadata_id"].tolist() == [1, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7, 9, 9]
    assert ev["kind"].tolist() == [
        KIND_NONE,
        KIND_DOUBLE,
        KIND_DOUBLE,
        KIND_UINT64,
        KIND_UINT64,
        KIND_INT64,
        KIND_STR,
        KIND_STR,
        KIND_BYTES,
        KIND_REF,
        KIND_REF,
        KIND_INT64,
        KIND_DOUBLE,
    ]
    assert ev["value"] == [
        0,
        -(2**63),
        0xFFF8_0000_0000_1234 - 2**64,
        -1,
        -(2**63),
        -5,
        "ünïcode",
        "",
        b"\xff\x00",
        8,
        -1,
        9,
        double_bits(1.5),
    ]
    assert ev["length"].tolist() == [0, 0, 0, 0, 0, 0, len("ünïcode".encode()), 0, 2, 0, 0, 0, 0]
    assert stats["value"].view(np.float64)[12] == 1.5
    assert np.signbit(stats["value"].view(np.float64)[1])

    st = ours["stats"]
    assert st["owner_kind"].tolist() == [OWNER_EVENT_METADATA, OWNER_PLANE, OWNER_PLANE]
    assert st["kind"].tolist() == [KIND_REF, KIND_REF, KIND_DOUBLE]
    assert st["value"].tolist()[:2] == [8, 8]
    assert st["value"].view(np.float64)[2] == 1e300
    names = dict(zip(ours["stat_metadata"]["id"].tolist(), ours["stat_metadata"]["name"], strict=True))
    assert names[int(st["value"][0])] == "ref target"


EMPTY_INPUTS = [
    pytest.param(b"", id="bytes"),
    pytest.param(bytearray(), id="bytearray"),
    pytest.param(memoryview(b""), id="memoryview"),
    pytest.param(memoryview(bytearray()), id="memoryview-of-bytearray"),
    pytest.param(memoryview(b"xyz")[3:], id="memoryview-slice"),
]


@pytest.mark.parametrize("buf", EMPTY_INPUTS)
def test_empty_buffer_has_no_planes(buf: Buffer) -> None:
    ours, stats = check_against_reference(buf)
    assert len(ours["planes"]["id"]) == 0
    assert len(ours["lines"]["id"]) == 0
    assert len(ours["events"]["offset"]) == 0
    assert len(ours["event_metadata"]["id"]) == 0
    assert len(ours["stats"]["owner"]) == 0
    assert (ours["errors"], ours["warnings"], ours["hostnames"]) == ([], [], [])
    assert len(stats["row"]) == 0
    assert_same(ours, decode_columns(b""))


# --- input types ---


def _real_sample() -> bytes:
    return (JAX_DATA / "cpu_mlp_train.xplane.pb").read_bytes()


SAMPLES = [
    pytest.param(lambda: build_space(lambda name: b"" if name in MAP_ENTRIES else UNKNOWN), id="hand-built"),
    pytest.param(_real_sample, id="jax/cpu_mlp_train"),
]


@pytest.fixture
def as_mmap(tmp_path: Path) -> Iterator[Callable[[bytes], mmap.mmap]]:
    """Map bytes read-only from a file; every map is closed after the test."""
    maps: list[mmap.mmap] = []

    def make(data: bytes) -> mmap.mmap:
        path = tmp_path / f"space{len(maps)}.xplane.pb"
        path.write_bytes(data)
        with path.open("rb") as f:
            maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return maps[-1]

    yield make
    for m in maps:
        m.close()


@pytest.mark.parametrize("sample", SAMPLES)
def test_input_types_give_identical_results(sample: Callable[[], bytes], as_mmap: Callable[[bytes], mmap.mmap]) -> None:
    data = sample()
    expected = decode_columns(data)
    expected_stats = all_event_stats(data, expected)
    assert len(expected["events"]["offset"]) > 0 and len(expected_stats["row"]) > 0
    check_against_reference(data)
    inputs: dict[str, Buffer] = {
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "memoryview-of-bytearray": memoryview(bytearray(data)),
        "memoryview-slice": memoryview(b"\x00prefix" + data)[7:],
        "mmap": as_mmap(data),
    }
    for name, buf in inputs.items():
        columns = decode_columns(buf)
        assert_same(columns, expected, f"{name}:columns")
        assert_same(all_event_stats(buf, columns), expected_stats, f"{name}:event_stats")


# --- protobuf's corner cases: merged map values, duplicate keys, groups ---


def test_map_entry_value_fields_are_merged() -> None:
    first = f_len(2, b"a") + f_len(5, f_varint(1, 9))
    second = f_len(4, b"b")
    buf = f_len(1, f_len(4, f_varint(1, 3) + f_len(2, first) + f_len(2, second)))
    em = parse_space(buf).planes[0].event_metadata[3]
    assert (em.name, em.display_name, len(em.stats)) == ("a", "b", 1)
    check_against_reference(buf)


def test_duplicate_map_keys_last_entry_wins() -> None:
    """The raw table keeps every entry in wire order; the XSpace API resolves ids last-wins, as protobuf."""
    entries = [f_varint(1, 3) + f_len(2, f_len(2, name)) for name in (b"x", b"y")]
    buf = f_len(1, b"".join(f_len(4, e) for e in entries) + f_len(5, f_varint(1, 1)) * 2)
    assert parse_space(buf).planes[0].event_metadata[3].name == "y"
    raw = decode_columns(buf)["event_metadata"]
    assert raw["id"].tolist() == [3, 3] and raw["name"] == ["x", "y"]
    plane = decode_xspace(buf).planes[0]
    assert plane.event_metadata[3].name == "y"
    assert plane.event_name(3) == "y"


def test_mismatched_end_group_is_rejected() -> None:
    buf = f_len(1, f_varint(1, 1) + key(20, 3) + key(21, 4))
    with pytest.raises(ProtobufDecodeError):
        parse_space(buf)
    with pytest.raises(DecodeError):
        decode_columns(buf)
