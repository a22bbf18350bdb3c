"""Run and host discovery over fsspec.

A logdir holds profiles laid out the way JAX, TensorFlow and XProf write them::

    <logdir>/[<sub>/...]plugins/profile/<session>/<host>.xplane.pb[.gz]

or the way PyTorch's profiler writes them for TensorBoard (Kineto trace JSON)::

    <logdir>/<run>/<worker>[.<timestamp>].pt.trace.json[.gz]

where a *run* is any directory holding ``*.pt.trace.json[.gz]`` files, named by its path
relative to the logdir, and each worker file (one per rank of a multi-rank job) is a host named
``<worker>`` (the millisecond timestamp the TensorBoard handler appends is dropped unless two
files of one run would then share a name).

A *run* is one session directory. Its name follows XProf's "frontend run name": the path of the
directory holding ``plugins/`` relative to the logdir, joined with the session name
(``train/2024_01_02_03_04_05``), or just the session name when ``plugins/profile`` sits directly
under the logdir. A *host* is one ``<host>.xplane.pb`` (or ``.xplane.pb.gz``) file in a session.

For convenience the logdir may also point straight at a session directory (one run, named after
that directory) or at a ``plugins/profile`` directory (one run per session, named by session).

Discovery is read-only and tolerant: a directory or file that cannot be read is recorded as a
problem (in :attr:`Run.problems` or :attr:`Logdir.problems`) and logged, never raised.
"""

from __future__ import annotations

import logging
import mmap
import os
import posixpath
import re
import stat
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec
import fsspec.core
import fsspec.utils
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from xprof_core.errors import (
    DecodeError,
    HostNotFoundError,
    LogdirError,
    LogdirNotFoundError,
    MissingExtraError,
    NotAProfileFileError,
    ProfileChangedError,
    ProfileNotFoundError,
    ProfileTooLargeError,
    RunNotFoundError,
    StorageAccessError,
    XprofError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "HOST_SUFFIXES",
    "Host",
    "HostBytes",
    "HostNotFoundError",
    "Logdir",
    "LogdirError",
    "MissingExtraError",
    "Run",
    "RunNotFoundError",
    "host_name_from_file",
    "gunzip_limit",
    "is_kineto_file",
    "open_host_bytes",
    "open_host_stream",
    "read_host_bytes",
    "open_regular_file",
    "read_host_ranges",
    "set_max_gunzip_ratio",
]

#: File name endings of host profiles, uncompressed first (it wins when both exist).
HOST_SUFFIXES: tuple[str, ...] = (".xplane.pb", ".xplane.pb.gz", ".pt.trace.json", ".pt.trace.json.gz")
#: Endings of PyTorch (Kineto) trace files, which make their directory a run.
KINETO_SUFFIXES: tuple[str, ...] = (".pt.trace.json", ".pt.trace.json.gz")
_WORKER_TIMESTAMP = re.compile(r"\.\d{10,}$")

#: What a bytes-like host profile is: a read-only memory map, a private copy, or bytes.
HostBytes = bytes | bytearray | mmap.mmap

_PLUGINS_DIR = "plugins"
_PROFILE_DIR = "profile"
_SESSION_TIMESTAMP = re.compile(r"\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}")
_MAX_DEPTH = 64  # directory levels below the logdir; deeper trees are reported, not walked
_EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3"}
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


@dataclass(frozen=True)
class Host:
    """One host profile file of a run.

    ``url`` is a plain local path for local logdirs and a full fsspec URL (``memory://``,
    ``gs://``, ...) otherwise; either can be passed to :func:`open_host_bytes`.
    """

    name: str
    url: str
    size_bytes: int

    @property
    def compressed(self) -> bool:
        """Whether the file is gzip-compressed (``.xplane.pb.gz``)."""
        return self.url.endswith(".gz")


