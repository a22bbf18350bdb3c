"""One host in shards: byte ranges of whole events that different processes walk, merged exactly.

A host file is cut (:func:`plan_shards`) into *pieces*: whole lines, or,
for lines larger than the shard size, runs of whole events of one line, found
by a skim of the wire (each field's tag and length; nothing decoded). Pieces
in file order are grouped into *shards* of about the shard size. A shard is
walked on its own (:func:`walk_shard`), by the same compiled pass as a whole
host, with the global line index and event row of each piece, so its records
and aggregates need no renumbering; :func:`merge_shards` then makes the host
pass of the whole host:

* aggregates add (counts, totals, FLOPs, bytes; min of mins, max of maxes;
  the first event's identity from the shard holding the earliest row);
* nesting crosses pieces exactly: a piece after the first of its line lists
  its *roots* (events that found their class's stack empty: their parent, if
  any, lies in an earlier piece), a piece before the last hands over the
  entries still open at its end; replaying the roots against the open
  entries, piece by piece, credits each parent with its children and
  finishes the self time of every entry that crossed a boundary;
* records are concatenated (their rows are already the host's);
* the step breakdown: once the steps are known, every shard turns its host
  events into the segments each category prefix covers per step
  (:func:`shard_segments`); the union of all shards' segments and the device
  intervals gives each step's breakdown, as the one-process pass does.

Sharded and unsharded give the same host index, exactly (tests force tiny
shards so that every boundary case occurs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xprof_core._fast import hostindex as _hostindex
from xprof_core._fast.decoder import decode_columns
from xprof_core.index.classify import LF_HOST, line_flags
from xprof_core.index.passes import (
    C_FW_ALL,
    C_FW_NOHLO,
    C_HLO,
    C_TPU,
    HostPass,
    _plane_tables,
)
from xprof_core.model.tables import XSpaceTables
from xprof_core.model.xspace import XSpace

PLAN_VERSION = 2
DEFAULT_SHARD_BYTES = 96 << 20  # as xprof_core.execute.sharding's

# Record columns that hold string codes (remapped when shards merge).
_RECORD_STRING_COLUMNS = ("step_name", "hlo_op", "tf_op", "kernel_details", "hlo_module", "hlo_category", "equation")


@dataclass
class ShardPlan:
    """How one host is cut: pieces (parallel arrays) and shards (ranges of pieces), plus its lines."""

    size_bytes: int
    shard_bytes: int
    # per line
    line_plane: np.ndarray
    line_id: np.ndarray
    line_name: list[str]
    line_timestamp_ns: np.ndarray
    line_events: np.ndarray
    line_flags: np.ndarray
    # per piece
    piece_line: np.ndarray
    piece_begin: np.ndarray
    piece_end: np.ndarray
    piece_first_row: np.ndarray
    piece_first_part: np.ndarray
    piece_last_part: np.ndarray
    # per shard: pieces [shard_begin[i], shard_end[i])
    shard_begin: np.ndarray
    shard_end: np.ndarray
    # the bytes outside every line (plane headers, metadata, stats): what every shard reads besides its pieces
    fill_begin: np.ndarray
    fill_end: np.ndarray

    @property
    def num_shards(self) -> int:
        return len(self.shard_begin)

    def shard_bytes_of(self, i: int) -> int:
        lo, hi = int(self.shard_begin[i]), int(self.shard_end[i])
        return int((self.piece_end[lo:hi] - self.piece_begin[lo:hi]).sum())

    def shard_only(self, i: int) -> ShardPlan:
        """The part of the plan one shard's walk reads: its pieces, and the lines' plane, flags and
        timestamps (line ids, names and event counts stay with the whole plan, for the merge)."""
        lo, hi = int(self.shard_begin[i]), int(self.shard_end[i])
        return ShardPlan(
            size_bytes=self.size_bytes,
            shard_bytes=self.shard_bytes,
            line_plane=self.line_plane,
            line_id=np.zeros(0, np.int64),
            line_name=[],
            line_timestamp_ns=self.line_timestamp_ns,
            line_events=np.zeros(0, np.int64),
            line_flags=self.line_flags,
            piece_line=self.piece_line[lo:hi],
            piece_begin=self.piece_begin[lo:hi],
            piece_end=self.piece_end[lo:hi],
            piece_first_row=self.piece_first_row[lo:hi],
            piece_first_part=self.piece_first_part[lo:hi],
            piece_last_part=self.piece_last_part[lo:hi],
            shard_begin=np.zeros(1, np.int64),
            shard_end=np.array([hi - lo], np.int64),
            fill_begin=self.fill_begin,
            fill_end=self.fill_end,
        )

    def to_partial(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "size_bytes": self.size_bytes,
            "shard_bytes": self.shard_bytes,
            **{k: v for k, v in self.__dict__.items() if k not in ("size_bytes", "shard_bytes")},
        }

    @classmethod
    def from_partial(cls, p: dict[str, Any]) -> ShardPlan:
        if p.get("version") != PLAN_VERSION:
            raise ValueError(f"shard plan version {p.get('version')!r}, expected {PLAN_VERSION}")
        fields = {k: v for k, v in p.items() if k != "version"}
        fields["line_name"] = [str(n) for n in fields["line_name"]]
        for k, v in fields.items():
            if k not in ("line_name", "size_bytes", "shard_bytes"):
                fields[k] = np.asarray(v)
        return cls(**fields)


def plan_shards(
    buf: Any, shard_bytes: int = DEFAULT_SHARD_BYTES, split_lines: bool = True, read_at: Any = None
) -> ShardPlan:
    """Cut a host into shards of about ``shard_bytes`` (a skim of its bytes, no event decoded). Lines larger
    than a shard are cut into pieces unless ``split_lines`` is false (for a host whose walk found a line
    out of order: :class:`~xprof_core.errors.UnsortedLineError`). With ``read_at(offset, size) -> bytes``
    the lines' events are skimmed through it a window at a time (``buf`` is then read only outside the
    lines' bodies: a memory map of a huge host stays mostly untouched)."""
    if shard_bytes <= 0:
        raise ValueError(f"shard size must be positive, got {shard_bytes}")
    cols = decode_columns(buf, skip_lines=True)
    meta = XSpace(buf, XSpaceTables.from_columns(cols))
    spans = cols["line_spans"]
    ids, names = _hostindex.line_headers(buf, spans["begin"], spans["end"])
    # Lines walked as a whole: XLA Ops lines (their ops nest over device spans, sorted per line).
    splittable = np.array([split_lines and n != "XLA Ops" for n in names], dtype=np.uint8)
    if read_at is None:
        cut = _hostindex.line_pieces(buf, spans["begin"], spans["end"], shard_bytes, splittable)
    else:
        cut = _hostindex.line_pieces_stream(read_at, spans["begin"], spans["end"], shard_bytes, splittable)
    lines, pieces = cut["lines"], cut["pieces"]
    flags = np.array(line_flags(meta, spans["plane"].tolist(), ids.tolist(), names), dtype=np.uint32)
    first_row_of_line = np.r_[0, np.cumsum(lines["events"])[:-1]].astype(np.int64)
    size = pieces["end"] - pieces["begin"]
    # Shards: consecutive pieces, each shard closed once it holds shard_bytes.
    starts, acc = [0], 0
    for i, b in enumerate(size.tolist()):
        if acc and acc + b > shard_bytes:
            starts.append(i)
            acc = 0
        acc += b
    n_pieces = len(size)
    # The complement of the lines' spans in the file.
    order = np.argsort(spans["begin"], kind="stable")
    lb, le = spans["begin"][order].astype(np.int64), spans["end"][order].astype(np.int64)
    fill_begin = np.r_[0, le].astype(np.int64)
    fill_end = np.r_[lb, len(buf)].astype(np.int64)
    keep = fill_end > fill_begin
    fill_begin, fill_end = fill_begin[keep], fill_end[keep]
    shard_begin = np.array(starts if n_pieces else [], dtype=np.int64)
    shard_end = np.r_[shard_begin[1:], n_pieces].astype(np.int64) if n_pieces else np.zeros(0, np.int64)
    return ShardPlan(
        size_bytes=len(buf),
        shard_bytes=shard_bytes,
        line_plane=spans["plane"].astype(np.int32),
        line_id=lines["id"],
        line_name=list(lines["name"]),
        line_timestamp_ns=lines["timestamp_ns"],
        line_events=lines["events"],
        line_flags=flags,
        piece_line=pieces["line"],
        piece_begin=pieces["begin"],
        piece_end=pieces["end"],
        piece_first_row=first_row_of_line[pieces["line"]] + pieces["first_event"],
        piece_first_part=pieces["first_part"],
        piece_last_part=pieces["last_part"],
        shard_begin=shard_begin,
        shard_end=shard_end,
        fill_begin=fill_begin,
        fill_end=fill_end,
    )


