"""Type stubs for the compiled XSpace decoder (see decoder.pyx)."""

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

Columns = dict[str, Any]

def decode_columns(buf: Any, progress: Callable[[int, int], None] | None = None, skip_lines: bool = False) -> Columns:
    """Decode XSpace wire bytes into plain columns (lines left undecoded with ``skip_lines``: their byte
    spans in ``line_spans``); raises DecodeError on bad input."""

def gather_event_stats(
    buf: Any,
    event_offset: NDArray[np.uint32] | NDArray[np.int64],
    rows: NDArray[np.int64],
    metadata_ids: NDArray[np.int64],
) -> dict[str, NDArray[Any]]:
    """Decode the stats of the selected events: columns row, metadata_id, kind, value, length."""
