"""XProf's op-statistics tools: ``framework_op_stats``, ``hlo_stats`` and ``op_profile``.

The three tools share one per-host aggregation (:func:`map_op_stats`, from
the host pass): two small tables, one row per HLO op and one row per
framework (TensorFlow / JAX) op, with occurrences, total and self time (ps),
min time, FLOPs and bytes accessed. ``reduce`` sums the hosts' rows by key.
The rules are in :mod:`~xprof_core.tools.op_stats.host_map`; the views in
:mod:`~xprof_core.tools.op_stats.views`.
"""

from __future__ import annotations

from xprof_core.index.framework_ops import FrameworkOp, parse_framework_op
from xprof_core.index.hlo_proto import HloModules, category_from_opcode
from xprof_core.tools.op_stats.host_map import category_from_name, device_type, map_op_stats
from xprof_core.tools.op_stats.nesting import nesting_parents, self_times
from xprof_core.tools.op_stats.op_table import FRAMEWORK_IDS, HLO_IDS, OpTable
from xprof_core.tools.op_stats.views import (
    FRAMEWORK_COLUMNS,
    FRAMEWORK_OP_STATS,
    HLO_COLUMNS,
    HLO_STATS,
    OP_PROFILE,
    TOOLS,
    VERSION,
    reduce_framework,
    reduce_hlo,
)

__all__ = [
    "FRAMEWORK_COLUMNS",
    "FRAMEWORK_IDS",
    "FRAMEWORK_OP_STATS",
    "HLO_COLUMNS",
    "HLO_IDS",
    "HLO_STATS",
    "OP_PROFILE",
    "TOOLS",
    "VERSION",
    "FrameworkOp",
    "HloModules",
    "OpTable",
    "category_from_name",
    "category_from_opcode",
    "device_type",
    "map_op_stats",
    "nesting_parents",
    "parse_framework_op",
    "reduce_framework",
    "reduce_hlo",
    "self_times",
]
