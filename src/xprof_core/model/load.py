"""Open a profile file from anywhere fsspec reaches and decode it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xprof_core.model.kineto import is_trace_json_name, load_trace_json, transcode_trace_json
from xprof_core.model.xspace import XSpace, decode_xspace


def load(path_or_url: Any, progress: Callable[[int, int], None] | None = None) -> XSpace:
    """Read and decode one host's ``.xplane.pb`` (or ``.xplane.pb.gz``), or a trace JSON.

    Local files are memory-mapped (no copy, pages shared with the OS cache);
    ``.gz`` files are gunzipped in memory; other fsspec URLs (``gs://``,
    ``s3://``, ``memory://``, ...) are read whole. PyTorch Kineto / Chrome
    trace JSON (``*.json``, ``*.json.gz``, e.g. ``*.pt.trace.json.gz``) is
    streamed through :mod:`xprof_core.model.kineto` into the same model.
    ``progress(done, total)`` in bytes reports decoding progress on large files.
    """
    from xprof_core.storage.logdir import host_name_of, open_host_bytes  # storage: fsspec on first use

    url = str(path_or_url)
    if is_trace_json_name(url):
        return load_trace_json(url, host=host_name_of(url), progress=progress)
    return decode_xspace(open_host_bytes(url), progress=progress)


def host_bytes(url: str) -> Any:
    """The XSpace wire bytes of one host file: its own bytes, or those a trace JSON transcodes to.

    What the host index walks and the decoder reads, whatever the input format. A local file is
    read into memory (:func:`~xprof_core.storage.logdir.read_host_bytes`), not mapped: a file
    truncated while it is read is an error, never a SIGBUS in a server.
    """
    from xprof_core.storage.logdir import host_name_of, read_host_bytes

    if is_trace_json_name(url):
        return transcode_trace_json(url, host=host_name_of(url))
    return read_host_bytes(url)
