"""memory_profile, memory_viewer, roofline_model and graph_viewer end to end on every profile: run_tool,
the JSON the API sends, ``xprof-core convert``, and the aggregator's HTTP routes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import http_get

from xprof_core import cli
from xprof_core.execute import run_tool, run_tool_json
from xprof_core.tools import tool_names

from conftest import JAX_DATA, REAL, ROOT, TPU, real_xplane_files, subprocess_env

H200 = REAL.parent / "h200"
FILES = real_xplane_files() + sorted(JAX_DATA.glob("*.xplane.pb")) + sorted(H200.glob("*.xplane.pb.gz"))
TOOLS = ("memory_profile", "memory_viewer", "roofline_model", "graph_viewer")
DEMO = ROOT / "src" / "xprof_core" / "demo"
H100_RUN = "jax_mlp_h100/2026_11_28_01_22_41"
CPU_RUN = "jax_mlp_cpu/2026_11_28_01_22_50"


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


def test_the_tools_are_registered() -> None:
    assert set(TOOLS) <= set(tool_names())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_each_tool_on_each_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for tool in TOOLS:
        result = run_tool(tool, path)
        assert isinstance(result, dict) and result, tool
        as_json = json.loads(json.dumps(result, default=_plain))
        assert json.loads(run_tool_json(tool, path)) == as_json, tool
        assert cli.main(["convert", str(path), "--tool", tool]) == 0, tool
        out, _ = capsys.readouterr()
        assert json.loads(out) == as_json, tool
        # Data, or an empty result that says why.
        has_data = {
            "memory_profile": lambda r: bool(r["memory_ids"]),
            "memory_viewer": lambda r: "peak_heap_mib" in r,
            "roofline_model": lambda r: r["num_ops"] > 0,
            "graph_viewer": lambda r: bool(r.get("nodes")),
        }[tool](result)
        assert has_data or result["reason"], tool
    if "cpu_mlp" in path.name:
        assert not run_tool("memory_profile", path)["memory_ids"]  # JAX on CPU records no allocator events
    if "GPU-multi-worker" in str(path):
        assert not run_tool("memory_viewer", path)["modules"]  # TensorFlow 2020: no HLO protos


def test_csv_of_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    path = JAX_DATA / "gpu_mlp_train.xplane.pb"
    assert cli.main(["convert", str(path), "--tool", "roofline_model", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:3] == ["Rank", "Program ID", "Operation"] and rows[1][2] == "Program"
    assert len(rows) == run_tool("roofline_model", path)["num_ops"] + 2


# ---- the aggregator ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    status, body, _ = http_get(url)
    return status, body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An aggregator process (local worker pool) over the demo runs and, when present, the TPU profile."""
    root = tmp_path_factory.mktemp("new-tools") / "logdir"
    shutil.copytree(DEMO / "jax_mlp_h100", root / "jax_mlp_h100")
    shutil.copytree(DEMO / "jax_mlp_cpu", root / "jax_mlp_cpu")
    if TPU.exists():
        session = root / "tpu" / "plugins" / "profile" / "2026_01_04_00_00_00"
        session.mkdir(parents=True)
        shutil.copyfile(TPU, session / "tpu-host.xplane.pb")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xprof_core.aggregator",
            f"--port={port}",
            "--host",
            "127.0.0.1",
            "--local_workers=2",
            f"--logdir={root}",
        ],
        env=subprocess_env(),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while not _alive(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the aggregator did not come up")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "healthz", timeout=2):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def api(server: str, route: str, **params: Any) -> tuple[int, Any]:
    status, body = _get(f"{server}data/plugin/profile/{route}?{urllib.parse.urlencode(params)}")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_served_by_the_aggregator(server: str) -> None:
    status, tools = api(server, "run_tools", run=H100_RUN)
    assert status == 200 and set(TOOLS) <= set(tools)
    demo = DEMO / "jax_mlp_h100" / "plugins" / "profile" / "2026_11_28_01_22_41" / "h100-node.xplane.pb"
    for tool, params in (
        ("memory_profile", {"memory_id": "GPU_0_bfc"}),
        ("memory_viewer", {"module_name": "jit_train_step(7956)"}),
        ("roofline_model", {}),
        ("graph_viewer", {"node_name": "gemm_fusion_dot.1", "graph_width": "2"}),
    ):
        status, body = api(server, "data", run=H100_RUN, tag=tool, **params)
        assert status == 200, (tool, body)
        assert body == json.loads(run_tool_json(tool, demo, **params)), tool
    status, csv_text = api(server, "data_csv", run=H100_RUN, tag="memory_profile", table="live_at_peak")
    assert status == 200 and csv_text.startswith("Op name,Allocation size (bytes)")


def test_http_errors_and_reasons(server: str) -> None:
    status, body = api(server, "data", run=H100_RUN, tag="memory_viewer", module_name="jit_nope(1)")
    assert status == 400 and "no HLO module" in body["error"]
    status, body = api(server, "data", run=H100_RUN, tag="graph_viewer", node_name="nope.7")
    assert status == 400 and "nope.7" in body["error"]
    status, body = api(server, "data", run=H100_RUN, tag="memory_profile", memory_id="GPU_7_bfc")
    assert status == 400 and "unknown memory_id" in body["error"]
    status, body = api(server, "data", run=CPU_RUN, tag="memory_profile")
    assert status == 200 and body["memory_ids"] == [] and body["reason"]


def test_tpu_run_over_http(server: str) -> None:
    if not TPU.exists():
        pytest.skip("the shared real-profile folder ../shared/data/real is absent")
    status, body = api(server, "data", run="tpu/2026_01_04_00_00_00", tag="roofline_model")
    assert status == 200 and body["device"]["source"] == "plane peaks" and body["num_ops"] == 17
    status, body = api(server, "data", run="tpu/2026_01_04_00_00_00", tag="memory_profile")
    assert status == 200 and body["memory_ids"] == ["0", "1", "2", "3"]