@dataclass
class ShardPass:
    """One shard's walk: the compiled pass's output for its pieces (see ``_fast/hostindex.pyx``)."""

    shard: int
    lines: dict[str, Any]
    slots: dict[str, np.ndarray]
    records: dict[str, np.ndarray]
    roots: dict[str, np.ndarray]
    open: dict[str, np.ndarray]
    strings: list[str]
    index_pass: Any = None  # kept in the walking process: its streams serve the breakdown

    def to_partial(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "lines": self.lines,
            "slots": self.slots,
            "records": self.records,
            "roots": self.roots,
            "open": self.open,
            "strings": self.strings,
        }

    @classmethod
    def from_partial(cls, p: dict[str, Any]) -> ShardPass:
        return cls(
            int(p["shard"]),
            dict(p["lines"]),
            dict(p["slots"]),
            dict(p["records"]),
            dict(p["roots"]),
            dict(p["open"]),
            [str(s) for s in p["strings"]],
        )


def _meta(buf: Any) -> XSpace:
    return XSpace(buf, XSpaceTables.from_columns(decode_columns(buf, skip_lines=True)))


class ShardTables:
    """What every shard of one host needs before its walk: the planes' lookup tables and the strings they
    hold; made once per host in a process (each shard's walk takes a copy of the strings)."""

    def __init__(self, meta: XSpace) -> None:
        self.meta = meta
        self.strings = _hostindex.StringTable()
        self.tables = _plane_tables(meta, self.strings)


