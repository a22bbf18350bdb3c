"""The OpenAPI document of the aggregator's HTTP API."""

from __future__ import annotations

from typing import Any

from xprof_core._version import __version__

_RUN = {
    "name": "run",
    "in": "query",
    "required": True,
    "schema": {"type": "string"},
    "description": "run name as listed by /runs, e.g. 'train/2024_01_01_00_00_00'",
}
_TAG = {
    "name": "tag",
    "in": "query",
    "required": True,
    "schema": {"type": "string"},
    "description": "tool name (XProf's parameter name; 'tool' is accepted too)",
}
_HOST = {
    "name": "host",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "one host of the run (default: every host)",
}
_HOSTS = {
    "name": "hosts",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "comma-separated hosts of the run",
}
_DIFF_PARAMS = [
    {
        "name": "run2",
        "in": "query",
        "schema": {"type": "string"},
        "description": "diff: run B, compared with run A ('run'); required with tag=diff",
    },
    {
        "name": "host2",
        "in": "query",
        "schema": {"type": "string"},
        "description": "diff: one host of run B (default: every host; 'host'/'hosts' select run A's)",
    },
    {"name": "hosts2", "in": "query", "schema": {"type": "string"}, "description": "diff: comma-separated hosts of B"},
    {
        "name": "metric",
        "in": "query",
        "schema": {"type": "string", "enum": ["mean", "p50", "p90", "p99"], "default": "mean"},
        "description": "diff: the step-time statistic the verdict compares",
    },
    {
        "name": "top",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
        "description": "diff: rows of the top regressions and improvements tables",
    },
]
_DATATABLE_SCHEMA = {
    "type": "object",
    "description": "Google DataTable JSON",
    "required": ["cols", "rows"],
    "properties": {
        "cols": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "label": {"type": "string"}, "type": {"type": "string"}},
            },
        },
        "rows": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "array"}}}},
    },
}
_TABLE_REF = {"$ref": "#/components/schemas/DataTable"}
_DIFF_SCHEMA = {
    "type": "object",
    "description": "Run B compared with run A: ops aligned by name and by fingerprint, per-op deltas, "
    "new and vanished ops, step-time distributions and breakdowns side by side, top regressions and "
    "improvements (ranked by the absolute change of self time per step) and a verdict line",
    "required": ["verdict", "summary", "steps", "step_distribution", "breakdown", "top_regressions"],
    "properties": {
        "version": {"type": "integer"},
        "runs": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
        "verdict": {
            "type": "string",
            "description": "e.g. 'B is 7.3% slower than A per step (...); 80% of it is in 3 ops: ...'",
        },
        "summary": {
            "type": "object",
            "properties": {
                "basis": {"type": "string"},
                "metric": {"type": "string"},
                "value_a_ms": {"type": "number"},
                "value_b_ms": {"type": "number"},
                "change_ms": {"type": "number"},
                "change_pct": {"type": ["number", "null"]},
                "slower": {"type": "boolean"},
                "primary_level": {"type": "string", "enum": ["hlo_ops", "framework_ops", "kernels"]},
                "explained_by": {"type": "array", "items": {"type": "object"}},
                "new_ops": {"type": "integer"},
                "vanished_ops": {"type": "integer"},
                "matched_ops": {"type": "integer"},
            },
        },
        "steps": {"type": "object", "description": "count, mean, std, min, p50, p90, p99, max (ms) of A and B"},
        "step_distribution": _TABLE_REF,
        "breakdown": _TABLE_REF,
        "top_regressions": _TABLE_REF,
        "top_improvements": _TABLE_REF,
        "hlo_ops": _TABLE_REF,
        "framework_ops": _TABLE_REF,
        "kernels": _TABLE_REF,
    },
}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _get(
    summary: str, params: list[dict[str, Any]], ok: dict[str, Any], errors: tuple[int, ...] = ()
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for code in errors:
        responses[str(code)] = _ERROR
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


# Parameters of memory_profile, memory_viewer, roofline_model and graph_viewer: (name, type, description).
_TOOL_PARAMS = (
    ("memory_id", "string", "memory_profile: the memory (allocator) to detail; default: the largest peak"),
    ("start_ms", "number", "memory_profile: timeline window start, ms from the profile start"),
    ("end_ms", "number", "memory_profile: timeline window end, ms from the profile start"),
    ("event_order", "string", "memory_profile: 'time' (default) or 'xprof' (XProf's order: offset on each line)"),
    ("module_name", "string", "memory_viewer, graph_viewer: the HLO module, e.g. 'jit_step(1234)'"),
    ("program_id", "string", "memory_viewer, graph_viewer: the HLO module by program id"),
    ("memory_space", "integer", "memory_viewer: the memory space (buffer color), default 0"),
    ("node_name", "string", "graph_viewer: the op (or computation) at the centre; default: the entry's root"),
    ("graph_width", "integer", "graph_viewer: how many steps from the centre to draw (default 3)"),
    ("merge_fusion", "integer", "graph_viewer: 1 draws fusions as single nodes"),
    ("format", "string", "graph_viewer: 'dot' adds the graph as Graphviz DOT text"),
    ("max_rows", "integer", "roofline_model: op rows kept, largest self time first (default 1000, 0: all)"),
)


def _tool_params() -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "schema": {"type": kind}, "description": text}
        for name, kind, text in _TOOL_PARAMS
    ]


