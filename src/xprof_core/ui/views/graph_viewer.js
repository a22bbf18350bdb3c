// graph_viewer: the HLO graph around an op, laid out here (layered, fused computations as boxes).
// Click a node to centre the graph on it; module, op, radius and fusion merging live in the URL.

import { h, replaceChildren } from "../dom.js";
import { fetchText } from "../api.js";
import { ensureStyles, svg } from "./chart_svg.js";
import { layoutGraph } from "./graph_layout.js";

const NODE_H = 46;
const CHAR_W = 6.6;
const MAX_LABEL = 40;
const OP_CLASSES = new Set(["parameter", "dot", "convolution", "reduce", "fusion"]);

export async function mount(ctx) {
  ensureStyles();
  let state = ctx.state;

  async function draw() {
    const params = { module_name: state.module_name, program_id: state.program_id, node_name: state.node_name,
      graph_width: state.graph_width, merge_fusion: state.merge_fusion };
    const data = await ctx.load(params);
    if (!data) return;
    const parts = [h("h1", { text: "Graph viewer" })];
    if (data.reason) parts.push(h("p.note", { text: data.reason }));
    if (!data.module_name) {
      replaceChildren(ctx.container, h("section.view", { dataset: { view: "graph_viewer" } }, parts));
      return;
    }
    parts.push(controls(ctx, data, params));
    parts.push(h("p.muted", { text: `${data.title} · computation ${data.computation}`
      + `${data.fusion_instruction ? ` (fused into ${data.fusion_instruction})` : ""} · ${data.nodes.length} nodes, ${data.edges.length} edges` }));
    const { root, focus } = drawGraph(ctx, data);
    const canvas = h("div.graph-canvas", {}, root);
    parts.push(h("div.graph-body", {}, canvas, sidePanel(ctx, data)));
    replaceChildren(ctx.container, h("section.view", { dataset: { view: "graph_viewer", center: data.center } }, parts));
    // Bring the centre into view.
    if (focus) {
      canvas.scrollLeft = Math.max(0, focus.x + focus.w / 2 - canvas.clientWidth / 2);
      canvas.scrollTop = Math.max(0, focus.y + focus.h / 2 - canvas.clientHeight / 2);
    }
  }

  await draw();
  return {
    update(next) {
      state = next;
      draw().catch((err) => { if (err.name !== "AbortError") throw err; });
    },
  };
}

function controls(ctx, data, params) {
  const modules = h("select", { "aria-label": "HLO module",
    onchange: () => ctx.navigate({ module_name: modules.value, program_id: null, node_name: null }) },
  data.modules.map((name) => h("option", { value: name, text: name, selected: name === data.module_name })));
  const listId = "graph-ops";
  const node = h("input", { type: "search", value: data.center, list: listId, "aria-label": "Op or computation",
    size: 32, onchange: () => { if (node.value.trim()) ctx.navigate({ node_name: node.value.trim() }); } });
  const width = h("select", { "aria-label": "Graph width", onchange: () => ctx.navigate({ graph_width: width.value }) },
    [0, 1, 2, 3, 4, 5, 6, 8, 10].map((w) => h("option", { value: String(w), text: String(w), selected: w === data.width })));
  const merge = h("input", { type: "checkbox", checked: String(params.merge_fusion) === "1",
    onchange: () => ctx.navigate({ merge_fusion: merge.checked ? "1" : null }) });
  const dot = h("button.button.small", { type: "button", text: "Download DOT", onclick: async () => {
    const text = await fetchText(ctx.dataUrl({ ...params, module_name: data.module_name, node_name: data.center, format: "dot" }));
    const blob = new Blob([JSON.parse(text).dot], { type: "text/vnd.graphviz" });
    const a = h("a", { href: URL.createObjectURL(blob), download: `${data.center}.dot` });
    a.click();
    URL.revokeObjectURL(a.href);
  } });
  return h("div.view-controls", {},
    h("label", {}, "Module", modules),
    h("label", {}, "Op", node, h("datalist", { id: listId }, (data.entry_instructions || []).map((n) => h("option", { value: n })))),
    h("label", {}, "Width", width),
    h("label", {}, merge, "Fusions as single nodes"),
    dot);
}

function label(text) {
  return text.length > MAX_LABEL ? `${text.slice(0, MAX_LABEL - 1)}…` : text;
}

