"""PyTorch Kineto / Chrome trace JSON through the XSpace model.

The oracle is Python's ``json`` module: a naive ``json.load`` of each real
trace gives event counts per (phase, name), exact timestamps (as decimals)
and the arguments, and the decoded model must agree. Streaming in tiny
chunks must give the same bytes as one whole buffer. Bad input (truncations,
mutations, hand-made faults) must raise ``DecodeError`` with a byte offset,
and nothing else.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xprof_core
from xprof_core.errors import DecodeError
from xprof_core.model import kineto
from xprof_core.storage.logdir import Logdir

from conftest import REAL, need

H200_TORCH = REAL.parent / "h200" / "torch_dev.pt.trace.json.gz"
DEMO_TORCH = Path(xprof_core.__file__).parent / "demo" / "torch_transformer_h200"


def real_trace_files() -> list[Path]:
    """Every real Kineto trace of the shared data, and the H200 recording."""
    files = sorted(p for p in REAL.rglob("*.json.gz")) if REAL.is_dir() else []
    return files + ([H200_TORCH] if H200_TORCH.exists() else [])


def trace_ids() -> list[str]:
    return [p.name for p in real_trace_files()]


def events_of(path: Path) -> list[dict[str, Any]]:
    data = json.loads(gzip.decompress(path.read_bytes()))
    return data["traceEvents"] if isinstance(data, dict) else data


def model_counts(xs: xprof_core.XSpace) -> Counter[tuple[str, str]]:
    """(phase, name) of every event of the model: 'ph' stat where present, else X."""
    rows = np.arange(xs.num_events, dtype=np.int64)
    names = xs.event_names(rows)
    ph = xs.stat(rows, "ph", include_metadata=False)
    out: Counter[tuple[str, str]] = Counter()
    for name, phase, has in zip(names.tolist(), ph.values.tolist(), ph.present.tolist(), strict=True):
        if name in ("MemoryAllocation", "MemoryDeallocation"):
            name = "[memory]"  # renamed by the sign of Bytes
        out[(phase if has else "X", name)] += 1
    return out


def reference_counts(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((e["ph"], e.get("name", "")) for e in events if e.get("ph") in ("X", "i", "I", "C", "s", "t", "f"))


@pytest.mark.parametrize("path", real_trace_files(), ids=trace_ids())
def test_event_counts_match_json_load(path: Path) -> None:
    events = events_of(path)
    xs = xprof_core.load(path)
    assert model_counts(xs) == reference_counts(events)


@pytest.mark.parametrize("path", real_trace_files(), ids=trace_ids())
def test_times_are_exact_picoseconds(path: Path) -> None:
    """Every X event's start and duration equal the JSON's decimal microseconds x 10^6, to the ps."""
    events = [e for e in events_of(path) if e.get("ph") == "X"]
    xs = xprof_core.load(path)
    base = int(xs.plane("/host:CPU").stats.get("time_base_us", 0)) * 1_000_000
    rows = xs.select(plane="^/host:CPU$|^/device:GPU")
    rows = rows[xs.stat(rows, "ph", include_metadata=False).present == False]  # noqa: E712 - X events only
    got = sorted(zip(xs.start_ps[rows].tolist(), xs.duration_ps[rows].tolist(), strict=True))

    def ps(value: Any) -> int:
        return int(Decimal(repr(value)) * 1_000_000)

    want = sorted((ps(e["ts"]) - base, max(ps(e.get("dur", 0)), 0)) for e in events)
    assert got == want


def test_h200_trace_as_xprof_gpu_profile() -> None:
    xs = xprof_core.load(need(H200_TORCH))
    assert [p.name for p in xs.planes] == ["/host:CPU", "/device:GPU:0", "/host:flows"]
    gpu = xs.plane("/device:GPU:0")
    assert gpu.stats["gpu_device_name"] == "NVIDIA H200"
    assert (gpu.stats["compute_cap_major"], gpu.stats["compute_cap_minor"], gpu.stats["core_count"]) == (9, 0, 132)
    assert [ln.name for ln in gpu.lines] == ["Stream #7", "Annotations (Stream #7)"]
    # Kernels: XProf's kernel_details from Kineto's args, correlation_id and the launching op.
    events = {(e["ts"], e["name"]): e for e in events_of(H200_TORCH) if e.get("cat") == "kernel"}
    rows = xs.select(plane="GPU", line="^Stream")
    kernels = 0
    for stats in xs.iter_event_stats(rows):
        if stats["cat"] != "kernel":
            continue
        kernels += 1
        grid, block = stats["grid"], stats["block"]
        assert json.loads(grid) == [int(x) for x in stats["kernel_details"].split("grid:")[1].split()[0].split(",")]
        assert f"block:{','.join(str(x) for x in json.loads(block))}" in stats["kernel_details"]
        assert f"regs:{stats['registers per thread']} " in stats["kernel_details"]
        assert stats["correlation_id"] == stats["correlation"]
        assert stats["tf_op"].startswith("aten::")
    assert kernels == len(events) == 525
    steps = xs.select(plane="^/host:CPU$", name="^ProfilerStep#")
    assert xs.stat(steps, "step_num").values.tolist() == [3, 4, 5]
    alloc = xs.select(name="^MemoryAllocation$")
    stats = xs.event_stats(int(alloc[0]))
    assert stats["allocation_bytes"] == stats["Bytes"] > 0
    assert stats["bytes_allocated"] == stats["Total Allocated"]


# --- streaming ---


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_tiny_chunks_give_the_same_xspace(chunk: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Units cut at every possible place by chunk boundaries, gzip and plain, decode identically."""
    source = need(REAL / "hta" / "tests" / "data" / "amd_trace" / "mi250_minitoy_train_ROCm6_2_kineto.json.gz")
    whole = xprof_core.decode_trace_json(gzip.decompress(source.read_bytes()), host="h")
    plain = tmp_path / "h.json"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    monkeypatch.setattr(kineto, "CHUNK_BYTES", chunk)
    for path in (plain, source):
        xs = kineto.load_trace_json(str(path), host="h")
        assert bytes(xs.buffer) == bytes(whole.buffer)


