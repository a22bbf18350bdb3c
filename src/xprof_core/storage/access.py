"""Which profile URLs a server may read: only those under its logdir roots.

A worker is sent host URLs over the network, and the aggregator maps the host
files its logdir lists, some of which may be symlinks. Both ask
:func:`resolve_under_roots` first and open the URL it returns, never the one
they were given:

- a local path (or ``file://`` URL) is made absolute and every symlink in it is
  resolved; the result must lie inside a local root, itself resolved;
- a remote URL must use the protocol of a remote root (``gs`` and ``gcs``,
  ``s3`` and ``s3a`` are one protocol each), contain no ``..`` component, and
  lie under that root's path;
- chained fsspec URLs (``simplecache::/etc``, ``zip://x::file.zip``) are
  refused outright: the part after ``::`` names another filesystem whose path
  would escape any check made on the first part.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

from xprof_core.errors import AccessDeniedError

__all__ = ["is_under_roots", "resolve_under_roots"]

_LOCAL = frozenset({"", "file", "local"})
_ALIASES = {"gcs": "gs", "s3a": "s3"}


def _split(url: str) -> tuple[str, str]:
    """(protocol, rest) of a URL; protocol "" for a plain path."""
    proto, sep, rest = url.partition("://")
    if not sep or not proto.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return "", url
    proto = proto.lower()
    return _ALIASES.get(proto, proto), rest


def _local_real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def resolve_under_roots(url: str, roots: Sequence[str]) -> str:
    """The URL to open for ``url`` when it lies under one of ``roots``; AccessDeniedError otherwise.

    For a local path that is its real path (symlinks resolved), so opening it cannot
    leave the root even if a link is swapped afterwards; for a remote URL its
    normalised form ``protocol://path``.
    """
    if not isinstance(url, str) or not url or "\0" in url or "::" in url:
        raise AccessDeniedError(f"{str(url)[:300]!r} is outside the logdir roots")
    proto, rest = _split(url)
    if proto in _LOCAL:
        real = _local_real(rest)
        for root in roots:
            r_proto, r_rest = _split(root)
            if r_proto not in _LOCAL:
                continue
            real_root = _local_real(r_rest)
            if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
                return real
        raise AccessDeniedError(f"{url[:300]!r} is outside the logdir roots")
    if ".." in rest.split("/"):
        raise AccessDeniedError(f"{url[:300]!r} is outside the logdir roots")
    norm = posixpath.normpath(rest)
    for root in roots:
        r_proto, r_rest = _split(root)
        if r_proto != proto:
            continue
        r_norm = posixpath.normpath(r_rest)
        if norm == r_norm or norm.startswith(r_norm.rstrip("/") + "/"):
            return f"{proto}://{norm}"
    raise AccessDeniedError(f"{url[:300]!r} is outside the logdir roots")


def is_under_roots(url: str, roots: Sequence[str]) -> bool:
    """True when :func:`resolve_under_roots` accepts ``url``."""
    try:
        resolve_under_roots(url, roots)
    except AccessDeniedError:
        return False
    return True
