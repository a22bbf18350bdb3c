// memory_profile: a memory's usage over time (stacked by region, the peak marked), its summary,
// and the allocations live at the peak. Drag across the chart to zoom into a window (the server
// thins the window to the chart's resolution); the memory and window live in the URL.

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { formatBytes, formatMs, formatNumber } from "../format.js";
import { kpi } from "./overview.js";
import { bytesScale, ensureStyles, linearTicks, nearestIndex, svg } from "./chart_svg.js";

const RESOLUTION = 1000;
const REGION_COLORS = ["#9aa0a6", "#1a73e8", "#1e8e3e", "#f29900", "#9334e6", "#12a4af", "#d93025", "#6d4c41", "#c0ca33"];
const STACK_COLOR = "#fbbc04";

export async function mount(ctx) {
  ensureStyles();
  let state = ctx.state;
  let breakdown = "active_allocations";

  async function draw() {
    const params = { resolution: RESOLUTION, memory_id: state.memory_id, start_ms: state.start_ms, end_ms: state.end_ms };
    const data = await ctx.load(params);
    if (!data) return;
    const parts = [h("h1", { text: "Memory profile" })];
    if (data.reason) parts.push(h("p.note", { text: data.reason }));
    if (!data.memory_ids || !data.memory_ids.length) {
      replaceChildren(ctx.container, h("section.view", { dataset: { view: "memory_profile" } }, parts));
      return;
    }
    const select = h("select", { "aria-label": "Memory", onchange: () => ctx.navigate({ memory_id: select.value, start_ms: null, end_ms: null }) },
      data.memory_ids.map((id) => h("option", { value: id, text: id, selected: id === data.memory_id })));
    const tableSelect = h("select", { "aria-label": "Allocations", onchange: () => { breakdown = tableSelect.value; showTable(); } },
      h("option", { value: "active_allocations", text: "Allocations of the peak's step live at the peak (XProf)", selected: breakdown === "active_allocations" }),
      h("option", { value: "live_at_peak", text: "Every allocation live at the peak", selected: breakdown === "live_at_peak" }));
    const zoomed = state.start_ms !== undefined || state.end_ms !== undefined;
    parts.push(h("div.view-controls", {},
      h("label", {}, "Memory", select),
      zoomed ? h("button.button.small", { type: "button", text: "Reset zoom", onclick: () => ctx.navigate({ start_ms: null, end_ms: null }) }) : null,
      h("span.muted", { text: data.host ? `Host ${data.host}` : "" })));
    parts.push(summaryCards(data.summary));
    parts.push(h("section.panel.chart-panel", { dataset: { chart: "memory-timeline" } },
      h("h2", { text: "Usage over time" }), timelineChart(data, ctx), h("p.chart-hint", {
        text: `${formatNumber(data.timeline.num_in_window)} events in view, drawn as ${formatNumber(data.timeline.time_ps.length)} points `
          + "(the largest usage of each run of events). Drag across the chart to zoom in." })));
    const tableSlot = h("div");
    parts.push(h("div.view-controls", {}, h("label", {}, "Table", tableSelect)), tableSlot);
    replaceChildren(ctx.container, h("section.view", { dataset: { view: "memory_profile", memory: data.memory_id } }, parts));

    function showTable() {
      const table = data[breakdown];
      replaceChildren(tableSlot, dataTable({ name: breakdown, table, title: breakdown === "active_allocations"
        ? `At the peak (step ${data.summary.peak_step})` : "Everything live at the peak",
      csvUrl: ctx.dataUrl({ memory_id: data.memory_id, table: breakdown }).replace("/data?", "/data_csv?"), pageSize: 25 }));
    }
    showTable();
  }

  await draw();
  return {
    update(next) {
      state = next;
      draw().catch((err) => { if (err.name !== "AbortError") throw err; });
    },
  };
}

