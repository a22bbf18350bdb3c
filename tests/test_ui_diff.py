"""The diff view in a real browser: "Compare with…" in the run picker opens the comparison of two
real JAX CPU runs (tests/data/jax_diff), and what it shows is what the API answers.

Uses the browser, page and server helpers of test_ui_browser.py (Debian's Chromium driven by
Playwright; skipped with the reason when either is missing).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import ROOT
from test_ui_browser import browser, ui  # noqa: F401 - fixtures
from ui_harness import Server, UiPage, assert_cell, first_row, view_url
from ui_harness import http_get as _get

PAIR = ROOT / "tests" / "data" / "jax_diff"


@pytest.fixture(scope="module")
def pair_server() -> Iterator[Server]:
    s = Server(f"--logdir={PAIR}")
    try:
        yield s
    finally:
        s.stop()


def test_compare_with_opens_the_diff_view(ui: UiPage, pair_server: Server) -> None:  # noqa: F811
    runs = {r.split("/")[0]: r for r in pair_server.api("runs")}
    base, changed = runs["base"], runs["extra_layer"]
    data = pair_server.api("data", run=base, tag="diff", run2=changed)
    ui.goto(view_url(pair_server, base, "overview_page"), ready="overview_page")
    page = ui.page
    options = page.locator("#compare-select option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", changed]  # every other run, not this one
    page.select_option("#compare-select", changed)
    ui.wait_ready("diff")
    assert "tool=diff" in page.url and "run2=" in page.url
    assert page.locator("[data-verdict]").inner_text() == data["verdict"]
    assert " slower than " in data["verdict"]
    change = page.locator("[data-kpi='change']")
    assert float(change.get_attribute("data-value")) == data["summary"]["change_pct"]
    assert change.locator(".value").inner_text() == f"+{data['summary']['change_pct']:.1f}%"
    assert int(page.locator("[data-kpi='new-ops']").get_attribute("data-value")) == data["summary"]["new_ops"]
    for table in ("step_distribution", "breakdown", "top_regressions", "top_improvements", "hlo_ops", "framework_ops"):
        dt = data[table]
        assert page.locator(f"table[data-table='{table}'] tbody tr").count() == min(len(dt["rows"]), 25), table
        for (text, raw), cell, col in zip(first_row(ui, table), dt["rows"][0]["c"], dt["cols"], strict=True):
            assert_cell(text, raw, cell["v"], col["type"])
    assert page.locator("table[data-table='kernels']").count() == 0  # no GPU kernels in CPU runs
    href = page.locator("section[data-table-name='top_regressions'] a.csv-link").get_attribute("href")
    status, body, _ = _get(pair_server.url + href)
    assert status == 200 and len(body.decode().strip().splitlines()) == len(data["top_regressions"]["rows"]) + 1
    ui.shot("diff", full_page=True)

    # Reloading the URL shows the same comparison; "Stop comparing" goes back to the run's overview.
    page.reload()
    ui.wait_ready("diff")
    assert page.locator("[data-verdict]").inner_text() == data["verdict"]
    assert page.locator("#compare-select").input_value() == changed
    page.select_option("#compare-select", "")
    ui.wait_ready("overview_page")
    assert "run2" not in page.url


def test_diff_view_without_a_second_run_explains_what_to_do(ui: UiPage, pair_server: Server) -> None:  # noqa: F811
    run = pair_server.api("runs")[0]
    ui.goto(view_url(pair_server, run, "diff"), ready="diff")
    assert "Compare with" in ui.page.locator("main").inner_text()
