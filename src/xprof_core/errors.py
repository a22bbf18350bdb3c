"""The exceptions xprof-core raises, and what each one means to HTTP and gRPC clients.

One root, :class:`XprofError`, so callers can catch them all. Where an error
also means something to the standard library (a bad value, a missing file, a
timeout) it subclasses that built-in too, so ``except ValueError`` keeps
working.

Serving maps errors to statuses through one table (:data:`STATUS`): the HTTP
status the aggregator answers and the gRPC code the worker answers, looked up
along the exception's class hierarchy. An exception that is not ours (a bug)
is a 500 / ``INTERNAL`` with its traceback logged. Errors travel between
processes (gRPC trailing metadata, the local process pool) as
:func:`error_fields` and come back as the same class through
:func:`error_from_fields`, so both sides read the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class XprofError(Exception):
    """Root of every error raised by xprof-core."""


# --- input: parameters and profile bytes ----------------------------------------------------------


class ParamError(XprofError, ValueError):
    """A request parameter that is missing, malformed or out of range (HTTP 400, ``INVALID_ARGUMENT``)."""


class HloModuleNotFoundError(ParamError):
    """A ``module_name`` or ``program_id`` that names no HLO module of the profile."""


class DecodeError(XprofError, ValueError):
    """Bytes that are not a valid XSpace.

    ``offset`` is the byte offset in the input where decoding failed and
    ``path`` the message path being read, e.g.
    ``XSpace.planes[2].lines[0].events[917]``.
    """

    def __init__(self, message: str, offset: int, path: str) -> None:
        self.reason = message
        self.offset = int(offset)
        self.path = path
        super().__init__(f"{message} (byte {self.offset}, at {path})")

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields when pickled across processes
        return (type(self), (self.reason, self.offset, self.path))


class ProfileTooLargeError(XprofError, ValueError):
    """A profile that would inflate past the configured limit (a gzip bomb, for one)."""


class ProfileChangedError(XprofError, OSError):
    """A profile file that changed (was truncated or replaced) while it was being read."""


class UnsortedLineError(XprofError):
    """A line cut into pieces for shards whose events are not sorted by start: the host must be planned
    again with every line whole (the sharded build does this itself)."""


class StorageError(XprofError, OSError):
    """The logdir's storage failed to read a file that exists (an I/O error, a stale mount)."""


class SerializationError(XprofError, ValueError):
    """Bytes that are not a valid encoded partial, or a value that cannot be encoded."""


# --- what exists and who may read it --------------------------------------------------------------


class ProfileNotFoundError(XprofError, FileNotFoundError):
    """A profile file, run or host that does not exist."""


class RunNotFoundError(ProfileNotFoundError, KeyError):
    """A run name that does not exist in the logdir, or that is not a valid run name."""


class HostNotFoundError(ProfileNotFoundError, KeyError):
    """A host name that does not exist in a run."""


class NotAProfileFileError(ProfileNotFoundError):
    """A path that exists but is not a regular file (a FIFO, a device, a directory): never opened."""


class AccessDeniedError(XprofError, PermissionError):
    """A profile path or URL outside the logdir roots this process may read (symlinks resolved)."""


class StorageAccessError(XprofError, PermissionError):
    """The storage refused to read the logdir or a profile (credentials missing or without permission)."""


class LogdirNotFoundError(ProfileNotFoundError):
    """A remote logdir whose bucket does not exist."""


class UnknownToolError(XprofError, KeyError):
    """A tool name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LogdirError(XprofError, ValueError):
    """A logdir URL that cannot be opened (unknown protocol, malformed URL)."""


class MissingExtraError(XprofError, ImportError):
    """A logdir URL whose filesystem needs an optional dependency that is not installed."""


# --- running map tasks ----------------------------------------------------------------------------


class InternalError(XprofError):
    """A bug met in another process (a worker or a pool child); its traceback is in that process's log."""


class MapTimeoutError(XprofError, TimeoutError):
    """A map task that did not finish within its deadline (the process running it was stopped)."""


class WorkersUnavailableError(XprofError, ConnectionError):
    """No worker could take a map task: every one is down, draining or overloaded."""


class RemoteMapError(XprofError):
    """A worker refused or failed a map task; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))


class HttpError(XprofError):
    """An error with an HTTP status and a JSON body (``{"error": message, **extra}``)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