@dataclass
class Run:
    """One profiling session: its name, its directory and its hosts (sorted by name).

    ``problems`` lists entries of the session directory that could not be read.
    """

    name: str
    session_url: str
    hosts: list[Host] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def session(self) -> str:
        """The session directory name (the last component of the run name)."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def host_names(self) -> list[str]:
        """The host names, sorted."""
        return [host.name for host in self.hosts]

    def host(self, name: str) -> Host:
        """Return the host called ``name``; raise :class:`HostNotFoundError` when absent."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise HostNotFoundError(f"no host {name!r} in run {self.name!r}")


@dataclass(frozen=True)
class _Entry:
    """One listed directory entry, with symlinks resolved."""

    name: str
    path: str
    kind: Literal["directory", "file", "other", "missing"]
    size: int


def host_name_from_file(file_name: str, keep_timestamp: bool = False) -> str | None:
    """Return the host name of a profile file name, or None when it is not a host profile.

    PyTorch trace files ``<worker>.<timestamp ms>.pt.trace.json`` name the worker; the
    timestamp stays with ``keep_timestamp``.
    """
    for suffix in HOST_SUFFIXES:
        if file_name.endswith(suffix) and len(file_name) > len(suffix):
            stem = file_name[: -len(suffix)]
            if suffix in KINETO_SUFFIXES and not keep_timestamp:
                stem = _WORKER_TIMESTAMP.sub("", stem) or stem
            return stem
    return None


def host_name_of(path: str) -> str:
    """The host name of a profile path or URL: its file name without the profile suffix."""
    base = posixpath.basename(str(path).replace("\\", "/").rstrip("/"))
    if base.endswith((".json", ".json.gz")) and not base.endswith(KINETO_SUFFIXES):
        return base.removesuffix(".gz").removesuffix(".json") or base
    return host_name_from_file(base) or base


def is_kineto_file(file_name: str) -> bool:
    """Whether a file name is a PyTorch (Kineto) trace in TensorBoard's naming."""
    return file_name.endswith(KINETO_SUFFIXES) and host_name_from_file(file_name) is not None


