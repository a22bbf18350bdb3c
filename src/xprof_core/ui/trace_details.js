// The trace viewer's details panel: what the selected slice is, when it ran, and its arguments
// (which arrive later, from the worker).

import { h, replaceChildren } from "./dom.js";
import { formatDurationUs } from "./format.js";

/**
 * Show a slice in `panel`.
 * @param {HTMLElement} panel
 * @param {{name: string, startUs: number, durUs: number, process: string, thread: string, depth: number,
 *   onZoom: () => void, linkFor?: (args: object) => Node|null}} slice linkFor: a link to show under the arguments
 * @returns {{setArgs(args: object): void, setError(err: Error): void}} to fill in the arguments
 */
export function renderSliceDetails(panel, slice) {
  const argsList = h("dl", {}, h("dt", { text: "…" }), h("dd", { text: "loading" }));
  panel.hidden = false;
  replaceChildren(panel,
    h("h3", { text: slice.name, dataset: { slice: slice.name } }),
    h("dl", {},
      h("dt", { text: "Start" }), h("dd", { text: formatDurationUs(slice.startUs) }),
      h("dt", { text: "Duration" }), h("dd", { text: formatDurationUs(slice.durUs), dataset: { durUs: String(slice.durUs) } }),
      h("dt", { text: "End" }), h("dd", { text: formatDurationUs(slice.startUs + slice.durUs) }),
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
