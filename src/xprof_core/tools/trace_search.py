"""Whole-profile search for the trace viewer: every event whose name contains a text.

A trace window holds only what is visible at its zoom, so searching what the browser has loaded
misses most of a large profile. :func:`search_index` matches the text against each distinct name
once (case-insensitive substring, as the viewer's search box), marks the events of the matching
names, and returns how many there are in all and the first ``limit`` of them (in time order) from
a given time on, with where they are (pid, tid) so the viewer can jump to any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xprof_core.model.xspace import XSpace

MAX_QUERY = 256
DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class SearchHits:
    """Matches of one host, in time order from the asked time on (relative int64 ps)."""

    total: int  # every match in the profile
    after: int  # matches at or after the asked time
    rows: np.ndarray  # event rows (derived rows past the XSpace's own) of the first `limit` of those
    start_ps: np.ndarray  # absolute start of each
    dur_ps: np.ndarray


def _matching(names: list[str], needle: str) -> np.ndarray:
    """Which of ``names`` contain ``needle`` (already lower-case)."""
    return np.fromiter((needle in n.lower() for n in names), dtype=bool, count=len(names))


def search_index(
    xs: XSpace,
    event_rows: np.ndarray,
    start_ps: np.ndarray,
    dur_ps: np.ndarray,
    derived_names: list[str] | None,
    derived_name_index: np.ndarray | None,
    query: str,
    from_ps: int,
    limit: int,
) -> SearchHits:
    """Find the events of a trace index whose name contains ``query``.

    IN: ``event_rows`` every indexed event row (rows past ``xs.num_events`` are derived events, whose
    names are ``derived_names[derived_name_index[row - xs.num_events]]``); ``start_ps``/``dur_ps``
    their absolute start and duration; ``from_ps`` absolute time the returned matches start at or
    after; ``limit`` how many to return.
    """
    needle = query.strip().lower()
    empty = np.zeros(0, dtype=np.int64)
    if not needle:
        return SearchHits(0, 0, empty, empty, empty)
    md_names = list(xs.tables.event_metadata.name)
    md_match = np.r_[_matching(md_names, needle), False]  # trailing slot: unknown metadata (row -1)
    own = event_rows < xs.num_events
    hit = np.zeros(len(event_rows), dtype=bool)
    hit[own] = md_match[xs.event_metadata_row[event_rows[own]]]
    if derived_names is not None and derived_name_index is not None and (~own).any():
        d_match = _matching(derived_names, needle)
        hit[~own] = d_match[derived_name_index[event_rows[~own] - xs.num_events]]
    where = np.flatnonzero(hit)
    total = len(where)
    later = where[start_ps[where] >= from_ps]
    order = np.lexsort((later, start_ps[later]))[:limit]
    chosen = later[order]
    return SearchHits(total, len(later), event_rows[chosen], start_ps[chosen], dur_ps[chosen])


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_QUERY", "SearchHits", "search_index"]