class Logdir:
    """A profile log directory on any fsspec filesystem.

    ``url`` is a local path, a ``file://`` URL or any fsspec URL (``memory://``, ``gs://``,
    ``s3://``, ...). ``storage_options`` are passed to the filesystem; ``fs`` overrides the
    filesystem altogether (``url`` is then a path on it). Nothing is read until :meth:`runs` or
    :meth:`run` is called, and nothing is ever written.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
        fs: AbstractFileSystem | None = None,
    ) -> None:
        text = os.fspath(url)
        if not text:
            raise LogdirError("empty logdir URL")
        if fs is None:
            fs, path = _filesystem_for(text, storage_options)
        else:
            path = fs._strip_protocol(text)
        self.url: str = text
        self.fs: AbstractFileSystem = fs
        self.is_local: bool = _is_local_fs(fs)
        #: The logdir's path on :attr:`fs` (no protocol, no trailing slash; normalised when local).
        self.root: str = posixpath.normpath(path) if self.is_local else _strip_trailing_slashes(path)
        #: Problems met by the last :meth:`runs` outside any session (unreadable sub-directories,
        #: a missing logdir); problems inside a session are in that :attr:`Run.problems`.
        self.problems: list[str] = []
        #: Why the last :meth:`runs` could not list the logdir itself, when the storage said so:
        #: :class:`~xprof_core.errors.StorageAccessError` (access denied) or
        #: :class:`~xprof_core.errors.LogdirNotFoundError` (a bucket that does not exist). A
        #: missing local directory or bucket prefix is only a problem: it may be filled later.
        self.root_error: XprofError | None = None

    def __repr__(self) -> str:
        return f"Logdir({self.url!r})"

    # -- public API ------------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """List every run, newest session first.

        Sessions named by timestamp (``YYYY_MM_DD_HH_MM_SS``) come first, newest first; runs
        whose session name is not a timestamp follow in name order. Problems outside sessions
        are stored in :attr:`problems`.
        """
        problems: list[str] = []
        self.root_error = None
        self.fs.invalidate_cache()  # remote filesystems cache listings; always list afresh
        entries = self._list_root(problems)
        runs: list[Run] = []
        if entries is not None:
            layout = self._layout(entries)
            if layout == "session":
                runs = [self._read_session(posixpath.basename(self.root), self.root, entries)]
            elif layout == "profile":
                runs = self._read_profile_dir((), self.root, entries, problems)
            else:
                runs = self._walk(entries, problems)
        self.problems = problems
        return _sorted_runs(runs)

    def run(self, name: str) -> Run:
        """Return the run called ``name`` (as listed by :meth:`runs`).

        Raises :class:`RunNotFoundError` (a :class:`~xprof_core.errors.ProfileNotFoundError`) when
        no such run exists or when the name is not a valid run name: names with ``..`` or ``.``
        components, empty components, absolute paths or backslashes never reach the filesystem.
        """
        parts = _run_name_parts(name)
        self.fs.invalidate_cache()
        entries = self._list_root([])
        if entries is None:
            raise RunNotFoundError(f"no run {name!r} in {self.url!r}: the logdir cannot be listed")
        layout = self._layout(entries)
        if layout == "session":
            if parts != (posixpath.basename(self.root),):
                raise RunNotFoundError(f"no run {name!r} in {self.url!r}")
            return self._read_session(parts[0], self.root, entries)
        if layout == "profile":
            if len(parts) != 1:
                raise RunNotFoundError(f"no run {name!r} in {self.url!r}")
            path = posixpath.join(self.root, parts[0])
        else:
            path = posixpath.join(self.root, *parts[:-1], _PLUGINS_DIR, _PROFILE_DIR, parts[-1])
            kineto = posixpath.join(self.root, *parts)
            if not self._isdir(path) and self._is_inside_root(kineto) and self._isdir(kineto):
                entries = self._list(kineto, [])
                if entries and any(e.kind == "file" and is_kineto_file(e.name) for e in entries):
                    return self._read_session("/".join(parts), kineto, entries)  # TensorBoard's PyTorch layout
        if not self._is_inside_root(path) or not self._isdir(path):
            raise RunNotFoundError(f"no run {name!r} in {self.url!r}")
        return self._read_session("/".join(parts), path)

    def host_url(self, run: Run | str, host: Host | str) -> str:
        """Return the URL of ``host`` in ``run``; raise a ProfileNotFoundError when either is absent."""
        run_obj = run if isinstance(run, Run) else self.run(run)
        return run_obj.host(host.name if isinstance(host, Host) else host).url

    def open_host_bytes(self, host: Host | str) -> HostBytes:
        """Read a host profile (a :class:`Host` or its URL) through this logdir's filesystem."""
        url = host.url if isinstance(host, Host) else host
        return open_host_bytes(url, fs=None if self.is_local else self.fs)

    # -- discovery -------------------------------------------------------------------------------

    def _list_root(self, problems: list[str]) -> list[_Entry] | None:
        """List the logdir itself, recording a problem when it is missing or not a directory."""
        entries = self._list(self.root, problems)
        if entries is None:
            return None
        if len(entries) == 1 and entries[0].path == self.root and entries[0].kind != "directory":
            _report(problems, f"logdir {self.url!r} is not a directory")
            return None
        return [entry for entry in entries if entry.path != self.root]

    def _layout(self, entries: list[_Entry]) -> Literal["session", "profile", "logdir"]:
        """Tell what the logdir points at: a session dir, a plugins/profile dir, or a real logdir."""
        if any(entry.kind == "file" and host_name_from_file(entry.name) for entry in entries):
            return "session"
        parent = posixpath.dirname(self.root)
        if posixpath.basename(self.root) == _PROFILE_DIR and posixpath.basename(parent) == _PLUGINS_DIR:
            return "profile"
        return "logdir"

    def _walk(self, root_entries: list[_Entry], problems: list[str]) -> list[Run]:
        """Walk the logdir for ``<sub>/plugins/profile`` directories and read their sessions."""
        runs: list[Run] = []
        visited = {self._identity(self.root)}
        # Each item: path components below the logdir, the directory path, its entries (None: list it).
        stack: list[tuple[tuple[str, ...], str, list[_Entry] | None]] = [((), self.root, root_entries)]
        while stack:
            rel, path, entries = stack.pop()
            if entries is None:
                entries = self._list(path, problems)
                if entries is None:
                    continue
            if rel and any(e.kind == "file" and is_kineto_file(e.name) for e in entries):
                runs.append(self._read_session("/".join(rel), path, entries))  # TensorBoard's PyTorch layout
            children = sorted((e for e in entries if e.kind == "directory"), key=lambda e: e.name)
            for child in reversed(children):  # reversed: the stack pops them in name order
                if rel and rel[-1] == _PLUGINS_DIR and child.name == _PROFILE_DIR:
                    runs.extend(self._read_profile_dir(rel[:-1], child.path, None, problems))
                    continue
                if len(rel) + 1 > _MAX_DEPTH:
                    _report(problems, f"{self._url(child.path)}: deeper than {_MAX_DEPTH} levels, skipped")
                    continue
                identity = self._identity(child.path)
                if identity in visited:
                    logger.debug("skipping %s: already visited (symlink loop?)", child.path)
                    continue
                visited.add(identity)
                stack.append(((*rel, child.name), child.path, None))
        return runs

    def _read_profile_dir(
        self,
        sub: tuple[str, ...],
        path: str,
        entries: list[_Entry] | None,
        problems: list[str],
    ) -> list[Run]:
        """Read every session directory of one ``plugins/profile`` directory."""
        if entries is None:
            entries = self._list(path, problems)
            if entries is None:
                return []
        sessions = sorted((e for e in entries if e.kind == "directory"), key=lambda e: e.name)
        return [self._read_session("/".join((*sub, e.name)), e.path) for e in sessions]

    def _read_session(self, name: str, path: str, entries: list[_Entry] | None = None) -> Run:
        """Read one session directory into a :class:`Run`."""
        run = Run(name=name, session_url=self._url(path))
        if entries is None:
            entries = self._list(path, run.problems)
            if entries is None:
                return run
        hosts: dict[str, Host] = {}
        stems: dict[str, set[str]] = {}  # host name -> the files' stems, to keep timestamps that tell workers apart
        for entry in entries:
            if is_kineto_file(entry.name):
                stems.setdefault(str(host_name_from_file(entry.name)), set()).add(
                    str(host_name_from_file(entry.name.removesuffix(".gz"), keep_timestamp=True))
                )
        for entry in entries:
            host_name = host_name_from_file(entry.name)
            if host_name is None:
                continue
            if len(stems.get(host_name, ())) > 1:
                host_name = str(host_name_from_file(entry.name, keep_timestamp=True))
            url = self._url(entry.path)
            if entry.kind == "missing":
                _report(run.problems, f"{url}: broken link")
                continue
            if entry.kind != "file":
                _report(run.problems, f"{url}: not a regular file")
                continue
            if self.is_local and not os.access(entry.path, os.R_OK):
                _report(run.problems, f"{url}: not readable")
                continue
            host = Host(name=host_name, url=url, size_bytes=entry.size)
            known = hosts.get(host_name)
            if known is None or (known.compressed and not host.compressed):
                hosts[host_name] = host
        run.hosts = sorted(hosts.values(), key=lambda h: h.name)
        return run

    def _list(self, path: str, problems: list[str]) -> list[_Entry] | None:
        """List a directory; on failure record a problem and return None."""
        try:
            raw = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            _report(problems, f"{self._url(path)}: does not exist")
            if path == self.root and not self.is_local and not self._bucket_exists():
                bucket = self.root.split("/", 1)[0]
                self.root_error = LogdirNotFoundError(f"logdir {self.url!r}: the bucket {bucket!r} does not exist")
            return None
        except PermissionError as exc:
            _report(problems, f"{self._url(path)}: cannot list: {exc}")
            if path == self.root:
                self.root_error = StorageAccessError(f"logdir {self.url!r}: access denied: {exc}")
            return None
        except Exception as exc:  # any filesystem error (OSError, HTTP errors...) is a problem, not fatal
            _report(problems, f"{self._url(path)}: cannot list: {exc}")
            return None
        return [self._entry(info) for info in raw]

    def _entry(self, info: Mapping[str, Any]) -> _Entry:
        """Turn an fsspec ``ls`` record into an :class:`_Entry`, following symlinks."""
        entry_path = _strip_trailing_slashes(str(info["name"]))
        kind = info.get("type")
        size = int(info.get("size") or 0)
        if kind not in ("directory", "file") and info.get("islink"):
            try:
                target = self.fs.info(entry_path)  # local info() follows the link
            except Exception:  # a broken or unreadable link
                return _Entry(posixpath.basename(entry_path), entry_path, "missing", 0)
            kind = target.get("type")
            size = int(target.get("size") or 0)
        name = posixpath.basename(entry_path)
        if kind == "directory":
            return _Entry(name, entry_path, "directory", size)
        if kind == "file":
            return _Entry(name, entry_path, "file", size)
        return _Entry(name, entry_path, "other", size)

    # -- paths -----------------------------------------------------------------------------------

    def _is_inside_root(self, path: str) -> bool:
        """Lexical containment: ``path`` is below the logdir root after normalisation."""
        root = posixpath.normpath(self.root).rstrip("/")
        return posixpath.normpath(path).startswith(root + "/")

    def _bucket_exists(self) -> bool:
        """Whether the bucket of a remote logdir exists (True when the storage cannot tell)."""
        try:
            return bool(self.fs.exists(self.root.split("/", 1)[0]))
        except Exception:  # noqa: BLE001 - unknown: do not claim the bucket is missing
            return True

    def _isdir(self, path: str) -> bool:
        try:
            return bool(self.fs.isdir(path))
        except Exception:  # unreadable counts as absent
            return False

    def _identity(self, path: str) -> str:
        """A key that is equal for two paths naming the same directory (local symlinks resolved)."""
        return os.path.realpath(path) if self.is_local else path

    def _url(self, path: str) -> str:
        """The URL users see: a plain path for local files, a full fsspec URL otherwise."""
        return path if self.is_local else str(self.fs.unstrip_protocol(path))


