// Loading (with progress) and error panels shared by every view.

import { h } from "./dom.js";
import { formatBytes } from "./format.js";

/**
 * A loading panel: a title, a progress bar and "N MB received · T s".
 * Returns {el, progress(bytes, total), stop()}; stop() ends the elapsed-time ticker.
 */
export function loadingPanel(title) {
  const bar = h("span");
  const progress = h("div.progress", { role: "progressbar", "aria-label": title }, bar);
  const detail = h("div.muted", { text: "waiting for the server…" });
  const el = h("div.loading", { role: "status", "aria-live": "polite", dataset: { loading: "1" } },
    h("div", { text: title }), progress, detail);
  const t0 = performance.now();
  let bytes = 0;
  let total = null;
  const render = () => {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    detail.textContent = bytes ? `${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ""} received · ${s} s`
      : `waiting for the server… ${s} s`;
  };
  const timer = setInterval(render, 250);
  return {
    el,
    progress(b, t) {
      bytes = b;
      total = t;
      if (t) {
        progress.classList.add("determinate");
        bar.style.width = `${Math.min(100, (100 * b) / t).toFixed(1)}%`;
        progress.setAttribute("aria-valuenow", String(Math.round((100 * b) / t)));
      }
      render();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/**
 * A readable error: what failed, the server's message, and the facts it gave
 * (host, byte offset, path in the XSpace, valid hosts/tools/runs, HTTP status).
 */
export function errorPanel(title, err) {
  const body = (err && err.body) || {};
  const facts = [];
  const fact = (label, value) => {
    if (value !== undefined && value !== null && value !== "") facts.push(h("dt", { text: label }), h("dd", { text: value }));
  };
  fact("Host", body.host);
  fact("Byte offset", body.offset);
  fact("Where", body.path);
  fact("Code", body.code);
  if (Array.isArray(body.hosts)) fact("Known hosts", body.hosts.join(", "));
  if (Array.isArray(body.tools)) fact("Tools", body.tools.join(", "));
  if (Array.isArray(body.runs)) fact("Runs", body.runs.join(", "));
  if (err && err.status) fact("HTTP status", String(err.status));
  if (err && err.url) fact("Request", err.url);
  const message = err && err.message ? err.message : String(err);
  return h("div.error-panel", { role: "alert", dataset: { error: "1" } },
    h("h2", { text: title }),
    h("p.error-message", { text: message }),
    facts.length ? h("dl", {}, facts) : null);
}
