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


# ---- the sharded build through an executor: the map tasks workers run ----


def _index_tables(index: dict[str, Any]) -> dict[str, str]:
    return {t: _canon(get_tool(t).reduce([index], {})) for t in TOOLS}


@pytest.fixture(scope="module")
def pool() -> Any:
    from xprof_core.serve.executor import LocalExecutor

    executor = LocalExecutor(2, roots=[str(JAX_DATA), str(H200)])
    yield executor
    executor.close()


@pytest.mark.parametrize(
    "path",
    [
        JAX_DATA / "gpu_mlp_train_long.xplane.pb",
        JAX_DATA / "cpu_mlp_train.xplane.pb",
        H200 / "jax_dev_nocmdbuf.xplane.pb.gz",
    ],
    ids=lambda p: p.name,
)
def test_sharded_build_through_the_process_pool(pool: Any, path: Path) -> None:
    """Plan, shard walks and segments as map tasks in other processes (each shard's walk handed between its
    two tasks, or walked again): the index equals the one-pass walk's, and progress counts every task."""
    from xprof_core.serve.sharding import sharded_host_index

    if not path.exists():
        pytest.skip(f"{path} is absent (the shared profiles folder is not here)")
    expected = _index_tables(build_host_index(walk_host(open_host_bytes(str(path)))))
    seen: list[tuple[int, int]] = []
    run, plan_answer = sharded_host_index(
        lambda tasks: pool.map(tasks, 300), "h", str(path), 16 << 10, progress=lambda d, t: seen.append((d, t))
    )
    assert run.shards > 1
    assert run.rewalks == 0  # the local pool runs a shard's segments where its walk is kept
    assert _index_tables(decode_partial(encode_partial(run.partial))) == expected
    assert seen[0] == (0, 2 * run.shards) and seen[-1] == (2 * run.shards, 2 * run.shards)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # A cached plan answer serves the next build without a plan task.
    again, _ = sharded_host_index(lambda tasks: pool.map(tasks, 300), "h", str(path), 16 << 10, plan_answer)
    assert _index_tables(again.partial) == expected


def test_a_lost_shard_walk_is_walked_again() -> None:
    """A segments task in a process without the shard's walk answers 'not cached' unless told to walk."""
    from xprof_core.execute import SHARD_CACHE, map_host
    from xprof_core.execute.sharding import SEGMENTS_TASK, SHARD_TASK, encode_param, encode_shard_plan
    from xprof_core.index.shards import ShardPass

    path = str(JAX_DATA / "cpu_mlp_train.xplane.pb")
    buf = open_host_bytes(path)
    plan = plan_shards(buf, 16 << 10)
    steps = {"start_ps": np.array([0], np.int64), "end_ps": np.array([1 << 62], np.int64)}
    steps["marker_ps"] = steps["end_ps"]
    params = {"plan": encode_shard_plan(plan, 1), "token": "t.1", "steps": encode_param(steps)}
    walked = map_host(SHARD_TASK, path, params)
    hit = map_host(SEGMENTS_TASK, path, {**params, "walk": "0"})
    assert hit["cached"] is True
    SHARD_CACHE.clear()
    assert map_host(SEGMENTS_TASK, path, {**params, "walk": "0"}) == {"cached": False}
    again = map_host(SEGMENTS_TASK, path, {**params, "walk": "1"})
    for k in ("step", "prefix", "start_ps", "end_ps"):
        assert np.array_equal(again["segments"][k], hit["segments"][k]), k
    assert len(hit["segments"]["start_ps"]) > 0
    assert ShardPass.from_partial(walked).shard == 0


def test_shard_parameters_are_checked() -> None:
    from xprof_core.execute import map_host
    from xprof_core.execute.sharding import SHARD_TASK

    path = str(JAX_DATA / "cpu_mlp_train.xplane.pb")
    with pytest.raises(ValueError, match="missing parameter 'plan'"):
        map_host(SHARD_TASK, path, {"token": "x"})
    with pytest.raises(ValueError, match="malformed shard parameter"):
        map_host(SHARD_TASK, path, {"token": "x", "plan": "not base64!"})


def test_a_shard_reads_only_its_ranges(tmp_path: Path) -> None:
    """read_host_ranges: the ranges hold the file's bytes, the rest is zero pages; a file whose size changed
    since it was planned is refused; a .gz file is read whole."""
    import gzip
    import resource

    from xprof_core.errors import ProfileChangedError
    from xprof_core.storage.logdir import read_host_ranges

    data = np.random.default_rng(1).integers(1, 255, size=(8 << 20) + 13, dtype=np.uint8).tobytes()
    path = tmp_path / "big.xplane.pb"
    path.write_bytes(data)
    ranges = [(5, 70), (1 << 20, (1 << 20) + 4096), ((8 << 20) - 3, (8 << 20) + 13)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    buf = read_host_ranges(str(path), ranges, len(data))
    assert len(buf) == len(data)
    view = np.frombuffer(buf, dtype=np.uint8)
    inside = np.zeros(len(data), dtype=bool)
    for b, e in ranges:
        inside[b:e] = True
        assert bytes(buf[b:e]) == data[b:e]
    assert not view[~inside].any()  # never read: zero
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 4 << 10  # KiB: far less than 8 MiB
    with pytest.raises(ProfileChangedError, match="changed since it was planned"):
        read_host_ranges(str(path), ranges, len(data) + 1)
    gz = tmp_path / "big.xplane.pb.gz"
    gz.write_bytes(gzip.compress(data[:1000]))
    assert bytes(read_host_ranges(str(gz), [(0, 10)], 1000)) == data[:1000]


def _unsorted_host(tmp_path: Path) -> Path:
    """A CPU host whose one large line lists its events latest first (nested, so self time matters)."""
    from xprof_core.protos import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(id=1, name="/host:CPU")
    for mid, name in ((1, "outer"), (2, "inner")):
        plane.event_metadata[mid].id = mid
        plane.event_metadata[mid].name = name
    line = plane.lines.add(id=7, name="python", timestamp_ns=1000)
    for k in reversed(range(400)):
        line.events.add(metadata_id=1, offset_ps=k * 10_000, duration_ps=9_000)
        line.events.add(metadata_id=2, offset_ps=k * 10_000 + 1_000, duration_ps=3_000)
    path = tmp_path / "unsorted.xplane.pb"
    path.write_bytes(space.SerializeToString())
    return path


def test_a_line_out_of_order_is_planned_again_whole(pool: Any, tmp_path: Path) -> None:
    """A line cut into pieces whose events are not sorted cannot be merged by its pieces: the build plans
    again with whole lines and still equals the one-pass walk."""
    from xprof_core.errors import UnsortedLineError
    from xprof_core.serve.sharding import sharded_host_index

    path = _unsorted_host(tmp_path)
    buf = open_host_bytes(str(path))
    plan = plan_shards(buf, 1 << 10)
    assert plan.num_shards > 2
    with pytest.raises(UnsortedLineError):
        walk_host_sharded(buf, 1 << 10)
    expected = _index_tables(build_host_index(walk_host(buf)))
    executor = type(pool)(1, roots=[str(tmp_path)])
    try:
        run, answer = sharded_host_index(lambda tasks: executor.map(tasks, 120), "h", str(path), 1 << 10)
    finally:
        executor.close()
    assert run.shards == 1 and ShardPlan.from_partial(answer["plan"]).piece_first_part.all()
    assert _index_tables(run.partial) == expected
    assert run.partial["num_events"] == 800
