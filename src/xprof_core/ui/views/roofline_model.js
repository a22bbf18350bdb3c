// roofline_model: a log-log roofline (memory slope, compute roof, ridge point) with one dot per HLO op
// (area by time, colour by what bounds it), the device's peaks, and the op table with graph links.

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { formatNumber, formatPct } from "../format.js";
import { graphHash } from "../graph_link.js";
import { kpi } from "./overview.js";
import { ensureStyles, logTicks, shortNumber, svg } from "./chart_svg.js";

const MAX_DOTS = 400;
const BOUND_COLORS = { Compute: "#1a73e8", HBM: "#d93025", Unknown: "#9aa0a6" };
const GIB = 2 ** 30;

export async function mount(ctx) {
  ensureStyles();
  const data = await ctx.load();
  if (!data) return null;
  const parts = [h("h1", { text: "Roofline" })];
  if (data.reason) parts.push(h("p.note", { text: data.reason }));
  const d = data.device || {};
  const p = data.program || {};
  if (data.device) {
    parts.push(h("div.kpis", {},
      kpi("device", "Device", d.device || "n/a", `peaks from ${d.source}`, d.device),
      kpi("peak-flops", "Peak FLOP rate", `${formatNumber(d.peak_gflops_per_s / 1e3)} TFLOP/s`, null, d.peak_gflops_per_s),
      kpi("peak-bw", "Peak HBM bandwidth", `${formatNumber(d.peak_hbm_gib_per_s)} GiB/s`, null, d.peak_hbm_gib_per_s),
      kpi("ridge", "Ridge point", `${formatNumber(d.ridge_point)} FLOP/byte`, "intensity where the roofs meet", d.ridge_point),
      kpi("program", "Whole program", `${formatNumber(p.flop_rate)} GFLOP/s`,
        `${formatNumber(p.bandwidth)} GiB/s · ${formatNumber(p.operational_intensity)} FLOP/byte · ${p.bound_by || "?"}`, p.flop_rate)));
  }
  const table = data.roofline;
  const ids = table.cols.map((c) => c.id);
  const col = (name) => ids.indexOf(name);
  const ops = table.rows.map((r) => r.c.map((c) => (c ? c.v : null))).filter((r) => r[col("operation")] !== "Program");
  if (ops.length) parts.push(h("section.panel.chart-panel.roofline-chart", { dataset: { chart: "roofline" } },
    h("h2", { text: "Operations on the roofline" }), rooflineChart(ctx, d, ops, col)));
  parts.push(dataTable({ name: "roofline", table, csvUrl: ctx.csvUrl("roofline"), pageSize: 50, emptyText: data.reason || "No ops.",
    cellLink: (row, colId) => colId === "operation" && row[col("program_id")]
      ? graphHash(ctx.run, { programId: row[col("program_id")], node: row[col("operation")], hosts: ctx.hosts }) : null }));
  replaceChildren(ctx.container, h("section.view", { dataset: { view: "roofline_model" } }, parts));
  return null;
}

