"""Warm figures through HTTP: table tools once a host's index is cached, after a restart, and trace windows.

A real aggregator (``python -m xprof_core.aggregator --cache_dir=...`` on
loopback, its map tasks in its local process pool) serves a logdir whose one
host is a hard link to each profile of ``$XPROF_BENCH_PROFILES`` (figures.py).
Requests go over one keep-alive HTTP connection, as a browser's do; each time
is the request's wall time as the client sees it (JSON body read, not parsed).

* **Cold through HTTP**: the first overview_page request (builds and caches the
  host index).
* **Warm table tools**: each table tool, first request (the index is cached,
  the tool's view is not) and the median of ``$XPROF_BENCH_WARM_ROUNDS``
  (default 10) more. Target: < 50 ms.
* **After a restart**: the aggregator is stopped and started again on the same
  ``--cache_dir``; each table tool's first request and median, and the map
  tasks the restarted process ran (0: everything came from the cache dir).
  Target: < 50 ms.
* **Trace windows** on ``$XPROF_BENCH_TRACE_PROFILE`` (default ``cpu500``):
  after the first view (trace_viewer with its defaults), windows of 100 µs,
  1 ms and 500 ms at resolution 2000, each round a different window (so no
  result cache answers it), placed across the profile. Printed: the median
  time (target < 100 ms), the events returned, and events per row per pixel
  (a row is a pid/tid; a pixel is the window span / 2000; an event counts in
  the pixel where it starts): the maximum over all rows and pixels, the same
  per nesting depth (depth recomputed from the returned events, as a viewer
  lays them out: an event whose parent was thinned away moves up a level, so
  this can exceed the engine's own per-depth bound), and the mean
  over non-empty (row, pixel) cells. Target: about 2 per pixel per row and
  depth at most.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from figures import LARGE_DIR, bench_profile, machine_load, package_env, record, selected_profiles

TABLE_TOOLS = [
    "overview_page",
    "input_pipeline_analyzer",
    "framework_op_stats",
    "hlo_stats",
    "op_profile",
    "kernel_stats",
]
SESSION = "2026_01_01_00_00_00"
HOST = "host0"
WARM_ROUNDS = int(os.environ.get("XPROF_BENCH_WARM_ROUNDS", "10"))
TRACE_PROFILE = os.environ.get("XPROF_BENCH_TRACE_PROFILE", "cpu500")
TRACE_ROUNDS = int(os.environ.get("XPROF_BENCH_TRACE_ROUNDS", "5"))
TRACE_RESOLUTION = 2000
WINDOWS_MS = {"100us": 0.1, "1ms": 1.0, "500ms": 500.0}
TABLE_TARGET_S = 0.050
TRACE_TARGET_S = 0.100
# Rows of the closing table: (profile, what, first s, median s, target s, note).
WARM_ROWS: list[tuple[str, str, float, float, float, str]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Aggregator:
    """``python -m xprof_core.aggregator`` on loopback, with a keep-alive client; ``stop`` ends it."""

    def __init__(self, logdir: Path, cache_dir: Path, log: Path, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xprof_core.aggregator",
                    f"--logdir={logdir}",
                    f"--port={self.port}",
                    "--host=127.0.0.1",
                    f"--cache_dir={cache_dir}",
                    "--log_level=WARNING",
                    *extra,
                ],
                env=package_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.conn: http.client.HTTPConnection | None = None
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the aggregator did not start: {log.read_text()[-3000:]}")
            time.sleep(0.1)

    def get(self, path: str, timeout_s: float = 3600) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def tool(self, tool: str, **params: Any) -> tuple[float, bytes]:
        """One tool request: (seconds, body); raises on a status other than 200."""
        query = urllib.parse.urlencode({"run": SESSION, "tag": tool, "host": HOST, **params})
        t0 = time.perf_counter()
        status, body = self.get(f"/data/plugin/profile/data?{query}")
        seconds = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"{tool} {params}: HTTP {status}: {body[:2000]!r}")
        return seconds, body

    def map_tasks(self) -> float:
        """Map tasks this process has run (its /metrics)."""
        _, body = self.get("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("xprof_map_tasks_total{")
        )

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _logdir_for(profile: str, path: Path) -> Path:
    """``benchmarks/.data/http/PROFILE``: a run with one host, a hard link to (or copy of) the profile."""
    root = LARGE_DIR / "http" / profile
    host = root / "plugins" / "profile" / SESSION / f"{HOST}.xplane.pb"
    host.parent.mkdir(parents=True, exist_ok=True)
    if host.exists() and not os.path.samefile(host, path):
        host.unlink()
    if not host.exists():
        try:
            os.link(path, host)
        except OSError:
            import shutil

            shutil.copyfile(path, host)
    return root


@dataclass
class Served:
    profile: str
    path: Path
    logdir: Path
    cache_dir: Path
    log: Path
    server: Aggregator
    cold_s: float
    trace: dict[str, Any] = field(default_factory=dict)

    def restart(self) -> None:
        self.server.stop()
        self.server = Aggregator(self.logdir, self.cache_dir, self.log)


@pytest.fixture(scope="module", params=selected_profiles())
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    profile = request.param
    path = bench_profile(profile)
    LARGE_DIR.mkdir(parents=True, exist_ok=True)
    logdir = _logdir_for(profile, path)
    with tempfile.TemporaryDirectory(dir=LARGE_DIR, prefix="cache-") as cache:
        log = Path(cache).parent / f"aggregator-{profile}.log"
        log.write_bytes(b"")
        s = Served(profile, path, logdir, Path(cache), log, Aggregator(logdir, Path(cache), log), cold_s=0.0)
        try:
            s.cold_s, body = s.server.tool("overview_page")
            steps = orjson.loads(body)["steps"]["count"]
            record(
                f"warm/http {profile} ({path.stat().st_size / 1e6:.0f} MB): first overview_page through HTTP "
                f"(builds the host index) {s.cold_s:.2f} s, {steps:,} steps | {machine_load()}"
            )
            yield s
        finally:
            s.server.stop()


@pytest.mark.parametrize("tool", TABLE_TOOLS)
def test_table_tool_warm(benchmark: Any, served: Served, tool: str) -> None:
    tasks = served.server.map_tasks()
    first, body = served.server.tool(tool)
    assert orjson.loads(body)
    times: list[float] = []
    benchmark.pedantic(lambda: times.append(served.server.tool(tool)[0]), rounds=WARM_ROUNDS, iterations=1)
    median = statistics.median(times)
    recomputed = served.server.map_tasks() - tasks
    benchmark.extra_info.update({"profile": served.profile, "first_s": first, "median_s": median})
    WARM_ROWS.append(
        (served.profile, f"{tool} (index cached)", first, median, TABLE_TARGET_S, f"{recomputed:g} map tasks")
    )
    record(
        f"warm/http {served.profile} {tool}, index cached: first {first * 1e3:.1f} ms, median of {WARM_ROUNDS} "
        f"{median * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms ({len(body) / 1e3:.0f} kB) "
        f"[{'met' if max(first, median) < TABLE_TARGET_S else 'MISSED'}: < 50 ms]; map tasks run: {recomputed:g}"
    )


def test_table_tools_after_restart(served: Served) -> None:
    served.restart()
    for tool in TABLE_TOOLS:
        first, body = served.server.tool(tool)
        assert orjson.loads(body)
        times = [served.server.tool(tool)[0] for _ in range(WARM_ROUNDS)]
        median = statistics.median(times)
        tasks = served.server.map_tasks()
        WARM_ROWS.append(
            (served.profile, f"{tool} (after a restart)", first, median, TABLE_TARGET_S, f"{tasks:g} map tasks")
        )
        record(
            f"warm/http {served.profile} {tool}, after a restart on the same --cache_dir: first {first * 1e3:.1f} ms, "
            f"median of {WARM_ROUNDS} {median * 1e3:.1f} ms "
            f"[{'met' if max(first, median) < TABLE_TARGET_S else 'MISSED'}: < 50 ms]; map tasks run since the "
            f"restart: {tasks:g}{'' if tasks == 0 else ' (recomputed: not served from the cache dir)'}"
        )


def _first_view(served: Served) -> dict[str, Any]:
    if not served.trace:
        seconds, body = served.server.tool("trace_viewer")
        doc = orjson.loads(body)
        start_ms, end_ms = doc["fullTimespan"]
        served.trace = {"start_ms": start_ms, "end_ms": end_ms, "first_s": seconds}
        record(
            f"trace/http {served.profile}: first view (trace_viewer defaults) {seconds:.2f} s, "
            f"{doc.get('returnedEventsSize', 0):,} events, span {end_ms - start_ms:,.1f} ms"
        )
    return served.trace


def _density(events: list[dict[str, Any]], start_us: float, span_us: float, resolution: int) -> tuple[int, int, float]:
    """(max events per row per pixel, max per row, depth and pixel, mean over non-empty row/pixel cells)."""
    by_row: dict[tuple[Any, Any], list[tuple[float, float]]] = {}
    for e in events:
        by_row.setdefault((e.get("pid"), e.get("tid")), []).append((float(e["ts"]), float(e.get("dur", 0.0))))
    per_pixel: Counter[tuple[Any, Any, int]] = Counter()
    per_depth: Counter[tuple[Any, Any, int, int]] = Counter()
    width = span_us / resolution
    for row, evs in by_row.items():
        evs.sort(key=lambda x: (x[0], -x[1]))
        # The nesting depth as the engine defines it, over the returned events: one more than the
        # deepest earlier event still open (0 when none).
        open_events: list[tuple[float, int]] = []  # (end, depth)
        for ts, dur in evs:
            open_events = [(end, d) for end, d in open_events if end > ts]
            depth = 1 + max((d for _, d in open_events), default=-1)
            open_events.append((ts + dur, depth))
            pixel = min(max(int((ts - start_us) // width), 0), resolution - 1)
            per_pixel[(*row, pixel)] += 1
            per_depth[(*row, depth, pixel)] += 1
    if not per_pixel:
        return 0, 0, 0.0
    return max(per_pixel.values()), max(per_depth.values()), sum(per_pixel.values()) / len(per_pixel)


@pytest.mark.parametrize("window", list(WINDOWS_MS))
def test_trace_window(benchmark: Any, served: Served, window: str) -> None:
    if served.profile != TRACE_PROFILE:
        pytest.skip(f"trace windows run on {TRACE_PROFILE} ($XPROF_BENCH_TRACE_PROFILE), not {served.profile}")
    view = _first_view(served)
    width_ms = WINDOWS_MS[window]
    span_ms = view["end_ms"] - view["start_ms"]
    if span_ms <= width_ms:
        pytest.skip(f"the profile spans {span_ms:.1f} ms, not more than the {width_ms} ms window")
    starts = [
        view["start_ms"] + (span_ms - width_ms) * (0.1 + 0.8 * i / max(TRACE_ROUNDS - 1, 1))
        for i in range(TRACE_ROUNDS)
    ]
    rounds: list[tuple[float, int, int, int, float, int]] = []

    def setup() -> tuple[tuple[float], dict[str, Any]]:
        return (starts[len(rounds)],), {}

    def query(start_ms: float) -> None:
        seconds, body = served.server.tool(
            "trace_viewer",
            start_time_ms=f"{start_ms:.6f}",
            end_time_ms=f"{start_ms + width_ms:.6f}",
            resolution=str(TRACE_RESOLUTION),
        )
        doc = orjson.loads(body)
        events = [e for e in doc["traceEvents"] if e.get("ph") == "X"]
        peak, peak_depth, mean = _density(events, start_ms * 1e3, width_ms * 1e3, TRACE_RESOLUTION)
        rounds.append((seconds, len(events), peak, peak_depth, mean, len(body)))

    benchmark.pedantic(query, setup=setup, rounds=TRACE_ROUNDS, iterations=1)
    median = statistics.median(r[0] for r in rounds)
    returned = [r[1] for r in rounds]
    peak, peak_depth = max(r[2] for r in rounds), max(r[3] for r in rounds)
    mean = statistics.mean(r[4] for r in rounds)
    benchmark.extra_info.update(
        {"profile": served.profile, "median_s": median, "events": returned, "max_per_row_pixel": peak}
    )
    WARM_ROWS.append(
        (
            served.profile,
            f"trace window {window} @ {TRACE_RESOLUTION}",
            rounds[0][0],
            median,
            TRACE_TARGET_S,
            f"events {min(returned):,}-{max(returned):,}; per row/pixel max {peak}, per row/depth/pixel max "
            f"{peak_depth}, mean {mean:.2f}",
        )
    )
    record(
        f"trace/http {served.profile} window {window} at resolution {TRACE_RESOLUTION}, after the first view, "
        f"{TRACE_ROUNDS} windows across the profile: median {median * 1e3:.1f} ms, max "
        f"{max(r[0] for r in rounds) * 1e3:.1f} ms [{'met' if median < TRACE_TARGET_S else 'MISSED'}: < 100 ms]; "
        f"events returned {min(returned):,}..{max(returned):,} ({max(r[5] for r in rounds) / 1e6:.1f} MB of JSON at "
        f"most); events per row per pixel: max {peak}, per row, depth and pixel max {peak_depth} "
        f"[{'met' if peak_depth <= 2 else 'MISSED'}: ~2], mean over non-empty cells {mean:.2f}"
    )


def warm_table() -> list[str]:
    """The warm figures as a Markdown table (printed at the end of the run)."""
    if not WARM_ROWS:
        return []
    out = ["| profile | request | first | median | target | notes |", "|---|---|---|---|---|---|"]
    for profile, what, first, median, target, note in WARM_ROWS:
        out.append(
            f"| {profile} | {what} | {first * 1e3:.1f} ms | {median * 1e3:.1f} ms | < {target * 1e3:.0f} ms | {note} |"
        )
    return out
