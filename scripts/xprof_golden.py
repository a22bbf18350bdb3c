#!/usr/bin/env python3
"""Record the headline figures that OpenXLA XProf computes on our test profiles.

The output, ``tests/data/xprof_golden.json``, is the reference ("golden") data
that our own tools are tested and benchmarked against.  Every number in it
comes from running XProf itself; nothing is computed by ``xprof_core``.

Requirements
------------
This script must run with a Python that has the PyPI package ``xprof``
installed.  Keep that interpreter OUTSIDE the project's environment, so that
nothing of XProf leaks into it, e.g.::

    python3 -m venv ../xprof-peer          # any folder outside the project
    ../xprof-peer/bin/pip install xprof
    # from the project root:
    ../xprof-peer/bin/python scripts/xprof_golden.py

Options: ``--out`` (default ``tests/data/xprof_golden.json``), ``--real-dir``
(default ``../shared/data/real`` relative to the project root),
``--keep-raw DIR`` (also save XProf's raw tool outputs there), ``--timeout``.
``--more-tools`` records memory_profile, roofline_model, memory_viewer and
graph_viewer instead, on the single-host inputs and the H200 profiles
(``--h200-dir``, default ``../shared/data/h200``), into
``tests/data/xprof_golden_tools.json`` (see ``tests/data/XPROF_GOLDEN_TOOLS.md``).

How XProf is driven
-------------------
For each input and each tool, a fresh child process (this same script with
``--worker``) calls ``xprof.convert.raw_to_tool_data.xspace_to_tool_data(
[paths], tool, {})`` (default params), i.e. the same path that the XProf web
server takes.  XProf writes cache files (``*.op_stats_v2.pb``, ``*.SSTABLE``,
``*.hlo_proto.pb``, ...) next to its inputs and reuses them, so every run gets
its own fresh temporary copy of the inputs; the inputs are never touched.

Costs (under each file's ``"cost"`` key, per tool): ``wall_s`` is the child's
whole wall time (interpreter start, importing xprof, the conversion),
``tool_s`` the time spent inside the conversion call, ``peak_rss_mb`` the
child's peak RSS (VmHWM from /proc/self/status, read by the child right after
the conversion; the child's ``ru_maxrss`` is not used because Linux carries the
parent's high-water mark across fork+exec), ``import_rss_mb`` its peak RSS
just before the conversion (the fixed cost of Python + xprof), and
``output_bytes`` the size of XProf's answer.

The tool ``trace_viewer`` only accepts one XSpace; for a multi-host input
XProf's error message is recorded instead.  For the corrupted input every tool
fails and the error text is recorded (temp paths replaced by ``<tmp>``).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

TOOLS = (
    "overview_page",
    "input_pipeline_analyzer",
    "kernel_stats",
    "framework_op_stats",
    "hlo_stats",
    "trace_viewer",
    "trace_viewer@",
)
# Pseudo-tool: the list of tools XProf offers for the input.
TOOL_NAMES = "tool_names"
# The tools that ``--more-tools`` records into their own file.
MORE_TOOLS = ("memory_profile", "roofline_model", "memory_viewer", "graph_viewer")
# Pseudo-tool: the HLO modules XProf finds in the input (name -> HLO proto bytes).
HLO_MODULES = "hlo_modules"
HLO_TOOLS = ("memory_viewer", "graph_viewer", HLO_MODULES)

KERNEL_TOP = 50
OP_TOP = 10
STEP_LIST_MAX = 200

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------
# Worker: runs inside a child process, calls XProf once.
# ----------------------------------------------------------------------------


def _rss_mb_self() -> float:
    """Peak RSS of this process's own address space (VmHWM), in MiB.

    ``ru_maxrss`` of a child is useless here: Linux carries the parent's RSS
    high-water mark at fork over the child's exec, so a child's ``ru_maxrss``
    is never below its parent's RSS.  VmHWM belongs to the new address space
    made by exec, so it measures only the worker (Python + xprof + the tool).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_main(tool: str, out_file: str, paths: list[str], params: dict | None = None) -> int:
    """Call XProf's converter for ``tool`` on ``paths``; write raw output.

    Writes ``out_file`` (XProf's output, bytes) and ``out_file + '.meta.json'``
    (success flag, error text, timings). ``params`` are the tool's options, as
    XProf's web server passes them to ``xspace_to_tool_data``. The HLO tools
    (``memory_viewer``, ``graph_viewer`` and the pseudo-tool ``hlo_modules``,
    which lists the modules with their HLO proto sizes) first let XProf write
    the modules' ``.hlo_proto.pb`` files, as its ``tool_names`` call does.
    """
    from xprof.convert import _pywrap_profiler_plugin, raw_to_tool_data

    params = params or {}
    if tool in HLO_TOOLS:
        raw_to_tool_data.xspace_to_tool_names(paths)

    meta: dict = {"import_rss_mb": round(_rss_mb_self(), 1)}
    captured: dict = {}

    def wrapper(xspace_arg, tool_arg, options):
        # Same call XProf makes by default, but we keep the raw bytes so the
        # error text of a failed conversion is not lost.
        raw, ok = _pywrap_profiler_plugin.xspace_to_tools_data(xspace_arg, tool_arg, options)
        captured["raw"] = raw
        captured["success"] = ok
        return raw, ok

    data = None
    t0 = time.perf_counter()
    try:
        if tool == TOOL_NAMES:
            names = raw_to_tool_data.xspace_to_tool_names(paths)
            data = ",".join(names).encode()
            captured["success"] = bool(names)
        elif tool == HLO_MODULES:
            session = Path(paths[0]).parent
            modules = {
                p.name[: -len(".hlo_proto.pb")]: p.stat().st_size for p in sorted(session.glob("*.hlo_proto.pb"))
            }
            data = json.dumps(modules).encode()
            captured["success"] = True
        else:
            data, content_type = raw_to_tool_data.xspace_to_tool_data(paths, tool, params, wrapper)
            meta["content_type"] = content_type
    except Exception as e:  # noqa: BLE001 - we record whatever XProf raises
        meta["exception"] = f"{type(e).__name__}: {e}"[:2000]
    meta["tool_s"] = round(time.perf_counter() - t0, 4)
    meta["peak_rss_mb"] = round(_rss_mb_self(), 1)
    meta["success"] = bool(captured.get("success", False))
    if not meta["success"] and captured.get("raw"):
        raw = captured["raw"]
        meta["error"] = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))[:2000]
    if data is None:
        meta["data_is_none"] = True
        data = b""
    if isinstance(data, str):
        data = data.encode("utf-8")
    Path(out_file).write_bytes(data)
    Path(out_file + ".meta.json").write_text(json.dumps(meta))
    return 0


