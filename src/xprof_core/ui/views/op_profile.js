// op_profile: the op tree (by category or by program) as an expandable table with time bars.

import { h, replaceChildren } from "../dom.js";
import { formatNumber } from "../format.js";
import { graphLink } from "../graph_link.js";

const MAX_CHILDREN = 200;

export async function mount(ctx) {
  const data = await ctx.load();
  if (!data) return null;
  const roots = { byCategory: data.byCategory, byProgram: data.byProgram };
  let grouping = data.byCategory ? "byCategory" : "byProgram";
  const expanded = new Set(["0"]);
  const tbody = h("tbody");
  const select = h("select", { "aria-label": "Group ops", onchange: () => { grouping = select.value; expanded.clear(); expanded.add("0"); draw(); } },
    h("option", { value: "byCategory", text: "By category", selected: grouping === "byCategory" }),
    h("option", { value: "byProgram", text: "By program", selected: grouping === "byProgram" }));

  function rowsOf(node, path, depth, out) {
    const m = node.metrics || {};
    const kids = node.children || [];
    const open = expanded.has(path);
    const toggle = kids.length
      ? h("button.toggle", { type: "button", "aria-expanded": String(open), "aria-label": `${open ? "Collapse" : "Expand"} ${node.name}`,
        text: open ? "▾" : "▸", onclick: () => { if (open) expanded.delete(path); else expanded.add(path); draw(); } })
      : h("span.toggle", { style: "display:inline-block;width:16px" });
    const pct = 100 * (m.time || 0);
    out.push(h("tr", { dataset: { path } },
      h("td", { style: `padding-left:${8 + depth * 16}px` }, toggle, " ", node.name,
        node.xla ? graphLink(ctx.run, node.xla.programId, node.xla.op) : null),
      h("td.num", {}, h("span.bar", { style: `width:${Math.max(1, pct * 0.8)}px` }), `${pct.toFixed(2)}%`),
      h("td.num", { text: formatNumber((m.rawTime || 0) / 1e6) }),
      h("td.num", { text: formatNumber((m.selfTime || 0) / 1e6) }),
      h("td.num", { text: formatNumber(m.occurrences || 0) }),
      h("td.num", { text: formatNumber((m.avgTimePs || 0) / 1e6) }),
      h("td.wrap.muted", { text: node.xla ? node.xla.provenance || node.xla.expression || "" : "" })));
    if (open) {
      kids.slice(0, MAX_CHILDREN).forEach((child, i) => rowsOf(child, `${path}.${i}`, depth + 1, out));
      const more = Math.max(kids.length, node.numChildren || 0) - Math.min(kids.length, MAX_CHILDREN);
      if (more > 0) out.push(h("tr", {}, h("td.muted", { colspan: "7", style: `padding-left:${24 + depth * 16}px`, text: `… ${more} more` })));
    }
    return out;
  }

  function draw() {
    const root = roots[grouping];
    replaceChildren(tbody, root ? rowsOf(root, "0", 0, []) : h("tr", {}, h("td", { colspan: "7", text: "No ops." })));
  }

  draw();
  replaceChildren(ctx.container, h("section.view", { dataset: { view: "op_profile" } },
    h("h1", { text: "Op profile" }),
    data.reason ? h("p.note", { text: data.reason }) : null,
    h("div.table-tools", {}, select, h("span.muted", { text: `Device type: ${data.deviceType || data.device_type || "?"}` })),
    h("div.table-scroll.op-tree", {}, h("table.data", { dataset: { table: "op_profile" } },
      h("thead", {}, h("tr", {}, ["Name", "Time", "Total time (µs)", "Self time (µs)", "Occurrences", "Avg. time (µs)", "Provenance"]
        .map((t, i) => h(i && i < 6 ? "th.num" : "th", { scope: "col", style: "padding:6px 8px", text: t })))),
      tbody))));
  return null;
}
