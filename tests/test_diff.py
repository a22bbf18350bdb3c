"""The diff tool: alignment, figures and verdict on synthetic inputs, then end to end on a real
before/after pair of JAX CPU profiles (tests/data/jax_diff, recorded by scripts/record_diff_profiles.py)
through Python, the CLI and HTTP. The UI view is tested in test_ui_diff.py."""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xprof_core.cli import main as cli_main
from xprof_core.execute import run_tool
from xprof_core.execute.diff import run_diff
from xprof_core.storage.logdir import Logdir
from xprof_core.tools.datatable import column_values, datatable
from xprof_core.tools.diff import (
    OpRow,
    align,
    diff_results,
    distribution,
    normalize_hlo_text,
    split_suffix,
)

from conftest import ROOT

PAIR = ROOT / "tests" / "data" / "jax_diff"
BASE = PAIR / "base"
CHANGED = PAIR / "extra_layer"


def run_names() -> tuple[str, str]:
    runs = {r.name.split("/")[0]: r.name for r in Logdir(str(PAIR)).runs()}
    return runs["base"], runs["extra_layer"]


def rows_of(table: dict[str, Any]) -> list[dict[str, Any]]:
    ids = [c["id"] for c in table["cols"]]
    return [dict(zip(ids, [c["v"] for c in r["c"]], strict=True)) for r in table["rows"]]


# --- pieces ---


def test_split_suffix_and_hlo_text_normalisation() -> None:
    assert split_suffix("fusion.123") == ("fusion", 123)
    assert split_suffix("loop_add_fusion_2") == ("loop_add_fusion", 2)
    assert split_suffix("dot") == ("dot", -1)
    assert split_suffix(".5") == (".5", -1)
    assert split_suffix("jit(f)/dense_1/MatMul") == ("jit(f)/dense_1/MatMul", -1)
    text = "%fusion.12 = f32[256,512]{1,0} fusion(f32[256,256]{1,0} %param_0.3, %copy.7), calls=%fused_computation.2"
    assert normalize_hlo_text(text) == (
        "%fusion = f32[256,512]{1,0} fusion(f32[256,256]{1,0} %param_0, %copy), calls=%fused_computation"
    )


def op(name: str, total: float, fp: tuple[str, ...] = ("m", "c")) -> OpRow:
    return OpRow(name, fp, "c", "", 1, total, total)


def test_align_pairs_renumbered_ops_in_suffix_order_then_by_name() -> None:
    # B added an op of the same kind, so XLA renumbered: A's .4/.5/.6 are B's .6/.7/.8 and B's .9 is new.
    a = [op("fusion.5", 40), op("fusion.4", 1), op("fusion.6", 17), op("sort", 3, ("m", "s")), op("gone", 2, ("x",))]
    b = [op("fusion.7", 80), op("fusion.9", 11), op("fusion.6", 1), op("fusion.8", 16), op("sort", 4, ("m", "t"))]
    pairs = {(p.a.name if p.a else None, p.b.name if p.b else None): p.matched_by for p in align(a, b)}
    assert pairs == {
        ("fusion.4", "fusion.6"): "fingerprint",
        ("fusion.5", "fusion.7"): "fingerprint",
        ("fusion.6", "fusion.8"): "fingerprint",
        (None, "fusion.9"): "",
        ("sort", "sort"): "name",  # fingerprints differ: paired by the exact name in the second pass
        ("gone", None): "",
    }


def test_distribution_matches_numpy() -> None:
    values = [9.5, 7.25, 12.0, 8.0, 30.0, 8.5, 7.75]
    d = distribution(values)
    arr = np.array(values)
    assert d["count"] == 7
    assert d["mean"] == pytest.approx(arr.mean()) and d["std"] == pytest.approx(arr.std())
    for q in (50, 90, 99):
        assert d[f"p{q}"] == pytest.approx(np.percentile(arr, q))
    assert d["min"] == 7.25 and d["max"] == 30.0
    assert distribution([])["mean"] is None


def _overview(steps_ms: list[float]) -> dict[str, Any]:
    cols = [
        ("stepnum", "Step", "number"),
        ("steptime_ms", "Step time (ms)", "number"),
        ("host_compute_ms", "", "number"),
    ]
    return {
        "step_table": datatable(cols, [[i, t, t * 0.9] for i, t in enumerate(steps_ms)]),
        "breakdown_pct": {"host_compute": 90.0},
    }