# ----------------------------------------------------------------------------
# Parent: copies inputs, spawns workers, measures cost.
# ----------------------------------------------------------------------------


_GLOG_PREFIX = re.compile(r"^([EFW])\d{4} [\d:.]+\s+\d+ ")
_TMP_PATH = re.compile(r"/\S*?xprof_golden_[^/\s]+/")
# XProf logs these at error level on every run, successful or not.
_LOG_NOISE = ("No UnifiedProfileProcessor registered", "No ProfileProcessor registered")


def _clean(msg: str, tmp: str | None = None) -> str:
    """Strip glog timestamps/thread ids and our temp dir from a message."""
    msg = _GLOG_PREFIX.sub(r"\1 ", msg.strip())
    if tmp:
        msg = msg.replace(tmp.rstrip("/") + "/", "<tmp>/")
    return _TMP_PATH.sub("<tmp>/", msg)[:400]


def _stderr_digest(text: str, tmp: str, limit: int = 6) -> list[str]:
    """Last error/fatal lines of XProf's log (glog-style 'E'/'F' prefixes)."""
    lines = [
        ln
        for ln in text.splitlines()
        if (ln[:1] in ("E", "F") or "Traceback" in ln or "Error" in ln) and not any(n in ln for n in _LOG_NOISE)
    ]
    return [_clean(ln, tmp) for ln in lines[-limit:]]


def run_tool(
    inputs: list[Path], tool: str, timeout: float, keep_raw: Path | None, tag: str, params: dict | None = None
) -> tuple[dict, bytes]:
    """Run one XProf tool on a fresh temp copy of ``inputs`` (``.gz`` inputs are decompressed).

    Returns (info, raw_output).  ``info`` has the cost and success fields.
    """
    with tempfile.TemporaryDirectory(prefix="xprof_golden_") as tmp:
        tmp_path = Path(tmp)
        # Mimic the logdir layout: <tmp>/plugins/profile/<session>/<host>.xplane.pb
        copies = []
        for src in inputs:
            session = tmp_path / "plugins" / "profile" / src.parent.name
            session.mkdir(parents=True, exist_ok=True)
            if src.name.endswith(".gz"):
                dst = session / src.name[: -len(".gz")]
                with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                dst = session / src.name
                shutil.copyfile(src, dst)
            copies.append(str(dst))
        out_file = str(tmp_path / "out.bin")
        log_file = tmp_path / "log.txt"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--tool",
            tool,
            "--worker-out",
            out_file,
            "--params",
            json.dumps(params or {}),
            *copies,
        ]
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        with open(log_file, "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
            killed = {"timeout": False}

            def _kill() -> None:
                killed["timeout"] = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, _kill)
            timer.start()
            try:
                _, status, rusage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - t0
        info: dict = {
            "wall_s": round(wall, 3),
            # Fallback only; the worker's own VmHWM (in meta) replaces it.
            "peak_rss_mb": round(rusage.ru_maxrss / 1024.0, 1),
            "returncode": proc.returncode,
        }
        if killed["timeout"]:
            info["timed_out"] = True
        meta_path = Path(out_file + ".meta.json")
        raw = b""
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            info.update(meta)
            raw = Path(out_file).read_bytes()
        else:
            info["success"] = False
        log_text = log_file.read_text("utf-8", "replace")
        if proc.returncode != 0 or not info.get("success"):
            info["log_errors"] = _stderr_digest(log_text, tmp)
        for k in ("error", "exception"):
            if info.get(k):
                info[k] = _clean(info[k], tmp)
        if keep_raw is not None:
            keep_raw.mkdir(parents=True, exist_ok=True)
            safe = tag.replace("/", "__").replace("@", "_at")
            (keep_raw / f"{safe}.out").write_bytes(raw)
            (keep_raw / f"{safe}.log").write_text(log_text)
        return info, raw


# ----------------------------------------------------------------------------
# Extraction of headline figures from XProf's JSON (Google DataTable style).
# ----------------------------------------------------------------------------


def _col_ids(table: dict) -> list[str]:
    return [c.get("id") for c in table.get("cols", [])]


def _rows(table: dict) -> list[dict]:
    """Rows of a DataTable as dicts keyed by column id."""
    ids = _col_ids(table)
    out = []
    for r in table.get("rows", []):
        cells = r.get("c", [])
        out.append({ids[i]: (c.get("v") if isinstance(c, dict) else c) for i, c in enumerate(cells) if i < len(ids)})
    return out


def _as_tables(obj) -> list[dict]:
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list):
        return [t for t in obj if isinstance(t, dict)]
    return []


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


NAME_MAX = 256
NAME_KEEP = 160