function summaryCards(s) {
  return h("div.kpis", {},
    kpi("peak", "Peak usage", formatBytes(s.peak_bytes), `heap ${formatBytes(s.peak_heap_bytes)} · stack ${formatBytes(s.peak_stack_bytes)}`, s.peak_bytes),
    kpi("peak-time", "Peak at", formatMs(s.peak_time_ps / 1e9), `step ${s.peak_step} · from the profile start`, s.peak_time_ps),
    kpi("fragmentation", "Fragmentation at peak", `${(100 * s.peak_fragmentation).toFixed(1)}%`, "free memory not in the largest free chunk", s.peak_fragmentation),
    kpi("capacity", "Memory capacity", formatBytes(s.memory_capacity_bytes), `allocator lifetime peak ${formatBytes(s.peak_bytes_usage_lifetime)}`, s.memory_capacity_bytes),
    kpi("allocations", "Allocations", formatNumber(s.num_allocations), `${formatNumber(s.num_deallocations)} deallocations`, s.num_allocations));
}

/** Stacked areas (regions + stack) over time, the heap as a line, the peak marked; drag to zoom. */
function timelineChart(data, ctx) {
  const t = data.timeline;
  const n = t.time_ps.length;
  const W = 1000;
  const H = 300;
  const m = { l: 70, r: 16, t: 14, b: 30 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const times = t.time_ps.map((v) => v / 1e9); // ms
  const regions = t.regions || [];
  const stacked = t.region_bytes || [];
  const total = times.map((_, i) => (t.heap_bytes[i] || 0) + (t.stack_bytes[i] || 0));
  const x0 = n ? times[0] : 0;
  const x1 = n > 1 ? times[n - 1] : x0 + 1;
  const yMax = Math.max(1, ...total, ...stacked.map((row) => row.reduce((a, b) => a + Math.max(b, 0), 0)));
  const x = (v) => m.l + ((v - x0) / (x1 - x0 || 1)) * pw;
  const y = (v) => m.t + ph - (v / yMax) * ph;
  const scale = bytesScale(yMax);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "memory-chart",
    "aria-label": `Memory usage of ${data.memory_id} over time, ${n} points` });
  for (const v of linearTicks(0, yMax, 5)) {
    root.append(svg("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }),
      svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, scale.text(v)));
  }
  for (const v of linearTicks(x0, x1, 8)) {
    root.append(svg("text", { x: x(v), y: H - m.b + 16, "text-anchor": "middle" }, `${Number(v.toPrecision(6))}`));
  }
  root.append(svg("text", { x: m.l + pw / 2, y: H - 2, "text-anchor": "middle" }, "ms from the profile start"));
  // Stacked areas: regions bottom-up, then the stack on top (step shape: usage holds until the next event).
  const layers = regions.map((name, r) => ({ name, color: REGION_COLORS[r % REGION_COLORS.length], values: stacked.map((row) => Math.max(row[r] || 0, 0)) }));
  if (t.stack_bytes.some((v) => v > 0)) layers.push({ name: "stack", color: STACK_COLOR, values: t.stack_bytes });
  const base = new Array(n).fill(0);
  const legend = [];
  for (const layer of layers) {
    if (!layer.values.some((v) => v > 0)) continue;
    const top = base.map((b, i) => b + layer.values[i]);
    const pts = [];
    for (let i = 0; i < n; i++) {
      const xe = i + 1 < n ? x(times[i + 1]) : x(times[i]);
      pts.push(`${x(times[i])},${y(top[i])}`, `${xe},${y(top[i])}`);
    }
    for (let i = n - 1; i >= 0; i--) {
      const xe = i + 1 < n ? x(times[i + 1]) : x(times[i]);
      pts.push(`${xe},${y(base[i])}`, `${x(times[i])},${y(base[i])}`);
    }
    root.append(svg("polygon", { points: pts.join(" "), fill: layer.color, "fill-opacity": 0.55, "data-layer": layer.name }));
    legend.push(h("span", {}, h("span.swatch", { style: `background:${layer.color}` }), layer.name));
    for (let i = 0; i < n; i++) base[i] = top[i];
  }
  const line = [];
  for (let i = 0; i < n; i++) {
    const xe = i + 1 < n ? x(times[i + 1]) : x(times[i]);
    line.push(`${x(times[i])},${y(total[i])}`, `${xe},${y(total[i])}`);
  }
  root.append(svg("polyline", { class: "line", points: line.join(" "), stroke: "#202124", "data-series": "usage" }));
  legend.push(h("span", {}, h("span.swatch", { style: "background:#202124" }), "heap + stack"));
  const peakMs = data.summary.peak_time_ps / 1e9;
  if (peakMs >= x0 && peakMs <= x1) {
    root.append(svg("line", { class: "peak-line", x1: x(peakMs), x2: x(peakMs), y1: m.t, y2: m.t + ph }),
      svg("text", { class: "peak-label", x: Math.min(x(peakMs) + 4, W - 140), y: m.t + 10 }, `peak ${formatBytes(data.summary.peak_bytes)}`));
  }
  root.append(svg("rect", { class: "frame", x: m.l, y: m.t, width: pw, height: ph }));
  const cursor = svg("line", { class: "cursor", y1: m.t, y2: m.t + ph, visibility: "hidden" });
  const brush = svg("rect", { class: "brush", y: m.t, height: ph, visibility: "hidden" });
  const hit = svg("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent", "data-hit": "1" });
  root.append(cursor, brush, hit);
  const readout = h("div.chart-readout", { hidden: true });
  const wrap = h("div", { style: "position:relative" }, root, readout, h("div.legend", {}, legend));

  const toMs = (ev) => {
    const r = root.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    return x0 + ((Math.min(Math.max(px, m.l), m.l + pw) - m.l) / pw) * (x1 - x0);
  };
  let dragFrom = null;
  hit.addEventListener("pointerdown", (ev) => { dragFrom = toMs(ev); hit.setPointerCapture(ev.pointerId); });
  hit.addEventListener("pointermove", (ev) => {
    const ms = toMs(ev);
    if (dragFrom !== null) {
      const a = Math.min(dragFrom, ms);
      const b = Math.max(dragFrom, ms);
      brush.setAttribute("x", x(a));
      brush.setAttribute("width", Math.max(1, x(b) - x(a)));
      brush.setAttribute("visibility", "visible");
    }
    const i = nearestIndex(times, ms);
    if (i < 0) return;
    cursor.setAttribute("x1", x(times[i]));
    cursor.setAttribute("x2", x(times[i]));
    cursor.setAttribute("visibility", "visible");
    readout.hidden = false;
    readout.textContent = `${times[i].toFixed(3)} ms · step ${t.step[i]}\n`
      + `${t.is_allocation[i] ? "allocation" : "deallocation"} of ${formatBytes(t.allocation_bytes[i])}`
      + `${t.tf_op[i] ? ` by ${t.tf_op[i]}` : ""}\nheap ${formatBytes(t.heap_bytes[i])} · stack ${formatBytes(t.stack_bytes[i])}`
      + ` · free ${formatBytes(t.free_bytes[i])}`;
    const r = root.getBoundingClientRect();
    readout.style.left = `${Math.min(ev.clientX - r.left + 12, r.width - 300)}px`;
    readout.style.top = `${ev.clientY - r.top + 12}px`;
  });
  hit.addEventListener("pointerleave", () => { readout.hidden = true; cursor.setAttribute("visibility", "hidden"); });
  hit.addEventListener("pointerup", (ev) => {
    if (dragFrom === null) return;
    const a = Math.min(dragFrom, toMs(ev));
    const b = Math.max(dragFrom, toMs(ev));
    dragFrom = null;
    brush.setAttribute("visibility", "hidden");
    if (x(b) - x(a) > 4) ctx.navigate({ start_ms: a.toFixed(6), end_ms: b.toFixed(6) });
  });
  return wrap;
}
