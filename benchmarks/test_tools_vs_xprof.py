"""Tools on one large host, cold, side by side with XProf 2.x in the same run.

Each measurement runs in a fresh subprocess: the clock covers reading,
decoding and the tool (not interpreter start-up or imports), and peak RSS
growth is VmHWM after the tool minus VmHWM after the imports. XProf runs the
same way through ``xprof.convert.raw_to_tool_data.xspace_to_tool_data`` on a
copy of the file in a temp dir (it writes caches next to its input), with the
interpreter named by ``$XPROF_PYTHON`` (a virtualenv with ``pip install xprof``;
it cannot share a process with xprof-core, whose protos use the same names),
else this interpreter if it can import ``xprof``; otherwise XProf's side is
skipped and only our figures print.

Targets: overview_page and the op-stats family at least 20x faster than XProf
with peak RSS growth at most 1.5x the file size; trace_viewer full JSON at
least 10x faster; a windowed trace query after the index is built under 50 ms
median (see test_trace_viewer.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from figures import record

OURS = r"""
import json, sys, time
tool, path = sys.argv[1], sys.argv[2]
def hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
import numpy
import xprof_core
from xprof_core.execute import run_tool_json
from xprof_core.tools import get_tool
get_tool(tool)
base = hwm_kb()
t0 = time.perf_counter()
# The JSON document the HTTP API would send (trace_viewer: every event, args included).
text = run_tool_json(tool, path, **({"resolution": "0"} if tool == "trace_viewer" else {}))
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "rss_growth_kb": hwm_kb() - base}))
"""

THEIRS = r"""
import json, sys, time
tool, path = sys.argv[1], sys.argv[2]
def hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
from xprof.convert import raw_to_tool_data
base = hwm_kb()
t0 = time.perf_counter()
data, _ = raw_to_tool_data.xspace_to_tool_data([path], tool, {})
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "rss_growth_kb": hwm_kb() - base, "bytes": len(data or b"")}))
"""


def xprof_python() -> str | None:
    env = os.environ.get("XPROF_PYTHON")
    if env:
        return env
    probe = subprocess.run([sys.executable, "-c", "import xprof.convert.raw_to_tool_data"], capture_output=True)
    return sys.executable if probe.returncode == 0 else None


def _run(python: str, script: str, tool: str, path: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([python, "-c", script, tool, str(path)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{python} {tool} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("tool", "speed_target", "rss_target"),
    [
        ("overview_page", 20.0, 1.5),
        ("framework_op_stats", 20.0, 1.5),
        ("hlo_stats", 20.0, 1.5),
        ("trace_viewer", 10.0, None),
    ],
)
def test_cold_tool_vs_xprof(large_file: Path, tool: str, speed_target: float, rss_target: float | None) -> None:
    size = large_file.stat().st_size
    ours = _run(sys.executable, OURS, tool, large_file)
    line = (
        f"{tool} on {large_file.name} ({size / 1e6:.0f} MB), cold: ours {ours['seconds']:.2f} s, "
        f"RSS growth {ours['rss_growth_kb'] * 1024 / size:.2f}x the file"
        + (f" (target <= {rss_target}x)" if rss_target else "")
    )
    python = xprof_python()
    if python is None:
        record(line + " | XProf not importable here (set XPROF_PYTHON): no ratio")
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "plugins" / "profile" / "run" / large_file.name
        copy.parent.mkdir(parents=True)
        shutil.copyfile(large_file, copy)
        theirs = _run(python, THEIRS, tool, copy)
    ratio = theirs["seconds"] / ours["seconds"]
    record(
        line + f" | XProf {theirs['seconds']:.2f} s, RSS growth {theirs['rss_growth_kb'] * 1024 / size:.2f}x"
        f" | speed-up {ratio:.1f}x (target >= {speed_target:.0f}x)"
    )