def _name_fields(key: str, name) -> dict:
    """``{key: name}``; a very long name (C++ template kernels can be 4 KB) is
    cut to its first NAME_KEEP characters plus "...", with the full
    length and SHA-1 kept so a test can still match it exactly."""
    if name is None:
        return {key: None}
    name = str(name)
    if len(name) <= NAME_MAX:
        return {key: name}
    return {
        key: name[:NAME_KEEP] + "...",
        f"{key}_len": len(name),
        f"{key}_sha1": hashlib.sha1(name.encode("utf-8")).hexdigest(),
    }


def _step_section(tables: list[dict]) -> dict | None:
    """The per-step table (column 'stepnum') shared by overview/input pipeline."""
    for t in tables:
        if "stepnum" in _col_ids(t):
            rows = _rows(t)
            p = t.get("p", {}) or {}
            times = [_num(r.get("stepTimeMs")) for r in rows]
            sec: dict = {
                "step_count": len(rows),
                "avg_step_ms": _r(sum(times) / len(times), 6) if times else None,
                "min_step_ms": _r(min(times), 6) if times else None,
                "max_step_ms": _r(max(times), 6) if times else None,
                "hardware_type": p.get("hardware_type"),
                "reported": {
                    k: p.get(k)
                    for k in (
                        "steptime_ms_average",
                        "steptime_ms_minimum",
                        "steptime_ms_maximum",
                        "steptime_ms_standard_deviation",
                    )
                    if k in p
                },
            }
            nums = [str(r.get("stepnum")) for r in rows]
            if len(rows) <= STEP_LIST_MAX:
                sec["step_numbers"] = nums
                sec["step_times_ms"] = [_r(t_, 6) for t_ in times]
            else:
                sec["step_numbers_first_last"] = [nums[0], nums[-1]]
            # Mean of each breakdown column over steps (ms), from the rows.
            breakdown = {}
            for cid in _col_ids(t):
                if cid.endswith("TimeMs") and cid != "stepTimeMs" and rows:
                    vals = [_num(r.get(cid)) for r in rows]
                    breakdown[cid] = _r(sum(vals) / len(vals), 6)
            sec["avg_breakdown_ms"] = breakdown
            return sec
    return None


def _diagnostics(tables: list[dict]) -> list[dict]:
    for t in tables:
        if _col_ids(t) == ["severity", "message"]:
            return [{"severity": r.get("severity"), "message": str(r.get("message"))[:300]} for r in _rows(t)]
    return []


def extract_overview(obj) -> dict:
    tables = _as_tables(obj)
    out: dict = {"n_tables": len(tables)}
    steps = _step_section(tables)
    if steps is not None:
        out["steps"] = steps
    for t in tables:
        ids = _col_ids(t)
        p = t.get("p", {}) or {}
        if "device_type" in p or "host_count" in p:
            out["run_environment"] = {
                k: p.get(k)
                for k in (
                    "device_type",
                    "device_core_count",
                    "host_count",
                    "task_count",
                    "is_training",
                )
                if k in p
            }
        if "selfTimePercent" in ids:
            rows = _rows(t)
            out["analysis"] = {k: v for k, v in p.items() if k not in ("remark_text", "remark_color")}
            out["top_ops_rows"] = len(rows)
            out["top_ops"] = [
                {
                    "category": r.get("category"),
                    **_name_fields("operation", r.get("operation")),
                    "selfTimePercent": r.get("selfTimePercent"),
                }
                for r in rows[:5]
            ]
        if "tip_type" in ids:
            out["recommendation"] = {k: p.get(k) for k in ("bottleneck", "statement") if k in p}
    out["diagnostics"] = _diagnostics(tables)
    return out


def extract_input_pipeline(obj) -> dict:
    tables = _as_tables(obj)
    out: dict = {"n_tables": len(tables)}
    steps = _step_section(tables)
    if steps is not None:
        # The per-step lists are the same table as overview_page's; keep them
        # once (there) to keep the golden file small.
        steps.pop("step_times_ms", None)
        steps.pop("step_numbers", None)
        out["steps"] = steps
    for t in tables:
        if "stepnum" in _col_ids(t):
            # The verdict, its statements and the per-category averages (XProf rounds them to 0.1 ms).
            p = t.get("p", {}) or {}
            out["analysis"] = {k: v for k, v in sorted(p.items()) if k not in ("step_time_graph_column_ids",)}
        if "opName" in _col_ids(t):
            out["host_input_op_rows"] = len(t.get("rows", []))
            # The host-side breakdown of input time (µs) and the input ops it comes from.
            out["host_breakdown_us"] = dict(sorted((t.get("p", {}) or {}).items()))
            out["host_input_ops"] = [
                {
                    **_name_fields("op_name", r.get("opName")),
                    "count": int(_num(r.get("count"))),
                    "time_ms": _r(_num(r.get("timeInMs")), 6),
                    "self_time_ms": _r(_num(r.get("selfTimeInMs")), 6),
                    "category": r.get("category"),
                }
                for r in _rows(t)[:20]
            ]
    # Same diagnostics table as overview_page's: keep only the count here.
    out["n_diagnostics"] = len(_diagnostics(tables))
    return out


