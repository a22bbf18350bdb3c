"""The ``xprof-core`` command: headless access to profiles.

Subcommands:

* ``summary FILE_OR_LOGDIR``: hosts, planes, lines, events, time span, devices.
* ``events FILE``: the events that match plane/line/name regexes and a time
  window, with their stats, as JSON lines or CSV.
* ``convert FILE_OR_RUN --tool NAME``: an analysis tool's output, headless.
* ``diff A B``, ``sql FILE_OR_RUN QUERY``, ``export FILE_OR_RUN``: see :mod:`xprof_core.cli_analysis`.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from xprof_core.errors import DecodeError, XprofError
from xprof_core.model.load import load
from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import XSpace
from xprof_core.progress import ProgressBar
from xprof_core.storage.logdir import host_name_of
from xprof_core.tools.collectives import map_collectives, reduce_collectives

PS_PER_MS = 1_000_000_000


def summarize(xs: XSpace, host: str, size_bytes: int | None = None) -> dict[str, Any]:
    """The numbers ``summary`` prints for one host, as plain JSON-ready data."""
    timed = xs.is_timed
    planes: list[dict[str, Any]] = []
    for p in xs.planes:
        b, e = p.event_begin, p.event_end
        starts = xs.start_ps[b:e][timed[b:e]]
        ends = starts + xs.duration_ps[b:e][timed[b:e]]
        planes.append(
            {
                "name": p.name,
                "id": p.id,
                "lines": len(p.lines),
                "events": p.num_events,
                "event_metadata": len(p.metadata_ids),
                "span_ms": float(ends.max() - starts.min()) / PS_PER_MS if len(starts) else 0.0,
                "device": p.device_kind,
                "kind": str(p.kind),
            }
        )
    starts = xs.start_ps[timed]
    span_ms = float((starts + xs.duration_ps[timed]).max() - starts.min()) / PS_PER_MS if len(starts) else 0.0
    on_device = ("device", "custom")
    devices = sorted({p["device"] for p in planes if p["device"] and p["kind"] in on_device})
    device_planes = [p for p in planes if p["kind"] in on_device and p["events"] > 0]
    has_gpu = any(p.device_type == "GPU" and p.num_events > 0 for p in xs.planes_of_kind(PlaneKind.DEVICE))
    gpu = map_collectives(xs) if has_gpu else None
    return {
        "host": host,
        "hostnames": xs.hostnames,
        "size_bytes": size_bytes,
        "planes": planes,
        "num_planes": len(planes),
        "num_lines": xs.num_lines,
        "num_events": xs.num_events,
        "span_ms": span_ms,
        "devices": devices,
        "active_device_planes": len(device_planes),
        "errors": xs.errors,
        "warnings": xs.warnings,
        "gpu": gpu if gpu and gpu["kernel_time_ps"] else None,
    }


def _format_gpu(g: dict[str, Any]) -> list[str]:
    """The GPU time split and communication of one host (see tools.collectives)."""
    span = g["kernel_time_ps"]
    out = [
        f"  gpu: {100 * g['compute_ps'] / span:.2f}% compute, {100 * g['non_compute_ps'] / span:.2f}% non-compute, "
        f"{100 * g['idle_ps'] / span:.2f}% idle over {span / PS_PER_MS:,.3f} ms"
        + (f" (rank {g['rank']})" if g.get("rank") is not None else "")
    ]
    if g["communication_ps"]:
        parts = ", ".join(
            f"{name} {count} kernels {total / PS_PER_MS:,.3f} ms"
            for name, (count, total) in sorted(g["collectives"].items(), key=lambda kv: -kv[1][1])
        )
        out.append(
            f"  communication: {g['communication_ps'] / PS_PER_MS:,.3f} ms, "
            f"{100 * g['overlap_ps'] / g['communication_ps']:.2f}% overlapped with computation; {parts}"
        )
    return out


def _format_summary(s: dict[str, Any]) -> str:
    size = f"{s['size_bytes'] / 1e6:,.2f} MB" if s["size_bytes"] is not None else "?"
    out = [
        f"host {s['host']}  ({size}; hostnames: {', '.join(s['hostnames']) or '-'})",
        f"  {s['num_planes']} planes, {s['num_lines']} lines, {s['num_events']:,} events, span {s['span_ms']:,.3f} ms",
        f"  devices: {', '.join(s['devices']) or 'none (host only)'}"
        f" ({s['active_device_planes']} device planes with events)",
    ]
    name_w = max([len("plane")] + [len(p["name"]) for p in s["planes"]])
    out.append(f"  {'plane':<{name_w}}  {'lines':>6}  {'events':>10}  {'span ms':>12}  device")
    for p in s["planes"]:
        out.append(
            f"  {p['name']:<{name_w}}  {p['lines']:>6}  {p['events']:>10,}  {p['span_ms']:>12,.3f}  {p['device']}"
        )
    if s.get("gpu"):
        out.extend(_format_gpu(s["gpu"]))
    for e in s["errors"]:
        out.append(f"  profiler error: {e}")
    return "\n".join(out)


def _is_profile_file(target: str) -> bool:
    suffixes = (".xplane.pb", ".xplane.pb.gz", ".pb", ".pb.gz", ".json", ".json.gz")
    return target.endswith(suffixes) or os.path.isfile(target)


def _load(path: str, args: argparse.Namespace) -> XSpace:
    if args.progress:
        bar = ProgressBar(f"reading {host_name_of(path)}", enabled=True, delay_s=0.0)
    else:
        bar = ProgressBar(f"reading {host_name_of(path)}")
    return load(path, progress=bar)


def cmd_summary(args: argparse.Namespace) -> int:
    target: str = args.target
    if target is None:
        from xprof_core.demo import DEMO_LOGDIR

        target = str(DEMO_LOGDIR)
        print(f"no target given: summarising the bundled demo logdir {target}", file=sys.stderr)
    items: list[tuple[str, str, str]] = []  # (run, host, url)
    problems: list[str] = []
    if _is_profile_file(target):
        items.append(("", host_name_of(target), target))
    else:
        from xprof_core.storage.logdir import Logdir

        logdir = Logdir(target)
        runs = logdir.runs()
        for found in runs:
            problems.extend(found.problems)
            for h in found.hosts:
                items.append((found.name, h.name, h.url))
        problems.extend(getattr(logdir, "problems", []))
        if not items:
            print(f"no profiles found under {target}", file=sys.stderr)
            return 1
    results: list[dict[str, Any]] = []
    failed = 0
    for run, host, url in items:
        try:
            xs = _load(url, args)
        except (DecodeError, OSError) as exc:
            failed += 1
            results.append({"run": run, "host": host, "error": str(exc)})
            continue
        size = os.path.getsize(url) if os.path.isfile(url) else None
        s = summarize(xs, host, size)
        s["run"] = run
        results.append(s)
    if args.json:
        json.dump({"hosts": results, "problems": problems}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        last_run = None
        for i, s in enumerate(results):
            if s["run"] != last_run and s["run"]:
                print(f"run {s['run']}")
                last_run = s["run"]
            if "error" in s:
                print(f"host {s['host']}: cannot read: {s['error']}")
            else:
                print(_format_summary(s))
            if i + 1 == len(results) or results[i + 1]["run"] != s["run"]:
                _print_straggler([r for r in results if r["run"] == s["run"] and r.get("gpu")])
        for p in problems:
            print(f"skipped: {p}")
    return 2 if failed else 0


def _print_straggler(hosts: list[dict[str, Any]]) -> None:
    """Across the ranks of a run: the one that spends the least time in collectives."""
    if len(hosts) < 2:
        return
    summary = reduce_collectives([h["gpu"] for h in hosts], [h["host"] for h in hosts])
    if summary["straggler"]:
        print(f"  straggler: {summary['straggler']} (the rank with the least time in collectives)")


def cmd_events(args: argparse.Namespace) -> int:
    xs = _load(args.file, args)
    origin = xs.origin_ps
    start_ps = None if args.start_ms is None else origin + int(args.start_ms * PS_PER_MS)
    end_ps = None if args.end_ms is None else origin + int(args.end_ms * PS_PER_MS)
    rows = xs.select(plane=args.plane, line=args.line, name=args.name, start_ps=start_ps, end_ps=end_ps)
    if args.limit is not None:
        rows = rows[: args.limit]
    names = xs.event_names(rows)
    line_idx = xs.line_of_event[rows]
    lines = xs.lines
    occurrences = xs.num_occurrences[rows]
    out = sys.stdout
    fields = ["plane", "line", "name", "start_ms", "duration_ms", "start_ps", "duration_ps", "num_occurrences", "stats"]
    writer = csv.DictWriter(out, fieldnames=fields) if args.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    for i, stats in enumerate(xs.iter_event_stats(rows)):
        ln = lines[int(line_idx[i])]
        row = int(rows[i])
        rec = {
            "plane": ln.plane.name,
            "line": ln.name,
            "name": names[i],
            "start_ms": (int(xs.start_ps[row]) - origin) / PS_PER_MS,
            "duration_ms": int(xs.duration_ps[row]) / PS_PER_MS,
            "start_ps": int(xs.start_ps[row]),
            "duration_ps": int(xs.duration_ps[row]),
            "num_occurrences": int(occurrences[i]),
            "stats": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in stats.items()},
        }
        if writer is not None:
            rec["stats"] = json.dumps(rec["stats"], sort_keys=True)
            writer.writerow(rec)
        else:
            out.write(json.dumps(rec) + "\n")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from xprof_core.execute import run_tool, run_tool_json
    from xprof_core.tools.datatable import to_csv

    params = dict(kv.split("=", 1) for kv in args.param)
    source: Any = args.source
    if args.run is not None:
        source = (args.source, args.run)
    _index_huge_hosts(args, source)
    if args.format == "json" and args.output:
        # Written as produced: tools that render JSON directly (trace_viewer) never build per-event objects.
        data = run_tool_json(args.tool, source, hosts=args.host or None, **params)
        opener = gzip.open if args.output.endswith(".gz") else open
        with opener(args.output, "wb") as f:
            f.write(data)
        print(f"wrote {args.tool} of {args.source} to {args.output}", file=sys.stderr)
        return 0
    result = run_tool(args.tool, source, hosts=args.host or None, **params)
    if args.format == "csv":
        tables = {k: v for k, v in result.items() if isinstance(v, dict) and "cols" in v and "rows" in v}
        if not tables:
            print(f"xprof-core: {args.tool} has no table to write as CSV", file=sys.stderr)
            return 1
        text = "".join(f"# {name}\n{to_csv(t)}" if len(tables) > 1 else to_csv(t) for name, t in tables.items())
    else:
        text = json.dumps(result, indent=None if args.output else 2, default=_json_default)
    if args.output:
        opener = gzip.open if args.output.endswith(".gz") else open
        with opener(args.output, "wt") as f:
            f.write(text)
        print(f"wrote {args.tool} of {args.source} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    return 0


def _index_huge_hosts(args: argparse.Namespace, source: Any) -> None:
    """For a table tool, index the hosts larger than --shard_mb in shards on --workers processes, with a
    progress bar of shard tasks; the indexes go to the in-process cache the tool then reads."""
    from xprof_core.execute import INDEX_CACHE, _identity, resolve_hosts
    from xprof_core.model.kineto import is_trace_json_name
    from xprof_core.tools import get_tool

    shard_bytes = int(args.shard_mb * (1 << 20))
    if shard_bytes <= 0 or get_tool(args.tool).needs != "index":
        return
    huge = []
    for name, url in resolve_hosts(source):
        if args.host and name not in args.host:
            continue
        if url.endswith(".gz") or is_trace_json_name(url) or _identity(url) is None:
            continue  # read whole: a shard would inflate or transcode all of it
        if os.path.getsize(url) > shard_bytes:
            huge.append((name, url))
    if not huge:
        return
    from xprof_core.serve.executor import LocalExecutor
    from xprof_core.serve.sharding import sharded_host_index

    roots = sorted({os.path.dirname(os.path.realpath(url)) for _, url in huge})
    executor = LocalExecutor(args.workers, roots=roots)
    try:
        for name, url in huge:
            label = f"indexing {name} in shards"
            bar = ProgressBar(label, enabled=True, delay_s=0.0) if args.progress else ProgressBar(label)
            built, _ = sharded_host_index(lambda tasks: executor.map(tasks, 3600), name, url, shard_bytes, None, bar)
            key = _identity(url)
            if key is not None:
                INDEX_CACHE.put(key, built.partial)
    finally:
        executor.close()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xprof-core",
        description="Read ML profiler traces (XSpace .xplane.pb, PyTorch trace .json) from the command line.",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="always draw the progress bar on stderr, from the start "
        "(default: on a terminal, once a read lasts over half a second)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="hosts, planes, lines, event counts, time span, devices")
    p.add_argument(
        "target",
        nargs="?",
        help="an .xplane.pb[.gz] or trace .json[.gz] file, or a logdir (local path or fsspec URL); "
        "default: the bundled demo logdir",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("events", help="the events that match, with their stats (JSON lines or CSV)")
    p.add_argument("file", help="an .xplane.pb[.gz] or trace .json[.gz] file (local path or fsspec URL)")
    p.add_argument("--plane", help="regex on the plane name, e.g. '/device:GPU'")
    p.add_argument("--line", help="regex on the line name, e.g. 'Stream'")
    p.add_argument("--name", help="regex on the event name")
    p.add_argument("--start-ms", type=float, help="window start, ms from the profile start")
    p.add_argument("--end-ms", type=float, help="window end, ms from the profile start")
    p.add_argument("--limit", type=int, help="at most this many events")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("convert", help="run an analysis tool headless and write its output (JSON or CSV)")
    p.add_argument(
        "source", help="an .xplane.pb[.gz] or trace .json[.gz] file, a session or run folder, or a logdir with --run"
    )
    p.add_argument(
        "--tool",
        required=True,
        help="overview_page, input_pipeline_analyzer, framework_op_stats, hlo_stats, op_profile, "
        "kernel_stats, trace_viewer, memory_profile, memory_viewer, roofline_model, graph_viewer or "
        "xprof_input_pipeline",
    )
    p.add_argument("--run", help="the run to use when SOURCE is a logdir holding several")
    p.add_argument("--host", action="append", help="only this host (repeat for several; default: all)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a tool parameter, e.g. --param resolution=0 for trace_viewer",
    )
    p.add_argument("-o", "--output", help="write here instead of stdout (.gz compresses)")
    p.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default json)")
    p.add_argument(
        "--shard_mb",
        type=float,
        default=96,
        help="table tools: index hosts larger than this many MB in shards of about this size, on --workers "
        "processes at once (0: one pass per host; default 96)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes for sharded hosts (default: the cores)")
    p.set_defaults(func=cmd_convert)

    from xprof_core.cli_analysis import add_subcommands

    add_subcommands(sub)  # diff, sql, export
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except (XprofError, OSError, ValueError) as exc:
        print(f"xprof-core: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
