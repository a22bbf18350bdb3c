"""Write an N-times-longer XSpace: a real profile's steps repeated with shifted times.

Usage::

    PYTHONPATH=src python scripts/scale_profile.py IN OUT --times N [--gap-us G]

``IN`` is a host profile (``*.xplane.pb``, or ``*.xplane.pb.gz``); ``OUT``
receives the same profile with every line's events written N times, copy
``k`` shifted by ``k * P`` where ``P`` is the profile's span (earliest event
start to latest event end, over all planes) plus the gap (default 1000 µs),
rounded up to a whole nanosecond. Large inputs for benchmarks come from small
real ones this way, without JAX or a GPU.

So that the copies stay distinct steps and joinable, copy ``k`` renumbers:

* step numbers: the ``step_num``, ``group_id`` and ``iter_num`` stats and the
  names of ``Steps`` lines' events (step numbers, given new event metadata per
  copy) gain ``k * S``, S = the span of step numbers in the input plus one, so
  copies continue the numbering;
* ``correlation_id`` (host launch <-> device activity), the producer and
  consumer ids ``_p``/``_c``, ``run_id`` and ``step_id`` gain ``k`` times their
  own span plus one (the ids of different copies never meet; where a span
  covers nearly all 64 bits, 2^64 / N instead, distinct unless two ids differ
  by a multiple of it);
* ``device_offset_ps`` (a TPU op's device time) gains ``k * P``.

A line's ``duration_ps`` and the ``profile_stop_time`` plane stat grow by
``(N - 1) * P``. Metadata, plane stats and every other field are copied as
bytes; copy 0 of each event is its input bytes.

The output is written as it is made: the input is memory-mapped (a ``.gz``
input is first unpacked to a temporary file next to OUT), each line's events
are rewritten a few MB at a time (``xprof_core._fast.repeat``), and the
message lengths come from a sizing pass, so memory stays a few MB plus the
input pages the kernel touches, whatever N.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import mmap
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from xprof_core._fast.repeat import LineRepeater

# Stats renumbered per copy, by family: a family shares one step, so ids that
# name each other (a producer's _p and its consumer's _c; a Steps line's group_id
# and a step_num) stay equal in every copy.
STEP_STATS = ("step_num", "group_id", "iter_num")
ID_FAMILIES = {"correlation": ("correlation_id",), "flow": ("_p", "_c"), "run": ("run_id",), "step_id": ("step_id",)}
TIME_STATS_PS = ("device_offset_ps",)
STOP_TIME_STAT_NS = "profile_stop_time"

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5
SPACE_PLANES = 1
PLANE_NAME, PLANE_LINES, PLANE_EVENT_METADATA, PLANE_STAT_METADATA, PLANE_STATS = 2, 3, 4, 5, 6
LINE_NAME, LINE_DURATION_PS = 2, 9
MD_ID, MD_NAME, MD_DISPLAY_NAME = 1, 2, 4
STAT_METADATA_ID, STAT_UINT64, STAT_INT64 = 1, 3, 4
U64 = 1 << 64


# --- wire helpers (planes, metadata and headers only: events go through the compiled kernel) ---


def read_varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift >= 70:
            raise ValueError(f"bad varint at byte {pos}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def varint(value: int) -> bytes:
    value &= U64 - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def fields(buf: Any, begin: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field, wire type, tag start, value start, value end) of each field of a message; a varint's
    value is its integer in place of the value start (value end: where the field ends)."""
    pos = begin
    while pos < end:
        tag_at = pos
        key, pos = read_varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if wt == WT_VARINT:
            value, pos = read_varint(buf, pos, end)
            yield num, wt, tag_at, value, pos
        elif wt == WT_LEN:
            n, pos = read_varint(buf, pos, end)
            if pos + n > end:
                raise ValueError(f"length-delimited field runs past its message at byte {tag_at}")
            yield num, wt, tag_at, pos, pos + n
            pos += n
        elif wt == WT_I64:
            yield num, wt, tag_at, pos, pos + 8
            pos += 8
        elif wt == WT_I32:
            yield num, wt, tag_at, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wt} at byte {tag_at}")


def len_field(num: int, payload_size: int) -> bytes:
    """Tag and length of a length-delimited field of ``payload_size`` bytes."""
    return varint(num << 3 | WT_LEN) + varint(payload_size)


