"""Every tool's output on every test profile equals the recorded oracle (tests/data/oracle/).

The oracle was recorded with ``scripts/record_tool_outputs.py`` from the
first, column-at-a-time implementation of the tools, whose figures are
checked against XProf elsewhere (tests/data/xprof_golden.json). It guards the
rewrites of the tools: the same JSON, numbers equal to 1e-9 relative, for
every table tool, and the same bytes for two trace viewer calls.

Intended changes since the recording are listed in ``CHANGES`` with their
reason, and applied to the recorded value before the comparison.
"""

from __future__ import annotations

import gzip
import math
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import record_tool_outputs as oracle  # noqa: E402

ORACLE = ROOT / "tests" / "data" / "oracle" / "tool_outputs.json.gz"
RECORDED: dict[str, Any] = orjson.loads(gzip.decompress(ORACLE.read_bytes()))
PROFILES = oracle.profiles()

# Outputs recorded again after a deliberate change that no edit of the old output can express
# (scripts/record_tool_outputs.py --only ...); the reason is the CHANGES entry that uses them.
ATTRIBUTION = ROOT / "tests" / "data" / "oracle" / "gpu_op_attribution.json.gz"
ATTRIBUTED: dict[str, Any] = orjson.loads(gzip.decompress(ATTRIBUTION.read_bytes()))


# Outputs recorded again after XProf's hlo_stats denominator, overview idle over the devices with work
# and exact 64-bit stats in the trace viewer. Only the parts named by the CHANGES entries below are
# taken from it; the rest of each output is still held to the first recording.
SECOND = ROOT / "tests" / "data" / "oracle" / "device_time_and_u64.json.gz"
SECOND_RECORDING: dict[str, Any] = orjson.loads(gzip.decompress(SECOND.read_bytes()))


def _rerecorded(tool: str) -> Callable[[str, Any], Any]:
    return lambda key, expected: ATTRIBUTED.get(f"{key}|{tool}", expected)


THINNED = ROOT / "tests" / "data" / "oracle" / "trace_thinned.json.gz"
THINNED_DIGESTS: dict[str, Any] = orjson.loads(gzip.decompress(THINNED.read_bytes()))


def _thinned_default(key: str, expected: Any) -> Any:
    """The default trace view re-recorded; the every-event call must not have changed."""
    new = THINNED_DIGESTS[f"{key}|trace_viewer"]
    assert new["every_event"] == expected["every_event"], "the every-event trace changed too"
    return {**expected, "default": new["default"]}


def _second_keys(tool: str, *keys: str) -> Callable[[str, Any], Any]:
    """The recorded output with the top-level ``keys`` of the second recording."""

    def change(key: str, expected: Any) -> Any:
        new = SECOND_RECORDING[f"{key}|{tool}"]
        return {**expected, **{k: new[k] for k in keys if k in new}}

    return change


def _second_hlo_shares(key: str, expected: Any) -> Any:
    """hlo_stats with the share columns (and the total they divide by) of the second recording."""
    new = SECOND_RECORDING[f"{key}|hlo_stats"]["hlo_stats"]
    old = expected["hlo_stats"]
    ids = [c["id"] for c in old["cols"]]
    shares = [ids.index(c) for c in ("total_self_time_percent", "cumulative_total_self_time_percent")]
    rows = []
    for old_row, new_row in zip(old["rows"], new["rows"], strict=True):
        cells = list(old_row["c"])
        for i in shares:
            cells[i] = new_row["c"][i]
        rows.append({**old_row, "c": cells})
    p = {**old.get("p", {}), "total_device_time_us": new["p"]["total_device_time_us"]}
    return {**expected, "hlo_stats": {**old, "rows": rows, "p": p}}


def _second_overview(key: str, expected: Any) -> Any:
    out = _second_keys("overview_page", "version", "device_idle_pct", "device_idle_basis")(key, expected)
    device_type = SECOND_RECORDING[f"{key}|overview_page"]["run_environment"]["device_type"]
    return {**out, "run_environment": {**out["run_environment"], "device_type": device_type}}


def _second_trace(key: str, expected: Any) -> Any:
    return SECOND_RECORDING.get(f"{key}|trace_viewer", expected)


def _version(new: int) -> Callable[[str, Any], Any]:
    return lambda key, expected: {**expected, "version": new}


