"""The host index partial's layout: its kind, version, and which section each table tool reads.

Kept apart from the builder (:mod:`xprof_core.tools.host_index`), which
imports the tools, so that the tools can read sections without an import
cycle.
"""

from __future__ import annotations

from xprof_core.tools.base import Partial

INDEX_KIND = "host_index"
# Bump when any section's content or meaning changes: cached indexes of another version are rebuilt.
INDEX_VERSION = 3  # 3: overview names the device planes its idle share averages
# The section each table tool reads.
SECTION_OF_TOOL = {
    "overview_page": "overview_page",
    "input_pipeline_analyzer": "input_pipeline_analyzer",
    "framework_op_stats": "op_stats",
    "hlo_stats": "op_stats",
    "op_profile": "op_stats",
    "kernel_stats": "kernel_stats",
}


def is_host_index(partial: Partial) -> bool:
    return partial.get("kind") == INDEX_KIND


def section(partial: Partial, tool: str) -> Partial:
    """A tool's partial from a host index (the same partial the tool's own ``map`` gives).

    A partial that is not an index is returned as it is. The ``host`` key the
    executor adds to a partial is kept.
    """
    if not is_host_index(partial):
        return partial
    if partial.get("version") != INDEX_VERSION:
        raise ValueError(f"host index version {partial.get('version')!r}, expected {INDEX_VERSION}")
    name = SECTION_OF_TOOL[tool]
    out: Partial = dict(partial[name])
    if name in ("overview_page", "input_pipeline_analyzer"):
        out["steps"] = partial["steps"]
    if "host" in partial:
        out["host"] = partial["host"]
    return out


__all__ = ["INDEX_KIND", "INDEX_VERSION", "SECTION_OF_TOOL", "is_host_index", "section"]
