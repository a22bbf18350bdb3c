"""Huge hosts served in shards: the aggregator plans a host larger than --shard_mb, fans its shard tasks
out (local processes or gRPC workers, round robin), merges, caches the index like any other, and reports
progress. Tests force tiny shards so that ordinary profiles cut into many."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, http_get, wait_http
from prometheus_client.parser import text_string_to_metric_families
from test_serving import SESSION, _env

from xprof_core.execute import run_tool
from xprof_core.serve.aggregator import AggregatorConfig, Metrics, ProfileService
from xprof_core.serve.executor import LocalExecutor, MapResult, MapTask
from xprof_core.tools.index_sections import SECTION_OF_TOOL

from conftest import JAX_DATA, REAL

TABLE_TOOLS = sorted(SECTION_OF_TOOL)
H200 = REAL.parent / "h200"


def _session(tmp_path: Path, files: dict[str, Path]) -> Path:
    session = tmp_path / "logdir" / "plugins" / "profile" / SESSION
    session.mkdir(parents=True)
    for name, src in files.items():
        shutil.copyfile(src, session / name)
    return tmp_path / "logdir"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _expected(logdir: Path, tool: str) -> str:
    return _canon(run_tool(tool, (logdir, SESSION)))


class _Recording:
    """An executor that records the tasks it ran and what /api/progress would show meanwhile."""

    def __init__(self, inner: LocalExecutor, service: list[ProfileService]) -> None:
        self.inner = inner
        self.service = service
        self.tasks: list[MapTask] = []
        self.seen: list[list[dict[str, Any]]] = []
        self.description = inner.description

    def map(self, tasks: Sequence[MapTask], timeout_s: float | None = None) -> list[MapResult]:
        self.tasks.extend(tasks)
        if self.service:
            self.seen.append([dict(e) for e in self.service[0].progress.values()])
        return self.inner.map(tasks, timeout_s)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture()
def local(tmp_path: Path) -> Iterator[tuple[ProfileService, _Recording, Path]]:
    logdir = _session(tmp_path, {"big.xplane.pb": JAX_DATA / "gpu_mlp_train_long.xplane.pb"})
    holder: list[ProfileService] = []
    executor = _Recording(LocalExecutor(2, roots=[str(logdir)]), holder)
    config = AggregatorConfig(logdir=str(logdir), shard_bytes=32 << 10)
    service = ProfileService(config, executor, Metrics())  # type: ignore[arg-type]
    holder.append(service)
    try:
        yield service, executor, logdir
    finally:
        executor.close()


def test_every_table_tool_of_a_sharded_host_equals_the_one_pass_answer(
    local: tuple[ProfileService, _Recording, Path],
) -> None:
    service, executor, logdir = local
    answer = service.tool_result(SESSION, "overview_page", None, None, {})
    assert _canon(answer.result) == _expected(logdir, "overview_page")
    assert "shards" in answer.workers["big"]
    kinds = [t.tool for t in executor.tasks]
    shards = kinds.count("_index_shard")
    assert kinds.count("_index_plan") == 1 and shards > 10 and kinds.count("_index_segments") == shards
    assert not any(t.tool == "overview_page" for t in executor.tasks)  # no whole-host task
    # Progress was listed while the shards ran: this host, its size, shard tasks done of total.
    during = [e for snapshot in executor.seen for e in snapshot]
    assert during and {e["host"] for e in during} == {"big"}
    assert {e["total"] for e in during if e["total"]} == {2 * shards}
    assert max(e["done"] for e in during) >= shards
    assert during[0]["bytes"] == (JAX_DATA / "gpu_mlp_train_long.xplane.pb").stat().st_size
    assert service.progress == {}  # nothing left listed once done
    # Every other table tool is a view of the cached index: no new task.
    executor.tasks.clear()
    for tool in TABLE_TOOLS:
        assert _canon(service.tool_result(SESSION, tool, None, None, {}).result) == _expected(logdir, tool), tool
    assert executor.tasks == []


def test_concurrent_requests_build_a_huge_host_once(local: tuple[ProfileService, _Recording, Path]) -> None:
    service, executor, logdir = local
    answers: list[Any] = []
    threads = [
        threading.Thread(target=lambda: answers.append(service.tool_result(SESSION, "kernel_stats", None, None, {})))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 3 and len({_canon(a.result) for a in answers}) == 1
    assert [t.tool for t in executor.tasks].count("_index_plan") == 1
    assert _canon(answers[0].result) == _expected(logdir, "kernel_stats")


def test_the_plan_is_cached_and_a_changed_file_is_planned_again(
    local: tuple[ProfileService, _Recording, Path],
) -> None:
    import os

    service, executor, logdir = local
    service.tool_result(SESSION, "hlo_stats", None, None, {})
    path = next((logdir / "plugins" / "profile" / SESSION).glob("*.xplane.pb"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new identity: mapped again
    executor.tasks.clear()
    service.tool_result(SESSION, "hlo_stats", None, None, {})
    assert [t.tool for t in executor.tasks].count("_index_plan") == 1  # the old plan is not reused
    # The index evicted but the plan kept: built again from the cached plan, without a plan task.
    executor.tasks.clear()
    index_keys = [k for k in list(service.cache._items) if k not in _plan_keys(service)]
    for k in index_keys:
        service.cache._items.pop(k)
    service.tool_result(SESSION, "hlo_stats", None, None, {})
    kinds = [t.tool for t in executor.tasks]
    assert kinds.count("_index_plan") == 0 and kinds.count("_index_shard") > 1


def _plan_keys(service: ProfileService) -> set[str]:
    from xprof_core.serve.partials import decode_partial

    return {k for k, v in service.cache._items.items() if "skeleton" in decode_partial(v)}


# --- real processes: an aggregator and two gRPC workers on loopback ---


def _metric(base: str, name: str, **labels: str) -> float:
    status, body, _ = http_get(f"{base}/metrics")
    assert status == 200
    return sum(
        s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_shards_fan_out_to_every_worker_and_merge_exactly(tmp_path: Path) -> None:
    big = tmp_path / "h200.xplane.pb"  # the H200 profile uncompressed: huge at these shard sizes
    files = {
        "big.xplane.pb": JAX_DATA / "gpu_mlp_train_long.xplane.pb",
        "small.xplane.pb": JAX_DATA / "gpu_mlp_train.xplane.pb",
    }
    if (H200 / "jax_dev_nocmdbuf.xplane.pb.gz").exists():
        import gzip

        files["h200.xplane.pb.gz"] = H200 / "jax_dev_nocmdbuf.xplane.pb.gz"
        big.write_bytes(gzip.decompress((H200 / "jax_dev_nocmdbuf.xplane.pb.gz").read_bytes()))
        files["h200big.xplane.pb"] = big
    logdir = _session(tmp_path, files)
    procs: list[subprocess.Popen[bytes]] = []
    http = [free_port(), free_port()]
    grpc_ports = [free_port(), free_port()]
    try:
        for i in range(2):
            argv = [sys.executable, "-m", "xprof_core.worker", f"--port={http[i]}", f"-gp={grpc_ports[i]}"]
            argv += ["--host", "127.0.0.1", f"--logdir={logdir}", f"--worker_id=w{i}"]
            procs.append(subprocess.Popen(argv, env=_env()))
        port = free_port()
        targets = ",".join(f"127.0.0.1:{p}" for p in grpc_ports)
        argv = [sys.executable, "-m", "xprof_core.aggregator", f"--port={port}", f"--worker_service_address={targets}"]
        argv += ["--host", "127.0.0.1", "--logdir", str(logdir), "--shard_mb=0.5"]
        procs.append(subprocess.Popen(argv, env=_env()))
        for p in http:
            wait_http(f"http://127.0.0.1:{p}/healthz")
        agg = f"http://127.0.0.1:{port}"
        wait_http(f"{agg}/healthz")
        base = f"{agg}/data/plugin/profile"
        for tool in TABLE_TOOLS:
            status, body, _ = http_get(f"{base}/data?run={SESSION}&tag={tool}")
            assert status == 200, body[:300]
            assert _canon(json.loads(body)) == _expected(logdir, tool), tool
        status, body, _ = http_get(f"{base}/progress")
        assert status == 200 and json.loads(body) == {"builds": []}
        # The huge hosts went out in shards to both workers; the small one as one task.
        per_worker = {
            f"w{i}": _metric(f"http://127.0.0.1:{http[i]}", "xprof_worker_tasks_total", tool="_index_shard")
            for i in range(2)
        }
        assert all(v > 0 for v in per_worker.values()), per_worker
        assert _metric(agg, "xprof_map_tasks_total", tool="_index_shard") == sum(per_worker.values())
        # Mapped whole, once each (every table tool after the first reads the cached index): the small
        # host, and the compressed one (a shard task would inflate all of it to reach its ranges).
        whole = sum(_metric(agg, "xprof_map_tasks_total", tool=t) for t in TABLE_TOOLS)
        assert whole == len([n for n in files if n.startswith("small") or n.endswith(".gz")])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
