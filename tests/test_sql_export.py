"""SQL, Arrow and Parquet: every table checked against the XSpace's own columns and the tools'
results, the documented example queries against numpy, and Parquet round trips."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.cli import main as cli_main
from xprof_core.execute import run_tool
from xprof_core.storage.logdir import MissingExtraError
from xprof_core.tools.datatable import column_values

from conftest import JAX_DATA, ROOT

pa = pytest.importorskip("pyarrow", reason="the 'arrow' extra (pyarrow) is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="the 'arrow' extra (pyarrow) is not installed")
duckdb = pytest.importorskip("duckdb", reason="the 'sql' extra (duckdb) is not installed")

from xprof_core.export.sources import source_tables  # noqa: E402 - after the extras are known to be there
from xprof_core.export.tables import SCHEMA, TABLES, xspace_tables  # noqa: E402

GPU = JAX_DATA / "gpu_mlp_train.xplane.pb"
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"
DOC = ROOT / "docs" / "sql.md"


@pytest.fixture(scope="module", params=[GPU, CPU], ids=["gpu", "cpu"])
def profile(request: pytest.FixtureRequest) -> tuple[Path, Any, dict[str, Any]]:
    xs = xprof_core.load(request.param)
    return request.param, xs, xspace_tables(xs, host="h")


def test_events_lines_planes_metadata_are_the_columns(profile: tuple[Path, Any, dict[str, Any]]) -> None:
    _, xs, t = profile
    ev = t["events"]
    assert ev.num_rows == xs.num_events
    assert np.array_equal(ev["start_ps"].to_numpy(), xs.start_ps)
    assert np.array_equal(ev["duration_ps"].to_numpy(), xs.duration_ps)
    assert np.array_equal(ev["end_ps"].to_numpy(), xs.start_ps + xs.duration_ps)
    assert np.array_equal(ev["line"].to_numpy(), xs.line_of_event)
    assert np.array_equal(ev["plane"].to_numpy(), xs.plane_of_event)
    assert np.array_equal(ev["metadata_id"].to_numpy(), xs.metadata_id)
    assert np.array_equal(ev["num_occurrences"].to_numpy(), xs.num_occurrences)
    assert ev["name"].to_pylist() == xs.event_names().tolist()
    assert ev["offset_ps"].to_numpy()[xs.is_timed].min() == 0
    # The numeric columns wrap the XSpace's arrays: no copy.
    for column, array in (("start_ps", xs.start_ps), ("duration_ps", xs.duration_ps), ("line", xs.line_of_event)):
        assert ev[column].chunk(0).buffers()[1].address == array.ctypes.data, column
    assert set(ev["host"].to_pylist()) == {"h"}
    lines = t["lines"].to_pylist()
    assert [(r["name"], r["plane"], r["first_event"], r["num_events"]) for r in lines] == [
        (ln.name, ln.plane_index, ln.begin, len(ln)) for ln in xs.lines
    ]
    planes = t["planes"].to_pylist()
    assert [(r["name"], r["num_events"], r["device_kind"]) for r in planes] == [
        (p.name, p.num_events, p.device_kind) for p in xs.planes
    ]
    md = {(r["plane"], r["id"]): r["name"] for r in t["metadata"].to_pylist()}
    assert md == {(p.index, i): m.name for p in xs.planes for i, m in p.event_metadata.items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)


def test_stats_long_form_is_every_stat_of_the_columns(profile: tuple[Path, Any, dict[str, Any]]) -> None:
    _, xs, t = profile
    stats = t["stats"].to_pylist()
    by_name: dict[str, dict[int, Any]] = {}
    for r in stats:
        if r["owner"] != "event":
            continue
        value = next(r[k] for k in ("int_value", "double_value", "str_value", "bytes_value") if r[k] is not None)
        by_name.setdefault(r["name"], {})[r["event"]] = value
    assert by_name, "no event stats"
    every = np.arange(xs.num_events, dtype=np.int64)
    for name, values in by_name.items():
        col = xs.stat(every, name, include_metadata=False)  # the reference: the model's own stat reader
        present = np.flatnonzero(col.present)
        assert sorted(values) == present.tolist(), name
        for row in present.tolist():
            want = col.values[row]
            want = want.item() if hasattr(want, "item") else want
            assert _same(values[row], want), (name, row, values[row], want)
    # Stats of event metadata and planes: what the model's dicts hold.
    for r in stats:
        if r["owner"] == "plane":
            assert r["name"] in xs.planes[r["plane"]].stats
        elif r["owner"] == "metadata":
            assert r["name"] in xs.planes[r["plane"]].event_metadata[r["metadata_id"]].stats
    plane_stats = sum(len(p.stats) for p in xs.planes)
    assert sum(r["owner"] == "plane" for r in stats) == plane_stats


def test_steps_and_ops_tables_are_the_tool_results(profile: tuple[Path, Any, dict[str, Any]]) -> None:
    path, _, t = profile
    overview = run_tool("overview_page", path)
    assert t["steps"]["steptime_ms"].to_pylist() == column_values(overview["step_table"], "steptime_ms")
    hlo = run_tool("hlo_stats", path)["hlo_stats"]
    ops = [r for r in t["ops"].to_pylist() if r["level"] == "hlo"]
    assert [(r["name"], r["occurrences"], r["self_us"]) for r in ops] == list(
        zip(
            column_values(hlo, "hlo_op_name"),
            column_values(hlo, "occurrences"),
            column_values(hlo, "total_self_time"),
            strict=True,
        )
    )
    kernels = run_tool("kernel_stats", path)["kernel_stats"]
    assert sum(r["level"] == "kernel" for r in t["ops"].to_pylist()) == len(kernels["rows"])


# --- SQL ---


def doc_queries() -> dict[str, str]:
    """The example queries of docs/sql.md: each ```sql block after a '### name' heading."""
    text = DOC.read_text()
    return dict(re.findall(r"^### (.+?)\n.*?```sql\n(.*?)```", text, flags=re.MULTILINE | re.DOTALL))


def test_documented_queries_match_numpy() -> None:
    queries = doc_queries()
    assert {"Top kernels", "Idle gaps", "Per-step op time"} <= set(queries)
    xs = xprof_core.load(GPU)

    # Top kernels: device events of the stream lines by total time.
    top = xs.sql(queries["Top kernels"])
    rows = xs.select(plane="^/device:GPU", line="^Stream")
    names = xs.event_names(rows)
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    total = np.bincount(inv, weights=xs.duration_ps[rows].astype(float))
    order = np.argsort(-total, kind="stable")[:10]
    assert top["name"].tolist() == uniq[order].tolist()
    assert top["total_us"].to_numpy() == pytest.approx(total[order] / 1e6)
    assert top["launches"].tolist() == np.bincount(inv)[order].tolist()

    # Idle gaps on each stream: the time between one kernel's end and the next one's start.
    gaps = xs.sql(queries["Idle gaps"])
    want = []
    for ln in xs.lines:
        if ln.plane.name.startswith("/device:GPU") and ln.name.startswith("Stream") and len(ln) > 1:
            r = ln.rows[np.argsort(xs.start_ps[ln.rows], kind="stable")]
            ends = np.maximum.accumulate(xs.start_ps[r] + xs.duration_ps[r])
            g = xs.start_ps[r][1:] - ends[:-1]
            want.extend(int(v) for v in g[g > 0])
    assert sorted(gaps["gap_ps"].tolist(), reverse=True) == sorted(want, reverse=True)[: len(gaps)]
    assert len(gaps) == min(20, len(want))

    # Per-step op time: each device op's time within each step (events nested in a step marker by time).
    per_step = xs.sql(queries["Per-step op time"])
    steps = xs.select(name="^train$")
    step_num = xs.stat(steps, "step_num").values
    dev = xs.select(plane="^/device:GPU", line="^Stream")
    expected: dict[tuple[int, str], float] = {}
    for s_row, num in zip(steps.tolist(), step_num.tolist(), strict=True):
        lo, hi = xs.start_ps[s_row], xs.start_ps[s_row] + xs.duration_ps[s_row]
        inside = dev[(xs.start_ps[dev] >= lo) & (xs.start_ps[dev] < hi)]
        for name, d in zip(xs.event_names(inside).tolist(), xs.duration_ps[inside].tolist(), strict=True):
            expected[(num, name)] = expected.get((num, name), 0.0) + d / 1e6
    got = {(int(r.step), r.name): r.total_us for r in per_step.itertuples()}
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v)


def test_sql_output_kinds_and_errors() -> None:
    xs = xprof_core.load(CPU)
    table = xs.sql("SELECT count(*) AS n FROM events", output="arrow")
    assert isinstance(table, pa.Table) and table["n"].to_pylist() == [xs.num_events]
    df = xs.sql("SELECT plane, count(*) AS n FROM events GROUP BY plane ORDER BY plane")
    assert df["n"].tolist() == [p.num_events for p in xs.planes if p.num_events]
    with pytest.raises(ValueError, match="SQL error"):
        xs.sql("SELECT nope FROM events")
    with pytest.raises(ValueError, match="output"):
        xs.sql("SELECT 1", output="json")
    assert set(xs.to_arrow()) == set(TABLES)


def test_missing_extras_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from xprof_core.export.sql import require_duckdb
    from xprof_core.export.tables import require_pyarrow

    monkeypatch.setitem(sys.modules, "duckdb", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'xprof-core\[sql\]'"):
        require_duckdb()
    with pytest.raises(MissingExtraError, match=r"pip install 'xprof-core\[arrow\]'"):
        require_pyarrow()


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_cli_sql_prints_table_csv_and_json() -> None:
    xs = xprof_core.load(CPU)
    query = "SELECT plane, count(*) AS n FROM events GROUP BY plane ORDER BY plane"
    want = [(p.index, p.num_events) for p in xs.planes if p.num_events]
    code, out, _ = cli("sql", str(CPU), query, "--format", "json")
    assert code == 0 and [(r["plane"], r["n"]) for r in map(json.loads, out.splitlines())] == want
    code, out, _ = cli("sql", str(CPU), query, "--format", "csv")
    assert code == 0 and out.splitlines()[1:] == [f"{p},{n}" for p, n in want]
    code, out, _ = cli("sql", str(CPU), query)
    assert code == 0 and out.splitlines()[0].split() == ["plane", "n"] and f"({len(want)} rows)" in out
    code, _, err = cli("sql", str(CPU), "SELECT * FROM nope")
    assert code == 1 and "SQL error" in err


def test_multi_host_run_tables_name_each_host(tmp_path: Path) -> None:
    session = tmp_path / "run" / "plugins" / "profile" / "2026_01_01_00_00_00"
    session.mkdir(parents=True)
    for host in ("alpha", "beta"):
        shutil.copyfile(CPU, session / f"{host}.xplane.pb")
    t = source_tables(str(tmp_path / "run"), ["events", "planes", "steps", "ops"])
    xs = xprof_core.load(CPU)
    assert t["events"].num_rows == 2 * xs.num_events
    hosts = t["events"]["host"].to_pylist()
    assert hosts[: xs.num_events] == ["alpha"] * xs.num_events and hosts[xs.num_events :] == ["beta"] * xs.num_events
    ops = [r for r in t["ops"].to_pylist() if r["level"] == "hlo"]
    single = run_tool("hlo_stats", CPU)["hlo_stats"]
    assert sum(r["occurrences"] for r in ops) == 2 * sum(column_values(single, "occurrences"))
    with pytest.raises(ValueError, match="unknown table"):
        source_tables(str(tmp_path / "run"), ["nope"])


# --- Parquet ---


def decoded(table: Any) -> Any:
    """The table with dictionary columns as plain values (Parquet re-encodes dictionaries) and no metadata."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


def test_parquet_round_trip_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "pq"
    code, _, err = cli("export", str(GPU), "--format", "parquet", "-o", str(out))
    assert code == 0 and "schema.json" in err
    expected = source_tables(str(GPU))
    doc = json.loads((out / "schema.json").read_text())
    assert set(doc["tables"]) == set(TABLES)
    for name in TABLES:
        back = pq.read_table(out / f"{name}.parquet")
        assert back.schema.remove_metadata().equals(expected[name].schema.remove_metadata()), name
        assert decoded(back).equals(decoded(expected[name])), name
        assert back.schema.metadata[b"xprof_core.table"] == name.encode()
        assert [c["name"] for c in doc["tables"][name]["columns"]] == back.schema.names
        described = dict(SCHEMA[name]["columns"])
        if name not in ("steps",):
            assert all(c["description"] for c in doc["tables"][name]["columns"]), name
            assert set(back.schema.names) <= set(described), name
    # A query over the Parquet files answers as one over the profile.
    con = duckdb.connect()
    n = con.sql(f"SELECT count(*) FROM read_parquet('{out / 'events.parquet'}')").fetchall()[0][0]
    assert n == xprof_core.load(GPU).num_events
    code, _, _ = cli("export", str(GPU), "--format", "parquet", "-o", str(tmp_path / "two"), "--tables", "steps,ops")
    assert code == 0 and sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "ops.parquet",
        "schema.json",
        "steps.parquet",
    ]
