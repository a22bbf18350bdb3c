"""scripts/scale_profile.py: an N-times-longer XSpace made by repeating a real profile's steps.

The scaled file is checked three ways: on the wire against the original, read
with protobuf (every event of copy k is the original's with its offset shifted
by k x the copy span and its id stats renumbered, everything else equal); with
our decoder (N x the events); and through the tools (N x the steps, each
copy's per-step figures equal to the original's, N x every op's occurrences
and time). A last test writes a ~60 MB output in a subprocess and checks that
its peak RSS grows by a few MB only.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import xprof_core
from xprof_core.errors import DecodeError
from xprof_core.execute import run_tool
from xprof_core.protos import xplane_pb2

ROOT = Path(__file__).resolve().parent.parent
JAX = ROOT / "tests" / "data" / "jax"
H200 = ROOT.parent / "shared" / "data" / "h200"
REAL = ROOT.parent / "shared" / "data" / "real"
TPU = REAL / "openxla-xprof" / "xprof" / "convert" / "test_xplanes" / "tpu_inference_2.xplane.pb"
# A TensorFlow GPU host whose device plane has a Steps line (events named by step number).
TF_GPU = REAL / "openxla-xprof" / "demo" / "plugins" / "profile" / "GPU-multi-worker" / "34.83.195.179_6003.xplane.pb"

TIMES = 3
U64 = 1 << 64
STEP_STATS = {"step_num", "group_id", "iter_num"}
ID_FAMILIES = {"correlation_id": "correlation", "_p": "flow", "_c": "flow", "run_id": "run", "step_id": "step_id"}


def _load_scaler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale_profile", ROOT / "scripts" / "scale_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_profile"] = module
    spec.loader.exec_module(module)
    return module


scaler = _load_scaler()


def _case(path: Path, why: str) -> Any:
    name = path.name.removesuffix(".gz").removesuffix(".xplane.pb")
    return pytest.param(path, id=name, marks=pytest.mark.skipif(not path.exists(), reason=why))


NO_H200 = "no ../shared/data/h200 (H200 JAX profiles)"
NO_REAL = "no ../shared/data/real (real profiles)"
STEP_FILES = [
    _case(JAX / "cpu_mlp_train.xplane.pb", "missing"),
    _case(JAX / "gpu_mlp_train.xplane.pb", "missing"),
    _case(JAX / "gpu_mlp_train_pytrace.xplane.pb", "missing"),
    _case(JAX / "gpu_mlp_train_long.xplane.pb", "missing"),
    _case(H200 / "jax_dev_nocmdbuf.xplane.pb.gz", NO_H200),
    _case(H200 / "jax_dev_cmdbuf.xplane.pb.gz", NO_H200),
    _case(TF_GPU, NO_REAL),
]
ALL_FILES = [*STEP_FILES, _case(TPU, NO_REAL)]


def _space(path: Path) -> xplane_pb2.XSpace:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    space = xplane_pb2.XSpace()
    space.ParseFromString(data)
    return space


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    made: dict[Path, tuple[Path, Any]] = {}

    def make(path: Path) -> tuple[Path, Any]:
        if path not in made:
            out = tmp_path_factory.mktemp("scaled") / path.name.removesuffix(".gz")
            made[path] = (out, scaler.scale_profile(path, out, TIMES))
        return made[path]

    return make


def _value(stat: xplane_pb2.XStat) -> Any:
    kind = stat.WhichOneof("value")
    return kind, getattr(stat, kind) if kind else None


@pytest.mark.parametrize("path", ALL_FILES)
def test_copies_match_the_original_on_the_wire(path: Path, scaled: Any) -> None:
    out, report = scaled(path)
    before, after = _space(path), _space(out)
    shift = report.shift_ps
    assert shift > 0 and shift % 1000 == 0
    assert list(after.hostnames) == list(before.hostnames)
    assert [(p.id, p.name) for p in after.planes] == [(p.id, p.name) for p in before.planes]
    # The copy span covers the whole profile: no copy overlaps the next.
    starts = [ln.timestamp_ns * 1000 + e.offset_ps for p in before.planes for ln in p.lines for e in ln.events]
    ends = [
        ln.timestamp_ns * 1000 + e.offset_ps + e.duration_ps for p in before.planes for ln in p.lines for e in ln.events
    ]
    assert shift >= max(ends) - min(starts)
    steps_seen = 0
    for p0, p1 in zip(before.planes, after.planes, strict=True):
        names = {k: v.name for k, v in p0.stat_metadata.items()}
        assert {k: v.name for k, v in p1.stat_metadata.items()} == names
        steps_line = any(ln.name == "Steps" for ln in p0.lines)
        for key, md in p0.event_metadata.items():
            assert p1.event_metadata[key] == md
        extra = set(p1.event_metadata) - set(p0.event_metadata)
        # Only a Steps line's step names get new metadata: one per later copy.
        renamed = [m for m in p0.event_metadata.values() if m.name.isdigit()] if steps_line else []
        assert len(extra) == len(renamed) * (TIMES - 1)
        for s0, s1 in zip(p0.stats, p1.stats, strict=True):
            if names.get(s0.metadata_id) == "profile_stop_time":
                assert _value(s1)[1] == _value(s0)[1] + (TIMES - 1) * shift // 1000
            else:
                assert s1 == s0
        for l0, l1 in zip(p0.lines, p1.lines, strict=True):
            assert (l1.id, l1.name, l1.display_name, l1.timestamp_ns) == (
                l0.id,
                l0.name,
                l0.display_name,
                l0.timestamp_ns,
            )
            n = len(l0.events)
            assert len(l1.events) == TIMES * n
            for k in range(TIMES):
                for e0, e1 in zip(l0.events, l1.events[k * n : (k + 1) * n], strict=True):
                    assert e1.offset_ps == e0.offset_ps + k * shift
                    assert e1.duration_ps == e0.duration_ps
                    if l0.name == "Steps" and k and p0.event_metadata[e0.metadata_id].name.isdigit():
                        name0 = p0.event_metadata[e0.metadata_id].name
                        assert p1.event_metadata[e1.metadata_id].name == str(int(name0) + k * report.steps["step"])
                        steps_seen += 1
                    else:
                        assert e1.metadata_id == e0.metadata_id
                    assert len(e1.stats) == len(e0.stats)
                    for s0, s1 in zip(e0.stats, e1.stats, strict=True):
                        assert s1.metadata_id == s0.metadata_id
                        name = names.get(s0.metadata_id, "")
                        family = "step" if name in STEP_STATS else ID_FAMILIES.get(name)
                        add = k * shift if name == "device_offset_ps" else k * report.steps.get(family, 0)
                        kind, value = _value(s0)
                        if add and kind in ("int64_value", "uint64_value"):
                            want = (value + add) % U64
                            if kind == "int64_value" and want >= 1 << 63:
                                want -= U64
                            assert _value(s1) == (kind, want), (name, k)
                        else:
                            assert s1 == s0
    if path == TF_GPU:
        assert steps_seen > 0


@pytest.mark.parametrize("path", [JAX / "cpu_mlp_train.xplane.pb", JAX / "gpu_mlp_train.xplane.pb"])
def test_one_copy_is_the_input(path: Path, tmp_path: Path) -> None:
    out = tmp_path / path.name
    scaler.scale_profile(path, out, 1)
    assert out.read_bytes() == path.read_bytes()


def _rows(table: dict[str, Any]) -> list[list[Any]]:
    return [[c["v"] for c in row["c"]] for row in table["rows"]]


def _by_key(table: dict[str, Any], key: list[str], values: list[str]) -> dict[tuple[Any, ...], list[float]]:
    ids = [c["id"] for c in table["cols"]]
    out = {}
    for row in _rows(table):
        k = tuple(row[ids.index(c)] for c in key)
        assert k not in out
        out[k] = [row[ids.index(c)] for c in values]
    return out


@pytest.mark.parametrize("path", STEP_FILES)
def test_tools_see_n_times_the_steps(path: Path, scaled: Any) -> None:
    out, report = scaled(path)
    if not path.name.endswith(".gz"):
        assert xprof_core.load(out).num_events == TIMES * xprof_core.load(path).num_events
    before, after = run_tool("overview_page", str(path)), run_tool("overview_page", str(out))
    n = before["steps"]["count"]
    assert n > 0 and after["steps"]["count"] == TIMES * n
    assert after["steps"]["avg_ms"] == pytest.approx(before["steps"]["avg_ms"], rel=1e-12)
    # Each copy's steps: the original's figures, numbered on from the copy before.
    rows0, rows1 = _rows(before["step_table"]), _rows(after["step_table"])
    assert len(rows1) == TIMES * len(rows0)
    for k in range(TIMES):
        for r0, r1 in zip(rows0, rows1[k * len(rows0) : (k + 1) * len(rows0)], strict=True):
            assert r1[0] == r0[0] + k * report.steps["step"]
            assert r1[1:] == pytest.approx(r0[1:], rel=1e-9, abs=1e-9)
    ip0 = run_tool("input_pipeline_analyzer", str(path))["step_table"]
    assert len(run_tool("input_pipeline_analyzer", str(out))["step_table"]["rows"]) == TIMES * len(ip0["rows"])
    # Every op and kernel: N x the occurrences and the time.
    for tool, key, values in (
        ("hlo_stats", ["program_id", "hlo_op_name"], ["occurrences", "total_time", "total_self_time"]),
        (
            "framework_op_stats",
            ["host_or_device", "type", "operation"],
            ["occurrences", "total_time", "total_self_time"],
        ),
        ("kernel_stats", ["kernel_name", "op_name", "block_dim", "grid_dim"], ["occurrences", "total_duration_us"]),
    ):
        t0 = _by_key(run_tool(tool, str(path))[tool], key, values)
        t1 = _by_key(run_tool(tool, str(out))[tool], key, values)
        assert t1.keys() == t0.keys(), tool
        for k, v in t0.items():
            assert t1[k] == pytest.approx([TIMES * x for x in v], rel=1e-9), (tool, k)


def test_steps_and_launches_stay_joinable(scaled: Any) -> None:
    """Every copy's kernels join their own copy's launches: the H100 file's step breakdown has device time
    in every step of every copy, as in the original."""
    path = JAX / "gpu_mlp_train.xplane.pb"
    out, report = scaled(path)
    assert report.steps["correlation"] > 0
    rows = _rows(run_tool("overview_page", str(out))["step_table"])
    ids = [c["id"] for c in run_tool("overview_page", str(out))["step_table"]["cols"]]
    device = ids.index("device_compute_ms")
    assert all(r[device] > 0 for r in rows)


MEASURE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
def hwm_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
import scale_profile
base = hwm_kb()
report = scale_profile.scale_profile(sys.argv[2], sys.argv[3], int(sys.argv[4]))
print(json.dumps({"growth_kb": hwm_kb() - base, "bytes": report.output_bytes}))
"""


