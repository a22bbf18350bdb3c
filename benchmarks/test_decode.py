"""Decode speed and memory: our columnar decoder against protobuf's own parse.

For each file this measures, in the same run, our ``decode_columns`` and
Python protobuf's ``XSpace.FromString`` (upb) on the same bytes, and prints
MB/s, events/s and the speed ratio. Peak RSS of each is measured in a fresh
subprocess (file bytes included: the file is memory-mapped for ours and read
whole for protobuf, as each would be used) and printed as a multiple of the
file size. Targets: ratio >= 4x, our peak RSS <= 2.5x the file size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import timeit
from pathlib import Path

import pytest

from xprof_core._fast.decoder import decode_columns
from xprof_core.protos.xplane_pb2 import XSpace

from figures import real_files, record

RSS_SCRIPT = r"""
import json, mmap, resource, sys
mode, path = sys.argv[1], sys.argv[2]
import numpy  # imports first, so the baseline holds the interpreter and libraries
from xprof_core._fast.decoder import decode_columns
from xprof_core.protos.xplane_pb2 import XSpace
def rss_kb():
    # Peak RSS of this process alone: VmHWM restarts at exec, while ru_maxrss
    # carries the parent's peak across fork+exec on Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = rss_kb()
with open(path, "rb") as f:
    if mode == "ours":
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cols = decode_columns(buf)
        n = len(cols["events"]["start_ps"])
    else:
        data = f.read()
        msg = XSpace.FromString(data)
        n = sum(len(l.events) for p in msg.planes for l in p.lines)
print(json.dumps({"base_kb": base, "peak_kb": rss_kb(), "events": n}))
"""


def peak_rss_bytes(mode: str, path: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, mode, str(path)], check=True, capture_output=True, text=True
    ).stdout
    r = json.loads(out)
    return (r["peak_kb"] - r["base_kb"]) * 1024


def _measure(benchmark, path: Path, rounds: int) -> None:  # type: ignore[no-untyped-def]
    data = path.read_bytes()
    cols = benchmark.pedantic(decode_columns, args=(data,), rounds=rounds, iterations=1, warmup_rounds=1)
    ours_s = benchmark.stats.stats.min
    theirs_s = min(timeit.repeat(lambda: XSpace.FromString(data), number=1, repeat=rounds))
    events = len(cols["events"]["start_ps"])
    mb = len(data) / 1e6
    ratio = theirs_s / ours_s
    benchmark.extra_info.update(
        {"mb_per_s": mb / ours_s, "events_per_s": events / ours_s, "protobuf_s": theirs_s, "speedup_vs_protobuf": ratio}
    )
    record(
        f"decode {path.name}: {mb:.2f} MB, {events:,} events | ours {ours_s * 1e3:.2f} ms "
        f"({mb / ours_s:,.0f} MB/s, {events / ours_s / 1e6:,.1f} M events/s) | protobuf "
        f"{theirs_s * 1e3:.2f} ms | ratio {ratio:.1f}x (target >= 4x)"
    )


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_decode_real(benchmark, path: Path) -> None:  # type: ignore[no-untyped-def]
    _measure(benchmark, path, rounds=20)


def test_decode_large(benchmark, large_file: Path) -> None:  # type: ignore[no-untyped-def]
    _measure(benchmark, large_file, rounds=5)


def test_peak_rss_large(large_file: Path) -> None:
    size = large_file.stat().st_size
    ours = peak_rss_bytes("ours", large_file)
    theirs = peak_rss_bytes("protobuf", large_file)
    record(
        f"peak RSS {large_file.name} ({size / 1e6:.0f} MB): ours {ours / 1e6:.0f} MB = {ours / size:.2f}x "
        f"the file (target <= 2.5x) | protobuf {theirs / 1e6:.0f} MB = {theirs / size:.2f}x"
    )
    assert ours > 0
