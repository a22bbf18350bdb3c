"""An XSpace's summary as HTML (its ``_repr_html_`` in notebooks)."""

from __future__ import annotations

from typing import Any

from xprof_core.richrepr import datatable_html, summary_html

PS_PER_MS = 1e9


def xspace_html(xs: Any) -> str:
    """Hosts, sizes and time span, then one sortable row per plane (lines, events, span, device).

    ``xs`` is an :class:`~xprof_core.model.xspace.XSpace` (not imported: xspace.py calls this).
    """
    timed = xs.is_timed
    starts = xs.start_ps[timed]
    span_ms = float((starts + xs.duration_ps[timed]).max() - starts.min()) / PS_PER_MS if len(starts) else 0.0
    head = summary_html(
        [
            ("hostnames", ", ".join(xs.hostnames) or "-"),
            ("planes", len(xs.planes)),
            ("lines", f"{xs.num_lines:,}"),
            ("events", f"{xs.num_events:,}"),
            ("span", f"{span_ms:,.3f} ms"),
        ],
        title="XSpace",
    )
    rows = []
    for p in xs.planes:
        b, e = p.event_begin, p.event_end
        ok = timed[b:e]
        s = xs.start_ps[b:e][ok]
        plane_span = float((s + xs.duration_ps[b:e][ok]).max() - s.min()) / PS_PER_MS if len(s) else 0.0
        rows.append(
            {"c": [{"v": p.name}, {"v": len(p.lines)}, {"v": p.num_events}, {"v": plane_span}, {"v": p.device_kind}]}
        )
    table = {
        "cols": [
            {"id": "plane", "label": "Plane", "type": "string"},
            {"id": "lines", "label": "Lines", "type": "number"},
            {"id": "events", "label": "Events", "type": "number"},
            {"id": "span_ms", "label": "Span (ms)", "type": "number"},
            {"id": "device", "label": "Device", "type": "string"},
        ],
        "rows": rows,
    }
    return head + datatable_html(table, title="Planes")
