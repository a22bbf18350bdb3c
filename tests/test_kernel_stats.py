"""kernel_stats: against a slow protobuf oracle, against XProf's golden figures, and its edges.

The oracle walks the XSpace with protobuf's own classes: every event on a
``/device:GPU:<n>`` plane, on a line whose id is not one of XProf's derived
line ids, with a non-zero duration and a non-empty ``kernel_details`` stat
(on the event or its metadata) is one kernel launch.

Golden figures come from XProf 2.24.2 (``tests/data/xprof_golden.json``,
written by ``scripts/xprof_golden.py``): per kernel name, the occurrences,
total microseconds, op names and number of table rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.index.hlo_proto import HloModules
from xprof_core.protos import xplane_pb2
from xprof_core.tools import get_tool
from xprof_core.tools.attribution import kernel_ops
from xprof_core.tools.datatable import column_values
from xprof_core.tools.kernel_stats import (
    COLUMNS,
    KERNEL_STATS,
    TOOLS,
    is_einsum_tensor_core_eligible,
    is_kernel_using_tensor_core,
    is_op_tensor_core_eligible,
    parse_kernel_details,
    tf_op_name,
)

from conftest import JAX_DATA, REAL, ROOT, TPU, V100, need

GOLDEN_PATH = ROOT / "tests" / "data" / "xprof_golden.json"
GPU_JAX = [JAX_DATA / f"{n}.xplane.pb" for n in ("gpu_mlp_train", "gpu_mlp_train_long", "gpu_mlp_train_pytrace")]
CPU_JAX = JAX_DATA / "cpu_mlp_train.xplane.pb"
V100_OTHER = V100.with_name("34.83.195.180_6003.xplane.pb")
AMD = REAL / "amd-tracelens" / "tests" / "traces" / "mi300"
AMD_FILES = [
    AMD / "jax08_attention" / "tw003.xplane.pb",
    AMD / "jax08_elementwise" / "tw003.xplane.pb",
    AMD / "jax08_gemm" / "tw003.xplane.pb",
    AMD / "jax_conv_minimal_08" / "tw003.xplane.pb",
    AMD / "jax_conv_minimal_legacy" / "chi-mi300x-013.ord.vultr.cpe.ice.amd.com.xplane.pb",
    REAL / "amd-tracelens" / "tests" / "test_data_jax_te_fused_attn_categorization" / "934987a2fc2f.xplane.pb",
]
XPROF_COLUMN_IDS = [
    "rank",
    "kernel_name",
    "registers_per_thread",
    "shmem_bytes",
    "block_dim",
    "grid_dim",
    "occupancy_pct",
    "is_op_tensor_core_eligible",
    "is_kernel_using_tensor_core",
    "op_name",
    "occurrences",
    "total_duration_us",
    "avg_duration_us",
    "min_duration_us",
    "max_duration_us",
]
DERIVED_LINE_IDS = range(-559038737, -559038737 + 290)  # 0xdeadbeef (int32) and the derived ids after it


# ---- the slow oracle ----------------------------------------------------------------


def naive_kernels(path: Path) -> dict[str, list[tuple[int, str]]]:
    """Kernel name -> [(duration_ps, kernel_details)] of every kernel launch, via protobuf, one event at a time."""
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for plane in space.planes:
        if not re.fullmatch(r"/device:GPU:\d+", plane.name):
            continue
        stat_names = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            if line.id in DERIVED_LINE_IDS:
                continue
            for event in line.events:
                if event.duration_ps == 0:
                    continue
                md = plane.event_metadata[event.metadata_id]
                details = None
                for stat in list(md.stats) + list(event.stats):  # the event's own stat wins
                    if stat_names.get(stat.metadata_id) != "kernel_details":
                        continue
                    kind = stat.WhichOneof("value")
                    details = stat_names.get(stat.ref_value) if kind == "ref_value" else stat.str_value
                if details:
                    out[md.name].append((event.duration_ps, details))
    return out


def launch_config(details: str) -> tuple[str, str, str]:
    """(regs, grid, block) as the oracle reads them: plain ``key:value`` tokens."""
    kv = dict(tok.split(":", 1) for tok in details.split() if tok.count(":") == 1)
    return kv.get("regs", "0"), kv.get("grid", "1,1,1"), kv.get("block", "1,1,1")


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    table = result["kernel_stats"]
    ids = [c["id"] for c in table["cols"]]
    return [dict(zip(ids, (c["v"] for c in r["c"]), strict=True)) for r in table["rows"]]


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kernel name: occurrences, total µs, min/max µs, op names and row count, summed over rows."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = out.setdefault(
            r["kernel_name"],
            {"occurrences": 0, "total_us": 0.0, "rows": 0, "ops": set(), "min_us": np.inf, "max_us": 0.0},
        )
        e["occurrences"] += r["occurrences"]
        e["total_us"] += r["total_duration_us"]
        e["rows"] += 1
        e["ops"].add(r["op_name"])
        e["min_us"] = min(e["min_us"], r["min_duration_us"])
        e["max_us"] = max(e["max_us"], r["max_duration_us"])
    return out


def assert_matches_oracle(path: Path, result: dict[str, Any]) -> None:
    ours = by_name(table_rows(result))
    ref = naive_kernels(path)
    assert set(ours) == set(ref)
    for name, launches in ref.items():
        durations = [d for d, _ in launches]
        assert ours[name]["occurrences"] == len(launches), name
        assert ours[name]["total_us"] == pytest.approx(sum(durations) / 1e6, rel=1e-12, abs=1e-9), name
        assert ours[name]["min_us"] == pytest.approx(min(durations) / 1e6), name
        assert ours[name]["max_us"] == pytest.approx(max(durations) / 1e6), name
    # Launch configurations: counts per (name, regs, grid, block) agree too.
    ref_cfg: dict[tuple[str, ...], int] = defaultdict(int)
    for name, launches in ref.items():
        for _, details in launches:
            ref_cfg[(name, *launch_config(details))] += 1
    our_cfg: dict[tuple[str, ...], int] = defaultdict(int)
    for r in table_rows(result):
        our_cfg[(r["kernel_name"], str(r["registers_per_thread"]), r["grid_dim"], r["block_dim"])] += r["occurrences"]
    assert our_cfg == ref_cfg


# ---- XProf's golden figures ------------------------------------------------------------


def golden_kernel_stats(path: Path | str) -> dict[str, Any]:
    """XProf's kernel_stats summary for an input (a file or a session directory), or skip."""
    if not GOLDEN_PATH.exists():
        pytest.skip("tests/data/xprof_golden.json is absent (XProf golden figures not generated)")
    files = json.loads(GOLDEN_PATH.read_text())["files"]
    for key, entry in files.items():
        if (ROOT / key).resolve() == Path(path).resolve():
            ks = entry["tools"]["kernel_stats"]
            if not ks.get("success"):
                pytest.skip(f"XProf failed on {key}")
            return dict(ks)
    pytest.skip(f"no XProf golden figures for {path}")


