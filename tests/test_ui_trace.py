"""The trace viewer in Debian's Chromium: derived lines, hover, flow arrows, filters, labels, exact
times, overlapping kernels, navigation, multi-host headers and whole-profile search.

A real aggregator serves a logdir made of the bundled H100 run, the real TPU, AMD and two-host
V100 profiles (tests that need those skip without ``../shared/data/real``), and a synthetic host of
600,000 events where a few short "needle" events are thinned away at the first zoom.
Every expectation is read from the server's own JSON answers or from the files.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xprof_core.protos import xplane_pb2

from conftest import REAL, ROOT, TPU, V100
from ui_harness import Browser, Server, UiPage, browser_session, trace_requests, ui_page, view_url

DEMO = ROOT / "src" / "xprof_core" / "demo"
H100_RUN = "jax_mlp_h100/2026_11_28_01_22_41"
AMD_GEMM = REAL / "amd-tracelens" / "tests" / "traces" / "mi300" / "jax08_gemm" / "tw003.xplane.pb"
AMD_RUN = "amd/2026_02_01_00_00_00"
TPU_RUN = "tpu/2026_02_02_00_00_00"
V100_RUN = "v100/2026_02_03_00_00_00"
BIG_RUN = "big/2026_02_04_00_00_00"
NEEDLES = 50
HLO_TEXT = re.compile(r"^%(\S+) = ")


def _big_host(path: Path) -> None:
    """600,000 events on 4 threads: 100 ns slices 50 ns apart, and NEEDLES 10 ns "needle_op" slices
    among them, which the first (whole-profile) answer thins away."""
    space = xplane_pb2.XSpace(hostnames=["big"])
    plane = space.planes.add(id=0, name="/host:CPU")
    for md_id, name in ((1, "busy_op"), (2, "needle_op")):
        plane.event_metadata[md_id].id = md_id
        plane.event_metadata[md_id].name = name
    per_line = 150_000
    rng = np.random.default_rng(3)
    needles = set(rng.choice(per_line * 4, size=NEEDLES, replace=False).tolist())
    for li in range(4):
        line = plane.lines.add(id=li, name=f"worker{li}", timestamp_ns=1_000_000)
        add = line.events.add
        for k in range(per_line):
            if li * per_line + k in needles:
                add(metadata_id=2, offset_ps=k * 150_000, duration_ps=10_000)
            else:
                add(metadata_id=1, offset_ps=k * 150_000, duration_ps=100_000)
    path.write_bytes(space.SerializeToString())


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui_trace") / "logdir"
    shutil.copytree(DEMO / "jax_mlp_h100", root / "jax_mlp_h100")
    for run, files in (
        (AMD_RUN, [AMD_GEMM]),
        (TPU_RUN, [TPU]),
        (V100_RUN, [V100, V100.with_name("34.83.195.180_6003.xplane.pb")]),
    ):
        if all(f.exists() for f in files):
            session = root / run.split("/")[0] / "plugins" / "profile" / run.split("/")[1]
            session.mkdir(parents=True)
            for f in files:
                shutil.copyfile(f, session / f.name)
    big = root / "big" / "plugins" / "profile" / BIG_RUN.split("/")[1]
    big.mkdir(parents=True)
    _big_host(big / "big.xplane.pb")
    return root


@pytest.fixture(scope="module")
def server(logdir: Path) -> Iterator[Server]:
    s = Server(f"--logdir={logdir}")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from browser_session()


@pytest.fixture()
def ui(browser: Browser) -> Iterator[UiPage]:
    yield from ui_page(browser)


def need_real(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"the shared real-profile folder ../shared/data/real is absent ({p.name} not found)")


def open_trace(ui: UiPage, server: Server, run: str, **extra: str) -> None:
    ui.goto(view_url(server, run, "trace_viewer", **extra), ready="trace_viewer")
    ui.trace_idle(1)


def thread_rows(ui: UiPage) -> list[dict[str, Any]]:
    return ui.timeline(
        "t.items.filter(i => i.kind === 'thread').map(i => ({name: i.name, pid: i.pid, tid: i.tid, depths: i.depths}))"
    )


def slice_point(ui: UiPage, where: str, zoom: bool = False) -> dict[str, Any]:
    """Scroll a slice of the base layer into view and return its canvas point; ``where`` is a JS
    predicate on (m, i). ``zoom`` first zooms in so the slice is wide (and waits for that window)."""
    find = f"""(() => {{
        const m = t.layers[0].model;
        for (let i = 0; i < m.start.length; i++) if (({where})(m, i)) return i;
        return -1;
    }})()"""
    i = ui.timeline(find)
    if i < 0:
        return None
    if zoom:
        ui.timeline(
            f"(() => {{ const m = t.layers[0].model; const s = m.start[{i}], d = Math.max(m.dur[{i}], 1e-3);"
            f" t.setView(s - 2 * d, s + 3 * d); return 0; }})()"
        )
        ui.page.wait_for_function("() => document.querySelector('[data-view=trace_viewer]').dataset.busy === '0'")
    return ui.timeline(f"""(() => {{
        const m = t.layers[0].model, i = {i};
        const hit = t.hitFor(0, i); t.scrollTo(hit); t.drawNow();
        const p = t.pointOf(0, i);
        return p ? {{...p, i, name: m.names[m.nameIdx[i]], start: m.start[i], dur: m.dur[i]}} : null;
    }})()""")


def click_slice(ui: UiPage, point: dict[str, Any]) -> None:
    box = ui.page.locator(".trace-canvas-wrap canvas").bounding_box()
    ui.page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


# --- derived lines ---


def test_derived_lines_follow_each_stream(ui: UiPage, server: Server) -> None:
    need_real(AMD_GEMM)
    requests: list[str] = []
    ui.page.on("request", lambda r: requests.append(r.url))
    open_trace(ui, server, AMD_RUN)
    assert trace_requests(requests)[0].get("derived") == "1"
    names = [r["name"] for r in thread_rows(ui)]
    at = names.index("Stream #16(Kernel)")
    assert names[at + 1 : at + 6] == [
        f"{line} - from #16"
        for line in ("Framework Name Scope", "Framework Ops", "XLA Modules", "XLA Ops", "Source code")
    ]
    trace = server.api("data", run=AMD_RUN, tag="trace_viewer", derived="1")
    ops = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "wrapped_broadcast"]
    assert ops and ui.timeline("t.layers[0].model.names").count("wrapped_broadcast") == 1
    # The device Steps row of the H100 run: one slice per step, "train 0" ... "train 19".
    open_trace(ui, server, H100_RUN)
    rows = thread_rows(ui)
    assert [r["name"] for r in rows if r["pid"] == rows[0]["pid"]][0] == "Steps"
    names = ui.timeline("t.layers[0].model.names")
    assert {f"train {i}" for i in range(20)} <= set(names)
    ui.shot("trace_derived_lines")


# --- hover ---


def test_hover_shows_name_and_duration(ui: UiPage, server: Server) -> None:
    open_trace(ui, server, H100_RUN)
    point = slice_point(ui, "(m, i) => m.names[m.nameIdx[i]] === 'gemm_fusion_dot_4'", zoom=True)
    box = ui.page.locator(".trace-canvas-wrap canvas").bounding_box()
    ui.page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    tip = ui.page.locator(".trace-tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "gemm_fusion_dot_4" in text and re.search(r"\d(\.\d+)? µs", text), text
    ui.page.mouse.move(box["x"] + 5, box["y"] + 5)  # the axis: nothing under the pointer
    tip.wait_for(state="hidden")


# --- flows ---


def test_flow_arrows_from_launch_to_kernel_toggle(ui: UiPage, server: Server) -> None:
    requests: list[str] = []
    ui.page.on("request", lambda r: requests.append(r.url))
    open_trace(ui, server, H100_RUN)
    assert trace_requests(requests)[0].get("flows") == "1"
    trace = server.api("data", run=H100_RUN, tag="trace_viewer", flows="1")
    pairs = sum(e["ph"] == "s" for e in trace["traceEvents"])
    assert ui.timeline("t.layers[0].model.flows.length") == pairs > 0
    ui.timeline("(t.drawNow(), 0)")
    assert ui.timeline("t.lastFrame.arrows") > 0
    toggle = ui.page.get_by_label("Flow events")
    assert toggle.is_checked()
    toggle.uncheck()
    ui.timeline("(t.drawNow(), 0)")
    assert ui.timeline("t.lastFrame.arrows") == 0
    toggle.check()
    ui.timeline("(t.drawNow(), 0)")
    assert ui.timeline("t.lastFrame.arrows") > 0


# --- filters ---


def test_filter_by_process_and_thread(ui: UiPage, server: Server) -> None:
    open_trace(ui, server, H100_RUN)
    procs = ui.timeline("t.items.filter(i => i.kind === 'proc').map(i => i.name)")
    assert procs == ["/device:GPU:0", "/host:CPU"]
    ui.page.locator("details.trace-filter summary").click()
    ui.page.get_by_label("/host:CPU", exact=True).uncheck()
    assert ui.timeline("t.items.filter(i => i.kind === 'proc').map(i => i.name)") == ["/device:GPU:0"]
    ui.page.get_by_label("/host:CPU", exact=True).check()
    ui.page.get_by_label("Filter threads").fill("Stream")
    names = [r["name"] for r in thread_rows(ui)]
    assert names == ["Stream #14(Compute)", "Stream #15(MemcpyH2D)"]
    ui.page.get_by_label("Filter threads").fill("")
    assert len(thread_rows(ui)) > 2


# --- labels ---


def test_tpu_slices_are_labelled_by_op_name_with_the_text_in_details(ui: UiPage, server: Server) -> None:
    need_real(TPU)
    open_trace(ui, server, TPU_RUN)
    point = slice_point(ui, "(m, i) => /^%copy-done\\.5 = /.test(m.names[m.nameIdx[i]])", zoom=True)
    assert point is not None
    assert ui.timeline(f"t.labelOf(0, {point['i']})") == "copy-done.5"
    click_slice(ui, point)
    details = ui.page.locator(".trace-details")
    details.locator("h3[data-slice='copy-done.5']").wait_for()
    full = details.locator("dd[data-field='full-name']").inner_text()
    assert full.startswith("%copy-done.5 = f32[5,1024,1024,256]") and "copy-done(" in full
    # The overview's Operation column: the op name, with the whole text as its title.
    ui.goto(view_url(server, TPU_RUN, "overview_page"), ready="overview_page")
    cells = ui.page.locator("table[data-table='top_ops'] tbody tr td:first-child")
    texts = cells.all_inner_texts()
    assert texts and not any(t.startswith("%") for t in texts)
    raw = cells.first.get_attribute("data-v")
    title = cells.first.get_attribute("title")
    if HLO_TEXT.match(raw):
        assert texts[0] == HLO_TEXT.match(raw).group(1) and title == raw


# --- precision ---


def test_details_show_exact_times_and_the_axis_adaptive_units(ui: UiPage, server: Server) -> None:
    open_trace(ui, server, H100_RUN)
    # The shortest slice the view drew: its answer is the whole profile at the plot's width in pixels.
    width = str(ui.timeline("t.plotWidth"))
    trace = server.api("data", run=H100_RUN, tag="trace_viewer", resolution=width, derived="1", flows="1")
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    short = min((e for e in events if e["dur"] > 0), key=lambda e: (e["dur"], -e["ts"]))
    point = slice_point(ui, f"(m, i) => m.start[i] === {short['ts']} && m.dur[i] === {short['dur']}", zoom=True)
    click_slice(ui, point)
    details = ui.page.locator(".trace-details")
    details.locator("dd[data-field='start']").wait_for()
    start = details.locator("dd[data-field='start']").inner_text()
    dur = details.locator("dd[data-field='duration']").inner_text()
    end = details.locator("dd[data-field='end']").inner_text()
    assert parse_time_us(start) == pytest.approx(short["ts"], abs=5e-7), start
    assert parse_time_us(end) == pytest.approx(short["ts"] + short["dur"], abs=5e-7), end
    assert parse_time_us(dur) == pytest.approx(short["dur"], abs=5e-7), dur
    assert " " in start or "," in start  # digit groups
    # Zoomed deep into the end of the profile, axis labels stay short: no "9952000 µs".
    full = ui.timeline("t.fullSpan")
    ui.timeline(f"(t.setView({full[1] - 3}, {full[1] - 1}), t.drawNow(), 0)")
    labels = ui.timeline("t.lastFrame.axisLabels")
    assert labels and all(len(label) <= 14 and not re.search(r"\d{6}", label) for label in labels), labels


def parse_time_us(text: str) -> float:
    """'49.680 123 ms' / '30 ns' / '1,234.5 µs' -> µs."""
    m = re.fullmatch(r"([\d.,\s\u2009\u202f]+)\s*(s|ms|µs|ns|ps)", text.strip())
    assert m, text
    value = float(re.sub(r"[,\s\u2009\u202f]", "", m.group(1)))
    return value * {"s": 1e6, "ms": 1e3, "µs": 1.0, "ns": 1e-3, "ps": 1e-6}[m.group(2)]


def test_64_bit_ids_are_shown_exactly(ui: UiPage, server: Server) -> None:
    need_real(TPU)
    open_trace(ui, server, TPU_RUN)
    point = slice_point(ui, "(m, i) => /^%copy-start = /.test(m.names[m.nameIdx[i]])", zoom=True)
    click_slice(ui, point)
    details = ui.page.locator(".trace-details")
    details.locator("dt", has_text="program_id").first.wait_for()
    shown = details.locator("dt:text-is('program_id') + dd").first.inner_text()
    assert shown == "12190760917235803885"


# --- overlapping kernels ---


def test_partial_overlaps_share_a_row_and_containment_nests(ui: UiPage, server: Server) -> None:
    open_trace(ui, server, H100_RUN)
    trace = server.api("data", run=H100_RUN, tag="trace_viewer", resolution="0", derived="1")
    rows = {r["name"]: r for r in thread_rows(ui)}
    stream = [
        e
        for e in trace["traceEvents"]
        if e["ph"] == "X"
        and e["tid"] == rows["Stream #14(Compute)"]["tid"]
        and e["pid"] == rows["Stream #14(Compute)"]["pid"]
    ]
    overlapping = sum(a["ts"] + a["dur"] > b["ts"] for a, b in zip(stream, stream[1:], strict=False))
    assert overlapping > 0  # consecutive kernels overlap (programmatic dependent launch)
    assert rows["Stream #14(Compute)"]["depths"] == 1
    # True containment still nests: the host thread's spans keep their depths.
    assert max(r["depths"] for r in rows.values()) > 2


# --- navigation ---


def test_wheel_scrolls_ctrl_wheel_zooms_scrollbar_keys_and_gutter(ui: UiPage, server: Server) -> None:
    ui.page.set_viewport_size({"width": 1400, "height": 600})  # rows run well below the fold
    open_trace(ui, server, H100_RUN)
    page = ui.page
    canvas = page.locator(".trace-canvas-wrap canvas")
    box = canvas.bounding_box()
    view = ui.timeline("t.view")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 300)
    page.mouse.wheel(0, 48)
    assert ui.timeline("t.scrollY") > 0 and ui.timeline("t.view") == view
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    zoomed = ui.timeline("t.view")
    assert zoomed[1] - zoomed[0] < view[1] - view[0]
    # A scrollbar: its thumb shows the scroll position; dragging it scrolls.
    thumb = page.locator(".trace-scrollbar .thumb")
    assert thumb.is_visible()
    before = ui.timeline("t.scrollY")
    tb = thumb.bounding_box()
    page.mouse.move(tb["x"] + tb["width"] / 2, tb["y"] + 3)
    page.mouse.down()
    page.mouse.move(tb["x"] + tb["width"] / 2, tb["y"] + 60, steps=4)
    page.mouse.up()
    assert ui.timeline("t.scrollY") > before
    # Keys work without clicking the canvas first.
    page.locator("h1, .trace-status").first.click()
    span = ui.timeline("t.view[1] - t.view[0]")
    page.keyboard.press("w")
    assert ui.timeline("t.view[1] - t.view[0]") < span
    # The label gutter: drag its edge to widen it; a row label's tooltip names it in full.
    gutter = ui.timeline("t.gutter")
    page.mouse.move(box["x"] + gutter - 1, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + gutter + 120, box["y"] + 200, steps=4)
    page.mouse.up()
    assert ui.timeline("t.gutter") == pytest.approx(gutter + 120, abs=3)
    y = ui.timeline(
        "(() => { const it = t.items.find(i => i.kind === 'thread' && i.y >= t.scrollY);"
        " return 24 + it.y - t.scrollY + 8; })()"
    )
    page.mouse.move(box["x"] + 40, box["y"] + y)
    tip = page.locator(".trace-tooltip")
    tip.wait_for(state="visible")
    assert tip.inner_text().strip() in {r["name"] for r in thread_rows(ui)}


# --- several hosts ---


def test_multi_host_headers_show_host_and_device_apart(ui: UiPage, server: Server) -> None:
    need_real(V100)
    hosts = "34.83.195.179_6003,34.83.195.180_6003"
    open_trace(ui, server, V100_RUN, hosts=hosts)
    ui.timeline("(t.drawNow(), 0)")
    drawn = ui.timeline("t.lastFrame.headers")
    assert drawn and all(
        h["text"] == ui.timeline(f"t.headerText(t.items.find(i => i.pid === {h['pid']}))") for h in drawn
    )
    headers = ui.timeline(
        "t.items.filter(i => i.kind === 'proc').map(i => ({device: i.plane, host: i.host, text: t.headerText(i)}))"
    )
    shown = {(h["device"], h["host"]) for h in headers}
    for host in hosts.split(","):
        for device in ("/device:GPU:1", "/device:GPU:4", "/device:GPU:6", "/host:CPU"):
            assert (device, host) in shown, (device, host, shown)
    # What is drawn starts with the device, so GPU:1, GPU:4 and GPU:6 differ even when cut.
    assert all(h["text"].startswith(h["device"].removeprefix("/device:").removeprefix("/host:")) for h in headers)
    ui.shot("trace_two_hosts_headers")


# --- search ---


def test_search_covers_the_whole_profile_and_jumps_to_any_match(ui: UiPage, server: Server) -> None:
    open_trace(ui, server, BIG_RUN)
    first = ui.page.locator(".trace-status").get_attribute("data-returned")
    assert int(first) < 600_000  # thinned: most slices, and the needles, are not loaded
    loaded = ui.timeline(
        "(() => { const m = t.layers[0].model; const k = m.names.indexOf('needle_op'); let c = 0;"
        " if (k >= 0) for (const x of m.nameIdx) c += x === k; return c; })()"
    )
    assert loaded < NEEDLES
    found = server.api("data", run=BIG_RUN, tag="trace_viewer", search="needle", derived="1")["search"]
    assert found["total"] == NEEDLES
    ui.page.get_by_label("Search slices by name").fill("needle")
    ui.page.wait_for_function(
        "n => document.querySelector('.match-count').innerText.startsWith(n + ' matches')", arg=str(NEEDLES)
    )
    # Enter jumps to the first match in time; Enter again to the second: each is selected once loaded.
    details = ui.page.locator(".trace-details")
    for k in range(2):
        ui.page.get_by_label("Search slices by name").press("Enter")
        ui.page.wait_for_function(
            "ts => { const d = document.querySelector('.trace-details dd[data-field=start]');"
            " return d && Math.abs(Number(d.dataset.us) - ts) < 1e-6; }",
            arg=found["matches"][k]["ts"],
        )
        assert details.locator("h3[data-slice]").inner_text() == "needle_op"
    assert "2 of 50" in ui.page.locator(".match-count").inner_text()
