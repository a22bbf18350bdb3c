"""A profile as Arrow tables: what SQL queries, Parquet files and notebooks read.

Tables (every one has a ``host`` column, so the tables of several hosts
concatenate; row numbers such as ``event`` and ``line`` count within a host):

* ``events``: one row per event: its plane, line, metadata id and name,
  absolute ``start_ps``/``end_ps``, ``duration_ps``, ``offset_ps`` from the
  profile start, and ``num_occurrences`` for aggregated (count-only) events;
* ``lines``, ``planes``: the threads/streams and the planes with their names
  and event ranges;
* ``metadata``: every event metadata entry (id, name, display name);
* ``stats``: every stat in long form, one row per (owner, stat): the stats of
  events, of event metadata and of planes, with typed value columns;
* ``steps``: the ``overview_page`` step table (one row per step, ms);
* ``ops``: the ``hlo_stats``, ``framework_op_stats`` and ``kernel_stats``
  rows in one table, told apart by ``level``.

Numeric columns wrap the XSpace's numpy arrays without a copy where the dtype
allows; names are dictionary-encoded (one string per distinct name).
:data:`SCHEMA` documents every column; ``export --format parquet`` writes it
next to the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xprof_core.model.xspace import (
    KIND_BYTES,
    KIND_DOUBLE,
    KIND_INT64,
    KIND_REF,
    KIND_STR,
    KIND_UINT64,
    XSpace,
)
from xprof_core.storage.logdir import MissingExtraError

if TYPE_CHECKING:
    import pyarrow as pa

#: Event tables come from the profile; analysis tables from the tools.
EVENT_TABLES = ("events", "lines", "planes", "metadata", "stats")
ANALYSIS_TABLES = ("steps", "ops")
TABLES = EVENT_TABLES + ANALYSIS_TABLES
_STAT_CHUNK = 1 << 20  # events whose stats are gathered per call (bounds the temporary cells)
_KIND_NAMES = {KIND_DOUBLE: "double", KIND_UINT64: "uint64", KIND_INT64: "int64", KIND_STR: "str"}
_KIND_NAMES.update({KIND_BYTES: "bytes", KIND_REF: "ref"})
_KIND_LIST = [_KIND_NAMES.get(k, "none") for k in range(7)]

#: Every table's columns: (name, description). The Arrow types are in :func:`schemas`.
SCHEMA: dict[str, dict[str, Any]] = {
    "events": {
        "description": "one row per event of every line of every plane",
        "columns": [
            ("host", "host name (the file name without .xplane.pb)"),
            ("event", "row number of the event in its host (file order: plane by plane, line by line)"),
            ("plane", "plane number within the host (planes.plane)"),
            ("line", "line number within the host (lines.line)"),
            ("metadata_id", "event metadata id in its plane (metadata.id)"),
            ("name", "event name (from its metadata)"),
            ("start_ps", "absolute start, ps (line timestamp_ns * 1000 + offset_ps)"),
            ("duration_ps", "duration, ps"),
            ("end_ps", "start_ps + duration_ps"),
            ("offset_ps", "start_ps minus the profile start (the earliest timed event of the host), ps"),
            ("num_occurrences", "count of an aggregated event (no start time); 0 for a timed event"),
        ],
    },
    "lines": {
        "description": "one row per line (a thread, a GPU stream, a derived line such as 'XLA Ops')",
        "columns": [
            ("host", "host name"),
            ("line", "line number within the host"),
            ("plane", "plane number within the host"),
            ("id", "line id from the file"),
            ("display_id", "display id from the file"),
            ("name", "line name"),
            ("display_name", "display name ('' when absent)"),
            ("timestamp_ns", "line start, ns (events' times are relative to it in the file)"),
            ("duration_ps", "line duration from the file, ps"),
            ("first_event", "events.event of the line's first event"),
            ("num_events", "number of events of the line"),
        ],
    },
    "planes": {
        "description": "one row per plane (a host, a device, metadata)",
        "columns": [
            ("host", "host name"),
            ("plane", "plane number within the host"),
            ("id", "plane id from the file"),
            ("name", "plane name, e.g. /device:GPU:0, /host:CPU"),
            ("device_kind", "hardware description from the plane's stats ('' when unknown)"),
            ("num_lines", "number of lines"),
            ("first_event", "events.event of the plane's first event"),
            ("num_events", "number of events"),
        ],
    },
    "metadata": {
        "description": "one row per event metadata entry (the interned event names of each plane)",
        "columns": [
            ("host", "host name"),
            ("plane", "plane number within the host"),
            ("id", "event metadata id (events.metadata_id)"),
            ("name", "name"),
            ("display_name", "display name ('' when absent)"),
            ("num_children", "number of child metadata ids"),
        ],
    },
    "stats": {
        "description": "every stat in long form: of events, of event metadata (shared by the events of that "
        "name) and of planes; exactly one value column is set per row, by kind",
        "columns": [
            ("host", "host name"),
            ("owner", "'event', 'metadata' or 'plane'"),
            ("event", "events.event of the owning event (null unless owner = 'event')"),
            ("plane", "plane number of the owner"),
            ("metadata_id", "owning event metadata id (null unless owner = 'metadata')"),
            ("name", "stat name, e.g. step_num, correlation_id, hlo_op"),
            (
                "kind",
                "value kind: int64, uint64, double, str, bytes, ref (a ref is a string by reference); "
                "metadata and plane stats report str for refs",
            ),
            ("int_value", "int64 and uint64 values (uint64 above 2**63-1: null, see double_value)"),
            ("double_value", "double values, and uint64 values too large for int_value"),
            ("str_value", "str and ref values"),
            ("bytes_value", "bytes values"),
        ],
    },
    "steps": {
        "description": "the overview_page step table of the run: one row per step, times in ms",
        "columns": [
            ("stepnum", "step number"),
            ("steptime_ms", "step time, ms"),
            ("<category>_ms", "time of each step-time category (device_compute, host_compute, ...), ms"),
        ],
    },
    "ops": {
        "description": "op statistics of the run: hlo_stats, framework_op_stats and kernel_stats rows",
        "columns": [
            ("level", "'hlo', 'framework' or 'kernel'"),
            ("name", "HLO op name, framework op name or kernel name"),
            ("category", "HLO category, framework op type, or 'kernel'"),
            ("context", "framework op of an HLO op, op of a kernel ('' when none)"),
            ("host_or_device", "'Host' or 'Device' ('' for kernels)"),
            ("module", "HLO module ('' unless level = 'hlo')"),
            ("program_id", "XLA program id ('' unless level = 'hlo')"),
            ("occurrences", "number of executions"),
            ("total_us", "total time, µs"),
            ("self_us", "total self time (time not in child ops), µs"),
            ("avg_us", "average time per occurrence, µs"),
            ("min_us", "shortest occurrence, µs"),
            ("flops", "floating point operations (0 when unknown)"),
            ("bytes_accessed", "bytes accessed (0 when unknown)"),
        ],
    },
}


def require_pyarrow() -> Any:
    """pyarrow, or a MissingExtraError that names the extra to install."""
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingExtraError(
            f"Arrow and Parquet export need pyarrow: pip install 'xprof-core[arrow]' ({exc})"
        ) from exc
    return pyarrow


# --- the one reach below XSpace's public attributes ---


def gather_event_stat_cells(xs: XSpace, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The raw stat cells of the given events: columns row (into ``rows``), metadata_id, kind, value, length.

    The model's public API yields a dict per event (``iter_event_stats``); a
    table of every stat needs the decoder's vectorised gather instead. This is
    the only place the export reads below the XSpace's public surface: switch
    it to the model's typed stats table when there is one. ``value`` holds the
    integer, the double's bits, the string's byte offset in ``xs.buffer`` or
    the ref id; ``length`` the string's byte length.
    """
    import xprof_core._fast.decoder as _decoder

    return _decoder.gather_event_stats(xs.buffer, xs.event_offset, rows, np.empty(0, dtype=np.int64))