def walk_shard(buf: Any, plan: ShardPlan, shard: int, tables: ShardTables | None = None) -> ShardPass:
    """Walk the pieces of one shard (raises ``UnsortedPiece`` for a split line out of order)."""
    tables = tables if tables is not None else ShardTables(_meta(buf))
    lo, hi = int(plan.shard_begin[shard]), int(plan.shard_end[shard])
    lines = plan.piece_line[lo:hi]
    strings = tables.strings.copy()
    index_pass = _hostindex.IndexPass(buf, **tables.tables, strings=strings)
    index_pass.run_pieces(
        plan.line_plane[lines].astype(np.int32),
        plan.piece_begin[lo:hi].astype(np.int64),
        plan.piece_end[lo:hi].astype(np.int64),
        plan.line_flags[lines].astype(np.uint32),
        lines.astype(np.int64),
        plan.piece_first_row[lo:hi].astype(np.int64),
        plan.piece_first_part[lo:hi].astype(np.uint8),
        plan.piece_last_part[lo:hi].astype(np.uint8),
        plan.line_timestamp_ns[lines].astype(np.int64),
    )
    out = index_pass.result()
    return ShardPass(
        shard, out["lines"], out["slots"], out["records"], out["roots"], out["open"], strings.strings(), index_pass
    )


# ---- merging ----


def _remap_strings(passes: Sequence[ShardPass]) -> tuple[list[str], list[np.ndarray]]:
    """One string table for every shard, and per shard its code -> merged code."""
    merged: dict[str, int] = {"": 0}
    maps = []
    for sp in passes:
        maps.append(np.array([merged.setdefault(s, len(merged)) for s in sp.strings], dtype=np.int64))
    return list(merged), maps


