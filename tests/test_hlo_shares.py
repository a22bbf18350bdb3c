"""hlo_stats shares against XProf 2.24.2: each op's self time as a share of XProf's total device time
(each device's first op to its last, gaps included), on every real profile with HLO ops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xprof_core.execute import run_tool

from conftest import REAL, ROOT

GOLDEN = ROOT / "tests" / "data" / "xprof_golden.json"


def _files() -> list[Any]:
    if not GOLDEN.exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no XProf golden values"))]
    out = []
    for key, entry in json.loads(GOLDEN.read_text())["files"].items():
        top = entry["tools"].get("hlo_stats", {}).get("top_by_total_self_time")
        if top and "total_self_time_percent" in top[0] and not entry.get("multi_host"):
            path = REAL / key.split("../shared/data/real/", 1)[1] if key.startswith("../shared") else ROOT / key
            out.append(pytest.param(path, top, id=key.rsplit("/", 2)[-2] + "/" + Path(key).name))
    return out


@pytest.mark.parametrize("path, top", _files())
def test_hlo_shares_match_xprof(path: Path, top: list[dict[str, Any]]) -> None:
    if not path.exists():
        pytest.skip(f"the shared real-profile folder is absent ({path.name} not found)")
    table = run_tool("hlo_stats", path)["hlo_stats"]
    ids = [c["id"] for c in table["cols"]]
    rows = [dict(zip(ids, [c["v"] for c in r["c"]], strict=True)) for r in table["rows"]]
    for gold in top:
        mine = [
            r
            for r in rows
            if r["hlo_op_name"] == gold["hlo_op_name"]
            and str(r["program_id"]) == str(gold["program_id"])
            and r["total_self_time"] == pytest.approx(gold["total_self_time_us"], abs=1e-3)
        ]
        assert mine, gold
        # GPU shares are XProf's exactly; TPU ops are read on the lines' own clock, XProf's on the
        # device clock (tools/device_time.py): within 0.001 points.
        assert mine[0]["total_self_time_percent"] == pytest.approx(gold["total_self_time_percent"], abs=1e-3), gold
