"""PyTorch Kineto / Chrome trace JSON as a columnar :class:`~xprof_core.model.xspace.XSpace`.

The compiled transcoder (:mod:`xprof_core._fast.kineto`) streams the JSON
into XSpace wire bytes without a Python object per event; this module feeds
it chunks (read or gunzipped piece by piece, so the whole JSON is never in
memory), lays out the planes the way XProf's GPU profiles are laid out, and
decodes the bytes with the XSpace decoder. What the tools then see:

* ``/host:CPU``: one line per thread (``pid``/``tid``), named by the trace's
  ``thread_name`` metadata; CPU ops, Python functions, runtime calls,
  annotations and instants. ``ProfilerStep#N`` carries ``step_num`` N,
  ``[memory]`` instants become XProf's ``MemoryAllocation`` /
  ``MemoryDeallocation`` events with its memory stats and the op they
  happened in as ``enclosing_op``; every ``cpu_op`` carries ``tf_op`` (its
  own name).
* ``/device:GPU:<n>``: one ``Stream #<s>`` line per stream (kernels, memcpy,
  memset) and ``Annotations (Stream #<s>)`` for GPU user annotations. Kernels
  carry ``kernel_details`` (registers, shared memory, grid, block, occupancy
  in XProf's text form); activities carry ``correlation_id`` and, through
  it, the ``tf_op`` of the CPU op that launched them. Plane stats come from
  ``deviceProperties`` (``gpu_device_name``, ``compute_cap_major/minor``,
  ``core_count``, ``memory_size`` and Kineto's own keys).
* ``/host:flows``: flow endpoints (``s``/``t``/``f``: ``ac2g``, ``fwdbwd``)
  as instants with ``ph``, ``flow_id`` and ``bp`` stats.

Every argument of an event is a stat under its own name (integers typed,
strings interned); ``cat`` and, for instants and counters, ``ph`` too.
Top-level keys (``distributedInfo``, ``baseTimeNanoseconds``, ...) are stats
of ``/host:CPU``, with ``rank`` and ``world_size`` taken out of
``distributedInfo``.
"""

from __future__ import annotations

import json
import queue
import threading
import types
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from xprof_core._fast.kineto import KinetoTranscoder
from xprof_core.errors import DecodeError
from xprof_core.model.xspace import XSpace, decode_xspace

_zlib: types.ModuleType = zlib
try:  # ISA-L's inflate is about twice zlib's speed; zlib when the optional isal package is absent
    from isal import isal_zlib as _isal_zlib  # type: ignore[import-not-found,unused-ignore]

    _zlib = _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    pass

CHUNK_BYTES = 8 << 20
TRACE_JSON_SUFFIXES = (".json", ".json.gz")
_TAG_STRING = 1 << 62
_GZIP_MAGIC = b"\x1f\x8b"
Progress = Callable[[int, int], None]


def is_trace_json_name(path: str) -> bool:
    """Whether a file name is a Chrome / Kineto trace (``*.json`` or ``*.json.gz``)."""
    return str(path).endswith(TRACE_JSON_SUFFIXES)


def decode_trace_json(buf: Any, host: str = "", progress: Progress | None = None) -> XSpace:
    """Decode trace JSON held in memory (bytes, bytearray, memoryview, mmap; gzip or plain).

    Raises :class:`xprof_core.DecodeError` with the byte offset in the JSON
    on bad input.
    """
    view = memoryview(buf).cast("B")
    if bytes(view[:2]) == _GZIP_MAGIC:
        chunks: Iterator[Any] = _gunzip_chunks(_slices(view), "<bytes>")
        return decode_xspace(_transcode(chunks, host, len(view), progress, compressed=True))
    return decode_xspace(_transcode(iter([view]), host, len(view), progress, compressed=False))


def load_trace_json(url: str, host: str = "", progress: Progress | None = None) -> XSpace:
    """Read and decode one trace JSON file (local path or fsspec URL), streaming it in chunks."""
    return decode_xspace(transcode_trace_json(url, host, progress))


