"""Multi-host rules on distinct hosts (docs/multi-host.md).

``tests/data/multihost_cpu/`` holds three real JAX processes joined by
``jax.distributed`` on one CPU machine (scripts/record_multihost_cpu.py, see
the README there): each host waits a different time for its input, host 1
marks one step more than the others and host 2 one step fewer, so the hosts'
steps and step times differ by design. Every figure is checked against an
oracle computed here from the raw protobuf messages (``xplane_pb2``), not
from our decoder.

Kernel statistics need GPU hosts: two distinct H100 runs of the same program
(``gpu_mlp_train`` and ``gpu_mlp_train_pytrace``, same kernels, different
durations) serve as the two hosts of one run.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xprof_core.execute import run_tool
from xprof_core.index.steps import CATEGORIES, UNKNOWN, StepTable
from xprof_core.protos import xplane_pb2
from xprof_core.tools import get_tool
from xprof_core.tools.kernel_stats import parse_kernel_details

from conftest import JAX_DATA, ROOT

MULTIHOST = ROOT / "tests" / "data" / "multihost_cpu"
RECORDING = json.loads((MULTIHOST / "recording.json").read_text())
HOSTS = sorted(RECORDING["hosts"])
HOST_FILES = [MULTIHOST / RECORDING["hosts"][h]["file"] for h in HOSTS]
GPU_HOSTS = [JAX_DATA / "gpu_mlp_train.xplane.pb", JAX_DATA / "gpu_mlp_train_pytrace.xplane.pb"]
# XProf's input-bound thresholds (%): kModeratelyInfeedBoundThresholdInPercent, kHighlyInfeedBoundThresholdInPercent.
XPROF_MODERATELY, XPROF_HIGHLY = 5.0, 20.0


def xprof_verdict(input_pct: float) -> str:
    if input_pct < XPROF_MODERATELY:
        return "NOT input-bound"
    return "MODERATELY input-bound" if input_pct < XPROF_HIGHLY else "HIGHLY input-bound"


def rows_of(table: dict[str, Any]) -> list[dict[str, Any]]:
    ids = [c["id"] for c in table["cols"]]
    return [dict(zip(ids, [c["v"] for c in r["c"]], strict=True)) for r in table["rows"]]


# ---- the oracle: per host, steps and input waits from the raw messages ------------------------


class RawHost:
    """One host's ``train`` step markers and ``next_batch`` input events (ps), via protobuf."""

    def __init__(self, path: Path) -> None:
        raw = path.read_bytes()
        space = xplane_pb2.XSpace.FromString(gzip.decompress(raw) if path.suffix == ".gz" else raw)
        self.steps: dict[int, tuple[int, int]] = {}
        inputs: list[tuple[int, int]] = []
        for plane in space.planes:
            if plane.name != "/host:CPU":
                continue
            stat_name = {k: v.name for k, v in plane.stat_metadata.items()}
            for line in plane.lines:
                for ev in line.events:
                    name = plane.event_metadata[ev.metadata_id].name
                    start = line.timestamp_ns * 1000 + ev.offset_ps
                    if name == "train":
                        (num,) = [s.int64_value for s in ev.stats if stat_name[s.metadata_id] == "step_num"]
                        self.steps[num] = (start, start + ev.duration_ps)
                    elif name == "next_batch":
                        inputs.append((start, start + ev.duration_ps))
        # Input wait of a step: the next_batch time inside its marker (they never overlap one another).
        self.wait = {num: sum(max(0, min(e, b) - max(s, a)) for s, e in inputs) for num, (a, b) in self.steps.items()}

    def time(self, num: int) -> int:
        a, b = self.steps[num]
        return b - a


@pytest.fixture(scope="module")
def raw_hosts() -> list[RawHost]:
    return [RawHost(p) for p in HOST_FILES]


# ---- steps: which are kept, how long they take -------------------------------------------------


