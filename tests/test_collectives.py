"""Communication/computation overlap, temporal breakdown and collectives per rank (tools.collectives).

Hand-built two-rank Kineto traces with known intervals; the real-trace
figures are checked against HTA in test_hta_agreement.py.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.tools.collectives import collective_of, rank_figures, union_length

from conftest import subprocess_env


def kernel(name: str, ts: float, dur: float, stream: int, corr: int) -> dict:  # type: ignore[type-arg]
    args = {"device": 0, "stream": stream, "correlation": corr}
    return {"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": ts, "dur": dur, "args": args}


def write_rank(path: Path, rank: int, allreduce_us: float) -> None:
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 100},
        kernel("gemm", 10, 20, 7, 1),  # compute 10-30
        kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*)", 20, allreduce_us, 20, 2),  # comm 20-...
        kernel("gemm", 60, 10, 7, 3),  # compute 60-70
        {**kernel("Memset (Device)", 80, 5, 7, 4), "cat": "gpu_memset"},  # non-compute 80-85
    ]
    doc = {"distributedInfo": {"rank": rank, "world_size": 2}, "traceEvents": events}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_union_length_matches_naive() -> None:
    rng = np.random.default_rng(3)
    s = rng.integers(0, 500, 200)
    e = s + rng.integers(0, 40, 200)
    covered = set().union(*(range(a, b) for a, b in zip(s.tolist(), e.tolist(), strict=True)))
    assert union_length(s, e) == len(covered)


def test_rank_figures_by_hand(tmp_path: Path) -> None:
    write_rank(tmp_path / "r0.pt.trace.json.gz", 0, 30.0)  # comm 20-50: overlaps compute 20-30
    fig = rank_figures(xprof_core.load(tmp_path / "r0.pt.trace.json.gz"))
    us = 1_000_000
    assert fig["kernel_time_ps"] == 75 * us  # 10 .. 85
    assert fig["compute_ps"] == 30 * us  # 10-30, 60-70
    assert fig["communication_ps"] == 30 * us
    assert fig["overlap_ps"] == 10 * us
    assert fig["non_compute_ps"] == (20 + 5) * us  # 30-50 comm alone, memset
    assert fig["idle_ps"] == 75 * us - 30 * us - 25 * us
    assert fig["collectives"] == {"AllReduce": [1, 30 * us]}
    assert collective_of("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclWorkElem)") == "SendRecv"


def test_overview_and_cli_name_the_straggler(tmp_path: Path) -> None:
    write_rank(tmp_path / "job" / "a.1700000000001.pt.trace.json.gz", 0, 30.0)
    write_rank(tmp_path / "job" / "b.1700000000002.pt.trace.json.gz", 1, 12.0)  # arrives last, waits least
    overview = run_tool("overview_page", (tmp_path, "job"))
    assert overview["straggler"] == "b"
    rows = [[c["v"] for c in r["c"]] for r in overview["communication_per_rank"]["rows"]]
    assert [r[:3] for r in rows] == [["a", 0, 100.0 * 10 / 30], ["b", 1, 100.0 * 10 / 12]]
    (collective,) = overview["collectives"]["rows"]
    assert [c["v"] for c in collective["c"]][:3] == ["AllReduce", 2, 0.042]
    out = subprocess.run(
        [sys.executable, "-m", "xprof_core.cli", "summary", str(tmp_path)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    ).stdout
    assert "33.33% overlapped with computation; AllReduce 1 kernels 0.030 ms" in out
    assert "straggler: b" in out
