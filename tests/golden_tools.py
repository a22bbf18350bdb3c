"""XProf's figures of memory_profile, memory_viewer, roofline_model and graph_viewer.

They live in tests/data/xprof_golden_tools.json.

Recorded by ``scripts/xprof_golden.py --more-tools`` with XProf 2.24.2; keys are
paths relative to the project root (``tests/data/jax/...``,
``../shared/data/real/...``, ``../shared/data/h200/...``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "xprof_golden_tools.json"


@lru_cache(maxsize=1)
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def golden_path(key: str) -> Path:
    return Path(os.path.normpath(ROOT / key))


def golden_entries(tool: str) -> list[tuple[str, dict[str, Any]]]:
    """(file key, XProf's figures for ``tool``) of every recorded file, shared files included even when absent."""
    out = []
    for key, entry in golden()["files"].items():
        figures = entry["tools"].get(tool)
        if figures:
            out.append((key, figures))
    return out


def short(key: str) -> str:
    """A test id for a file key: its folder and name."""
    p = Path(key)
    return f"{p.parent.name}/{p.name}"
