"""HTML for notebooks: DataTables as sortable HTML tables, tool results and summaries.

Only the standard library: the model and the execution layer both use it for
``_repr_html_``. Tables sort when a header is clicked (a small inline script;
notebooks run it for trusted outputs, and an untrusted output is still a
plain, readable table).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_ROWS = 200
_ids = itertools.count(1)

# One handler per table: sort rows by the clicked column (numbers by data-v), toggling the direction.
_SORT_SCRIPT = """<script>(function(){var t=document.getElementById("%s");if(!t)return;
t.querySelectorAll("th").forEach(function(th,i){th.style.cursor="pointer";th.addEventListener("click",function(){
var b=t.tBodies[0],r=Array.from(b.rows),d=th.dataset.dir==="asc"?-1:1;th.dataset.dir=d>0?"asc":"desc";
r.sort(function(x,y){var a=x.cells[i],c=y.cells[i],p=a.dataset.v,q=c.dataset.v;
if(p!==undefined&&q!==undefined)return d*(parseFloat(p)-parseFloat(q));
return d*a.textContent.localeCompare(c.textContent);});r.forEach(function(x){b.appendChild(x);});});});})();</script>"""


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "<td></td>"
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return "<td></td>"
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
        return f'<td data-v="{value!r}" style="text-align:right">{html.escape(text)}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def datatable_html(table: Mapping[str, Any], title: str | None = None, max_rows: int = MAX_ROWS) -> str:
    """A Google DataTable (``cols``/``rows``) as a sortable HTML table.

    Rows past ``max_rows`` are counted, not shown.
    """
    table_id = f"xprof-table-{next(_ids)}"
    cols = table.get("cols", [])
    rows = table.get("rows", [])
    kinds = [c.get("type", "string") for c in cols]
    head = "".join(f"<th>{html.escape(str(c.get('label') or c.get('id')))}</th>" for c in cols)
    body = []
    for row in rows[:max_rows]:
        cells = row.get("c", [])
        body.append("<tr>" + "".join(_cell(cell.get("v"), k) for cell, k in zip(cells, kinds, strict=False)) + "</tr>")
    more = f"<p><i>{len(rows) - max_rows:,} more rows not shown</i></p>" if len(rows) > max_rows else ""
    caption = (
        f"<caption style='text-align:left'><b>{html.escape(title)}</b> ({len(rows):,} rows)</caption>" if title else ""
    )
    return (
        f'<table id="{table_id}" class="xprof-table">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{more}" + _SORT_SCRIPT % table_id
    )


def summary_html(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> str:
    """A two-column key/value table."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in pairs
    )
    caption = f"<caption style='text-align:left'><b>{html.escape(title)}</b></caption>" if title else ""
    return f"<table class='xprof-summary'>{caption}{rows}</table>"


def is_datatable(value: Any) -> bool:
    return isinstance(value, Mapping) and "cols" in value and "rows" in value


def result_html(result: Mapping[str, Any], title: str | None = None) -> str:
    """A tool result: its scalar fields as a summary, then each of its tables (sortable)."""
    scalars = [(k, v) for k, v in result.items() if isinstance(v, (str, int, float, bool)) and k != "version"]
    parts = [summary_html(scalars, title)] if scalars or title else []
    for key, value in result.items():
        if is_datatable(value):
            parts.append(datatable_html(value, title=key))
    return "<div class='xprof-result'>" + "".join(parts) + "</div>"


__all__ = ["datatable_html", "is_datatable", "result_html", "summary_html"]
