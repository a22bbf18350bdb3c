"""Google DataTable JSON, the table format XProf's HTTP API returns.

``{"cols": [{"id", "label", "type"}], "rows": [{"c": [{"v": value}, ...]}], "p": {...}}``
with types "string", "number" and "boolean".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

Column = tuple[str, str, str]  # (id, label, type)
_INF = float("inf")


def _cell(value: Any) -> dict[str, Any]:
    if isinstance(value, float) and not math.isfinite(value):
        return {"v": None}
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return {"v": value}


def datatable(
    columns: Sequence[Column], rows: Iterable[Sequence[Any]], properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build a DataTable from (id, label, type) columns and row value sequences."""
    cols = [{"id": cid, "label": label, "type": kind} for cid, label, kind in columns]
    out_rows = []
    plain = (str, int, bool, type(None))
    for row in rows:
        if len(row) != len(cols):
            raise ValueError(f"row has {len(row)} values for {len(cols)} columns")
        # Python strings and ints go straight in; floats and numpy scalars take the careful path.
        out_rows.append(
            {"c": [{"v": v} if type(v) in plain or (type(v) is float and -_INF < v < _INF) else _cell(v) for v in row]}
        )
    table: dict[str, Any] = {"cols": cols, "rows": out_rows}
    if properties:
        table["p"] = properties
    return table


def column_values(table: dict[str, Any], column_id: str) -> list[Any]:
    """All values of one column, by id."""
    ids = [c["id"] for c in table["cols"]]
    i = ids.index(column_id)
    return [r["c"][i]["v"] for r in table["rows"]]


def to_csv(table: dict[str, Any]) -> str:
    """The table as CSV with a header of column labels."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c["label"] or c["id"] for c in table["cols"]])
    for r in table["rows"]:
        w.writerow(["" if cell["v"] is None else cell["v"] for cell in r["c"]])
    return buf.getvalue()
