// diff: run B (run2) compared with run A (run): the verdict, step-time distributions and breakdown
// side by side, the top regressions and improvements, and every op aligned across the two runs.
// Reached from the run picker's "Compare with…" menu; the URL names both runs (#run=A&tool=diff&run2=B).

import { dataUrl } from "../api.js";
import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { formatMs, formatNumber, formatPct } from "../format.js";
import { kpi } from "./overview.js";

const LEVEL_TITLES = { hlo_ops: "HLO ops", framework_ops: "Framework ops", kernels: "GPU kernels" };

export async function mount(ctx) {
  const run2 = ctx.state.run2;
  if (!run2) {
    replaceChildren(ctx.container, h("section.view", { dataset: { view: "diff" } },
      h("h1", { text: "Compare runs" }),
      h("p.note", { text: "Choose the run to compare with in the “Compare with…” menu next to the run picker." })));
    return null;
  }
  const data = await ctx.load({ run2 });
  if (!data) return null;
  const csv = (table) => dataUrl(ctx.run, "diff", ctx.hosts, { run2, table }, "data_csv");
  const s = data.summary || {};
  const a = (data.steps && data.steps.a) || {};
  const b = (data.steps && data.steps.b) || {};
  const change = s.change_pct;
  const parts = [
    h("h1", { text: "Compare runs" }),
    h("p.muted", {}, "A: ", h("span.mono", { dataset: { side: "a" }, text: data.runs.a }),
      " · B: ", h("span.mono", { dataset: { side: "b" }, text: data.runs.b })),
    h("p.verdict", { dataset: { verdict: "1" }, role: "status", text: data.verdict,
      style: "font-size:1.15em;font-weight:600" }),
    h("div.kpis", {},
      kpi("change", `Change in ${s.basis || "time"}`,
        change === null || change === undefined ? "n/a" : `${change > 0 ? "+" : ""}${formatPct(change)}`,
        `${formatMs(s.value_a_ms)} → ${formatMs(s.value_b_ms)}`, change),
      kpi("steps", "Steps", `${formatNumber(a.count ?? 0)} → ${formatNumber(b.count ?? 0)}`,
        a.count && b.count ? `p50 ${formatMs(a.p50)} → ${formatMs(b.p50)}` : "no step markers", b.count),
      kpi("new-ops", "New ops in B", formatNumber(s.new_ops ?? 0), LEVEL_TITLES[s.primary_level] || null, s.new_ops),
      kpi("vanished-ops", "Ops gone from A", formatNumber(s.vanished_ops ?? 0), LEVEL_TITLES[s.primary_level] || null,
        s.vanished_ops),
      kpi("matched-ops", "Ops in both", formatNumber(s.matched_ops ?? 0), "by name or fingerprint", s.matched_ops)),
    dataTable({ name: "step_distribution", table: data.step_distribution, title: "Step time (ms)",
      csvUrl: csv("step_distribution"), pageSize: 25, emptyText: "No steps." }),
    dataTable({ name: "breakdown", table: data.breakdown, title: "Step-time breakdown, side by side",
      csvUrl: csv("breakdown"), pageSize: 25, emptyText: "No step-time breakdown (no steps)." }),
    dataTable({ name: "top_regressions", table: data.top_regressions,
      title: `Top regressions (${LEVEL_TITLES[s.primary_level] || "ops"}, self time per step)`,
      csvUrl: csv("top_regressions"), pageSize: 25, emptyText: "No op got slower." }),
    dataTable({ name: "top_improvements", table: data.top_improvements,
      title: `Top improvements (${LEVEL_TITLES[s.primary_level] || "ops"}, self time per step)`,
      csvUrl: csv("top_improvements"), pageSize: 25, emptyText: "No op got faster." }),
  ];
  for (const level of ["hlo_ops", "framework_ops", "kernels"]) {
    const table = data[level];
    if (table && table.rows.length) {
      parts.push(dataTable({ name: level, table, title: `${LEVEL_TITLES[level]}, aligned (A and B)`,
        csvUrl: csv(level), pageSize: 25 }));
    }
  }
  replaceChildren(ctx.container, h("section.view", { dataset: { view: "diff" } }, parts));
  return null;
}