def open_host_bytes(
    url: str | os.PathLike[str],
    *,
    fs: AbstractFileSystem | None = None,
    storage_options: Mapping[str, Any] | None = None,
    max_gunzip_ratio: float | None = None,
) -> HostBytes:
    """Return the bytes of one host profile.

    A local uncompressed file comes back as a read-only :class:`mmap.mmap` (``b""`` when empty);
    a ``.gz`` file as its gunzipped bytes; any other fsspec URL as the bytes read. ``fs`` (or
    ``storage_options``) selects the filesystem for remote URLs. Only regular files are opened
    (a FIFO or a device raises :class:`~xprof_core.errors.NotAProfileFileError` without blocking).
    Raises :class:`~xprof_core.errors.ProfileNotFoundError` when the file does not exist,
    :class:`~xprof_core.errors.DecodeError` when a ``.gz`` file is not valid gzip and
    :class:`~xprof_core.errors.ProfileTooLargeError` when it would inflate past
    :func:`gunzip_limit` (``max_gunzip_ratio`` times its size; default :data:`MAX_GUNZIP_RATIO`).

    A memory map is shared with the file: if another process truncates the file while the
    map is read, the reader gets SIGBUS. The servers read with :func:`read_host_bytes` instead.
    """
    text = os.fspath(url)
    local_path = _local_path(text) if fs is None or _is_local_fs(fs) else None
    if local_path is None:
        return _read_remote(text, fs, storage_options, max_gunzip_ratio)
    fd, size = _open_regular(local_path, text)
    try:
        if text.endswith(".gz"):
            return _gunzip(_read_fd(fd, size, text), text, max_gunzip_ratio)
        if size == 0:
            return b""
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def read_host_bytes(
    url: str | os.PathLike[str],
    *,
    fs: AbstractFileSystem | None = None,
    storage_options: Mapping[str, Any] | None = None,
    max_gunzip_ratio: float | None = None,
) -> bytes | bytearray:
    """Like :func:`open_host_bytes`, but a local file is copied into memory instead of mapped.

    The copy is private: a file truncated or rewritten while it is read raises
    :class:`~xprof_core.errors.ProfileChangedError` (the bytes read differ from the size the
    file had when it was opened), never SIGBUS, and later changes cannot reach a decoder
    that is still reading. What the aggregator and the workers use.
    """
    text = os.fspath(url)
    local_path = _local_path(text) if fs is None or _is_local_fs(fs) else None
    if local_path is None:
        return _read_remote(text, fs, storage_options, max_gunzip_ratio)
    fd, size = _open_regular(local_path, text)
    try:
        data = _read_fd(fd, size, text)
    finally:
        os.close(fd)
    return _gunzip(data, text, max_gunzip_ratio) if text.endswith(".gz") else data


