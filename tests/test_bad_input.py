"""The XSpace wire decoder on bad input: DecodeError with a sane offset and path, nothing else.

``decode_columns`` must never crash, hang, or allocate memory sized by a length it has not
checked against the bytes it holds. On bad input it raises ``DecodeError`` (a ``ValueError``)
whose ``offset`` is a byte offset in the input and whose ``path`` names the message being read,
e.g. ``XSpace.planes[1].lines[0].events[2]``. These tests prove it on:

* every real profile, truncated at each byte of its first 4 KiB and at 600+ spread offsets, both
  plainly (``data[:cut]``) and "deeply" (every enclosing length prefix rewritten so the cut
  lands inside the innermost message, which exercises the error paths of each message kind);
* a profile corrupted upstream, and random mutations of a small real profile (hypothesis);
* hand-built hostile messages: huge declared lengths, over-long varints, bad wire types and
  field numbers, stray and deeply nested groups, lengths that overrun their parent message.

Protobuf's own parser (upb) is the oracle for validity. Known, deliberate differences are
pinned in ``test_documented_differences_from_protobuf``.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import random
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from helpers import read_varint
from hypothesis import given, settings
from hypothesis import strategies as st

from xprof_core._fast.decoder import decode_columns, gather_event_stats
from xprof_core.errors import DecodeError
from xprof_core.protos import xplane_pb2

from conftest import CORRUPTED, NO_REAL, REAL, jax_files, need, real_xplane_files

# Every path the decoder may report (gather_event_stats uses its own "XEvent..." paths).
PATH_RE = re.compile(
    r"XSpace(\.planes\[\d+\]"
    r"(\.lines\[\d+\](\.events\[\d+\](\.stats\[\d+\])?)?"
    r"|\.event_metadata\[\d+\](\.stats\[\d+\])?"
    r"|\.stat_metadata\[\d+\]"
    r"|\.stats\[\d+\])?)?"
)

# Wire types.
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


# --- wire encoding and walking (pure Python) ---


def varint(value: int) -> bytes:
    """Encode a non-negative integer (up to 2**64 - 1) as a protobuf varint."""
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def int64_varint(value: int) -> bytes:
    """Encode an int64 as protobuf does: negatives as their two's complement, 10 bytes."""
    return varint(value & 0xFFFF_FFFF_FFFF_FFFF)


def tag(field_number: int, wire_type: int) -> bytes:
    """Encode a field key."""
    return varint(field_number << 3 | wire_type)


def ld(field_number: int, payload: bytes) -> bytes:
    """Encode a length-delimited field."""
    return tag(field_number, LEN) + varint(len(payload)) + payload


def vf(field_number: int, value: int) -> bytes:
    """Encode an int64 varint field."""
    return tag(field_number, VARINT) + int64_varint(value)


def skip_field(buf: bytes, pos: int) -> int:
    """Skip the well-formed field starting at ``pos``; return where the next one starts."""
    key, pos = read_varint(buf, pos)
    wire_type = key & 7
    if wire_type == VARINT:
        return read_varint(buf, pos)[1]
    if wire_type == I64:
        return pos + 8
    if wire_type == LEN:
        length, pos = read_varint(buf, pos)
        return pos + length
    if wire_type == I32:
        return pos + 4
    raise AssertionError(f"wire type {wire_type} in a real profile at byte {pos}")


# Sub-message fields of the schema (xplane.proto): kind -> field -> (path component, kind).
# Map fields are messages of their own (key = 1, value = 2); the decoder names the entry and
# its value alike, so the value adds no path component.
SUBMESSAGES: dict[str, dict[int, tuple[str | None, str]]] = {
    "XSpace": {1: ("planes", "XPlane")},
    "XPlane": {
        3: ("lines", "XLine"),
        4: ("event_metadata", "EventMetadataEntry"),
        5: ("stat_metadata", "StatMetadataEntry"),
        6: ("stats", "XStat"),
    },
    "XLine": {4: ("events", "XEvent")},
    "XEvent": {4: ("stats", "XStat")},
    "EventMetadataEntry": {2: (None, "XEventMetadata")},
    "XEventMetadata": {5: ("stats", "XStat")},
    "StatMetadataEntry": {2: (None, "XStatMetadata")},
}


@dataclass
class Node:
    """One message in a valid wire buffer: where its field starts and where its payload lies.

    Its sub-messages are indexed on first use (``children``), so that a sweep only pays for
    the messages its cuts fall into.
    """

    kind: str
    path: str
    tag_start: int
    len_start: int
    payload_start: int
    payload_end: int
    _children: list[Node] | None = None
    _child_starts: list[int] = field(default_factory=list)

    def children(self, buf: bytes) -> tuple[list[Node], list[int]]:
        """The sub-messages of this message and the offsets of their tags, in wire order."""
        if self._children is None:
            self._children = []
            schema = SUBMESSAGES.get(self.kind, {})
            counts: dict[int, int] = {}
            pos = self.payload_start
            while pos < self.payload_end:
                tag_start = pos
                key, pos = read_varint(buf, pos)
                sub = schema.get(key >> 3)
                if key & 7 != LEN or sub is None:
                    pos = skip_field(buf, tag_start)
                    continue
                length, payload_start = read_varint(buf, pos)
                name, kind = sub
                index = counts.get(key >> 3, 0)
                counts[key >> 3] = index + 1
                path = self.path if name is None else f"{self.path}.{name}[{index}]"
                self._children.append(Node(kind, path, tag_start, pos, payload_start, payload_start + length))
                self._child_starts.append(tag_start)
                pos = payload_start + length
            assert pos == self.payload_end, f"{self.path} overruns its length"
        return self._children, self._child_starts


