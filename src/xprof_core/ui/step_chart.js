// A stacked bar chart of step times (one bar per step, one colour per category), drawn as SVG.
// Runs with many steps are binned: each bar is the mean of its bin, and a thin range mark shows the
// bin's fastest and slowest step, so an outlier (a 31 ms first step among 2 ms ones) stays in
// sight. Axis ticks sit at round step numbers, spaced so their labels never overlap.

import { h } from "./dom.js";
import { humanize } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_BARS = 400;

/** Fixed colours for the step-time categories of overview_page and input_pipeline_analyzer. */
export const CATEGORY_COLORS = {
  device_compute: "#1a73e8",
  device_collectives: "#9334e6",
  device_to_device: "#12a4af",
  host_to_device: "#f29900",
  device_to_host: "#fbbc04",
  device_memset: "#ff8a65",
  host_compile: "#a1887f",
  host_wait_input: "#d93025",
  host_compute: "#1e8e3e",
  unknown: "#9aa0a6",
  input: "#d93025",
  compute: "#1a73e8",
  // input_pipeline_analyzer's columns (XProf's ids, "…TimeMs")
  deviceCompute: "#1a73e8",
  deviceToDevice: "#12a4af",
  deviceCollectives: "#9334e6",
  hostCompute: "#1e8e3e",
  kernelLaunch: "#f29900",
  infeed: "#d93025",
  outfeed: "#fbbc04",
  compile: "#a1887f",
  other: "#9aa0a6",
};
const TICK_LABEL_PX = 64; // room per x tick label (in the chart's 960-wide viewBox)
const FALLBACK = ["#5e35b1", "#00897b", "#c0ca33", "#6d4c41", "#3949ab", "#e53935"];

