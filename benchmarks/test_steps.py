"""Step analysis at scale: 8 hosts x 60,000 steps.

XProf's first multi-host step alignment was quadratic (12 hours on 8 hosts x
500 MB). Here one synthetic host profile of 60,000 JAX-style steps (a host
``train`` marker with ``step_num``, a ``cuGraphLaunch`` with a correlation id,
and a device kernel carrying the same id) is decoded and mapped, then eight
hosts' partials (shifted in time, each missing a different few steps at the
edges) are reduced by overview_page, which aligns the steps across hosts.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from xprof_core import decode_xspace
from xprof_core.index.steps import StepTable, build_step_table
from xprof_core.protos import xplane_pb2
from xprof_core.tools.overview_page import OVERVIEW_PAGE

from figures import record

STEPS = 60_000
HOSTS = 8


def synthetic_host(steps: int) -> bytes:
    """An XSpace with ``steps`` steps: host marker + launch, and one kernel per step."""
    space = xplane_pb2.XSpace()
    host = space.planes.add(id=0, name="/host:CPU")
    for i, name in enumerate(["train", "cuGraphLaunch"], start=1):
        host.event_metadata[i].id = i
        host.event_metadata[i].name = name
    for i, name in enumerate(["step_num", "correlation_id"], start=1):
        host.stat_metadata[i].id = i
        host.stat_metadata[i].name = name
    py = host.lines.add(id=1, name="python3", timestamp_ns=0)
    period = 2_000_000_000  # 2 ms per step, in ps
    for s in range(steps):
        ev = py.events.add(metadata_id=1, offset_ps=s * period, duration_ps=period - 100_000_000)
        ev.stats.add(metadata_id=1, int64_value=s)
        launch = py.events.add(metadata_id=2, offset_ps=s * period + 50_000_000, duration_ps=10_000_000)
        launch.stats.add(metadata_id=2, uint64_value=s + 1)
    gpu = space.planes.add(id=1, name="/device:GPU:0")
    gpu.event_metadata[1].id = 1
    gpu.event_metadata[1].name = "gemm_fusion"
    gpu.stat_metadata[1].id = 1
    gpu.stat_metadata[1].name = "correlation_id"
    stream = gpu.lines.add(id=7, name="Stream #7(Compute)", timestamp_ns=0)
    for s in range(steps):
        k = stream.events.add(metadata_id=1, offset_ps=s * period + 80_000_000, duration_ps=900_000_000)
        k.stats.add(metadata_id=1, uint64_value=s + 1)
    return space.SerializeToString()


@pytest.fixture(scope="module")
def host_bytes() -> bytes:
    return synthetic_host(STEPS)


def test_map_60k_steps(benchmark, host_bytes: bytes) -> None:  # type: ignore[no-untyped-def]
    xs = decode_xspace(host_bytes)
    table = benchmark.pedantic(build_step_table, args=(xs,), rounds=3, iterations=1)
    assert len(table) == STEPS
    assert (table.device_start_ps > table.host_start_ps).all()
    record(f"steps map: one host, {STEPS:,} steps, {xs.num_events:,} events: {benchmark.stats.stats.min:.2f} s")


def test_reduce_8_hosts_x_60k_steps(benchmark, host_bytes: bytes) -> None:  # type: ignore[no-untyped-def]
    base = build_step_table(decode_xspace(host_bytes)).to_partial()
    rng = np.random.default_rng(0)
    partials = []
    for h in range(HOSTS):
        table = StepTable.from_partial(base)
        lo, hi = int(rng.integers(0, 5)), STEPS - int(rng.integers(0, 5))
        keep = slice(lo, hi)
        shift = h * 1_000_000  # hosts' clocks differ
        cut = {
            k: (v[keep] + (shift if k.endswith("_ps") and k != "step_time_ps" else 0))
            for k, v in table.to_partial().items()
            if isinstance(v, np.ndarray)
        }
        partial = dict(base, **cut)
        partial["breakdown_ps"] = {c: v[keep] for c, v in base["breakdown_ps"].items()}
        partials.append(
            {
                "version": 1,
                "steps": partial,
                "device_type": "GPU",
                "device_count": 1,
                "hardware_type": "GPU",
                "device_idle_fraction": 0.5,
                "top_ops": [],
                "host": f"h{h}",
            }
        )
    t0 = time.perf_counter()
    result = benchmark.pedantic(OVERVIEW_PAGE.reduce, args=(partials, {}), rounds=3, iterations=1)
    assert STEPS - 10 <= result["steps"]["count"] <= STEPS
    record(
        f"steps reduce: {HOSTS} hosts x {STEPS:,} steps aligned in {benchmark.stats.stats.min:.2f} s "
        f"({result['steps']['count']:,} steps on every host; wall incl. rounds {time.perf_counter() - t0:.1f} s)"
    )