# --- event tables ---


def _dict_strings(pa: Any, codes: np.ndarray, values: Sequence[str]) -> Any:
    """A dictionary-encoded string column: ``values[codes[i]]``."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(values), pa.string()))


def _constant(pa: Any, value: str, n: int) -> Any:
    return _dict_strings(pa, np.zeros(n, dtype=np.int32), [value])


def events_table(xs: XSpace, host: str = "") -> pa.Table:
    pa = require_pyarrow()
    n = xs.num_events
    md_rows = xs.event_metadata_row
    uniq, first, codes = np.unique(md_rows, return_index=True, return_inverse=True)
    names = xs.event_names(first.astype(np.int64)).tolist() if len(first) else []
    origin = xs.origin_ps
    timed = xs.is_timed
    return pa.table(
        {
            "host": _constant(pa, host, n),
            "event": pa.array(np.arange(n, dtype=np.int64)),
            "plane": pa.array(xs.plane_of_event.astype(np.int32, copy=False)),
            "line": pa.array(xs.line_of_event.astype(np.int32, copy=False)),
            "metadata_id": pa.array(xs.metadata_id),
            "name": _dict_strings(pa, codes.ravel(), names),
            "start_ps": pa.array(xs.start_ps),
            "duration_ps": pa.array(xs.duration_ps),
            "end_ps": pa.array(xs.end_ps),
            "offset_ps": pa.array(np.where(timed, xs.start_ps - origin, 0)),
            "num_occurrences": pa.array(xs.num_occurrences),
        }
    )


def lines_table(xs: XSpace, host: str = "") -> pa.Table:
    pa = require_pyarrow()
    lines = xs.lines
    return pa.table(
        {
            "host": pa.array([host] * len(lines), pa.string()),
            "line": pa.array([ln.index for ln in lines], pa.int32()),
            "plane": pa.array([ln.plane_index for ln in lines], pa.int32()),
            "id": pa.array([ln.id for ln in lines], pa.int64()),
            "display_id": pa.array([ln.display_id for ln in lines], pa.int64()),
            "name": pa.array([ln.name for ln in lines], pa.string()),
            "display_name": pa.array([ln.display_name for ln in lines], pa.string()),
            "timestamp_ns": pa.array([ln.timestamp_ns for ln in lines], pa.int64()),
            "duration_ps": pa.array([ln.duration_ps for ln in lines], pa.int64()),
            "first_event": pa.array([ln.begin for ln in lines], pa.int64()),
            "num_events": pa.array([len(ln) for ln in lines], pa.int64()),
        }
    )


def planes_table(xs: XSpace, host: str = "") -> pa.Table:
    pa = require_pyarrow()
    planes = xs.planes
    return pa.table(
        {
            "host": pa.array([host] * len(planes), pa.string()),
            "plane": pa.array([p.index for p in planes], pa.int32()),
            "id": pa.array([p.id for p in planes], pa.int64()),
            "name": pa.array([p.name for p in planes], pa.string()),
            "device_kind": pa.array([p.device_kind for p in planes], pa.string()),
            "num_lines": pa.array([len(p.lines) for p in planes], pa.int32()),
            "first_event": pa.array([p.event_begin for p in planes], pa.int64()),
            "num_events": pa.array([p.num_events for p in planes], pa.int64()),
        }
    )


def metadata_table(xs: XSpace, host: str = "") -> pa.Table:
    pa = require_pyarrow()
    cols: dict[str, list[Any]] = {k: [] for k in ("plane", "id", "name", "display_name", "num_children")}
    for p in xs.planes:
        for md in p.event_metadata.values():
            cols["plane"].append(p.index)
            cols["id"].append(md.id)
            cols["name"].append(md.name)
            cols["display_name"].append(md.display_name)
            cols["num_children"].append(len(md.child_ids))
    n = len(cols["id"])
    return pa.table(
        {
            "host": pa.array([host] * n, pa.string()),
            "plane": pa.array(cols["plane"], pa.int32()),
            "id": pa.array(cols["id"], pa.int64()),
            "name": pa.array(cols["name"], pa.string()),
            "display_name": pa.array(cols["display_name"], pa.string()),
            "num_children": pa.array(cols["num_children"], pa.int32()),
        }
    )


def _stats_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("host", pa.string()),
            ("owner", pa.string()),
            ("event", pa.int64()),
            ("plane", pa.int32()),
            ("metadata_id", pa.int64()),
            ("name", pa.string()),
            ("kind", pa.string()),
            ("int_value", pa.int64()),
            ("double_value", pa.float64()),
            ("str_value", pa.string()),
            ("bytes_value", pa.binary()),
        ]
    )


def _byte_cells(pa: Any, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, mask: np.ndarray) -> Any:
    """A binary column holding ``data[start:start+length]`` where ``mask``, null elsewhere (no Python objects)."""
    lengths = np.where(mask, lengths, 0).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    gather = np.repeat(starts.astype(np.int64) - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
    payload = data[gather] if total else np.zeros(0, dtype=np.uint8)
    validity = pa.array(mask).buffers()[1] if not mask.all() else None
    return pa.Array.from_buffers(
        pa.large_binary(), len(lengths), [validity, pa.py_buffer(offsets), pa.py_buffer(payload)], null_count=-1
    )


def _as_text(pa: Any, binary: Any) -> Any:
    """A binary column as UTF-8 strings; cells that are not valid UTF-8 are decoded with replacement."""
    try:
        return binary.cast(pa.large_string()).cast(pa.string())
    except pa.lib.ArrowInvalid:
        texts = [None if b is None else b.decode("utf-8", "replace") for b in binary.to_pylist()]
        return pa.array(texts, pa.string())


def _event_stats_batches(xs: XSpace, host: str) -> Iterable[pa.RecordBatch]:
    pa = require_pyarrow()
    import pyarrow.compute as pc

    schema = _stats_schema(pa)
    data = np.frombuffer(xs.buffer, dtype=np.uint8)
    carrying = np.flatnonzero(xs.has_stats).astype(np.int64)
    stat_names = [p.stat_metadata for p in xs.planes]
    for lo in range(0, len(carrying), _STAT_CHUNK):
        rows = carrying[lo : lo + _STAT_CHUNK]
        cells = gather_event_stat_cells(xs, rows)
        n = len(cells["row"])
        if n == 0:
            continue
        event = rows[cells["row"]]
        plane = xs.plane_of_event[event].astype(np.int32)
        kind = cells["kind"].astype(np.int64)
        value = cells["value"].astype(np.int64)
        length = cells["length"].astype(np.int64)
        # Stat names and ref strings: one dictionary lookup per distinct (plane, id).
        key = plane.astype(np.int64) << 44 | (cells["metadata_id"].astype(np.int64) & ((1 << 44) - 1))
        ukeys, inv = np.unique(key, return_inverse=True)
        names = [stat_names[int(k >> 44)].get(int(k & ((1 << 44) - 1)), str(int(k & ((1 << 44) - 1)))) for k in ukeys]
        is_int = kind == KIND_INT64
        is_uint = kind == KIND_UINT64
        int_mask = is_int | (is_uint & (value >= 0))
        big_uint = is_uint & (value < 0)
        dbl = np.where(kind == KIND_DOUBLE, value.view(np.float64), np.nan)
        dbl = np.where(big_uint, value.view(np.uint64).astype(np.float64), dbl)
        dbl_mask = (kind == KIND_DOUBLE) | big_uint
        strings = _as_text(pa, _byte_cells(pa, data, value, length, kind == KIND_STR))
        is_ref = kind == KIND_REF
        if is_ref.any():
            # A ref names a stat metadata entry of the same plane whose name is the string.
            rk = plane[is_ref].astype(np.int64) << 44 | (value[is_ref] & ((1 << 44) - 1))
            urk, rinv = np.unique(rk, return_inverse=True)
            rnames = [stat_names[int(k >> 44)].get(int(k & ((1 << 44) - 1)), "") for k in urk.tolist()]
            codes = np.zeros(n, dtype=np.int32)
            codes[is_ref] = rinv.ravel()
            refs = _dict_strings(pa, codes, rnames).cast(pa.string())
            strings = pc.if_else(pa.array(is_ref), refs, strings)
        yield pa.record_batch(
            [
                _constant(pa, host, n).cast(pa.string()),
                _constant(pa, "event", n).cast(pa.string()),
                pa.array(event),
                pa.array(plane),
                pa.nulls(n, pa.int64()),
                _dict_strings(pa, inv.ravel(), names).cast(pa.string()),
                _dict_strings(pa, kind, _KIND_LIST).cast(pa.string()),
                pa.array(value, mask=~int_mask),
                pa.array(dbl, mask=~dbl_mask),
                strings.cast(pa.string()),
                _byte_cells(pa, data, value, length, kind == KIND_BYTES).cast(pa.binary()),
            ],
            schema=schema,
        )


def _python_stat_row(host: str, owner: str, plane: int, metadata_id: int | None, name: str, v: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"host": host, "owner": owner, "event": None, "plane": plane, "metadata_id": metadata_id}
    row.update(name=name, int_value=None, double_value=None, str_value=None, bytes_value=None)
    if isinstance(v, bool) or (isinstance(v, int) and -(1 << 63) <= v < (1 << 63)):
        row.update(kind="int64", int_value=int(v))
    elif isinstance(v, int):
        row.update(kind="uint64", double_value=float(v))
    elif isinstance(v, float):
        row.update(kind="double", double_value=v)
    elif isinstance(v, bytes):
        row.update(kind="bytes", bytes_value=v)
    else:
        row.update(kind="str", str_value=str(v))
    return row


def stats_table(xs: XSpace, host: str = "") -> pa.Table:
    pa = require_pyarrow()
    schema = _stats_schema(pa)
    small: list[dict[str, Any]] = []
    for p in xs.planes:
        for name, v in p.stats.items():
            small.append(_python_stat_row(host, "plane", p.index, None, name, v))
        for md in p.event_metadata.values():
            for name, v in md.stats.items():
                small.append(_python_stat_row(host, "metadata", p.index, md.id, name, v))
    batches = list(_event_stats_batches(xs, host))
    if small:
        batches.append(pa.RecordBatch.from_pylist(small, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


_EVENT_BUILDERS = {
    "events": events_table,
    "lines": lines_table,
    "planes": planes_table,
    "metadata": metadata_table,
    "stats": stats_table,
}


# --- analysis tables (from the tools' public results) ---


def datatable_to_arrow(table: Mapping[str, Any]) -> pa.Table:
    """A Google DataTable as an Arrow table (number -> int64 when every value is integral, else float64)."""
    pa = require_pyarrow()
    arrays = {}
    for i, col in enumerate(table["cols"]):
        values = [r["c"][i].get("v") for r in table["rows"]]
        if col["type"] == "number":
            integral = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)
            arrays[col["id"]] = pa.array(values, pa.int64() if integral and values else pa.float64())
        elif col["type"] == "boolean":
            arrays[col["id"]] = pa.array(values, pa.bool_())
        else:
            arrays[col["id"]] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays)


def steps_table(overview: Mapping[str, Any]) -> pa.Table:
    """The ``steps`` table from an ``overview_page`` result."""
    pa = require_pyarrow()
    table = overview.get("step_table")
    if not table:
        return pa.table({"stepnum": pa.array([], pa.int64()), "steptime_ms": pa.array([], pa.float64())})
    return datatable_to_arrow(table)


_OP_FIELDS = ("name", "category", "context", "host_or_device", "module", "program_id")
_OP_NUMBERS = ("occurrences", "total_us", "self_us", "avg_us", "min_us", "flops", "bytes_accessed")
# level -> (tool result key, {ops column: tool column id})
_OP_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "hlo": (
        "hlo_stats",
        {
            "name": "hlo_op_name",
            "category": "category",
            "context": "tf_op_name",
            "host_or_device": "host_or_device",
            "module": "hlo_module",
            "program_id": "program_id",
            "occurrences": "occurrences",
            "total_us": "total_time",
            "self_us": "total_self_time",
            "avg_us": "avg_time",
            "min_us": "min_time",
            "flops": "flops",
            "bytes_accessed": "bytes_accessed",
        },
    ),
    "framework": (
        "framework_op_stats",
        {
            "name": "operation",
            "category": "type",
            "host_or_device": "host_or_device",
            "occurrences": "occurrences",
            "total_us": "total_time",
            "self_us": "total_self_time",
            "avg_us": "avg_time",
            "min_us": "min_time",
            "flops": "flops",
            "bytes_accessed": "bytes_accessed",
        },
    ),
    "kernel": (
        "kernel_stats",
        {
            "name": "kernel_name",
            "context": "op_name",
            "occurrences": "occurrences",
            "total_us": "total_duration_us",
            "self_us": "total_duration_us",
            "avg_us": "avg_duration_us",
            "min_us": "min_duration_us",
        },
    ),
}


def ops_table(results: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """The ``ops`` table from ``{tool: result}`` of hlo_stats, framework_op_stats and kernel_stats."""
    pa = require_pyarrow()
    cols: dict[str, list[Any]] = {k: [] for k in ("level", *_OP_FIELDS, *_OP_NUMBERS)}
    for level, (tool, mapping) in _OP_SOURCES.items():
        table = (results.get(tool) or {}).get(tool)
        if not table:
            continue
        ids = {c["id"]: i for i, c in enumerate(table["cols"])}
        for row in table["rows"]:
            cells = row["c"]
            cols["level"].append(level)
            for f in _OP_FIELDS:
                src = mapping.get(f)
                v = cells[ids[src]].get("v") if src in ids else None
                cols[f].append("kernel" if f == "category" and level == "kernel" else ("" if v is None else str(v)))
            for f in _OP_NUMBERS:
                src = mapping.get(f)
                v = cells[ids[src]].get("v") if src in ids else None
                cols[f].append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0)
    arrays = {k: pa.array(v, pa.string()) for k, v in cols.items() if k not in _OP_NUMBERS}
    arrays["occurrences"] = pa.array([int(v) for v in cols["occurrences"]], pa.int64())
    for f in _OP_NUMBERS[1:]:
        arrays[f] = pa.array(cols[f], pa.float64())
    return pa.table(arrays)


def _tool_result_of(xs: XSpace, host: str, tool_name: str) -> dict[str, Any]:
    from xprof_core.tools import get_tool

    tool = get_tool(tool_name)
    partial = dict(tool.map(xs, {}))
    partial["host"] = host
    return tool.reduce([partial], {})


def analysis_table(name: str, results_of: Any) -> pa.Table:
    """``steps`` or ``ops``; ``results_of(tool)`` gives a tool's result for the profile."""
    if name == "steps":
        return steps_table(results_of("overview_page"))
    return ops_table({t: results_of(t) for t in ("hlo_stats", "framework_op_stats", "kernel_stats")})


