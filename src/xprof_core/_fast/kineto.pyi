"""Type stubs for the compiled Kineto / Chrome trace JSON transcoder (see kineto.pyx)."""

from typing import Any

class KinetoTranscoder:
    """Streams trace JSON into XSpace wire bytes: ``feed`` chunks, then ``write``."""

    top_items: list[tuple[str, bytes]]
    metadata: list[tuple[str, int, int, str]]
    skipped: int
    negative_durations: int
    @property
    def num_events(self) -> int: ...
    @property
    def base_ps(self) -> int: ...
    def feed(self, data: Any, final: bool = False) -> int:
        """Consume the complete units of ``data``; the bytes consumed, or -1 on bad input."""
    def error(self) -> tuple[str, int, str] | None:
        """(message, byte offset, path) of the failure."""
    def phase_counts(self) -> dict[str, int]: ...
    def string(self, sid: int) -> str: ...
    def key_text(self, key: int) -> int | str: ...
    def lines_info(self) -> list[tuple[int, int, int, int, int, int]]:
        """(plane, device, pid key, tid key, kind, events) of each line."""
    def write(self, hostname: str, planes: list[Any], warnings: list[str] | None = None) -> bytearray:
        """The XSpace wire bytes of everything read."""
