"""Capture a profile from a live program, as XProf's capture button does.

A program that called ``jax.profiler.start_server(port)`` (or TensorFlow's
``tf.profiler.experimental.server.start(port)``) serves ``tensorflow.ProfilerService``
over gRPC. :func:`capture` asks each given service for a trace of ``duration_ms`` and
stores every host's XSpace as a new run of a logdir::

    <logdir>/plugins/profile/<YYYY_MM_DD_HH_MM_SS>/<host>.xplane.pb

``<host>`` is the service address with ``:`` replaced by ``_`` (as TSL's own client
names it). How the data comes back: we set ``ProfileRequest.emit_xspace`` and current
servers (jaxlib 0.10 verified) answer with the serialised XSpace in
``ProfileResponse.xspace`` and write nothing themselves; we store those bytes verbatim.
Servers that predate ``emit_xspace`` ignore it and write the file on *their*
filesystem under ``repository_root/session_id``; :func:`capture` points that at our
staging directory, so a server on the same machine (or sharing the logdir's storage)
still lands its file in the run, and otherwise we say where it went. The HTTP route
never sends a path of this machine to a service (``send_paths=False``).

A local run appears atomically: the files are written into a hidden staging directory
next to ``plugins/profile`` and the directory is renamed into place once every host is
in, so a reader never sees a half-written run. On object stores (``gs://``, ``s3://``)
each host file is one object upload, which is atomic by itself.

:func:`add_capture_routes` serves ``/data/plugin/profile/capture_profile`` (XProf's
route and parameter names) on the aggregator, under a :class:`CapturePolicy`: off with
``--hide_capture_profile_button``, only to addresses in ``--capture_allow`` (this machine
by default), a few targets and a bounded answer per request, a few captures per client,
and one uniform error for whatever a target did.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from xprof_core.errors import (
    CaptureCancelledError,
    CaptureDisabledError,
    CaptureError,
    CaptureLimitError,
    CaptureNotAllowedError,
    CaptureParamError,
    CaptureTargetError,
    CaptureTimeoutError,
    CaptureTooLargeError,
    EmptyTraceError,
    LogdirNotWritableError,
    ProfilerBusyError,
    ProfilerServiceError,
    http_status,
)
from xprof_core.storage.logdir import HOST_SUFFIXES, Logdir, host_name_from_file

if TYPE_CHECKING:
    import grpc

    from xprof_core.protos import profiler_service_pb2

log = logging.getLogger(__name__)

__all__ = [
    "CAPTURE_ROUTE",
    "CaptureCancelledError",
    "CaptureError",
    "CaptureParamError",
    "CapturePolicy",
    "CaptureTransport",
    "CaptureResult",
    "CaptureTargetError",
    "CaptureTimeoutError",
    "EmptyTraceError",
    "LogdirNotWritableError",
    "ProfilerServiceError",
    "add_capture_routes",
    "capture",
    "host_file_stem",
    "parse_networks",
    "parse_service_addresses",
]

CAPTURE_ROUTE = "/data/plugin/profile/capture_profile"

MIN_DURATION_MS = 1
MAX_DURATION_MS = 300_000
MAX_TRACER_LEVEL = 3
MAX_SERVICES = 64
MAX_RETRIES = 10
MAX_DELAY_MS = 60_000
#: Added to the trace duration for the RPC deadline: the server still has to collect
#: and serialise the XSpace after tracing, and send it.
DEFAULT_TIMEOUT_SLACK_S = 60.0
#: How often a blocked capture checks whether it was cancelled.
_CANCEL_POLL_S = 0.25
_STAGING_PREFIX = ".xprof_capture."
_PLUGINS_DIR = "plugins"
_PROFILE_DIR = "profile"
_GRPC_PREFIX = "grpc://"
# host: a DNS name or IPv4 address, or an IPv6 address in brackets; then :port.
_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.%a-z]{2,63}\]):(?P<port>\d{1,5})")
# Codes worth another try (TSL's client retries the same): the server restarting, or a
# profiling session of the program still closing.
_RETRY_CODES = frozenset({"UNAVAILABLE", "ALREADY_EXISTS"})


# --- parameters -----------------------------------------------------------------------------------


def parse_service_addresses(text: str) -> list[str]:
    """Split XProf's ``service_addr`` (``host:port``, comma-separated for several hosts).

    An optional ``grpc://`` prefix is dropped; duplicates are dropped. Raises
    :class:`CaptureParamError` for anything that is not ``host:port`` with a port in 1..65535.
    """
    if not isinstance(text, str) or not text.strip():
        raise CaptureParamError("missing parameter 'service_addr' (host:port of the program's profiler server)")
    addresses: list[str] = []
    for raw in text.split(","):
        addr = raw.strip()
        if addr.startswith(_GRPC_PREFIX):
            addr = addr[len(_GRPC_PREFIX) :]
        match = _ADDRESS.fullmatch(addr)
        if match is None or not 1 <= int(match.group("port")) <= 65535:
            raise CaptureParamError(
                f"invalid service address {raw.strip()[:100]!r}: expected host:port "
                f"(e.g. localhost:9999), port 1..65535"
            )
        if addr not in addresses:
            addresses.append(addr)
    if len(addresses) > MAX_SERVICES:
        raise CaptureParamError(f"too many service addresses ({len(addresses)} > {MAX_SERVICES})")
    return addresses


def host_file_stem(service_addr: str) -> str:
    """The host name a service's profile is stored under: the address with ``:`` → ``_``."""
    return service_addr.replace(":", "_")


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CaptureParamError(f"parameter {name!r} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise CaptureParamError(f"parameter {name!r} must be in {low}..{high}, not {value}")
    return value


@dataclass(frozen=True)
class CaptureOptions:
    """Validated capture parameters. Durations in ms, timeout in s."""

    service_addrs: tuple[str, ...]
    duration_ms: int
    host_tracer_level: int = 2
    device_tracer_level: int = 1
    python_tracer_level: int = 0
    timeout_s: float = 0.0  # 0: duration + DEFAULT_TIMEOUT_SLACK_S
    num_retry: int = 0
    delay_ms: int = 0

    @classmethod
    def build(
        cls,
        service_addr: str,
        duration_ms: int,
        host_tracer_level: int = 2,
        device_tracer_level: int = 1,
        python_tracer_level: int = 0,
        timeout_s: float | None = None,
        num_retry: int = 0,
        delay_ms: int = 0,
    ) -> CaptureOptions:
        """Validate every parameter; raise :class:`CaptureParamError` naming the first bad one."""
        addrs = tuple(parse_service_addresses(service_addr))
        _check_int("duration", duration_ms, MIN_DURATION_MS, MAX_DURATION_MS)
        _check_int("host_tracer_level", host_tracer_level, 0, MAX_TRACER_LEVEL)
        _check_int("device_tracer_level", device_tracer_level, 0, MAX_TRACER_LEVEL)
        _check_int("python_tracer_level", python_tracer_level, 0, MAX_TRACER_LEVEL)
        _check_int("num_retry", num_retry, 0, MAX_RETRIES)
        _check_int("delay", delay_ms, 0, MAX_DELAY_MS)
        trace_s = (duration_ms + delay_ms) / 1000
        if timeout_s is None:
            timeout_s = trace_s + DEFAULT_TIMEOUT_SLACK_S
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > trace_s:
            raise CaptureParamError(
                f"timeout_s must be a number of seconds above the trace's {trace_s:g} s, not {timeout_s!r}"
            )
        return cls(
            addrs,
            duration_ms,
            host_tracer_level,
            device_tracer_level,
            python_tracer_level,
            float(timeout_s),
            num_retry,
            delay_ms,
        )

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> CaptureOptions:
        """Parse XProf's query parameters (strings): ``service_addr``, ``duration`` (ms),
        ``host_tracer_level``, ``device_tracer_level``, ``python_tracer_level``, ``num_retry``,
        ``delay`` (ms). The other parameters XProf's UI sends (``worker_list``, ``is_tpu_name``)
        are accepted when they ask for nothing we lack.
        """

        def integer(name: str, default: int | None) -> int:
            text = query.get(name)
            if text is None or text == "":
                if default is None:
                    raise CaptureParamError(f"missing parameter {name!r}")
                return default
            try:
                return int(text.strip())
            except ValueError:
                raise CaptureParamError(f"parameter {name!r} must be an integer, not {text[:40]!r}") from None

        if str(query.get("is_tpu_name", "")).lower() == "true":
            raise CaptureParamError("is_tpu_name=true is not supported: give the workers' host:port in service_addr")
        if str(query.get("worker_list", "")).strip():
            raise CaptureParamError(
                "worker_list is not supported: give every host:port, comma-separated, in service_addr"
            )
        return cls.build(
            query.get("service_addr", ""),
            integer("duration", None),
            integer("host_tracer_level", 2),
            integer("device_tracer_level", 1),
            integer("python_tracer_level", 0),
            num_retry=integer("num_retry", 0),
            delay_ms=integer("delay", 0),
        )


# --- the capture ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureResult:
    """What a capture stored.

    ``run`` is the new run's name as the aggregator lists it (the session name),
    ``session_url`` its directory, ``hosts`` the host names stored (sorted),
    ``bytes_by_host`` each host file's size, and ``failures`` the services that gave
    nothing (address → reason) when others succeeded.
    """

    run: str
    session_url: str
    hosts: list[str]
    bytes_by_host: dict[str, int]
    duration_ms: int
    elapsed_s: float
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureTransport:
    """How the services are reached and what is taken from them.

    ``connect_to`` maps a service address to the gRPC target to dial (the HTTP route
    dials the address it checked against ``--capture_allow``, not a second DNS answer);
    ``max_bytes`` is the largest answer accepted (None: no limit), refused by gRPC before
    it is stored; ``send_paths`` tells a server that predates ``emit_xspace`` where to
    write its file, a path on this machine (the HTTP route never sends one);
    ``keepalive_s`` closes the call to a service that stops answering pings.
    """

    connect_to: Mapping[str, str] = field(default_factory=dict)
    max_bytes: int | None = None
    send_paths: bool = True
    keepalive_s: float = 10.0


def capture(
    service_addr: str,
    duration_ms: int,
    logdir: str | os.PathLike[str] | Logdir,
    host_tracer_level: int = 2,
    device_tracer_level: int = 1,
    python_tracer_level: int = 0,
    timeout_s: float | None = None,
    *,
    num_retry: int = 0,
    delay_ms: int = 0,
    cancel: threading.Event | None = None,
    max_bytes: int | None = None,
    send_paths: bool = True,
) -> CaptureResult:
    """Trace the program(s) at ``service_addr`` for ``duration_ms`` and store a new run in ``logdir``.

    ``service_addr`` is ``host:port`` (comma-separated for several hosts, traced together).
    Levels as in XProf: host 0..3 (2: default), device 0..3 (1: on), Python 0..3 (0: off).
    ``timeout_s`` is the deadline of each service's answer (default: the trace plus 60 s);
    ``num_retry`` retries a service that is unavailable or returned no events; ``delay_ms``
    starts tracing that much later. Setting ``cancel`` stops waiting and cancels the trace.
    ``max_bytes`` refuses larger answers (:class:`CaptureTooLargeError`); ``send_paths=False``
    never tells a service a path on this machine (old servers that write the file themselves
    then cannot deliver it).

    Raises :class:`CaptureParamError` for bad parameters (nothing is contacted),
    :class:`LogdirNotWritableError` / :class:`CaptureTargetError` when the logdir cannot take
    a run (checked before tracing), :class:`CaptureTimeoutError`,
    :class:`EmptyTraceError` or :class:`ProfilerServiceError` when no service gave a profile.
    When some services fail and others succeed, the run holds those that succeeded and
    :attr:`CaptureResult.failures` says why the others are missing.
    """
    options = CaptureOptions.build(
        service_addr,
        duration_ms,
        host_tracer_level,
        device_tracer_level,
        python_tracer_level,
        timeout_s,
        num_retry,
        delay_ms,
    )
    target = logdir if isinstance(logdir, Logdir) else Logdir(logdir)
    return _capture(options, target, cancel, CaptureTransport(max_bytes=max_bytes, send_paths=send_paths))


def _capture(
    options: CaptureOptions, logdir: Logdir, cancel: threading.Event | None, transport: CaptureTransport
) -> CaptureResult:
    t0 = time.monotonic()
    writer: _RunWriter = _LocalRunWriter(logdir) if logdir.is_local else _RemoteRunWriter(logdir)
    try:
        results = _profile_all(options, writer, cancel, transport)
        stored = {addr: size for addr, size in results.items() if isinstance(size, int)}
        errors = {addr: err for addr, err in results.items() if isinstance(err, ProfilerServiceError)}
        if not stored:
            raise _most_telling(errors)
        run = writer.publish()
    finally:
        writer.discard()
    hosts = {host_file_stem(addr): size for addr, size in stored.items()}
    elapsed = time.monotonic() - t0
    log.info(
        "captured %d ms from %s into run %r (%s) in %.1f s",
        options.duration_ms,
        ",".join(options.service_addrs),
        run,
        ",".join(sorted(hosts)),
        elapsed,
    )
    return CaptureResult(
        run=run,
        session_url=writer.session_url,
        hosts=sorted(hosts),
        bytes_by_host=dict(sorted(hosts.items())),
        duration_ms=options.duration_ms,
        elapsed_s=elapsed,
        failures={a: str(e) for a, e in errors.items()},
    )


def _most_telling(errors: dict[str, ProfilerServiceError]) -> ProfilerServiceError:
    """One error for the caller when every service failed: a refusal beats a timeout beats an empty trace."""
    ranked = sorted(errors.values(), key=lambda e: (isinstance(e, EmptyTraceError), isinstance(e, TimeoutError)))
    if len(ranked) == 1:
        return ranked[0]
    first = ranked[0]
    summary = "; ".join(f"{a}: {e}" for a, e in errors.items())
    return type(first)(f"no service gave a profile: {summary}", first.service_addr, first.code)


def _profile_all(
    options: CaptureOptions, writer: _RunWriter, cancel: threading.Event | None, transport: CaptureTransport
) -> dict[str, int | ProfilerServiceError]:
    """Ask every service at once (they trace the same window); store each answer as it comes."""
    if len(options.service_addrs) == 1:
        addr = options.service_addrs[0]
        return {addr: _profile_and_store(addr, options, writer, cancel, transport)}
    with concurrent.futures.ThreadPoolExecutor(
        min(len(options.service_addrs), 16), thread_name_prefix="xprof-capture"
    ) as pool:
        futures = {
            addr: pool.submit(_profile_and_store, addr, options, writer, cancel, transport)
            for addr in options.service_addrs
        }
        return {addr: fut.result() for addr, fut in futures.items()}


def _profile_and_store(
    addr: str, options: CaptureOptions, writer: _RunWriter, cancel: threading.Event | None, transport: CaptureTransport
) -> int | ProfilerServiceError:
    """One service: its profile's size in bytes once stored, or why there is none."""
    host = host_file_stem(addr)
    attempts = options.num_retry + 1
    error: ProfilerServiceError | None = None
    for attempt in range(attempts):
        try:
            data = _profile_one(addr, options, writer, cancel, transport)
        except (EmptyTraceError, CaptureCancelledError, CaptureTimeoutError, CaptureTooLargeError) as exc:
            error = exc
            if isinstance(exc, EmptyTraceError) and attempt + 1 < attempts:
                continue
            return exc
        except ProfilerServiceError as exc:
            error = exc
            if exc.code in _RETRY_CODES and attempt + 1 < attempts:
                time.sleep(min(1.0 * (attempt + 1), 5.0))
                continue
            return exc
        if data is None:  # an old server wrote the file into our staging directory itself
            size = writer.stored_size(host)
            if size is not None:
                return size
            if not transport.send_paths:
                return ProfilerServiceError(
                    f"{addr} did not return the XSpace in its answer (it predates ProfileRequest.emit_xspace): "
                    f"upgrade jax/jaxlib or TensorFlow",
                    addr,
                )
            return ProfilerServiceError(
                f"{addr} saved its profile on its own filesystem under {writer.repository_root!r} "
                f"(the server predates returning the XSpace in its answer, ProfileRequest.emit_xspace): "
                f"run the aggregator where that path is this logdir, or upgrade jax/jaxlib or TensorFlow",
                addr,
            )
        return writer.store(host, data)
    assert error is not None
    return error


def _profile_one(
    addr: str, options: CaptureOptions, writer: _RunWriter, cancel: threading.Event | None, transport: CaptureTransport
) -> bytes | None:
    """One Profile RPC. Returns the XSpace bytes, or None when the server says it wrote them itself."""
    import grpc

    from xprof_core.protos import profiler_service_pb2, profiler_service_pb2_grpc

    request = _profile_request(profiler_service_pb2, addr, options, writer, transport.send_paths)
    keepalive_ms = max(1000, int(transport.keepalive_s * 1000))
    channel_options = [
        # An XSpace is often far above gRPC's 4 MiB default; a larger answer than allowed is refused
        # (RESOURCE_EXHAUSTED) by gRPC itself.
        ("grpc.max_receive_message_length", -1 if transport.max_bytes is None else transport.max_bytes + 4096),
        ("grpc.enable_http_proxy", 0),  # the program is on our network; never tunnel to it via a proxy
        ("grpc.min_reconnect_backoff_ms", 5000),  # also caps a connection attempt to a dead host
        # A service that accepted the call and then stopped answering (a frozen process) is given up
        # after two keepalive periods instead of the trace's whole deadline.
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", keepalive_ms),
        ("grpc.http2.ping_timeout_ms", keepalive_ms),  # what bounds the wait for a ping's answer
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(transport.connect_to.get(addr, addr), options=channel_options) as channel:
        stub = profiler_service_pb2_grpc.ProfilerServiceStub(channel)
        call = stub.Profile.future(request, timeout=options.timeout_s)
        try:
            response = _wait(call, cancel, addr)
        except grpc.RpcError as exc:
            raise _service_error(exc, addr, options, transport) from None
    if response.empty_trace:
        raise EmptyTraceError(
            f"{addr} collected no trace events in {options.duration_ms} ms "
            f"(is the program running work while it is traced?)",
            addr,
        )
    xspace: bytes = response.xspace  # read once: each read of a bytes field copies it
    if xspace:
        return xspace
    for tool in response.tool_data:  # very old servers answer with named tool files
        if tool.name == "xplane.pb" or tool.name.endswith(".xplane.pb"):
            data: bytes = tool.data
            return data
    return None


def _profile_request(
    pb: Any, addr: str, options: CaptureOptions, writer: _RunWriter, send_paths: bool = True
) -> profiler_service_pb2.ProfileRequest:
    start_ns = time.time_ns() + options.delay_ms * 1_000_000 if options.delay_ms else 0
    opts = pb.ProfileOptions(
        version=1,  # without it the server ignores the levels below
        host_tracer_level=options.host_tracer_level,
        device_tracer_level=options.device_tracer_level,
        python_tracer_level=options.python_tracer_level,
        duration_ms=options.duration_ms,
        start_timestamp_ns=start_ns,
    )
    return pb.ProfileRequest(
        duration_ms=options.duration_ms,
        max_events=1_000_000,  # what TSL's client asks for; servers that emit the XSpace ignore it
        tools=["xplane.pb"],
        opts=opts,
        repository_root=writer.repository_root if send_paths else "",
        session_id=writer.server_session_id if send_paths else "",
        host_name=addr,
        emit_xspace=True,
    )


def _wait(call: Any, cancel: threading.Event | None, addr: str) -> Any:
    """Wait for a gRPC future, cancelling it when ``cancel`` is set."""
    import grpc

    if cancel is None:
        return call.result()
    while True:
        try:
            return call.result(timeout=_CANCEL_POLL_S)
        except grpc.FutureTimeoutError:
            if cancel.is_set():
                call.cancel()
                raise CaptureCancelledError(f"capture from {addr} cancelled", addr, "CANCELLED") from None


def _service_error(
    exc: grpc.RpcError, addr: str, options: CaptureOptions, transport: CaptureTransport
) -> ProfilerServiceError:
    code = exc.code() if hasattr(exc, "code") else None
    name = code.name if code is not None else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    if name == "RESOURCE_EXHAUSTED" and transport.max_bytes is not None and "message larger than max" in details:
        return CaptureTooLargeError(
            f"{addr} answered with more than {transport.max_bytes} bytes (--capture_max_mb): nothing was stored",
            addr,
            name,
        )
    if name == "ALREADY_EXISTS":
        return ProfilerBusyError(f"{addr} refused the capture ({name}): {details}", addr, name)
    if name == "DEADLINE_EXCEEDED":
        return CaptureTimeoutError(
            f"{addr} did not answer within {options.timeout_s:g} s (tracing {options.duration_ms} ms)", addr, name
        )
    if name == "UNAVAILABLE":
        return ProfilerServiceError(
            f"cannot reach a profiler server at {addr}: {details} (did the program call "
            f"jax.profiler.start_server(port) with this port?)",
            addr,
            name,
        )
    if name == "UNIMPLEMENTED":
        return ProfilerServiceError(f"{addr} does not serve tensorflow.ProfilerService/Profile: {details}", addr, name)
    if name == "CANCELLED":
        return CaptureCancelledError(f"capture from {addr} cancelled: {details}", addr, name)
    return ProfilerServiceError(f"{addr} refused the capture ({name}): {details}", addr, name)


# --- storing a run --------------------------------------------------------------------------------


def _session_name() -> str:
    """TSL's session name: the local time as ``YYYY_MM_DD_HH_MM_SS``."""
    return time.strftime("%Y_%m_%d_%H_%M_%S", time.localtime())


def _profile_root(logdir: Logdir) -> str:
    """Where sessions go: ``<logdir>/plugins/profile``, or the logdir itself when it is one."""
    root = logdir.root
    if posixpath.basename(root) == _PROFILE_DIR and posixpath.basename(posixpath.dirname(root)) == _PLUGINS_DIR:
        return root
    return posixpath.join(root, _PLUGINS_DIR, _PROFILE_DIR)


class _RunWriter:
    """Stores one run's host files; subclasses for local directories and object stores."""

    repository_root: str  # ProfileRequest.repository_root: where an old server would write
    server_session_id: str  # ProfileRequest.session_id: the directory under it
    session_url: str  # the published run's directory

    def store(self, host: str, data: bytes) -> int:
        raise NotImplementedError

    def stored_size(self, host: str) -> int | None:
        raise NotImplementedError

    def publish(self) -> str:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError


def _check_target(logdir: Logdir) -> None:
    """Refuse logdirs that must not or cannot take a new run, before anything is traced."""
    from xprof_core.demo import DEMO_LOGDIR

    if logdir.is_local:
        real = os.path.realpath(logdir.root)
        demo = os.path.realpath(DEMO_LOGDIR)
        if real == demo or real.startswith(demo + os.sep):
            raise LogdirNotWritableError(
                f"the logdir {logdir.url!r} is the demo logdir bundled inside the installed package "
                f"(read-only by design): start the aggregator with --logdir DIR to capture profiles",
                logdir.url,
            )
        try:
            names = os.listdir(logdir.root)
        except FileNotFoundError:
            return  # created by the writer
        except NotADirectoryError:
            raise LogdirNotWritableError(
                f"the logdir {logdir.url!r} is not writable: it is not a directory", logdir.url
            ) from None
        except OSError as exc:
            raise LogdirNotWritableError(
                f"the logdir {logdir.url!r} is not writable: {exc.strerror or exc}", logdir.url
            ) from None
    else:
        try:
            names = [posixpath.basename(p.rstrip("/")) for p in logdir.fs.ls(logdir.root, detail=False)]
        except FileNotFoundError:
            return
        except Exception:  # noqa: BLE001 - listing is only a courtesy check; the write reports for real
            return
    if any(host_name_from_file(n) for n in names):
        raise CaptureTargetError(
            f"the logdir {logdir.url!r} is itself one session directory (it holds {'/'.join(HOST_SUFFIXES)} "
            f"files), so a new run there would not be listed: serve its parent logdir to capture",
            logdir.url,
        )


class _LocalRunWriter(_RunWriter):
    """Writes into a hidden staging directory beside ``plugins/profile``, then renames it into place."""

    def __init__(self, logdir: Logdir) -> None:
        _check_target(logdir)
        self.logdir = logdir
        self.profile_root = _profile_root(logdir)
        plugins = os.path.dirname(self.profile_root)
        try:
            os.makedirs(self.profile_root, exist_ok=True)
        except FileExistsError:
            raise self._not_writable(f"{self.profile_root} exists and is not a directory") from None
        except OSError as exc:
            raise self._not_writable(exc.strerror or str(exc)) from None
        if not os.access(plugins, os.W_OK | os.X_OK) or not os.access(self.profile_root, os.W_OK | os.X_OK):
            raise self._not_writable("no write permission (or a read-only filesystem)")
        try:  # the real test: os.access can say yes where a write still fails (e.g. some network mounts)
            self.staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=plugins)
        except OSError as exc:
            raise self._not_writable(exc.strerror or str(exc)) from None
        self.repository_root = plugins
        self.server_session_id = os.path.basename(self.staging)
        self.session_url = ""
        self._lock = threading.Lock()

    def _not_writable(self, reason: str) -> LogdirNotWritableError:
        return LogdirNotWritableError(
            f"the logdir {self.logdir.url!r} is not writable ({reason}): captured profiles cannot be stored there",
            self.logdir.url,
        )

    def _path(self, host: str) -> str:
        return os.path.join(self.staging, host + HOST_SUFFIXES[0])

    def store(self, host: str, data: bytes) -> int:
        path = self._path(host)
        fd, tmp = tempfile.mkstemp(prefix=f".{host}.", suffix=".tmp", dir=self.staging)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._not_writable(f"writing {host}: {exc.strerror or exc}") from None
        return len(data)

    def stored_size(self, host: str) -> int | None:
        try:
            return os.stat(self._path(host)).st_size
        except OSError:
            return None

    def publish(self) -> str:
        """Rename the staging directory to a fresh session name; a clash in the same second gets ``_2``..."""
        with self._lock:
            base = _session_name()
            for i in range(1, 1000):
                session = base if i == 1 else f"{base}_{i}"
                final = os.path.join(self.profile_root, session)
                if os.path.lexists(final):
                    continue
                try:
                    os.rename(self.staging, final)  # atomic: the run appears with all its hosts
                except OSError as exc:
                    if os.path.lexists(final):  # lost a race for the name
                        continue
                    raise self._not_writable(f"publishing the run: {exc.strerror or exc}") from None
                self.staging = ""
                self.session_url = final
                return session  # the run's name: Logdir lists sessions under plugins/profile by name
            raise CaptureTargetError(f"no free session name for {base!r} in {self.profile_root}", self.logdir.url)

    def discard(self) -> None:
        if self.staging:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = ""


class _RemoteRunWriter(_RunWriter):
    """Writes each host file as one object (uploads are atomic on object stores) under its final name."""

    def __init__(self, logdir: Logdir) -> None:
        _check_target(logdir)
        self.logdir = logdir
        fs = logdir.fs
        profile_root = _profile_root(logdir)
        base = _session_name()
        session = base
        for i in range(2, 1000):
            if not fs.exists(posixpath.join(profile_root, session)):
                break
            session = f"{base}_{i}"
        self.session = session
        self.session_path = posixpath.join(profile_root, session)
        self.repository_root = str(fs.unstrip_protocol(profile_root))
        self.server_session_id = session
        self.session_url = str(fs.unstrip_protocol(self.session_path))
        probe = posixpath.join(posixpath.dirname(profile_root), f"{_STAGING_PREFIX}{os.getpid()}.probe")
        try:
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - any storage error means we cannot write here
            raise LogdirNotWritableError(
                f"the logdir {logdir.url!r} is not writable ({exc}): captured profiles cannot be stored there",
                logdir.url,
            ) from None

    def store(self, host: str, data: bytes) -> int:
        try:
            self.logdir.fs.pipe_file(posixpath.join(self.session_path, host + HOST_SUFFIXES[0]), data)
        except Exception as exc:  # noqa: BLE001
            raise LogdirNotWritableError(
                f"the logdir {self.logdir.url!r} is not writable (writing {host}: {exc})", self.logdir.url
            ) from None
        return len(data)

    def stored_size(self, host: str) -> int | None:
        try:
            return int(self.logdir.fs.info(posixpath.join(self.session_path, host + HOST_SUFFIXES[0]))["size"])
        except Exception:  # noqa: BLE001 - absent or unreadable
            return None

    def publish(self) -> str:
        return self.session

    def discard(self) -> None:
        pass


# --- HTTP -----------------------------------------------------------------------------------------

#: Networks the HTTP route may capture from unless ``--capture_allow`` says otherwise: this machine.
DEFAULT_CAPTURE_ALLOW = ("127.0.0.0/8", "::1/128")
DEFAULT_CAPTURE_MAX_MB = 256
DEFAULT_CAPTURE_MAX_TARGETS = 8
#: Captures one client may run at once, start per minute, and all clients together at once.
DEFAULT_CAPTURES_PER_CLIENT = 1
DEFAULT_CAPTURES_PER_MINUTE = 10
MAX_CONCURRENT_CAPTURES = 16
#: Seconds a POST body may take to arrive.
BODY_TIMEOUT_S = 10.0


def http_status_for(error: CaptureError) -> int:
    """The HTTP status of a capture error (the one table in :mod:`xprof_core.errors`)."""
    return http_status(error)


def parse_networks(text: str | Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``--capture_allow``: addresses or CIDR networks, comma-separated. ValueError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR network: {item!r}") from None
    return tuple(networks)


@dataclass(frozen=True)
class CapturePolicy:
    """Who may capture what through the HTTP route.

    ``enabled`` is False with ``--hide_capture_profile_button``: the route then refuses
    every request (403), as the button is hidden. ``allow``: the networks a service
    address must resolve into (every address it resolves to), checked before anything is
    contacted. ``max_targets`` addresses per request, ``max_bytes`` per answer.
    ``per_client`` captures at once and ``per_minute`` started per client (by its IP
    address), ``max_concurrent`` in all.
    """

    enabled: bool = True
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: parse_networks(DEFAULT_CAPTURE_ALLOW)
    )
    max_targets: int = DEFAULT_CAPTURE_MAX_TARGETS
    max_bytes: int = DEFAULT_CAPTURE_MAX_MB << 20
    per_client: int = DEFAULT_CAPTURES_PER_CLIENT
    per_minute: int = DEFAULT_CAPTURES_PER_MINUTE
    max_concurrent: int = MAX_CONCURRENT_CAPTURES
    keepalive_s: float = 10.0

    def connect_targets(self, addrs: Sequence[str]) -> dict[str, str]:
        """The gRPC target to dial for each address, once every one is allowed.

        A name is resolved here, every address it resolves to must be allowed, and the
        call dials the address checked (a later DNS answer cannot redirect it). Refusals are
        one message whatever the reason (not allowed, no such name), so the route cannot be
        used to learn about the network; nothing has been contacted when it raises.
        """
        targets = {}
        for addr in addrs:
            host, _, port = addr.rpartition(":")
            name = host[1:-1] if host.startswith("[") else host
            try:
                infos = socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                infos = []
            ips = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
            if not ips or not all(any(ip in net for net in self.allow) for ip in ips):
                raise CaptureNotAllowedError(
                    f"capturing from {addr} is not allowed: the aggregator captures only from addresses "
                    f"in --capture_allow"
                )
            ip = ips[0]
            targets[addr] = f"ipv6:[{ip}]:{port}" if ip.version == 6 else f"ipv4:{ip}:{port}"
        return targets


class _ClientLimits:
    """Captures per client: running now, and started in the last minute."""

    def __init__(self, policy: CapturePolicy) -> None:
        self.policy = policy
        self._running: dict[str, int] = {}
        self._started: dict[str, collections.deque[float]] = {}
        self._total = 0

    def admit(self, client: str) -> None:
        """Count a capture for ``client`` or raise CaptureLimitError (the caller must :meth:`release`)."""
        now = time.monotonic()
        started = self._started.setdefault(client, collections.deque())
        while started and now - started[0] > 60.0:
            started.popleft()
        if self._running.get(client, 0) >= self.policy.per_client:
            raise CaptureLimitError(f"{self.policy.per_client} capture(s) of yours already running; try again later")
        if len(started) >= self.policy.per_minute:
            raise CaptureLimitError(f"more than {self.policy.per_minute} captures a minute; try again later")
        if self._total >= self.policy.max_concurrent:
            raise CaptureLimitError(f"{self._total} captures are already running; try again when one ends")
        started.append(now)
        self._running[client] = self._running.get(client, 0) + 1
        self._total += 1

    def release(self, client: str) -> None:
        self._total -= 1
        left = self._running.get(client, 1) - 1
        if left:
            self._running[client] = left
        else:
            self._running.pop(client, None)
            if not self._started.get(client):
                self._started.pop(client, None)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _uniform(addrs: Sequence[str]) -> str:
    """What a client is told when services gave no profile: the same whatever happened at the target."""
    return (
        f"cannot reach a profiler server at {', '.join(addrs)} or get a profile from it (it refused, failed, "
        f"timed out, collected nothing, or answered over --capture_max_mb); the aggregator's log says which"
    )


class CaptureRoute:
    """``GET|POST /data/plugin/profile/capture_profile``: a capture into the aggregator's logdir.

    Answers ``{"result", "run", "hosts"}`` (plus ``failures`` when some services gave nothing);
    errors as ``{"error": ...}`` with 400 (parameters), 403 (capture disabled, or an address
    outside ``--capture_allow``), 409 (the logdir cannot take a run), 429 (this client's
    captures), 502 (no profile: one uniform answer, whatever the service did; the log has the
    reason), 503 (shutting down).
    """

    def __init__(
        self, logdir: Callable[[], Logdir], refresh_runs: Callable[[], Any], policy: CapturePolicy | None = None
    ) -> None:
        self._logdir = logdir
        self._refresh_runs = refresh_runs
        self.policy = policy or CapturePolicy()
        self._limits = _ClientLimits(self.policy)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.policy.max_concurrent, thread_name_prefix="xprof-capture"
        )
        self._cancel = threading.Event()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            return await self._handle(request)
        except CaptureError as exc:
            body: dict[str, Any] = {"error": str(exc)}
            if isinstance(exc, CaptureTargetError):
                body["logdir"] = exc.logdir
            return _json(body, http_status(exc))

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.policy.enabled:
            raise CaptureDisabledError("capture is disabled on this server (--hide_capture_profile_button)")
        params: dict[str, str] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            try:
                params.update(await asyncio.wait_for(_body_params(request), BODY_TIMEOUT_S))
            except asyncio.TimeoutError:
                raise CaptureParamError(f"the request body did not arrive within {BODY_TIMEOUT_S:g} s") from None
        options = CaptureOptions.from_query(params)
        if len(options.service_addrs) > self.policy.max_targets:
            raise CaptureParamError(
                f"too many service addresses ({len(options.service_addrs)} > {self.policy.max_targets}, "
                f"--capture_max_targets)"
            )
        loop = asyncio.get_running_loop()
        client = request.remote or "unknown"
        self._limits.admit(client)  # before any lookup: names that resolve slowly count too
        try:
            targets = await loop.run_in_executor(self._pool, self.policy.connect_targets, options.service_addrs)
            transport = CaptureTransport(
                connect_to=targets,
                max_bytes=self.policy.max_bytes,
                send_paths=False,
                keepalive_s=self.policy.keepalive_s,
            )
            result: CaptureResult = await loop.run_in_executor(self._pool, self._capture, options, transport)
        except ProfilerServiceError as exc:
            if isinstance(exc, CaptureCancelledError):
                raise
            log.warning("capture from %s gave no profile: %s", ",".join(options.service_addrs), exc)
            return _json(
                {"error": _uniform(options.service_addrs), "service_addr": exc.service_addr, "code": "UNAVAILABLE"},
                502,
            )
        finally:
            self._limits.release(client)
        answer: dict[str, Any] = {
            "result": f"Captured {options.duration_ms} ms from {len(result.hosts)} host(s) into run {result.run!r}.",
            "run": result.run,
            "hosts": result.hosts,
        }
        if result.failures:
            for addr, reason in result.failures.items():
                log.warning("capture from %s gave no profile: %s", addr, reason)
            answer["failures"] = {addr: _uniform([addr]) for addr in result.failures}
        return _json(answer)

    def _capture(self, options: CaptureOptions, transport: CaptureTransport) -> CaptureResult:
        result = _capture(options, self._logdir(), self._cancel, transport)
        try:
            self._refresh_runs()  # the aggregator caches its run list; show the new run right away
        except Exception:  # noqa: BLE001 - the capture is stored; a failed listing must not hide that
            log.exception("listing runs after a capture failed")
        return result

    async def close(self, app: web.Application | None = None) -> None:
        """Cancel running captures (their services stop tracing) and stop the threads."""
        self._cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _body_params(request: web.Request) -> dict[str, str]:
    """Parameters of a POST body: a JSON object or a form."""
    if request.content_type == "application/json":
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise CaptureParamError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CaptureParamError("the request body must be a JSON object of parameters")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def add_capture_routes(
    app: web.Application,
    logdir: Callable[[], Logdir],
    refresh_runs: Callable[[], object],
    policy: CapturePolicy | None = None,
) -> CaptureRoute:
    """Serve ``capture_profile`` (GET and POST) on ``app``, writing new runs into ``logdir()``.

    ``refresh_runs()`` is called after a capture so the new run is listed at once;
    ``policy`` says who may capture what (default: :class:`CapturePolicy`).
    """
    route = CaptureRoute(logdir, refresh_runs, policy)
    app.router.add_get(CAPTURE_ROUTE, route.handle)
    app.router.add_post(CAPTURE_ROUTE, route.handle)
    # on_shutdown runs before aiohttp waits for open requests: a running capture ends now, not at its deadline.
    app.on_shutdown.append(route.close)
    return route
