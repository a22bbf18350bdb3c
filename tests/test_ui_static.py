"""The web UI's files, read as files: what ships in the package and what the code may do.

No browser is needed: these read ``src/xprof_core/ui`` and ask the tool registry.
"""

from __future__ import annotations

import re
from pathlib import Path

from xprof_core.tools import tool_names

from conftest import ROOT

UI = ROOT / "src" / "xprof_core" / "ui"


def ui_scripts() -> list[Path]:
    return sorted(UI.rglob("*.js"))


def test_no_test_pages_ship_in_the_package() -> None:
    # The timeline's frame-time self-test is test code: it lives under tests/ and never in the wheel.
    shipped = sorted(p.relative_to(UI).as_posix() for p in UI.rglob("*") if p.is_file())
    assert not [p for p in shipped if "selftest" in p or "test" in Path(p).stem], shipped
    assert (ROOT / "tests" / "ui" / "selftest.html").is_file()


def test_ui_code_sets_no_window_globals_outside_the_debug_flag() -> None:
    # Test hooks stay out of production code: only debug.js may touch window.*, and only under ?debug=1.
    offenders = []
    for path in ui_scripts():
        if path.name == "debug.js":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bwindow\.(__\w+|xprofDebug)\b", line):
                offenders.append(f"{path.relative_to(UI)}:{n}: {line.strip()}")
    assert not offenders, offenders
    debug = (UI / "debug.js").read_text()
    assert 'has("debug")' in debug and "window.xprofDebug" in debug


def test_tool_labels_name_only_tools_that_exist() -> None:
    app = (UI / "app.js").read_text()
    block = re.search(r"const TOOL_LABELS = \{(.*?)\};", app, re.S)
    assert block is not None
    # The server's tools, and "diff": the comparison of two runs (serve/diff.py, not a registered tool).
    known = set(tool_names()) | {"diff"}
    labelled = set(re.findall(r"^\s*(\w+):", block.group(1), re.M))
    assert labelled and labelled <= known, labelled - known
    views = re.search(r"const VIEW_MODULES = \{(.*?)\};", app, re.S)
    assert views is not None
    assert set(re.findall(r"^\s*(\w+):", views.group(1), re.M)) <= known
