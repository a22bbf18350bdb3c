// Any tool without a view of its own: its tables (sortable, with CSV) and its other fields as JSON.

import { dataTable } from "../datatable.js";
import { h, replaceChildren } from "../dom.js";

export async function mount(ctx) {
  const data = await ctx.load();
  if (!data) return null;
  const tables = [];
  const rest = {};
  for (const [key, value] of Object.entries(data)) {
    if (value && typeof value === "object" && Array.isArray(value.cols) && Array.isArray(value.rows)) {
      tables.push(dataTable({ name: key, table: value, title: key, csvUrl: ctx.csvUrl(key) }));
    } else rest[key] = value;
  }
  const json = JSON.stringify(rest, null, 2);
  replaceChildren(ctx.container, h("section.view", { dataset: { view: ctx.tool } },
    h("h1", { text: ctx.tool }),
    tables,
    h("section.panel", {}, h("h2", { text: "Fields" }),
      h("pre.mono", { text: json.length > 200000 ? `${json.slice(0, 200000)}\n…` : json }))));
  return null;
}