@cache
def profile(path: Path) -> tuple[bytes, Node]:
    """The bytes of a real profile and the root of its (lazily indexed) message tree."""
    data = path.read_bytes()
    return data, Node("XSpace", "XSpace", 0, 0, 0, len(data))


@dataclass
class Cut:
    """A truncated buffer and what the decoder must say about it."""

    data: bytes | memoryview
    valid: bool  # the cut falls on a field boundary of the innermost message
    path: str  # the innermost message containing the cut
    min_offset: int  # where the field that the cut breaks starts, in ``data``


def innermost_chain(buf: bytes, root: Node, cut: int) -> list[Node]:
    """The messages whose payload contains ``cut``, outermost first (a payload's end excluded)."""
    chain = [root]
    node = root
    while True:
        children, starts = node.children(buf)
        i = bisect.bisect_right(starts, cut) - 1
        if i < 0 or not children[i].payload_start <= cut < children[i].payload_end:
            return chain
        node = children[i]
        chain.append(node)


def last_field_start(buf: bytes, node: Node, cut: int) -> int:
    """Start of the field of ``node`` that contains ``cut`` (``cut`` itself on a boundary)."""
    pos = node.payload_start
    children, starts = node.children(buf)
    i = bisect.bisect_right(starts, cut) - 1
    if i >= 0 and children[i].payload_end > cut:
        i -= 1  # the cut is in the tag or length of sub-message i
    if i >= 0:
        pos = children[i].payload_end  # skip the sub-messages already indexed
    while pos < node.payload_end:
        nxt = skip_field(buf, pos)
        if nxt > cut:
            return pos
        pos = nxt
    return pos


def plain_cut(buf: bytes, root: Node, cut: int) -> Cut:
    """``buf[:cut]`` (a zero-copy view): valid only between top-level fields; XSpace is blamed."""
    start = last_field_start(buf, root, cut)
    return Cut(memoryview(buf)[:cut], start == cut, "XSpace", start)


def deep_cut(buf: bytes, root: Node, cut: int) -> Cut:
    """Truncate the innermost message containing ``cut`` and re-frame every enclosing one.

    Every enclosing length prefix is rewritten, so the bytes stay well-formed down to the
    innermost message, which ends at ``cut``; fields after ``cut`` at any level are dropped.
    """
    chain = innermost_chain(buf, root, cut)
    inner = chain[-1]
    start = last_field_start(buf, inner, cut)
    view = memoryview(buf)
    pieces: list[bytes | memoryview] = [view[inner.payload_start : cut]]
    size = cut - inner.payload_start
    for parent, child in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        length = varint(size)
        prefix = view[parent.payload_start : child.len_start]  # siblings before, and the tag
        pieces += [length, prefix]
        size += len(length) + len(prefix)
    return Cut(b"".join(reversed(pieces)), start == cut, inner.path, size - (cut - start))


# --- checks ---


def decode_or_error(data: bytes | memoryview) -> DecodeError | None:
    """Decode; return the DecodeError, or None on success. Any other exception propagates."""
    try:
        decode_columns(data)
    except DecodeError as err:
        return err
    return None


def assert_sane(err: DecodeError, size: int) -> None:
    """An error's fields are usable: offset inside the input, a well-formed path, a reason."""
    assert issubclass(type(err), ValueError)
    assert 0 <= err.offset <= size, (err.offset, size)
    assert PATH_RE.fullmatch(err.path), err.path
    assert err.reason and str(err.offset) in str(err) and err.path in str(err)


def check_cut(cut: Cut, label: str) -> None:
    """The decoder accepts exactly the valid cut, and otherwise blames the right message."""
    err = decode_or_error(cut.data)
    if cut.valid:
        assert err is None, f"{label}: a cut on a field boundary was rejected: {err}"
        return
    assert err is not None, f"{label}: a cut through a field was accepted"
    assert_sane(err, len(cut.data))
    assert err.path == cut.path, f"{label}: {err}"
    assert cut.min_offset <= err.offset <= len(cut.data), f"{label}: {err} (field at {cut.min_offset})"


def protobuf_accepts(data: bytes | memoryview) -> bool:
    """Whether protobuf's parser takes ``data`` as an XSpace."""
    try:
        xplane_pb2.XSpace.FromString(bytes(data))
    except ProtobufDecodeError:
        return False
    return True


