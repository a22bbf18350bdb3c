"""roofline_model: device peaks and per-op FLOPs, bytes and intensity against XProf 2.24.2; where XProf
reports nothing, against naive figures from the HLO shapes."""

from __future__ import annotations

from typing import Any

import pytest
from golden_tools import golden_entries, golden_path, short

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.tools.device_peaks import DEVICE_PEAKS, device_peaks, table_peaks
from xprof_core.tools.hlo_cost import ELEMENTWISE, TRANSCENDENTAL
from xprof_core.tools.xla_hlo import HloModuleSet, num_elements

from conftest import JAX_DATA, TPU, V100, need

ENTRIES = [(k, f) for k, f in golden_entries("roofline_model") if f.get("records")]
# Files where XProf places ops (not just an empty Program row).
OP_ENTRIES = [(k, f) for k, f in ENTRIES if len(f["records"]) > 1]
H200_CMDBUF = "../shared/data/h200/jax_dev_cmdbuf.xplane.pb.gz"
H200 = "../shared/data/h200/jax_dev_nocmdbuf.xplane.pb.gz"
AMD_GEMM = "../shared/data/real/amd-tracelens/tests/traces/mi300/jax08_gemm/tw003.xplane.pb"
AMD_ATTENTION = "../shared/data/real/amd-tracelens/tests/traces/mi300/jax08_attention/tw003.xplane.pb"
GIB = 2**30


def rows_of(r: dict[str, Any]) -> list[dict[str, Any]]:
    t = r["roofline"]
    ids = [c["id"] for c in t["cols"]]
    return [dict(zip(ids, (c["v"] for c in row["c"]), strict=True)) for row in t["rows"]]


def xprof_per_op(rec: dict[str, Any]) -> tuple[float, float]:
    """XProf's FLOPs and bytes of a record (its rates times its time)."""
    t = rec["total_time"] or 0.0
    return (rec["measured_flop_rate"] or 0.0) * t * 1e3, (rec["measured_memory_bw"] or 0.0) * GIB * t * 1e-6


def has_elementwise(module: Any, ins: Any) -> bool:
    """Whether an op (or its fused computation) holds elementwise or reduce ops, whose GPU FLOPs XProf takes
    from XLA's per-GPU cycle tables."""
    stack, seen = [ins], set()
    while stack:
        x = stack.pop()
        if x.opcode in ELEMENTWISE or x.opcode in TRANSCENDENTAL or x.opcode in ("reduce", "reduce-window"):
            return True
        for cid in x.called_computation_ids:
            if cid not in seen:
                seen.add(cid)
                stack.extend(module.computations[cid].instructions)
    return False


@pytest.mark.parametrize(("key", "xprof"), ENTRIES, ids=[short(k) for k, _ in ENTRIES])
def test_peaks_equal_xprof(key: str, xprof: dict[str, Any]) -> None:
    r = run_tool("roofline_model", need(golden_path(key)))
    props = xprof["properties"]
    d = r["device"]
    if float(props["peak_flop_rate"]):
        assert d["peak_gflops_per_s"] == pytest.approx(float(props["peak_flop_rate"]), rel=1e-5)
    assert d["peak_hbm_gib_per_s"] == pytest.approx(float(props["peak_hbm_bw"]), rel=1e-5)


def test_v100_peak_where_xprof_reports_zero() -> None:
    """The 2020 TensorFlow planes name no device vendor: XProf's peak FLOP rate is 0; ours is the V100's
    80 SMs x 1.53 GHz x 1024 dense FP16 FLOPs per SM per cycle (Volta whitepaper), i.e. 125.3 TFLOP/s."""
    xprof = dict(golden_entries("roofline_model"))[
        "../shared/data/real/openxla-xprof/demo/plugins/profile/GPU-multi-worker/34.83.195.179_6003.xplane.pb"
    ]
    assert float(xprof["properties"]["peak_flop_rate"]) == 0
    d = run_tool("roofline_model", need(V100))["device"]
    assert d["peak_gflops_per_s"] == pytest.approx(80 * 1.53 * 1024)
    assert d["peak_hbm_gib_per_s"] == pytest.approx(898048000000 / GIB)


