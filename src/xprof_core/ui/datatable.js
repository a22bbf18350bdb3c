// A Google DataTable ({cols, rows: [{c: [{v}]}]}) as an HTML table that sorts (click a header),
// filters (text box), pages, and links to the same table as CSV (the API's data_csv route).
// Only the visible page is in the DOM, so tables of any length stay cheap. Long names (kernels,
// HLO expressions) stay on one line, cut with an ellipsis, whole in their tooltip; their columns
// start wide, and every column can be resized by dragging its header's right edge. A table wider
// than the page scrolls inside its panel.

import { h, replaceChildren } from "./dom.js";
import { formatNumber, opLabel } from "./format.js";

const PAGE_SIZES = [25, 50, 100, 500];
const LONG_TEXT = 40; // characters past which a string column counts as long
const LONG_COL_PX = 320; // starting width of a long column
const NAME_COL_PX = 240; // starting width of a column of names
const NAME_COLUMN = /(^|_)(name|expression|operation)$/;
const MIN_COL_PX = 48;

/** A drag handle on a header's right edge that sets the column's width. */
function resizeHandle(th) {
  const handle = h("span.col-resize", { "aria-hidden": "true", title: "Drag to resize the column" });
  handle.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    e.stopPropagation();
    const x0 = e.clientX;
    const w0 = th.getBoundingClientRect().width;
    handle.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const w = Math.max(MIN_COL_PX, Math.round(w0 + ev.clientX - x0));
      th.style.width = `${w}px`;
      th.style.minWidth = `${w}px`;
      th.style.maxWidth = `${w}px`;
    };
    const up = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  });
  handle.addEventListener("click", (e) => e.stopPropagation());
  return handle;
}
const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

/** The display text of a cell value of a column type (an op named by its HLO text shows its op name). */
export function cellText(value, type) {
  if (value === null || value === undefined) return "";
  if (type === "boolean") return value ? "yes" : "no";
  if (type === "number") return formatNumber(value);
  return opLabel(String(value));
}

/**
 * @param {object} options
 * @param {string} options.name table id (the `table=` of data_csv), also its data-table attribute
 * @param {{cols: Array, rows: Array}} options.table the DataTable
 * @param {string} [options.title] heading shown above the table
 * @param {string|null} [options.csvUrl] data_csv URL for the download link
 * @param {number} [options.pageSize]
 * @param {string} [options.emptyText] shown when the table has no rows
 * @param {(row: Array, colId: string) => string|null} [options.cellLink] a link (href) for a cell, or null
 * @returns {HTMLElement}
 */