def test_memory_stays_bounded(tmp_path: Path) -> None:
    """~60 MB written in a fresh process: its peak RSS grows by a few MB, not by the output."""
    src = JAX / "gpu_mlp_train_long.xplane.pb"
    out = tmp_path / "long_x64.xplane.pb"
    env_path = str(Path(xprof_core.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "scripts"), str(src), str(out), "64"],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bytes"] == out.stat().st_size > 50_000_000
    # The input (1 MB, mapped), a 4 MB chunk and the file buffer; holding the output would be 60 MB.
    assert result["growth_kb"] * 1024 < 16 << 20, result
    assert xprof_core.load(out).num_events == 64 * xprof_core.load(src).num_events


def _synthetic() -> xplane_pb2.XSpace:
    """A small XSpace with what the real files lack: a line duration, a Steps line named by step number,
    a negative id, an untimed event, the profile's stop time, fields after the events."""
    space = xplane_pb2.XSpace(hostnames=["h"])
    gpu = space.planes.add(id=1, name="/device:GPU:0")
    for sid, name in ((1, "group_id"), (2, "_p"), (3, "correlation_id"), (4, "kernel_details")):
        gpu.stat_metadata[sid].id = sid
        gpu.stat_metadata[sid].name = name
    for mid, name in ((10, "7"), (11, "8"), (12, "kernel")):
        gpu.event_metadata[mid].id = mid
        gpu.event_metadata[mid].name = name
    steps = gpu.lines.add(id=1, name="Steps", timestamp_ns=1000, duration_ps=5_000_000)
    for mid, offset, group in ((10, 0, 7), (11, 2000, 8)):
        steps.events.add(metadata_id=mid, offset_ps=offset, duration_ps=1000).stats.add(
            metadata_id=1, int64_value=group
        )
    stream = gpu.lines.add(id=2, name="Stream #1", display_name="Stream #1 (Compute)", timestamp_ns=1000)
    kernel = stream.events.add(metadata_id=12, offset_ps=100, duration_ps=50)
    kernel.stats.add(metadata_id=2, int64_value=-5)
    kernel.stats.add(metadata_id=3, uint64_value=3)
    kernel.stats.add(metadata_id=4, str_value="regs:32")
    stream.events.add(metadata_id=12, num_occurrences=4, duration_ps=10)
    env = space.planes.add(id=2, name="Task Environment")
    for sid, name in ((1, "profile_start_time"), (2, "profile_stop_time")):
        env.stat_metadata[sid].id = sid
        env.stat_metadata[sid].name = name
    env.stats.add(metadata_id=1, uint64_value=1_000)
    env.stats.add(metadata_id=2, uint64_value=9_000)
    return space