function drawGraph(ctx, data) {
  const items = data.nodes.map((n) => {
    const lines = [n.name, n.opcode === "parameter" ? `parameter ${n.parameter_number}` : n.opcode, n.shape];
    const w = Math.max(80, Math.min(MAX_LABEL, Math.max(...lines.map((l) => l.length))) * CHAR_W + 16);
    return { id: n.name, w, h: NODE_H, cluster: n.cluster, node: n, lines };
  });
  const layout = layoutGraph(items, data.edges.map((e) => ({ from: e.from, to: e.to })),
    data.clusters.map((c) => ({ id: c.id, parent: c.parent })));
  const root = svg("svg", { width: layout.width, height: layout.height, viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: "img", "aria-label": data.title },
  svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#757575" }))));
  for (const c of data.clusters) {
    const b = layout.clusters.get(c.id);
    if (!b) continue;
    root.append(svg("g", { class: `cluster${c.highlight ? " highlight" : ""}`, "data-cluster": c.instruction },
      svg("rect", { x: b.x, y: b.y, width: b.w, height: b.h }),
      svg("text", { x: b.x + 8, y: b.y + 13 }, `${c.kind === "fusion" ? "Fused" : "Called"}: ${label(c.instruction)}${c.category ? ` (${c.category})` : ""}`),
      svg("title", {}, `${c.kind === "fusion" ? "Fused computation" : "Computation"} ${c.computation} of ${c.instruction}`)));
  }
  for (const e of data.edges) {
    const a = layout.nodes.get(e.from);
    const b = layout.nodes.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + a.w / 2;
    const y1 = a.y + a.h;
    const x2 = b.x + b.w / 2;
    const y2 = b.y;
    const dy = Math.max(24, Math.abs(y2 - y1) / 2);
    root.append(svg("path", { class: `edge ${e.kind}`, d: `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`,
      "marker-end": "url(#arrow)", "stroke-width": e.small ? 1 : 1.8, "data-edge": `${e.from} -> ${e.to}` },
    svg("title", {}, `${e.from} → ${e.to}${e.operand_index !== null && e.operand_index !== undefined ? ` (operand ${e.operand_index})` : ""}`)));
  }
  for (const it of items) {
    const p = layout.nodes.get(it.id);
    const n = it.node;
    const classes = ["node", n.style === "highlight" ? "highlight" : n.style === "normal" ? "" : "dimmed",
      OP_CLASSES.has(n.opcode) ? n.opcode : ""].filter(Boolean).join(" ");
    const g = svg("g", { class: classes, "data-node": n.name, tabindex: "0", role: "link", "aria-label": `Centre on ${n.name}` },
      svg("rect", { x: p.x, y: p.y, width: p.w, height: p.h }),
      it.lines.map((line, k) => svg("text", { class: k === 0 ? "name" : null, x: p.x + p.w / 2, y: p.y + 14 + k * 13,
        "text-anchor": "middle" }, label(line))),
      svg("title", {}, [n.name, `${n.opcode} · ${n.category}`, n.shape, n.op_name, n.source,
        n.subcomputation ? `reduces with ${n.subcomputation}` : "", n.style !== "normal" && n.style !== "highlight" ? n.style.replace(/_/g, " ") : ""]
        .filter(Boolean).join("\n")));
    const go = () => ctx.navigate({ node_name: n.name });
    g.addEventListener("click", go);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
    root.append(g);
  }
  const cluster = data.clusters.find((c) => c.instruction === data.center);
  const focus = layout.nodes.get(data.center) || (cluster ? layout.clusters.get(cluster.id) : null);
  return { root, focus };
}

function sidePanel(ctx, data) {
  const center = data.nodes.find((n) => n.name === data.center);
  const link = (name) => h("li", {}, h("a", { href: "#", text: name, onclick: (ev) => { ev.preventDefault(); ctx.navigate({ node_name: name }); } }));
  return h("aside.panel.graph-side", { "aria-label": "Selected op" },
    h("h3", { text: data.center }),
    center ? h("dl", {},
      h("dt", { text: "Opcode" }), h("dd", { text: center.opcode }),
      h("dt", { text: "Category" }), h("dd", { text: center.category }),
      h("dt", { text: "Shape" }), h("dd.mono", { text: center.shape }),
      center.op_name ? [h("dt", { text: "Framework op" }), h("dd", { text: center.op_name })] : null,
      center.source ? [h("dt", { text: "Source" }), h("dd", { text: center.source })] : null,
      h("dt", { text: "Module" }), h("dd", { text: data.module_name })) : h("p.muted", { text: "drawn as its fused computation" }),
    h("h3", { text: `Operands (${data.operands.length})` }), data.operands.length ? h("ul", {}, data.operands.map(link)) : h("p.muted", { text: "none" }),
    h("h3", { text: `Users (${data.users.length})` }), data.users.length ? h("ul", {}, data.users.map(link)) : h("p.muted", { text: "none" }));
}
