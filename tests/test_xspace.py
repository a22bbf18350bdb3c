"""The columnar XSpace API on real profiles: planes, lines, selection, stats, export."""

from __future__ import annotations

import gzip
import re

import fsspec
import numpy as np
import pytest

import xprof_core
from xprof_core.protos import xplane_pb2

from conftest import JAX_DATA, TPU, V100, need

GPU_JAX = JAX_DATA / "gpu_mlp_train.xplane.pb"
CPU_JAX = JAX_DATA / "cpu_mlp_train.xplane.pb"


@pytest.fixture(scope="module")
def gpu() -> xprof_core.XSpace:
    return xprof_core.load(GPU_JAX)


@pytest.fixture(scope="module")
def gpu_pb() -> xplane_pb2.XSpace:
    return xplane_pb2.XSpace.FromString(GPU_JAX.read_bytes())


def test_planes_and_lines_match_protobuf(gpu: xprof_core.XSpace, gpu_pb: xplane_pb2.XSpace) -> None:
    assert [p.name for p in gpu.planes] == [p.name for p in gpu_pb.planes]
    for ours, ref in zip(gpu.planes, gpu_pb.planes, strict=True):
        assert [ln.name for ln in ours.lines] == [ln.name for ln in ref.lines]
        assert [len(ln) for ln in ours.lines] == [len(ln.events) for ln in ref.lines]
    assert gpu.num_events == sum(len(ln.events) for p in gpu_pb.planes for ln in p.lines)


def test_absolute_times_in_ps(gpu: xprof_core.XSpace, gpu_pb: xplane_pb2.XSpace) -> None:
    plane = next(p for p in gpu_pb.planes if p.name == "/device:GPU:0")
    line = plane.lines[0]
    ours = gpu.plane("/device:GPU:0").line(line.name)
    expected = [line.timestamp_ns * 1000 + e.offset_ps for e in line.events]
    assert gpu.start_ps[ours.rows].tolist() == expected
    assert gpu.duration_ps[ours.rows].tolist() == [e.duration_ps for e in line.events]


def test_plane_stats_and_device(gpu: xprof_core.XSpace) -> None:
    dev = gpu.plane("/device:GPU:0")
    assert dev.stats["gpu_device_name"] == "NVIDIA H100 80GB HBM3"
    assert dev.stats["core_count"] == 132
    assert dev.stats["compute_cap_major"] == 9
    env = gpu.plane("Task Environment").stats
    assert env["profile_stop_time"] > env["profile_start_time"]
    assert gpu.origin_ps == int(gpu.start_ps.min())
    # JAX writes times relative to the session: all events fit in its recorded length.
    assert int(gpu.end_ps.max()) - gpu.origin_ps <= (env["profile_stop_time"] - env["profile_start_time"]) * 1000


def test_select_and_step_stats(gpu: xprof_core.XSpace) -> None:
    steps = gpu.select(name="^train$")
    assert len(steps) == 20  # the script records 20 StepTraceAnnotation steps
    step_num = gpu.stat(steps, "step_num")
    assert step_num.present.all()
    assert sorted(step_num.values.tolist()) == list(range(20))
    assert set(gpu.event_names(steps)) == {"train"}
    # Every step lies on a host thread.
    assert {gpu.planes[i].name for i in gpu.plane_of_event[steps]} == {"/host:CPU"}


def test_select_by_plane_line_and_window(gpu: xprof_core.XSpace) -> None:
    kernels = gpu.select(plane=r"^/device:GPU:0$", line=r"Compute")
    assert len(kernels) == len(gpu.plane("/device:GPU:0").line("Stream #14(Compute)"))
    lo = int(gpu.start_ps[kernels].min())
    hi = int((gpu.start_ps[kernels] + gpu.duration_ps[kernels]).max())
    mid = (lo + hi) // 2
    first_half = gpu.select(plane="GPU", line="Compute", start_ps=lo, end_ps=mid)
    second_half = gpu.select(plane="GPU", line="Compute", start_ps=mid, end_ps=hi + 1)
    assert 0 < len(first_half) < len(kernels)
    assert 0 < len(second_half) < len(kernels)
    # Overlap semantics: together the halves cover everything, with at most one straddler.
    assert len(np.union1d(first_half, second_half)) == len(kernels)
    assert len(np.intersect1d(first_half, second_half)) <= 1
    starts = gpu.start_ps[first_half]
    assert (starts < mid).all()