def golden_name_matches(entry: dict[str, Any], name: str) -> bool:
    """Golden names over 256 characters are cut; they carry the full length and SHA-1."""
    if "name_sha1" in entry:
        return len(name) == entry["name_len"] and hashlib.sha1(name.encode()).hexdigest() == entry["name_sha1"]
    return name == entry["name"]


def graph_kernel_ops(path: Path) -> dict[str, set[str]]:
    """Kernel name -> framework op names (op_name metadata) of the HLO ops its CUDA-graph kernels belong to.

    XProf shows every kernel of a command buffer under "XlaModule" (the
    kernel's ``tf_op``); we show the op the attribution found (on purpose,
    see tools/attribution.py), so a kernel reused by several ops has a row per op.
    """
    xs = xprof_core.load(path)
    ops = kernel_ops(xs)
    modules = HloModules(xs)
    out: dict[str, set[str]] = defaultdict(set)
    inside = ops.command_buffer != ""
    names = xs.event_names(ops.rows[inside])
    for name, p, op in zip(names.tolist(), ops.program_id[inside].tolist(), ops.op[inside].tolist(), strict=True):
        ins = modules.instruction(int(p), str(op))
        assert ins is not None, (name, op)
        out[str(name)].add(ins.op_name)
    return dict(out)


