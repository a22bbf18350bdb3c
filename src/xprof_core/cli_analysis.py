"""The ``diff``, ``sql`` and ``export`` subcommands of ``xprof-core``.

* ``diff A B``: compare run B with run A (verdict, step distributions,
  breakdown, top regressions and improvements, new and vanished ops);
  ``--fail-if-slower PCT`` exits with status 3 when B is more than PCT percent
  slower, so CI can gate a merge on a profile.
* ``sql FILE_OR_RUN "SELECT ..."``: DuckDB over the profile's tables.
* ``export FILE_OR_RUN --format parquet|perfetto -o OUT``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

#: Exit status of ``diff --fail-if-slower`` when B regressed past the threshold.
EXIT_SLOWER = 3


# --- text tables ---


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:,.3f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_text_table(header: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 48) -> str:
    """Rows as aligned text columns (numbers right-aligned, long cells cut to ``max_width``)."""
    cells = [[_text(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
        for i in range(len(header))
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _datatable_text(table: dict[str, Any], columns: Sequence[str] | None = None, limit: int | None = None) -> str:
    ids = [c["id"] for c in table["cols"]]
    pick = [ids.index(c) for c in columns] if columns else list(range(len(ids)))
    header = [table["cols"][i]["label"] or ids[i] for i in pick]
    rows = [[r["c"][i]["v"] for i in pick] for r in table["rows"][:limit]]
    return format_text_table(header, rows)


# --- diff ---


def _resolve_side(target: str, logdir: str | None) -> tuple[Any, str]:
    """(source for run_tool, label): a path, or with --logdir a run name or its unique prefix."""
    if logdir is None:
        return target, target
    from xprof_core.storage.logdir import Logdir

    runs = Logdir(logdir).runs()
    names = [r.name for r in runs]
    if target in names:
        return (logdir, target), target
    hits = [n for n in names if n.startswith(target.rstrip("/") + "/")]
    if len(hits) == 1:
        return (logdir, hits[0]), hits[0]
    what = "matches several runs" if hits else "is not a run"
    raise ValueError(f"{target!r} {what} of {logdir}; runs: {', '.join(names)}")


def _diff_text(result: dict[str, Any], top: int) -> str:
    s = result["summary"]
    out = [result["verdict"], ""]
    out.append("Step time (ms)")
    out.append(_datatable_text(result["step_distribution"]))
    if result["breakdown"]["rows"]:
        out += ["", "Step-time breakdown (ms per step)", _datatable_text(result["breakdown"])]
    cols = ["rank", "name", "status", "per_step_us_a", "per_step_us_b", "delta_per_step_us", "ratio"]
    cols.append("share_of_change_pct")
    for key, title in (("top_regressions", "Top regressions"), ("top_improvements", "Top improvements")):
        if result[key]["rows"]:
            out += ["", f"{title} ({s['primary_level']}, self time per step in µs)"]
            out.append(_datatable_text(result[key], cols, top))
    level = result[s["primary_level"]]
    status_i = [c["id"] for c in level["cols"]].index("status")
    for status, title in (("new", "New in B"), ("vanished", "Vanished from A")):
        names = [r["c"][0]["v"] for r in level["rows"] if r["c"][status_i]["v"] == status]
        if names:
            shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
            out += ["", f"{title} ({len(names)}): {shown}"]
    return "\n".join(out) + "\n"


def cmd_diff(args: argparse.Namespace) -> int:
    from xprof_core.execute.diff import run_diff
    from xprof_core.tools.datatable import to_csv

    source_a, label_a = _resolve_side(args.a, args.logdir)
    source_b, label_b = _resolve_side(args.b, args.logdir)
    result = run_diff(
        source_a,
        source_b,
        hosts_a=args.host_a or None,
        hosts_b=args.host_b or None,
        labels=(label_a, label_b),
        metric=args.metric,
        top=args.top,
    )
    if args.format == "json":
        text = json.dumps(result, indent=2) + "\n"
    elif args.format == "csv":
        tables = ("step_distribution", "breakdown", "top_regressions", "top_improvements", *args.csv_levels)
        text = "".join(f"# {name}\n{to_csv(result[name])}" for name in tables)
    else:
        text = _diff_text(result, args.top)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(result["verdict"], file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.fail_if_slower is not None:
        pct = result["summary"]["change_pct"]
        if pct is None:
            print("xprof-core: diff: the runs cannot be compared (A has no time to compare)", file=sys.stderr)
            return 2
        if pct > args.fail_if_slower:
            print(
                f"xprof-core: diff: B is {pct:.1f}% slower than A, over the {args.fail_if_slower:g}% allowed",
                file=sys.stderr,
            )
            return EXIT_SLOWER
    return 0


# --- sql ---


def _source(target: str, run: str | None) -> Any:
    return (target, run) if run is not None else target


def cmd_sql(args: argparse.Namespace) -> int:
    from xprof_core.export.sources import source_tables
    from xprof_core.export.sql import query_tables, require_duckdb
    from xprof_core.export.tables import tables_named_in

    require_duckdb()
    names = tables_named_in(args.query)
    tables = source_tables(_source(args.source, args.run), names, hosts=args.host or None)
    result = query_tables(tables, args.query, output="arrow")
    rows = result.to_pylist()
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.column_names)
        for row in rows:
            writer.writerow(["" if v is None else v.hex() if isinstance(v, bytes) else v for v in row.values()])
        return 0
    if args.format == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)) + "\n")
        return 0
    limit = args.max_rows
    shown = rows if limit is None else rows[:limit]
    print(format_text_table(result.column_names, [list(r.values()) for r in shown], max_width=80))
    if len(shown) < len(rows):
        print(f"({len(rows) - len(shown):,} more rows; --max-rows to show more, --format csv for all)")
    else:
        print(f"({len(rows):,} rows)")
    return 0


# --- export ---


def cmd_export(args: argparse.Namespace) -> int:
    source = _source(args.source, args.run)
    if args.format == "parquet":
        from xprof_core.export.parquet import write_parquet
        from xprof_core.export.sources import source_tables
        from xprof_core.export.tables import TABLES

        names = args.tables.split(",") if args.tables else list(TABLES)
        written = write_parquet(source_tables(source, names, hosts=args.host or None), args.output)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        return 0
    from xprof_core.execute import resolve_hosts
    from xprof_core.export.perfetto import write_perfetto
    from xprof_core.model.load import load

    pairs = resolve_hosts(source)
    if args.host:
        pairs = [p for p in pairs if p[0] in set(args.host)]
    stats = write_perfetto([(name, load(url)) for name, url in pairs], args.output, with_args=not args.no_args)
    print(
        f"wrote {args.output}: {stats['slices']:,} slices, {stats['instants']:,} instants, {stats['counters']:,} "
        f"counter values, {stats['flows']:,} flows on {stats['tracks']:,} tracks",
        file=sys.stderr,
    )
    return 0


def add_subcommands(sub: Any) -> None:
    """Register ``diff``, ``sql`` and ``export`` on the ``xprof-core`` parser's subparsers."""
    from xprof_core.tools.diff import DEFAULT_TOP, LEVELS, METRICS

    p = sub.add_parser(
        "diff",
        help="compare run B with run A: verdict, step times, breakdown, top regressions, new and vanished ops",
    )
    p.add_argument("a", help="run A (the baseline): an .xplane.pb[.gz] file or a session/run folder")
    p.add_argument("b", help="run B: the same kinds of target")
    p.add_argument("--logdir", help="A and B are run names (or a unique prefix, e.g. 'base') of this logdir")
    p.add_argument("--host-a", action="append", help="only this host of A (repeat for several)")
    p.add_argument("--host-b", action="append", help="only this host of B (repeat for several)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output (default table)")
    p.add_argument("--metric", choices=METRICS, default="mean", help="step-time statistic compared (default mean)")
    p.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"regressions/improvements shown (default {DEFAULT_TOP})"
    )
    p.add_argument(
        "--fail-if-slower",
        type=float,
        metavar="PCT",
        help=f"exit with status {EXIT_SLOWER} when B is more than PCT%% slower than A (for CI)",
    )
    p.add_argument("-o", "--output", help="write here instead of stdout (the verdict still goes to stderr)")
    p.set_defaults(func=cmd_diff, csv_levels=LEVELS)

    p = sub.add_parser("sql", help="run a DuckDB SQL query over a profile's tables (needs the 'sql' extra)")
    p.add_argument("source", help="an .xplane.pb[.gz] file, a session or run folder, or a logdir with --run")
    p.add_argument("query", help="SQL over events, lines, planes, metadata, stats, steps, ops")
    p.add_argument("--run", help="the run to use when SOURCE is a logdir holding several")
    p.add_argument("--host", action="append", help="only this host (repeat for several; default: all)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    p.add_argument("--max-rows", type=int, default=100, help="rows printed as a table (default 100)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("export", help="write a profile as Parquet tables or a Perfetto trace")
    p.add_argument("source", help="an .xplane.pb[.gz] file, a session or run folder, or a logdir with --run")
    p.add_argument("--format", choices=("parquet", "perfetto"), required=True, help="what to write")
    p.add_argument("-o", "--output", required=True, help="parquet: a folder; perfetto: a file (.pftrace)")
    p.add_argument("--run", help="the run to use when SOURCE is a logdir holding several")
    p.add_argument("--host", action="append", help="only this host (repeat for several; default: all)")
    p.add_argument("--tables", help="parquet: comma-separated tables (default: all)")
    p.add_argument(
        "--no-args",
        action="store_true",
        help="perfetto: leave out the events' stats (about 3x faster on large profiles)",
    )
    p.set_defaults(func=cmd_export)


__all__ = ["EXIT_SLOWER", "add_subcommands", "format_text_table"]
