"""Profiles for other tools: Arrow tables, SQL (DuckDB), Parquet files and Perfetto traces.

``tables`` builds the Arrow tables (``events``, ``lines``, ``planes``,
``metadata``, ``stats``, ``steps``, ``ops``); ``sql`` runs DuckDB over them;
``parquet`` writes them with a schema document; ``perfetto`` writes a
Perfetto protobuf trace. pyarrow and duckdb are optional
(``pip install 'xprof-core[arrow]'`` / ``'xprof-core[sql]'``); the error names
the extra when one is missing.
"""