function rooflineChart(ctx, device, ops, col) {
  const W = 1000;
  const H = 420;
  const m = { l: 70, r: 20, t: 16, b: 40 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const peak = device.peak_gflops_per_s || 0;
  const bwGflopsPerByte = (device.peak_hbm_gib_per_s || 0) * GIB / 1e9; // GFLOP/s per FLOP/byte
  const dots = ops.filter((r) => r[col("operational_intensity")] > 0 && r[col("measured_flop_rate")] > 0)
    .sort((a, b) => b[col("total_self_time")] - a[col("total_self_time")]).slice(0, MAX_DOTS);
  const xs = dots.map((r) => r[col("operational_intensity")]);
  const ys = dots.map((r) => r[col("measured_flop_rate")]);
  const ridge = device.ridge_point || 0;
  const xLo = 10 ** Math.floor(Math.log10(Math.min(...xs, ridge || 1, 1) / 2));
  const xHi = 10 ** Math.ceil(Math.log10(Math.max(...xs, ridge || 1, 1) * 2));
  const yHi = 10 ** Math.ceil(Math.log10(Math.max(...ys, peak, 1) * 1.5));
  const yLo = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...ys, yHi / 1e6))));
  const lx = (v) => m.l + ((Math.log10(v) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo))) * pw;
  const ly = (v) => m.t + ph - ((Math.log10(v) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Roofline of ${dots.length} ops: FLOP rate against operational intensity, log-log` });
  for (const v of logTicks(xLo, xHi)) {
    root.append(svg("line", { class: "grid", x1: lx(v), x2: lx(v), y1: m.t, y2: m.t + ph }),
      svg("text", { x: lx(v), y: H - m.b + 16, "text-anchor": "middle" }, shortNumber(v)));
  }
  for (const v of logTicks(yLo, yHi)) {
    root.append(svg("line", { class: "grid", x1: m.l, x2: W - m.r, y1: ly(v), y2: ly(v) }),
      svg("text", { x: m.l - 6, y: ly(v) + 4, "text-anchor": "end" }, shortNumber(v)));
  }
  root.append(svg("text", { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle" }, "operational intensity (FLOP/byte)"),
    svg("text", { x: 14, y: m.t + ph / 2, transform: `rotate(-90 14 ${m.t + ph / 2})`, "text-anchor": "middle" }, "GFLOP/s"));
  if (peak && bwGflopsPerByte) {
    const pts = [];
    for (const xv of [xLo, ridge, xHi]) pts.push(`${lx(xv)},${ly(Math.max(yLo, Math.min(peak, xv * bwGflopsPerByte)))}`);
    root.append(svg("polyline", { class: "roof", points: pts.join(" "), "data-roof": "1" }),
      svg("circle", { class: "ridge", cx: lx(ridge), cy: ly(peak), r: 5, "data-ridge": String(ridge) },
        svg("title", {}, `Ridge point: ${formatNumber(ridge)} FLOP/byte, ${formatNumber(peak)} GFLOP/s`)),
      svg("text", { x: lx(ridge) + 8, y: ly(peak) - 8 }, `ridge ${formatNumber(ridge)} FLOP/B`));
  }
  const totalSelf = dots.reduce((s, r) => s + r[col("total_self_time")], 0) || 1;
  for (const r of dots) {
    const share = r[col("total_self_time")] / totalSelf;
    const bound = r[col("bound_by")];
    const c = svg("circle", { class: "op", cx: lx(r[col("operational_intensity")]), cy: ly(r[col("measured_flop_rate")]),
      r: 3 + 18 * Math.sqrt(share), fill: BOUND_COLORS[bound] || BOUND_COLORS.Unknown, "fill-opacity": 0.7,
      "data-op": r[col("operation")] },
    svg("title", {}, `${r[col("operation")]} (${r[col("category")]})\n${formatNumber(r[col("measured_flop_rate")])} GFLOP/s · `
      + `${formatNumber(r[col("operational_intensity")])} FLOP/byte · ${formatPct(r[col("roofline_efficiency")])} of the roof\n`
      + `bound by ${bound} · ${formatNumber(r[col("total_self_time")])} µs self time`));
    if (r[col("program_id")]) {
      c.addEventListener("click", () => {
        location.hash = graphHash(ctx.run, { programId: r[col("program_id")], node: r[col("operation")], hosts: ctx.hosts });
      });
    }
    root.append(c);
  }
  root.append(svg("rect", { class: "frame", x: m.l, y: m.t, width: pw, height: ph }));
  return h("div", {}, root, h("div.legend", {},
    Object.entries(BOUND_COLORS).map(([k, v]) => h("span", {}, h("span.swatch", { style: `background:${v}` }), `bound by ${k}`)),
    h("span.muted", { text: "dot area: share of self time; click a dot for its graph" })));
}