def _merge_slots(
    passes: Sequence[ShardPass], maps: Sequence[np.ndarray]
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Slots of every shard summed by (class, line, keys); per shard, its slot -> merged slot."""
    cols: dict[str, list[np.ndarray]] = {}
    for sp, code_map in zip(passes, maps, strict=True):
        s = {name: np.asarray(v).copy() for name, v in sp.slots.items()}
        cls = s["cls"]
        coded_k0 = (cls == C_HLO) | (cls == C_FW_ALL) | (cls == C_FW_NOHLO)
        s["k0"][coded_k0] = code_map[s["k0"][coded_k0]]
        coded_extra = (cls == C_HLO) | (cls == C_TPU)
        for x in ("extra0", "extra1", "extra2"):
            s[x][coded_extra] = code_map[s[x][coded_extra]]
        for name, v in s.items():
            cols.setdefault(name, []).append(v)
    slots = {name: np.concatenate(v) if v else np.zeros(0) for name, v in cols.items()}
    n = len(slots["cls"])
    if n == 0:
        return slots, [np.zeros(0, np.int64) for _ in passes]
    key = np.stack(
        [
            slots["cls"].astype(np.int64),
            slots["line"].astype(np.int64),
            slots["k0"],
            slots["k1"],
            slots["k2"],
            slots["k3"],
        ],
        axis=1,
    )
    # TPU slots carry their program in k2 (not part of their key): they are never split (XLA Ops lines stay whole).
    uniq, first, code = np.unique(key, axis=0, return_index=True, return_inverse=True)
    code = code.reshape(-1)
    m = int(len(uniq))
    out: dict[str, np.ndarray] = {}
    for k in ("cls", "line", "k0", "k1", "k2", "k3"):
        out[k] = slots[k][first]
    for k in ("count", "total_ps", "self_ps"):
        acc = np.zeros(m, dtype=np.int64)
        np.add.at(acc, code, slots[k])
        out[k] = acc
    for k in ("flops", "bytes"):
        acc = np.zeros(m, dtype=np.float64)
        np.add.at(acc, code, slots[k])
        out[k] = acc
    lo = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(lo, code, slots["min_ps"])
    out["min_ps"] = lo
    hi = np.full(m, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(hi, code, slots["max_ps"])
    out["max_ps"] = hi
    fs = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(fs, code, slots["first_start_ps"])
    out["first_start_ps"] = fs
    # The identity of a key comes from its earliest event: the slot with the smallest first row.
    order = np.lexsort((slots["first_row"], code))
    earliest = np.empty(m, dtype=np.int64)
    earliest[code[order][::-1]] = order[::-1]
    out["first_row"] = slots["first_row"][earliest]
    for x in ("extra0", "extra1", "extra2"):
        out[x] = slots[x][earliest]
    # Back to merged slot per shard slot.
    per_shard, at = [], 0
    for sp in passes:
        size = len(sp.slots["cls"])
        per_shard.append(code[at : at + size])
        at += size
    # The file order of slots (first row) keeps results stable whatever the shard count.
    file_order = np.lexsort((out["k3"], out["k2"], out["k1"], out["k0"], out["cls"], out["first_row"]))
    rank = np.empty(m, dtype=np.int64)
    rank[file_order] = np.arange(m)
    out = {name: v[file_order] for name, v in out.items()}
    return out, [rank[c] for c in per_shard]


def _merge_nesting(passes: Sequence[ShardPass], slot_maps: Sequence[np.ndarray], self_ps: np.ndarray) -> None:
    """Finish the self times that crossed piece boundaries (adds to ``self_ps``, indexed by merged slot)."""
    # Per (line, class): the pieces' roots and open entries, in piece (= shard) order.
    events: dict[tuple[int, int], list[tuple[str, np.ndarray]]] = {}
    for sp, smap in zip(passes, slot_maps, strict=True):
        r = sp.roots
        for key in {(int(ln), int(c)) for ln, c in zip(r["line"].tolist(), r["cls"].tolist(), strict=True)}:
            sel = (r["line"] == key[0]) & (r["cls"] == key[1])
            events.setdefault(key, []).append(("roots", np.stack([r["end_ps"][sel], r["duration_ps"][sel]], axis=1)))
        o = sp.open
        for key in {(int(ln), int(c)) for ln, c in zip(o["line"].tolist(), o["cls"].tolist(), strict=True)}:
            sel = (o["line"] == key[0]) & (o["cls"] == key[1])
            entries = np.stack(
                [o["end_ps"][sel], o["duration_ps"][sel], o["child_ps"][sel], smap[o["slot"][sel]]], axis=1
            )
            events.setdefault(key, []).append(("open", entries))
    for parts in events.values():
        stack: list[list[int]] = []  # [end, dur, child, merged slot], bottom first
        for kind, arr in parts:
            if kind == "roots":
                for end, dur in arr.tolist():
                    while stack and stack[-1][0] < end:
                        e = stack.pop()
                        self_ps[e[3]] += max(e[1] - e[2], 0)
                    if stack:
                        stack[-1][2] += dur
            else:
                stack.extend([list(x) for x in arr.tolist()])
        for e in stack:
            self_ps[e[3]] += max(e[1] - e[2], 0)


def _merge_records(passes: Sequence[ShardPass], maps: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    cols: dict[str, list[np.ndarray]] = {}
    for sp, m in zip(passes, maps, strict=True):
        for k, v in sp.records.items():
            v = np.asarray(v)
            if k in _RECORD_STRING_COLUMNS:
                v = m[v].astype(np.int32)
            cols.setdefault(k, []).append(v)
    rec = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(rec["row"], kind="stable")
    return {k: v[order] for k, v in rec.items()}


def _merge_lines(plan: ShardPlan, passes: Sequence[ShardPass]) -> dict[str, Any]:
    """One row per line of the host from the pieces' rows."""
    n = len(plan.line_id)
    rows: dict[str, list[np.ndarray]] = {}
    names: dict[int, tuple[str, int, int]] = {}
    for sp in passes:
        ln = sp.lines
        for k in ("index", "events", "timed", "first_row", "sorted", "min_start_ps", "max_end_ps", "duration_ps"):
            rows.setdefault(k, []).append(np.asarray(ln[k]))
        for i, d, dur, did in zip(
            np.asarray(ln["index"]).tolist(),
            ln["display_name"],
            np.asarray(ln["duration_ps"]).tolist(),
            np.asarray(ln["display_id"]).tolist(),
            strict=True,
        ):
            prev = names.get(i)
            if prev is None or d or dur or did:
                names[i] = (
                    str(d) or (prev[0] if prev else ""),
                    dur or (prev[1] if prev else 0),
                    did or (prev[2] if prev else 0),
                )
    r = {k: np.concatenate(v) for k, v in rows.items()}
    idx = r["index"]
    events = np.zeros(n, np.int64)
    np.add.at(events, idx, r["events"])
    timed = np.zeros(n, np.int64)
    np.add.at(timed, idx, r["timed"])
    first_row = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first_row, idx, r["first_row"])
    sorted_ = np.ones(n, bool)
    np.logical_and.at(sorted_, idx, r["sorted"].astype(bool))
    has = r["timed"] > 0
    min_start = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(min_start, idx[has], r["min_start_ps"][has])
    max_end = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(max_end, idx[has], r["max_end_ps"][has])
    min_start[timed == 0] = 0
    max_end[timed == 0] = 0
    first_row[events == 0] = np.r_[0, np.cumsum(plan.line_events)[:-1]][events == 0]
    return {
        "id": plan.line_id.astype(np.int64),
        "display_id": np.array([names.get(i, ("", 0, 0))[2] for i in range(n)], dtype=np.int64),
        "timestamp_ns": plan.line_timestamp_ns.astype(np.int64),
        "duration_ps": np.array([names.get(i, ("", 0, 0))[1] for i in range(n)], dtype=np.int64),
        "events": events,
        "timed": timed,
        "first_row": first_row,
        "index": np.arange(n, dtype=np.int64),
        "sorted": sorted_,
        "min_start_ps": min_start,
        "max_end_ps": max_end,
        "name": list(plan.line_name),
        "display_name": [names.get(i, ("", 0, 0))[0] for i in range(n)],
        "plane": plan.line_plane.astype(np.int32),
        "flags": plan.line_flags.astype(np.uint32),
        # the breakdown reads segments from the shards, not streams
        "stream_begin": np.full(n, -1, dtype=np.int64),
        "stream_end": np.full(n, -1, dtype=np.int64),
    }