def openapi_document(tools: list[str]) -> dict[str, Any]:
    """OpenAPI 3.1 description of every route the aggregator serves."""
    json_ok = {"description": "JSON", "content": {"application/json": {}}}
    tag = dict(_TAG, schema={"type": "string", "enum": [*tools, "diff"]})
    window = [
        {
            "name": "start_time_ms",
            "in": "query",
            "schema": {"type": "number"},
            "description": "trace_viewer: window start, ms from the profile start",
        },
        {
            "name": "end_time_ms",
            "in": "query",
            "schema": {"type": "number"},
            "description": "trace_viewer: window end, ms from the profile start",
        },
        {
            "name": "resolution",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0},
            "description": "trace_viewer: keep events visible at this many pixels across the window (0: all); "
            "memory_profile: timeline points (default 1000)",
        },
        *_tool_params(),
        {
            "name": "derived",
            "in": "query",
            "schema": {"type": "integer", "enum": [0, 1]},
            "description": "trace_viewer: 1 adds XProf's derived lines per device stream (XLA Modules, XLA Ops, "
            "Framework Ops, Framework Name Scope, Source code) and a device Steps line",
        },
        {
            "name": "flows",
            "in": "query",
            "schema": {"type": "integer", "enum": [0, 1]},
            "description": "trace_viewer: 1 adds flow events (ph s/f, cat gpu_launch) from each host launch to the "
            "device events with its correlation_id, for the events in the window",
        },
        {
            "name": "search",
            "in": "query",
            "schema": {"type": "string", "maxLength": 256},
            "description": "trace_viewer: search the whole profile for events whose name contains this text "
            "(case-insensitive); the answer is {search: {query, total, after, returned, matches: [{ts, dur, pid, "
            "tid, name}]}} instead of a trace",
        },
        {
            "name": "search_from_ms",
            "in": "query",
            "schema": {"type": "number"},
            "description": "trace_viewer search: return matches starting at or after this time (ms from the profile "
            "start)",
        },
        {
            "name": "search_limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
            "description": "trace_viewer search: how many matches to return (default 500)",
        },
    ]
    api = "/data/plugin/profile"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xprof-core aggregator",
            "version": __version__,
            "description": "XProf-compatible profile API: runs, hosts and analysis tools of a logdir.",
        },
        "paths": {
            f"{api}/runs": _get(
                "List runs, newest first",
                [],
                {
                    "description": "run names",
                    "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}},
                },
            ),
            f"{api}/run_tools": _get("Tools available for a run", [_RUN], json_ok, (400, 404)),
            f"{api}/hosts": _get(
                "Hosts of a run",
                [_RUN, dict(_TAG, required=False)],
                {
                    "description": "hosts",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": {"type": "object", "properties": {"hostname": {"type": "string"}}},
                            }
                        }
                    },
                },
                (400, 404),
            ),
            f"{api}/data": _get(
                "Run a tool on the selected hosts (tables are Google DataTable JSON; "
                "trace_viewer is Chrome Trace Event JSON)",
                [_RUN, tag, _HOST, _HOSTS, *window, *_DIFF_PARAMS],
                {
                    "description": "JSON: the tool's result; with tag=diff, a Diff",
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [{"type": "object"}, {"$ref": "#/components/schemas/Diff"}]}
                        }
                    },
                },
                (400, 403, 404, 409, 422, 500, 503, 504),
            ),
            f"{api}/data_csv": _get(
                "A tool's table as CSV",
                [
                    _RUN,
                    tag,
                    _HOST,
                    _HOSTS,
                    {
                        "name": "table",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "which table of the result (default: the first)",
                    },
                ],
                {"description": "CSV", "content": {"text/csv": {}}},
                (400, 403, 404, 409, 422, 500, 503, 504),
            ),
            f"{api}/capture_profile": _get(
                "Capture a profile from a live program's profiler service into a new run (GET or POST). "
                "403 when capture is off (--hide_capture_profile_button) or the address is outside "
                "--capture_allow; 429 when this client already runs its share of captures; 502, one answer "
                "whatever the service did, when no profile came back",
                [
                    {
                        "name": "service_addr",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "host:port of the profiler server (jax.profiler.start_server(port))",
                    },
                    {
                        "name": "duration",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 300000},
                        "description": "trace length in ms",
                    },
                    *(
                        {
                            "name": f"{k}_tracer_level",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": 3},
                        }
                        for k in ("host", "device", "python")
                    ),
                ],
                json_ok,
                (400, 403, 409, 429, 502, 503),
            ),
            f"{api}/config": _get("UI configuration", [], json_ok),
            f"{api}/progress": _get(
                "Long work in flight: hosts being indexed in shards, with shard tasks done and total",
                [],
                json_ok,
            ),
            f"{api}/version": _get("Server version", [], {"description": "version", "content": {"text/plain": {}}}),
            "/openapi.json": _get("This document", [], json_ok),
            "/healthz": _get("Liveness", [], {"description": "alive", "content": {"text/plain": {}}}),
            "/readyz": _get("Readiness: the logdir can be listed", [], json_ok, (503,)),
            "/metrics": _get("Prometheus metrics", [], {"description": "metrics", "content": {"text/plain": {}}}),
        },
        "components": {
            "schemas": {
                "Diff": _DIFF_SCHEMA,
                "DataTable": _DATATABLE_SCHEMA,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "host": {"type": "string"},
                        "offset": {"type": "integer", "description": "byte offset of a decode error"},
                        "path": {"type": "string", "description": "message path of a decode error"},
                        "code": {"type": "string", "description": "the gRPC status name of a map task's error"},
                    },
                },
            }
        },
    }
