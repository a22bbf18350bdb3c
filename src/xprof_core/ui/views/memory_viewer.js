// memory_viewer: one HLO module's heap over program order (the peak marked) and the buffers live at
// the peak, largest first, each linked to the graph around its instruction. Module and memory
// space are chosen here and kept in the URL (XProf's module_name and memory_space parameters).

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";
import { formatNumber } from "../format.js";
import { graphHash } from "../graph_link.js";
import { kpi } from "./overview.js";
import { ensureStyles, linearTicks, nearestIndex, svg } from "./chart_svg.js";

const MIB = (v) => `${formatNumber(v)} MiB`;

export async function mount(ctx) {
  ensureStyles();
  let state = ctx.state;

  async function draw() {
    const data = await ctx.load({ module_name: state.module_name, program_id: state.program_id, memory_space: state.memory_space });
    if (!data) return;
    const parts = [h("h1", { text: "Memory viewer" })];
    if (data.reason) parts.push(h("p.note", { text: data.reason }));
    if (!data.module_name) {
      replaceChildren(ctx.container, h("section.view", { dataset: { view: "memory_viewer" } }, parts));
      return;
    }
    const modules = h("select", { "aria-label": "HLO module", onchange: () => ctx.navigate({ module_name: modules.value, program_id: null, memory_space: null }) },
      data.modules.map((name) => h("option", { value: name, text: name, selected: name === data.module_name })));
    const spaces = h("select", { "aria-label": "Memory space", onchange: () => ctx.navigate({ memory_space: spaces.value }) },
      (data.memory_spaces.length ? data.memory_spaces : [0]).map((c) =>
        h("option", { value: String(c), text: c === 0 ? "0 (HBM)" : String(c), selected: c === data.memory_space })));
    parts.push(h("div.view-controls", {}, h("label", {}, "Module", modules), h("label", {}, "Memory space", spaces)));
    parts.push(h("div.kpis", {},
      kpi("peak-heap", "Peak heap", MIB(data.peak_heap_mib), `unpadded ${MIB(data.peak_unpadded_heap_mib)}`, data.peak_heap_mib),
      kpi("peak-position", "Peak at", `step ${formatNumber(peakPoint(data))}`,
        `of ${formatNumber(Math.max(0, data.heap_sizes_mib.length - 1))} in program order, after `
        + `${data.hlo_instruction_names[data.peak_heap_size_position] || "the entry"}`, data.peak_heap_size_position),
      kpi("parameters", "Entry parameters", MIB(data.entry_computation_parameters_mib), `maybe live out ${MIB(data.maybe_live_out_mib)}`,
        data.entry_computation_parameters_mib),
      kpi("allocations", "All allocations", MIB(data.total_buffer_allocation_mib),
        `indefinite lifetime ${MIB(data.indefinite_buffer_allocation_mib)}`, data.total_buffer_allocation_mib)));
    parts.push(h("section.panel.chart-panel", { dataset: { chart: "heap" } }, h("h2", { text: "Heap over program order" }), heapChart(data)));
    const table = data.max_heap_table;
    const ids = table.cols.map((c) => c.id);
    const nameCol = ids.indexOf("instruction_name");
    parts.push(dataTable({ name: "max_heap_table", table, title: `Buffers live at the peak (${table.rows.length})`,
      pageSize: 25, cellLink: (row, colId) => colId === "instruction_name" && Number(row[ids.indexOf("logical_buffer_id")]) >= 0
        ? graphHash(ctx.run, { moduleName: data.module_name, node: String(row[nameCol]).replace(/\{[\d,]*\}$/, ""), hosts: ctx.hosts })
        : null }));
    replaceChildren(ctx.container, h("section.view", { dataset: { view: "memory_viewer", module: data.module_name } }, parts));
  }

  await draw();
  return {
    update(next) {
      state = next;
      draw().catch((err) => { if (err.name !== "AbortError") throw err; });
    },
  };
}

/** The point of the heap curve at the peak: the simulator event at ``peak_heap_size_position`` made it. */
function peakPoint(data) {
  return Math.min(data.peak_heap_size_position + 1, Math.max(0, data.heap_sizes_mib.length - 1));
}

function heapChart(data) {
  const heap = data.heap_sizes_mib;
  const unpadded = data.unpadded_heap_sizes_mib;
  const n = heap.length;
  const W = 1000;
  const H = 260;
  const m = { l: 64, r: 16, t: 14, b: 30 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const yMax = Math.max(1e-6, ...heap);
  const x = (i) => m.l + (n > 1 ? (i / (n - 1)) * pw : pw / 2);
  const y = (v) => m.t + ph - (v / yMax) * ph;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Heap size over ${n} program steps` });
  for (const v of linearTicks(0, yMax, 5)) {
    root.append(svg("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }),
      svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, `${Number(v.toPrecision(4))}`));
  }
  for (const v of linearTicks(0, Math.max(1, n - 1), 8)) {
    if (Number.isInteger(v)) root.append(svg("text", { x: x(v), y: H - m.b + 16, "text-anchor": "middle" }, String(v)));
  }
  root.append(svg("text", { x: 14, y: m.t + ph / 2, transform: `rotate(-90 14 ${m.t + ph / 2})`, "text-anchor": "middle" }, "MiB"),
    svg("text", { x: m.l + pw / 2, y: H - 2, "text-anchor": "middle" }, "program order (heap simulator events)"));
  const path = (values) => values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
  root.append(svg("polyline", { class: "line", points: path(unpadded), stroke: "#9aa0a6", "data-series": "unpadded" }),
    svg("polyline", { class: "line", points: path(heap), stroke: "#1a73e8", "data-series": "heap" }));
  const p = peakPoint(data);
  root.append(svg("line", { class: "peak-line", x1: x(p), x2: x(p), y1: m.t, y2: m.t + ph }),
    svg("text", { class: "peak-label", x: Math.min(x(p) + 4, W - 160), y: m.t + 10 }, `peak ${Number(data.peak_heap_mib.toPrecision(6))} MiB`),
    svg("rect", { class: "frame", x: m.l, y: m.t, width: pw, height: ph }));
  const cursor = svg("line", { class: "cursor", y1: m.t, y2: m.t + ph, visibility: "hidden" });
  const hit = svg("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent" });
  root.append(cursor, hit);
  const readout = h("div.chart-readout", { hidden: true });
  const steps = heap.map((_, i) => i);
  hit.addEventListener("pointermove", (ev) => {
    const r = root.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    const i = nearestIndex(steps, ((px - m.l) / pw) * (n - 1));
    if (i < 0) return;
    cursor.setAttribute("x1", x(i));
    cursor.setAttribute("x2", x(i));
    cursor.setAttribute("visibility", "visible");
    readout.hidden = false;
    readout.textContent = `step ${i}: ${data.hlo_instruction_names[i] || "end"}\nheap ${Number(heap[i].toPrecision(6))} MiB · unpadded ${Number(unpadded[i].toPrecision(6))} MiB`;
    readout.style.left = `${Math.min(ev.clientX - r.left + 12, r.width - 300)}px`;
    readout.style.top = `${ev.clientY - r.top + 12}px`;
  });
  hit.addEventListener("pointerleave", () => { readout.hidden = true; cursor.setAttribute("visibility", "hidden"); });
  return h("div", { style: "position:relative" }, root, readout, h("div.legend", {},
    h("span", {}, h("span.swatch", { style: "background:#1a73e8" }), "heap (padded)"),
    h("span", {}, h("span.swatch", { style: "background:#9aa0a6" }), "unpadded")));
}
