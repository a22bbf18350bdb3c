"""framework_op_stats, hlo_stats and op_profile on real profiles.

Each tool is checked three ways:

* against slow naive oracles written here in plain Python over the protobuf
  messages (``xplane_pb2``): per-op occurrences and total durations, self
  times through an explicit stack per line;
* for internal consistency (self times against the union of a line, shares
  summing to 100 %, the op_profile tree against the table);
* against the figures XProf 2.24.2 computed on the same files
  (``tests/data/xprof_golden.json``): top ops, occurrences exact, times within
  1 %. Where we differ from XProf on purpose, the test asserts our values and
  says why.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.index.hlo_proto import HloModules
from xprof_core.model.xspace import XSpace
from xprof_core.protos import xplane_pb2
from xprof_core.serve.partials import decode_partial, encode_partial
from xprof_core.tools import get_tool
from xprof_core.tools.attribution import kernel_ops
from xprof_core.tools.op_stats import (
    category_from_name,
    category_from_opcode,
    map_op_stats,
    nesting_parents,
    parse_framework_op,
    self_times,
)

from conftest import JAX_DATA, REAL, TPU, V100, need

GPU_JAX = JAX_DATA / "gpu_mlp_train.xplane.pb"
CPU_JAX = JAX_DATA / "cpu_mlp_train.xplane.pb"
V100_OTHER = V100.parent / "34.83.195.180_6003.xplane.pb"
AMD = REAL / "amd-tracelens" / "tests"
AMD_FILES = [
    AMD / "test_data_jax_te_fused_attn_categorization" / "934987a2fc2f.xplane.pb",
    AMD / "traces" / "mi300" / "jax08_attention" / "tw003.xplane.pb",
    AMD / "traces" / "mi300" / "jax08_gemm" / "tw003.xplane.pb",
    AMD / "traces" / "mi300" / "jax_conv_minimal_legacy" / "chi-mi300x-013.ord.vultr.cpe.ice.amd.com.xplane.pb",
]
ROOT = Path(__file__).resolve().parent.parent
GOLDEN_PATH = ROOT / "tests" / "data" / "xprof_golden.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text())["files"] if GOLDEN_PATH.exists() else {}
PS_PER_US = 1e6


# ---- helpers -------------------------------------------------------------------------------


def golden(path: Path, tool: str) -> dict[str, Any]:
    """XProf's figures for one input, keyed as scripts/xprof_golden.py keys them; skip when absent."""
    # Not resolve(): ../shared may be a symlink to a folder elsewhere; the golden keys name it as ../shared.
    absolute = Path(os.path.abspath(path))
    try:
        key = str(absolute.relative_to(ROOT))
    except ValueError:
        key = "../" + str(absolute.relative_to(ROOT.parent))
    entry: dict[str, Any] | None = GOLDEN.get(key, {}).get("tools", {}).get(tool)
    if not entry or not entry.get("success"):
        pytest.skip(f"no XProf golden figures for {tool} on {key}")
    return entry


def table_rows(result: dict[str, Any], key: str) -> list[dict[str, Any]]:
    table = result[key]
    ids = [c["id"] for c in table["cols"]]
    return [dict(zip(ids, [c["v"] for c in r["c"]], strict=True)) for r in table["rows"]]


def within(ours: float, theirs: float, rel: float = 0.01) -> bool:
    return abs(ours - theirs) <= rel * abs(theirs) + 1e-3  # golden times are rounded to 1e-3 µs


def partial_rows(partial: dict[str, Any], which: str) -> list[dict[str, Any]]:
    """One dict per op of a map partial's table (``hlo`` or ``framework``)."""
    table = partial[which]
    n = len(table["occurrences"])
    return [{k: (v[i].item() if isinstance(v, np.ndarray) else v[i]) for k, v in table.items()} for i in range(n)]


# ---- the naive oracle: plain Python over the protobuf messages ------------------------------


