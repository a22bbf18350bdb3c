"""The README quickstart's aggregator (no --logdir: the bundled demo) shows the PyTorch run.

The demo logdir holds one PyTorch Kineto trace (TensorBoard's layout,
``torch_transformer_h200/<worker>.<ts>.pt.trace.json.gz``) next to the JAX
runs. In Debian's headless Chromium: the landing page lists it, and its
overview, kernel stats, framework op stats and trace viewer show what the
JSON API answers. Skipped like test_ui_browser.py when Playwright or
Chromium is missing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest

import test_ui_browser as ui_browser
from test_ui_browser import Server, UiPage, assert_cell, first_row, view_url

# The browser and page fixtures of the JAX UI tests, shared.
browser = ui_browser.browser
ui = ui_browser.ui

RUN = "torch_transformer_h200"


@pytest.fixture(scope="module")
def demo_server() -> Iterator[Server]:
    s = Server()  # the quickstart: the bundled demo logdir
    try:
        yield s
    finally:
        s.stop()


def test_demo_lists_the_pytorch_run(ui: UiPage, demo_server: Server) -> None:
    assert RUN in demo_server.api("runs")
    ui.goto(demo_server.url, ready="landing")
    card = ui.page.locator(f".run-card[data-run='{RUN}']")
    assert card.locator(".hosts").inner_text() == "Hosts (1): h200-node"
    tools = card.locator(".tools a").evaluate_all("as => as.map(a => a.dataset.tool)")
    assert {"overview_page", "kernel_stats", "framework_op_stats", "trace_viewer"} <= set(tools)


def test_pytorch_overview(ui: UiPage, demo_server: Server) -> None:
    data = demo_server.api("data", run=RUN, tag="overview_page")
    assert data["steps"]["count"] == 3 and data["step_name"] == "ProfilerStep"
    ui.goto(view_url(demo_server, RUN, "overview_page"), ready="overview_page")
    page = ui.page
    assert int(page.locator("[data-kpi='steps']").get_attribute("data-value")) == 3
    assert page.locator("[data-kpi='device'] .value").inner_text() == "NVIDIA H200"
    assert page.locator("svg.step-chart g.bar").count() == 3
    assert page.locator("[data-breakdown] [data-category='device_memset']").count() == 1
    table = data["communication_per_rank"]
    for (text, raw), cell, col in zip(
        first_row(ui, "communication_per_rank"), table["rows"][0]["c"], table["cols"], strict=True
    ):
        assert_cell(text, raw, cell["v"], col["type"])
    ui.shot("pytorch_overview", full_page=True)


@pytest.mark.parametrize("tool", ["kernel_stats", "framework_op_stats"])
def test_pytorch_tables(ui: UiPage, demo_server: Server, tool: str) -> None:
    dt = demo_server.api("data", run=RUN, tag=tool)[tool]
    assert dt["rows"]
    ui.goto(view_url(demo_server, RUN, tool), ready=tool)
    for (text, raw), cell, col in zip(first_row(ui, tool), dt["rows"][0]["c"], dt["cols"], strict=True):
        assert_cell(text, raw, cell["v"], col["type"])
    labels = [c["label"] for c in dt["cols"]]
    row = {label: cell["v"] for label, cell in zip(labels, dt["rows"][0]["c"], strict=True)}
    if tool == "kernel_stats":  # launch configuration from Kineto's kernel args, op from the launch
        assert row["Registers per thread"] > 0 and row["Op Name"].startswith("aten::")
    else:
        assert any(r["c"][labels.index("Operation Name")]["v"].startswith("aten::") for r in dt["rows"])
    ui.shot(f"pytorch_{tool}", full_page=True)


def test_pytorch_trace(ui: UiPage, demo_server: Server) -> None:
    requests: list[str] = []
    ui.page.on("request", lambda r: requests.append(r.url))
    ui.goto(view_url(demo_server, RUN, "trace_viewer"), ready="trace_viewer")
    # What the page shows is what the API answers to the page's own request (a window thinned to its width).
    asked = [u for u in requests if "tag=trace_viewer" in u and "/data?" in u]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(asked[0]).query))
    trace = demo_server.api("data", **query)
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert ui.page.locator(".trace-status").get_attribute("data-returned") == str(len(slices))
    rows = ui.page.evaluate("window.xprofDebug.trace.items.filter(i => i.kind === 'thread').map(i => i.name)")
    assert "Stream #7" in rows and "thread 428 (python3)" in rows
    ui.shot("pytorch_trace_viewer")
