"""One host in shards: every table tool's result equals the one-pass walk's, exactly, with shards so small
that every boundary case occurs (lines split into pieces, nesting stacks that cross a piece's start, steps
whose events fall in different shards, a line alone in its shard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xprof_core.index.passes import walk_host
from xprof_core.index.shards import ShardPlan, plan_shards, walk_host_sharded
from xprof_core.serve.partials import decode_partial, encode_partial
from xprof_core.storage.logdir import open_host_bytes
from xprof_core.tools import get_tool
from xprof_core.tools.host_index import build_host_index
from xprof_core.tools.index_sections import SECTION_OF_TOOL

from conftest import JAX_DATA, REAL, jax_files, real_xplane_files

H200 = REAL.parent / "h200"
FILES = [*real_xplane_files(), *jax_files(), *sorted(H200.glob("*.xplane.pb.gz"))]
TOOLS = sorted(SECTION_OF_TOOL)


def _canon(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o), sort_keys=True)


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.name)
def host(request: pytest.FixtureRequest) -> tuple[Path, Any, dict[str, str]]:
    buf = open_host_bytes(str(request.param))
    index = build_host_index(walk_host(buf))
    return request.param, buf, {t: _canon(get_tool(t).reduce([index], {})) for t in TOOLS}


@pytest.mark.parametrize("shard_bytes", [1 << 10, 1 << 14, 1 << 16])
def test_sharded_equals_one_pass(host: tuple[Path, Any, dict[str, str]], shard_bytes: int) -> None:
    path, buf, expected = host
    plan = plan_shards(buf, shard_bytes)
    index = build_host_index(walk_host_sharded(buf, shard_bytes))
    for tool in TOOLS:
        assert _canon(get_tool(tool).reduce([index], {})) == expected[tool], (path.name, shard_bytes, tool)
    assert plan.num_shards >= 1


def test_tiny_shards_cut_lines_and_nesting() -> None:
    """The boundary cases the merge must get right occur in the pytrace profile at 1 KiB shards."""
    buf = (JAX_DATA / "gpu_mlp_train_pytrace.xplane.pb").read_bytes()
    plan = plan_shards(buf, 1 << 10)
    split = plan.piece_first_part == 0
    assert split.any()  # some pieces start inside a line
    assert plan.num_shards > 10
    # A line whose pieces fall in several shards, and a shard holding a single whole line.
    lines_per_shard = [
        set(plan.piece_line[plan.shard_begin[i] : plan.shard_end[i]].tolist()) for i in range(plan.num_shards)
    ]
    assert any(len(s) == 1 for s in lines_per_shard)
    spread = {ln: sum(ln in s for s in lines_per_shard) for ln in set(plan.piece_line.tolist())}
    assert max(spread.values()) > 2
    # Pieces are disjoint, cover every line's span, and their rows count every event once.
    assert (plan.piece_end > plan.piece_begin).all()
    assert int(plan.line_events.sum()) == int(np.diff(np.r_[plan.piece_first_row, plan.line_events.sum()]).sum())
    hp = walk_host_sharded(buf, 1 << 10)
    one = walk_host(buf)
    assert hp.num_events == one.num_events
    assert sorted(hp.records["row"].tolist()) == sorted(one.records["row"].tolist())


def test_the_plan_crosses_the_wire() -> None:
    buf = (JAX_DATA / "gpu_mlp_train.xplane.pb").read_bytes()
    plan = plan_shards(buf, 4096)
    again = ShardPlan.from_partial(decode_partial(encode_partial(plan.to_partial())))
    for name, value in plan.__dict__.items():
        other = getattr(again, name)
        assert (list(value) == list(other)) if isinstance(value, (list, np.ndarray)) else value == other, name