class Space:
    """An XSpace parsed by protobuf, with stat lookup that falls back to the event metadata."""

    def __init__(self, path: Path) -> None:
        self.space = xplane_pb2.XSpace.FromString(path.read_bytes())

    @staticmethod
    def value(plane: Any, stat: Any) -> Any:
        kind = stat.WhichOneof("value")
        if kind is None:
            return None
        if kind == "ref_value":
            return plane.stat_metadata[stat.ref_value].name
        return getattr(stat, kind)

    def stats(self, plane: Any, event: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        md = plane.event_metadata.get(event.metadata_id)
        if md is not None:
            for s in md.stats:
                out[plane.stat_metadata[s.metadata_id].name] = self.value(plane, s)
        for s in event.stats:
            out[plane.stat_metadata[s.metadata_id].name] = self.value(plane, s)
        return out

    def events(self, plane_rx: str, line_rx: str) -> Iterator[tuple[Any, Any, int, Any]]:
        """(plane, line, line number, event) of timed events on matching planes and lines, in file order."""
        number = 0
        for plane in self.space.planes:
            for line in plane.lines:
                number += 1
                if not re.search(plane_rx, plane.name) or not re.search(line_rx, line.name):
                    continue
                for event in line.events:
                    if event.WhichOneof("data") != "num_occurrences":
                        yield plane, line, number, event


def naive_self_times(spans: list[tuple[int, int, int]]) -> list[int]:
    """Self time of each (line, start, end) span: an explicit ancestor stack per line."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1], -spans[i][2], i))
    children = [0] * len(spans)
    stack: list[int] = []
    line = None
    for i in order:
        ln, _, end = spans[i]
        if ln != line:
            stack, line = [], ln
        while stack and spans[stack[-1]][2] < end:
            stack.pop()
        if stack:
            children[stack[-1]] += end - spans[i][1]
        stack.append(i)
    return [max(e - s - c, 0) for (_, s, e), c in zip(spans, children, strict=True)]


def naive_union(spans: list[tuple[int, int]]) -> int:
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def oracle_tpu(path: Path) -> dict[tuple[str, str], list[int]]:
    """(program id, op) -> [occurrences, total ps, self ps] over the TPU ``XLA Ops`` lines."""
    sp = Space(path)
    spans, keys = [], []
    for plane, line, number, ev in sp.events(r"^/device:TPU", r"^XLA Ops$"):
        st = sp.stats(plane, ev)
        start = line.timestamp_ns * 1000 + ev.offset_ps
        dur = ev.duration_ps
        if "device_offset_ps" in st and "device_duration_ps" in st:
            start, dur = st["device_offset_ps"], st["device_duration_ps"]
        md = plane.event_metadata[ev.metadata_id]
        spans.append((number, start, start + dur))
        keys.append(None if st.get("symbol_id") == 0 else (str(st["program_id"]), md.display_name or md.name))
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, (_, s, e), self_ps in zip(keys, spans, naive_self_times(spans), strict=True):
        if key is not None:
            acc = out[key]
            acc[0] += 1
            acc[1] += e - s
            acc[2] += self_ps
    return dict(out)


def oracle_kernels(path: Path) -> dict[str, list[int]]:
    """Sanitized kernel name -> [kernels, total ps] of GPU kernels that carry hlo_op (no group_id here)."""
    sp = Space(path)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for plane, _, _, ev in sp.events(r"^/device:GPU", r"^Stream #"):
        if sp.stats(plane, ev).get("hlo_op"):
            acc = out[plane.event_metadata[ev.metadata_id].name.replace(".", "_").replace("-", "_")]
            acc[0] += 1
            acc[1] += ev.duration_ps
    return dict(out)


def oracle_host_xla(path: Path) -> dict[tuple[str, str], list[int]]:
    """(program id, hlo_op) -> [occurrences, total ps, self ps] of host events carrying hlo_op."""
    sp = Space(path)
    spans, keys = [], []
    for plane, line, number, ev in sp.events(r"^/host:CPU", r""):
        st = sp.stats(plane, ev)
        if st.get("hlo_op"):
            start = line.timestamp_ns * 1000 + ev.offset_ps
            spans.append((number, start, start + ev.duration_ps))
            keys.append((str(st["program_id"]), st["hlo_op"]))
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, (_, s, e), self_ps in zip(keys, spans, naive_self_times(spans), strict=True):
        out[key][0] += 1
        out[key][1] += e - s
        out[key][2] += self_ps
    return dict(out)


_NAIVE_TF = re.compile(r"^([A-Za-z0-9.][A-Za-z0-9_./>-]*):([A-Z_][A-Za-z0-9_]*)$")


def oracle_tf_ops(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(device ops from TensorFlow Ops lines, host TF ops) -> name -> [occurrences, total ps, self ps].

    Host ops are events named ``name:Type`` or ``Iterator::...``, or carrying a
    ``tf_op`` stat; self time by an explicit stack among them per thread.
    """
    sp = Space(path)
    device: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for plane, _, _, ev in sp.events(r"^/device:GPU", r"^TensorFlow Ops$"):
        name = plane.event_metadata[ev.metadata_id].name
        acc = device[name.split(":")[0] if ":" in name else name]
        acc[0] += 1
        acc[1] += ev.duration_ps
        acc[2] += ev.duration_ps
    spans, names = [], []
    for plane, line, number, ev in sp.events(r"^/host:CPU", r""):
        tf_op = sp.stats(plane, ev).get("tf_op")
        full = tf_op or plane.event_metadata[ev.metadata_id].name
        m = _NAIVE_TF.match(full)
        # An event with a tf_op stat is an op whatever the stat says (XProf); a name must be "name:Type".
        name = full if full.startswith("Iterator::") else m.group(1) if m else tf_op or None
        if name is not None:
            start = line.timestamp_ns * 1000 + ev.offset_ps
            spans.append((number, start, start + ev.duration_ps))
            names.append(name)
    host: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name, (_, s, e), self_ps in zip(names, spans, naive_self_times(spans), strict=True):
        host[name][0] += 1
        host[name][1] += e - s
        host[name][2] += self_ps
    return dict(device), dict(host)


# ---- unit pieces ---------------------------------------------------------------------------


def test_parse_framework_op_follows_xprof() -> None:
    assert parse_framework_op("model/dense/MatMul_1:MatMul") == ("model/dense/MatMul_1", "MatMul", "tensorflow")
    assert parse_framework_op("jit(f)/jit(main)/add:")[:2] == ("jit(f)/jit(main)/add", "add")
    assert parse_framework_op("jit(f)/transpose:transpose[permutation=(1, 0)]")[1] == "transpose"
    assert parse_framework_op("Iterator::Prefetch::Generator")[:2] == ("Iterator::Prefetch::Generator", "Dataset")
    assert parse_framework_op("MemcpyHToD").kind == "memcpy"
    assert parse_framework_op("XlaModule:")[:2] == ("XlaModule", "XlaModule")
    assert parse_framework_op("ThenExecuteCallback:GetEventForComputeStreamSyncPoint").kind == "tensorflow"
    assert parse_framework_op("LocalDeviceState::WaitFor").kind == "unknown"
    assert parse_framework_op("aten::addmm") == ("aten::addmm", "addmm", "pytorch")
    assert parse_framework_op("command_buffer::execute").kind == "unknown"  # an XLA runtime scope
    assert parse_framework_op("autograd::engine::evaluate_function: MmBackward0").kind == "unknown"
    assert parse_framework_op("dummy") == ("dummy", "", "unknown")


def test_categories() -> None:
    assert category_from_opcode("fusion", "kLoop") == "loop fusion"
    assert category_from_opcode("fusion", "kCustom") == "custom fusion"
    assert category_from_opcode("copy") == "data formatting"
    assert category_from_opcode("multiply") == "non-fusion elementwise"
    assert category_from_opcode("convolution") == "convolution"
    assert category_from_name("loop_convert_fusion.2") == "loop fusion"
    assert category_from_name("input_reduce_fusion") == "input fusion"
    assert category_from_name("wrapped_broadcast") == "loop fusion"
    assert category_from_name("copy.1") == "data formatting"
    assert category_from_name("cudnn-conv.1.0") == "custom-call"
    assert category_from_name("all-reduce.3") == "all-reduce"


def test_nesting_matches_explicit_stack() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        start = rng.integers(0, 200, n)
        end = start + rng.integers(0, 60, n)
        line = rng.integers(0, 3, n)
        spans = list(zip(line.tolist(), start.tolist(), end.tolist(), strict=True))
        assert self_times(start, end - start, line).tolist() == naive_self_times(spans)
        parent = nesting_parents(start, end, line)
        for i, p in enumerate(parent.tolist()):  # a parent encloses its child on the same line
            if p >= 0:
                assert line[p] == line[i] and start[p] <= start[i] and end[i] <= end[p]


def test_nesting_is_not_a_loop_per_event() -> None:
    # One long parent over 200k siblings: pointer jumping needs ~log2(n) rounds.
    n = 200_000
    start = np.arange(n, dtype=np.int64) * 10
    end = start + 5
    end[0] = 10 * n
    parent = nesting_parents(start, end, np.zeros(n, dtype=np.int64))
    assert parent[0] == -1 and (parent[1:] == 0).all()


# ---- TPU: XLA Ops lines --------------------------------------------------------------------


def test_tpu_hlo_ops_match_oracle() -> None:
    path = need(TPU)
    expect = oracle_tpu(path)
    got = {(r["program_id"], r["name"]): r for r in partial_rows(map_op_stats(xprof_core.load(str(path))), "hlo")}
    assert set(got) == set(expect)
    for key, (occ, total, self_ps) in expect.items():
        row = got[key]
        assert (row["occurrences"], row["total_ps"], row["self_ps"]) == (occ, total, self_ps), key
        assert row["where"] == "Device"


def test_tpu_self_time_sums_to_line_coverage() -> None:
    # On a properly nested line, the self times tile the union of the line's spans.
    xs = xprof_core.load(str(need(TPU)))
    checked = 0
    for plane in xs.find_planes(r"^/device:TPU"):
        for line in plane.lines:
            if line.name != "XLA Ops" or not len(line):
                continue
            rows = line.rows
            start, dur = xs.start_ps[rows], xs.duration_ps[rows]
            parent = nesting_parents(start, start + dur, np.zeros(len(rows), dtype=np.int64))
            has = parent >= 0
            assert (start[has] + dur[has] <= start[parent[has]] + dur[parent[has]]).all()
            spans = list(zip(start.tolist(), (start + dur).tolist(), strict=True))
            assert int(self_times(start, dur, np.zeros(len(rows), dtype=np.int64)).sum()) == naive_union(spans)
            checked += 1
    assert checked == 4


def test_tpu_tables_against_xprof() -> None:
    path = need(TPU)
    for tool, key, fields in (
        ("hlo_stats", "hlo_stats", ("program_id", "hlo_op_name")),
        ("framework_op_stats", "framework_op_stats", ("host_or_device", "operation")),
    ):
        g = golden(path, tool)
        ours = {tuple(r[f] for f in fields): r for r in table_rows(run_tool(tool, str(path)), key)}
        summary = g["without_idle"] if tool == "framework_op_stats" else g
        top = summary["top_by_total_self_time"]
        assert top
        for e in top:
            r = ours[
                tuple(
                    str(e[f])
                    for f in (
                        ("host_or_device", "operation")
                        if tool == "framework_op_stats"
                        else ("program_id", "hlo_op_name")
                    )
                )
            ]
            assert r["occurrences"] == e["occurrences"]
            assert within(r["total_time"], e["total_time_us"]) and within(r["total_self_time"], e["total_self_time_us"])
            if tool == "hlo_stats":
                assert (r["category"], r["tf_op_name"]) == (e["category"], e["tf_op_name"])
            else:
                assert r["type"] == e["type"]
        # The whole table agrees, not only its top.
        assert len(ours) == summary["rows"]
        assert sum(r["occurrences"] for r in ours.values()) == summary["sum_occurrences"]
        assert within(sum(r["total_self_time"] for r in ours.values()), summary["sum_total_self_time_us"])


def test_tpu_shares_and_op_profile() -> None:
    path = str(need(TPU))
    result = run_tool("hlo_stats", path)
    hlo = table_rows(result, "hlo_stats")
    selfs = [r["total_self_time"] for r in hlo]
    # Shares are of XProf's total device time (each TPU's first op to its last, gaps included), as
    # XProf's own table: 21.382146% for copy-done.4 there (XProf reads TPU op times on the device clock,
    # 363,729,698.77 µs in all; the lines' own clock gives 363,735,188.78 µs), and the ops add up to
    # the busy part.
    device_us = result["hlo_stats"]["p"]["total_device_time_us"]
    assert device_us == pytest.approx(363_735_188.777422)
    assert hlo[0]["hlo_op_name"] == "copy-done.4"
    assert hlo[0]["total_self_time_percent"] == pytest.approx(21.382146136132867, abs=1e-3)
    assert sum(r["total_self_time_percent"] for r in hlo) == pytest.approx(100.0 * sum(selfs) / device_us)
    assert hlo[-1]["cumulative_total_self_time_percent"] == pytest.approx(100.0 * sum(selfs) / device_us)
    assert selfs == sorted(selfs, reverse=True)
    assert hlo[0]["flops"] >= 0 and any(r["bytes_accessed"] > 0 for r in hlo)
    # FLOPs are per occurrence on the op's metadata: all-reduce carries 1342177280 per run.
    all_reduce = next(r for r in hlo if r["hlo_op_name"] == "all-reduce")
    assert all_reduce["flops"] == 1342177280 * all_reduce["occurrences"]

    profile = run_tool("op_profile", path)
    root = profile["byCategory"]
    assert profile["deviceType"] == "TPU" and profile["reason"] is None
    assert root["metrics"]["rawTime"] == pytest.approx(sum(r["total_time"] for r in hlo) * PS_PER_US)
    assert sum(c["metrics"]["time"] for c in root["children"]) == pytest.approx(1.0)
    cats = {c["name"]: c for c in root["children"]}
    assert set(cats) == {r["category"] for r in hlo}
    copy_done = cats["copy-done"]
    assert copy_done["numChildren"] == sum(r["category"] == "copy-done" for r in hlo)
    assert copy_done["metrics"]["occurrences"] == sum(r["occurrences"] for r in hlo if r["category"] == "copy-done")
    assert {c["name"] for c in copy_done["children"]} == {r["hlo_op_name"] for r in hlo if r["category"] == "copy-done"}
    assert 0.0 <= root["metrics"]["flops"] <= 1.0
    assert len(profile["byProgram"]["children"]) == len({r["program_id"] for r in hlo})


# ---- GPU (JAX, H100): kernels inside CUDA graphs -----------------------------------------------


def test_gpu_jax_hlo_ops_match_oracle() -> None:
    """Kernels inside CUDA graphs, each under its own HLO op (see test_attribution.py for the rules).

    XLA reuses one kernel for identical fusions (``loop_reduce_fusion`` also
    runs ``loop_reduce_fusion.1``), so ops are not kernel names: one op per
    thunk instruction of the module's schedule, each run once per step, and
    the kernels behind the ops are exactly the file's kernels.
    """
    path = GPU_JAX
    expect = oracle_kernels(path)
    xs = xprof_core.load(str(path))
    partial = map_op_stats(xs)
    rows = {r["name"]: r for r in partial_rows(partial, "hlo")}
    schedule = HloModules(xs).entry_schedule(7956)
    assert schedule is not None
    thunks = [i.name for i in schedule if i.opcode in ("fusion", "custom-call")]
    assert sorted(rows) == sorted(thunks) and len(rows) == 21
    for r in rows.values():
        assert r["self_ps"] == r["total_ps"] and r["program_id"] == "7956" and r["hlo_module"] == "jit_train_step"
        assert r["occurrences"] == 20  # no group_id in the file: every kernel is an occurrence, as in XProf
    ops = kernel_ops(xs)
    by_kernel: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_op: dict[str, int] = defaultdict(int)
    names = xs.event_names(ops.rows)
    for op, name, dur in zip(ops.op.tolist(), names.tolist(), xs.duration_ps[ops.rows].tolist(), strict=True):
        acc = by_kernel[name.replace(".", "_").replace("-", "_")]
        acc[0] += 1
        acc[1] += dur
        by_op[op] += dur
        assert op.replace(".", "_").rstrip("_0123456789") == name.rstrip("_0123456789")  # same fusion stem
    assert dict(by_kernel) == expect
    assert {op: r["total_ps"] for op, r in rows.items()} == dict(by_op)
    assert rows["gemm_fusion_dot.3"]["category"] == "custom fusion"
    assert rows["gemm_fusion_dot.3"]["provenance"] == "jit(train_step)/jvp()/dot_general:"
    assert rows["input_reduce_fusion"]["category"] == "input fusion"


def test_gpu_jax_against_xprof() -> None:
    """XProf 2.24.2 returns no HLO ops here; we report the CUDA-graph kernels (on purpose).

    Every kernel names the command buffer (``hlo_op = command_buffer_1``), an
    instruction XProf cannot find in the module, so it drops all of them. We
    attribute each kernel to its op (the module's schedule, see
    tools/attribution.py); the total is the same kernel time that XProf's own
    kernel_stats reports.
    """
    g = golden(GPU_JAX, "hlo_stats")
    assert g["rows"] == 0
    hlo = table_rows(run_tool("hlo_stats", str(GPU_JAX)), "hlo_stats")
    kernels = golden(GPU_JAX, "kernel_stats")
    assert len(hlo) == 21
    assert sum(r["occurrences"] for r in hlo) == kernels["total_occurrences"]
    assert within(sum(r["total_time"] for r in hlo), kernels["total_duration_us"])

    fw = golden(GPU_JAX, "framework_op_stats")["without_idle"]
    ours = {
        (r["host_or_device"], r["operation"]): r
        for r in table_rows(run_tool("framework_op_stats", str(GPU_JAX)), "framework_op_stats")
    }
    for e in fw["top_by_total_self_time"]:  # XProf's one op: a host TF-op-named event
        r = ours[(e["host_or_device"], e["operation"])]
        assert (r["type"], r["occurrences"]) == (e["type"], e["occurrences"])
        assert within(r["total_time"], e["total_time_us"]) and within(r["total_self_time"], e["total_self_time_us"])
    # Our device rows are the JAX ops behind the kernels (provenance from the HLO proto).
    device = [r for (side, _), r in ours.items() if side == "Device"]
    assert {r["type"] for r in device} >= {"dot_general", "transpose", "reduce_sum"}
    assert within(sum(r["total_self_time"] for r in device), kernels["total_duration_us"])
    assert sum(r["device_total_self_time_percent"] for r in device) == pytest.approx(1.0)


# ---- CPU-only JAX: XLA on host threads ------------------------------------------------------------


def test_cpu_jax_hlo_ops_match_oracle() -> None:
    expect = oracle_host_xla(CPU_JAX)
    got = {(r["program_id"], r["name"]): r for r in partial_rows(map_op_stats(xprof_core.load(str(CPU_JAX))), "hlo")}
    assert set(got) == set(expect)
    for key, (occ, total, self_ps) in expect.items():
        assert (got[key]["occurrences"], got[key]["total_ps"], got[key]["self_ps"]) == (occ, total, self_ps), key
        assert got[key]["where"] == "Host"


def test_cpu_jax_against_xprof() -> None:
    """XProf 2.24.2 returns empty tables on CPU-only JAX; we report the XLA:CPU ops (on purpose).

    The ops run on host threads (``tf_XLAEigen/...``) and carry ``hlo_op``,
    ``hlo_module`` and ``program_id``; XProf only looks for XLA ops on device
    planes. Framework ops come from the ops' provenance in the HLO proto.
    """
    assert golden(CPU_JAX, "hlo_stats")["rows"] == 0
    assert golden(CPU_JAX, "framework_op_stats")["without_idle"]["rows"] == 0
    result = run_tool("hlo_stats", str(CPU_JAX))
    hlo = table_rows(result, "hlo_stats")
    assert result["reason"] is None and result["xla_on"] == "host"
    assert len(hlo) == 28 and sum(r["occurrences"] for r in hlo) == 336  # 28 ops x 12 steps
    assert {r["host_or_device"] for r in hlo} == {"Host"}
    assert sum(r["total_self_time_percent"] for r in hlo) == pytest.approx(100.0)
    top = hlo[0]
    assert (top["hlo_op_name"], top["category"], top["occurrences"]) == ("ynn_fusion.2", "custom fusion", 12)
    assert top["tf_op_name"] == "jit(train_step)/transpose(jvp())/dot_general:"
    fw = table_rows(run_tool("framework_op_stats", str(CPU_JAX)), "framework_op_stats")
    assert {r["host_or_device"] for r in fw} == {"Host"}
    assert within(sum(r["total_self_time"] for r in fw), sum(r["total_self_time"] for r in hlo))
    assert fw[0]["operation"] == "jit(train_step)/transpose(jvp())/dot_general" and fw[0]["type"] == "dot_general"
    assert sum(r["host_total_self_time_percent"] for r in fw) == pytest.approx(1.0)
    assert run_tool("op_profile", str(CPU_JAX))["byCategory"]["numChildren"] == len({r["category"] for r in hlo})


# ---- V100 TensorFlow GPU: no XLA, TensorFlow Ops lines ------------------------------------------


def test_v100_framework_ops_match_oracle() -> None:
    path = need(V100)
    device, host = oracle_tf_ops(path)
    got = {
        (r["host_or_device"], r["name"]): r for r in partial_rows(map_op_stats(xprof_core.load(str(path))), "framework")
    }
    assert {n for side, n in got if side == "Device"} == set(device)
    assert {n for side, n in got if side == "Host"} == set(host)
    for side, expect in (("Device", device), ("Host", host)):
        for name, (occ, total, self_ps) in expect.items():
            r = got[(side, name)]
            assert (r["occurrences"], r["total_ps"], r["self_ps"]) == (occ, total, self_ps), (side, name)


def test_v100_against_xprof() -> None:
    """Host ops agree with XProf; the device ops are ours (on purpose).

    The kernels of this TensorFlow 2 profile carry ``level 0`` annotations,
    not ``tf_op``, so XProf 2.24.2 finds no device ops; we read the device's
    derived ``TensorFlow Ops`` line. XProf keeps 500 rows per side (IDLE
    included), so the host comparison uses ``max_ops=499``.
    """
    path = need(V100)
    g = golden(path, "framework_op_stats")["without_idle"]
    rows = table_rows(run_tool("framework_op_stats", str(path), max_ops=499), "framework_op_stats")
    host = [r for r in rows if r["host_or_device"] == "Host"]
    assert len(host) == g["host_rows"] == 499
    assert sum(r["occurrences"] for r in host) == g["sum_occurrences"]
    assert within(sum(r["total_self_time"] for r in host), g["host_self_time_us"])
    ours = {r["operation"]: r for r in host}
    for e in g["top_by_total_self_time"]:
        r = ours[e["operation"]]
        assert (r["type"], r["occurrences"]) == (e["type"], e["occurrences"])
        assert within(r["total_time"], e["total_time_us"]) and within(r["total_self_time"], e["total_self_time_us"])
    device = [r for r in rows if r["host_or_device"] == "Device"]
    assert g["device_rows"] == 0 and len(device) == 499
    assert device[0]["device_cumulative_total_self_time_percent"] == device[0]["device_total_self_time_percent"]
    full = table_rows(run_tool("framework_op_stats", str(path)), "framework_op_stats")
    assert sum(r["device_total_self_time_percent"] for r in full) == pytest.approx(1.0)
    assert sum(r["host_total_self_time_percent"] for r in full) == pytest.approx(1.0)
    assert [r["rank"] for r in full] == list(range(1, len(full) + 1))


def test_v100_hlo_tools_do_not_apply() -> None:
    path = str(need(V100))
    assert golden(need(V100), "hlo_stats")["rows"] == 0
    hlo = run_tool("hlo_stats", path)
    assert hlo["hlo_stats"]["rows"] == [] and "no XLA ops" in hlo["reason"]
    assert hlo["hlo_stats"]["p"]["reason"] == hlo["reason"]
    profile = run_tool("op_profile", path)
    assert profile["byCategory"]["children"] == [] and "no XLA ops" in profile["reason"]


def test_multi_host_reduce_sums_hosts() -> None:
    one, other = need(V100), need(V100_OTHER)
    tool = get_tool("framework_op_stats")
    parts = [tool.map(xprof_core.load(str(p)), {}) for p in (one, other)]
    single = {
        (r["host_or_device"], r["operation"]): r for r in table_rows(tool.reduce(parts[:1], {}), "framework_op_stats")
    }
    both = {(r["host_or_device"], r["operation"]): r for r in table_rows(tool.reduce(parts, {}), "framework_op_stats")}
    second = {(r["host_or_device"], r["name"]): r for r in partial_rows(parts[1], "framework")}
    assert set(both) == set(single) | set(second)
    for key, r in single.items():
        # The two workers ran the same program: every op occurs twice as often.
        assert both[key]["occurrences"] == r["occurrences"] + second[key]["occurrences"] == 2 * r["occurrences"]
        assert within(both[key]["total_time"], r["total_time"] + second[key]["total_ps"] / PS_PER_US, 1e-9)
    merged = run_tool("framework_op_stats", one.parent)  # the session directory: both hosts
    assert merged["hosts"] == ["34.83.195.179_6003", "34.83.195.180_6003"]
    assert table_rows(merged, "framework_op_stats") == table_rows(tool.reduce(parts, {}), "framework_op_stats")
    g = golden(one.parent, "framework_op_stats")["without_idle"]
    host = [
        r
        for r in table_rows(run_tool("framework_op_stats", one.parent, max_ops=499), "framework_op_stats")
        if r["host_or_device"] == "Host"
    ]
    assert sum(r["occurrences"] for r in host) == g["sum_occurrences"]
    for e in g["top_by_total_self_time"]:
        r = next(r for r in host if r["operation"] == e["operation"])
        assert r["occurrences"] == e["occurrences"] and within(r["total_self_time"], e["total_self_time_us"])


# ---- AMD MI300X JAX: plain XLA kernels, HLO protos --------------------------------------------------


@pytest.mark.parametrize("path", AMD_FILES, ids=lambda p: p.parent.name)
def test_amd_gpu_against_xprof(path: Path) -> None:
    """ROCm kernels with hlo_op: the whole hlo_stats and framework_op_stats tables agree with XProf."""
    need(path)
    for tool, fields in (
        ("hlo_stats", ("program_id", "hlo_op_name")),
        ("framework_op_stats", ("host_or_device", "operation")),
    ):
        g = golden(path, tool)
        summary = g["without_idle"] if tool == "framework_op_stats" else g
        ours = {tuple(r[f] for f in fields): r for r in table_rows(run_tool(tool, str(path)), tool)}
        assert len(ours) == summary["rows"]
        assert sum(r["occurrences"] for r in ours.values()) == summary["sum_occurrences"]
        assert within(sum(r["total_self_time"] for r in ours.values()), summary["sum_total_self_time_us"])
        for e in summary["top_by_total_self_time"]:
            r = ours[tuple(str(e[f]) for f in fields)]
            assert r["occurrences"] == e["occurrences"]
            assert within(r["total_time"], e["total_time_us"]) and within(r["total_self_time"], e["total_self_time_us"])
            if tool == "hlo_stats":
                assert (r["category"], r["tf_op_name"]) == (e["category"], e["tf_op_name"])


# ---- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["framework_op_stats", "hlo_stats", "op_profile"])
@pytest.mark.parametrize("path", [GPU_JAX, CPU_JAX, V100, TPU], ids=lambda p: p.name)
def test_run_tool_never_raises(tool: str, path: Path) -> None:
    result = run_tool(tool, str(need(path)))
    assert result["hosts"] == [path.name.removesuffix(".xplane.pb")]
    json.dumps(result)  # JSON-ready
    if tool != "op_profile":
        table = result[tool]
        assert [c["id"] for c in table["cols"]][:2] == (
            ["rank", "host_or_device"] if tool == "framework_op_stats" else ["rank", "program_id"]
        )
        assert bool(table["rows"]) == (result["reason"] is None)


def test_partials_are_small_and_versioned() -> None:
    tool = get_tool("hlo_stats")
    part = tool.map(xprof_core.load(str(GPU_JAX)), {})
    assert part["version"] == tool.version
    assert len(part["hlo"]["name"]) == 21 and part["device_type"] == "GPU"
    with pytest.raises(ValueError, match="version"):
        tool.reduce([{**part, "version": -1}], {})
    assert tool.reduce([], {})["reason"] == "no hosts selected"
    # Partials travel between worker and aggregator as JSON plus read-only numpy buffers.
    for name in ("framework_op_stats", "hlo_stats", "op_profile"):
        sent = decode_partial(encode_partial(part))
        assert get_tool(name).reduce([sent, sent], {}) == get_tool(name).reduce([part, part], {})


# ---- synthetic profiles: the GPU merging rules --------------------------------------------------


def _gpu_space(
    kernels: list[tuple[str, int, int, dict[str, Any]]], steps: Sequence[tuple[int, int, int]] = ()
) -> XSpace:
    """A one-GPU XSpace: kernels (name, start ps, duration ps, stats) on one stream; host step markers."""
    space = xplane_pb2.XSpace()
    gpu = space.planes.add(id=1, name="/device:GPU:0")
    host = space.planes.add(id=2, name="/host:CPU")
    for plane in (gpu, host):
        for i, stat in enumerate(("hlo_op", "program_id", "group_id", "tf_op", "step_num", "flops"), start=1):
            plane.stat_metadata[i].id = i
            plane.stat_metadata[i].name = stat
    stat_id = {"hlo_op": 1, "program_id": 2, "group_id": 3, "tf_op": 4, "step_num": 5, "flops": 6}
    names: dict[str, int] = {}
    line = gpu.lines.add(id=1, name="Stream #7(Compute)")
    for name, start, dur, stats in kernels:
        md = names.setdefault(name, len(names) + 1)
        gpu.event_metadata[md].id = md
        gpu.event_metadata[md].name = name
        ev = line.events.add(metadata_id=md, offset_ps=start, duration_ps=dur)
        for k, v in stats.items():
            if isinstance(v, str):
                ev.stats.add(metadata_id=stat_id[k], str_value=v)
            else:
                ev.stats.add(metadata_id=stat_id[k], int64_value=v)
    host.event_metadata[1].id = 1
    host.event_metadata[1].name = "train"
    thread = host.lines.add(id=1, name="python")
    for num, start, end in steps:
        ev = thread.events.add(metadata_id=1, offset_ps=start, duration_ps=end - start)
        ev.stats.add(metadata_id=stat_id["step_num"], int64_value=num)
    return xprof_core.decode_xspace(space.SerializeToString())


def _hlo(xs: XSpace) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in partial_rows(map_op_stats(xs), "hlo")}