def test_synthetic_profile_every_rule(tmp_path: Path) -> None:
    src, out = tmp_path / "in.xplane.pb", tmp_path / "out.xplane.pb"
    src.write_bytes(_synthetic().SerializeToString())
    report = scaler.scale_profile(src, out, 3, gap_us=1.0)
    # Timed events span 1,000,000..1,003,000 ps (the untimed one does not count); plus the 1 µs gap.
    assert report.shift_ps == 1_003_000
    assert report.steps == {"step": 2, "flow": 1, "correlation": 1}
    space = _space(out)
    gpu, env = space.planes
    steps, stream = gpu.lines
    assert steps.duration_ps == 5_000_000 + 2 * 1_003_000
    names = [gpu.event_metadata[e.metadata_id].name for e in steps.events]
    assert names == ["7", "8", "9", "10", "11", "12"]
    assert [e.stats[0].int64_value for e in steps.events] == [7, 8, 9, 10, 11, 12]
    assert [e.offset_ps for e in steps.events] == [0, 2000, 1_003_000, 1_005_000, 2_006_000, 2_008_000]
    assert len(gpu.event_metadata) == 3 + 2 * 2
    assert stream.display_name == "Stream #1 (Compute)"
    kernels = [e for e in stream.events if e.WhichOneof("data") == "offset_ps"]
    assert [e.offset_ps for e in kernels] == [100, 1_003_100, 2_006_100]
    assert [[_value(s)[1] for s in e.stats] for e in kernels] == [
        [-5, 3, "regs:32"],
        [-4, 4, "regs:32"],
        [-3, 5, "regs:32"],
    ]
    assert [e.num_occurrences for e in stream.events if e.WhichOneof("data") == "num_occurrences"] == [4, 4, 4]
    assert [s.uint64_value for s in env.stats] == [1_000, 9_000 + 2 * 1_003]
    assert xprof_core.load(out).num_events == 3 * 4


def test_bad_input_is_refused(tmp_path: Path) -> None:
    data = (JAX / "cpu_mlp_train.xplane.pb").read_bytes()
    src = tmp_path / "cut.xplane.pb"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        scaler.scale_profile(src, tmp_path / "out.xplane.pb", 2)
    # A stat inside an event whose string runs past its stat: the compiled pass names the byte.
    good = _synthetic().SerializeToString()
    at = good.index(b"regs:32") - 1
    assert good[at] == len("regs:32")
    src.write_bytes(good[:at] + b"\x7f" + good[at + 1 :])
    with pytest.raises(DecodeError, match="runs past the end") as caught:
        scaler.scale_profile(src, tmp_path / "out.xplane.pb", 2)
    assert caught.value.offset == at
    assert list(tmp_path.iterdir()) == [src]
