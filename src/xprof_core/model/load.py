"""Open a profile file from anywhere fsspec reaches and decode it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xprof_core.model.xspace import XSpace, decode_xspace


def load(path_or_url: Any, progress: Callable[[int, int], None] | None = None) -> XSpace:
    """Read and decode one host's ``.xplane.pb`` (or ``.xplane.pb.gz``).

    Local files are memory-mapped (no copy, pages shared with the OS cache);
    ``.gz`` files are gunzipped in memory; other fsspec URLs (``gs://``,
    ``s3://``, ``memory://``, ...) are read whole. ``progress(done, total)`` in
    bytes reports decoding progress on large files.
    """
    from xprof_core.storage.logdir import open_host_bytes  # storage layer: fsspec is imported on first use

    return decode_xspace(open_host_bytes(str(path_or_url)), progress=progress)
