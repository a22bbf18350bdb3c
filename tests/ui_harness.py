"""What the browser tests share: an aggregator process, Debian's headless Chromium, a page that records
its console errors, and helpers that read tables and trace requests the way the UI writes them.

Needs ``pip install playwright`` and ``apt-get install chromium`` (never ``playwright install``:
the browser is Debian's, found on PATH or at ``$XPROF_CHROMIUM``); :func:`browser_session` skips
the calling tests with the reason when either is missing.

Views expose what the tests inspect through DOM attributes; the trace view also publishes its
timeline object on ``window.xprofDebug`` when the page was opened with ``?debug=1`` in its query
string (:func:`view_url` adds it), and only then.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, http_get

from conftest import ROOT, subprocess_env

SCREENSHOTS = ROOT / "test-output" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 90_000
# The browser's own console line for any non-2xx fetch; allowed only where a test asks for an error.
FAILED_RESOURCE = "Failed to load resource"

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def chromium_path() -> str | None:
    """Debian's chromium: $XPROF_CHROMIUM, else `chromium` or `chromium-browser` on PATH."""
    explicit = os.environ.get("XPROF_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


# --- the server ---


class Server:
    """An aggregator process on a free loopback port; stop() ends it (SIGTERM, then kill)."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xprof_core.aggregator",
                f"--port={self.port}",
                "--host",
                "127.0.0.1",
                "--local_workers=2",
                *flags,
            ],
            env=subprocess_env(),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the aggregator exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError("the aggregator did not come up")

    def api(self, route: str, **params: str) -> Any:
        status, body, _ = http_get(f"{self.url}data/plugin/profile/{route}?{urllib.parse.urlencode(params)}")
        assert status == 200, (route, params, body[:300])
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the browser ---


def browser_session() -> Iterator[Browser]:
    """A headless Debian Chromium for a module's tests (a generator for a module-scoped fixture)."""
    if sync_playwright is None:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    exe = chromium_path()
    if exe is None:
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


@dataclass
class UiPage:
    """A page plus what it logged; `allow` names console error texts a test expects."""

    page: Page
    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def goto(self, url: str, ready: str | None = None) -> None:
        self.page.goto(url)
        if ready:
            self.wait_ready(ready)

    def wait_ready(self, ready: str) -> None:
        self.page.wait_for_selector(f"main[data-ready='{ready}']", timeout=TIMEOUT_MS)

    def shot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]

    # The trace view's timeline, published on window.xprofDebug because view_url asks for ?debug=1.
    def timeline(self, expression: str) -> Any:
        """Evaluate ``expression`` with ``t`` bound to the trace view's timeline object."""
        return self.page.evaluate(f"(() => {{ const t = window.xprofDebug.trace; return {expression}; }})()")

    def trace_idle(self, loads: int = 1) -> None:
        """Wait until the trace view has loaded ``loads`` answers and has no fetch due or running."""
        self.page.wait_for_function(
            "n => { const v = document.querySelector('[data-view=trace_viewer]');"
            " return v && Number(v.dataset.loads) >= n && v.dataset.busy === '0'; }",
            arg=loads,
            timeout=TIMEOUT_MS,
        )


def ui_page(browser: Browser) -> Iterator[UiPage]:
    """A fresh page (for a function-scoped fixture) that fails the test on unexpected console errors."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    p = UiPage(page)
    page.on("console", lambda m: p.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: p.errors.append(f"pageerror: {e}"))
    try:
        yield p
    finally:
        context.close()
    assert not p.unexpected_errors(), p.unexpected_errors()


def view_url(server: Server, run: str, tool: str, **extra: str) -> str:
    """A deep link to a view, opened with the debug flag the tests read the trace view through."""
    return server.url + "?debug=1#" + urllib.parse.urlencode({"run": run, "tool": tool, **extra})


# --- reading what the UI shows ---


def cell_text(v: Any, col_type: str) -> str:
    """The text of a table cell, as the UI writes it."""
    if v is None:
        return ""
    if col_type == "boolean":
        return "yes" if v else "no"
    return number_text(v) if col_type == "number" else str(v)


def number_text(v: Any) -> str:
    """How the UI writes a table number: thousands separators, at most 3 decimals."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "" if v is None else str(v)
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.3f}".rstrip("0").rstrip(".")


def assert_cell(text: str, raw: str, value: Any, col_type: str) -> None:
    """A rendered cell: its data-v is the JSON value, its text that value formatted."""
    if value is None:
        assert raw == "" and text == ""
    elif col_type == "number":
        assert float(raw) == pytest.approx(float(value), rel=1e-12, abs=0)
        shown = float(text.replace(",", ""))
        assert shown == pytest.approx(float(value), abs=0.0005 + 1e-9 * abs(value)), (text, value)
        assert text == number_text(value) or abs(shown - value) <= 0.0005
    elif col_type == "boolean":
        assert raw == str(value).lower() and text == ("yes" if value else "no")
    else:
        assert raw == str(value) and text == str(value)


def first_row(ui: UiPage, table: str) -> list[tuple[str, str]]:
    cells = ui.page.locator(f"table[data-table='{table}'] tbody tr").first.locator("td")
    return [(c.inner_text().strip(), c.get_attribute("data-v") or "") for c in cells.all()]


def trace_requests(requests: list[str]) -> list[dict[str, str]]:
    """The query parameters of every trace_viewer data request among ``requests``."""
    out = []
    for url in requests:
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        if q.get("tag") == "trace_viewer":
            out.append(q)
    return out
