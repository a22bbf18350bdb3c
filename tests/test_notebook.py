"""The example notebook (examples/notebook_quickstart.ipynb) executed by nbclient in a real kernel:
an XSpace's and a tool result's HTML, a SQL answer, a diff verdict and ``xprof_core.show``'s IFrame
of a live local aggregator."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import ROOT, subprocess_env

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbformat)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install ipykernel)")
pytest.importorskip("duckdb", reason="the 'sql' extra (duckdb) is not installed")

NOTEBOOK = ROOT / "examples" / "notebook_quickstart.ipynb"


def outputs(cell: Any) -> dict[str, str]:
    """A code cell's outputs by MIME type (stream text under 'stream')."""
    out: dict[str, str] = {}
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out["stream"] = out.get("stream", "") + o["text"]
        for mime, value in o.get("data", {}).items():
            out[mime] = value if isinstance(value, str) else "".join(value)
    return out


def test_example_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel imports the xprof_core this test imports (an install, or src/ of a development tree).
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not [o for o in cell.outputs if o["output_type"] == "error"], cell.source
    xspace, sql, tool, diff, frame, check = (outputs(c) for c in code)
    # show(LOGDIR) opens the newest run of the logdir: extra_layer, recorded second.
    assert "<b>XSpace</b>" in xspace["text/html"] and "/host:CPU" in xspace["text/html"]
    assert "<th>Plane</th>" in xspace["text/html"] and "xprof-table" in xspace["text/html"]
    assert "total_us" in sql["text/html"] and "<table" in sql["text/html"]
    assert "<b>hlo_stats</b>" in tool["text/html"] and "ynn_fusion" in tool["text/html"]
    verdict = diff["stream"].strip()
    assert re.match(r"extra_layer is \d+\.\d% slower than base per step", verdict), verdict
    assert verdict in diff["text/html"].replace("&gt;", ">")
    assert re.search(r'<iframe[^>]+src="http://127\.0\.0\.1:\d+/#run=extra_layer%2F\d{4}_', frame["text/html"]), frame
    assert check["stream"].strip() == "aggregator: ok"
