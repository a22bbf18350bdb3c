"""Type stubs for the compiled trace JSON renderer (see trace_json.pyx)."""

import numpy as np
from numpy.typing import NDArray

def render_event_args(
    buf: object,
    event_offset: NDArray[np.uint32] | NDArray[np.int64],
    rows: NDArray[np.int64],
    key_base: NDArray[np.int64],
    key_limit: NDArray[np.int64],
    names: NDArray[np.uint8],
    name_start: NDArray[np.int64],
    name_end: NDArray[np.int64],
    md_row: NDArray[np.int64],
    md_json: NDArray[np.uint8],
    md_json_start: NDArray[np.int64],
    md_json_end: NDArray[np.int64],
    row_plane: NDArray[np.int64],
) -> tuple[bytes, NDArray[np.int64]]:
    """JSON args objects of events rendered from their raw stats: (blob, offsets)."""

def render_complete_events(
    pid: NDArray[np.int64],
    tid: NDArray[np.int64],
    ts_ps: NDArray[np.int64],
    dur_ps: NDArray[np.int64],
    name_idx: NDArray[np.int64],
    names: NDArray[np.uint8],
    name_start: NDArray[np.int64],
    name_end: NDArray[np.int64],
    args: NDArray[np.uint8],
    args_start: NDArray[np.int64],
    args_end: NDArray[np.int64],
    leading_comma: bool,
) -> bytes:
    """Chrome trace "X" events as comma-separated JSON text."""