# --- capture --------------------------------------------------------------------------------------


class CaptureError(XprofError):
    """A capture that could not be done."""


class CaptureParamError(CaptureError, ParamError):
    """A capture parameter out of range or malformed (duration, levels, service address)."""


class CaptureDisabledError(CaptureError):
    """This server does not capture (``--hide_capture_profile_button``)."""


class CaptureNotAllowedError(CaptureError):
    """A service address outside ``--capture_allow``: nothing was contacted."""


class CaptureLimitError(CaptureError):
    """A client over its share of captures (running at once, or per minute)."""


class CaptureTargetError(CaptureError):
    """The logdir cannot take a new run (see :class:`LogdirNotWritableError`)."""

    def __init__(self, message: str, logdir: str) -> None:
        super().__init__(message)
        self.logdir = logdir

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.logdir))


class LogdirNotWritableError(CaptureTargetError, PermissionError):
    """The logdir cannot be written (read-only mount, permissions, not a directory, the bundled demo)."""


class ProfilerServiceError(CaptureError, ConnectionError):
    """The profiler service failed: unreachable, refused the request, or sent nothing usable.

    ``code`` is the gRPC status code name (``UNAVAILABLE``, ``INTERNAL``, ...) or ``None``.
    """

    def __init__(self, message: str, service_addr: str, code: str | None = None) -> None:
        super().__init__(message)
        self.service_addr = service_addr
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.service_addr, self.code))


class ProfilerBusyError(ProfilerServiceError):
    """The program is already being profiled (``ALREADY_EXISTS``): try again when that session ends."""


class CaptureTimeoutError(ProfilerServiceError, TimeoutError):
    """The service did not answer within the deadline."""


class CaptureTooLargeError(ProfilerServiceError):
    """The service answered with more bytes than ``--capture_max_mb``; nothing was stored."""


class EmptyTraceError(ProfilerServiceError):
    """The service answered, but collected no trace events."""


class CaptureCancelledError(ProfilerServiceError):
    """The capture was cancelled (the aggregator is shutting down)."""


# --- deploy ---------------------------------------------------------------------------------------


class ClusterError(XprofError, RuntimeError):
    """The API server refused an operation; the message names the object and the server's reason."""


# --- one table: error -> HTTP status and gRPC code ------------------------------------------------


@dataclass(frozen=True)
class ErrorStatus:
    """What an error means on the wire: an HTTP status and a gRPC status code name."""

    http: int
    grpc: str


INTERNAL = ErrorStatus(500, "INTERNAL")

#: Looked up along the exception's MRO: the most specific class listed wins.
STATUS: Mapping[type[BaseException], ErrorStatus] = {
    ParamError: ErrorStatus(400, "INVALID_ARGUMENT"),
    DecodeError: ErrorStatus(422, "INVALID_ARGUMENT"),
    ProfileTooLargeError: ErrorStatus(422, "INVALID_ARGUMENT"),
    ProfileChangedError: ErrorStatus(409, "ABORTED"),
    UnsortedLineError: ErrorStatus(409, "ABORTED"),
    StorageError: ErrorStatus(503, "UNAVAILABLE"),
    LogdirError: ErrorStatus(400, "INVALID_ARGUMENT"),
    ProfileNotFoundError: ErrorStatus(404, "NOT_FOUND"),
    AccessDeniedError: ErrorStatus(403, "PERMISSION_DENIED"),
    StorageAccessError: ErrorStatus(403, "PERMISSION_DENIED"),
    UnknownToolError: ErrorStatus(404, "INVALID_ARGUMENT"),
    MissingExtraError: ErrorStatus(501, "UNIMPLEMENTED"),
    SerializationError: ErrorStatus(502, "DATA_LOSS"),
    InternalError: INTERNAL,
    MapTimeoutError: ErrorStatus(504, "DEADLINE_EXCEEDED"),
    WorkersUnavailableError: ErrorStatus(503, "UNAVAILABLE"),
    CaptureError: ErrorStatus(502, "UNAVAILABLE"),
    CaptureParamError: ErrorStatus(400, "INVALID_ARGUMENT"),
    CaptureDisabledError: ErrorStatus(403, "PERMISSION_DENIED"),
    CaptureNotAllowedError: ErrorStatus(403, "PERMISSION_DENIED"),
    CaptureLimitError: ErrorStatus(429, "RESOURCE_EXHAUSTED"),
    CaptureTargetError: ErrorStatus(409, "FAILED_PRECONDITION"),
    ProfilerBusyError: ErrorStatus(409, "ABORTED"),
    CaptureTimeoutError: ErrorStatus(504, "DEADLINE_EXCEEDED"),
    CaptureCancelledError: ErrorStatus(503, "CANCELLED"),
    ClusterError: INTERNAL,
}