def test_the_hosts_differ_by_design(raw_hosts: list[RawHost]) -> None:
    assert len(HOSTS) == 3 and len(set(p.read_bytes() for p in HOST_FILES)) == 3
    assert [sorted(h.steps) for h in raw_hosts] == [RECORDING["hosts"][h]["marked_steps"] for h in HOSTS]
    assert len({len(h.steps) for h in raw_hosts}) == 3  # 8, 9 and 7 steps
    common = sorted(set.intersection(*(set(h.steps) for h in raw_hosts)))
    # Per kept step, the hosts' times differ: the slowest differs from the mean on every step.
    for num in common:
        times = [h.time(num) for h in raw_hosts]
        assert max(times) > 1.05 * float(np.mean(times)), num
    # Each host's step times are what the process itself measured around the step (+- 0.5 ms).
    for name, host in zip(HOSTS, raw_hosts, strict=True):
        wall = RECORDING["hosts"][name]["wall_ms"]
        for num in host.steps:
            assert host.time(num) / 1e9 == pytest.approx(wall[str(num)], abs=0.5), (name, num)


def test_overview_keeps_the_steps_of_every_host_at_the_slowest_hosts_time(raw_hosts: list[RawHost]) -> None:
    page = run_tool("overview_page", MULTIHOST)
    assert page["hosts"] == HOSTS and page["run_environment"]["host_count"] == 3
    common = sorted(set.intersection(*(set(h.steps) for h in raw_hosts)))
    assert common == [1, 2, 3, 4, 5, 6, 7]  # host 2 lacks step 0, hosts 0 and 2 lack step 8
    table = rows_of(page["step_table"])
    assert [r["stepnum"] for r in table] == common
    slowest = [max(h.time(num) for h in raw_hosts) / 1e9 for num in common]
    assert [r["steptime_ms"] for r in table] == pytest.approx(slowest, rel=1e-12)
    assert page["steps"]["count"] == len(common)
    assert page["steps"]["avg_ms"] == pytest.approx(float(np.mean(slowest)), rel=1e-12)
    assert page["steps"]["max_ms"] == pytest.approx(max(slowest), rel=1e-12)
    assert page["steps"]["min_ms"] == pytest.approx(min(slowest), rel=1e-12)


def test_each_host_alone_is_its_own_table(raw_hosts: list[RawHost]) -> None:
    """Per-host tables: the same tool on one host gives that host's steps and times."""
    for name, path, host in zip(HOSTS, HOST_FILES, raw_hosts, strict=True):
        table = rows_of(run_tool("overview_page", path)["step_table"])
        assert [r["stepnum"] for r in table] == sorted(host.steps), name
        assert [r["steptime_ms"] for r in table] == pytest.approx([host.time(n) / 1e9 for n in sorted(host.steps)])
        # Selecting hosts out of the run gives the same as the file alone.
        alone = rows_of(run_tool("overview_page", MULTIHOST, hosts=[name])["step_table"])
        assert alone == table


# ---- input pipeline ------------------------------------------------------------------------------


def test_input_pipeline_waits_for_the_slowest_input(raw_hosts: list[RawHost]) -> None:
    result = run_tool("input_pipeline_analyzer", MULTIHOST)
    common = sorted(set.intersection(*(set(h.steps) for h in raw_hosts)))
    time = [max(h.time(n) for h in raw_hosts) for n in common]
    wait = [max(h.wait[n] for h in raw_hosts) for n in common]
    table = rows_of(result["step_table"])
    assert [r["stepnum"] for r in table] == common
    assert [r["steptime_ms"] for r in table] == pytest.approx([t / 1e9 for t in time], rel=1e-12)
    assert [r["input_ms"] for r in table] == pytest.approx([w / 1e9 for w in wait], rel=1e-12)
    input_pct = 100.0 * sum(wait) / sum(time)
    assert result["summary"]["input_percent"] == pytest.approx(input_pct, rel=1e-12)
    assert result["summary"]["verdict"] == xprof_verdict(input_pct)
    # Input ops add up over hosts: one next_batch per step run under the trace on every host.
    ops = {r["op_name"]: r for r in rows_of(result["input_ops"])}
    runs = sum(RECORDING["options"]["steps"] + 1 for _ in HOSTS)
    assert ops["next_batch"]["count"] == runs