def cut_offsets(path: Path, size: int) -> list[int]:
    """Every offset of the first 4 KiB, 301 evenly spaced after it, and 300 seeded random ones."""
    head = min(size, 4096)
    cuts = set(range(head + 1))
    if size > head:
        cuts.update(head + (size - head) * i // 300 for i in range(301))
        rng = random.Random(f"truncate:{path.name}:{size}")
        cuts.update(rng.randrange(head, size) for _ in range(300))
    return sorted(cuts)


# --- the files ---


SHARED_PROFILES = real_xplane_files()  # the corrupted one left out
JAX_PROFILES = jax_files()


def real_profile_params() -> list[Any]:
    """One parameter per valid real profile; copies of an earlier file and an absent corpus skip."""
    named = [(str(p.relative_to(REAL)), p) for p in SHARED_PROFILES]
    named += [(f"jax/{p.name}", p) for p in JAX_PROFILES]
    params = []
    if not SHARED_PROFILES:
        params.append(pytest.param(None, id="shared-real", marks=pytest.mark.skip(reason=NO_REAL)))
    seen: dict[str, str] = {}
    for name, path in named:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            skip = pytest.mark.skip(reason=f"byte-identical to {seen[digest]}, tested there")
            params.append(pytest.param(path, id=name, marks=skip))
        else:
            seen[digest] = name
            params.append(pytest.param(path, id=name))
    return params


REAL_PROFILES = real_profile_params()


def smallest_profile() -> Path:
    """The smallest valid real profile available."""
    return min(SHARED_PROFILES + JAX_PROFILES, key=lambda p: p.stat().st_size)


# --- truncation of real files ---


@pytest.mark.parametrize("path", REAL_PROFILES)
def test_truncation_sweep(path: Path) -> None:
    """Each cut, plain and deep, is accepted iff it falls on a field boundary, else blamed right."""
    data, root = profile(path)
    assert decode_or_error(data) is None
    accepted = 0
    for cut in cut_offsets(path, len(data)):
        plain = plain_cut(data, root, cut)
        err = decode_or_error(plain.data)
        if plain.valid:
            assert err is None, f"cut {cut} on a top-level boundary rejected: {err}"
        else:
            assert err is not None, f"cut {cut} accepted"
            assert_sane(err, cut)
            assert err.path == "XSpace" and plain.min_offset <= err.offset <= cut, (cut, str(err))
        deep = deep_cut(data, root, cut)
        check_cut(deep, f"deep cut at {cut} in {deep.path}")
        accepted += deep.valid
    # The sweep reaches past XSpace into the inner messages and finds valid cuts there.
    assert accepted > 0


@pytest.mark.parametrize("path", REAL_PROFILES)
def test_truncations_agree_with_protobuf(path: Path) -> None:
    """On a seeded sample of the cuts, protobuf and the decoder agree on validity."""
    data, root = profile(path)
    cuts = cut_offsets(path, len(data))
    rng = random.Random(f"protobuf:{path.name}")
    head = [c for c in cuts if c <= 4096]
    tail = [c for c in cuts if c > 4096]
    sample = rng.sample(head, min(40, len(head))) + rng.sample(tail, min(16, len(tail)))
    for cut in sample:
        for kind, made in (("plain", plain_cut(data, root, cut)), ("deep", deep_cut(data, root, cut))):
            # Cutting never splits a string validly, so protobuf's UTF-8 check cannot differ here.
            ours = decode_or_error(made.data) is None
            assert protobuf_accepts(made.data) == ours == made.valid, f"{kind} cut at {cut}"


def test_corrupted_upstream_file() -> None:
    """A profile mangled by a text-mode rewrite (bytes >= 0x80 became EF BF BD) is refused.

    The first byte after the planes tag starts a varint that is now EF BF BD EF BF BD 06, a
    length of 28.5 TB for planes[0]: the decoder refuses it before reading the plane, so the
    error sits in XSpace (the length prefix of planes[0] belongs to XSpace), at byte 1.
    """
    data = need(CORRUPTED).read_bytes()
    assert data[:8] == bytes.fromhex("0aefbfbdefbfbd06")
    declared, _ = read_varint(data, 1)
    assert declared == 28_501_368_332_271 > len(data)
    with pytest.raises(DecodeError) as info:
        decode_columns(data)
    err = info.value
    assert_sane(err, len(data))
    assert (err.offset, err.path) == (1, "XSpace")
    assert "past the end" in err.reason
    assert not protobuf_accepts(data)


# --- random mutations (hypothesis) ---


def reduced_profile(path: Path) -> bytes:
    """A few KiB of a real profile: 3 planes with lines, 2 lines each, 4 events per line."""
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    small = xplane_pb2.XSpace()
    small.hostnames.extend(space.hostnames[:1])
    for plane in [p for p in space.planes if p.lines][:3]:
        out = small.planes.add(id=plane.id, name=plane.name)
        out.stats.extend(plane.stats[:3])
        for line in plane.lines[:2]:
            kept = out.lines.add()
            kept.CopyFrom(line)
            del kept.events[4:]
        used = {e.metadata_id for ln in out.lines for e in ln.events}
        for key in sorted(used):
            if key in plane.event_metadata:
                out.event_metadata[key].CopyFrom(plane.event_metadata[key])
        stat_ids = {s.metadata_id for ln in out.lines for e in ln.events for s in e.stats}
        stat_ids |= {s.metadata_id for s in out.stats}
        for key in sorted(stat_ids):
            if key in plane.stat_metadata:
                out.stat_metadata[key].CopyFrom(plane.stat_metadata[key])
    return small.SerializeToString(deterministic=True)


@cache
def mutation_base(name: str) -> bytes:
    """The valid buffers that get mutated: a reduced profile and the smallest whole one."""
    path = smallest_profile()
    return reduced_profile(path) if name == "reduced" else path.read_bytes()


Mutation = tuple[str, int, bytes]

MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "overwrite"]),
        st.integers(min_value=0, max_value=2**31),
        st.binary(min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=6,
)


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """Apply bit flips, insertions, deletions and overwritten runs, positions modulo the size."""
    buf = bytearray(data)
    for kind, position, chunk in mutations:
        pos = position % (len(buf) + 1)
        if kind == "flip":
            pos = min(pos, len(buf) - 1)
            buf[pos] ^= 1 << (chunk[0] % 8)
        elif kind == "insert":
            buf[pos:pos] = chunk
        elif kind == "delete":
            del buf[pos : pos + len(chunk)]
        else:
            buf[pos : pos + len(chunk)] = chunk
        if not buf:
            break
    return bytes(buf)