def transcode_trace_json(url: str, host: str = "", progress: Progress | None = None) -> bytearray:
    """The XSpace wire bytes of one trace JSON file (local path or fsspec URL), streamed in chunks."""
    from xprof_core.storage.logdir import open_host_stream

    handle, size = open_host_stream(url)
    with handle:
        head = handle.read(2)
        chunks = _prepend(head, _read_chunks(handle))
        if head == _GZIP_MAGIC:
            return _transcode(_prefetch(_gunzip_chunks(chunks, url)), host, size, progress, compressed=True)
        return _transcode(_prefetch(chunks), host, size, progress, compressed=False)


# --- chunk sources ---


def _read_chunks(handle: Any) -> Iterator[bytes]:
    while True:
        chunk = handle.read(CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _slices(view: memoryview) -> Iterator[memoryview]:
    for lo in range(0, len(view), CHUNK_BYTES):
        yield view[lo : lo + CHUNK_BYTES]


def _prefetch(chunks: Iterator[Any], depth: int = 3) -> Iterator[Any]:
    """Run a chunk source (file reads, gunzip) in a thread, ``depth`` chunks ahead of the consumer.

    zlib and file reads release the GIL, so inflating the next chunks overlaps
    with transcoding this one on another core.
    """
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        box.put(("chunk", chunk), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(("error", exc))

    worker = threading.Thread(target=produce, name="trace-json-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _gunzip_chunks(chunks: Iterator[Any], url: str) -> Iterator[bytes]:
    """Gunzip a stream of compressed chunks (concatenated gzip members too), bounded output per piece."""
    inflater = _zlib.decompressobj(wbits=31)
    try:
        for chunk in chunks:
            data = bytes(chunk)
            while data:
                out = inflater.decompress(data, CHUNK_BYTES)
                if out:
                    yield out
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data and not data:
                    data = inflater.unused_data  # the next gzip member
                    inflater = _zlib.decompressobj(wbits=31)
        tail = inflater.flush()
        if tail:
            yield tail
        if not inflater.eof:
            raise DecodeError(f"{url}: truncated gzip stream", 0, "gzip")
    except _zlib.error as exc:
        raise DecodeError(f"{url}: not a valid gzip file: {exc}", 0, "gzip") from exc


# --- the transcoding loop ---


def _transcode(chunks: Iterator[Any], host: str, size: int, progress: Progress | None, compressed: bool) -> bytearray:
    coder = KinetoTranscoder()
    pending: Any = b""
    read = 0
    for chunk in chunks:
        read += len(chunk)
        data = bytes(pending) + bytes(chunk) if len(pending) else chunk
        used = coder.feed(data, False)
        if used < 0:
            _raise(coder)
        pending = memoryview(data)[used:] if used < len(data) else b""
        if progress is not None and not compressed:
            progress(min(read, size), size)
    if coder.feed(bytes(pending), True) < 0:
        _raise(coder)
    if progress is not None:
        progress(size, size)
    planes = _layout(coder)
    notes = []
    if coder.skipped:
        notes.append(f"{coder.skipped} trace events of phases other than X, i, I, C, s, t, f, M were not read")
    if coder.negative_durations:
        notes.append(f"{coder.negative_durations} trace events with a negative duration were read as instants")
    return coder.write(host, planes, notes)


def _raise(coder: KinetoTranscoder) -> None:
    error = coder.error() or ("bad trace JSON", 0, "$")
    raise DecodeError(*error)


# --- planes and lines ---


def _key_sort(key: int) -> tuple[int, int]:
    return (1, key & ~_TAG_STRING) if key & _TAG_STRING else (0, key)


def _top_level(coder: KinetoTranscoder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in coder.top_items:
        try:
            out[key] = json.loads(raw)
        except ValueError:  # the transcoder validated it; keep the text if Python disagrees
            out[key] = raw.decode("utf-8", "replace")
    return out


def _host_stats(top: dict[str, Any], coder: KinetoTranscoder) -> list[tuple[str, Any]]:
    stats: list[tuple[str, Any]] = []
    for key, value in top.items():
        if key == "deviceProperties":
            continue
        if isinstance(value, (bool, int, float, str)):
            stats.append((key, value))
        else:
            stats.append((key, json.dumps(value, separators=(",", ":"))))
    info = top.get("distributedInfo")
    if isinstance(info, dict):
        for key in ("rank", "world_size", "backend"):
            if isinstance(info.get(key), (int, str)) and not isinstance(info.get(key), bool):
                stats.append((key, info[key]))
    if coder.base_ps:  # epoch-based clocks: times are relative to this instant (us)
        stats.append(("time_base_us", int(coder.base_ps) // 1_000_000))
    return stats


_DEVICE_STATS = {
    "name": "gpu_device_name",
    "computeMajor": "compute_cap_major",
    "computeMinor": "compute_cap_minor",
    "numSms": "core_count",
    "totalGlobalMem": "memory_size",
}


def _device_stats(top: dict[str, Any], device: int) -> list[tuple[str, Any]]:
    props = top.get("deviceProperties")
    entry: dict[str, Any] = {}
    if isinstance(props, list):
        for item in props:
            if isinstance(item, dict) and item.get("id") == device:
                entry = item
                break
    stats: list[tuple[str, Any]] = []
    for key, value in entry.items():
        if isinstance(value, (bool, int, float, str)) and key != "id":
            stats.append((_DEVICE_STATS.get(key, key), value))
            if key in _DEVICE_STATS:
                stats.append((key, value))
    amd = any(k in top for k in ("roctracer_version", "hip_runtime_version", "hip_driver_version")) or any(
        word in str(entry.get("name", "")) for word in ("AMD", "Instinct", "Radeon")
    )
    if amd:
        stats.append(("device_vendor", "AMD"))
    if not entry:
        stats.append(("gpu_device_name", "GPU"))  # no deviceProperties in the trace (older Kineto)
    return stats


def _layout(coder: KinetoTranscoder) -> list[tuple[int, int, str, list[tuple[int, int, int, str]], list[Any]]]:
    """The output planes: host, GPUs by index, flows; lines sorted by (pid, tid) / stream."""
    top = _top_level(coder)
    thread_names: dict[tuple[int, int], str] = {}
    for what, pid, tid, value in coder.metadata:
        if what == "thread_name":
            thread_names[(pid, tid)] = value
    by_plane: dict[int, list[tuple[int, int, int, int, int]]] = {}
    devices: dict[int, int] = {}
    for index, (plane, device, pid, tid, kind, _n) in enumerate(coder.lines_info()):
        by_plane.setdefault(plane, []).append((index, pid, tid, kind, _n))
        if plane >= 2:
            devices[plane] = device
    planes: list[tuple[int, int, str, list[tuple[int, int, int, str]], list[Any]]] = []

    def text(key: int) -> str:
        value = coder.key_text(key)
        return str(value)

    def numeric(key: int, fallback: int) -> int:
        return fallback if key & _TAG_STRING else key

    host_lines = []
    for i, (index, pid, tid, _kind, _n) in enumerate(
        sorted(by_plane.get(0, []), key=lambda r: (_key_sort(r[1]), _key_sort(r[2])))
    ):
        name = thread_names.get((pid, tid)) or (f"thread {text(tid)}" if not tid & _TAG_STRING else text(tid))
        name = name or text(pid) or "(no pid or tid)"
        host_lines.append((index, numeric(tid, i), numeric(pid, 0), name))
    planes.append((0, 0, "/host:CPU", host_lines, _host_stats(top, coder)))
    for plane in sorted(devices, key=lambda p: devices[p]):
        device = devices[plane]
        lines = []
        rows = sorted(by_plane[plane], key=lambda r: (r[3], _key_sort(r[2])))
        for i, (index, _pid, tid, kind, _n) in enumerate(rows):
            stream = text(tid)
            name = f"Stream #{stream}" if kind == 0 else f"Annotations (Stream #{stream})"
            lines.append((index, numeric(tid, 1_000_000 + i) + (1 << 32) * kind, device, name))
        planes.append((plane, device + 1, f"/device:GPU:{device}", lines, _device_stats(top, device)))
    if by_plane.get(1):
        flow_lines = []
        for i, (index, pid, tid, _kind, _n) in enumerate(
            sorted(by_plane[1], key=lambda r: (_key_sort(r[1]), _key_sort(r[2])))
        ):
            flow_lines.append((index, numeric(tid, i), numeric(pid, 0), thread_names.get((pid, tid)) or text(tid)))
        planes.append((1, 1000, "/host:flows", flow_lines, []))
    return planes


__all__ = ["TRACE_JSON_SUFFIXES", "decode_trace_json", "is_trace_json_name", "load_trace_json", "transcode_trace_json"]