def test_gpu_consecutive_kernels_merge_within_a_group() -> None:
    op = {"hlo_op": "fusion.1", "program_id": 5, "flops": 100}
    xs = _gpu_space(
        [
            ("k", 0, 10, {**op, "group_id": 1}),
            ("k2", 10, 5, {**op, "group_id": 1}),
            ("k", 20, 10, {**op, "group_id": 2}),  # next step: a new occurrence
            ("other", 30, 1, {"hlo_op": "copy.2", "program_id": 5, "group_id": 2}),
            ("k", 40, 10, {**op, "group_id": 2}),
        ]
    )  # not consecutive: a new occurrence
    rows = _hlo(xs)
    assert (rows["fusion.1"]["occurrences"], rows["fusion.1"]["total_ps"], rows["fusion.1"]["min_ps"]) == (3, 35, 10)
    assert rows["fusion.1"]["flops"] == 300  # one value per occurrence, not per kernel
    assert rows["copy.2"]["category"] == "data formatting"


def test_gpu_kernels_without_group_merge_by_step_markers_or_not_at_all() -> None:
    op = {"hlo_op": "fusion.1", "program_id": 5}
    kernels = [("k", 0, 10, op), ("k", 10, 10, op), ("k", 100, 10, op), ("k", 110, 10, op)]
    assert _hlo(_gpu_space(kernels))["fusion.1"]["occurrences"] == 4  # XProf: no group, no merging
    stepped = _gpu_space(kernels, steps=[(0, 0, 50), (1, 90, 150)])
    assert _hlo(stepped)["fusion.1"]["occurrences"] == 2  # two steps, one run of kernels in each