def test_input_bound_verdict_per_host(raw_hosts: list[RawHost]) -> None:
    """The hosts wait 0, 2 and 8 ms per step for input: one verdict each, at XProf's thresholds."""
    verdicts = []
    for path, host in zip(HOST_FILES, raw_hosts, strict=True):
        summary = run_tool("input_pipeline_analyzer", path)["summary"]
        steps = sorted(host.steps)
        input_pct = 100.0 * sum(host.wait[n] for n in steps) / sum(host.time(n) for n in steps)
        assert summary["input_percent"] == pytest.approx(input_pct, rel=1e-12)
        assert summary["verdict"] == xprof_verdict(input_pct)
        verdicts.append(summary["verdict"])
    assert verdicts == ["NOT input-bound", "MODERATELY input-bound", "HIGHLY input-bound"]


def _step_partial(step_ps: list[int], wait_ps: list[int]) -> dict[str, Any]:
    n = len(step_ps)
    start = np.arange(n, dtype=np.int64) * 10**12
    end = start + np.array(step_ps, dtype=np.int64)
    breakdown = {c: np.zeros(n, dtype=np.int64) for c in [*CATEGORIES, UNKNOWN]}
    breakdown["host_wait_input"] = np.array(wait_ps, dtype=np.int64)
    none = np.full(n, -1, dtype=np.int64)
    table = StepTable(
        "step_num", "train", np.arange(n, dtype=np.int64), start, end, start, end, none, none, end - start, breakdown
    )
    return {"version": get_tool("input_pipeline_analyzer").version, "steps": table.to_partial(), "input_ops": []}


@pytest.mark.parametrize(
    ("wait_per_10000", "verdict"),
    [
        (499, "NOT input-bound"),
        (500, "MODERATELY input-bound"),
        (1999, "MODERATELY input-bound"),
        (2000, "HIGHLY input-bound"),
        (9000, "HIGHLY input-bound"),
    ],
)
def test_input_bound_thresholds_are_xprofs(wait_per_10000: int, verdict: str) -> None:
    """At and around XProf's thresholds (5 % and 20 %, "at or above" as in InputAnalysis)."""
    tool = get_tool("input_pipeline_analyzer")
    partial = _step_partial([10_000 * 10**6] * 3, [wait_per_10000 * 10**6] * 3)
    summary = tool.reduce([partial], {})["summary"]
    assert summary["input_percent"] == pytest.approx(wait_per_10000 / 100)
    assert summary["verdict"] == verdict


# ---- kernel statistics across two GPU hosts -------------------------------------------------------


def _text(plane: Any, stat: Any) -> str:
    """A string stat, or one interned as a stat-metadata name (``ref_value``)."""
    kind = stat.WhichOneof("value")
    return str(plane.stat_metadata[stat.ref_value].name if kind == "ref_value" else stat.str_value)


def raw_kernels(path: Path) -> dict[tuple[str, tuple[int, ...]], list[int]]:
    """(kernel name, launch config) -> durations (ps) of the GPU kernels of one file, via protobuf."""
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    out: dict[tuple[str, tuple[int, ...]], list[int]] = defaultdict(list)
    for plane in space.planes:
        if not plane.name.startswith("/device:GPU:"):
            continue
        stat_name = {k: v.name for k, v in plane.stat_metadata.items()}

        for line in plane.lines:
            for ev in line.events:
                md = plane.event_metadata[ev.metadata_id]
                # The stat sits on the event or on its metadata (the event's wins).
                stats = (*md.stats, *ev.stats)[::-1]
                details = [_text(plane, s) for s in stats if stat_name[s.metadata_id] == "kernel_details"]
                if details and details[0] and ev.duration_ps > 0:
                    config, _ = parse_kernel_details(details[0])
                    out[(plane.event_metadata[ev.metadata_id].name, config)].append(ev.duration_ps)
    return dict(out)