def _hlo(ops: dict[str, float]) -> dict[str, Any]:
    cols = [
        ("hlo_op_name", "", "string"),
        ("hlo_module", "", "string"),
        ("category", "", "string"),
        ("tf_op_name", "", "string"),
        ("occurrences", "", "number"),
        ("total_time", "", "number"),
        ("total_self_time", "", "number"),
    ]
    return {"hlo_stats": datatable(cols, [[n, "jit_f", "fusion", f"f/{n}", 4, t, t] for n, t in ops.items()])}


def test_verdict_names_the_ops_that_explain_the_change() -> None:
    # 4 steps of 10 ms -> 4 steps of 11 ms: +1 ms per step, of which op x explains 0.8 ms (+3.2 ms over 4 steps).
    a = {"overview_page": _overview([10.0] * 4), "hlo_stats": _hlo({"x": 10_000.0, "y": 20_000.0, "z": 400.0})}
    b = {"overview_page": _overview([11.0] * 4), "hlo_stats": _hlo({"x": 13_200.0, "y": 20_400.0, "w": 400.0})}
    d = diff_results(a, b)
    s = d["summary"]
    assert s["change_pct"] == pytest.approx(10.0) and s["slower"] is True
    assert s["new_ops"] == 1 and s["vanished_ops"] == 1 and s["matched_ops"] == 2
    assert d["verdict"].startswith(
        "B is 10.0% slower than A per step (mean 10.000 ms -> 11.000 ms); 80% of it is in 1 op: x"
    )
    top = rows_of(d["top_regressions"])
    assert [r["name"] for r in top] == ["x", "w", "y"]
    assert top[0]["delta_per_step_us"] == pytest.approx(800.0) and top[0]["share_of_change_pct"] == pytest.approx(80.0)
    assert top[0]["ratio"] == pytest.approx(1.32)
    assert [r["name"] for r in rows_of(d["top_improvements"])] == ["z"]
    breakdown = rows_of(d["breakdown"])
    assert breakdown == [
        {"category": "host_compute", "a_ms": 9.0, "b_ms": pytest.approx(9.9), "delta_ms": pytest.approx(0.9)}
        | {"a_pct": 90.0, "b_pct": 90.0}
    ]
    same = diff_results(a, {**a})
    assert same["verdict"].startswith("B takes the same time as A per step") and same["summary"]["change_pct"] == 0.0
    faster = diff_results(b, a, labels=("new", "old"))
    assert faster["verdict"].startswith("old is 9.1% faster than new per step")
    assert [r["name"] for r in rows_of(faster["top_improvements"])][0] == "x"
    with pytest.raises(ValueError, match="metric"):
        diff_results(a, b, metric="p42")


def test_without_steps_the_verdict_compares_op_time() -> None:
    a = {"hlo_stats": _hlo({"x": 1000.0})}
    b = {"hlo_stats": _hlo({"x": 1500.0})}
    d = diff_results(a, b)
    assert d["summary"]["basis"] == "op time (no step markers)"
    assert d["verdict"].startswith("B is 50.0% slower than A in op time (total 1.000 ms -> 1.500 ms)")


# --- the recorded pair ---


@pytest.fixture(scope="module")
def pair() -> dict[str, Any]:
    return run_diff(BASE, CHANGED, labels=("base", "extra_layer"))