def assert_matches_golden(
    result: dict[str, Any],
    golden: dict[str, Any],
    rel: float = 0.01,
    check_rows: bool = True,
    graph_ops: dict[str, set[str]] | None = None,
) -> None:
    """``graph_ops``: for kernels of CUDA graphs, the ops we give them where XProf says "XlaModule"."""
    rows = table_rows(result)
    ours = by_name(rows)
    assert len(ours) == golden["distinct_kernels"]
    if check_rows:
        assert len(rows) == golden["rows"]
    assert sum(e["occurrences"] for e in ours.values()) == golden["total_occurrences"]
    assert sum(e["total_us"] for e in ours.values()) == pytest.approx(golden["total_duration_us"], rel=rel)
    for entry in golden["top_by_total_duration"]:
        matches = [n for n in ours if golden_name_matches(entry, n)]
        assert len(matches) == 1, entry["name"]
        mine = ours[matches[0]]
        assert mine["occurrences"] == entry["occurrences"], entry["name"]
        assert mine["total_us"] == pytest.approx(entry["total_us"], rel=rel), entry["name"]
        if check_rows:
            theirs = {entry["op_name"]} if "op_name" in entry else set(entry["op_names"])
            if graph_ops is not None and theirs == {"XlaModule"} and matches[0] in graph_ops:
                theirs = graph_ops[matches[0]]
                assert mine["rows"] == len(theirs), entry["name"]
            else:
                assert mine["rows"] == entry.get("rows", 1), entry["name"]
            assert mine["ops"] == theirs


# ---- JAX on an NVIDIA H100 ---------------------------------------------------------------


@pytest.mark.parametrize("path", GPU_JAX, ids=lambda p: p.stem)
def test_jax_h100_matches_protobuf_oracle(path: Path) -> None:
    assert_matches_oracle(path, run_tool("kernel_stats", path))


@pytest.mark.parametrize("path", GPU_JAX, ids=lambda p: p.stem)
def test_jax_h100_matches_xprof(path: Path) -> None:
    graph_ops = graph_kernel_ops(path)
    assert graph_ops and all(graph_ops.values())  # every kernel of these files runs inside a CUDA graph
    assert_matches_golden(run_tool("kernel_stats", path), golden_kernel_stats(path), rel=1e-6, graph_ops=graph_ops)


def test_jax_h100_columns_and_launch_config() -> None:
    result = run_tool("kernel_stats", GPU_JAX[0])
    table = result["kernel_stats"]
    ids = [c["id"] for c in table["cols"]]
    assert ids[: len(XPROF_COLUMN_IDS)] == XPROF_COLUMN_IDS
    assert ids[len(XPROF_COLUMN_IDS) :] == ["static_shmem_bytes", "dynamic_shmem_bytes"]
    assert [c["type"] for c in table["cols"]] == [c[2] for c in COLUMNS]
    rows = {r["kernel_name"]: r for r in table_rows(result)}
    # regs:74 static_shared:0 dynamic_shared:16384 grid:256,1,1 block:128,1,1 occ_pct:37.5; tf_op "XlaModule:";
    # its op gemm_fusion_dot.3 (found in the module's schedule: hlo_op names the command buffer).
    dot3 = rows["gemm_fusion_dot_3"]
    assert (dot3["registers_per_thread"], dot3["static_shmem_bytes"], dot3["dynamic_shmem_bytes"]) == (74, 0, 16384)
    assert (dot3["shmem_bytes"], dot3["grid_dim"], dot3["block_dim"]) == (16384, "256,1,1", "128,1,1")
    assert dot3["occupancy_pct"] == 37.5
    assert dot3["op_name"] == "jit(train_step)/jvp()/dot_general"  # XProf: "XlaModule" (the CUDA graph's tf_op)
    assert dot3["occurrences"] == 20
    assert dot3["avg_duration_us"] == pytest.approx(dot3["total_duration_us"] / 20)
    assert dot3["min_duration_us"] <= dot3["avg_duration_us"] <= dot3["max_duration_us"]
    assert result["reason"] is None


def test_rows_ranked_by_total_duration() -> None:
    result = run_tool("kernel_stats", GPU_JAX[1])
    table = result["kernel_stats"]
    totals = column_values(table, "total_duration_us")
    assert totals == sorted(totals, reverse=True)
    assert column_values(table, "rank") == list(range(1, len(totals) + 1))
    assert result["num_kernels"] == len(totals) and result["num_rows_dropped"] == 0
    top3 = run_tool("kernel_stats", GPU_JAX[1], max_kernels=3)
    assert column_values(top3["kernel_stats"], "kernel_name") == column_values(table, "kernel_name")[:3]
    assert top3["num_rows_dropped"] == len(totals) - 3
    assert top3["total_occurrences"] == result["total_occurrences"]  # summaries cover every kernel


# ---- the V100 TensorFlow demo (derived lines, old kernel_details format) ------------------