def test_array_form_and_empty_traces() -> None:
    ev = {"ph": "X", "name": "a", "pid": 1, "tid": 2, "ts": 1.5, "dur": 2}
    for text in (json.dumps([ev]), json.dumps([ev])[:-1], json.dumps({"traceEvents": [ev], "x": {"y": [1]}})):
        xs = xprof_core.decode_trace_json(text.encode())
        assert xs.num_events == 1 and int(xs.start_ps[0]) == 1_500_000 and int(xs.duration_ps[0]) == 2_000_000
    assert xprof_core.decode_trace_json(b'{"traceEvents": []}').num_events == 0
    assert xprof_core.decode_trace_json(b"[]").num_events == 0


def test_args_become_typed_stats() -> None:
    args = {"i": -3, "big": 18446744073709551615, "f": 2.5, "s": 'q"\\u00e9', "t": True, "n": None, "a": [1, {"b": 2}]}
    ev = {"ph": "X", "name": "op\\nx", "pid": "p", "tid": "7", "ts": 0, "dur": 1, "args": args}
    text = json.dumps({"traceEvents": [ev]}).replace("\\\\u00e9", "\\u00e9")
    xs = xprof_core.decode_trace_json(text.encode())
    stats = xs.event_stats(0)
    assert stats["i"] == -3 and stats["big"] == 2**64 - 1 and stats["f"] == 2.5 and stats["t"] == 1
    assert stats["s"] == 'q"é' and "n" not in stats
    assert json.loads(stats["a"]) == [1, {"b": 2}]
    assert xs.event_names([0])[0] == "op\\nx"
    assert xs.lines[0].id == 7  # digit-string tids are numbers


# --- bad input ---


def _small_trace() -> bytes:
    return gzip.decompress(
        need(REAL / "hta" / "tests" / "data" / "amd_trace" / "mi250_minitoy_train_ROCm6_2_kineto.json.gz").read_bytes()
    )


def test_truncation_sweep() -> None:
    """Every cut of a real trace either decodes (a cut in trailing whitespace) or raises DecodeError
    at an offset inside the cut input."""
    data = _small_trace()
    end = len(data.rstrip())
    cuts = sorted(set(range(0, 2048)) | set(range(0, len(data), 97)) | set(range(end - 64, len(data))))
    for cut in cuts:
        piece = data[:cut]
        if cut >= end:
            xprof_core.decode_trace_json(piece)
            continue
        with pytest.raises(DecodeError) as info:
            xprof_core.decode_trace_json(piece)
        assert 0 <= info.value.offset <= cut, (cut, info.value)


def test_mutations_agree_with_json() -> None:
    """Random byte changes: json.loads rejects => DecodeError; json accepts => it decodes, or the
    event is refused for a stated trace-level reason (no 'ph', a non-numeric 'ts', ...)."""
    data = _small_trace()
    rng = random.Random(15)
    alphabet = b'{}[],:"\\ 0123456789.eE-+tfnulxX\x00\x1f\xff'
    trace_reasons = ("ph", "ts", "dur", "out of range", "not an object", "not an array", "expected '{'")
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = alphabet[rng.randrange(len(alphabet))]
        try:
            json.loads(mutated)
            valid = True
        except (ValueError, UnicodeDecodeError):
            valid = False
        try:
            xprof_core.decode_trace_json(bytes(mutated))
        except DecodeError as exc:
            assert 0 <= exc.offset <= len(mutated)
            if valid:
                assert any(r in exc.reason for r in trace_reasons), exc
            continue
        # Accepted: json must accept too, except for bytes json refuses that we keep (invalid UTF-8).
        assert valid or b"\xff" in mutated, bytes(mutated)


