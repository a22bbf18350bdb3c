"""Parquet export: one file per table and a schema document (``schema.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from xprof_core.export.tables import SCHEMA, require_pyarrow, schemas

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_FILE = "schema.json"


def write_parquet(tables: Mapping[str, pa.Table], out_dir: str) -> list[str]:
    """Write ``<out_dir>/<table>.parquet`` for each table and ``schema.json``; the paths written.

    The schema document lists, per table, its description and each column's
    name, Arrow type and meaning; each Parquet file also carries its table's
    description in its key-value metadata.
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    os.makedirs(out_dir, exist_ok=True)
    written = []
    doc = schemas()
    for name, table in tables.items():
        # The schema document records the types as written (steps' columns depend on the profile).
        doc[name]["columns"] = [
            {"name": f.name, "type": str(f.type), "description": dict(SCHEMA[name]["columns"]).get(f.name, "")}
            for f in table.schema
        ]
        meta = dict(table.schema.metadata or {})
        meta[b"xprof_core.table"] = name.encode()
        meta[b"xprof_core.description"] = SCHEMA[name]["description"].encode()
        path = os.path.join(out_dir, f"{name}.parquet")
        pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")
        written.append(path)
    path = os.path.join(out_dir, SCHEMA_FILE)
    with open(path, "w") as f:
        json.dump({"tables": {n: doc[n] for n in tables}, "pyarrow": pa.__version__}, f, indent=2)
        f.write("\n")
    written.append(path)
    return written


__all__ = ["SCHEMA_FILE", "write_parquet"]
