"""The xprof-core command line on real files: summary counts, event queries, progress."""

from __future__ import annotations

import csv
import io
import json

import pytest

from xprof_core import cli
from xprof_core.progress import ProgressBar
from xprof_core.protos import xplane_pb2

from conftest import JAX_DATA, REAL, V100, need, real_xplane_files

FILES = real_xplane_files() + sorted(JAX_DATA.glob("*.xplane.pb"))


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_summary_counts_match_protobuf(capsys, path) -> None:  # type: ignore[no-untyped-def]
    ref = xplane_pb2.XSpace.FromString(path.read_bytes())
    code, out, _ = run(capsys, "summary", str(path), "--json")
    assert code == 0
    host = json.loads(out)["hosts"][0]
    assert host["num_planes"] == len(ref.planes)
    assert host["num_lines"] == sum(len(p.lines) for p in ref.planes)
    assert host["num_events"] == sum(len(ln.events) for p in ref.planes for ln in p.lines)
    assert [p["events"] for p in host["planes"]] == [sum(len(ln.events) for ln in p.lines) for p in ref.planes]
    assert host["hostnames"] == list(ref.hostnames)
    # The table form prints the same totals.
    code, out, _ = run(capsys, "summary", str(path))
    assert code == 0
    assert f"{host['num_events']:,} events" in out


def test_summary_known_counts(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "summary", str(need(V100)), "--json")
    host = json.loads(out)["hosts"][0]
    assert (host["num_planes"], host["num_events"]) == (9, 23_128)
    # The 2020 TensorFlow profile names no device: capability stats describe it.
    assert host["devices"] == ["NVIDIA GPU (compute capability 7.0, 80 cores)"]
    assert host["active_device_planes"] == 3


def test_summary_of_a_logdir(capsys) -> None:  # type: ignore[no-untyped-def]
    logdir = need(REAL / "openxla-xprof" / "demo")
    code, out, _ = run(capsys, "summary", str(logdir), "--json")
    assert code == 0
    hosts = json.loads(out)["hosts"]
    assert sorted(h["host"] for h in hosts) == ["34.83.195.179_6003", "34.83.195.180_6003"]
    assert {h["num_events"] for h in hosts} == {23_128}


def test_summary_defaults_to_the_bundled_demo(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "summary", "--json")
    assert code == 0
    assert "bundled demo logdir" in err
    hosts = json.loads(out)["hosts"]
    devices = {d for h in hosts for d in h["devices"]}
    assert {"NVIDIA H100 80GB HBM3", "NVIDIA H200"} <= devices  # the JAX runs and the PyTorch run
    assert len(hosts) == 3


def test_summary_of_a_corrupted_file_fails_clearly(capsys) -> None:  # type: ignore[no-untyped-def]
    bad = need(REAL / "openxla-xprof" / "corrupted" / "tpu_inference_2.at-bfd424c.utf8-mangled.xplane.pb")
    code, out, _ = run(capsys, "summary", str(bad))
    assert code == 2
    assert "cannot read" in out and "byte" in out and "XSpace" in out


def test_events_jsonl_filters_and_stats(capsys) -> None:  # type: ignore[no-untyped-def]
    path = JAX_DATA / "gpu_mlp_train.xplane.pb"
    code, out, _ = run(capsys, "events", str(path), "--name", "^train$")
    assert code == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 20
    assert sorted(r["stats"]["step_num"] for r in recs) == list(range(20))
    assert all(r["plane"] == "/host:CPU" and r["name"] == "train" for r in recs)
    assert all(r["start_ms"] >= 0 for r in recs)
    # A window of the first half of the profile keeps only early steps.
    last_start = max(r["start_ms"] for r in recs)
    code, out, _ = run(capsys, "events", str(path), "--name", "^train$", "--end-ms", str(last_start / 2))
    early = [json.loads(line) for line in out.splitlines()]
    assert 0 < len(early) < 20
    assert all(r["start_ms"] < last_start / 2 for r in early)


