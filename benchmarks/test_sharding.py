"""One huge host over several workers: cold table tools with 1 and 2 workers, and a 2 GB host end to end.

Real processes on loopback: ``python -m xprof_core.worker`` replicas and an
aggregator whose ``--worker_service_address`` lists them (round robin), each
started fresh for every cold request, so nothing is cached anywhere.

* **1 vs 2 workers** on ``$XPROF_BENCH_SHARD_PROFILE`` (default ``cpu500``,
  ~500 MB): the first overview_page, then (everything restarted) the first
  framework_op_stats; the aggregator's default ``--shard_mb`` (96) cuts the
  host into shards either way. Also the same with ``--shard_mb=0`` (one map
  task, the whole host on one worker) for reference. Printed: seconds, the
  speed-up of 2 workers over 1 (target >= 1.7x on this 2-core machine), and
  per-worker throughput: MB of profile per second per worker.
* **A 2 GB host** (``$XPROF_BENCH_HUGE_PROFILE``, default ``cpu2g``) with 2
  workers: every table tool and a trace window. Printed: seconds per request,
  each worker's and the aggregator's peak RSS (VmHWM), against the targets
  (each worker <= 2x its shard size plus a constant, the aggregator < 500 MB).

Peak RSS counts the pages of the file a process reads (workers read only
their shards' byte ranges, into anonymous memory).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_warm_http import Aggregator, _logdir_for, free_port

from figures import bench_profile, machine_load, package_env, record

SHARD_PROFILE = os.environ.get("XPROF_BENCH_SHARD_PROFILE", "cpu500")
HUGE_PROFILE = os.environ.get("XPROF_BENCH_HUGE_PROFILE", "cpu2g")
SHARD_MB = 96
TABLE_TOOLS = [
    "overview_page",
    "input_pipeline_analyzer",
    "framework_op_stats",
    "hlo_stats",
    "op_profile",
    "kernel_stats",
]
ROWS: list[str] = []


def _hwm_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Workers:
    """``n`` worker processes on loopback, reading ``logdir``."""

    def __init__(self, n: int, logdir: Path, log: Path) -> None:
        self.grpc_ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []
        with open(log, "ab") as out:
            for i, port in enumerate(self.grpc_ports):
                argv = [sys.executable, "-m", "xprof_core.worker", f"--port={free_port()}", f"-gp={port}"]
                argv += ["--host=127.0.0.1", f"--logdir={logdir}", f"--worker_id=w{i}", "--log_level=WARNING"]
                self.procs.append(subprocess.Popen(argv, env=package_env(), stdout=out, stderr=subprocess.STDOUT))
        time.sleep(1.0)

    @property
    def target(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.grpc_ports)

    def peaks_mb(self) -> list[float]:
        return [_hwm_mb(p.pid) for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Cluster:
    """Fresh workers and a fresh aggregator (its own empty cache dir) in front of them."""

    def __init__(self, n: int, logdir: Path, tmp: Path, shard_mb: float) -> None:
        self.workers = Workers(n, logdir, tmp / "workers.log")
        extra = (f"--worker_service_address={self.workers.target}", f"--shard_mb={shard_mb}")
        self.agg = Aggregator(logdir, tmp / f"cache-{time.time_ns()}", tmp / "aggregator.log", extra)

    def stop(self) -> None:
        self.agg.stop()
        self.workers.stop()


@pytest.fixture(scope="module")
def shard_input(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, float]]:
    path = bench_profile(SHARD_PROFILE)
    yield path, _logdir_for(SHARD_PROFILE, path), path.stat().st_size / 1e6


def _cold(n: int, logdir: Path, tmp: Path, tool: str, shard_mb: float) -> tuple[float, list[float], float]:
    cluster = Cluster(n, logdir, tmp, shard_mb)
    try:
        seconds, body = cluster.agg.tool(tool)
        assert orjson.loads(body)
        return seconds, cluster.workers.peaks_mb(), _hwm_mb(cluster.agg.proc.pid)
    finally:
        cluster.stop()


@pytest.mark.parametrize("tool", ["overview_page", "framework_op_stats"])
def test_one_vs_two_workers_cold(tool: str, shard_input: tuple[Path, Path, float], tmp_path: Path) -> None:
    path, logdir, size_mb = shard_input
    whole_s, whole_peaks, _ = _cold(1, logdir, tmp_path, tool, 0)
    one_s, one_peaks, _ = _cold(1, logdir, tmp_path, tool, SHARD_MB)
    two_s, two_peaks, agg_mb = _cold(2, logdir, tmp_path, tool, SHARD_MB)
    speedup = one_s / two_s
    line = (
        f"{SHARD_PROFILE} {size_mb:.0f} MB {tool} cold: 1 worker whole {whole_s:.2f} s "
        f"({size_mb / whole_s:.0f} MB/s/worker, peak {whole_peaks[0]:.0f} MB); "
        f"1 worker in {SHARD_MB} MB shards {one_s:.2f} s ({size_mb / one_s:.0f} MB/s/worker); "
        f"2 workers {two_s:.2f} s ({size_mb / two_s / 2:.0f} MB/s/worker, peaks "
        f"{'/'.join(f'{p:.0f}' for p in two_peaks)} MB, aggregator {agg_mb:.0f} MB): "
        f"{speedup:.2f}x over 1 worker, {whole_s / two_s:.2f}x over whole [target >= 1.7x: "
        f"{'met' if speedup >= 1.7 else 'MISSED'}] ({machine_load()})"
    )
    ROWS.append(line)
    record(line)


def test_a_2gb_host_end_to_end(tmp_path: Path) -> None:
    path = bench_profile(HUGE_PROFILE)
    logdir = _logdir_for(HUGE_PROFILE, path)
    size_mb = path.stat().st_size / 1e6
    cluster = Cluster(2, logdir, tmp_path, SHARD_MB)
    try:
        times = {}
        for tool in TABLE_TOOLS:
            times[tool], body = cluster.agg.tool(tool)
            assert orjson.loads(body)
        table_peaks = cluster.workers.peaks_mb()
        agg_tables = _hwm_mb(cluster.agg.proc.pid)
        trace: dict[str, Any] = {}
        try:
            query = {"start_time_ms": "1000", "end_time_ms": "1001", "resolution": "2000"}
            trace["s"], body = cluster.agg.tool("trace_viewer", **query)
            trace["events"] = len(orjson.loads(body).get("traceEvents", []))
        except RuntimeError as exc:
            trace["error"] = str(exc)[:300]
        peaks = cluster.workers.peaks_mb()
        agg_mb = _hwm_mb(cluster.agg.proc.pid)
    finally:
        cluster.stop()
    shard_limit = 2 * SHARD_MB * 1.048576 + 300  # 2x the shard size (MB) plus a constant of 300 MB
    tables = ", ".join(f"{t} {s:.2f} s" for t, s in times.items())
    first = times[TABLE_TOOLS[0]]
    line = (
        f"{HUGE_PROFILE} {size_mb:.0f} MB host, 2 workers, {SHARD_MB} MB shards: {tables} "
        f"(first: {size_mb / first / 2:.0f} MB/s/worker); worker peaks after the table tools "
        f"{'/'.join(f'{p:.0f}' for p in table_peaks)} MB [target <= {shard_limit:.0f}: "
        f"{'met' if max(table_peaks) <= shard_limit else 'MISSED'}], aggregator {agg_tables:.0f} MB "
        f"[target < 500: {'met' if agg_tables < 500 else 'MISSED'}]; trace window 1 ms: "
        + (
            f"{trace['s']:.2f} s, {trace['events']} events, worker peaks after it "
            f"{'/'.join(f'{p:.0f}' for p in peaks)} MB, aggregator {agg_mb:.0f} MB"
            if "s" in trace
            else f"failed: {trace['error']}"
        )
        + f" ({machine_load()})"
    )
    ROWS.append(line)
    record(line)