def test_stat_vectorised_with_metadata_fallback(gpu: xprof_core.XSpace) -> None:
    kernels = gpu.select(plane="GPU", line="Compute")
    corr = gpu.stat(kernels, "correlation_id")
    assert corr.present.all() and corr.values.dtype == np.int64
    details = gpu.stat(kernels, "kernel_details")
    assert details.present.all()
    assert all(re.search(r"grid:\d+,\d+,\d+ block:\d+,\d+,\d+", s) for s in details.values)
    missing = gpu.stat(kernels, "no_such_stat")
    assert not missing.present.any()
    # Compare one event with the slow path.
    row = int(kernels[0])
    one = gpu.event_stats(row)
    assert one["correlation_id"] == corr.values[0]
    assert one["kernel_details"] == details.values[0]


def test_event_metadata_lookup(gpu: xprof_core.XSpace, gpu_pb: xplane_pb2.XSpace) -> None:
    ref = next(p for p in gpu_pb.planes if p.name == "/host:CPU")
    plane = gpu.plane("/host:CPU")
    assert set(plane.event_metadata) == set(ref.event_metadata)
    for md_id, md in ref.event_metadata.items():
        assert plane.event_name(md_id) == md.name
    assert plane.stat_metadata == {k: v.name for k, v in ref.stat_metadata.items()}


def test_to_pandas(gpu: xprof_core.XSpace) -> None:
    pytest.importorskip("pandas")
    rows = gpu.select(name="^train$")
    df = gpu.to_pandas(rows, stats=["step_num"])
    assert list(df.columns[:6]) == ["plane", "line", "name", "start_ps", "duration_ps", "num_occurrences"]
    assert len(df) == 20
    assert sorted(df["step_num"].tolist()) == list(range(20))
    assert (df["name"] == "train").all()


def test_load_gzip_and_memory_urls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = CPU_JAX.read_bytes()
    gz = tmp_path / "host.xplane.pb.gz"
    gz.write_bytes(gzip.compress(data))
    plain = xprof_core.load(CPU_JAX)
    zipped = xprof_core.load(gz)
    fs = fsspec.filesystem("memory")
    fs.pipe("/xprof-core-test/host.xplane.pb", data)
    try:
        remote = xprof_core.load("memory://xprof-core-test/host.xplane.pb")
    finally:
        fs.rm("/xprof-core-test", recursive=True)
    for other in (zipped, remote):
        assert other.num_events == plain.num_events
        np.testing.assert_array_equal(other.start_ps, plain.start_ps)
        assert [p.name for p in other.planes] == [p.name for p in plain.planes]


def test_decode_bytes_like_inputs_agree() -> None:
    data = CPU_JAX.read_bytes()
    a = xprof_core.decode_xspace(data)
    b = xprof_core.decode_xspace(bytearray(data))
    c = xprof_core.decode_xspace(memoryview(data))
    for other in (b, c):
        np.testing.assert_array_equal(other.metadata_id, a.metadata_id)
        np.testing.assert_array_equal(other.duration_ps, a.duration_ps)


def test_progress_callback_reaches_the_end() -> None:
    calls: list[tuple[int, int]] = []
    data = GPU_JAX.read_bytes()
    xprof_core.decode_xspace(data, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(data), len(data))
    assert all(0 <= d <= t for d, t in calls)


def test_v100_tensorflow_profile() -> None:
    xs = xprof_core.load(need(V100))
    assert xs.num_events == 23_128
    assert xs.hostnames == ["34.83.195.179:6003"]
    gpu4 = xs.plane("/device:GPU:4")
    assert [ln.name for ln in gpu4.lines][-1] == "Steps"
    assert gpu4.stats["core_count"] == 80
    assert len(gpu4.line("Stream #134(Compute)")) == 665