export function categoryColor(name, i) {
  return CATEGORY_COLORS[name] || FALLBACK[i % FALLBACK.length];
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function niceStep(max, ticks) {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/**
 * @param {{cols: Array, rows: Array}} table a step table: a step number column, a total column
 *   (id `steptime_ms`) and category columns (ids ending in `_ms`)
 * @returns {HTMLElement} the chart and its legend
 */
export function stepChart(table) {
  const ids = table.cols.map((c) => c.id);
  const stepCol = ids.indexOf("stepnum");
  const totalCol = ids.includes("steptime_ms") ? ids.indexOf("steptime_ms") : ids.indexOf("stepTimeMs");
  // Category columns end in "_ms" (overview) or "TimeMs" (XProf's input pipeline ids).
  const suffix = (id) => (id.endsWith("_ms") ? 3 : id.endsWith("TimeMs") ? 6 : 0);
  const cats = ids.map((id, i) => ({ id, i })).filter((c) => c.i !== stepCol && c.i !== totalCol && suffix(c.id))
    .map((c, k) => {
      const name = c.id.slice(0, -suffix(c.id));
      return { ...c, name, label: table.cols[c.i].label.replace(/\s*\(ms\)$/, ""), color: categoryColor(name, k) };
    });
  const raw = table.rows.map((r) => r.c.map((cell) => (cell ? cell.v : null)));
  // Bin consecutive steps when there are too many to draw one bar each.
  const binSize = Math.max(1, Math.ceil(raw.length / MAX_BARS));
  const bars = [];
  const totalOf = (r) => (totalCol >= 0 ? Number(r[totalCol]) || 0 : cats.reduce((s, c) => s + (Number(r[c.i]) || 0), 0));
  for (let b = 0; b < raw.length; b += binSize) {
    const bin = raw.slice(b, b + binSize);
    const mean = (col) => bin.reduce((s, r) => s + (Number(r[col]) || 0), 0) / bin.length;
    const totals = bin.map(totalOf);
    bars.push({
      first: b,
      label: binSize === 1 ? String(bin[0][stepCol]) : `${bin[0][stepCol]}–${bin[bin.length - 1][stepCol]}`,
      total: totals.reduce((s, v) => s + v, 0) / bin.length,
      min: Math.min(...totals),
      max: Math.max(...totals),
      parts: cats.map((c) => mean(c.i)),
    });
  }
  const W = 960;
  const H = 240;
  const m = { l: 56, r: 12, t: 10, b: 34 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const maxTotal = Math.max(1e-9, ...bars.map((b) => Math.max(b.max, b.parts.reduce((s, v) => s + v, 0))));
  const step = niceStep(maxTotal, 5);
  const top = Math.ceil(maxTotal / step) * step;
  const y = (v) => m.t + ph - (v / top) * ph;
  const slot = pw / Math.max(1, bars.length);
  const bw = Math.max(1, slot * 0.78);

  const root = svg("svg", {
    class: "step-chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "aria-label": `Step time per step, stacked by category, ${raw.length} steps${binSize > 1 ? ` in bins of ${binSize}` : ""}`,
  });
  for (let v = 0; v <= top + step / 2; v += step) {
    root.append(svg("line", { class: "axis", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }),
      svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, `${Number(v.toPrecision(6))}`));
  }
  root.append(svg("text", { x: 12, y: m.t + ph / 2, transform: `rotate(-90 12 ${m.t + ph / 2})`, "text-anchor": "middle" },
    "ms"));
  bars.forEach((bar, k) => {
    const x = m.l + k * slot + (slot - bw) / 2;
    const g = svg("g", { class: "bar", "data-step": bar.label, "data-total": bar.total, "data-min": bar.min, "data-max": bar.max });
    let acc = 0;
    const lines = [binSize > 1 ? `Steps ${bar.label}: mean ${bar.total.toFixed(3)} ms, fastest ${bar.min.toFixed(3)} ms,`
      + ` slowest ${bar.max.toFixed(3)} ms` : `Step ${bar.label}: ${bar.total.toFixed(3)} ms`];
    bar.parts.forEach((v, c) => {
      if (!(v > 0)) return;
      g.append(svg("rect", { x, y: y(acc + v), width: bw, height: Math.max(0.5, y(acc) - y(acc + v)), fill: cats[c].color }));
      acc += v;
      lines.push(`${cats[c].label}: ${v.toFixed(3)} ms${binSize > 1 ? " (mean)" : ""}`);
    });
    if (acc === 0 && bar.total > 0) {
      g.append(svg("rect", { x, y: y(bar.total), width: bw, height: y(0) - y(bar.total), fill: CATEGORY_COLORS.unknown }));
    }
    if (binSize > 1) {
      // The bin's range: a line from its fastest to its slowest step, capped at the slowest.
      const cx = x + bw / 2;
      const range = svg("g", { class: "range" },
        svg("line", { x1: cx, x2: cx, y1: y(bar.min), y2: y(bar.max) }),
        svg("line", { x1: x, x2: x + bw, y1: y(bar.max), y2: y(bar.max) }));
      g.append(range);
    }
    g.append(svg("title", {}, lines.join("\n")));
    root.append(g);
  });
  // Ticks at round step positions, as many as fit without their labels touching.
  const steps = raw.length;
  const perTick = niceStep(Math.max(1, (steps * TICK_LABEL_PX) / pw), 1);
  for (let s = 0; s < steps; s += Math.max(1, Math.round(perTick))) {
    const cx = m.l + ((s + 0.5) / steps) * pw;
    root.append(svg("line", { class: "axis", x1: cx, x2: cx, y1: m.t + ph, y2: m.t + ph + 4 }),
      svg("text", { class: "tick-x", x: cx, y: H - m.b + 14, "text-anchor": "middle" }, String(raw[s][stepCol])));
  }
  root.append(svg("text", { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle" },
    binSize > 1 ? `step (bars: means of ${binSize} steps; marks: fastest to slowest)` : "step"));
  const used = cats.filter((c) => bars.some((b) => b.parts[cats.indexOf(c)] > 0));
  const legend = h("div.legend", {}, used.map((c) =>
    h("span", {}, h("span.swatch", { style: `background:${c.color}` }), c.label || humanize(c.name))));
  return h("div.chart-wrap", {}, root, legend);
}