@pytest.mark.parametrize("base", ["reduced", "whole"])
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(mutations=MUTATIONS)
def test_mutations(base: str, mutations: list[Mutation]) -> None:
    """A mutated profile decodes, or raises a sane DecodeError; stats of decoded events gather.

    When protobuf accepts the bytes the decoder must too. The converse does not hold: the
    decoder accepts invalid UTF-8 in strings (with replacement), which protobuf refuses.
    """
    data = mutate(mutation_base(base), mutations)
    err = decode_or_error(data)
    if err is not None:
        assert_sane(err, len(data))
        assert not protobuf_accepts(data), f"protobuf accepts what the decoder refuses: {err}"
        return
    columns = decode_columns(data)
    offsets = columns["events"]["offset"]
    n_events = len(offsets)
    assert ((offsets >= 0) & (offsets < len(data))).all()
    # Decoding checked every event's stats, so gathering them must succeed too.
    stats = gather_event_stats(data, offsets, np.arange(n_events, dtype=np.int64), np.empty(0, dtype=np.int64))
    assert ((stats["row"] >= 0) & (stats["row"] < max(n_events, 1))).all()
    assert (stats["kind"] <= 6).all()
    is_text = (stats["kind"] == 4) | (stats["kind"] == 5)
    assert (stats["value"][is_text] + stats["length"][is_text] <= len(data)).all()


def test_mutation_bases_are_valid() -> None:
    """The mutation bases decode, agree with protobuf, and the reduced one has stats to break."""
    for name in ("reduced", "whole"):
        data = mutation_base(name)
        columns = decode_columns(data)
        space = xplane_pb2.XSpace.FromString(data)
        assert len(columns["events"]["offset"]) == sum(len(ln.events) for p in space.planes for ln in p.lines)
    reduced = mutation_base("reduced")
    assert 200 < len(reduced) < 64 * 1024
    assert len(decode_columns(reduced)["stats"]["owner"]) > 0


# --- huge declared lengths ---

HUGE = 2**40

# Each case declares a 2**40-byte field, followed by a few real bytes, at a different depth.
HUGE_LENGTH_CASES: dict[str, tuple[bytes, str]] = {
    "XSpace.planes": (tag(1, LEN) + varint(HUGE) + vf(1, 7) + ld(2, b"p"), "XSpace"),
    "XSpace.hostnames": (tag(4, LEN) + varint(HUGE) + b"host", "XSpace"),
    "XPlane.lines": (ld(1, vf(1, 1) + tag(3, LEN) + varint(HUGE) + vf(1, 2)), "XSpace.planes[0]"),
    "XPlane.event_metadata": (ld(1, tag(4, LEN) + varint(HUGE) + vf(1, 3)), "XSpace.planes[0]"),
    "XLine.events": (
        ld(1, ld(3, vf(1, 1) + tag(4, LEN) + varint(HUGE) + vf(1, 5))),
        "XSpace.planes[0].lines[0]",
    ),
    "XEvent.stats": (
        ld(1, ld(3, ld(4, vf(1, 1) + tag(4, LEN) + varint(HUGE) + vf(1, 2)))),
        "XSpace.planes[0].lines[0].events[0]",
    ),
    "XStat.str_value": (
        ld(1, ld(6, vf(1, 1) + tag(5, LEN) + varint(HUGE) + b"abc")),
        "XSpace.planes[0].stats[0]",
    ),
    "XEventMetadata.child_id": (
        ld(1, ld(4, vf(1, 1) + ld(2, tag(6, LEN) + varint(HUGE) + b"\x01\x02"))),
        "XSpace.planes[0].event_metadata[0]",
    ),
    "XSpace.planes, 2**64-1": (tag(1, LEN) + varint(2**64 - 1) + b"\x08\x01", "XSpace"),
}

