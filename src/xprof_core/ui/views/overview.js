// overview_page: KPI cards, the per-step stacked step-time chart, top ops and the step table.

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { formatMs, formatNumber, formatPct, humanize } from "../format.js";
import { categoryColor, stepChart } from "../step_chart.js";

/** A KPI card; `value` is the raw number (data-value) and `text` how it reads. */
export function kpi(id, label, text, sub, value) {
  return h("div.kpi", { dataset: { kpi: id, value: value === undefined || value === null ? "" : String(value) } },
    h("div.label", { text: label }),
    h("div.value", { text }),
    sub ? (sub instanceof Node ? sub : h("div.sub", { text: sub })) : null);
}

export async function mount(ctx) {
  const data = await ctx.load();
  if (!data) return null;
  const steps = data.steps || {};
  const env = data.run_environment || {};
  const breakdown = Object.entries(data.breakdown_pct || {}).sort((a, b) => b[1] - a[1]);
  const hasSteps = Boolean(steps.count);
  // Without step markers the figures cover the whole profile: say so wherever "step" would be read.
  const share = hasSteps ? "step time" : "profile time";
  const cards = [
    kpi("steps", "Steps", formatNumber(steps.count ?? 0),
      data.step_source && data.step_source !== "none"
        ? `from ${data.step_source}${data.step_name ? ` (${data.step_name})` : ""}` : "no step markers", steps.count),
    steps.count
      ? kpi("avg-step-time", "Average step time", formatMs(steps.avg_ms),
        `min ${formatMs(steps.min_ms)} · max ${formatMs(steps.max_ms)} · σ ${formatMs(steps.stddev_ms)}`, steps.avg_ms)
      : kpi("profile-length", "Profile length", formatMs(data.whole_profile_ms), "whole profile (no steps)",
        data.whole_profile_ms),
    kpi("breakdown", `Largest share of ${share}`,
      breakdown.length ? `${humanize(breakdown[0][0])} ${formatPct(breakdown[0][1])}` : "n/a",
      breakdownBar(breakdown), breakdown.length ? breakdown[0][1] : null),
    kpi("device", "Device", env.device_type || "n/a",
      `${formatNumber(env.device_count ?? 0)} device${env.device_count === 1 ? "" : "s"} · ${env.hardware_type || "?"} · `
      + `${env.host_count ?? data.hosts?.length ?? 0} host${(env.host_count ?? 1) === 1 ? "" : "s"}`, env.device_type),
    kpi("idle", "Device idle", formatPct(data.device_idle_pct), idleBasis(data, share), data.device_idle_pct),
  ];
  const parts = [
    h("h1", { text: "Overview" }),
    data.reason ? h("p.note", { text: data.reason }) : null,
    h("div.kpis", {}, cards),
  ];
  if (data.step_table && data.step_table.rows.length) {
    parts.push(h("section.panel", {}, h("h2", { text: "Step time breakdown per step" }), stepChart(data.step_table)));
  }
  parts.push(h("section.panel", {}, h("h2", { text: hasSteps ? "Step-time breakdown" : "Profile-time breakdown" }),
    hasSteps || data.reason ? null : h("p.muted", { text: "No step markers: the figures cover the whole profile." }),
    breakdownList(breakdown)));
  if (data.top_ops) {
    parts.push(dataTable({ name: "top_ops", table: data.top_ops, title: "Top device operations",
      csvUrl: ctx.csvUrl("top_ops"), pageSize: 25, emptyText: "No device operations in this profile." }));
  }
  if (data.step_table && hasSteps) {
    parts.push(dataTable({ name: "step_table", table: data.step_table, title: "Steps", csvUrl: ctx.csvUrl("step_table"),
      pageSize: 25 }));
  }
  if (data.communication_per_rank && data.communication_per_rank.rows.length) {
    if (data.straggler) {
      parts.push(h("p.note", { dataset: { straggler: data.straggler },
        text: `Straggler: ${data.straggler} (the rank with the least time in collectives: the others wait for it)` }));
    }
    parts.push(dataTable({ name: "communication_per_rank", table: data.communication_per_rank,
      title: "GPU time and communication per rank", csvUrl: ctx.csvUrl("communication_per_rank"), pageSize: 25 }));
    if (data.collectives && data.collectives.rows.length) {
      parts.push(dataTable({ name: "collectives", table: data.collectives, title: "Collectives",
        csvUrl: ctx.csvUrl("collectives"), pageSize: 25 }));
    }
  }
  replaceChildren(ctx.container, h("section.view", { dataset: { view: "overview_page" } }, parts));
  return null;
}

/** What the idle share averages: the device planes that ran kernels or ops, and those left out. */
function idleBasis(data, share) {
  if (data.device_idle_pct === null || data.device_idle_pct === undefined) return "no device timeline (CPU-only profile)";
  const basis = data.device_idle_basis || {};
  const short = (names) => names.map((n) => n.replace(/^\/device:/, "")).join(", ");
  const planes = basis.planes || [];
  let text = `share of the ${share} with no activity, averaged over the ${planes.length === 1 ? "device" : `${planes.length} devices`}`
    + ` that ran kernels or ops (${short(planes)})`;
  if (basis.left_out && basis.left_out.length) text += `; left out, as they only copied data: ${short(basis.left_out)}`;
  return text;
}

function breakdownBar(breakdown) {
  const bar = h("div.breakdown-bar", { role: "img", "aria-label": breakdown.map(([k, v]) => `${humanize(k)} ${formatPct(v)}`).join(", ") });
  breakdown.forEach(([k, v], i) => {
    if (v > 0) bar.append(h("span", { style: `width:${v}%;background:${categoryColor(k, i)}`, title: `${humanize(k)} ${formatPct(v)}` }));
  });
  return bar;
}

function breakdownList(breakdown) {
  return h("div.legend", { dataset: { breakdown: "1" } }, breakdown.map(([k, v], i) =>
    h("span", { dataset: { category: k } }, h("span.swatch", { style: `background:${categoryColor(k, i)}` }),
      `${humanize(k)}: ${formatPct(v)}`)));
}
