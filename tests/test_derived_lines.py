"""Derived trace lines (XLA Modules, XLA Ops, Framework Ops, Framework Name Scope, Source code, Steps).

Two oracles: XProf 2.24.2's own trace (``trace_viewer@``) recorded per derived line in
``tests/data/xprof_golden.json`` (event count, summed duration, earliest names), and a slow
per-event Python version of XProf's ``DerivedXLineBuilder`` run over the same kernels.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.tools import trace_viewer as tv
from xprof_core.tools.derived_lines import derived_lines

from conftest import REAL, ROOT, need

GOLDEN = ROOT / "tests" / "data" / "xprof_golden.json"
H100 = ROOT / "src" / "xprof_core" / "demo" / "jax_mlp_h100" / "plugins" / "profile" / "2026_11_28_01_22_41"
AMD_GEMM = REAL / "amd-tracelens" / "tests" / "traces" / "mi300" / "jax08_gemm" / "tw003.xplane.pb"
TPU = REAL / "openxla-xprof" / "xprof" / "convert" / "test_xplanes" / "tpu_inference_2.xplane.pb"
# XProf lines we do not derive: its "Command Buffers" line of CUDA graphs.
NOT_DERIVED = ("Command Buffers",)
# TPU ops are named by their HLO text ("%copy-done.5 = f32[...] copy-done(...)"); XProf's trace and
# our viewer label them by the op name before " = " (the text stays in the details).
HLO_TEXT = re.compile(r"^%(\S+) = ")


def label(name: str) -> str:
    m = HLO_TEXT.match(name)
    return m.group(1) if m else name


def _golden_files() -> list[Any]:
    if not GOLDEN.exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no XProf golden values"))]
    out = []
    for name, entry in json.loads(GOLDEN.read_text())["files"].items():
        lines = entry["tools"].get("trace_viewer@", {}).get("derived_lines")
        if lines and name.endswith(".xplane.pb"):
            out.append(pytest.param((ROOT / name).resolve(), lines, id=name.rsplit("/", 3)[-3] + "/" + Path(name).name))
    return out


def ours_by_line(path: Path) -> dict[str, list[Any]]:
    """Per "<device plane> | <line>": [events, summed duration µs, earliest 3 names], through the tool."""
    xs = xprof_core.load(path)
    result = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, {"derived": "1", "resolution": "0"})], {})
    meta = [e for e in result["traceEvents"] if e["ph"] == "M"]
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in result["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    acc: dict[str, list[Any]] = defaultdict(lambda: [0, 0.0, []])
    for e in result["traceEvents"]:
        if e["ph"] == "X":
            entry = acc[f"{procs[e['pid']]} | {threads[(e['pid'], e['tid'])]}"]
            entry[0] += 1
            entry[1] += e["dur"]
            entry[2].append((e["ts"], label(e["name"])))
    return {k: [v[0], v[1], [n for _, n in sorted(v[2])[:3]]] for k, v in acc.items()}


@pytest.mark.parametrize("path, gold", _golden_files())
def test_derived_lines_match_xprof(path: Path, gold: dict[str, list[Any]]) -> None:
    ours = ours_by_line(need(path))
    compared = 0
    for key, (count, dur_us, names) in gold.items():
        if any(k in key for k in NOT_DERIVED):
            assert key not in ours
            continue
        assert key in ours, (key, sorted(k for k in ours if k.startswith(key.split(" | ")[0])))
        assert ours[key][0] == count, key
        assert ours[key][1] == pytest.approx(dur_us, abs=1e-3 * count + 1e-3), key
        assert ours[key][2] == names, key
        compared += 1
    assert compared


def test_derived_lines_follow_their_stream_and_are_windowed() -> None:
    path = need(AMD_GEMM)
    xs = xprof_core.load(path)
    full = tv.TRACE_VIEWER.reduce([tv.TRACE_VIEWER.map(xs, {"derived": "1", "resolution": "0"})], {})
    meta = [e for e in full["traceEvents"] if e["ph"] == "M"]
    gpu = next(e["pid"] for e in meta if e["name"] == "process_name" and e["args"]["name"] == "/device:GPU:0")
    threads = sorted(
        ((e["args"]["name"], e["tid"]) for e in meta if e["name"] == "thread_name" and e["pid"] == gpu),
        key=lambda t: t[1],
    )
    names = [n for n, _ in threads]
    at = names.index("Stream #16(Kernel)")
    assert names[at + 1 : at + 6] == [
        f"{line} - from #16"
        for line in ("Framework Name Scope", "Framework Ops", "XLA Modules", "XLA Ops", "Source code")
    ]
    # Without the flag the trace is the file's own events, exactly.
    plain = tv.TRACE_VIEWER.map(xs, {"resolution": "0"})
    assert plain["counts"]["kept"] == int(xs.is_timed.sum())
    lines = derived_lines(xs)
    assert full["returnedEventsSize"] == int(xs.is_timed.sum()) + lines.num_events
    # A window holds exactly the derived events that overlap it, like any line's.
    ev = lines.events
    ws, we = 1.5, 2.0  # ms from the profile start
    s = ev.start_ps - xs.origin_ps
    e = s + ev.duration_ps
    expected = int(((s < we * 1e9) & ((e > ws * 1e9) | (s >= ws * 1e9))).sum())
    part = tv.TRACE_VIEWER.map(
        xs, {"derived": "1", "resolution": "0", "start_time_ms": str(ws), "end_time_ms": str(we)}
    )
    assert int((part["row"] >= xs.num_events).sum()) == expected > 0


def test_steps_line_names_each_run_by_its_marker() -> None:
    xs = xprof_core.load(H100 / "h100-node.xplane.pb")
    lines = derived_lines(xs)
    steps = next(ln for ln in lines.lines if ln.name == "Steps")
    assert [lines.names[i] for i in steps.name_index] == [f"train {i}" for i in range(20)]
    assert lines.step_names == [f"train {i}" for i in range(20)]
    # A step runs from its first kernel to the end of the last device event before the next step's.
    assert np.all(steps.start_ps[1:] >= steps.start_ps[:-1] + steps.duration_ps[:-1])