def test_events_csv_with_limit(capsys) -> None:  # type: ignore[no-untyped-def]
    path = JAX_DATA / "gpu_mlp_train.xplane.pb"
    code, out, _ = run(
        capsys, "events", str(path), "--plane", "GPU", "--line", "Compute", "--limit", "5", "--format", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5
    for r in rows:
        stats = json.loads(r["stats"])
        assert "kernel_details" in stats and "correlation_id" in stats
        assert r["plane"] == "/device:GPU:0"
        assert int(r["duration_ps"]) > 0


def test_missing_file_is_a_clear_error(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "events", str(tmp_path / "nope.xplane.pb"))
    assert code == 1
    assert "nope.xplane.pb" in err


def test_progress_bar_draws_only_after_the_delay() -> None:
    quick = io.StringIO()
    bar = ProgressBar("reading", stream=quick, enabled=True, delay_s=10.0)
    bar(50, 100)
    bar(100, 100)
    assert quick.getvalue() == ""
    slow = io.StringIO()
    bar = ProgressBar("reading", stream=slow, enabled=True, delay_s=0.0)
    bar(50, 100)
    bar(100, 100)
    text = slow.getvalue()
    assert "50.0%" in text and "100.0%" in text and text.endswith("\n")


def test_cli_progress_flag_draws_on_stderr(capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "--progress", "summary", str(JAX_DATA / "cpu_mlp_train.xplane.pb"))
    assert code == 0
    assert "reading cpu_mlp_train" in err and "100.0%" in err


def test_convert_writes_tool_json(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = JAX_DATA / "cpu_mlp_train.xplane.pb"
    code, out, _ = run(capsys, "convert", str(path), "--tool", "overview_page")
    assert code == 0
    page = json.loads(out)
    assert page["steps"]["count"] == 12 and page["step_name"] == "train"
    target = tmp_path / "overview.json.gz"
    code, _, err = run(capsys, "convert", str(path), "--tool", "overview_page", "-o", str(target))
    assert code == 0 and str(target) in err
    import gzip

    assert json.loads(gzip.decompress(target.read_bytes()))["steps"] == page["steps"]


def test_convert_csv_of_a_logdir_run(capsys) -> None:  # type: ignore[no-untyped-def]
    logdir = need(REAL / "openxla-xprof" / "demo")
    code, out, _ = run(
        capsys,
        "convert",
        str(logdir),
        "--run",
        "GPU-multi-worker",
        "--tool",
        "input_pipeline_analyzer",
        "--format",
        "csv",
    )
    assert code == 0
    assert out.startswith("# step_table\nStep,Step time (ms)")
    assert "Iterator::Prefetch" in out


def test_convert_unknown_tool_lists_valid_ones(capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "convert", str(JAX_DATA / "cpu_mlp_train.xplane.pb"), "--tool", "nope")
    assert code == 1
    assert "unknown tool 'nope'" in err and "overview_page" in err


def test_convert_indexes_a_huge_host_in_shards_with_progress(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Past --shard_mb a table tool's host is indexed in shards on --workers processes, with a bar of shard
    tasks; the answer is the one-pass answer."""
    from xprof_core.execute import INDEX_CACHE

    path = tmp_path / "host.xplane.pb"
    path.write_bytes((JAX_DATA / "gpu_mlp_train_long.xplane.pb").read_bytes())
    INDEX_CACHE.clear()
    code, whole, _ = run(capsys, "convert", str(path), "--tool", "framework_op_stats", "--shard_mb", "0")
    assert code == 0
    INDEX_CACHE.clear()
    argv = ["--progress", "convert", str(path), "--tool", "framework_op_stats", "--shard_mb", "0.03", "--workers", "2"]
    code, sharded, err = run(capsys, *argv)
    assert code == 0
    assert json.loads(sharded) == json.loads(whole)
    assert "indexing host in shards" in err and "100.0%" in err
    INDEX_CACHE.clear()
