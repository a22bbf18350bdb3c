"""The host index: every table tool's per-host data, built by one pass over the host.

:func:`build_host_index` walks a host once (:mod:`xprof_core.index.passes`),
finds its steps (:mod:`xprof_core.index.steps`) and computes each table
tool's section from that one pass. The result is a partial (JSON types and
numpy arrays) that the worker sends, the aggregator caches (in memory and
under ``--cache_dir``) and every table tool's ``reduce`` reads its section
of: after any table tool has seen a host, every other one is a view of the
cached index.

Sections: ``steps`` (the step table), ``overview_page`` (device description,
idle share, top ops), ``input_pipeline_analyzer`` (input ops), ``op_stats``
(HLO and framework op tables, shared by framework_op_stats, hlo_stats and
op_profile) and ``kernel_stats`` (kernel groups).
"""

from __future__ import annotations

from typing import Any

from xprof_core.index.passes import host_pass_of
from xprof_core.index.steps import host_step_table
from xprof_core.tools.base import Partial
from xprof_core.tools.index_sections import INDEX_KIND, INDEX_VERSION


def build_host_index(source: Any) -> Partial:
    """The host index of one host (a HostPass, or an XSpace walked here)."""
    from xprof_core.tools.input_pipeline import INPUT_PIPELINE_ANALYZER, input_ops
    from xprof_core.tools.kernel_stats import map_kernel_stats
    from xprof_core.tools.op_stats.host_map import map_op_stats
    from xprof_core.tools.overview_page import OVERVIEW_PAGE, overview_section

    hp = host_pass_of(source)
    return {
        "kind": INDEX_KIND,
        "version": INDEX_VERSION,
        "steps": host_step_table(hp).to_partial(),
        "overview_page": {"version": OVERVIEW_PAGE.version, **overview_section(hp)},
        "input_pipeline_analyzer": {"version": INPUT_PIPELINE_ANALYZER.version, "input_ops": input_ops(hp)},
        "op_stats": map_op_stats(hp),
        "kernel_stats": map_kernel_stats(hp),
        "num_events": hp.num_events,
    }


__all__ = ["build_host_index"]