#: The default of ``--max_gunzip_ratio``: a ``.gz`` host file may inflate to this many times its
#: size (real profiles compress 5-30 times), and always to :data:`GUNZIP_ALLOWANCE_BYTES`.
MAX_GUNZIP_RATIO = 100.0
GUNZIP_ALLOWANCE_BYTES = 64 << 20
_max_gunzip_ratio = MAX_GUNZIP_RATIO


def set_max_gunzip_ratio(ratio: float) -> None:
    """Set this process's default ratio for :func:`gunzip_limit` (the servers' ``--max_gunzip_ratio``)."""
    global _max_gunzip_ratio
    if not ratio > 0:
        raise ValueError(f"the gunzip ratio must be positive, got {ratio!r}")
    _max_gunzip_ratio = float(ratio)


def gunzip_limit(compressed_bytes: int, ratio: float | None = None) -> int:
    """The most bytes a gzip file of ``compressed_bytes`` may inflate to."""
    r = _max_gunzip_ratio if ratio is None else ratio
    return max(GUNZIP_ALLOWANCE_BYTES, int(compressed_bytes * r))


def open_regular_file(url: str) -> int | None:
    """A read-only descriptor of a local profile file (a plain path or ``file://`` URL), refusing anything
    but a regular file (a FIFO, a directory); None for a remote URL. The caller closes it."""
    text = os.fspath(url)
    path = _local_path(text)
    if path is None:
        return None
    fd, _ = _open_regular(path, text)
    return fd


