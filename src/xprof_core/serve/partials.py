"""Bytes for tool partials: JSON structure plus raw numpy buffers, no pickle.

A partial (see ``tools/base.py``) is a tree of dicts, lists, strings, numbers,
bytes and numpy arrays. ``encode_partial`` writes::

    b"XPC1" | u32 header length | JSON header | padding | buffer 0 | buffer 1 | ...

where every numpy array (and bytes value) in the tree is replaced in the
header by a reference to its buffer. ``decode_partial`` rebuilds the tree with
read-only numpy views on the input (no copy). Nothing executable travels, so a
worker's answer cannot run code in the aggregator.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from xprof_core.errors import SerializationError

MAGIC = b"XPC1"
_ALIGN = 8
_NUMERIC_KINDS = set("biufcmM")


def encode_partial(partial: Any) -> bytes:
    """Serialise a partial to bytes (see the module docstring for the layout)."""
    buffers: list[memoryview] = []

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise SerializationError(f"dict keys must be str, got {type(k).__name__}")
                out[k] = walk(x)
            return out
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "O" or v.dtype.kind == "U":
                return {"__list__": [walk(x) for x in v.tolist()]}
            if v.dtype.kind not in _NUMERIC_KINDS:
                raise SerializationError(f"cannot encode arrays of dtype {v.dtype}")
            arr = np.ascontiguousarray(v)
            buffers.append(memoryview(arr.view(np.uint8).reshape(-1)))  # type: ignore[arg-type]
            return {"__nd__": len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}
        if isinstance(v, (bytes, bytearray, memoryview)):
            buffers.append(memoryview(bytes(v)))
            return {"__bytes__": len(buffers) - 1}
        if isinstance(v, np.generic):
            return v.item()
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        raise SerializationError(f"cannot encode a {type(v).__name__}")

    tree = walk(partial)
    offsets = []
    pos = 0
    for b in buffers:
        pos = (pos + _ALIGN - 1) // _ALIGN * _ALIGN
        offsets.append([pos, b.nbytes])
        pos += b.nbytes
    header = orjson.dumps({"tree": tree, "buffers": offsets})
    start = len(MAGIC) + 4 + len(header)
    pad = (-start) % _ALIGN
    out = bytearray(start + pad + pos)
    out[:4] = MAGIC
    out[4:8] = struct.pack("<I", len(header))
    out[8:start] = header
    base = start + pad
    for (off, n), b in zip(offsets, buffers, strict=True):
        out[base + off : base + off + n] = b
    return bytes(out)


def decode_partial(data: bytes | bytearray | memoryview) -> Any:
    """Rebuild a partial from ``encode_partial``'s bytes; arrays are read-only views on ``data``."""
    view = memoryview(data)
    if view.nbytes < 8 or bytes(view[:4]) != MAGIC:
        raise SerializationError("not an encoded partial (bad magic)")
    (hlen,) = struct.unpack("<I", view[4:8])
    start = 8 + hlen
    if start > view.nbytes:
        raise SerializationError("truncated partial header")
    try:
        header = orjson.loads(bytes(view[8:start]))
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"corrupt partial header: {exc}") from None
    base = start + (-start) % _ALIGN
    if not isinstance(header, dict) or "tree" not in header:
        raise SerializationError("corrupt partial header: not an object with a tree")
    spans = header.get("buffers", [])
    try:
        for off, n in spans:
            if off < 0 or n < 0 or base + off + n > view.nbytes:
                raise SerializationError("partial buffer outside the data")
    except (TypeError, ValueError):
        raise SerializationError("corrupt partial header: bad buffer spans") from None

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            if "__nd__" in v:
                off, n = spans[v["__nd__"]]
                dtype = np.dtype(v["dtype"])
                if dtype.kind not in _NUMERIC_KINDS:
                    raise SerializationError(f"bad dtype {dtype}")
                arr = np.frombuffer(view[base + off : base + off + n], dtype=dtype)
                return arr.reshape(v["shape"])
            if "__bytes__" in v:
                off, n = spans[v["__bytes__"]]
                return bytes(view[base + off : base + off + n])
            if "__list__" in v:
                return np.array([walk(x) for x in v["__list__"]], dtype=object)
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    try:
        return walk(header["tree"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # a tree that does not match its buffers
        raise SerializationError(f"corrupt partial: {type(exc).__name__}: {exc}") from None