def extract_kernel_stats(obj) -> dict:
    tables = _as_tables(obj)
    rows = []
    for t in tables:
        if "kernel_name" in _col_ids(t):
            rows.extend(_rows(t))
    per: dict = defaultdict(lambda: {"occurrences": 0, "total_us": 0.0, "rows": 0})
    op_names: dict = defaultdict(set)
    for r in rows:
        name = str(r.get("kernel_name"))
        k = per[name]
        k["occurrences"] += int(_num(r.get("occurrences")))
        k["total_us"] += _num(r.get("total_duration_us"))
        k["rows"] += 1
        op_names[name].add(str(r.get("op_name")))
    ranked = sorted(per.items(), key=lambda kv: (-kv[1]["total_us"], kv[0]))
    top = []
    for name, k in ranked[:KERNEL_TOP]:
        entry = {
            **_name_fields("name", name),
            "occurrences": k["occurrences"],
            "total_us": _r(k["total_us"]),
        }
        if k["rows"] > 1:
            entry["rows"] = k["rows"]
        ops = sorted(op_names[name])
        if len(ops) == 1:
            entry.update(_name_fields("op_name", ops[0]))
        else:
            entry["op_names"] = [_name_fields("op_name", o)["op_name"] for o in ops[:5]]
        top.append(entry)
    return {
        "rows": len(rows),
        "distinct_kernels": len(per),
        "total_occurrences": sum(k["occurrences"] for k in per.values()),
        "total_duration_us": _r(sum(k["total_us"] for k in per.values())),
        "top_by_total_duration": top,
    }


def _op_table_summary(table: dict, fields: tuple[str, ...]) -> dict:
    rows = _rows(table)
    ranked = sorted(
        rows,
        key=lambda r: (-_num(r.get("total_self_time")), str(r.get(fields[0]))),
    )
    top = []
    for r in ranked[:OP_TOP]:
        e: dict = {}
        for f in fields:
            e.update(_name_fields(f, r.get(f)))
        e["occurrences"] = int(_num(r.get("occurrences")))
        e["total_time_us"] = _r(_num(r.get("total_time")))
        e["total_self_time_us"] = _r(_num(r.get("total_self_time")))
        if "total_self_time_percent" in r:
            e["total_self_time_percent"] = _r(_num(r.get("total_self_time_percent")), 6)
        top.append(e)
    return {
        "rows": len(rows),
        "sum_total_self_time_us": _r(sum(_num(r.get("total_self_time")) for r in rows)),
        "sum_occurrences": int(sum(_num(r.get("occurrences")) for r in rows)),
        "top_by_total_self_time": top,
    }


def extract_framework_op_stats(obj) -> dict:
    tables = [t for t in _as_tables(obj) if "operation" in _col_ids(t)]
    # XProf's TfStatsDatabase has two tables: with_idle, then without_idle.
    names = ["with_idle", "without_idle"]
    out: dict = {"n_tables": len(tables)}
    fields = ("host_or_device", "type", "operation")
    for i, t in enumerate(tables):
        key = names[i] if i < len(names) else f"table_{i}"
        s = _op_table_summary(t, fields)
        if key == "with_idle":
            # Same ops as without_idle plus the IDLE rows; the top list would
            # mostly repeat it, so keep only the IDLE rows here.
            s["idle_rows"] = [e for e in s.pop("top_by_total_self_time") if e.get("type") == "IDLE"]
        rows = _rows(t)
        for side in ("Device", "Host"):
            s[f"{side.lower()}_rows"] = sum(1 for r in rows if r.get("host_or_device") == side)
            s[f"{side.lower()}_self_time_us"] = _r(
                sum(_num(r.get("total_self_time")) for r in rows if r.get("host_or_device") == side)
            )
        out[key] = s
    return out


def extract_hlo_stats(obj) -> dict:
    tables = [t for t in _as_tables(obj) if "hlo_op_name" in _col_ids(t)]
    if not tables:
        return {"rows": 0}
    return _op_table_summary(tables[0], ("hlo_op_name", "category", "program_id", "tf_op_name"))


# Lines XProf derives on device planes (trace viewer thread names, with or without " - from #N").
DERIVED_LINES = ("Steps", "XLA Modules", "XLA Ops", "Framework Ops", "Framework Name Scope", "Source code")


def _derived_lines(events: list) -> dict:
    """Per "<device plane> | <derived line>": [events, sum of durations (µs), the 3 earliest names]."""
    procs, threads = {}, {}
    for e in events:
        if isinstance(e, dict) and e.get("ph") == "M":
            if e.get("name") == "process_name":
                procs[e.get("pid")] = str(e.get("args", {}).get("name", ""))
            elif e.get("name") == "thread_name":
                threads[(e.get("pid"), e.get("tid"))] = str(e.get("args", {}).get("name", ""))
    out: dict = {}
    for e in events:
        if not isinstance(e, dict) or e.get("ph") != "X":
            continue
        thread = threads.get((e.get("pid"), e.get("tid")), "")
        device = procs.get(e.get("pid"), "").split(" ")[-1]
        if not device.startswith("/device:") or thread.split(" - from #")[0] not in DERIVED_LINES:
            continue
        entry = out.setdefault(f"{device} | {thread}", [0, 0.0, []])
        entry[0] += 1
        entry[1] += _num(e.get("dur"))
        entry[2].append((_num(e.get("ts")), str(e.get("name"))[:NAME_KEEP]))
    return {k: [v[0], _r(v[1]), [name for _, name in sorted(v[2])[:3]]] for k, v in sorted(out.items())}


def extract_trace(obj) -> dict:
    events = obj.get("traceEvents", []) if isinstance(obj, dict) else []
    phases = Counter((e.get("ph") if isinstance(e, dict) and "ph" in e else "<none>") for e in events)
    x_pids = {e.get("pid") for e in events if isinstance(e, dict) and e.get("ph") == "X"}
    out: dict = {
        "total_events": len(events),
        "complete_events_X": phases.get("X", 0),
        "by_ph": dict(sorted(phases.items())),
        "pids_with_X": len(x_pids),
    }
    xs = [e for e in events if isinstance(e, dict) and e.get("ph") == "X"]
    if xs:
        ts = [_num(e.get("ts")) for e in xs]
        ends = [_num(e.get("ts")) + _num(e.get("dur")) for e in xs]
        out["X_span_us"] = _r(max(ends) - min(ts))
        out["X_sum_dur_us"] = _r(sum(_num(e.get("dur")) for e in xs))
    out["derived_lines"] = _derived_lines(events)
    # Truncation / windowing fields and other small top-level fields.
    for k, v in obj.items() if isinstance(obj, dict) else []:
        if k in ("traceEvents", "stackFrames", "metadata", "details"):
            continue
        if isinstance(v, (int, float, bool, str)) or (isinstance(v, list) and len(v) <= 4):
            out[k] = v
    return out