def _overview_communication_and_memset(key: str, expected: Any) -> Any:
    """overview_page v3: a ``device_memset`` category and the GPU communication per rank.

    Memsets (device activities named "Memset...") were device compute: the
    share the current tool gives them is carved out of ``device_compute``,
    step by step, and nothing else moves. The communication tables are
    tools.collectives' figures, which test_hta_agreement.py checks against HTA.
    """
    from xprof_core.execute import run_tool

    now = run_tool("overview_page", str(PROFILES[key]))
    out = dict(expected)
    out["version"] = 3
    memset_pct = now["breakdown_pct"]["device_memset"]
    out["breakdown_pct"] = {
        **expected["breakdown_pct"],
        "device_compute": expected["breakdown_pct"]["device_compute"] - memset_pct,
        "device_memset": memset_pct,
    }
    table = expected["step_table"]
    ids = [c["id"] for c in table["cols"]]
    at, compute = ids.index("device_to_host_ms") + 1, ids.index("device_compute_ms")
    now_ids = [c["id"] for c in now["step_table"]["cols"]]
    memset = [r["c"][now_ids.index("device_memset_ms")]["v"] for r in now["step_table"]["rows"]]
    rows = []
    for r, m in zip(table["rows"], memset, strict=True):
        cells = [dict(c) for c in r["c"]]
        cells[compute] = {"v": cells[compute]["v"] - m}
        rows.append({"c": [*cells[:at], {"v": m}, *cells[at:]]})
    cols = [*table["cols"][:at], {"id": "device_memset_ms", "label": "Device memset (ms)", "type": "number"}]
    out["step_table"] = {**table, "cols": cols + table["cols"][at:], "rows": rows}
    for name in ("communication_per_rank", "collectives", "straggler"):
        out[name] = now[name]
    return out


# (tool, description, change applied to the recorded output) for deliberate changes of output.
CHANGES: list[tuple[str, str, Callable[[str, Any], Any]]] = [
    *(
        (
            tool,
            "GPU kernels inside CUDA graphs (hlo_op = command_buffer_N) are attributed to their HLO op "
            "(tools/attribution.py; before: by kernel name, so reused kernels merged ops and cuBLAS kernels "
            "were ops); kernel_stats shows their framework op instead of XlaModule; overview's top ops are "
            "HLO ops, not kernel names. Re-recorded cases: the CUDA-graph profiles, and top ops of GPU profiles",
            _rerecorded(tool),
        )
        for tool in ("framework_op_stats", "hlo_stats", "kernel_stats", "op_profile", "overview_page")
    ),
    ("overview_page", "version 2: top ops are HLO ops", _version(2)),
    ("input_pipeline_analyzer", "version 2: XProf's input-bound thresholds, 5 % and 20 % (was 50 %)", _version(2)),
    (
        "trace_viewer",
        "every window is thinned at the requested resolution (before: windows of fewer than 500,000 events were "
        "sent whole); the default view of the small test profiles now drops sub-pixel events, and counts them",
        _thinned_default,
    ),
    (
        "overview_page",
        "version 3: device_memset category; GPU communication per rank",
        _overview_communication_and_memset,
    ),
    (
        "hlo_stats",
        "shares (and their running sum) of XProf's total device time, each device's first op to its last "
        "with the gaps (tools/device_time.py), not of the summed op time; p.total_device_time_us is that total",
        _second_hlo_shares,
    ),
    (
        "op_profile",
        "totalTimePs and idleTimePs: the device time hlo_stats divides by and its idle part (exclude idle)",
        _second_keys("op_profile", "totalTimePs", "idleTimePs"),
    ),
    (
        "overview_page",
        "version 4: device idle averaged over the device planes with work, named in device_idle_basis; "
        "AMD devices named by architecture (gfx942) as XProf",
        _second_overview,
    ),
    (
        "trace_viewer",
        "stats past 2**53 (64-bit ids, _p) are exact strings of their digits, not rounded numbers",
        _second_trace,
    ),
]


def _diff(a: Any, b: Any, path: str = "$") -> str | None:
    """Where two JSON values differ (floats to 1e-9 relative), or None."""
    if isinstance(a, float) or isinstance(b, float):
        numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
        if numbers and (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))):
            return None
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"
        for k in a:
            d = _diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


CASES = sorted(RECORDED)


@pytest.mark.parametrize("case", CASES)
def test_tool_output_matches_oracle(case: str) -> None:
    key, tool = case.split("|")
    path = PROFILES.get(key)
    if path is None:
        pytest.skip(f"{key} is not here (the shared real-profile folders are absent)")
    expected = RECORDED[case]
    for changed_tool, _, change in CHANGES:
        if changed_tool == tool:
            expected = change(key, expected)
    if tool == "trace_viewer":
        got = {name: oracle.trace_digest(path, params) for name, params in oracle.TRACE_CALLS.items()}
        assert got == expected
        return
    from xprof_core.execute import run_tool_json

    got = orjson.loads(run_tool_json(tool, str(path)))
    where = _diff(expected, got)
    assert where is None, f"{case}: {where}"


def test_oracle_covers_every_tool_and_profile() -> None:
    from xprof_core.tools import tool_names

    recorded_tools = {c.split("|")[1] for c in CASES}
    recorded_keys = {c.split("|")[0] for c in CASES}
    assert {"overview_page", "framework_op_stats", "hlo_stats", "op_profile", "kernel_stats", "trace_viewer"} <= (
        recorded_tools
    )
    assert recorded_tools <= set(tool_names())
    assert {k for k in PROFILES if k.startswith("jax/")} <= recorded_keys
