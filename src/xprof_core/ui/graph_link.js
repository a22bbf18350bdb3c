// "Show in graph": links from any view to the graph viewer centred on an HLO op.
// The link is a URL hash (the app's state), so it opens in place, in a new tab, or shared.

import { h } from "./dom.js";

/**
 * The hash of the graph viewer around an op.
 * @param {string} run
 * @param {{programId?: string|number, moduleName?: string, node: string, hosts?: string[]}} where
 */
export function graphHash(run, { programId, moduleName, node, hosts }) {
  const q = new URLSearchParams({ run, tool: "graph_viewer" });
  if (hosts && hosts.length) q.set("hosts", hosts.join(","));
  if (moduleName) q.set("module_name", moduleName);
  else if (programId !== undefined && programId !== null && programId !== "") q.set("program_id", String(programId));
  q.set("node_name", node);
  return `#${q.toString()}`;
}

/** The current run (from the URL hash), for views that link without a context at hand. */
export function currentRun() {
  return new URLSearchParams(location.hash.replace(/^#/, "")).get("run") || "";
}

/**
 * An <a> "show in graph" for an op of a program; null when the op or program is unknown, or when the
 * "op" is a CUDA graph's command buffer (its kernels name the buffer, not an HLO instruction).
 */
export function graphLink(run, programId, node, text = "show in graph") {
  if (!node || programId === undefined || programId === null || programId === "") return null;
  if (/^command_buffer(_\d+)?$/.test(node)) return null;
  return h("a.graph-link", { href: graphHash(run, { programId, node }), text, title: `The HLO graph around ${node}` });
}