EXTRACTORS = {
    "overview_page": extract_overview,
    "input_pipeline_analyzer": extract_input_pipeline,
    "kernel_stats": extract_kernel_stats,
    "framework_op_stats": extract_framework_op_stats,
    "hlo_stats": extract_hlo_stats,
    "trace_viewer": extract_trace,
    "trace_viewer@": extract_trace,
}


def summarise(tool: str, info: dict, raw: bytes) -> dict:
    """Headline figures for one tool run (or what went wrong)."""
    res: dict = {"success": bool(info.get("success"))}
    for k in ("error", "exception", "log_errors", "timed_out"):
        if info.get(k):
            res[k] = info[k]
    if info.get("returncode", 0) != 0:
        res["returncode"] = info["returncode"]
    if tool == TOOL_NAMES:
        res["tools"] = raw.decode("utf-8", "replace").split(",") if raw else []
        return res
    if not raw:
        res["empty_output"] = True
        return res
    try:
        obj = json.loads(raw)
    except ValueError as e:
        res["json_error"] = str(e)[:300]
        res["output_head"] = raw[:200].decode("utf-8", "replace")
        return res
    res.update(EXTRACTORS[tool](obj))
    return res


# ----------------------------------------------------------------------------
# The memory, roofline and HLO tools (``--more-tools``)
# ----------------------------------------------------------------------------

MAX_MODULES = 12  # memory_viewer: the largest modules of a file (by HLO proto size)
BREAKDOWN_TOP = 50
MAX_HEAP_TOP = 25
ROOFLINE_TOP = 60
GRAPH_WIDTHS = (1, 2)


def _sha1_lines(items) -> str:
    return hashlib.sha1("\n".join(str(x) for x in items).encode()).hexdigest()


def extract_memory_profile(obj) -> dict:
    """Per memory: XProf's summary, the breakdown at the peak and a digest of the sampled timeline."""
    out: dict = {"memory_ids": obj.get("memoryIds", []), "hlo_modules": len(obj.get("hloModules", [])), "memories": {}}
    for mid, a in sorted(obj.get("memoryProfilePerAllocator", {}).items()):
        ps = a.get("profileSummary", {})
        peak = ps.get("peakStats", {})
        snaps = a.get("memoryProfileSnapshots", [])
        special = a.get("specialAllocations", [])
        rows = []
        for act in a.get("activeAllocations", []):
            i = int(act.get("snapshotIndex", -1))
            m = snaps[i]["activityMetadata"] if i >= 0 else special[int(act.get("specialIndex", 0))]
            rows.append(
                [
                    int(m.get("allocationBytes", 0)),
                    int(m.get("requestedBytes", 0)),
                    m.get("tfOpName", ""),
                    m.get("regionType", ""),
                    m.get("dataType", ""),
                    m.get("tensorShape", ""),
                    int(act.get("numOccurrences", 0)),
                    int(m.get("stepId", 0)),
                ]
            )
        timeline = a.get("sampledTimelineSnapshots", [])
        activity = Counter(t.get("activityMetadata", {}).get("memoryActivity") for t in timeline)
        out["memories"][mid] = {
            "peak_bytes": int(peak.get("peakBytesInUse", 0)),
            "peak_heap_bytes": int(peak.get("heapAllocatedBytes", 0)),
            "peak_stack_bytes": int(peak.get("stackReservedBytes", 0)),
            "peak_free_bytes": int(peak.get("freeMemoryBytes", 0)),
            "peak_fragmentation": peak.get("fragmentation", 0),
            "peak_time_ps": int(ps.get("peakStatsTimePs", 0)),
            "peak_bytes_usage_lifetime": int(ps.get("peakBytesUsageLifetime", 0)),
            "memory_capacity": int(ps.get("memoryCapacity", 0)),
            "peak_step": rows[0][7] if rows else None,
            "breakdown_rows": len(rows),
            "breakdown": rows[:BREAKDOWN_TOP],
            "timeline_points": len(timeline),
            # Below 1000 events XProf's timeline is every event: the counts are the allocator's.
            "timeline_complete": len(timeline) < 1000,
            "timeline_allocations": activity.get("ALLOCATION", 0),
            "timeline_deallocations": activity.get("DEALLOCATION", 0),
            "timeline_sha1": _sha1_lines(
                f"{t.get('timeOffsetPs')},{t['aggregationStats'].get('heapAllocatedBytes')},"
                f"{t['aggregationStats'].get('stackReservedBytes')}"
                for t in timeline
            ),
        }
    return out


_ROOFLINE_FIELDS = (
    "category",
    "operation",
    "hlo_module_id",
    "occurrences",
    "total_time",
    "total_self_time",
    "measured_flop_rate",
    "model_flop_rate",
    "measured_memory_bw",
    "hbm_bw",
    "operational_intensity",
    "hbm_operational_intensity",
    "bound_by",
    "roofline_efficiency",
)


def extract_roofline(obj) -> dict:
    """The device peaks and XProf's per-op rows of the whole profile ("Total", infeed/outfeed included)."""
    tables = _as_tables(obj)
    out: dict = {}
    for t in tables:
        if "bound_by" not in _col_ids(t):
            continue
        out["properties"] = t.get("p", {})
        rows = [r for r in _rows(t) if r.get("step") == "Total" and r.get("include_infeed_outfeed") in (True, None)]
        out["rows"] = len(rows)
        out["records"] = [{f: r.get(f) for f in _ROOFLINE_FIELDS} for r in rows[:ROOFLINE_TOP]]
        out["steps"] = sorted({str(r.get("step")) for r in _rows(t)})
    out["diagnostics"] = _diagnostics(tables)
    return out