def text(buf: Any, s: int, e: int) -> str:
    return bytes(buf[s:e]).decode("utf-8", "replace")


# --- the input's layout (planes, lines, metadata), read without touching events ---


@dataclass
class PlaneLayout:
    """One plane: its fields in order, as ("bytes", start, end), ("line", index) and ("stat", start, end)."""

    name: str = ""
    items: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[int, int]] = field(default_factory=list)
    stat_names: dict[int, str] = field(default_factory=dict)
    md_entries: array = field(default_factory=lambda: array("q"))  # event metadata entries: begin, end, ...

    def add_bytes(self, s: int, e: int) -> None:
        if self.items and self.items[-1][0] == "bytes" and self.items[-1][2] == s:
            self.items[-1] = ("bytes", self.items[-1][1], e)
        else:
            self.items.append(("bytes", s, e))


def read_plane(buf: Any, begin: int, end: int) -> PlaneLayout:
    plane = PlaneLayout()
    for num, wt, tag_at, vs, ve in fields(buf, begin, end):
        if num == PLANE_LINES and wt == WT_LEN:
            plane.items.append(("line", len(plane.lines)))
            plane.lines.append((vs, ve))
            continue
        if num == PLANE_STATS and wt == WT_LEN:
            plane.items.append(("stat", tag_at, ve, vs))
            continue
        plane.add_bytes(tag_at, ve)
        if num == PLANE_NAME and wt == WT_LEN:
            plane.name = text(buf, vs, ve)
        elif num == PLANE_EVENT_METADATA and wt == WT_LEN:
            plane.md_entries.extend((vs, ve))
        elif num == PLANE_STAT_METADATA and wt == WT_LEN:
            key, name = 0, ""
            for n2, w2, _, s2, e2 in fields(buf, vs, ve):
                if n2 == 1 and w2 == WT_VARINT:
                    key = s2
                elif n2 == 2 and w2 == WT_LEN:
                    for n3, w3, _, s3, e3 in fields(buf, s2, e2):
                        if n3 == 2 and w3 == WT_LEN:
                            name = text(buf, s3, e3)
            plane.stat_names[key] = name
    return plane


def read_space(buf: Any) -> list[tuple[Any, ...]]:
    """The XSpace's fields in order: ("plane", PlaneLayout) or ("bytes", start, end)."""
    out: list[tuple[Any, ...]] = []
    for num, wt, tag_at, vs, ve in fields(buf, 0, len(buf)):
        if num == SPACE_PLANES and wt == WT_LEN:
            out.append(("plane", read_plane(buf, vs, ve)))
        else:
            out.append(("bytes", tag_at, ve))
    return out


def metadata_entry(buf: Any, s: int, e: int) -> tuple[int, str, str, list[tuple[int, int]]]:
    """(id, name, display name, byte ranges of the other fields) of an event metadata map entry."""
    key, name, display, rest = 0, "", "", []
    for num, wt, _, vs, ve in fields(buf, s, e):
        if num == 1 and wt == WT_VARINT:
            key = vs
        elif num == 2 and wt == WT_LEN:
            for n2, w2, t2, s2, e2 in fields(buf, vs, ve):
                if n2 == MD_NAME and w2 == WT_LEN:
                    name = text(buf, s2, e2)
                elif n2 == MD_DISPLAY_NAME and w2 == WT_LEN:
                    display = text(buf, s2, e2)
                elif n2 != MD_ID:
                    rest.append((t2, e2))
    return key, name, display, rest


# --- the report ---


@dataclass
class ScaleReport:
    """What :func:`scale_profile` did."""

    times: int
    input_bytes: int
    output_bytes: int
    events_in: int
    shift_ps: int  # P: what copy k adds to every time, divided by k
    steps: dict[str, int]  # family -> what copy k adds to its ids, divided by k
    seconds: float = 0.0

    def summary(self) -> str:
        steps = ", ".join(f"{k} +{v}" for k, v in sorted(self.steps.items()))
        return (
            f"{self.times} copies: {self.input_bytes / 1e6:.1f} MB -> {self.output_bytes / 1e6:.1f} MB, "
            f"{self.events_in:,} -> {self.events_in * self.times:,} events, copy k shifted by k x "
            f"{self.shift_ps / 1e9:.3f} ms; ids per copy: {steps or 'none'}; {self.seconds:.1f} s"
        )


# --- scaling ---