def test_recorded_pair_is_small_and_documented() -> None:
    files = [p for p in PAIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    assert (PAIR / "README.md").is_file() and (ROOT / "scripts" / "record_diff_profiles.py").is_file()
    assert len(list(PAIR.rglob("*.xplane.pb.gz"))) == 2


def test_real_pair_steps_and_verdict_follow_the_overview(pair: dict[str, Any]) -> None:
    steps = {}
    for side, src in (("a", BASE), ("b", CHANGED)):
        steps[side] = np.array(column_values(run_tool("overview_page", src)["step_table"], "steptime_ms"))
        d = pair["steps"][side]
        assert d["count"] == len(steps[side]) > 0
        assert d["mean"] == pytest.approx(steps[side].mean()) and d["p90"] == pytest.approx(
            np.percentile(steps[side], 90)
        )
    change = (steps["b"].mean() - steps["a"].mean()) / steps["a"].mean() * 100
    s = pair["summary"]
    assert s["change_pct"] == pytest.approx(change)
    # The extra layer makes B slower; the verdict says so with the figure and names the ops it explains.
    assert change > 20 and s["slower"]
    assert pair["verdict"].startswith(f"extra_layer is {change:.1f}% slower than base per step")
    named = [e["name"] for e in s["explained_by"]]
    assert named and all(n in pair["verdict"] for n in named)
    assert 1 <= len(named) <= 5
    assert s["primary_level"] == "hlo_ops"


def test_real_pair_ops_cover_both_runs_once_with_their_own_figures(pair: dict[str, Any]) -> None:
    for level, tool, name_col, total_col in (
        ("hlo_ops", "hlo_stats", "hlo_op_name", "total_time"),
        ("framework_ops", "framework_op_stats", "operation", "total_time"),
    ):
        rows = rows_of(pair[level])
        for side, src in (("a", BASE), ("b", CHANGED)):
            table = run_tool(tool, src)[tool]
            want = sorted(zip(column_values(table, name_col), column_values(table, total_col), strict=True))
            got = sorted((r[f"name_{side}"], r[f"total_us_{side}"]) for r in rows if r[f"name_{side}"] is not None)
            assert got == want, (level, side)
        for r in rows:
            assert (r["status"] == "new") == (r["name_a"] is None)
            assert (r["status"] == "vanished") == (r["name_b"] is None)
            assert r["delta_per_step_us"] == pytest.approx(r["per_step_us_b"] - r["per_step_us_a"])
        deltas = [abs(r["delta_per_step_us"]) for r in rows]
        assert deltas == sorted(deltas, reverse=True)
    hlo = rows_of(pair["hlo_ops"])
    # B runs ops A lacks (the extra layer), and XLA renumbered some: those pair by fingerprint.
    assert pair["summary"]["new_ops"] == sum(r["status"] == "new" for r in hlo) > 0
    assert any(r["matched_by"] == "fingerprint" and r["name_a"] != r["name_b"] for r in hlo)
    regressions = rows_of(pair["top_regressions"])
    assert regressions and all(r["delta_per_step_us"] > 0 for r in regressions)
    assert [r["delta_per_step_us"] for r in regressions] == sorted(
        (r["delta_per_step_us"] for r in regressions), reverse=True
    )
    assert all(r["delta_per_step_us"] < 0 for r in rows_of(pair["top_improvements"]))
    assert pair["kernels"]["rows"] == []  # CPU profiles have no GPU kernels


# --- CLI ---


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_cli_diff_formats_and_ci_gate(pair: dict[str, Any]) -> None:
    code, out, _ = cli("diff", str(BASE), str(CHANGED), "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["summary"]["change_pct"] == pytest.approx(pair["summary"]["change_pct"])
    assert result["top_regressions"] == pair["top_regressions"]
    code, out, _ = cli("diff", str(BASE), str(CHANGED))
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(f"{CHANGED} is ") and f" slower than {BASE} per step " in first
    assert first.split(" per step ", 1)[1] == pair["verdict"].split(" per step ", 1)[1]
    assert "Top regressions" in out and "New in B" in out and "p99" in out
    pct = pair["summary"]["change_pct"]
    code, _, err = cli("diff", str(BASE), str(CHANGED), "--fail-if-slower", f"{pct - 1:.3f}")
    assert code == 3 and "slower than A, over the" in err
    assert cli("diff", str(BASE), str(CHANGED), "--fail-if-slower", f"{pct + 1:.3f}")[0] == 0
    assert cli("diff", str(CHANGED), str(BASE), "--fail-if-slower", "0")[0] == 0  # B faster: passes
    base_run, changed_run = run_names()
    code, out, _ = cli("diff", "--logdir", str(PAIR), "base", "extra_layer", "--format", "csv", "--metric", "p50")
    assert code == 0
    assert f"# step_distribution\nStatistic,{base_run} (ms),{changed_run} (ms)" in out
    assert "# top_regressions" in out and "# hlo_ops" in out
    code, _, err = cli("diff", "--logdir", str(PAIR), "nope", "base")
    assert code == 1 and "'nope' is not a run" in err


# --- HTTP ---


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from xprof_core.notebook import serve

    s = serve(str(PAIR), local_workers=1)
    try:
        yield s
    finally:
        s.stop()


def get(server: Any, route: str, **params: str) -> tuple[int, bytes]:
    url = f"{server.url}data/plugin/profile/{route}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_diff_matches_the_library(server: Any) -> None:
    base_run, changed_run = run_names()
    status, body = get(server, "data", run=base_run, tag="diff", run2=changed_run)
    assert status == 200
    result = json.loads(body)
    expected = run_diff((str(PAIR), base_run), (str(PAIR), changed_run), labels=(base_run, changed_run))
    assert result["verdict"] == expected["verdict"]
    assert result["verdict"].startswith(f"{changed_run} is ") and " slower than " in result["verdict"]
    for key in ("step_distribution", "breakdown", "top_regressions", "top_improvements", "hlo_ops", "framework_ops"):
        assert result[key] == json.loads(json.dumps(expected[key])), key
    status, body = get(server, "data_csv", run=base_run, tag="diff", run2=changed_run, table="top_regressions")
    assert status == 200
    lines = body.decode().splitlines()
    assert lines[0].startswith("Rank,Op,Status") and len(lines) == 1 + len(result["top_regressions"]["rows"])
    status, body = get(server, "data", run=base_run, tag="diff", run2=changed_run, metric="p50", top="3")
    assert status == 200
    p50 = json.loads(body)
    assert p50["summary"]["metric"] == "p50" and len(p50["top_regressions"]["rows"]) == 3
    assert p50["summary"]["value_a_ms"] == pytest.approx(result["steps"]["a"]["p50"])


def test_http_diff_errors_and_openapi(server: Any) -> None:
    base_run, changed_run = run_names()
    status, body = get(server, "data", run=base_run, tag="diff")
    assert status == 400 and "run2" in json.loads(body)["error"]
    status, body = get(server, "data", run=base_run, tag="diff", run2="nope/2020_01_01_00_00_00")
    assert status == 404
    status, body = get(server, "data", run=base_run, tag="diff", run2=changed_run, metric="mode")
    assert status == 400 and "metric" in json.loads(body)["error"]
    status, body = get(server, "data", run=base_run, tag="diff", run2=changed_run, resolution="3")
    assert status == 400 and "unknown diff parameter" in json.loads(body)["error"]
    with urllib.request.urlopen(server.url + "openapi.json", timeout=30) as r:
        doc = json.loads(r.read())
    data = doc["paths"]["/data/plugin/profile/data"]["get"]
    names = {p["name"] for p in data["parameters"]}
    assert {"run2", "host2", "hosts2", "metric", "top"} <= names
    tag = next(p for p in data["parameters"] if p["name"] == "tag")
    assert "diff" in tag["schema"]["enum"]
    assert "verdict" in doc["components"]["schemas"]["Diff"]["required"]


def test_diff_handles_runs_without_steps_math() -> None:
    # A guard for the figures: no NaN leaks into the JSON of a diff of a run with itself.
    d = run_diff(BASE, BASE)
    text = json.dumps(d)
    assert "NaN" not in text and d["summary"]["change_pct"] == 0.0
    assert all(math.isclose(r["delta_per_step_us"], 0.0) for r in rows_of(d["hlo_ops"]))
    assert Path(BASE).is_dir()


def test_two_host_sets_of_one_run(tmp_path: Path) -> None:
    import shutil

    session = tmp_path / "plugins" / "profile" / "2026_01_01_00_00_00"
    session.mkdir(parents=True)
    shutil.copyfile(next(BASE.rglob("*.xplane.pb.gz")), session / "alpha.xplane.pb.gz")
    shutil.copyfile(next(CHANGED.rglob("*.xplane.pb.gz")), session / "beta.xplane.pb.gz")
    code, out, _ = cli(
        "diff", str(tmp_path), str(tmp_path), "--host-a", "alpha", "--host-b", "beta", "--format", "json"
    )
    assert code == 0
    result = json.loads(out)
    expected = run_diff(BASE, CHANGED)
    assert result["summary"]["change_pct"] == pytest.approx(expected["summary"]["change_pct"])
    assert result["top_regressions"] == json.loads(json.dumps(expected["top_regressions"]))
