"""Every tool runs through run_tool and the CLI on every real file and committed JAX profile."""

from __future__ import annotations

import json

import pytest

from xprof_core import cli
from xprof_core.execute import run_tool, run_tool_json
from xprof_core.tools import tool_names

from conftest import JAX_DATA, real_xplane_files

FILES = real_xplane_files() + sorted(JAX_DATA.glob("*.xplane.pb"))
TOOLS = [
    "overview_page",
    "input_pipeline_analyzer",
    "framework_op_stats",
    "hlo_stats",
    "op_profile",
    "kernel_stats",
    "trace_viewer",
]


def test_every_tool_is_registered() -> None:
    assert set(TOOLS) <= set(tool_names())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_tool_on_every_file(path, capsys) -> None:  # type: ignore[no-untyped-def]
    for tool in TOOLS:
        result = run_tool(tool, path)
        assert isinstance(result, dict) and result, tool
        # The JSON the API would send parses to the same content.
        assert json.loads(run_tool_json(tool, path)) == json.loads(json.dumps(result, default=_plain)), tool
        code = cli.main(["convert", str(path), "--tool", tool])
        out, _ = capsys.readouterr()
        assert code == 0, tool
        assert json.loads(out) == json.loads(json.dumps(result, default=_plain)), tool
    trace = run_tool("trace_viewer", path, resolution="0")
    assert trace["returnedEventsSize"] == sum(1 for e in trace["traceEvents"] if e["ph"] == "X")


def _plain(value):  # type: ignore[no-untyped-def]
    return value.tolist() if hasattr(value, "tolist") else str(value)
