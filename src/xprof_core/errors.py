"""The exceptions xprof-core raises. One root, so callers can catch them all."""

from __future__ import annotations


class XprofError(Exception):
    """Root of every error raised by xprof-core."""


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

    def __reduce__(self):  # keep the fields when pickled across processes
        return (type(self), (self.reason, self.offset, self.path))


class ProfileNotFoundError(XprofError, FileNotFoundError):
    """A profile file, run or host that does not exist."""


class UnknownToolError(XprofError, KeyError):
    """A tool name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class HloModuleNotFoundError(XprofError, ValueError):
    """A ``module_name`` or ``program_id`` that names no HLO module of the profile."""