def test_gpu_non_xla_kernels_are_framework_ops_only() -> None:
    tf = {"tf_op": "model/conv/Conv2D:Conv2D"}
    xs = _gpu_space([("implicit_gemm", 0, 10, tf), ("bias_add", 10, 2, tf), ("implicit_gemm", 20, 10, tf)])
    part = map_op_stats(xs)
    assert partial_rows(part, "hlo") == [] and part["reasons"]["hlo"].startswith("no XLA ops")
    (row,) = partial_rows(part, "framework")
    # XProf: one device op per (framework op, kernel); the framework op occurs as often as its busiest kernel.
    assert (row["host_or_device"], row["type"], row["name"]) == ("Device", "Conv2D", "model/conv/Conv2D")
    assert (row["occurrences"], row["total_ps"], row["self_ps"]) == (2, 22, 22)


def test_pytorch_ops_from_a_kineto_trace() -> None:
    """aten ops are framework ops (self time by nesting), kernels join them through correlation,
    allocation records inside an op are not occurrences of it."""

    def ev(cat: str, name: str, ts: float, dur: float, pid: int = 1, tid: int = 1, **args: object) -> dict:  # type: ignore[type-arg]
        return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur, "args": args}

    events = [
        ev("cpu_op", "aten::linear", 10.0, 50.0),
        ev("cpu_op", "aten::mm", 20.0, 30.0),
        ev("cuda_runtime", "cudaLaunchKernel", 25.0, 5.0, correlation=9),
        {
            "ph": "i",
            "s": "t",
            "cat": "cpu_instant_event",
            "name": "[memory]",
            "pid": 1,
            "tid": 1,
            "ts": 22.0,
            "args": {
                "Bytes": 512,
                "Total Allocated": 512,
                "Total Reserved": 2048,
                "Device Id": 0,
                "Device Type": 1,
                "Addr": 4096,
            },
        },
        ev("kernel", "sm90_gemm", 40.0, 7.0, pid=0, tid=7, device=0, stream=7, correlation=9),
    ]
    xs = xprof_core.decode_trace_json(json.dumps({"traceEvents": events}).encode())
    partial = map_op_stats(xs)
    fw = partial["framework"]
    rows = {(w, n): i for i, (w, n) in enumerate(zip(fw["host_or_device"], fw["name"], strict=True))}
    mm = rows[("Host", "aten::mm")]
    linear = rows[("Host", "aten::linear")]
    assert fw["type"][mm] == "mm" and fw["occurrences"][mm] == 1
    assert fw["total_ps"][mm] == 30_000_000 and fw["self_ps"][mm] == 30_000_000
    assert fw["self_ps"][linear] == 20_000_000  # 50 us minus its child aten::mm
    kernel = rows[("Device", "aten::mm")]
    assert fw["total_ps"][kernel] == 7_000_000 and fw["occurrences"][kernel] == 1
    alloc = xs.select(name="^MemoryAllocation$")
    assert xs.event_stats(int(alloc[0]))["enclosing_op"] == "aten::mm"