def merge_shards(meta: XSpace, plan: ShardPlan, passes: Sequence[ShardPass], segments: Any = None) -> HostPass:
    """The host pass of a whole host from its shards' walks (in any order).

    ``segments(start, end, marker_dur)`` gives the host events' segments of
    every shard once the steps are known (:func:`shard_segments` per shard,
    concatenated): the breakdown of the merged pass reads them.
    """
    passes = sorted(passes, key=lambda p: p.shard)
    strings, maps = _remap_strings(passes)
    slots, slot_maps = _merge_slots(passes, maps)
    if len(slots["cls"]):
        _merge_nesting(passes, slot_maps, slots["self_ps"])
    records = _merge_records(passes, maps)
    lines = _merge_lines(plan, passes)
    hp = HostPass(
        meta=meta,
        lines=lines,
        slots=slots,
        records=records,
        strings=strings,
        num_events=int(plan.line_events.sum()),
        spans={"plane": plan.line_plane, "begin": np.zeros(len(plan.line_id)), "end": np.zeros(len(plan.line_id))},
        index_pass=None,
    )
    hp.derived["segments"] = segments
    return hp


def shard_segments(
    sp: ShardPass, plan: ShardPlan, start: np.ndarray, end: np.ndarray, marker_dur: np.ndarray
) -> dict[str, np.ndarray]:
    """The segments each category prefix covers per step, from the host pieces this shard walked."""
    from xprof_core.index.classify import CATEGORIES, CATEGORY_INDEX

    ln = sp.lines
    idx = np.asarray(ln["index"])
    host = (plan.line_flags[idx] & LF_HOST) != 0
    i64 = np.int64
    return _hostindex.breakdown_segments(
        sp.index_pass,
        np.asarray(ln["stream_begin"])[host].astype(i64),
        np.asarray(ln["stream_end"])[host].astype(i64),
        plan.line_timestamp_ns[idx[host]].astype(i64) * 1000,
        CATEGORY_INDEX["host_compute"],
        np.asarray(start, dtype=i64),
        np.asarray(end, dtype=i64),
        np.asarray(marker_dur, dtype=i64),
        len(CATEGORIES),
    )


def walk_host_sharded(buf: Any, shard_bytes: int) -> HostPass:
    """The host pass of a host walked shard by shard in this process (what the local pool and the
    workers do in parallel), merged: equal to the one-pass walk."""
    tables = ShardTables(_meta(buf))
    plan = plan_shards(buf, shard_bytes)
    passes = [walk_shard(buf, plan, i, tables) for i in range(plan.num_shards)]

    def segments(start: np.ndarray, end: np.ndarray, marker_dur: np.ndarray) -> dict[str, np.ndarray]:
        parts = [shard_segments(sp, plan, start, end, marker_dur) for sp in passes]
        return {k: np.concatenate([p[k] for p in parts]) for k in ("step", "prefix", "start_ps", "end_ps")}

    return merge_shards(tables.meta, plan, passes, segments)


__all__ = [
    "DEFAULT_SHARD_BYTES",
    "walk_host_sharded",
    "ShardPass",
    "ShardPlan",
    "ShardTables",
    "merge_shards",
    "plan_shards",
    "shard_segments",
    "walk_shard",
]
