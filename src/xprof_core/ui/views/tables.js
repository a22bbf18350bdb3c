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
  // The input pipeline view leads with XProf's analysis (the xprof_input_pipeline tool).
  const xprof = ctx.tool === "input_pipeline_analyzer" ? await ctx.load({}, ctx.container, "xprof_input_pipeline") : null;
  if (ctx.tool === "input_pipeline_analyzer" && !xprof) return null;
  const data = await ctx.load();
  if (!data) return null;
  const parts = [h("h1", { text: TITLES[ctx.tool] || ctx.tool })];
  if (data.reason) parts.push(h("p.note", { text: data.reason }));
  if (ctx.tool === "input_pipeline_analyzer") parts.push(...inputPipeline(ctx, data, xprof));
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

/**
 * input_pipeline_analyzer: XProf's verdict by XProf's rules (`x`, the xprof_input_pipeline tool's answer:
 * the sentence, the rules, its step table by event type, the host-side breakdown and input ops), then
 * the steps and input events as input_pipeline_analyzer reads them (`data`: its summary and tables).
 */
function inputPipeline(ctx, data, x) {
  const s = x.summary || {};
  const own = data.summary || {};
  const statements = Object.values(s.statements || {}).filter(Boolean);
  const out = [
    h("section.panel.verdict", { dataset: { classification: s.classification || "" } },
      h("h2", { text: "Is the run input-bound? (XProf's analysis)" }),
      h("p.conclusion", { text: s.conclusion || "XProf's analysis is not available for this run.",
        dataset: { field: "input-conclusion" } }),
      statements.length ? h("ul", {}, statements.map((t) => h("li", { text: t }))) : null,
      h("p.muted", { text: s.next_step || "" }),
      h("p.rules", {}, h("strong", { text: "How this is decided (XProf's rules): " }),
        h("span", { text: s.rules || "", dataset: { field: "rules" } }))),
    h("div.kpis", {},
      kpi("verdict", "XProf's verdict", s.verdict || "n/a", null, s.verdict),
      kpi("input-percent", "Step time waiting for input", formatPct(s.input_percent), "XProf's input events", s.input_percent),
      kpi("all-other-percent", "Step time in All others", formatPct(s.all_other_percent), "covered by no traced event",
        s.all_other_percent),
      kpi("steps", "Steps (XProf)", formatNumber(s.steps ?? 0), s.steps ? null : "no steps as XProf counts them", s.steps),
      kpi("avg-step-time", "Average step time (XProf)", formatMs(s.avg_step_ms),
        s.steps ? `σ ${formatMs(s.stddev_step_ms)} · min ${formatMs(s.min_step_ms)} · max ${formatMs(s.max_step_ms)}` : null,
        s.avg_step_ms)),
  ];
  if (x.step_table && x.step_table.rows.length) {
    out.push(h("section.panel", {}, h("h2", { text: "Step time by event type (XProf)" }), stepChart(x.step_table)));
    out.push(dataTable({ name: "xprof_step_table", table: x.step_table, title: "Steps (XProf)", pageSize: 25 }));
  }
  if (x.host_breakdown) {
    out.push(dataTable({ name: "host_breakdown", table: x.host_breakdown, title: "Input time on the host (XProf)",
      pageSize: 25 }));
  }
  if (x.input_ops) {
    out.push(dataTable({ name: "xprof_input_ops", table: x.input_ops, title: "Input operations on the host (XProf)",
      pageSize: 25, emptyText: "No input ops as XProf knows them (tf.data, infeed)." }));
  }
  // The same question as xprof-core reads it: its steps, and input events XProf does not count
  // (JAX data loaders named next_batch, ...).
  out.push(h("h2.section-title", { text: "As xprof-core reads the steps" }),
    h("div.kpis", {},
      kpi("own-verdict", "Verdict", own.verdict || "n/a", null, own.verdict),
      kpi("own-input-percent", "Step time waiting for input", formatPct(own.input_percent), "input events by name",
        own.input_percent),
      kpi("own-steps", "Steps", formatNumber(own.steps ?? 0), null, own.steps),
      kpi("own-avg-step-time", "Average step time", formatMs(own.avg_step_ms), null, own.avg_step_ms)));
  if (data.step_table && data.step_table.rows.length) {
    out.push(dataTable({ name: "step_table", table: data.step_table, title: "Steps", csvUrl: ctx.csvUrl("step_table"),
      pageSize: 25 }));
  }
  if (data.input_ops) {
    out.push(dataTable({ name: "input_ops", table: data.input_ops, title: "Input events",
      csvUrl: ctx.csvUrl("input_ops"), pageSize: 25, emptyText: "No input events in this profile." }));
  }
  return out;
}
