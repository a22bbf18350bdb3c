// The table tools: framework_op_stats, hlo_stats, kernel_stats and input_pipeline_analyzer.
// Each is a few summary facts and one or more sortable, filterable, paged tables with CSV links.

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { graphHash } from "../graph_link.js";
import { formatMs, formatNumber, formatPct } from "../format.js";
import { stepChart } from "../step_chart.js";
import { kpi } from "./overview.js";

const TITLES = {
  framework_op_stats: "Framework op stats",
  hlo_stats: "HLO op stats",
  kernel_stats: "GPU kernel stats",
  input_pipeline_analyzer: "Input pipeline analysis",
};

export async function mount(ctx) {
  const data = await ctx.load();
  if (!data) return null;
  const parts = [h("h1", { text: TITLES[ctx.tool] || ctx.tool })];
  if (data.reason) parts.push(h("p.note", { text: data.reason }));
  if (ctx.tool === "input_pipeline_analyzer") parts.push(...inputPipeline(ctx, data));
  else {
    parts.push(...facts(ctx.tool, data));
    const table = data[ctx.tool];
    if (table) {
      parts.push(dataTable({ name: ctx.tool, table, csvUrl: ctx.csvUrl(ctx.tool), pageSize: 50,
        emptyText: data.reason || "No rows.", cellLink: ctx.tool === "hlo_stats" ? hloGraphLink(ctx, table) : null }));
    }
  }
  replaceChildren(ctx.container, h("section.view", { dataset: { view: ctx.tool } }, parts));
  return null;
}

/** hlo_stats: each HLO op name links to the graph around it. */
function hloGraphLink(ctx, table) {
  const ids = table.cols.map((c) => c.id);
  const program = ids.indexOf("program_id");
  return (row, colId) => (colId === "hlo_op_name" && program >= 0 && row[program]
    ? graphHash(ctx.run, { programId: row[program], node: row[ids.indexOf("hlo_op_name")], hosts: ctx.hosts }) : null);
}

function facts(tool, data) {
  if (tool === "kernel_stats") {
    return [h("div.kpis", {},
      kpi("kernels", "Kernels", formatNumber(data.num_kernels ?? 0), data.num_rows_dropped
        ? `${formatNumber(data.num_rows_dropped)} rows beyond the table's limit left out` : null, data.num_kernels),
      kpi("launches", "Kernel launches", formatNumber(data.total_occurrences ?? 0), null, data.total_occurrences),
      kpi("kernel-time", "Total kernel time", `${formatNumber(data.total_duration_us ?? 0)} µs`, null,
        data.total_duration_us))];
  }
  const p = (data[tool] && data[tool].p) || data;
  const bits = [];
  if (p.device_type) bits.push(`Device type: ${p.device_type}`);
  if (p.xla_on) bits.push(`XLA ops run on the ${p.xla_on}`);
  if (p.hosts) bits.push(`Hosts: ${p.hosts.join(", ")}`);
  return bits.length ? [h("p.muted", { text: bits.join(" · ") })] : [];
}

function inputPipeline(ctx, data) {
  const s = data.summary || {};
  const out = [h("div.kpis", {},
    kpi("verdict", "Verdict", s.verdict || "n/a", null, s.verdict),
    kpi("input-percent", "Step time waiting for input", formatPct(s.input_percent), null, s.input_percent),
    kpi("steps", "Steps", formatNumber(s.steps ?? 0), null, s.steps),
    kpi("avg-step-time", "Average step time", formatMs(s.avg_step_ms), null, s.avg_step_ms),
    kpi("avg-input-time", "Average input time", formatMs(s.avg_input_ms), null, s.avg_input_ms))];
  if (data.step_table && data.step_table.rows.length) {
    out.push(h("section.panel", {}, h("h2", { text: "Input time per step" }), stepChart(data.step_table)));
  }
  if (data.step_table) {
    out.push(dataTable({ name: "step_table", table: data.step_table, title: "Steps", csvUrl: ctx.csvUrl("step_table"),
      pageSize: 25 }));
  }
  if (data.input_ops) {
    out.push(dataTable({ name: "input_ops", table: data.input_ops, title: "Input operations",
      csvUrl: ctx.csvUrl("input_ops"), pageSize: 25, emptyText: "No input-pipeline operations in this profile." }));
  }
  return out;
}