def _open_regular(path: str, url: str) -> tuple[int, int]:
    """Open a local file for reading, refusing anything but a regular file: (fd, size)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for regular files.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError as exc:
        raise ProfileNotFoundError(f"no profile file at {url!r}") from exc
    except IsADirectoryError as exc:
        raise NotAProfileFileError(f"{url!r} is not a regular file") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotAProfileFileError(f"{url!r} is not a regular file")
    return fd, st.st_size


def _read_fd(fd: int, size: int, url: str) -> bytearray:
    """Exactly ``size`` bytes of an open regular file; ProfileChangedError when it has other than that."""
    buf = bytearray(size)
    with memoryview(buf) as view:
        done = 0
        while done < size:
            n = os.readv(fd, [view[done:]])
            if n == 0:
                raise ProfileChangedError(f"{url!r} changed while it was read: it ended after {done} of {size} bytes")
            done += n
    if os.read(fd, 1):
        raise ProfileChangedError(f"{url!r} changed while it was read: it grew past {size} bytes")
    return buf


def read_host_ranges(
    url: str | os.PathLike[str],
    ranges: Sequence[tuple[int, int]],
    size: int | None = None,
    *,
    fs: AbstractFileSystem | None = None,
    storage_options: Mapping[str, Any] | None = None,
    max_gunzip_ratio: float | None = None,
) -> HostBytes:
    """A host file's bytes with only ``ranges`` read: what one shard of a huge host needs.

    A local uncompressed file gives a buffer of the file's size (anonymous
    memory, so the bytes never read are zero pages that take no memory) with
    the ranges copied in; ranges less than 64 KiB apart are read as one. A
    remote uncompressed file gives the same from ranged reads. A ``.gz`` file
    cannot be read in part: it is read whole (:func:`read_host_bytes`).
    ``size``, when given, is the size the file had when it was planned:
    another size, or a range that ends early, is :class:`ProfileChangedError`.
    """
    text = os.fspath(url)
    if text.endswith(".gz"):
        data = read_host_bytes(text, fs=fs, storage_options=storage_options, max_gunzip_ratio=max_gunzip_ratio)
        if size is not None and len(data) != size:
            raise ProfileChangedError(f"{text!r} changed since it was planned: {len(data)} bytes, not {size}")
        return data
    merged = _coalesce(ranges, 64 << 10)
    local_path = _local_path(text) if fs is None or _is_local_fs(fs) else None
    if local_path is None:
        if fs is None:
            fs, path = _filesystem_for(text, storage_options)
        else:
            path = fs._strip_protocol(text)
        try:
            total = int(fs.size(path))
            pieces = fs.cat_ranges([path] * len(merged), [b for b, _ in merged], [e for _, e in merged])
        except FileNotFoundError as exc:
            raise ProfileNotFoundError(f"no profile file at {text!r}") from exc
        return _sparse(text, total, size, merged, lambda i, view: _copy_piece(text, pieces[i], view))
    fd, total = _open_regular(local_path, text)
    try:
        return _sparse(text, total, size, merged, lambda i, view: _pread_into(fd, view, merged[i][0], text))
    finally:
        os.close(fd)


def _coalesce(ranges: Sequence[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for b, e in sorted((int(b), int(e)) for b, e in ranges if e > b):
        if out and b - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([b, e])
    return [(b, e) for b, e in out]


def _sparse(text: str, total: int, size: int | None, ranges: list[tuple[int, int]], fill: Any) -> HostBytes:
    if size is not None and total != size:
        raise ProfileChangedError(f"{text!r} changed since it was planned: {total} bytes, not {size}")
    if total == 0:
        return b""
    buf = mmap.mmap(-1, total)
    with memoryview(buf) as view:
        for i, (b, e) in enumerate(ranges):
            if e > total:
                raise ProfileChangedError(f"{text!r} changed since it was planned: it ends at {total}, before {e}")
            fill(i, view[b:e])
    return buf


def _pread_into(fd: int, view: memoryview, offset: int, url: str) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise ProfileChangedError(f"{url!r} changed while it was read: it ended at {offset + done}")
        done += n


def _copy_piece(url: str, piece: Any, view: memoryview) -> None:
    if isinstance(piece, Exception):
        raise ProfileChangedError(f"{url!r}: a ranged read failed: {piece}")
    if len(piece) != len(view):
        raise ProfileChangedError(f"{url!r} changed while it was read: a range gave {len(piece)} of {len(view)} bytes")
    view[:] = piece


def _read_remote(
    text: str,
    fs: AbstractFileSystem | None,
    storage_options: Mapping[str, Any] | None,
    max_gunzip_ratio: float | None,
) -> bytes:
    if fs is None:
        fs, path = _filesystem_for(text, storage_options)
    else:
        path = fs._strip_protocol(text)
    try:
        data = bytes(fs.cat_file(path))
    except FileNotFoundError as exc:
        raise ProfileNotFoundError(f"no profile file at {text!r}") from exc
    except IsADirectoryError as exc:
        raise NotAProfileFileError(f"{text!r} is not a regular file") from exc
    except PermissionError as exc:  # the storage refused these credentials: not worth a retry elsewhere
        raise StorageAccessError(f"access denied to {text!r}: {exc}") from exc
    return _gunzip(data, text, max_gunzip_ratio) if text.endswith(".gz") else data


def open_host_stream(
    url: str | os.PathLike[str],
    *,
    fs: AbstractFileSystem | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Any, int]:
    """Open one profile file for streaming reads: ``(binary file object, size in bytes)``.

    For inputs read in chunks (trace JSON), so that a large file is never in
    memory whole. Raises :class:`~xprof_core.errors.ProfileNotFoundError`
    when the file does not exist.
    """
    text = os.fspath(url)
    local_path = _local_path(text) if fs is None or _is_local_fs(fs) else None
    try:
        if local_path is not None:
            handle = open(local_path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
            return handle, os.fstat(handle.fileno()).st_size
        if fs is None:
            fs, path = _filesystem_for(text, storage_options)
        else:
            path = fs._strip_protocol(text)
        size = int(fs.size(path) or 0)
        return fs.open(path, "rb"), size
    except FileNotFoundError as exc:
        raise ProfileNotFoundError(f"no profile file at {text!r}") from exc


def _gunzip(data: bytes | bytearray, url: str, max_gunzip_ratio: float | None = None) -> bytes:
    """Inflate a gzip file (every member), stopping as soon as it passes :func:`gunzip_limit`."""
    if not data:
        return b""
    limit = gunzip_limit(len(data), max_gunzip_ratio)
    chunks: list[bytes] = []
    total = 0
    rest: bytes | bytearray = data
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing only
            pending = rest
            while not inflater.eof:
                piece = inflater.decompress(pending, min(1 << 24, limit + 1 - total))
                total += len(piece)
                if total > limit:
                    raise ProfileTooLargeError(
                        f"{url}: inflates past {limit} bytes, over {limit / len(data):.0f} times its "
                        f"{len(data)} bytes (the limit: --max_gunzip_ratio times the file's size, "
                        f"and at least {GUNZIP_ALLOWANCE_BYTES >> 20} MiB)"
                    )
                chunks.append(piece)
                pending = inflater.unconsumed_tail
                if not piece and not pending:
                    raise EOFError("compressed file ended before the end-of-stream marker")
            rest = inflater.unused_data
            if not rest:
                break
    except (EOFError, zlib.error) as exc:
        raise DecodeError(f"{url}: not a valid gzip file: {exc}", 0, "gzip") from exc
    return b"".join(chunks)


def _filesystem_for(url: str, storage_options: Mapping[str, Any] | None) -> tuple[AbstractFileSystem, str]:
    """Resolve a URL to its fsspec filesystem and path, with a clear error for missing extras."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError as exc:
        protocol = fsspec.utils.get_protocol(url)
        extra = _EXTRAS.get(protocol)
        hint = (
            f"pip install xprof-core[{extra}]"
            if extra
            else f"install the fsspec implementation for the {protocol!r} protocol"
        )
        raise MissingExtraError(f"reading {protocol}:// URLs needs an optional dependency: {hint} ({exc})") from exc
    except ValueError as exc:
        raise LogdirError(f"cannot open {url!r}: {exc}") from exc
    return fs, path


