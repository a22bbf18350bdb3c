"""SQL over a profile: DuckDB queries over the Arrow tables of :mod:`xprof_core.export.tables`.

DuckDB reads the Arrow tables in place (no copy into a database). Only the
tables a query names are built, and an XSpace keeps the tables it built, so
a second query on it costs only the query. Example queries are in
``docs/sql.md``; the tables and columns in :data:`~xprof_core.export.tables.SCHEMA`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xprof_core.export.tables import TABLES, tables_named_in, xspace_table
from xprof_core.storage.logdir import MissingExtraError

if TYPE_CHECKING:
    import pyarrow as pa

    from xprof_core.model.xspace import XSpace

OUTPUTS = ("pandas", "arrow")
_built: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def require_duckdb() -> Any:
    """duckdb, or a MissingExtraError that names the extra to install."""
    try:
        import duckdb
    except ImportError as exc:
        raise MissingExtraError(f"SQL queries need duckdb and pyarrow: pip install 'xprof-core[sql]' ({exc})") from exc
    return duckdb


def query_tables(tables: Mapping[str, pa.Table], query: str, output: str = "arrow") -> Any:
    """Run ``query`` with each table registered under its name; an Arrow table or a pandas DataFrame."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    duckdb = require_duckdb()
    con = duckdb.connect(":memory:")
    try:
        for name, table in tables.items():
            con.register(name, table)
        try:
            relation = con.sql(query)
            if relation is None:  # a statement that returns no rows (SET, CREATE VIEW, ...)
                raise ValueError("the query returned no result set: give a SELECT (or another query with rows)")
            if output == "pandas":
                return relation.df()
            # duckdb >= 1.4 names it to_arrow_table; earlier releases arrow().
            to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
            return to_arrow()
        except duckdb.Error as exc:
            raise ValueError(f"SQL error: {exc}") from None
    finally:
        con.close()


def xspace_sql(xs: XSpace, query: str, output: str = "pandas", host: str = "") -> Any:
    """``XSpace.sql``: run ``query`` over this profile's tables (built on first use and kept with the XSpace)."""
    require_duckdb()
    built = _built.setdefault(xs, {})
    for name in tables_named_in(query):
        if name not in built:
            built[name] = xspace_table(xs, name, host)
    return query_tables({n: built[n] for n in TABLES if n in built}, query, output)


def xspace_arrow(xs: XSpace, host: str = "") -> dict[str, pa.Table]:
    """``XSpace.to_arrow``: every table of this profile (kept with the XSpace, as for SQL)."""
    built = _built.setdefault(xs, {})
    for name in TABLES:
        if name not in built:
            built[name] = xspace_table(xs, name, host)
    return dict(built)


__all__ = ["OUTPUTS", "query_tables", "require_duckdb", "xspace_arrow", "xspace_sql"]