def test_v100_matches_xprof_and_oracle() -> None:
    path = need(V100)
    result = run_tool("kernel_stats", path)
    assert_matches_oracle(path, result)
    assert_matches_golden(result, golden_kernel_stats(path))
    # Kernels come only from the "(Compute)" streams, not the derived "TensorFlow Ops" lines.
    xs = xprof_core.load(path)
    compute = xs.select(plane=r"^/device:GPU:\d+$", line=r"\(Compute\)$")
    assert result["total_occurrences"] == len(compute) == 1330


def test_v100_two_hosts_merge() -> None:
    paths = [need(V100), need(V100_OTHER)]
    partials = [KERNEL_STATS.map(xprof_core.load(p), {}) for p in paths]
    one = KERNEL_STATS.reduce(partials[:1], {})
    both = KERNEL_STATS.reduce(partials, {})
    one_rows, both_rows = table_rows(one), table_rows(both)
    assert len(both_rows) == len(one_rows) == 15
    key = ("kernel_name", "grid_dim", "block_dim", "registers_per_thread", "op_name")
    single = {tuple(r[k] for k in key): r for r in one_rows}
    for r in both_rows:
        s = single[tuple(r[k] for k in key)]
        assert r["occurrences"] == 2 * s["occurrences"]
        assert r["total_duration_us"] == pytest.approx(2 * s["total_duration_us"])
        assert (r["min_duration_us"], r["max_duration_us"]) == (s["min_duration_us"], s["max_duration_us"])
    assert both["total_occurrences"] == 2660
    golden = golden_kernel_stats(V100.parent)
    # XProf keeps one row per host and kernel (30 rows); merged, the per-kernel figures are the same.
    assert_matches_golden(both, golden, check_rows=False)
    per_host = KERNEL_STATS.reduce(partials, {"merge_hosts": "0"})
    assert len(table_rows(per_host)) == golden["rows"] == 30
    assert_matches_golden(per_host, golden)
    assert run_tool("kernel_stats", paths)["kernel_stats"] == both["kernel_stats"]


# ---- AMD MI300X (ROCm "(Kernel)" streams, HLO op names) --------------------------------------


@pytest.mark.parametrize("path", AMD_FILES, ids=lambda p: p.parent.name)
def test_amd_matches_xprof_and_oracle(path: Path) -> None:
    need(path)
    result = run_tool("kernel_stats", path)
    assert result["reason"] is None
    assert_matches_oracle(path, result)
    assert_matches_golden(result, golden_kernel_stats(path))


def test_amd_kernel_streams_and_matrix_cores() -> None:
    path = need(AMD_FILES[0])
    xs = xprof_core.load(path)
    assert {ln.name for p in xs.find_planes(r"^/device:GPU:\d+$") for ln in p.lines} == {
        "Stream #16(Kernel)",
        "Stream #17(Kernel)",
    }
    rows = table_rows(run_tool("kernel_stats", path))
    gemms = [r for r in rows if r["kernel_name"].startswith("Cijk_")]
    assert gemms and all(r["is_kernel_using_tensor_core"] and r["is_op_tensor_core_eligible"] for r in gemms)
    assert {r["op_name"] for r in gemms} == {"jit(matmul)/dot_general"}  # from the HLO proto's op metadata


# ---- profiles without GPU kernels -------------------------------------------------------------


@pytest.mark.parametrize("which", ["tpu", "cpu"])
def test_non_gpu_profile_is_empty_with_reason(which: str) -> None:
    path = need(TPU) if which == "tpu" else CPU_JAX
    result = run_tool("kernel_stats", path)
    assert result["kernel_stats"]["rows"] == []
    assert [c["id"] for c in result["kernel_stats"]["cols"]][: len(XPROF_COLUMN_IDS)] == XPROF_COLUMN_IDS
    assert isinstance(result["reason"], str) and "GPU" in result["reason"]
    assert ("/device:TPU" in result["reason"]) == (which == "tpu")
    assert result["total_occurrences"] == 0


def test_no_partials() -> None:
    result = KERNEL_STATS.reduce([], {})
    assert result["kernel_stats"]["rows"] == [] and result["reason"]


# ---- the tool contract -------------------------------------------------------------------------


