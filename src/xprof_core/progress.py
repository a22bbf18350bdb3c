"""A quiet progress bar for long reads: silent for quick work, a bar on stderr otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Callable ``(done, total)`` that draws a bar once work lasts past ``delay_s``.

    Pass it as the ``progress`` callback of :func:`xprof_core.load`. It writes
    only to ``stream`` (stderr by default), only when enabled (default: when
    the stream is a terminal), and never more than ten times a second.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay_s: float = 0.5,
        width: int = 30,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.delay_s = delay_s
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        finished = total > 0 and done >= total
        if now - self.started < self.delay_s or (now - self.last_draw < 0.1 and not finished):
            return
        self.last_draw = now
        self.drawn = True
        frac = min(1.0, done / total) if total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        mb = done / 1e6
        self.stream.write(f"\r{self.label} [{bar}] {frac * 100:5.1f}% {mb:,.1f} MB {now - self.started:.1f}s")
        if finished:
            self.stream.write("\n")
        self.stream.flush()
