// The trace viewer's details panel: what the selected slice is, when it ran (exact to the
// picosecond the trace gives, in a unit that suits it), and its arguments (which arrive later,
// from the worker). A slice labelled by its op name shows its whole name (HLO text) here.

import { h, replaceChildren } from "./dom.js";
import { formatTimeExactUs } from "./format.js";

/**
 * Show a slice in `panel`.
 * @param {HTMLElement} panel
 * @param {{name: string, fullName: string, startUs: number, durUs: number, process: string, thread: string,
 *   depth: number, onZoom: () => void, linkFor?: (args: object) => Node|null}} slice name: what the slice is
 *   labelled; fullName: its whole name; linkFor: a link to show under the arguments
 * @returns {{setArgs(args: object): void, setError(err: Error): void}} to fill in the arguments
 */
export function renderSliceDetails(panel, slice) {
  const argsList = h("dl", {}, h("dt", { text: "…" }), h("dd", { text: "loading" }));
  panel.hidden = false;
  const time = (field, us, extra = {}) => h("dd", { text: formatTimeExactUs(us), dataset: { field, us: String(us), ...extra } });
  replaceChildren(panel,
    h("h3", { text: slice.name, dataset: { slice: slice.name } }),
    h("dl", {},
      slice.fullName && slice.fullName !== slice.name
        ? [h("dt", { text: "Full name" }), h("dd.full-name", { text: slice.fullName, dataset: { field: "full-name" } })]
        : null,
      h("dt", { text: "Start" }), time("start", slice.startUs),
      h("dt", { text: "Duration" }), time("duration", slice.durUs, { durUs: String(slice.durUs) }),
      h("dt", { text: "End" }), time("end", slice.startUs + slice.durUs),
      h("dt", { text: "Process" }), h("dd", { text: slice.process }),
      h("dt", { text: "Thread" }), h("dd", { text: slice.thread }),
      h("dt", { text: "Depth" }), h("dd", { text: String(slice.depth) })),
    h("h3", { text: "Arguments" }),
    argsList,
    h("p", {}, h("button.button.small", { type: "button", text: "Zoom to slice (F)", onclick: slice.onZoom })));
  return {
    setArgs(args) {
      const entries = Object.entries(args);
      replaceChildren(argsList, entries.length
        ? entries.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })])
        : [h("dt", { text: "none" }), h("dd")]);
      const link = slice.linkFor ? slice.linkFor(args) : null;
      if (link) argsList.after(h("p", {}, link));
    },
    setError(err) {
      replaceChildren(argsList, h("dt", { text: "error" }), h("dd", { text: err.message }));
    },
  };
}