export function dataTable({ name, table, title, csvUrl = null, pageSize = 50, emptyText = "No rows.", cellLink = null }) {
  const cols = table.cols || [];
  const rows = (table.rows || []).map((r) => r.c.map((cell) => (cell ? cell.v : null)));
  const state = { sortCol: -1, desc: false, filter: "", page: 0, pageSize };
  let searchText = null; // lower-cased row texts, built on first filter
  let view = rows.map((_, i) => i); // row indices after filter and sort

  const idBase = `t-${name}`;
  const filterInput = h("input", {
    type: "search", placeholder: "Filter rows…", "aria-label": `Filter ${title || name}`, id: `${idBase}-filter`,
    oninput: () => {
      state.filter = filterInput.value.trim().toLowerCase();
      state.page = 0;
      update();
    },
  });
  const countText = h("span.muted.row-count", { "aria-live": "polite" });
  const sizeSelect = h("select", {
    "aria-label": "Rows per page",
    onchange: () => {
      state.pageSize = Number(sizeSelect.value);
      state.page = 0;
      update();
    },
  }, PAGE_SIZES.map((n) => h("option", { value: String(n), text: `${n} per page`, selected: n === pageSize })));
  const csvLink = csvUrl
    ? h("a.button.small.csv-link", { href: csvUrl, download: `${name}.csv`, text: "Download CSV" })
    : null;

  // Columns of names (kernels, ops, HLO text) and of long text start wide and cut their cells.
  const maxLen = cols.map((col, j) => (col.type !== "string" ? 0
    : rows.reduce((n, r) => Math.max(n, r[j] === null || r[j] === undefined ? 0 : String(r[j]).length), 0)));
  const colWidth = cols.map((col, j) => (maxLen[j] > LONG_TEXT ? LONG_COL_PX
    : NAME_COLUMN.test(col.id) && maxLen[j] > 12 ? NAME_COL_PX : 0));
  const longCol = colWidth.map((w) => w > 0);
  const headCells = cols.map((col, i) => {
    const th = h(`th${col.type === "number" ? ".num" : ""}`, {
      scope: "col", "aria-sort": "none", dataset: { col: col.id },
      style: longCol[i] ? `width:${colWidth[i]}px;min-width:${colWidth[i]}px` : null,
    },
    h("button", {
      type: "button", text: col.label || col.id, title: `Sort by ${col.label || col.id}`,
      onclick: () => sortBy(i),
    }));
    th.append(resizeHandle(th));
    return th;
  });
  const tbody = h("tbody");
  const tableEl = h("table.data", { dataset: { table: name } }, h("thead", {}, h("tr", {}, headCells)), tbody);
  const pageText = h("span.page-text");
  const prev = h("button.button.small", { type: "button", text: "‹ Prev", onclick: () => go(state.page - 1) });
  const next = h("button.button.small", { type: "button", text: "Next ›", onclick: () => go(state.page + 1) });
  const first = h("button.button.small", { type: "button", text: "« First", onclick: () => go(0) });
  const last = h("button.button.small", { type: "button", text: "Last »", onclick: () => go(Infinity) });
  const pager = h("div.pager", {}, first, prev, pageText, next, last);

  function sortBy(i) {
    if (state.sortCol === i) state.desc = !state.desc;
    else {
      state.sortCol = i;
      // Numbers sort largest first on the first click: that is what one looks for in a profile.
      state.desc = cols[i].type === "number";
    }
    state.page = 0;
    update();
  }

  function go(page) {
    const pages = Math.max(1, Math.ceil(view.length / state.pageSize));
    state.page = Math.max(0, Math.min(pages - 1, page));
    update();
  }

  function computeView() {
    let idx = rows.map((_, i) => i);
    if (state.filter) {
      if (!searchText) {
        // What a row shows, plus the whole name of ops shown by their op name.
        searchText = rows.map((r) => r.map((v, j) => {
          const text = cellText(v, cols[j].type);
          return cols[j].type === "string" && v !== null && text !== String(v) ? `${text}\u0001${v}` : text;
        }).join("\u0001").toLowerCase());
      }
      idx = idx.filter((i) => searchText[i].includes(state.filter));
    }
    if (state.sortCol >= 0) {
      const c = state.sortCol;
      const numeric = cols[c].type === "number" || cols[c].type === "boolean";
      const sign = state.desc ? -1 : 1;
      idx.sort((a, b) => {
        const va = rows[a][c];
        const vb = rows[b][c];
        // Empty cells last in both directions.
        if (va === null || va === undefined) return vb === null || vb === undefined ? a - b : 1;
        if (vb === null || vb === undefined) return -1;
        const d = numeric ? Number(va) - Number(vb) : collator.compare(String(va), String(vb));
        return d !== 0 ? sign * d : a - b;
      });
    }
    view = idx;
  }

  function update() {
    computeView();
    headCells.forEach((th, i) => {
      th.setAttribute("aria-sort", i === state.sortCol ? (state.desc ? "descending" : "ascending") : "none");
    });
    const pages = Math.max(1, Math.ceil(view.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    const from = state.page * state.pageSize;
    const to = Math.min(view.length, from + state.pageSize);
    const trs = [];
    for (let k = from; k < to; k++) {
      const r = rows[view[k]];
      trs.push(h("tr", {}, r.map((v, j) => {
        const type = cols[j].type;
        const text = cellText(v, type);
        const cls = type === "number" ? "td.num" : longCol[j] ? "td.clip" : "td";
        const whole = v === null || v === undefined ? null : String(v);
        const href = cellLink && text ? cellLink(r, cols[j].id) : null;
        return h(cls, { text: href ? null : text,
          title: type === "number" || longCol[j] || (whole !== null && whole !== text) ? whole : null,
          dataset: { v: whole === null ? "" : whole } }, href ? h("a", { href, text }) : null);
      })));
    }
    if (!trs.length) {
      trs.push(h("tr", {}, h("td.muted", { colspan: String(Math.max(1, cols.length)),
        text: rows.length ? "No rows match the filter." : emptyText })));
    }
    replaceChildren(tbody, trs);
    countText.textContent = state.filter ? `${view.length} of ${rows.length} rows` : `${rows.length} rows`;
    pageText.textContent = view.length ? `Rows ${from + 1}–${to} of ${view.length} · page ${state.page + 1} of ${pages}`
      : "No rows";
    prev.disabled = first.disabled = state.page === 0;
    next.disabled = last.disabled = state.page >= pages - 1;
    pager.hidden = view.length <= PAGE_SIZES[0] && state.pageSize >= view.length;
  }

  update();
  return h("section.panel.table-panel", { dataset: { tableName: name } },
    title ? h("h2", { text: title }) : null,
    h("div.table-tools", {}, filterInput, countText, sizeSelect, csvLink),
    h("div.table-scroll", {}, tableEl),
    pager);
}