@pytest.mark.parametrize(("key", "xprof"), OP_ENTRIES, ids=[short(k) for k, _ in OP_ENTRIES])
def test_per_op_flops_bytes_and_intensity(key: str, xprof: dict[str, Any]) -> None:
    """Per occurrence (the occurrence counts are hlo_stats' figures, compared there)."""
    path = need(golden_path(key))
    ours = {(r["program_id"], r["operation"]): r for r in rows_of(run_tool("roofline_model", path, max_rows=0))}
    xs = xprof_core.load(path)
    modules = HloModuleSet(xs)
    by_program = {str(e.program_id): e for e in modules}
    compared = 0
    for rec in xprof["records"]:
        if rec["operation"] == "Program" or not rec["total_time"]:
            continue
        r = ours[(rec["hlo_module_id"], rec["operation"])]
        flops, nbytes = (v / rec["occurrences"] for v in xprof_per_op(rec))
        our_flops, our_bytes = r["flops"] / r["occurrences"], r["bytes_accessed"] / r["occurrences"]
        if r["cost_source"] == "profile":  # TPU: XLA's own figures, so everything agrees
            assert our_flops == pytest.approx(flops, rel=1e-6, abs=1)
            assert our_bytes == pytest.approx(nbytes, rel=1e-6, abs=1)
            assert r["operational_intensity"] == pytest.approx(rec["operational_intensity"] or 0.0, rel=1e-9)
            compared += 1
            continue
        if nbytes == 0:  # XProf found no cost (custom calls it does not model): checked below
            continue
        entry = by_program[rec["hlo_module_id"]]
        module = modules.module(entry)
        ins = module.by_name[rec["operation"]]
        if "scatter" in ins.name:
            # XProf's GPU model counts a scatter's in-place operand once; we read and write it.
            assert our_bytes > nbytes
            continue
        assert our_bytes == pytest.approx(nbytes, rel=1e-6, abs=1), rec["operation"]
        compared += 1
        if not has_elementwise(module, ins):
            assert our_flops == pytest.approx(flops, rel=1e-6, abs=1), rec["operation"]
            if our_bytes:
                assert r["operational_intensity"] == pytest.approx(rec["operational_intensity"] or 0.0, rel=1e-5)
    assert compared


def test_elementwise_flops_differ_from_xprofs_gpu_cycle_tables() -> None:
    """XProf's GPU FLOPs of elementwise ops come from XLA's per-GPU cycle tables (a convert counts 3 FLOPs per
    element); ours count one FLOP per element and transcendental ops apart, as XLA's generic cost analysis
    does. The bytes agree."""
    xprof = dict(golden_entries("roofline_model"))[AMD_ATTENTION]
    rec = next(r for r in xprof["records"] if r["operation"] == "wrapped_convert")
    flops, nbytes = xprof_per_op(rec)
    r = next(
        x
        for x in rows_of(run_tool("roofline_model", need(golden_path(AMD_ATTENTION)), max_rows=0))
        if x["operation"] == "wrapped_convert"
    )
    assert flops == pytest.approx(3 * rec["occurrences"] * r["flops"] / r["occurrences"], rel=1e-6)
    assert r["bytes_accessed"] == pytest.approx(nbytes, rel=1e-9)


def _gemm_flops(module: Any, ins: Any) -> float:
    """Naive: 2 x M x N x K of a GEMM from its shapes (lhs [.., M, K] or [.., K, M], result [.., M, N])."""
    out = ins.shape.tuple_shapes[0] if ins.shape.tuple_shapes else ins.shape
    lhs = module.operands(ins)[0].shape
    m_n = num_elements(out)
    n = int(out.dimensions[-1])
    k = num_elements(lhs) * n // m_n  # the lhs holds M x K elements, the output M x N
    return 2.0 * m_n * k


def test_gemm_custom_calls_where_xprof_reports_nothing() -> None:
    """hipBLASLt GEMMs: XProf gives 0 FLOPs and 0 bytes; ours match 2 x M x N x K from the shapes."""
    path = need(golden_path(AMD_GEMM))
    xprof = dict(golden_entries("roofline_model"))[AMD_GEMM]
    calls = [r for r in xprof["records"] if r["category"] == "custom-call"]
    assert calls and all(xprof_per_op(r) == (0.0, 0.0) and r["bound_by"] == "Unknown" for r in calls)
    modules = HloModuleSet(xprof_core.load(path))
    by_program = {str(e.program_id): e for e in modules}
    for r in rows_of(run_tool("roofline_model", path, max_rows=0)):
        if r["category"] != "custom-call":
            continue
        module = modules.module(by_program[r["program_id"]])
        ins = module.by_name[r["operation"]]
        assert r["flops"] == _gemm_flops(module, ins) * r["occurrences"]
        assert r["cost_source"] == "cost model" and r["bound_by"] in ("Compute", "HBM")