@pytest.mark.parametrize(
    ("text", "at", "reason"),
    [
        (b'{"traceEvents": [{"ph": "X", "ts": 1,}]}', b"}]}", "expected a key"),
        (b'{"traceEvents": [{"ph": "X", "ts": 1e}]}', b"}]}", "exponent"),
        (b'{"traceEvents": [{"ph": "X", "ts": "1"}]}', b'{"ph', "numeric 'ts'"),
        (b'{"traceEvents": [{"ph": "X", "ts": 1, "name": "a\x01"}]}', b"\x01", "control character"),
        (b'{"traceEvents": [1]}', b"1]", "not an object"),
        (b'{"traceEvents": [{"ph": "X", "ts": 1}] x', b"x", "expected ','"),
        (b'{"traceEvents": [{"ph": "X", "ts": 1e999999}]}', b"1e9", "out of range"),
        (b"\xef\xbb\xbf{}", b"\xef", "expected '{'"),
        (b'{"a": ' + b"[" * 600 + b"]" * 600 + b"}", b"[" * 88 + b"]", "nested too deeply"),
    ],
)
def test_errors_name_the_offset(text: bytes, at: bytes, reason: str) -> None:
    """The offset is the byte where the fault is (for nesting: the bracket past the limit)."""
    with pytest.raises(DecodeError) as info:
        xprof_core.decode_trace_json(text)
    assert reason in info.value.reason, info.value
    assert info.value.offset == text.index(at), info.value


def test_bad_gzip_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "w.pt.trace.json.gz"
    path.write_bytes(gzip.compress(b'{"traceEvents": []}')[:-9])
    with pytest.raises(DecodeError):
        xprof_core.load(path)


# --- logdir layout ---


def _write(path: Path, rank: int) -> None:
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 10, "dur": 50},
        {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 20, "dur": 5, "args": {"stream": 7}},
    ]
    doc = {"distributedInfo": {"rank": rank, "world_size": 2}, "traceEvents": events}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_tensorboard_plugin_layout(tmp_path: Path) -> None:
    _write(tmp_path / "job" / "node_11.1700000000001.pt.trace.json.gz", 0)
    _write(tmp_path / "job" / "node_12.1700000000002.pt.trace.json.gz", 1)
    _write(tmp_path / "other" / "deep" / "w.1700000000003.pt.trace.json.gz", 0)
    _write(tmp_path / "other" / "deep" / "w.1700000000004.pt.trace.json.gz", 0)
    runs = {r.name: r.host_names for r in Logdir(tmp_path).runs()}
    assert runs == {"job": ["node_11", "node_12"], "other/deep": ["w.1700000000003", "w.1700000000004"]}
    from xprof_core.execute import run_tool

    overview = run_tool("overview_page", (tmp_path, "job"))
    assert overview["hosts"] == ["node_11", "node_12"] and overview["steps"]["count"] == 1
    ranks = [xprof_core.load(h.url).plane("/host:CPU").stats["rank"] for h in Logdir(tmp_path).run("job").hosts]
    assert ranks == [0, 1]


def test_instants_counters_and_flows() -> None:
    events = [
        {"ph": "C", "name": "gpu mem", "pid": 1, "tid": 1, "ts": 5, "args": {"used": 12, "free": 0.5}},
        {"ph": "i", "s": "g", "name": "mark", "pid": "Traces", "tid": "T", "ts": 6},
        {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": 42, "pid": 1, "tid": 1, "ts": 7},
        {"ph": "f", "cat": "ac2g", "name": "ac2g", "id": 42, "pid": 0, "tid": 7, "ts": 9, "bp": "e"},
        {"ph": "B", "name": "begin", "pid": 1, "tid": 1, "ts": 1},
    ]
    xs = xprof_core.decode_trace_json(json.dumps({"traceEvents": events}).encode())
    host, flows = xs.plane("/host:CPU"), xs.plane("/host:flows")
    assert xs.num_events == 4  # B/E pairs are not read (Kineto does not write them)
    assert xs.warnings == ["1 trace events of phases other than X, i, I, C, s, t, f, M were not read"]
    counter = xs.event_stats(int(xs.select(name="gpu mem")[0]))
    assert counter == {"ph": "C", "used": 12, "free": 0.5}
    assert xs.event_stats(int(xs.select(name="mark")[0])) == {"ph": "i"}
    assert host.num_events == 2 and flows.num_events == 2
    ends = sorted((xs.event_stats(int(r)) for r in xs.select(plane="flows")), key=lambda d: d["ph"])
    assert ends == [{"cat": "ac2g", "ph": "f", "flow_id": 42, "bp": "e"}, {"cat": "ac2g", "ph": "s", "flow_id": 42}]


def test_many_threads_and_too_many_devices() -> None:
    """One event per thread stays cheap (line buffers start small); device planes are capped."""
    many = [{"ph": "X", "name": "a", "pid": 1, "tid": i, "ts": i, "dur": 1} for i in range(50_000)]
    xs = xprof_core.decode_trace_json(json.dumps({"traceEvents": many}).encode())
    assert xs.num_lines == 50_000 and xs.num_events == 50_000
    devices = [
        {"ph": "X", "cat": "kernel", "name": "k", "pid": d, "tid": 7, "ts": 1, "dur": 1, "args": {"device": d}}
        for d in range(129)
    ]
    with pytest.raises(DecodeError, match="too many GPU devices") as info:
        xprof_core.decode_trace_json(json.dumps({"traceEvents": devices}).encode())
    assert info.value.path == "traceEvents[128]"
