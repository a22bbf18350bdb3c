"""Type stubs for the compiled event repeater (see repeat.pyx)."""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

class LineRepeater:
    """Scan, size and write the repeated events of one plane's lines."""

    def __init__(
        self,
        buf: Any,
        stat_ids: ArrayLike,
        stat_steps: ArrayLike,
        md_old: ArrayLike,
        md_first: ArrayLike,
        shift_ps: int,
    ) -> None: ...
    def scan(
        self,
        begin: int,
        end: int,
        smin: NDArray[np.int64],
        smax: NDArray[np.int64],
        umin: NDArray[np.uint64],
        umax: NDArray[np.uint64],
        seen: NDArray[np.int64],
    ) -> tuple[bytes, bytes, int, int, int, int, int, int]:
        """(head, tail, timestamp_ns, duration_ps, events, timed events, first_ps, last_ps) of one line."""
    def size(self, begin: int, end: int, copies: int, rename: bool = False) -> int:
        """Bytes of the line's events written ``copies`` times."""
    def write(self, begin: int, end: int, copy: int, rename: bool = False, chunk_bytes: int = ...) -> tuple[bytes, int]:
        """Copy ``copy`` of the line's events from ``begin``: (bytes, next begin)."""