def _is_local_fs(fs: AbstractFileSystem) -> bool:
    if isinstance(fs, LocalFileSystem):
        return True
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return bool(_LOCAL_PROTOCOLS.intersection(protocols))


def _local_path(url: str) -> str | None:
    """The local path of a plain path or ``file://`` URL; None for any other protocol."""
    if "::" in url or fsspec.utils.get_protocol(url) not in _LOCAL_PROTOCOLS:
        return None
    return str(LocalFileSystem._strip_protocol(url))


def _strip_trailing_slashes(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped or path[:1]


def _run_name_parts(name: object) -> tuple[str, ...]:
    """Split a run name into components, rejecting anything that could leave the logdir."""
    if not isinstance(name, str) or not name:
        raise RunNotFoundError(f"invalid run name {name!r}")
    if name.startswith("/") or "\\" in name or "\x00" in name or "://" in name:
        raise RunNotFoundError(f"invalid run name {name!r}")
    parts = tuple(name.rstrip("/").split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise RunNotFoundError(f"invalid run name {name!r}")
    return parts


def _session_timestamp(session: str) -> str:
    """The ``YYYY_MM_DD_HH_MM_SS`` prefix of a session name, or "" when it has none."""
    match = _SESSION_TIMESTAMP.match(session)
    return match.group(0) if match else ""


def _sorted_runs(runs: list[Run]) -> list[Run]:
    """Timestamped sessions newest first (ties by name), then the others by name."""
    by_name = sorted(runs, key=lambda run: run.name)
    return sorted(by_name, key=lambda run: _session_timestamp(run.session), reverse=True)


def _report(problems: list[str], message: str) -> None:
    logger.warning("%s", message)
    problems.append(message)
