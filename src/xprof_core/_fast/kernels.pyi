"""Type stubs for the compiled aggregation kernels (see kernels.pyx)."""

import numpy as np
from numpy.typing import NDArray

def priority_union(
    start: NDArray[np.int64],
    end: NDArray[np.int64],
    category: NDArray[np.int64],
    group: NDArray[np.int64],
    order: NDArray[np.int64],
    n_groups: int,
    n_categories: int,
) -> NDArray[np.int64]:
    """Covered time per (category prefix, group), intervals visited in ``order`` (sorted by group, start)."""

def step_breakdown(
    start: NDArray[np.int64],
    duration: NDArray[np.int64],
    metadata_id: NDArray[np.int32],
    timed: NDArray[np.uint8],
    line_begin: NDArray[np.int64],
    line_end: NDArray[np.int64],
    line_lut_offset: NDArray[np.int64],
    lut_size: NDArray[np.int64],
    lut: NDArray[np.int8],
    default_category: int,
    step_start: NDArray[np.int64],
    step_end: NDArray[np.int64],
    marker_duration: NDArray[np.int64],
    x_start: NDArray[np.int64],
    x_end: NDArray[np.int64],
    x_category: NDArray[np.int64],
    x_step: NDArray[np.int64],
    n_categories: int,
) -> NDArray[np.int64] | None:
    """Per-step cumulative covered time of host lines plus extra intervals in one merged pass (None: unsorted)."""

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
