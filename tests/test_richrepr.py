"""HTML for notebooks: what a profile and a tool result look like, and that names cannot inject markup."""

from __future__ import annotations

import re

import xprof_core
from xprof_core.execute import run_tool
from xprof_core.execute.result import ToolResult
from xprof_core.richrepr import datatable_html, result_html
from xprof_core.tools.datatable import datatable

from conftest import JAX_DATA


def test_names_are_escaped_and_numbers_sort_by_value() -> None:
    table = datatable([("name", "Name <b>", "string"), ("us", "Time", "number")], [["<script>x</script>", 1234.5]])
    html = datatable_html(table, title="t&t")
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Name &lt;b&gt;" in html and "<b>t&amp;t</b>" in html
    assert 'data-v="1234.5"' in html and ">1,234.5<" in html
    many = datatable([("i", "I", "number")], [[i] for i in range(250)])
    assert "50 more rows not shown" in datatable_html(many)


def test_xspace_and_tool_results_render() -> None:
    path = JAX_DATA / "gpu_mlp_train.xplane.pb"
    xs = xprof_core.load(path)
    html = xs._repr_html_()
    assert f">{xs.num_events:,}</td>" in html
    for p in xs.planes:
        assert f"<td>{p.name}</td>" in html
    result = run_tool("kernel_stats", path)
    assert isinstance(result, ToolResult) and isinstance(result, dict)
    html = result._repr_html_()
    same = re.compile(r"xprof-table-\d+")  # each rendering numbers its tables afresh
    assert same.sub("", html) == same.sub("", result_html(result))
    assert "<b>kernel_stats</b>" in html and html.count("<tr>") >= len(result["kernel_stats"]["rows"])