def test_tpu_profile_lines_have_zero_timestamp() -> None:
    xs = xprof_core.load(need(TPU))
    assert xs.num_events == 26_723
    tpu0 = xs.plane("/device:TPU:0")
    assert tpu0.stats["device_type_string"] == "TPU v6 Lite"
    ops = tpu0.line("XLA Ops")
    assert len(ops) == 1504
    # TPU lines start at 0: their times are the events' own offsets.
    assert ops.timestamp_ns == 0
    ref = xplane_pb2.XSpace.FromString(TPU.read_bytes())
    line = next(ln for p in ref.planes if p.name == "/device:TPU:0" for ln in p.lines if ln.name == "XLA Ops")
    assert xs.start_ps[ops.rows].tolist() == [e.offset_ps for e in line.events]


def test_plane_identity_from_names() -> None:
    from xprof_core.model.planes import PlaneKind, plane_identity

    cases = {
        "/host:CPU": (PlaneKind.HOST, "", None),
        "/host:metadata": (PlaneKind.METADATA, "", None),
        "/host:__ScopeRangeCallStack__": (PlaneKind.HOST_OTHER, "", None),
        "/device:GPU:7": (PlaneKind.DEVICE, "GPU", 7),
        "/device:TPU:0": (PlaneKind.DEVICE, "TPU", 0),
        "/device:CUSTOM:Megascale Trace": (PlaneKind.CUSTOM, "CUSTOM", None),
        "Task Environment": (PlaneKind.ENVIRONMENT, "", None),
        "something else": (PlaneKind.OTHER, "", None),
    }
    for name, (kind, device_type, index) in cases.items():
        ident = plane_identity(name)
        assert (ident.kind, ident.device_type, ident.device_index) == (kind, device_type, index), name


def test_planes_carry_their_kind(gpu: xprof_core.XSpace) -> None:
    from xprof_core.model.planes import PlaneKind

    kinds = {p.name: p.kind for p in gpu.planes}
    assert kinds["/host:CPU"] is PlaneKind.HOST
    assert kinds["/device:GPU:0"] is PlaneKind.DEVICE
    assert gpu.plane("/device:GPU:0").device_index == 0
    assert [p.name for p in gpu.planes_of_kind(PlaneKind.DEVICE)] == [
        p.name for p in gpu.planes if re.match(r"^/device:GPU:\d+$", p.name)
    ]


def test_typed_tables_describe_the_columns(gpu: xprof_core.XSpace, gpu_pb: xplane_pb2.XSpace) -> None:
    t = gpu.tables
    assert len(t.events) == gpu.num_events == sum(len(ln.events) for p in gpu_pb.planes for ln in p.lines)
    assert t.events.start_ps.dtype == np.int64 and t.events.duration_ps.dtype == np.int64
    assert len(t.lines) == gpu.num_lines and len(t.planes) == len(gpu_pb.planes)
    assert t.planes.name == [p.name for p in gpu_pb.planes]
    assert len(t.event_metadata) == sum(len(p.event_metadata) for p in gpu_pb.planes)
    assert len(t.stat_metadata) == sum(len(p.stat_metadata) for p in gpu_pb.planes)
    # Stats of planes and of event metadata are eager; every one has an owner row.
    n_plane_stats = sum(len(p.stats) for p in gpu_pb.planes)
    n_md_stats = sum(len(m.stats) for p in gpu_pb.planes for m in p.event_metadata.values())
    assert len(t.stats) == n_plane_stats + n_md_stats


def test_dropping_the_xspace_frees_it_without_the_cyclic_collector() -> None:
    import gc
    import weakref

    xs = xprof_core.load(GPU_JAX)
    plane = xs.plane("/device:GPU:0")
    line = plane.lines[0]
    assert line.plane == plane and plane.stats and len(xs.event_names()) == xs.num_events
    columns = weakref.ref(xs.tables)
    gc.disable()
    try:
        del xs
        assert columns() is not None  # the plane and line views keep the host alive...
        del plane, line
        assert columns() is None  # ...and nothing else does: no reference cycle holds it
    finally:
        gc.enable()