#: The HTTP status of a gRPC code that came back from a worker without one of our errors.
GRPC_CODE_HTTP: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "OUT_OF_RANGE": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 403,
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "DEADLINE_EXCEEDED": 504,
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 503,
    "CANCELLED": 503,
}


def error_status(error: BaseException) -> ErrorStatus:
    """The HTTP status and gRPC code of ``error``; 500 / ``INTERNAL`` for anything that is not ours."""
    if isinstance(error, HttpError):
        return ErrorStatus(error.status, "UNKNOWN")
    if isinstance(error, RemoteMapError):
        return ErrorStatus(GRPC_CODE_HTTP.get(error.code, 502), error.code)
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return INTERNAL


def http_status(error: BaseException) -> int:
    return error_status(error).http


def grpc_code_name(error: BaseException) -> str:
    return error_status(error).grpc


# --- errors across processes ----------------------------------------------------------------------

# Classes rebuilt by name on the other side; each takes the message as its only argument,
# except DecodeError, whose fields travel too.
_TRANSPORTABLE: dict[str, type[XprofError]] = {
    cls.__name__: cls
    for cls in (
        ParamError,
        HloModuleNotFoundError,
        DecodeError,
        ProfileTooLargeError,
        ProfileChangedError,
        UnsortedLineError,
        StorageError,
        SerializationError,
        ProfileNotFoundError,
        RunNotFoundError,
        HostNotFoundError,
        NotAProfileFileError,
        AccessDeniedError,
        StorageAccessError,
        LogdirNotFoundError,
        UnknownToolError,
        LogdirError,
        MissingExtraError,
        InternalError,
        MapTimeoutError,
    )
}


def error_fields(error: BaseException) -> dict[str, str]:
    """What of ``error`` travels to another process besides its message: its class and, for a
    DecodeError, its reason, offset and path. Errors that are not ours travel as InternalError."""
    name = type(error).__name__
    if _TRANSPORTABLE.get(name) is not type(error):
        name = InternalError.__name__
    fields = {"type": name}
    if isinstance(error, DecodeError):
        fields.update(reason=error.reason, offset=str(error.offset), path=error.path)
    return fields


def error_from_fields(fields: Mapping[str, str], message: str) -> XprofError | None:
    """The error :func:`error_fields` described (``message`` is its text), or None when unknown."""
    cls = _TRANSPORTABLE.get(fields.get("type", ""))
    if cls is None:
        return None
    if cls is DecodeError:
        try:
            return DecodeError(fields["reason"], int(fields["offset"]), fields["path"])
        except (KeyError, ValueError):
            return None
    return cls(message)


__all__ = [
    "GRPC_CODE_HTTP",
    "STATUS",
    "AccessDeniedError",
    "CaptureCancelledError",
    "CaptureDisabledError",
    "CaptureError",
    "CaptureLimitError",
    "CaptureNotAllowedError",
    "CaptureParamError",
    "CaptureTargetError",
    "CaptureTimeoutError",
    "CaptureTooLargeError",
    "ClusterError",
    "DecodeError",
    "EmptyTraceError",
    "ErrorStatus",
    "HloModuleNotFoundError",
    "HostNotFoundError",
    "HttpError",
    "InternalError",
    "LogdirError",
    "LogdirNotWritableError",
    "MapTimeoutError",
    "MissingExtraError",
    "NotAProfileFileError",
    "ParamError",
    "ProfileChangedError",
    "ProfileNotFoundError",
    "ProfileTooLargeError",
    "ProfilerBusyError",
    "ProfilerServiceError",
    "RemoteMapError",
    "RunNotFoundError",
    "SerializationError",
    "StorageError",
    "UnknownToolError",
    "UnsortedLineError",
    "WorkersUnavailableError",
    "XprofError",
    "error_fields",
    "error_from_fields",
    "error_status",
    "grpc_code_name",
    "http_status",
]