# Runs in a fresh interpreter so that its peak RSS is its own. The address space is capped a
# little above what it holds after imports, so a huge allocation fails there, not on the host.
MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    from xprof_core._fast.decoder import decode_columns
    from xprof_core.errors import DecodeError

    cases = {name: bytes.fromhex(data) for name, data in json.loads(sys.stdin.read()).items()}
    for data in cases.values():  # warm up every code path once, untraced
        try:
            decode_columns(data)
        except DecodeError:
            pass
    try:
        with open("/proc/self/status") as status:
            vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        cap = (vm_kib + 512 * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, StopIteration):
        pass
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    results = {}
    for name, data in cases.items():
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        try:
            decode_columns(data)
            outcome = {"error": None}
        except DecodeError as err:
            outcome = {"error": err.reason, "offset": err.offset, "path": err.path}
        except MemoryError:
            outcome = {"error": "MemoryError"}
        outcome["seconds"] = time.perf_counter() - started
        outcome["peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
        results[name] = outcome
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"cases": results, "maxrss_growth_kib": rss_after - rss_before}))
    """
)


@pytest.fixture(scope="module")
def huge_length_probe() -> dict[str, Any]:
    """Decode every huge-length case in a subprocess; return what it measured."""
    payload = json.dumps({name: data.hex() for name, (data, _) in HUGE_LENGTH_CASES.items()})
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], input=payload, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("name", list(HUGE_LENGTH_CASES))
def test_huge_declared_length_fails_fast_without_allocating(huge_length_probe: dict[str, Any], name: str) -> None:
    """A 2**40-byte length is refused from its prefix alone: no big allocation, no waiting."""
    outcome = huge_length_probe["cases"][name]
    assert outcome["error"] == "length-delimited field runs past the end of its message", outcome
    data, path = HUGE_LENGTH_CASES[name]
    assert outcome["path"] == path
    assert 0 < outcome["offset"] < len(data)
    assert data[outcome["offset"] - 1] & 7 == LEN  # it points at the length, right after its tag
    assert outcome["peak_bytes"] < 1 << 20, outcome
    assert outcome["seconds"] < 5, outcome
    assert not protobuf_accepts(data)


def test_huge_declared_lengths_keep_rss_flat(huge_length_probe: dict[str, Any]) -> None:
    """All the huge-length cases together grow the process's peak RSS by less than 8 MiB."""
    assert huge_length_probe["maxrss_growth_kib"] < 8 * 1024


def test_gather_event_stats_rejects_hostile_offsets() -> None:
    """gather_event_stats re-reads events from offsets; bad ones raise DecodeError, fast."""
    huge = varint(HUGE) + vf(1, 1)
    no_rows = np.empty(0, dtype=np.int64)
    with pytest.raises(DecodeError) as info:
        gather_event_stats(huge, np.array([0], dtype=np.int64), np.array([0], dtype=np.int64), no_rows)
    assert (info.value.offset, info.value.path) == (0, "XEvent")
    with pytest.raises(DecodeError) as info:
        gather_event_stats(huge, np.array([len(huge)], dtype=np.int64), np.array([0], dtype=np.int64), no_rows)
    assert info.value.path == "XEvent"
    # An event whose second stat is cut short inside the event.
    event = ld(4, vf(1, 1)) + tag(4, LEN) + varint(3) + tag(2, I64) + b"\x00\x00"
    buf = varint(len(event)) + event
    with pytest.raises(DecodeError) as info:
        gather_event_stats(buf, np.array([0], dtype=np.int64), np.array([0], dtype=np.int64), no_rows)
    assert info.value.path == "XEvent(row 0).stats"
    assert info.value.offset == len(buf) - 2  # the fixed64 that has 2 of its 8 bytes
    with pytest.raises(IndexError):
        gather_event_stats(buf, np.array([0], dtype=np.int64), np.array([1], dtype=np.int64), no_rows)


# --- hand-built hostile messages ---


@dataclass
class Bad:
    """Malformed bytes and the error the decoder must raise.

    ``reason`` is a regular expression for the message; ``offset`` the exact byte offset, or
    an inclusive (first, last) range where either end of the offending tag is a fair answer.
    """

    data: bytes
    reason: str
    offset: int | tuple[int, int]
    path: str


def nested_groups(depth: int, inside: bytes = b"") -> bytes:
    """``depth`` start-group tags (field 9), ``inside``, then the matching end-group tags."""
    return tag(9, SGROUP) * depth + inside + tag(9, EGROUP) * depth


