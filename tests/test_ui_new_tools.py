"""The memory profile, memory viewer, roofline and graph viewer views in a real browser (Debian's Chromium
driven by Playwright), each compared with the JSON API of the same server, and the "show in graph" links
from hlo_stats, op_profile and the trace viewer's slice details.

Skipped with the reason when Playwright for Python or Chromium is missing (never ``playwright install``:
the browser is Debian's, found on PATH or at ``$XPROF_CHROMIUM``). Screenshots go to
``test-output/screenshots/``.
"""

from __future__ import annotations

import json
import os
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

from conftest import REAL, ROOT, TPU, subprocess_env

DEMO = ROOT / "src" / "xprof_core" / "demo"
H100_RUN = "jax_mlp_h100/2026_11_28_01_22_41"
CPU_RUN = "jax_mlp_cpu/2026_11_28_01_22_50"
TPU_RUN = "tpu/2026_01_04_00_00_00"
AMD_RUN = "amd/2026_01_03_00_00_00"
AMD_GEMM = REAL / "amd-tracelens" / "tests" / "traces" / "mi300" / "jax08_gemm" / "tw003.xplane.pb"
SCREENSHOTS = ROOT / "test-output" / "screenshots"
TIMEOUT_MS = 90_000

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An aggregator process on a free loopback port over a logdir; stop() ends it."""

    def __init__(self, logdir: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}/"
        port = self.url.rsplit(":", 1)[1].rstrip("/")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xprof_core.aggregator",
                f"--port={port}",
                "--host",
                "127.0.0.1",
                "--local_workers=2",
                f"--logdir={logdir}",
            ],
            env=subprocess_env(),
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the aggregator did not come up")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)

    def api(self, tool: str, run: str, **params: Any) -> Any:
        q = urllib.parse.urlencode({"run": run, "tag": tool, **params})
        with urllib.request.urlopen(f"{self.url}data/plugin/profile/data?{q}", timeout=120) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui-new-tools") / "logdir"
    shutil.copytree(DEMO / "jax_mlp_h100", root / "jax_mlp_h100")
    shutil.copytree(DEMO / "jax_mlp_cpu", root / "jax_mlp_cpu")
    for run, source in ((TPU_RUN, TPU), (AMD_RUN, AMD_GEMM)):
        if source.exists():
            session = root / run.split("/")[0] / "plugins" / "profile" / run.split("/")[1]
            session.mkdir(parents=True)
            shutil.copyfile(source, session / f"{run.split('/')[0]}-host.xplane.pb")
    s = Server(root)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    exe = os.environ.get("XPROF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe or not os.path.exists(exe):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium), nor named by $XPROF_CHROMIUM")
    manager = sync_playwright().start()
    try:
        b = manager.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
    finally:
        manager.stop()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    try:
        yield p
    finally:
        context.close()
    assert not errors, errors


def open_view(page: Page, server: Server, run: str, tool: str, **extra: str) -> None:
    # ?debug=1: the trace view publishes its timeline on window.xprofDebug for the test to read.
    page.goto(server.url + "?debug=1#" + urllib.parse.urlencode({"run": run, "tool": tool, **extra}))
    page.wait_for_selector(f"main[data-ready='{tool}']", timeout=TIMEOUT_MS)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def hash_params(page: Page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(page.evaluate("location.hash").lstrip("#")))


def kpi_value(page: Page, kpi: str) -> float:
    return float(page.locator(f".kpi[data-kpi='{kpi}']").get_attribute("data-value") or "nan")


def table_row_count(page: Page, name: str) -> int:
    text = page.locator(f"section[data-table-name='{name}'] .row-count").inner_text()
    return int(text.split()[0].replace(",", ""))


def wait_rerender(page: Page, selector: str) -> None:
    page.wait_for_selector(selector, timeout=TIMEOUT_MS)


# ---- memory profile -----------------------------------------------------------------------------


def test_memory_profile_view(page: Page, server: Server) -> None:
    api = server.api("memory_profile", H100_RUN, resolution=1000)
    open_view(page, server, H100_RUN, "memory_profile")
    assert kpi_value(page, "peak") == api["summary"]["peak_bytes"]
    assert kpi_value(page, "allocations") == api["summary"]["num_allocations"]
    assert page.locator("section[data-view='memory_profile']").get_attribute("data-memory") == api["memory_id"]
    assert page.locator("svg.memory-chart polygon").count() >= 1
    assert page.locator("svg.memory-chart .peak-line").count() == 1
    assert table_row_count(page, "active_allocations") == len(api["active_allocations"]["rows"])
    shot(page, "memory_profile")

    # The other table: everything live at the peak.
    page.locator("select[aria-label='Allocations']").select_option("live_at_peak")
    assert table_row_count(page, "live_at_peak") == len(api["live_at_peak"]["rows"])

    # Another memory: the URL names it and the figures follow.
    other = next(m for m in api["memory_ids"] if m != api["memory_id"])
    page.locator("select[aria-label='Memory']").select_option(other)
    wait_rerender(page, f"section[data-view='memory_profile'][data-memory='{other}']")
    assert hash_params(page)["memory_id"] == other
    assert kpi_value(page, "peak") == server.api("memory_profile", H100_RUN, memory_id=other)["summary"]["peak_bytes"]

    # Dragging across the chart zooms into that window; the server thins the window.
    page.locator("select[aria-label='Memory']").select_option(api["memory_id"])
    wait_rerender(page, f"section[data-view='memory_profile'][data-memory='{api['memory_id']}']")
    box = page.locator("svg.memory-chart rect[data-hit]").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_function("() => location.hash.includes('start_ms=')")
    params = hash_params(page)
    page.wait_for_selector("button:has-text('Reset zoom')")
    zoomed = server.api(
        "memory_profile",
        H100_RUN,
        memory_id=api["memory_id"],
        start_ms=params["start_ms"],
        end_ms=params["end_ms"],
        resolution=1000,
    )
    assert 0 < zoomed["timeline"]["num_in_window"] < api["timeline"]["num_in_window"]
    page.wait_for_selector(f"text={zoomed['timeline']['num_in_window']} events in view")


def test_memory_profile_without_allocator_events_says_why(page: Page, server: Server) -> None:
    open_view(page, server, CPU_RUN, "memory_profile")
    note = page.locator("section[data-view='memory_profile'] p.note").inner_text()
    assert note == server.api("memory_profile", CPU_RUN)["reason"]


# ---- memory viewer ------------------------------------------------------------------------------


def test_memory_viewer_view_and_its_graph_links(page: Page, server: Server) -> None:
    api = server.api("memory_viewer", H100_RUN)
    open_view(page, server, H100_RUN, "memory_viewer")
    assert kpi_value(page, "peak-heap") == api["peak_heap_mib"]
    assert page.locator("select[aria-label='HLO module'] option").count() == len(api["modules"])
    points = page.locator("polyline[data-series='heap']").get_attribute("points") or ""
    assert len(points.split()) == len(api["heap_sizes_mib"])
    assert table_row_count(page, "max_heap_table") == len(api["max_heap_table"]["rows"])
    shot(page, "memory_viewer")

    # Another module from the picker.
    other = next(m for m in api["modules"] if m != api["module_name"] and not m.startswith("jit__"))
    page.locator("select[aria-label='HLO module']").select_option(other)
    wait_rerender(page, f"section[data-view='memory_viewer'][data-module='{other}']")
    assert kpi_value(page, "peak-heap") == server.api("memory_viewer", H100_RUN, module_name=other)["peak_heap_mib"]

    # A buffer's instruction opens the graph around it.
    page.locator("select[aria-label='HLO module']").select_option(api["module_name"])
    wait_rerender(page, f"section[data-view='memory_viewer'][data-module='{api['module_name']}']")
    link = page.locator("table[data-table='max_heap_table'] tbody a").first
    name = link.inner_text()
    link.click()
    page.wait_for_selector(f"section[data-view='graph_viewer'][data-center='{name}']", timeout=TIMEOUT_MS)
    assert hash_params(page)["module_name"] == api["module_name"]


# ---- roofline -----------------------------------------------------------------------------------


@pytest.mark.parametrize("run", [H100_RUN, TPU_RUN])
def test_roofline_view(page: Page, server: Server, run: str) -> None:
    if run == TPU_RUN and not TPU.exists():
        pytest.skip("the shared real-profile folder ../shared/data/real is absent")
    api = server.api("roofline_model", run)
    open_view(page, server, run, "roofline_model")
    ids = [c["id"] for c in api["roofline"]["cols"]]
    rows = [dict(zip(ids, (c["v"] for c in r["c"]), strict=True)) for r in api["roofline"]["rows"]]
    on_chart = [r for r in rows[1:] if r["operational_intensity"] > 0 and r["measured_flop_rate"] > 0]
    assert page.locator(".roofline-chart circle.op").count() == min(400, len(on_chart))
    ridge = float(page.locator(".roofline-chart circle.ridge").get_attribute("data-ridge") or "nan")
    assert ridge == pytest.approx(api["device"]["ridge_point"])
    assert kpi_value(page, "peak-flops") == api["device"]["peak_gflops_per_s"]
    assert table_row_count(page, "roofline") == len(rows)
    shot(page, f"roofline_{run.split('/')[0]}")
    link = page.locator("table[data-table='roofline'] tbody a").first
    name = link.inner_text()
    link.click()
    page.wait_for_selector(f"section[data-view='graph_viewer'][data-center='{name}']", timeout=TIMEOUT_MS)


# ---- graph viewer -------------------------------------------------------------------------------


def test_graph_viewer_view(page: Page, server: Server) -> None:
    center = "gemm_fusion_dot.1"
    api = server.api("graph_viewer", H100_RUN, node_name=center, graph_width=2)
    open_view(page, server, H100_RUN, "graph_viewer", node_name=center, graph_width="2")
    assert page.locator(".graph-canvas g.node").count() == len(api["nodes"])
    assert page.locator(".graph-canvas path.edge").count() == len(api["edges"])
    assert page.locator(".graph-canvas g.cluster").count() == len(api["clusters"])
    highlighted = page.locator(".graph-canvas g.cluster.highlight").get_attribute("data-cluster")
    assert highlighted == center  # a fusion shown with its fused computation is the highlighted box
    # No two nodes overlap, and every node lies inside the box of its cluster.
    boxes = page.evaluate("""() => [...document.querySelectorAll('.graph-canvas g.node rect')].map(r => {
        const b = r.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; })""")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    shot(page, "graph_viewer")

    # Clicking a node centres the graph on it.
    target = next(n["name"] for n in api["nodes"] if n["cluster"] is None and n["opcode"] != "parameter")
    page.locator(f".graph-canvas g.node[data-node='{target}']").click()
    page.wait_for_selector(f"section[data-view='graph_viewer'][data-center='{target}']", timeout=TIMEOUT_MS)
    assert hash_params(page)["node_name"] == target
    again = server.api("graph_viewer", H100_RUN, node_name=target, graph_width=2)
    assert page.locator(".graph-canvas g.node").count() == len(again["nodes"])

    # Radius and merged fusions.
    page.locator("select[aria-label='Graph width']").select_option("1")
    page.wait_for_function("() => location.hash.includes('graph_width=1')")
    narrow = server.api("graph_viewer", H100_RUN, node_name=target, graph_width=1)
    page.wait_for_function(f"() => document.querySelectorAll('.graph-canvas g.node').length === {len(narrow['nodes'])}")
    page.get_by_label("Fusions as single nodes").check()
    page.wait_for_function("() => location.hash.includes('merge_fusion=1')")
    page.wait_for_function("() => document.querySelectorAll('.graph-canvas g.cluster').length === 0")


# ---- links from the other views -----------------------------------------------------------------


def test_show_in_graph_from_hlo_stats_op_profile_and_trace(page: Page, server: Server) -> None:
    if not AMD_GEMM.exists():
        pytest.skip("the shared real-profile folder ../shared/data/real is absent")
    open_view(page, server, AMD_RUN, "hlo_stats")
    link = page.locator("table[data-table='hlo_stats'] tbody a").first
    name = link.inner_text()
    link.click()
    page.wait_for_selector(f"section[data-view='graph_viewer'][data-center='{name}']", timeout=TIMEOUT_MS)

    open_view(page, server, AMD_RUN, "op_profile")
    page.locator(".op-tree tbody button.toggle[aria-expanded='false']").first.click()
    link = page.locator(".op-tree a.graph-link").first
    href = link.get_attribute("href") or ""
    params = dict(urllib.parse.parse_qsl(href.lstrip("#")))
    assert params["tool"] == "graph_viewer" and params["program_id"] and params["node_name"]
    link.click()
    page.wait_for_selector(
        f"section[data-view='graph_viewer'][data-center='{params['node_name']}']", timeout=TIMEOUT_MS
    )

    # A kernel slice with hlo_op and program_id args links to its op's graph.
    trace = server.api("trace_viewer", AMD_RUN, resolution=0)
    kernels = [e for e in trace["traceEvents"] if e.get("ph") == "X" and "hlo_op" in (e.get("args") or {})]
    kernel = max(kernels, key=lambda e: e["dur"])
    open_view(page, server, AMD_RUN, "trace_viewer")
    page.wait_for_function(
        "() => window.xprofDebug && window.xprofDebug.trace && window.xprofDebug.trace.layers.length >= 1"
    )
    point = page.evaluate(
        """name => {
        const t = window.xprofDebug.trace; const m = t.layers[0].model;
        let i = -1;
        for (let k = 0; k < m.dur.length; k++) {
            if (m.names[m.nameIdx[k]] === name && (i < 0 || m.dur[k] > m.dur[i])) i = k;
        }
        const hit = t.hitFor(0, i); t.scrollTo(hit); t.drawNow();
        return t.pointOf(0, i);
    }""",
        kernel["name"],
    )
    canvas = page.locator(".trace-canvas-wrap canvas").bounding_box()
    assert canvas is not None
    page.mouse.click(canvas["x"] + point["x"], canvas["y"] + point["y"])
    link = page.locator(".trace-details a.graph-link")
    link.wait_for()
    params = dict(urllib.parse.parse_qsl((link.get_attribute("href") or "").lstrip("#")))
    assert params["program_id"] == str(kernel["args"]["program_id"])
    assert params["node_name"] == kernel["args"]["hlo_op"]