_HEAP_FIELDS = (
    "instructionName",
    "logicalBufferId",
    "logicalBufferSizeMib",
    "unpaddedShapeMib",
    "shapeString",
    "groupName",
    "opCode",
    "tfOpName",
)


def extract_memory_viewer(obj) -> dict:
    """Peak heap, its composition (largest buffers first) and digests of the heap over program order."""
    if not isinstance(obj, dict):
        return {}
    keys = (
        "moduleName",
        "entryComputationName",
        "peakHeapMib",
        "peakUnpaddedHeapMib",
        "peakHeapSizePosition",
        "entryComputationParametersMib",
        "nonReusableMib",
        "maybeLiveOutMib",
        "totalBufferAllocationMib",
        "indefiniteBufferAllocationMib",
    )
    heap = obj.get("heapSizes", [])
    return {
        **{k: obj.get(k) for k in keys},
        "heap_points": len(heap),
        "heap_sizes_sha1": _sha1_lines(repr(float(x)) for x in heap),
        "heap_sizes_head": heap[:8],
        "max_heap_objects": len(obj.get("maxHeap", [])),
        "max_heap_by_size": [
            {k: o.get(k) for k in _HEAP_FIELDS if k in o} for o in obj.get("maxHeapBySize", [])[:MAX_HEAP_TOP]
        ],
        "logical_buffer_spans": {
            k: [v.get("start", 0), v.get("limit", 0)] for k, v in obj.get("logicalBufferSpans", {}).items()
        },
        "indefinite_lifetimes": len(obj.get("indefiniteLifetimes", [])),
        "buffer_blocks": len(obj.get("bufferBlocks", [])),
    }


_DOT_NODE = re.compile(r'^(\w+) \[label=<(.*?)>, shape=(\w+), tooltip="(.*?)", style="([^"]*)"', re.S | re.M)
_DOT_EDGE = re.compile(r"^(\w+) -> (\w+) \[(.*?)\];", re.M)
_DOT_TIP = re.compile(r'tooltip="([^"\n]*) -> ([^"\n]*)"')
_DOT_CLUSTER = re.compile(r"label = <(Fused expression|Subcomputation) for <b>([^<]+)</b>")
_DOT_TITLE = re.compile(r"label = <<b>([^<]*)")


def extract_graph(raw: bytes) -> dict:
    """Nodes (instruction name -> normal, dashed or highlight), edges, clusters and root of XProf's DOT graph.

    Node names come from the edges' tooltips ("a -> b"), else from the label's
    bold name (parameters are labelled "Parameter N"); the "ROOT" tag is not a
    node but names the computation's root. A called computation's edge reads
    "computation => caller".
    """
    text = raw.decode("utf-8", "replace")
    names: dict[str, str] = {}
    styles: dict[str, str] = {}
    for m in _DOT_NODE.finditer(text):
        node_id, label, shape, _tooltip, style = m.groups()
        if node_id.startswith("cluster_"):
            continue
        bold = re.match(r"<b>([^<]*)</b>", label)
        names[node_id] = bold.group(1) if bold else label
        styles[node_id] = "highlight" if shape == "diamond" else ("dashed" if "dashed" in style else "normal")
    edges = set()
    root = None
    for m in _DOT_EDGE.finditer(text):
        a, b, attrs = m.groups()
        tip = _DOT_TIP.search(attrs)
        if b.startswith("cluster_") and "ltail" not in attrs:
            root = a
        elif tip and "ltail" in attrs:
            edges.add(f"{tip.group(1)} => {tip.group(2)}")
        elif tip:
            names[a], names[b] = tip.group(1), tip.group(2)
            edges.add(f"{tip.group(1)} -> {tip.group(2)}")
    title = _DOT_TITLE.search(text)
    return {
        "title": title.group(1).split("<br/>")[0] if title else None,
        "root": names.get(root) if root else None,
        "nodes": {names[i]: styles[i] for i in sorted(styles, key=lambda i: names[i])},
        "clusters": sorted(f"{kind}: {name}" for kind, name in set(_DOT_CLUSTER.findall(text))),
        "edges": sorted(edges),
    }


def _entry_instructions(hlo_text: str) -> tuple[list[str], list[str]]:
    """(ENTRY instruction names, instruction names of the first fused computation) from XProf's HLO text."""
    entry: list[str] = []
    fused: list[str] = []
    block: list[str] | None = None
    for line in hlo_text.splitlines():
        if line.startswith("ENTRY "):
            block = entry
        elif line and not line.startswith(" ") and line.endswith("{"):
            block = fused if not fused and line.startswith("fused_computation") else None
        elif line.startswith("}"):
            block = None
        elif block is not None:
            m = re.match(r"\s+(?:ROOT )?([\w.\-]+) = ", line)
            if m:
                block.append(m.group(1))
    return entry, fused


