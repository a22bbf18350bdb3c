"""memory_viewer against XProf 2.24.2 on every recorded HLO module, and its own consistency."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from golden_tools import golden_entries, golden_path, short

import xprof_core
from xprof_core.errors import HloModuleNotFoundError
from xprof_core.execute import run_tool
from xprof_core.tools.xla_hlo import HloModuleSet, byte_size, shape_text

from conftest import JAX_DATA, V100, need

MODULES = [
    (key, module, figures)
    for key, viewer in golden_entries("memory_viewer")
    for module, figures in viewer.items()
    if figures.get("success") and figures.get("moduleName")
]
CPU = JAX_DATA / "cpu_mlp_train.xplane.pb"
_HEAP_KEYS = {
    "instructionName": ("instruction_name", ""),
    "logicalBufferId": ("logical_buffer_id", 0),
    "shapeString": ("shape", ""),
    "groupName": ("allocation_type", ""),
    "opCode": ("op_code", ""),
    "tfOpName": ("tf_op_name", ""),
}


def test_every_module_of_every_file_is_recorded() -> None:
    assert len(MODULES) >= 130  # up to 12 modules of each of the 14 files with HLO protos
    assert len({k for k, _, _ in MODULES}) >= 13


@pytest.mark.parametrize(("key", "module", "x"), MODULES, ids=[f"{short(k)}:{m}" for k, m, _ in MODULES])
def test_equal_to_xprof(key: str, module: str, x: dict[str, Any]) -> None:
    r = run_tool("memory_viewer", need(golden_path(key)), module_name=module)
    assert r["hlo_module_name"] == x["moduleName"]
    assert r["entry_computation_name"] == x["entryComputationName"]
    # Exact doubles: both sides compute bytes / 2**20 plus the indefinite MiB.
    assert r["peak_heap_mib"] == (x["peakHeapMib"] or 0)
    assert r["peak_unpadded_heap_mib"] == (x["peakUnpaddedHeapMib"] or 0)
    assert r["peak_heap_size_position"] == (x["peakHeapSizePosition"] or 0)
    for ours, theirs in (
        ("entry_computation_parameters_mib", "entryComputationParametersMib"),
        ("non_reusable_mib", "nonReusableMib"),
        ("maybe_live_out_mib", "maybeLiveOutMib"),
        ("total_buffer_allocation_mib", "totalBufferAllocationMib"),
        ("indefinite_buffer_allocation_mib", "indefiniteBufferAllocationMib"),
    ):
        assert r[ours] == (x[theirs] or 0), ours
    heap = r["heap_sizes_mib"]
    assert len(heap) == x["heap_points"]
    assert heap[: len(x["heap_sizes_head"])] == x["heap_sizes_head"]
    assert hashlib.sha1("\n".join(repr(float(v)) for v in heap).encode()).hexdigest() == x["heap_sizes_sha1"]
    assert r["logical_buffer_spans"] == x["logical_buffer_spans"]
    assert len(r["max_heap"]) == x["max_heap_objects"]
    assert len(r["indefinite_lifetimes"]) == x["indefinite_lifetimes"]
    assert len(r["buffer_blocks"]) == x["buffer_blocks"]
    # The top buffers at the peak: same sizes in the same order, and XProf's every buffer among ours.
    ours_by_size = [r["max_heap"][i] for i in r["max_heap_by_size"]]
    mib = [o["size_bytes"] / 2**20 for o in ours_by_size[: len(x["max_heap_by_size"])]]
    assert mib == [o.get("logicalBufferSizeMib", 0) for o in x["max_heap_by_size"]]
    for o in x["max_heap_by_size"]:
        if "instructionName" not in o:  # the "small (<16384 bytes)" sum
            continue
        match = [
            b
            for b in r["max_heap"]
            if all(b[ours] == o.get(theirs, default) for theirs, (ours, default) in _HEAP_KEYS.items())
        ]
        assert match, o
        assert match[0]["unpadded_bytes"] / 2**20 == o.get("unpaddedShapeMib", 0)


@pytest.mark.parametrize(("key", "module", "x"), MODULES[::9], ids=[f"{short(k)}:{m}" for k, m, _ in MODULES[::9]])
def test_the_peak_is_what_is_live_at_it(key: str, module: str, x: dict[str, Any]) -> None:
    """Independent of XProf: the buffers listed at the peak add up to the peak heap."""
    r = run_tool("memory_viewer", need(golden_path(key)), module_name=module)
    listed = sum(o["size_bytes"] for o in r["max_heap"])
    assert listed == r["peak_heap_bytes"]
    heap = r["heap_sizes_mib"]
    if heap:  # modules without a heap trace (only indefinite buffers) have no curve
        assert max(heap) == r["peak_heap_mib"]
        # The position is the point before the event that made the peak.
        after = heap[r["peak_heap_size_position"] + 1]
        assert after == r["peak_heap_mib"] or r["peak_heap_bytes"] == r["indefinite_bytes"]


def test_tpu_padding_shows_in_unpadded_sizes() -> None:
    path = need(golden_path("../shared/data/real/openxla-xprof/xprof/convert/test_xplanes/tpu_inference_2.xplane.pb"))
    r = run_tool("memory_viewer", path, module_name="jit_f(12190760917235803885)")
    shapes = {o["shape"] for o in r["max_heap"]}
    assert any(":T(8,128)" in s for s in shapes)
    xs = xprof_core.load(path)
    modules = HloModuleSet(xs)
    m = modules.module(modules.find("jit_f(12190760917235803885)"))
    assert m is not None
    scalar = next(i for i in m.instructions.values() if i.opcode == "constant")
    assert shape_text(scalar.shape, with_layout=True) == "f32[]{:T(128)}"
    assert byte_size(scalar.shape) == 4


def test_modules_default_and_errors() -> None:
    r = run_tool("memory_viewer", need(CPU))
    assert r["module_name"] == "jit_train_step(24)"  # the largest module that is not a JAX helper
    assert r["modules"][0].startswith("jit__") and "jit_train_step(24)" in r["modules"]
    by_pid = run_tool("memory_viewer", need(CPU), program_id="24")
    assert by_pid["module_name"] == "jit_train_step(24)" and by_pid["peak_heap_mib"] == r["peak_heap_mib"]
    with pytest.raises(HloModuleNotFoundError, match="no HLO module"):
        run_tool("memory_viewer", need(CPU), module_name="jit_nope(1)")


def test_no_hlo_protos_is_an_empty_result_with_a_reason() -> None:
    r = run_tool("memory_viewer", need(V100))
    assert r["modules"] == [] and "/host:metadata" in r["reason"]
    assert "peak_heap_mib" not in r
