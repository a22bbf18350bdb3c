"""The host index: one pass per host serves every table tool, in process, over the wire and after a restart."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import stop_process

import xprof_core
from xprof_core import execute
from xprof_core.execute import run_tool
from xprof_core.index.passes import walk_host
from xprof_core.serve.partials import decode_partial, encode_partial
from xprof_core.tools import get_tool
from xprof_core.tools.host_index import build_host_index
from xprof_core.tools.index_sections import INDEX_VERSION, SECTION_OF_TOOL, section

from conftest import JAX_DATA, subprocess_env

GPU = JAX_DATA / "gpu_mlp_train.xplane.pb"
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"
TABLE_TOOLS = sorted(SECTION_OF_TOOL)


@pytest.mark.parametrize("path", [GPU, CPU], ids=["gpu", "cpu"])
def test_every_table_tool_reads_its_section_of_one_index(path: Path) -> None:
    index = build_host_index(walk_host(path.read_bytes()))
    assert index["version"] == INDEX_VERSION
    # The index crosses the wire as it is: the encoded partial gives every tool the same result.
    wire = decode_partial(encode_partial(index))
    for tool in TABLE_TOOLS:
        t = get_tool(tool)
        assert t.needs == "index"
        direct = t.reduce([t.map(xprof_core.load(path), {})], {})
        assert json.dumps(t.reduce([wire], {}), default=str) == json.dumps(direct, default=str), tool
        assert section(wire, tool).keys() == t.map(xprof_core.load(path), {}).keys()


def test_the_second_table_tool_reads_the_cached_index(monkeypatch: pytest.MonkeyPatch) -> None:
    execute.INDEX_CACHE.clear()
    walks = []
    real = execute.map_buffer

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        walks.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "map_buffer", counting)
    for tool in TABLE_TOOLS:
        run_tool(tool, GPU)
    assert walks == [TABLE_TOOLS[0]]  # one pass over the host for all six tools


def test_a_changed_file_is_walked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    execute.INDEX_CACHE.clear()
    host = tmp_path / "host.xplane.pb"
    shutil.copyfile(GPU, host)
    walks = []
    real = execute.map_buffer

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        walks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "map_buffer", counting)
    first = run_tool("overview_page", host)
    run_tool("hlo_stats", host)
    assert len(walks) == 1
    shutil.copyfile(CPU, host)  # same path, other content
    second = run_tool("overview_page", host)
    assert len(walks) == 2
    assert first["run_environment"]["hardware_type"] == "GPU"
    assert second["run_environment"]["hardware_type"] == "CPU_ONLY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Aggregator:
    def __init__(self, logdir: Path, cache_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xprof_core.aggregator",
                f"--port={self.port}",
                "--host=127.0.0.1",
                f"--logdir={logdir}",
                f"--cache_dir={cache_dir}",
                "--local_workers=1",
            ],
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the aggregator did not start") from None
                time.sleep(0.1)

    def data(self, run: str, tool: str) -> dict:  # type: ignore[type-arg]
        query = urllib.parse.urlencode({"run": run, "tag": tool})
        with urllib.request.urlopen(f"{self.url}data/plugin/profile/data?{query}", timeout=120) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def map_tasks(self) -> float:
        with urllib.request.urlopen(self.url + "metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("xprof_map_tasks_total{")
        )

    def stop(self) -> None:
        stop_process(self.proc)


def test_a_restarted_aggregator_serves_every_table_tool_from_its_cache_dir(tmp_path: Path) -> None:
    session = tmp_path / "logdir" / "plugins" / "profile" / "run1"
    session.mkdir(parents=True)
    shutil.copyfile(GPU, session / "host0.xplane.pb")
    shutil.copyfile(GPU, session / "host1.xplane.pb")
    cache = tmp_path / "cache"
    first = _Aggregator(tmp_path / "logdir", cache)
    try:
        answers = {"overview_page": first.data("run1", "overview_page")}
        assert first.map_tasks() == 2  # one map task per host, for the index
        for tool in TABLE_TOOLS:
            answers[tool] = first.data("run1", tool)
        assert first.map_tasks() == 2  # every other table tool read the cached index
    finally:
        first.stop()
    assert list(cache.glob("*.xpc")), "nothing was written to the cache directory"
    second = _Aggregator(tmp_path / "logdir", cache)
    try:
        for tool in reversed(TABLE_TOOLS):
            assert second.data("run1", tool) == answers[tool], tool
        assert second.map_tasks() == 0  # after the restart, nothing was computed again
    finally:
        second.stop()


def test_the_index_holds_no_per_event_column() -> None:
    """The index of the 2,455-event GPU profile is tables of ops, steps and kernels, not event columns."""
    index = build_host_index(walk_host(GPU.read_bytes()))
    sizes = []

    def walk(value: object) -> None:
        if isinstance(value, np.ndarray):
            sizes.append(len(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(index)
    assert index["num_events"] == xprof_core.load(GPU).num_events
    assert max(sizes) < index["num_events"] / 10
