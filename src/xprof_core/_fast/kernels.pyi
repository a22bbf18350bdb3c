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
