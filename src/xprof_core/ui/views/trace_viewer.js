// trace_viewer: the timeline canvas, its toolbar (search, zoom), status, and slice details.
//
// A worker fetches and parses every answer (trace_worker.js). The first answer covers the whole
// profile at one event per pixel (the base layer). As the user zooms in, the visible window plus a
// margin is fetched again with `resolution` = plot width × (fetched span / visible span), so the
// server's thinning keeps about one event per pixel at the current zoom (the detail layer).

import { dataUrl, errorFromResponse } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { graphLink } from "../graph_link.js";
import { formatBytes, formatDurationUs, formatNumber } from "../format.js";
import { errorPanel } from "../status_panels.js";
import { Timeline } from "../timeline.js";

const MARGIN = 0.25; // share of the visible span fetched on each side, so small pans need no fetch
const REFETCH_ZOOM = 1.5; // refetch once zoomed in this much past the loaded detail
const FETCH_DELAY_MS = 200;
const URL_DELAY_MS = 300;
const MAX_DEFAULT_HOSTS = 4;

export async function mount(ctx) {
  const hosts = ctx.hosts.length ? ctx.hosts
    : ctx.runHosts.length > MAX_DEFAULT_HOSTS ? [ctx.runHosts[0]] : [];
  // For tests and the curious: the requests made, answers loaded, and whether a fetch is due or running.
  const debug = { requests: [], loads: 0, timeline: null, busy: () => Boolean(fetchTimer || inflight) };
  window.__xprofTrace = debug;

  // --- DOM ---
  const search = h("input", { type: "search", placeholder: "Search slices by name  ( / )", "aria-label": "Search slices by name",
    value: ctx.state.q || "" });
  const matchText = h("span.muted.match-count", { "aria-live": "polite" });
  const prevMatch = h("button.button.small", { type: "button", text: "‹ Prev match", title: "Previous match (Shift+Enter)" });
  const nextMatch = h("button.button.small", { type: "button", text: "Next match ›", title: "Next match (Enter)" });
  const zoomIn = h("button.button.small", { type: "button", text: "Zoom in", title: "Zoom in (W)" });
  const zoomOut = h("button.button.small", { type: "button", text: "Zoom out", title: "Zoom out (S)" });
  const reset = h("button.button.small", { type: "button", text: "Reset", title: "Show the whole profile (0)" });
  const status = h("div.trace-status", { role: "status" });
  const canvas = h("canvas", { tabindex: "0", role: "application", "aria-roledescription": "timeline",
    "aria-label": "Trace timeline. W/S zoom, A/D pan, arrow keys scroll, click a slice for details, Escape clears." });
  const overlay = h("div.trace-overlay", { hidden: true, role: "status", "aria-live": "polite" });
  const wrap = h("div.trace-canvas-wrap", {}, canvas, overlay);
  const details = h("aside.panel.trace-details", { hidden: true, "aria-label": "Selected slice", tabindex: "-1" });
  const hostNote = !ctx.hosts.length && hosts.length
    ? h("p.note", { text: `Showing host ${hosts[0]} of ${ctx.runHosts.length}; choose more in the Hosts menu.` }) : null;
  const root = h("section.view.fill.trace-view", { dataset: { view: "trace_viewer" } },
    h("div.trace-toolbar", {}, search, prevMatch, nextMatch, matchText, h("span.spacer"), zoomIn, zoomOut, reset),
    hostNote,
    status,
    h("div.trace-body", {}, wrap, details),
    h("div.keys", {}, "Keys: ", h("kbd", { text: "W" }), "/", h("kbd", { text: "S" }), " zoom · ",
      h("kbd", { text: "A" }), "/", h("kbd", { text: "D" }), " pan · wheel zooms at the pointer, drag pans · ",
      h("kbd", { text: "↑" }), h("kbd", { text: "↓" }), " scroll rows · ", h("kbd", { text: "F" }), " zoom to selection · ",
      h("kbd", { text: "0" }), " reset · click a process name to fold it"));
  replaceChildren(ctx.container, root);

  // --- the worker and loads ---
  const worker = new Worker(new URL("../trace_worker.js", import.meta.url), { type: "module" });
  const pending = new Map(); // id → {resolve, reject, onProgress}
  let nextId = 1;
  worker.onmessage = (message) => {
    const msg = message.data;
    const p = pending.get(msg.id);
    if (!p) return;
    if (msg.type === "progress") p.onProgress(msg.bytes);
    else {
      pending.delete(msg.id);
      if (msg.type === "loaded") {
        msg.model.loadId = msg.id;
        msg.model.bytes = msg.bytes;
        msg.model.timings = msg.timings;
        p.resolve(msg.model);
      } else if (msg.type === "args") p.resolve(msg.event);
      else {
        const err = msg.status ? errorFromResponse(msg.status, msg.statusText, msg.text, msg.url)
          : Object.assign(new Error(msg.message), { url: msg.url, status: 0 });
        p.reject(err);
      }
    }
  };
  worker.onerror = (e) => {
    for (const p of pending.values()) p.reject(new Error(`trace worker failed: ${e.message}`));
    pending.clear();
  };
  const request = (msg, onProgress = () => {}) => {
    const id = nextId++;
    const promise = new Promise((resolve, reject) => pending.set(id, { resolve, reject, onProgress }));
    worker.postMessage({ ...msg, id });
    return { id, promise };
  };
  const loadWindow = (windowUs, resolution) => {
    const params = { resolution };
    if (windowUs) {
      params.start_time_ms = (windowUs[0] / 1000).toFixed(6);
      params.end_time_ms = (windowUs[1] / 1000).toFixed(6);
    }
    // Absolute: the worker would resolve a relative URL against its own script's folder.
    const url = new URL(dataUrl(ctx.run, "trace_viewer", hosts, params), document.baseURI).href;
    debug.requests.push(url);
    return request({ type: "load", url, windowUs, slot: windowUs ? "detail" : "base" },
      (bytes) => showOverlay(windowUs, bytes));
  };
  function showOverlay(windowUs, bytes) {
    overlay.hidden = false;
    const what = windowUs ? `window ${formatDurationUs(windowUs[0])} – ${formatDurationUs(windowUs[1])}` : "the whole profile";
    overlay.textContent = `Loading ${what}… ${bytes ? formatBytes(bytes) : ""}`;
  }

  // --- the timeline ---
  let base = null;
  let detail = null;
  let inflight = null; // {id, windowUs, threshold}
  let fetchTimer = 0;
  let urlTimer = 0;
  let destroyed = false;
  const timeline = new Timeline(canvas, {
    onViewChange: () => {
      clearTimeout(fetchTimer);
      fetchTimer = setTimeout(maybeFetch, FETCH_DELAY_MS);
      clearTimeout(urlTimer);
      urlTimer = setTimeout(writeUrl, URL_DELAY_MS);
    },
    onSelect: (hit) => showDetails(hit),
    onResize: () => {
      clearTimeout(fetchTimer);
      fetchTimer = setTimeout(maybeFetch, FETCH_DELAY_MS);
    },
  });
  debug.timeline = timeline;
  // Leaving the view (even while the first answer is still loading) stops the worker.
  ctx.signal.addEventListener("abort", () => destroy());

  function writeUrl() {
    if (destroyed) return;
    const [s, e] = timeline.view;
    ctx.navigate({ start_ms: (s / 1000).toFixed(6), end_ms: (e / 1000).toFixed(6) }, { replace: true });
  }

  function maybeFetch() {
    fetchTimer = 0;
    if (destroyed || !base) return;
    const [vs, ve] = timeline.view;
    const span = ve - vs;
    const [fa, fb] = base.fullSpanUs;
    if (span >= (fb - fa) / REFETCH_ZOOM) {
      // Nearly everything is in view: the base layer has the right detail.
      if (inflight) worker.postMessage({ type: "cancel", id: inflight.id });
      inflight = null;
      if (detail) {
        detail = null;
        timeline.setLayers(base, null);
        updateStatus();
      }
      overlay.hidden = true;
      return;
    }
    const need = span / timeline.plotWidth; // µs per pixel now
    const have = inflight || (detail && { windowUs: detail.windowUs, threshold: detail.threshold });
    if (have && vs >= have.windowUs[0] && ve <= have.windowUs[1] && have.threshold <= need * REFETCH_ZOOM) return;
    const ws = Math.max(fa, vs - span * MARGIN);
    const we = Math.min(fb, ve + span * MARGIN);
    if (!(we > ws)) return;
    const resolution = Math.max(1, Math.round((timeline.plotWidth * (we - ws)) / span));
    if (inflight) worker.postMessage({ type: "cancel", id: inflight.id });
    const load = loadWindow([ws, we], resolution);
    const mine = { id: load.id, windowUs: [ws, we], threshold: (we - ws) / resolution };
    inflight = mine;
    showOverlay(mine.windowUs, 0);
    load.promise.then((model) => {
      if (destroyed || inflight !== mine) return;
      inflight = null;
      overlay.hidden = true;
      model.threshold = mine.threshold;
      model.resolution = resolution;
      detail = model;
      debug.loads++;
      timeline.setLayers(base, detail);
      updateStatus();
      updateMatches();
    }, (err) => {
      if (destroyed || inflight !== mine) return;
      inflight = null;
      overlay.hidden = false;
      replaceChildren(overlay, errorPanel("Could not load this window of the trace", err));
    });
  }

  function updateStatus() {
    const m = detail || base;
    if (!m) return;
    const c = m.counts;
    const win = m.windowUs ? `${formatDurationUs(m.windowUs[0])} – ${formatDurationUs(m.windowUs[1])}`
      : `whole profile (${formatDurationUs(m.fullSpanUs[1] - m.fullSpanUs[0])})`;
    const parts = [`${formatNumber(c.returned)} events loaded for ${win}`, `resolution ${formatNumber(m.resolution)}`];
    if (c.dropped) parts.push(`${formatNumber(c.dropped)} of ${formatNumber(c.eventsInWindow)} hidden: ${c.droppedReason}`);
    else parts.push("nothing hidden");
    if (m.timings) {
      parts.push(`${formatBytes(m.bytes || 0)} in ${Math.round(m.timings.fetchMs)} ms, parsed in `
        + `${Math.round(m.timings.parseMs + m.timings.buildMs)} ms`);
    }
    status.textContent = parts.join(" · ");
    status.dataset.returned = String(c.returned);
  }

  // --- search ---
  let searchTimer = 0;
  function updateMatches() {
    const q = search.value.trim();
    const n = timeline.setSearch(q);
    matchText.textContent = q ? `${formatNumber(n)} match${n === 1 ? "" : "es"} loaded` : "";
    prevMatch.disabled = nextMatch.disabled = !q || !n;
  }
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      updateMatches();
      ctx.navigate({ q: search.value.trim() || null }, { replace: true });
    }, 150);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(searchTimer);
      updateMatches();
      timeline.nextMatch(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      search.value = "";
      updateMatches();
      canvas.focus();
    }
  });
  nextMatch.addEventListener("click", () => timeline.nextMatch(1));
  prevMatch.addEventListener("click", () => timeline.nextMatch(-1));
  zoomIn.addEventListener("click", () => timeline.zoomBy(0.5));
  zoomOut.addEventListener("click", () => timeline.zoomBy(2));
  reset.addEventListener("click", () => timeline.resetView());
  const onSlash = (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement
      || e.target instanceof HTMLTextAreaElement;
    if (e.key === "/" && !typing) {
      e.preventDefault();
      search.focus();
    }
  };
  document.addEventListener("keydown", onSlash);

  // --- details ---
  let detailsSeq = 0;
  async function showDetails(hit) {
    const seq = ++detailsSeq;
    if (!hit || hit.proc) {
      details.hidden = true;
      return;
    }
    const layer = timeline.layers[hit.layer];
    const m = layer.model;
    const start = m.start[hit.index];
    const dur = m.dur[hit.index];
    const name = m.names[m.nameIdx[hit.index]];
    const proc = timeline.items.find((it) => it.kind === "proc" && it.pid === hit.item.pid);
    const argsList = h("dl", {}, h("dt", { text: "…" }), h("dd", { text: "loading" }));
    details.hidden = false;
    replaceChildren(details,
      h("h3", { text: name, dataset: { slice: name } }),
      h("dl", {},
        h("dt", { text: "Start" }), h("dd", { text: formatDurationUs(start) }),
        h("dt", { text: "Duration" }), h("dd", { text: formatDurationUs(dur), dataset: { durUs: String(dur) } }),
        h("dt", { text: "End" }), h("dd", { text: formatDurationUs(start + dur) }),
        h("dt", { text: "Process" }), h("dd", { text: proc ? proc.name : String(hit.item.pid) }),
        h("dt", { text: "Thread" }), h("dd", { text: hit.item.name }),
        h("dt", { text: "Depth" }), h("dd", { text: String(hit.depth) })),
      h("h3", { text: "Arguments" }),
      argsList,
      h("p", {}, h("button.button.small", { type: "button", text: "Zoom to slice (F)", onclick: () => timeline.zoomToSelection() })));
    try {
      const event = await request({ type: "args", loadId: m.loadId, eventIdx: m.eventIdx[hit.index] }).promise;
      if (seq !== detailsSeq) return;
      const entries = Object.entries((event && event.args) || {});
      replaceChildren(argsList, entries.length ? entries.flatMap(([k, v]) => [h("dt", { text: k }),
        h("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })])
        : [h("dt", { text: "none" }), h("dd")]);
      const args = (event && event.args) || {};
      const op = args.hlo_op ? String(args.hlo_op).split("::").pop() : args.program_id !== undefined ? name : null;
      const link = graphLink(ctx.run, args.program_id, op);
      if (link) argsList.after(h("p", {}, link));
    } catch (err) {
      if (seq === detailsSeq) replaceChildren(argsList, h("dt", { text: "error" }), h("dd", { text: err.message }));
    }
  }

  // --- first load: the whole profile ---
  const first = loadWindow(null, timeline.plotWidth);
  showOverlay(null, 0);
  try {
    base = await first.promise;
  } catch (err) {
    if (destroyed) throw err;
    replaceChildren(wrap, errorPanel(`Could not load the trace of ${hosts.length ? hosts.join(", ") : "all hosts"}`, err));
    status.textContent = "";
    return view();
  }
  if (destroyed) return null;
  overlay.hidden = true;
  base.resolution = timeline.plotWidth;
  debug.loads++;
  timeline.setLayers(base, null);
  const s = Number(ctx.state.start_ms);
  const e = Number(ctx.state.end_ms);
  if (ctx.state.start_ms !== undefined && ctx.state.end_ms !== undefined && e > s) timeline.setView(s * 1000, e * 1000);
  else timeline.resetView();
  updateStatus();
  if (search.value) updateMatches();
  else prevMatch.disabled = nextMatch.disabled = true;
  timeline.drawNow();
  return view();

  function view() {
    return {
      update(state) {
        const s2 = Number(state.start_ms);
        const e2 = Number(state.end_ms);
        if (state.start_ms !== undefined && e2 > s2) {
          const [vs, ve] = timeline.view;
          if (Math.abs(vs - s2 * 1000) > 1e-3 || Math.abs(ve - e2 * 1000) > 1e-3) timeline.setView(s2 * 1000, e2 * 1000);
        }
        if ((state.q || "") !== search.value.trim()) {
          search.value = state.q || "";
          updateMatches();
        }
      },
      destroy,
    };
  }

  function destroy() {
    if (destroyed) return;
    destroyed = true;
    clearTimeout(fetchTimer);
    clearTimeout(urlTimer);
    clearTimeout(searchTimer);
    document.removeEventListener("keydown", onSlash);
    timeline.destroy();
    worker.terminate();
    for (const p of pending.values()) p.reject(new DOMException("view closed", "AbortError"));
    pending.clear();
    if (window.__xprofTrace === debug) delete window.__xprofTrace;
  }
}