MALFORMED: dict[str, Bad] = {
    "tag without its value": Bad(tag(5, VARINT), "truncated varint", 1, "XSpace"),
    "11-byte varint": Bad(tag(5, VARINT) + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes", 1, "XSpace"),
    "11-byte varint in an event": Bad(
        ld(1, ld(3, ld(4, vf(1, 1) + tag(2, VARINT) + b"\x80" * 10 + b"\x00"))),
        "varint longer than 10 bytes",
        9,
        "XSpace.planes[0].lines[0].events[0]",
    ),
    "11-byte tag": Bad(b"\x80" * 10 + b"\x01", "varint longer than 10 bytes", 0, "XSpace"),
    "wire type 6": Bad(bytes([5 << 3 | 6]) + b"\x00", "invalid wire type", 1, "XSpace"),
    "wire type 7": Bad(bytes([5 << 3 | 7]) + b"\x00", "invalid wire type", 1, "XSpace"),
    "wire type 7 in a stat": Bad(
        ld(1, ld(6, vf(1, 1) + bytes([9 << 3 | 7]))), "invalid wire type", 7, "XSpace.planes[0].stats[0]"
    ),
    "field number 0": Bad(b"\x02\x00", "invalid field number 0", 0, "XSpace"),
    "field number 0 in a line": Bad(
        ld(1, ld(3, vf(1, 4) + b"\x00\x00")), "invalid field number 0", 6, "XSpace.planes[0].lines[0]"
    ),
    "field number 2**29 (tag 2**32)": Bad(varint(2**32) + b"\x00", r"invalid (field number|tag).*", 0, "XSpace"),
    "tag longer than 5 bytes (as upb)": Bad(
        b"\x8a" + b"\x80" * 4 + b"\x00" + varint(0), r"invalid (field number|tag).*", 0, "XSpace"
    ),
    "end-group without start": Bad(tag(5, EGROUP), "end-group tag without a start", 1, "XSpace"),
    "end-group without start in an event": Bad(
        ld(1, ld(3, ld(4, vf(1, 2) + tag(7, EGROUP)))),
        "end-group tag without a start",
        9,
        "XSpace.planes[0].lines[0].events[0]",
    ),
    "end-group closing another field": Bad(tag(5, SGROUP) + tag(6, EGROUP), r".*end-group.*", (1, 2), "XSpace"),
    "nested groups closed in the wrong order": Bad(
        ld(1, tag(5, SGROUP) + tag(6, SGROUP) + tag(5, EGROUP) + tag(6, EGROUP)),
        r".*end-group.*",
        (4, 5),
        "XSpace.planes[0]",
    ),
    "unterminated group": Bad(tag(9, SGROUP) + vf(1, 1), "unterminated group", 3, "XSpace"),
    "group closed outside its message": Bad(
        ld(1, tag(9, SGROUP)) + tag(9, EGROUP), "unterminated group", 3, "XSpace.planes[0]"
    ),
    "101 nested groups": Bad(nested_groups(101), "groups nested too deeply", 101, "XSpace"),
    "150 nested groups in a plane": Bad(
        ld(1, nested_groups(150)), "groups nested too deeply", 2 + 101 + 1, "XSpace.planes[0]"
    ),
    "100000 nested groups": Bad(nested_groups(100_000), "groups nested too deeply", 101, "XSpace"),
    "truncated fixed64": Bad(
        ld(1, ld(6, tag(2, I64) + b"\x00" * 7)), "truncated fixed64", 5, "XSpace.planes[0].stats[0]"
    ),
    "truncated fixed32": Bad(ld(1, tag(9, I32) + b"\x00" * 3), "truncated fixed32", 3, "XSpace.planes[0]"),
    "line longer than its plane, not than the buffer": Bad(
        ld(1, tag(3, LEN) + varint(5)) + vf(1, 0) * 10,
        "length-delimited field runs past the end of its message",
        3,
        "XSpace.planes[0]",
    ),
    "event longer than its line": Bad(
        ld(1, ld(3, vf(1, 1) + tag(4, LEN) + varint(4) + b"\x08")) + ld(1, vf(1, 1) * 4),
        "length-delimited field runs past the end of its message",
        7,
        "XSpace.planes[0].lines[0]",
    ),
    "stat longer than its event": Bad(
        ld(1, ld(3, ld(4, tag(4, LEN) + varint(2)) + vf(1, 1))) + vf(1, 1),
        "length-delimited field runs past the end of its message",
        7,
        "XSpace.planes[0].lines[0].events[0]",
    ),
    "string longer than its line": Bad(
        ld(1, ld(3, tag(2, LEN) + varint(3) + b"a") + ld(2, b"plane")),
        "length-delimited field runs past the end of its message",
        5,
        "XSpace.planes[0].lines[0]",
    ),
    "event-metadata value longer than its map entry": Bad(
        ld(1, ld(4, vf(1, 1) + tag(2, LEN) + varint(3) + b"\x12") + ld(2, b"plane")),
        "length-delimited field runs past the end of its message",
        7,
        "XSpace.planes[0].event_metadata[0]",
    ),
    # protobuf parses every value field of a map entry (and merges them): a bad early one counts.
    "event-metadata entry, earlier value malformed": Bad(
        ld(1, ld(4, vf(1, 7) + ld(2, tag(2, LEN) + varint(5) + b"ab") + ld(2, ld(2, b"ok")))),
        "length-delimited field runs past the end of its message",
        9,
        "XSpace.planes[0].event_metadata[0]",
    ),
    "stat-metadata entry, earlier value malformed": Bad(
        ld(1, ld(5, vf(1, 7) + ld(2, tag(2, LEN) + varint(5) + b"ab") + ld(2, ld(2, b"ok")))),
        "length-delimited field runs past the end of its message",
        9,
        "XSpace.planes[0].stat_metadata[0]",
    ),
    "varint cut by the end of its message": Bad(
        ld(1, ld(6, tag(1, VARINT) + b"\xff")) + vf(1, 1),
        "truncated varint",
        5,
        "XSpace.planes[0].stats[0]",
    ),
    "packed child ids cut inside a varint": Bad(
        ld(1, ld(4, vf(1, 3) + ld(2, ld(6, b"\x01\x80")))),
        "truncated varint",
        11,
        "XSpace.planes[0].event_metadata[0]",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_wire_is_refused(name: str) -> None:
    """Each malformed message raises DecodeError with the exact reason, offset and path."""
    bad = MALFORMED[name]
    gc_enabled = gc.isenabled()
    with pytest.raises(DecodeError) as info:
        decode_columns(bad.data)
    assert gc.isenabled() == gc_enabled  # the decoder pauses the collector and must restore it
    err = info.value
    assert_sane(err, len(bad.data))
    assert re.fullmatch(bad.reason, err.reason), err.reason
    first, last = bad.offset if isinstance(bad.offset, tuple) else (bad.offset, bad.offset)
    assert first <= err.offset <= last, str(err)
    assert err.path == bad.path, str(err)
    assert not protobuf_accepts(bad.data)


ACCEPTED: dict[str, bytes] = {
    "empty input": b"",
    "10-byte varint (unknown field)": tag(5, VARINT) + b"\xff" * 9 + b"\x01",
    "10-byte varint, 10th byte 0x7f": tag(5, VARINT) + b"\xff" * 9 + b"\x7f",
    "largest field number": tag(2**29 - 1, VARINT) + b"\x00",
    "tag padded to 5 bytes": b"\x8a\x80\x80\x80\x00" + varint(0),
    "100 nested groups": nested_groups(100),
    "groups inside an event stat": ld(1, ld(3, ld(4, ld(4, nested_groups(3, vf(1, 1)) + vf(1, 2))))),
    "known fields with other wire types": tag(1, VARINT) + varint(5) + ld(1, tag(3, I32) + b"\0" * 4),
    "unpacked child ids": ld(1, ld(4, vf(1, 1) + ld(2, vf(6, 1) + vf(6, 2)))),
    "zero-length sub-messages": ld(1, ld(3, ld(4, b"")) + ld(4, b"") + ld(6, b"")),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_well_formed_edge_cases_are_accepted(name: str) -> None:
    """Unusual but valid wire data decodes, as protobuf also accepts it."""
    data = ACCEPTED[name]
    assert protobuf_accepts(data)
    decode_columns(data)


def test_negative_int64_as_10_byte_varint() -> None:
    """Negative int64 values travel as 10-byte varints and come back as the same negatives."""
    space = xplane_pb2.XSpace()
    line = space.planes.add(id=-3).lines.add(id=1, timestamp_ns=-2)
    event = line.events.add(metadata_id=-1, offset_ps=-5, duration_ps=-7)
    event.stats.add(metadata_id=-9, int64_value=-42)
    data = space.SerializeToString()
    assert int64_varint(-5) in data and len(int64_varint(-5)) == 10
    columns = decode_columns(data)
    events = columns["events"]
    assert events["metadata_id"].tolist() == [-1]
    assert events["start_ps"].tolist() == [-2 * 1000 - 5]
    assert events["duration_ps"].tolist() == [-7]
    assert columns["planes"]["id"].tolist() == [-3]
    assert columns["lines"]["timestamp_ns"].tolist() == [-2]
    stats = gather_event_stats(data, events["offset"], np.array([0], dtype=np.int64), np.empty(0, dtype=np.int64))
    assert stats["metadata_id"].tolist() == [-9]
    assert stats["kind"].tolist() == [3]  # int64
    assert stats["value"].tolist() == [-42]


def test_wide_metadata_ids_then_corruption() -> None:
    """Ids beyond int32 make the decoder start over with int64 ids; errors still come out right."""

    def event(metadata_id: int, tail: bytes = b"") -> bytes:
        return ld(4, vf(1, metadata_id) + vf(2, 5) + tail)

    good = ld(1, ld(3, event(1) + event(2**40) + event(-(2**40))))
    assert decode_columns(good)["events"]["metadata_id"].tolist() == [1, 2**40, -(2**40)]
    cut_varint = tag(1, VARINT) + b"\x80"
    after = ld(1, ld(3, event(1) + event(2**40) + event(3, cut_varint)))  # fails after the retry
    before = ld(1, ld(3, event(1, cut_varint) + event(2**40)))  # fails before the wide id
    for data, index, offset in ((after, 2, len(after) - 1), (before, 0, before.index(cut_varint) + 1)):
        with pytest.raises(DecodeError) as info:
            decode_columns(data)
        assert (info.value.path, info.value.offset) == (f"XSpace.planes[0].lines[0].events[{index}]", offset)


# --- error paths name the right element ---

MARK = ld(15, b"<<corrupt-here>>")  # an unknown field every message skips


def corrupt(payload: bytes, target: str, name: str) -> bytes:
    """``payload``, ending in a cut varint (field 1, byte 0x80) when ``name`` is the target."""
    return payload + MARK + tag(1, VARINT) + b"\x80" if name == target else payload


def stat(target: str, name: str, metadata_id: int) -> bytes:
    """An XStat with an int64 value."""
    return corrupt(vf(1, metadata_id) + vf(4, metadata_id * 10), target, name)


def hand_built_space(target: str) -> bytes:
    """Two planes; plane 1 has event and stat metadata, two lines of events, and stats.

    Element ``target`` (a path) gets a truncated varint at the end of its payload; for map
    entries, ``...event_metadata[i]`` corrupts the entry and ``...event_metadata[i]=`` its value.
    """
    plane0 = vf(1, 0) + ld(3, vf(1, 1) + b"".join(ld(4, vf(1, 1) + vf(2, i)) for i in range(3)))
    plane0 = corrupt(plane0, target, "XSpace.planes[0]")
    p = "XSpace.planes[1]"
    parts = [vf(1, 1), ld(2, b"/device:TEST:1")]
    for i in range(4):
        em = f"{p}.event_metadata[{i}]"
        value = vf(1, 100 + i) + ld(2, b"op%d" % i)
        value += b"".join(ld(5, stat(target, f"{em}.stats[{j}]", j + 1)) for j in range(2))
        value = corrupt(value + vf(6, 7), target, em + "=")
        parts.append(ld(4, corrupt(vf(1, 100 + i) + ld(2, value), target, em)))
    for i in range(3):
        sm = f"{p}.stat_metadata[{i}]"
        value = corrupt(vf(1, i + 1) + ld(2, b"stat%d" % i), target, sm + "=")
        parts.append(ld(5, corrupt(vf(1, i + 1) + ld(2, value), target, sm)))
    for j in range(2):
        ln = f"{p}.lines[{j}]"
        events = b""
        for k in range(5):
            ev = f"{ln}.events[{k}]"
            body = vf(1, 100 + k % 4) + vf(2, 1000 * k) + vf(3, 10)
            body += b"".join(ld(4, stat(target, f"{ev}.stats[{s}]", s + 1)) for s in range(3))
            events += ld(4, corrupt(body, target, ev))
        parts.append(ld(3, corrupt(vf(1, j) + ld(2, b"line") + events + vf(3, 5), target, ln)))
    parts.extend(ld(6, stat(target, f"{p}.stats[{s}]", s + 1)) for s in range(2))
    plane1 = corrupt(b"".join(parts), target, p)
    return ld(1, plane0) + ld(1, plane1) + ld(4, b"host")


ELEMENTS = [
    "XSpace.planes[0]",
    "XSpace.planes[1]",
    "XSpace.planes[1].lines[0]",
    "XSpace.planes[1].lines[0].events[2]",
    "XSpace.planes[1].lines[0].events[2].stats[1]",
    "XSpace.planes[1].lines[1].events[0]",
    "XSpace.planes[1].lines[1].events[4].stats[2]",
    "XSpace.planes[1].event_metadata[2]",
    "XSpace.planes[1].event_metadata[2]=",
    "XSpace.planes[1].event_metadata[3].stats[1]",
    "XSpace.planes[1].stat_metadata[1]",
    "XSpace.planes[1].stat_metadata[2]=",
    "XSpace.planes[1].stats[1]",
]


def test_hand_built_space_is_valid() -> None:
    """Uncorrupted, the hand-built XSpace decodes and matches protobuf's reading."""
    data = hand_built_space("")
    columns = decode_columns(data)
    space = xplane_pb2.XSpace.FromString(data)
    assert [len(ln.events) for p in space.planes for ln in p.lines] == [3, 5, 5]
    assert len(columns["events"]["offset"]) == 13
    assert columns["lines"]["event_end"].tolist() == [3, 8, 13]
    assert sorted(columns["event_metadata"]["id"].tolist()) == [100, 101, 102, 103]
    assert [list(c) for c in columns["event_metadata"]["child_id"]] == [[7]] * 4
    assert columns["stat_metadata"]["name"] == ["stat0", "stat1", "stat2"]
    assert len(columns["stats"]["owner"]) == 4 * 2 + 2  # event-metadata stats, plane stats


@pytest.mark.parametrize("target", ELEMENTS)
def test_error_path_names_the_corrupt_element(target: str) -> None:
    """Corrupting one element yields exactly its path and the offset of the broken varint."""
    data = hand_built_space(target)
    assert data.count(MARK) == 1
    with pytest.raises(DecodeError) as info:
        decode_columns(data)
    err = info.value
    assert err.reason == "truncated varint"
    assert err.path == target.rstrip("=")
    assert err.offset == data.index(MARK) + len(MARK) + 1  # the 0x80 after the field-1 tag
    assert not protobuf_accepts(data)


# --- where the decoder and protobuf differ, on purpose or not ---


def test_documented_differences_from_protobuf() -> None:
    """Inputs protobuf refuses but the decoder accepts, by design.

    * Invalid UTF-8 in a string field: protobuf refuses proto3 strings that are not UTF-8; the
      decoder replaces the bad bytes (U+FFFD) so that one damaged name does not hide a profile.
    * Group nesting depth: protobuf's limit of 100 counts the enclosing messages too, so 100
      nested groups inside a plane are too deep for it; the decoder counts groups only.
    """
    bad_utf8 = ld(1, ld(2, b"/device:\xff\xfe") + ld(3, ld(2, b"line\xc3")))
    assert not protobuf_accepts(bad_utf8)
    columns = decode_columns(bad_utf8)
    assert columns["planes"]["name"] == ["/device:\ufffd\ufffd"]
    assert columns["lines"]["name"] == ["line\ufffd"]

    deep_in_plane = ld(1, nested_groups(100))
    assert not protobuf_accepts(deep_in_plane)
    decode_columns(deep_in_plane)


def test_map_entry_values_merge() -> None:
    """Two value fields in one map entry merge, as in protobuf: later fields win, others stay."""
    entry = vf(1, 7) + ld(2, ld(2, b"first") + vf(6, 1)) + ld(2, ld(4, b"shown") + vf(6, 2))
    data = ld(1, ld(4, entry) + ld(5, vf(1, 3) + ld(2, ld(2, b"s")) + ld(2, ld(3, b"about"))))
    expected = xplane_pb2.XSpace.FromString(data).planes[0]
    columns = decode_columns(data)
    em, sm = columns["event_metadata"], columns["stat_metadata"]
    assert (em["name"], em["display_name"]) == (["first"], ["shown"])
    assert [list(c) for c in em["child_id"]] == [list(expected.event_metadata[7].child_id)] == [[1, 2]]
    assert (sm["name"], sm["description"]) == (["s"], ["about"])