def xspace_table(xs: XSpace, name: str, host: str = "") -> pa.Table:
    """One table (see :data:`TABLES`) of one host's profile."""
    if name in _EVENT_BUILDERS:
        return _EVENT_BUILDERS[name](xs, host)
    if name in ANALYSIS_TABLES:
        return analysis_table(name, lambda tool: _tool_result_of(xs, host, tool))
    raise ValueError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")


def xspace_tables(xs: XSpace, host: str = "", names: Iterable[str] = TABLES) -> dict[str, pa.Table]:
    """The tables of one host's profile, by name."""
    return {name: xspace_table(xs, name, host) for name in names}


def tables_named_in(query: str) -> list[str]:
    """The tables a SQL query mentions (a word match; building an unused table is only wasted time)."""
    return [t for t in TABLES if re.search(rf"\b{t}\b", query, flags=re.IGNORECASE)]


def schemas() -> dict[str, Any]:
    """The schema document: per table, its description and columns (name, Arrow type, description)."""
    from xprof_core.model.xspace import decode_xspace

    empty = decode_xspace(b"")
    doc: dict[str, Any] = {}
    for name in TABLES:
        described = dict(SCHEMA[name]["columns"])
        if name in EVENT_TABLES:
            fields = [(f.name, str(f.type)) for f in xspace_table(empty, name).schema]
        else:
            fields = [(c, "see description") for c, _ in SCHEMA[name]["columns"]]
            if name == "ops":
                fields = [(f.name, str(f.type)) for f in ops_table({}).schema]
        doc[name] = {
            "description": SCHEMA[name]["description"],
            "columns": [{"name": c, "type": t, "description": described.get(c, "")} for c, t in fields],
        }
    return doc


__all__ = [
    "ANALYSIS_TABLES",
    "EVENT_TABLES",
    "SCHEMA",
    "TABLES",
    "datatable_to_arrow",
    "gather_event_stat_cells",
    "require_pyarrow",
    "schemas",
    "tables_named_in",
    "xspace_table",
    "xspace_tables",
]