@pytest.mark.parametrize("key", ["tests/data/jax/gpu_mlp_train.xplane.pb", H200_CMDBUF])
def test_command_buffer_profiles_where_xprof_is_empty(key: str) -> None:
    """Kernels in CUDA graphs name the command buffer, not their HLO op: XProf's roofline is one empty
    Program row. Ours places every op; a GEMM fusion's FLOPs are its dot's 2 x M x N x K."""
    xprof = dict(golden_entries("roofline_model"))[key]
    assert xprof["rows"] == 1 and xprof_per_op(xprof["records"][0]) == (0.0, 0.0)
    path = need(golden_path(key))
    rows = rows_of(run_tool("roofline_model", path, max_rows=0))
    assert len(rows) > 10 and rows[0]["operation"] == "Program" and rows[0]["flops"] > 0
    modules = HloModuleSet(xprof_core.load(path))
    by_program = {str(e.program_id): e for e in modules}
    gemms = [r for r in rows if r["operation"].startswith("gemm_fusion_dot")]
    assert gemms
    for r in gemms:
        module = modules.module(by_program[r["program_id"]])
        comp = module.computations[module.by_name[r["operation"]].called_computation_ids[0]]
        expected = 0.0  # naive: 2 x M x N x K per dot, one per element for the epilogue's elementwise ops
        for ins in comp.instructions:
            if ins.opcode == "dot":
                lhs = module.operands(ins)[0].shape
                k = 1
                for d in ins.dot_dimension_numbers.lhs_contracting_dimensions:
                    k *= int(lhs.dimensions[d])
                expected += 2.0 * num_elements(ins.shape) * k
            elif ins.opcode in ELEMENTWISE:
                expected += num_elements(ins.shape)
        assert expected > 0 and r["flops"] == expected * r["occurrences"], r["operation"]


def test_cpu_profile_has_ops_but_no_roofs() -> None:
    xprof = dict(golden_entries("roofline_model")).get("tests/data/jax/cpu_mlp_train.xplane.pb", {})
    assert xprof.get("rows", 0) == 0  # XProf: nothing for a CPU-only profile
    r = run_tool("roofline_model", need(JAX_DATA / "cpu_mlp_train.xplane.pb"))
    assert r["device"]["kind"] == "CPU" and "no peak FLOP rate" in r["reason"]
    rows = rows_of(r)
    assert len(rows) > 10 and all(x["bound_by"] == "Unknown" for x in rows)
    assert any(x["flops"] > 0 and x["operational_intensity"] > 0 for x in rows[1:])


TPU_KEY = "../shared/data/real/openxla-xprof/xprof/convert/test_xplanes/tpu_inference_2.xplane.pb"


@pytest.mark.parametrize("key", [H200, AMD_GEMM, TPU_KEY], ids=short)
def test_bound_by_is_the_most_utilized_resource(key: str) -> None:
    path = need(golden_path(key))
    r = run_tool("roofline_model", path)
    peak, bw = r["device"]["peak_gflops_per_s"], r["device"]["peak_hbm_gib_per_s"]
    for row in rows_of(r):
        compute = row["measured_flop_rate"] / peak
        memory = row["measured_memory_bw"] / bw
        if row["flops"] == 0 and row["bytes_accessed"] == 0:
            assert row["bound_by"] == "Unknown"
            continue
        assert row["bound_by"] == ("Compute" if compute > memory else "HBM")
        assert row["roofline_efficiency"] == pytest.approx(100 * max(compute, memory))
        intensity = row["operational_intensity"]
        roof = min(peak, intensity * bw * GIB / 1e9)
        assert row["attainable_flop_rate"] == pytest.approx(roof)


def test_device_table_and_plane_precedence() -> None:
    names = {
        "NVIDIA Tesla V100-SXM2-16GB": "V100 SXM2",
        "NVIDIA A100-SXM4-80GB": "A100 80GB",
        "NVIDIA A100-PCIE-40GB": "A100 40GB",
        "NVIDIA H100 80GB HBM3": "H100 SXM",
        "NVIDIA H100 PCIe": "H100 PCIe",
        "NVIDIA H200": "H200",
        "NVIDIA B200": "B200",
        "AMD Instinct MI300X": "MI300X",
        "AMD Instinct MI355X": "MI355X",
        "TPU v4": "TPU v4",
        "TPU v5 lite": "TPU v5e",
        "TPU v5e": "TPU v5e",
        "TPU v5": "TPU v5p",
        "TPU v5p": "TPU v5p",
        "TPU v6 Lite": "TPU v6e",
    }
    for name, kind in names.items():
        found = table_peaks(name)
        assert found is not None and found.name == kind, name
    assert {k.name for k in DEVICE_PEAKS} >= set(names.values())
    # A plane's own description beats the table: the H200 plane's 132 SMs x 1.98 GHz, not the datasheet's 989.
    d = device_peaks(xprof_core.load(need(golden_path(H200))))
    assert d.source == "plane clock x cores" and d.peak_gflops == pytest.approx(132 * 1.98 * 4096)
    assert d.peak_hbm_gib_per_s == pytest.approx(4814304000000 / GIB)
    tpu = device_peaks(xprof_core.load(need(TPU)))
    assert tpu.source == "plane peaks" and tpu.peak_gflops == 918_000
