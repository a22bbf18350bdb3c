// op_profile: the op tree (by category or by program) as an expandable table with time bars, as
// XProf's op profile: "Exclude idle" (off: an IDLE row, and shares of the whole device time, gaps
// included), "Top 90%" (each group's ops up to 90% of its time), a provenance column (the
// framework op an HLO op came from) and a detail card for the op clicked.

import { h, replaceChildren } from "../dom.js";
import { formatNumber, formatTimeExactUs } from "../format.js";
import { graphLink } from "../graph_link.js";

const MAX_CHILDREN = 200;
const TOP_SHARE = 0.9;

export async function mount(ctx) {
  const data = await ctx.load();
  if (!data) return null;
  const roots = { byCategory: data.byCategory, byProgram: data.byProgram };
  const state = { grouping: data.byCategory ? "byCategory" : "byProgram", excludeIdle: true, top90: false };
  const expanded = new Set(["0"]);
  const tbody = h("tbody");
  const card = h("aside.panel.op-card", { hidden: true, "aria-label": "Selected op" });
  const select = h("select", { "aria-label": "Group ops", onchange: () => { state.grouping = select.value; expanded.clear(); expanded.add("0"); draw(); } },
    h("option", { value: "byCategory", text: "By category", selected: state.grouping === "byCategory" }),
    h("option", { value: "byProgram", text: "By program", selected: state.grouping === "byProgram" }));
  const checkbox = (label, checked, onchange) => {
    const box = h("input", { type: "checkbox", checked, "aria-label": label, onchange: () => { onchange(box.checked); draw(); } });
    return h("label.toggle", {}, box, ` ${label}`);
  };
  const idleToggle = checkbox("Exclude idle", true, (v) => { state.excludeIdle = v; });
  const topToggle = checkbox("Top 90%", false, (v) => { state.top90 = v; });

  /** The share (%) a node's self time is of: the ops' time, or the device time with its idle part. */
  const denominator = () => {
    const root = roots[state.grouping];
    const ops = root ? root.metrics.selfTime || 0 : 0;
    return state.excludeIdle ? ops : Math.max(data.totalTimePs || 0, ops);
  };

  /** The children shown: all (up to MAX_CHILDREN), or those up to 90% of the parent's time. */
  function shownChildren(node) {
    const kids = node.children || [];
    if (!state.top90 || !kids.length) return kids.slice(0, MAX_CHILDREN);
    const total = kids.reduce((s, k) => s + (k.metrics.selfTime || 0), 0);
    const out = [];
    let acc = 0;
    for (const k of kids) {
      out.push(k);
      acc += k.metrics.selfTime || 0;
      if (acc >= TOP_SHARE * total || out.length >= MAX_CHILDREN) break;
    }
    return out;
  }

  function row(node, path, depth, toggle, provenance) {
    const m = node.metrics || {};
    const denom = denominator();
    const pct = denom ? (100 * (m.selfTime || 0)) / denom : 0;
    const tr = h("tr", { dataset: { path } },
      h("td", { style: `padding-left:${8 + depth * 16}px` }, toggle, " ", node.name,
        node.xla ? graphLink(ctx.run, node.xla.programId, node.xla.op) : null),
      h("td.num", { dataset: { field: "time", v: String(pct) } },
        h("span.bar", { style: `width:${Math.max(1, pct * 0.8)}px` }), `${pct.toFixed(2)}%`),
      h("td.num", { text: formatNumber((m.rawTime || 0) / 1e6) }),
      h("td.num", { text: formatNumber((m.selfTime || 0) / 1e6) }),
      h("td.num", { text: formatNumber(m.occurrences || 0) }),
      h("td.num", { text: formatNumber((m.avgTimePs || 0) / 1e6) }),
      h("td.clip.muted", { text: provenance, title: provenance || null, dataset: { field: "provenance" } }));
    if (node.xla) {
      tr.classList.add("op-row");
      tr.addEventListener("click", (e) => {
        if (e.target.closest("button, a")) return;
        showCard(node);
      });
    }
    return tr;
  }

  function rowsOf(node, path, depth, out) {
    const kids = node.children || [];
    const open = expanded.has(path);
    const toggle = kids.length
      ? h("button.toggle", { type: "button", "aria-expanded": String(open), "aria-label": `${open ? "Collapse" : "Expand"} ${node.name}`,
        text: open ? "▾" : "▸", onclick: () => { if (open) expanded.delete(path); else expanded.add(path); draw(); } })
      : h("span.toggle", { style: "display:inline-block;width:16px" });
    // Provenance: the framework op an HLO op came from ("" when XLA recorded none); groups have none.
    out.push(row(node, path, depth, toggle, node.xla ? node.xla.provenance || "" : ""));
    if (open) {
      const shown = shownChildren(node);
      shown.forEach((child, i) => rowsOf(child, `${path}.${i}`, depth + 1, out));
      const more = Math.max(kids.length, node.numChildren || 0) - shown.length;
      if (more > 0) {
        const why = state.top90 && shown.length < Math.min(kids.length, MAX_CHILDREN) ? " (below the top 90%)" : "";
        out.push(h("tr", {}, h("td.muted", { colspan: "7", style: `padding-left:${24 + depth * 16}px`, text: `… ${more} more${why}` })));
      }
      if (path === "0" && !state.excludeIdle && data.idleTimePs > 0) {
        out.push(row({ name: "IDLE", metrics: { selfTime: data.idleTimePs, rawTime: data.idleTimePs } }, "0.idle", depth + 1,
          h("span.toggle", { style: "display:inline-block;width:16px" }), ""));
      }
    }
    return out;
  }

  function showCard(node) {
    const x = node.xla || {};
    const m = node.metrics || {};
    const fact = (label, value) => (value === "" || value === null || value === undefined ? null
      : [h("dt", { text: label }), h("dd", { text: String(value) })]);
    card.hidden = false;
    replaceChildren(card,
      h("h3", { text: node.name }),
      h("dl", {},
        fact("Category", x.category),
        fact("Program", x.programId),
        fact("Provenance", x.provenance),
        fact("Expression", x.expression),
        fact("Occurrences", formatNumber(m.occurrences || 0)),
        fact("Total time", formatTimeExactUs((m.rawTime || 0) / 1e6)),
        fact("Self time", formatTimeExactUs((m.selfTime || 0) / 1e6)),
        fact("Average time", formatTimeExactUs((m.avgTimePs || 0) / 1e6)),
        fact("FLOPs", m.rawFlops ? formatNumber(m.rawFlops) : ""),
        fact("Bytes accessed", m.rawBytesAccessed ? formatNumber(m.rawBytesAccessed) : ""),
        fact("FLOP utilization", m.flops && m.time ? `${((100 * m.flops) / m.time).toFixed(1)}%` : "")),
      h("p", {}, h("button.button.small", { type: "button", text: "Close", onclick: () => { card.hidden = true; } })));
  }

  function draw() {
    const root = roots[state.grouping];
    replaceChildren(tbody, root ? rowsOf(root, "0", 0, []) : h("tr", {}, h("td", { colspan: "7", text: "No ops." })));
  }

  draw();
  replaceChildren(ctx.container, h("section.view", { dataset: { view: "op_profile" } },
    h("h1", { text: "Op profile" }),
    data.reason ? h("p.note", { text: data.reason }) : null,
    h("div.table-tools", {}, select, idleToggle, topToggle,
      h("span.muted", { text: `Device type: ${data.deviceType || data.device_type || "?"}` })),
    h("div.op-body", {},
      h("div.table-scroll.op-tree", {}, h("table.data", { dataset: { table: "op_profile" } },
        h("thead", {}, h("tr", {}, ["Name", "Time", "Total time (µs)", "Self time (µs)", "Occurrences", "Avg. time (µs)", "Provenance"]
          .map((t, i) => h(i && i < 6 ? "th.num" : "th", { scope: "col", style: "padding:6px 8px", text: t })))),
        tbody)),
      card)));
  return null;
}