def _graph_nodes(entry: list[str], fused: list[str]) -> list[str]:
    """A few nodes to render: the first computed entry op, the middle one, the root, one fused op."""
    computed = [n for n in entry if not n.startswith(("param", "p_", "Arg_", "constant"))] or entry
    picks = []
    if computed:
        picks += [computed[0], computed[len(computed) // 2], computed[-1]]
    inner = [n for n in fused if not n.startswith("param")]
    if inner:
        picks.append(inner[-1])
    return list(dict.fromkeys(picks))


def process_more(key: str, inputs: list[Path], timeout: float, keep_raw: Path | None) -> dict:
    """XProf's memory_profile, roofline_model, memory_viewer and graph_viewer on one input."""
    entry: dict = {
        "inputs": [{"name": p.name, "size_bytes": p.stat().st_size, "sha256": _sha256(p)} for p in inputs],
        "tools": {},
        "cost": {},
    }

    def run(tool: str, params: dict, tag: str) -> tuple[dict, bytes]:
        info, raw = run_tool(inputs, tool, timeout, keep_raw, f"{key}__{tag}", params)
        entry["cost"][tag] = {k: info.get(k) for k in ("wall_s", "tool_s", "peak_rss_mb") if info.get(k) is not None}
        return info, raw

    def failure(info: dict) -> dict:
        return {"success": False, **{k: info[k] for k in ("error", "exception", "log_errors") if info.get(k)}}

    for tool, extract in (("memory_profile", extract_memory_profile), ("roofline_model", extract_roofline)):
        print(f"  {tool} ...", flush=True)
        info, raw = run(tool, {}, tool)
        if info.get("success") and raw:
            entry["tools"][tool] = {"success": True, **extract(json.loads(raw))}
        else:
            entry["tools"][tool] = {**failure(info), "empty_output": not raw}

    info, raw = run(HLO_MODULES, {}, HLO_MODULES)
    modules: dict = json.loads(raw) if info.get("success") and raw else {}
    entry["tools"][HLO_MODULES] = modules
    if not modules:
        return entry
    largest = sorted(modules, key=lambda m: (-modules[m], m))
    viewer: dict = {}
    for module in sorted(largest[:MAX_MODULES]):
        print(f"  memory_viewer {module} ...", flush=True)
        info, raw = run("memory_viewer", {"module_name": module, "memory_space": "0"}, f"memory_viewer({module})")
        ok = info.get("success") and raw
        viewer[module] = {"success": True, **extract_memory_viewer(json.loads(raw))} if ok else failure(info)
    entry["tools"]["memory_viewer"] = viewer

    # The graphs come from the largest module of the program itself, not of JAX's helpers (jit__normal ...).
    own = [m for m in largest if not m.startswith("jit__") and m != "NO_MODULE"]
    module = (own or largest)[0]
    info, raw = run("graph_viewer", {"graph_viewer_options": {"module_name": module, "type": "short_txt"}}, "hlo_text")
    nodes = _graph_nodes(*_entry_instructions(raw.decode("utf-8", "replace"))) if info.get("success") else []
    graphs: dict = {"module": module, "views": []}
    for node in nodes:
        for width in GRAPH_WIDTHS:
            print(f"  graph_viewer {module} {node} width {width} ...", flush=True)
            options = {"module_name": module, "node_name": node, "type": "graph", "format": "dot", "graph_width": width}
            info, raw = run("graph_viewer", {"graph_viewer_options": options}, f"graph({node},{width})")
            view = {"node": node, "width": width}
            view.update(extract_graph(raw) if info.get("success") else failure(info))
            graphs["views"].append(view)
        options = {"module_name": module, "node_name": node, "type": "adj_nodes"}
        info, raw = run("graph_viewer", {"graph_viewer_options": options}, f"adjacent({node})")
        if info.get("success") and raw:
            graphs["views"].append({"node": node, "adjacent": json.loads(raw)})
    entry["tools"]["graph_viewer"] = graphs
    return entry


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _headline(entry: dict) -> dict:
    """Compact cross-tool summary for quick comparisons."""
    tools = entry.get("tools", {})
    ov = tools.get("overview_page", {})
    ip = tools.get("input_pipeline_analyzer", {})
    ks = tools.get("kernel_stats", {})
    tv = tools.get("trace_viewer", {})
    tva = tools.get("trace_viewer@", {})
    steps = ov.get("steps") or ip.get("steps") or {}
    env = ov.get("run_environment", {})
    return {
        "step_count": steps.get("step_count"),
        "avg_step_ms": steps.get("avg_step_ms"),
        "step_source": (
            "overview_page" if ov.get("steps") else ("input_pipeline_analyzer" if ip.get("steps") else None)
        ),
        "hardware_type": steps.get("hardware_type"),
        "device_type": env.get("device_type"),
        "device_core_count": env.get("device_core_count"),
        "host_count": env.get("host_count"),
        "distinct_kernels": ks.get("distinct_kernels"),
        "kernel_total_duration_us": ks.get("total_duration_us"),
        "hlo_stats_rows": tools.get("hlo_stats", {}).get("rows"),
        "framework_op_stats_rows": tools.get("framework_op_stats", {}).get("without_idle", {}).get("rows"),
        "trace_viewer_events": tv.get("total_events"),
        "trace_viewer_X": tv.get("complete_events_X"),
        "trace_viewer_at_events": tva.get("total_events"),
        "trace_viewer_at_X": tva.get("complete_events_X"),
    }


def process(
    key: str,
    inputs: list[Path],
    tools: tuple[str, ...],
    timeout: float,
    keep_raw: Path | None,
) -> dict:
    entry: dict = {
        "inputs": [{"name": p.name, "size_bytes": p.stat().st_size, "sha256": _sha256(p)} for p in inputs],
        "tools": {},
        "cost": {},
    }
    for tool in (TOOL_NAMES, *tools):
        tag = f"{key}__{tool}"
        print(f"  {tool} ...", end="", flush=True)
        info, raw = run_tool(inputs, tool, timeout, keep_raw, tag)
        entry["tools"][tool] = summarise(tool, info, raw)
        entry["cost"][tool] = {
            **{k: info.get(k) for k in ("wall_s", "tool_s", "peak_rss_mb", "import_rss_mb") if info.get(k) is not None},
            # Size of XProf's answer; varies by a few bytes between runs for
            # the trace tools, so it is kept with the costs, not the figures.
            "output_bytes": len(raw),
        }
        print(f" ok={info.get('success')} wall={info.get('wall_s')}s rss={info.get('peak_rss_mb')}MB out={len(raw)}B")
    entry["headline"] = _headline(entry)
    return entry


def _dump(obj, level: int = 0) -> str:
    """JSON with one key per line, but flat leaves (a list of scalars, or a
    dict/list whose members are all scalars or such leaves) on one line:
    readable diffs at a fraction of ``indent=``'s size."""

    def flat(o) -> bool:
        if isinstance(o, dict):
            return all(not isinstance(v, (dict, list)) for v in o.values())
        if isinstance(o, list):
            return all(not isinstance(v, (dict, list)) or flat(v) for v in o) and len(json.dumps(o)) <= 200
        return True

    if flat(obj) and not (isinstance(obj, dict) and len(json.dumps(obj)) > 200):
        return json.dumps(obj, ensure_ascii=False)
    pad = " " * (level + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    items = [f"{pad}{_dump(v, level + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tool", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="default tests/data/xprof_golden.json (--more-tools: _tools.json)")
    ap.add_argument("--real-dir", default=str(PROJECT_ROOT / "../shared/data/real"))
    ap.add_argument("--h200-dir", default=str(PROJECT_ROOT / "../shared/data/h200"))
    ap.add_argument(
        "--more-tools",
        action="store_true",
        help="record memory_profile, roofline_model, memory_viewer, graph_viewer (tests/data/xprof_golden_tools.json)",
    )
    ap.add_argument("--keep-raw", default=None, help="also save raw XProf outputs here")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per tool run")
    args = ap.parse_args(argv)

    if args.worker:
        return worker_main(args.tool, args.worker_out, args.paths, json.loads(args.params))

    try:
        from xprof import version as xprof_version_mod
    except ImportError:
        print(
            "xprof is not importable from this Python. Run me with a venv that has "
            "`pip install xprof`, e.g. ../xprof-peer/bin/python scripts/xprof_golden.py",
            file=sys.stderr,
        )
        return 2
    xprof_version = xprof_version_mod.__version__

    keep_raw = Path(args.keep_raw) if args.keep_raw else None
    real_dir = Path(os.path.normpath(args.real_dir))
    jobs: list[tuple[str, list[Path]]] = []
    for p in sorted(real_dir.rglob("*.xplane.pb")):
        rel = p.relative_to(real_dir).as_posix()
        jobs.append((f"../shared/data/real/{rel}", [p]))
    for p in sorted((PROJECT_ROOT / "tests/data/jax").glob("*.xplane.pb")):
        jobs.append((p.relative_to(PROJECT_ROOT).as_posix(), [p]))
    multi = real_dir / "openxla-xprof/demo/plugins/profile/GPU-multi-worker"
    if multi.is_dir():
        hosts = sorted(multi.glob("*.xplane.pb"))
        if len(hosts) > 1:
            rel = multi.relative_to(real_dir).as_posix()
            jobs.append((f"../shared/data/real/{rel}", hosts))

    if args.more_tools:
        return main_more(args, jobs, xprof_version, keep_raw)

    files: dict = {}
    for key, inputs in jobs:
        corrupted = "/corrupted/" in key
        print(f"{key} ({len(inputs)} file(s)){' [corrupted]' if corrupted else ''}")
        # The corrupted file is skipped as a golden, but we still record what
        # XProf does with it.
        entry = process(key, inputs, TOOLS, args.timeout, keep_raw)
        if corrupted:
            entry["note"] = (
                "corrupted input (not a valid XSpace); recorded only to show XProf's behaviour, not a golden"
            )
        if len(inputs) > 1:
            entry["multi_host"] = True
        files[key] = entry

    doc = {
        "xprof_version": xprof_version,
        "generated_by": "scripts/xprof_golden.py",
        "how": (
            "xprof.convert.raw_to_tool_data.xspace_to_tool_data([paths], tool, {}) "
            "in one child process per (input, tool), each on a fresh temp copy of the inputs"
        ),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "files": files,
    }
    return _write(Path(args.out or PROJECT_ROOT / "tests/data/xprof_golden.json"), doc)


def _write(out: Path, doc: dict) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dump(doc) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


def main_more(args: argparse.Namespace, jobs: list[tuple[str, list[Path]]], xprof_version: str, keep_raw) -> int:
    """``--more-tools``: the four memory, roofline and HLO tools on every single-host input and the H200 files."""
    h200 = Path(os.path.normpath(args.h200_dir))
    jobs = [(k, i) for k, i in jobs if len(i) == 1 and "/corrupted/" not in k]
    jobs += [(f"../shared/data/h200/{p.name}", [p]) for p in sorted(h200.glob("*.xplane.pb.gz"))]
    files: dict = {}
    for key, inputs in jobs:
        print(f"{key}")
        files[key] = process_more(key, inputs, args.timeout, keep_raw)
    doc = {
        "xprof_version": xprof_version,
        "generated_by": "scripts/xprof_golden.py --more-tools",
        "how": (
            "xprof.convert.raw_to_tool_data.xspace_to_tool_data([paths], tool, params) in one child process per "
            "(input, tool, params), each on a fresh temp copy of the input; memory_viewer with module_name and "
            "memory_space=0 for the largest modules; graph_viewer with type=graph, format=dot for a few nodes of "
            "the largest module, and type=adj_nodes (its operands and users)"
        ),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()},
        "files": files,
    }
    return _write(Path(args.out or PROJECT_ROOT / "tests/data/xprof_golden_tools.json"), doc)


if __name__ == "__main__":
    sys.exit(main())