@dataclass
class _Line:
    begin: int
    end: int
    head: bytes  # the fields before the events, as they are in the input
    tail: bytes  # and after
    duration_ps: int
    events: int
    renames: bool  # a Steps line: its event names are step numbers


@dataclass
class _Range:
    """The range of one family's integer values, as int64 and as uint64."""

    smin: int = 0
    smax: int = 0
    umin: int = 0
    umax: int = 0
    seen: int = 0

    def add(self, smin: int, smax: int, umin: int, umax: int, seen: int) -> None:
        if not seen:
            return
        if not self.seen:
            self.smin, self.smax, self.umin, self.umax = smin, smax, umin, umax
        else:
            self.smin, self.smax = min(self.smin, smin), max(self.smax, smax)
            self.umin, self.umax = min(self.umin, umin), max(self.umax, umax)
        self.seen += seen

    def step(self, times: int, name: str) -> int:
        """Per-copy step keeping the ids of all copies distinct (see the module docstring)."""
        width = min(self.smax - self.smin, self.umax - self.umin) + 1
        if width * times <= U64:
            return width
        print(
            f"note: {name} ids span {width:#x}: copies offset by 2^64/{times} (distinct unless two ids "
            "differ by a multiple of it)",
            file=sys.stderr,
        )
        return U64 // times


class _StepNames:
    """The event metadata of a plane with a Steps line whose names are step numbers."""

    def __init__(self, buf: Any = None, plane: PlaneLayout | None = None) -> None:
        self.names: dict[int, tuple[int, tuple[int, int]]] = {}  # md id -> (step number, entry byte range)
        self.next_id = 0  # above every metadata id of the plane
        if plane is None:
            return
        for j in range(0, len(plane.md_entries), 2):
            s, e = plane.md_entries[j], plane.md_entries[j + 1]
            key, name, _, _ = metadata_entry(buf, s, e)
            self.next_id = max(self.next_id, key + 1)
            if name.isdigit():
                self.names[key] = (int(name), (s, e))


def _families(stat_names: dict[int, str]) -> dict[int, str]:
    """Stat metadata id -> the family renumbered per copy, for the stats that have one."""
    out = {}
    for sid, name in stat_names.items():
        if name in STEP_STATS:
            out[sid] = "step"
        elif name in TIME_STATS_PS:
            out[sid] = "time"
        else:
            for family, names in ID_FAMILIES.items():
                if name in names:
                    out[sid] = family
    return out


def _line_name(header: bytes) -> str:
    for num, wt, _, vs, ve in fields(header, 0, len(header)):
        if num == LINE_NAME and wt == WT_LEN:
            return text(header, vs, ve)
    return ""


@contextlib.contextmanager
def open_input(path: Path, scratch_dir: Path) -> Iterator[Any]:
    """The input's bytes, memory-mapped (a .gz input unpacked to a temporary file first)."""
    with contextlib.ExitStack() as stack:
        if path.name.endswith(".gz"):
            tmp = stack.enter_context(tempfile.TemporaryFile(dir=scratch_dir))
            with gzip.open(path, "rb") as src:
                shutil.copyfileobj(src, tmp, 1 << 22)
            tmp.flush()
            handle: BinaryIO = tmp
        else:
            handle = stack.enter_context(open(path, "rb"))
        if os.fstat(handle.fileno()).st_size == 0:
            yield b""
            return
        mm = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm
        finally:
            # A failure's traceback may still hold views of the map: then it closes when they go.
            with contextlib.suppress(BufferError):
                mm.close()


def scale_profile(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], times: int, gap_us: float = 1000.0
) -> ScaleReport:
    """Write ``times`` copies of the profile at ``src`` to ``dst`` (see the module docstring)."""
    if times < 1:
        raise ValueError("times must be at least 1")
    src, dst = Path(src), Path(dst)
    t0 = time.perf_counter()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open_input(src, dst.parent) as buf:
        report = _scale(buf, dst, times, gap_us)
    report.seconds = time.perf_counter() - t0
    return report


