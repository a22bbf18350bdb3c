"""Type stubs for the compiled interval kernels (see intervals.pyx)."""

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