def kernel_rows(result: dict[str, Any]) -> dict[tuple[str, tuple[int, ...]], list[dict[str, Any]]]:
    """Our kernel_stats rows by (kernel name, launch config); a kernel run by several ops has a row per op."""
    out: dict[tuple[str, tuple[int, ...]], list[dict[str, Any]]] = defaultdict(list)
    for r in rows_of(result["kernel_stats"]):
        grid = tuple(int(v) for v in r["grid_dim"].split(","))
        block = tuple(int(v) for v in r["block_dim"].split(","))
        config = (r["registers_per_thread"], r["static_shmem_bytes"], r["dynamic_shmem_bytes"], *grid, *block)
        out[(r["kernel_name"], config)].append(r)
    return dict(out)


def test_kernel_stats_across_two_gpu_hosts() -> None:
    """Merged over hosts: counts and totals add up, min of the minima, max of the maxima, avg = total / count."""
    per_host = [raw_kernels(p) for p in GPU_HOSTS]
    shared = per_host[0].keys() & per_host[1].keys()  # same program; two kernels were compiled differently
    assert len(shared) >= 14
    result = run_tool("kernel_stats", GPU_HOSTS, max_kernels=0)
    ours = kernel_rows(result)
    assert ours.keys() == per_host[0].keys() | per_host[1].keys()
    min_differs = 0
    for key, rows in ours.items():
        durations = per_host[0].get(key, []) + per_host[1].get(key, [])
        assert sum(r["occurrences"] for r in rows) == len(durations), key
        assert sum(r["total_duration_us"] for r in rows) == pytest.approx(sum(durations) / 1e6, rel=1e-12)
        assert min(r["min_duration_us"] for r in rows) == min(durations) / 1e6, key
        assert max(r["max_duration_us"] for r in rows) == max(durations) / 1e6, key
        for r in rows:
            assert r["avg_duration_us"] == pytest.approx(r["total_duration_us"] / r["occurrences"], rel=1e-12)
        if key in shared:
            minima = [min(h[key]) for h in per_host]
            min_differs += minima[0] != minima[1]
    assert min_differs > len(shared) // 2  # the hosts' fastest runs differ: the cross-host rule matters
    assert result["total_occurrences"] == sum(len(d) for h in per_host for d in h.values())


def test_kernel_stats_one_row_per_host_on_request() -> None:
    per_host = [raw_kernels(p) for p in GPU_HOSTS]
    merged = run_tool("kernel_stats", GPU_HOSTS, max_kernels=0)
    split = run_tool("kernel_stats", GPU_HOSTS, max_kernels=0, merge_hosts=0)
    alone = [kernel_rows(run_tool("kernel_stats", p, max_kernels=0)) for p in GPU_HOSTS]
    rows = kernel_rows(split)
    for key in per_host[0].keys() | per_host[1].keys():
        # merge_hosts=0: each host's rows as the host alone gives them.
        fields = ("op_name", "occurrences", "min_duration_us", "max_duration_us")
        expect = sorted(tuple(r[f] for f in fields) for a in alone for r in a.get(key, []))
        assert sorted(tuple(r[f] for f in fields) for r in rows[key]) == expect
        for host, a in zip(per_host, alone, strict=True):
            if key in host:
                assert sum(r["occurrences"] for r in a[key]) == len(host[key])
                assert min(r["min_duration_us"] for r in a[key]) == min(host[key]) / 1e6
    assert split["total_occurrences"] == merged["total_occurrences"]