def _scale(buf: Any, dst: Path, times: int, gap_us: float) -> ScaleReport:
    space = read_space(buf)
    planes: list[PlaneLayout] = [item[1] for item in space if item[0] == "plane"]

    # Pass 1: every line's header, time span and id ranges.
    ranges: dict[str, _Range] = {}
    plane_lines: list[list[_Line]] = []
    plane_families: list[dict[int, str]] = []
    first_ps: int | None = None
    last_ps: int | None = None
    events_in = 0
    for plane in planes:
        families = _families(plane.stat_names)
        plane_families.append(families)
        ids = np.array(sorted(families), dtype=np.uint64)
        scan = LineRepeater(buf, ids, np.zeros(len(ids), np.uint64), [], [], 0)
        smin, smax = np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64)
        umin, umax = np.zeros(len(ids), np.uint64), np.zeros(len(ids), np.uint64)
        seen = np.zeros(len(ids), np.int64)
        lines = []
        for begin, end in plane.lines:
            head, tail, ts_ns, dur_ps, n, timed, first, last = scan.scan(begin, end, smin, smax, umin, umax, seen)
            events_in += n
            if timed:
                first_ps = ts_ns * 1000 + first if first_ps is None else min(first_ps, ts_ns * 1000 + first)
                last_ps = ts_ns * 1000 + last if last_ps is None else max(last_ps, ts_ns * 1000 + last)
            lines.append(_Line(begin, end, head, tail, dur_ps, n, _line_name(head + tail) == "Steps"))
        plane_lines.append(lines)
        for i, sid in enumerate(ids.tolist()):
            ranges.setdefault(families[sid], _Range()).add(
                int(smin[i]), int(smax[i]), int(umin[i]), int(umax[i]), int(seen[i])
            )

    # Steps lines name their events by step number: those names count as step numbers too.
    step_names = [
        _StepNames(buf, plane) if any(ln.renames for ln in lines) else _StepNames()
        for plane, lines in zip(planes, plane_lines, strict=True)
    ]
    for named in step_names:
        values = [v for v, _ in named.names.values()]
        if values:
            ranges.setdefault("step", _Range()).add(min(values), max(values), min(values), max(values), len(values))

    span_ps = (last_ps - first_ps) if first_ps is not None and last_ps is not None else 0
    shift_ps = -(-(span_ps + round(gap_us * 1e6)) // 1000) * 1000
    steps = {family: r.step(times, family) for family, r in ranges.items() if r.seen and family != "time"}
    steps["time"] = shift_ps

    # Pass 2: sizes, then the bytes.
    tmp = dst.with_name(dst.name + ".tmp")
    written = 0
    try:
        with open(tmp, "wb", buffering=1 << 20) as out, memoryview(buf if len(buf) else b"") as view:
            planes_iter = iter(zip(planes, plane_lines, plane_families, step_names, strict=True))
            for item in space:
                if item[0] == "bytes":
                    out.write(view[item[1] : item[2]])
                    written += item[2] - item[1]
                    continue
                plane, lines, families, named = next(planes_iter)
                written += _write_plane(out, buf, view, plane, lines, families, named, steps, times)
        size = tmp.stat().st_size
        if size != written:
            raise AssertionError(f"wrote {size} bytes, sized {written}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return ScaleReport(times, len(buf), size, events_in, shift_ps, {k: v for k, v in steps.items() if k != "time"})


def _write_plane(
    out: BinaryIO,
    buf: Any,
    view: memoryview,
    plane: PlaneLayout,
    lines: list[_Line],
    families: dict[int, str],
    named: _StepNames,
    steps: dict[str, int],
    times: int,
) -> int:
    """Write one plane (tag and length included); returns the bytes written."""
    ids = sorted(families)
    stat_steps = np.array([steps.get(families[sid], 0) % U64 for sid in ids], dtype=np.uint64)
    # Renamed Steps-line metadata: copy k >= 1 of metadata md_old[i] is md_first[i] + k - 1.
    md_old = sorted(named.names)
    md_first = [named.next_id + i * (times - 1) for i in range(len(md_old))]
    rep = LineRepeater(
        buf,
        np.array(ids, np.uint64),
        stat_steps,
        np.array(md_old, np.uint64),
        np.array(md_first, np.uint64),
        steps["time"],
    )
    extra_md = b"".join(
        _renamed_metadata(buf, named.names[m][1], md_first[i] + k - 1, named.names[m][0] + k * steps["step"])
        for i, m in enumerate(md_old)
        for k in range(1, times)
    )
    stop_ids = {sid for sid, name in plane.stat_names.items() if name == STOP_TIME_STAT_NS}

    # A line: its head, its events N times, its tail (a longer duration where it has one).
    line_parts: list[tuple[bytes, bytes, int]] = []  # (head, tail, payload size)
    for ln in lines:
        head, tail = ln.head, ln.tail
        if ln.duration_ps and times > 1:
            add = (times - 1) * steps["time"]
            head, tail = _shifted_fields(head, LINE_DURATION_PS, add), _shifted_fields(tail, LINE_DURATION_PS, add)
        line_parts.append((head, tail, len(head) + len(tail) + rep.size(ln.begin, ln.end, times, ln.renames)))
    stats: dict[int, bytes] = {}
    for item in plane.items:
        if item[0] == "stat" and stop_ids:
            stats[item[1]] = _shifted_stat(buf, item[3], item[2], stop_ids, (times - 1) * steps["time"] // 1000)
    size = len(extra_md)
    for item in plane.items:
        if item[0] == "bytes":
            size += item[2] - item[1]
        elif item[0] == "line":
            payload = line_parts[item[1]][2]
            size += len(len_field(PLANE_LINES, payload)) + payload
        else:
            size += len(stats[item[1]]) if item[1] in stats else item[2] - item[1]

    head = len_field(SPACE_PLANES, size)
    out.write(head)
    for item in plane.items:
        if item[0] == "bytes" or (item[0] == "stat" and item[1] not in stats):
            out.write(view[item[1] : item[2]])
        elif item[0] == "stat":
            out.write(stats[item[1]])
        else:
            ln = lines[item[1]]
            line_head, line_tail, payload = line_parts[item[1]]
            out.write(len_field(PLANE_LINES, payload))
            out.write(line_head)
            for k in range(times):
                at = ln.begin
                while at < ln.end:
                    chunk, at = rep.write(at, ln.end, k, ln.renames)
                    out.write(chunk)
            out.write(line_tail)
    out.write(extra_md)
    return len(head) + size


def _renamed_metadata(buf: Any, entry: tuple[int, int], new_id: int, step: int) -> bytes:
    """An event metadata map entry: the entry at ``entry`` with a new id and the step number as its name."""
    _, name, display, rest = metadata_entry(buf, *entry)
    body = bytearray(varint(MD_ID << 3 | WT_VARINT) + varint(new_id))
    body += len_field(MD_NAME, len(str(step).encode())) + str(step).encode()
    if display:
        shown = str(step) if display == name else display
        body += len_field(MD_DISPLAY_NAME, len(shown.encode())) + shown.encode()
    for s, e in rest:
        body += buf[s:e]
    entry_body = varint(1 << 3 | WT_VARINT) + varint(new_id) + len_field(2, len(body)) + bytes(body)
    return len_field(PLANE_EVENT_METADATA, len(entry_body)) + entry_body


def _shifted_fields(message: bytes, num: int, add: int) -> bytes:
    """``message`` with ``add`` added to every varint field ``num``."""
    out = bytearray()
    for n, wt, tag_at, vs, ve in fields(message, 0, len(message)):
        if n == num and wt == WT_VARINT:
            out += varint(n << 3 | WT_VARINT) + varint(vs + add)
        else:
            out += message[tag_at:ve]
    return bytes(out)


def _shifted_stat(buf: Any, begin: int, end: int, stat_ids: set[int], add: int) -> bytes:
    """A plane stat field (payload [begin, end)), its integer value plus ``add`` when its metadata is one of
    ``stat_ids``."""
    parts = list(fields(buf, begin, end))
    md = next((vs for num, wt, _, vs, _ in parts if num == STAT_METADATA_ID and wt == WT_VARINT), None)
    body = bytearray()
    for num, wt, tag_at, vs, ve in parts:
        if md in stat_ids and num in (STAT_UINT64, STAT_INT64) and wt == WT_VARINT:
            body += varint(num << 3 | WT_VARINT) + varint(vs + add)
        else:
            body += buf[tag_at:ve]
    return len_field(PLANE_STATS, len(body)) + bytes(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a host profile: *.xplane.pb or *.xplane.pb.gz")
    p.add_argument("output", help="where to write the scaled *.xplane.pb")
    p.add_argument("--times", type=int, required=True, help="copies of the profile's steps (N)")
    p.add_argument("--gap-us", type=float, default=1000.0, help="idle time between copies in µs (default 1000)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    report = scale_profile(args.input, args.output, args.times, args.gap_us)
    print(f"{args.output}: {report.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