def test_registry_and_partial() -> None:
    assert TOOLS == {"kernel_stats": KERNEL_STATS}
    assert get_tool("kernel_stats") is KERNEL_STATS
    assert (KERNEL_STATS.name, KERNEL_STATS.version) == ("kernel_stats", 2) and KERNEL_STATS.description
    xs = xprof_core.load(GPU_JAX[0])
    partial = KERNEL_STATS.map(xs, {})
    assert partial["version"] == KERNEL_STATS.version
    n = len(partial["kernel_name"])
    assert n == 18 and partial["config"].shape == (n, 9)
    for key, value in partial.items():
        assert isinstance(value, (int, str, list, np.ndarray, type(None))), key
    json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in partial.items()})
    assert KERNEL_STATS.reduce([partial], {}) == {**run_tool("kernel_stats", GPU_JAX[0]), "hosts": [None]}


def test_reduce_rejects_other_versions_and_bad_params() -> None:
    partial = KERNEL_STATS.map(xprof_core.load(GPU_JAX[0]), {})
    with pytest.raises(ValueError, match="version"):
        KERNEL_STATS.reduce([{**partial, "version": 999}], {})
    with pytest.raises(ValueError, match="max_kernels"):
        KERNEL_STATS.reduce([partial], {"max_kernels": "many"})


# ---- the parsers and heuristics ------------------------------------------------------------------


def test_parse_kernel_details() -> None:
    nvidia = "regs:74 static_shared:0 dynamic_shared:16384 grid:256,1,1 block:128,1,1 occ_pct:37.5"
    assert parse_kernel_details(nvidia) == ((74, 0, 16384, 256, 1, 1, 128, 1, 1), 37.5)
    # AMD ROCm: no regs/shared keys (XProf leaves them 0), leading space.
    amd = " grid:4,64,1 block:256,1,1 private_mem:0 group_mem:8704 occ_pct:0"
    assert parse_kernel_details(amd) == ((0, 0, 0, 4, 64, 1, 256, 1, 1), 0.0)
    # Old TensorFlow (the V100 demo): "shm" is not a key XProf reads.
    assert parse_kernel_details("regs:38 shm:0 grid:160,1,1 block:1024,1,1") == ((38, 0, 0, 160, 1, 1, 1024, 1, 1), 0.0)
    # Malformed tokens are skipped; grid/block default to 1,1,1.
    assert parse_kernel_details("regs:x grid:1,2 block:a,b,c occ_pct:? foo regs:-1\nregs:12") == (
        (12, 0, 0, 1, 1, 1, 1, 1, 1),
        0.0,
    )
    assert parse_kernel_details("") == ((0, 0, 0, 1, 1, 1, 1, 1, 1), 0.0)


@pytest.mark.parametrize(
    ("fullname", "name"),
    [
        ("XlaModule:", "XlaModule"),
        ("model/dense/MatMul:MatMul", "model/dense/MatMul"),
        ("jit(f)/dot_general:dot_general", "jit(f)/dot_general"),
        ("jit(f)/transpose:transpose[permutation=(1, 0)]", "jit(f)/transpose"),
        ("Iterator::Batch::Map:", "Iterator::Batch::Map:"),
        ("MemcpyHToD", "MemcpyHToD"),
        ("name with spaces:Not A Type", "name with spaces:Not A Type"),
    ],
)
def test_tf_op_name(fullname: str, name: str) -> None:
    assert tf_op_name(fullname) == name


def test_tensor_core_heuristics() -> None:
    assert is_kernel_using_tensor_core("volta_h884gemm_64x64_ldg8_nn", "Nvidia")
    assert is_kernel_using_tensor_core("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64", "")
    assert is_kernel_using_tensor_core("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN", "Nvidia")
    assert not is_kernel_using_tensor_core("loop_reduce_fusion", "Nvidia")
    assert is_kernel_using_tensor_core("Cijk_Ailk_Bljk_BBS_BH_MT256x128x32_MI16x16x16x1_SN_1LDSB1", "AMD")
    assert not is_kernel_using_tensor_core("__amd_rocclr_copyBuffer.kd", "AMD")
    assert not is_kernel_using_tensor_core("volta_h884gemm", "AMD")  # another vendor's naming
    assert is_op_tensor_core_eligible("model/dense/MatMul") and is_op_tensor_core_eligible("jit(f)/dot_general")
    assert not is_op_tensor_core_eligible("model/dense/BiasAdd") and not is_op_tensor_core_eligible("")
    assert is_einsum_tensor_core_eligible("ab,bc->ac")
    assert not is_einsum_tensor_core_eligible("ab->ba") and not is_einsum_tensor_core_eligible("")
