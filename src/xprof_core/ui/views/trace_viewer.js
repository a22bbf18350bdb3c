// trace_viewer: the timeline canvas, its toolbar (search, zoom), status, and slice details.
//
// A worker fetches and parses every answer (trace_worker.js via trace_client.js). The first answer
// covers the whole profile at one event per pixel (the base layer). As the user zooms in, the
// visible window plus a margin is fetched again with `resolution` = plot width × (fetched span /
// visible span), so the server's thinning keeps about one event per pixel at the current zoom
// (the detail layer).
//
// The parts: buildTraceDom (the elements), TraceView (the loads and what they show: the base and
// detail layers, the status line), and the toolbar's search and zoom buttons (bindToolbar).
// The root element says what the tests need: data-loads (answers shown), data-busy (a fetch due
// or running).

import { dataUrl } from "../api.js";
import { publish, withdraw } from "../debug.js";
import { h, replaceChildren } from "../dom.js";
import { formatBytes, formatDurationUs, formatNumber } from "../format.js";
import { graphLink } from "../graph_link.js";
import { errorPanel } from "../status_panels.js";
import { TraceClient } from "../trace_client.js";
import { renderSliceDetails } from "../trace_details.js";
import { Timeline } from "../timeline.js";

const MARGIN = 0.25; // share of the visible span fetched on each side, so small pans need no fetch
const REFETCH_ZOOM = 1.5; // refetch once zoomed in this much past the loaded detail
const FETCH_DELAY_MS = 200;
const URL_DELAY_MS = 300;
const SEARCH_DELAY_MS = 150;
const MAX_DEFAULT_HOSTS = 4;

export async function mount(ctx) {
  const hosts = ctx.hosts.length ? ctx.hosts
    : ctx.runHosts.length > MAX_DEFAULT_HOSTS ? [ctx.runHosts[0]] : [];
  const dom = buildTraceDom(ctx, hosts);
  replaceChildren(ctx.container, dom.root);
  const view = new TraceView(ctx, hosts, dom);
  // Leaving the view (even while the first answer is still loading) stops the worker.
  ctx.signal.addEventListener("abort", () => view.destroy());
  await view.start();
  return view.destroyed ? null : view.handle();
}

/** The view's elements: toolbar, status, canvas with its loading overlay, details panel, key help. */
function buildTraceDom(ctx, hosts) {
  const button = (text, title) => h("button.button.small", { type: "button", text, title });
  const dom = {
    search: h("input", { type: "search", placeholder: "Search slices by name  ( / )", "aria-label": "Search slices by name",
      value: ctx.state.q || "" }),
    matchText: h("span.muted.match-count", { "aria-live": "polite" }),
    prevMatch: button("‹ Prev match", "Previous match (Shift+Enter)"),
    nextMatch: button("Next match ›", "Next match (Enter)"),
    zoomIn: button("Zoom in", "Zoom in (W)"),
    zoomOut: button("Zoom out", "Zoom out (S)"),
    reset: button("Reset", "Show the whole profile (0)"),
    status: h("div.trace-status", { role: "status" }),
    canvas: h("canvas", { tabindex: "0", role: "application", "aria-roledescription": "timeline",
      "aria-label": "Trace timeline. W/S zoom, A/D pan, arrow keys scroll, click a slice for details, Escape clears." }),
    overlay: h("div.trace-overlay", { hidden: true, role: "status", "aria-live": "polite" }),
    details: h("aside.panel.trace-details", { hidden: true, "aria-label": "Selected slice", tabindex: "-1" }),
  };
  dom.wrap = h("div.trace-canvas-wrap", {}, dom.canvas, dom.overlay);
  const hostNote = !ctx.hosts.length && hosts.length
    ? h("p.note", { text: `Showing host ${hosts[0]} of ${ctx.runHosts.length}; choose more in the Hosts menu.` }) : null;
  dom.root = h("section.view.fill.trace-view", { dataset: { view: "trace_viewer", loads: "0", busy: "1" } },
    h("div.trace-toolbar", {}, dom.search, dom.prevMatch, dom.nextMatch, dom.matchText, h("span.spacer"),
      dom.zoomIn, dom.zoomOut, dom.reset),
    hostNote,
    dom.status,
    h("div.trace-body", {}, dom.wrap, dom.details),
    h("div.keys", {}, "Keys: ", h("kbd", { text: "W" }), "/", h("kbd", { text: "S" }), " zoom · ",
      h("kbd", { text: "A" }), "/", h("kbd", { text: "D" }), " pan · wheel zooms at the pointer, drag pans · ",
      h("kbd", { text: "↑" }), h("kbd", { text: "↓" }), " scroll rows · ", h("kbd", { text: "F" }), " zoom to selection · ",
      h("kbd", { text: "0" }), " reset · click a process name to fold it"));
  return dom;
}

/** The loads of one trace view and what they show. */
class TraceView {
  constructor(ctx, hosts, dom) {
    this.ctx = ctx;
    this.hosts = hosts;
    this.dom = dom;
    this.client = new TraceClient();
    this.base = null; // the whole profile, one event per pixel
    this.detail = null; // the zoomed window, or null
    this.inflight = null; // {id, windowUs, threshold} of the detail load under way
    this.loads = 0;
    this.timers = { fetch: 0, url: 0, search: 0 };
    this.detailsSeq = 0;
    this.destroyed = false;
    this.timeline = new Timeline(dom.canvas, {
      onViewChange: () => {
        this.scheduleFetch();
        this.restartTimer("url", () => this.writeUrl(), URL_DELAY_MS);
      },
      onSelect: (hit) => this.showDetails(hit),
      onResize: () => this.scheduleFetch(),
    });
    publish("trace", this.timeline);
    this.unbindToolbar = bindToolbar(this);
  }

  /** The first load, the whole profile; then the window named by the URL. */
  async start() {
    const first = this.loadWindow(null, this.timeline.plotWidth);
    this.showOverlay(null, 0);
    try {
      this.base = await first.promise;
    } catch (err) {
      if (this.destroyed) throw err;
      const where = this.hosts.length ? this.hosts.join(", ") : "all hosts";
      replaceChildren(this.dom.wrap, errorPanel(`Could not load the trace of ${where}`, err));
      this.dom.status.textContent = "";
      this.syncState();
      return;
    }
    if (this.destroyed) return;
    this.dom.overlay.hidden = true;
    this.base.resolution = this.timeline.plotWidth;
    this.loads++;
    this.timeline.setLayers(this.base, null);
    const { start_ms: startMs, end_ms: endMs } = this.ctx.state;
    const s = Number(startMs);
    const e = Number(endMs);
    if (startMs !== undefined && endMs !== undefined && e > s) this.timeline.setView(s * 1000, e * 1000);
    else this.timeline.resetView();
    this.updateStatus();
    this.updateMatches();
    this.timeline.drawNow();
    this.syncState();
  }

  /** What app.js keeps of a mounted view: update(state) on URL changes, destroy(). */
  handle() {
    return { update: (state) => this.update(state), destroy: () => this.destroy() };
  }

  update(state) {
    const s = Number(state.start_ms);
    const e = Number(state.end_ms);
    if (state.start_ms !== undefined && e > s) {
      const [vs, ve] = this.timeline.view;
      if (Math.abs(vs - s * 1000) > 1e-3 || Math.abs(ve - e * 1000) > 1e-3) this.timeline.setView(s * 1000, e * 1000);
    }
    if ((state.q || "") !== this.dom.search.value.trim()) {
      this.dom.search.value = state.q || "";
      this.updateMatches();
    }
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const t of Object.values(this.timers)) clearTimeout(t);
    this.unbindToolbar();
    this.timeline.destroy();
    this.client.terminate();
    withdraw("trace", this.timeline);
  }

  // --- loads ---

  restartTimer(name, fn, ms) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(() => {
      this.timers[name] = 0;
      fn();
    }, ms);
  }

  scheduleFetch() {
    this.restartTimer("fetch", () => this.maybeFetch(), FETCH_DELAY_MS);
    this.syncState();
  }

  /** data-loads and data-busy on the root: what has been shown, and whether more is coming. */
  syncState() {
    const root = this.dom.root;
    root.dataset.loads = String(this.loads);
    root.dataset.busy = this.timers.fetch || this.inflight ? "1" : "0";
  }

  loadWindow(windowUs, resolution) {
    const params = { resolution };
    if (windowUs) {
      params.start_time_ms = (windowUs[0] / 1000).toFixed(6);
      params.end_time_ms = (windowUs[1] / 1000).toFixed(6);
    }
    // Absolute: the worker would resolve a relative URL against its own script's folder.
    const url = new URL(dataUrl(this.ctx.run, "trace_viewer", this.hosts, params), document.baseURI).href;
    return this.client.load(url, windowUs, windowUs ? "detail" : "base", (bytes) => this.showOverlay(windowUs, bytes));
  }

  showOverlay(windowUs, bytes) {
    const overlay = this.dom.overlay;
    overlay.hidden = false;
    const what = windowUs ? `window ${formatDurationUs(windowUs[0])} – ${formatDurationUs(windowUs[1])}` : "the whole profile";
    overlay.textContent = `Loading ${what}… ${bytes ? formatBytes(bytes) : ""}`;
  }

  writeUrl() {
    if (this.destroyed) return;
    const [s, e] = this.timeline.view;
    this.ctx.navigate({ start_ms: (s / 1000).toFixed(6), end_ms: (e / 1000).toFixed(6) }, { replace: true });
  }

  /** Fetch the visible window when the loaded layers are too coarse for it; drop the detail when zoomed out. */
  maybeFetch() {
    if (this.destroyed || !this.base) return;
    const timeline = this.timeline;
    const [vs, ve] = timeline.view;
    const span = ve - vs;
    const [fa, fb] = this.base.fullSpanUs;
    if (span >= (fb - fa) / REFETCH_ZOOM) {
      this.dropDetail();
      return;
    }
    const need = span / timeline.plotWidth; // µs per pixel now
    const detail = this.detail;
    const have = this.inflight || (detail && { windowUs: detail.windowUs, threshold: detail.threshold });
    if (have && vs >= have.windowUs[0] && ve <= have.windowUs[1] && have.threshold <= need * REFETCH_ZOOM) {
      this.syncState();
      return;
    }
    const ws = Math.max(fa, vs - span * MARGIN);
    const we = Math.min(fb, ve + span * MARGIN);
    if (!(we > ws)) return;
    const resolution = Math.max(1, Math.round((timeline.plotWidth * (we - ws)) / span));
    if (this.inflight) this.client.cancel(this.inflight.id);
    const load = this.loadWindow([ws, we], resolution);
    const mine = { id: load.id, windowUs: [ws, we], threshold: (we - ws) / resolution };
    this.inflight = mine;
    this.syncState();
    this.showOverlay(mine.windowUs, 0);
    load.promise.then((model) => {
      if (this.destroyed || this.inflight !== mine) return;
      this.inflight = null;
      this.dom.overlay.hidden = true;
      model.threshold = mine.threshold;
      model.resolution = resolution;
      this.detail = model;
      this.loads++;
      timeline.setLayers(this.base, this.detail);
      this.updateStatus();
      this.updateMatches();
      this.syncState();
    }, (err) => {
      if (this.destroyed || this.inflight !== mine) return;
      this.inflight = null;
      this.dom.overlay.hidden = false;
      replaceChildren(this.dom.overlay, errorPanel("Could not load this window of the trace", err));
      this.syncState();
    });
  }

  /** Nearly everything is in view: the base layer has the right detail. */
  dropDetail() {
    if (this.inflight) this.client.cancel(this.inflight.id);
    this.inflight = null;
    if (this.detail) {
      this.detail = null;
      this.timeline.setLayers(this.base, null);
      this.updateStatus();
    }
    this.dom.overlay.hidden = true;
    this.syncState();
  }

  updateStatus() {
    const m = this.detail || this.base;
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
    this.dom.status.textContent = parts.join(" · ");
    this.dom.status.dataset.returned = String(c.returned);
  }

  // --- search ---

  updateMatches() {
    const { search, matchText, prevMatch, nextMatch } = this.dom;
    const q = search.value.trim();
    const n = this.timeline.setSearch(q);
    matchText.textContent = q ? `${formatNumber(n)} match${n === 1 ? "" : "es"} loaded` : "";
    prevMatch.disabled = nextMatch.disabled = !q || !n;
  }

  // --- details ---

  async showDetails(hit) {
    const seq = ++this.detailsSeq;
    const details = this.dom.details;
    if (!hit || hit.proc) {
      details.hidden = true;
      return;
    }
    const timeline = this.timeline;
    const m = timeline.layers[hit.layer].model;
    const proc = timeline.items.find((it) => it.kind === "proc" && it.pid === hit.item.pid);
    const shown = renderSliceDetails(details, {
      name: m.names[m.nameIdx[hit.index]],
      startUs: m.start[hit.index],
      durUs: m.dur[hit.index],
      process: proc ? proc.name : String(hit.item.pid),
      thread: hit.item.name,
      depth: hit.depth,
      onZoom: () => timeline.zoomToSelection(),
      // "Show in graph": the HLO op of a slice that names one (its hlo_op stat, or an XLA op's own name).
      linkFor: (args) => {
        const name = m.names[m.nameIdx[hit.index]];
        const op = args.hlo_op ? String(args.hlo_op).split("::").pop() : args.program_id !== undefined ? name : null;
        return graphLink(this.ctx.run, args.program_id, op);
      },
    });
    try {
      const event = await this.client.args(m.loadId, m.eventIdx[hit.index]);
      if (seq === this.detailsSeq) shown.setArgs((event && event.args) || {});
    } catch (err) {
      if (seq === this.detailsSeq) shown.setError(err);
    }
  }
}

/** The toolbar's search box, match buttons and zoom buttons, and "/" to search; returns an unbind function. */
function bindToolbar(view) {
  const { search, prevMatch, nextMatch, zoomIn, zoomOut, reset, canvas } = view.dom;
  const timeline = view.timeline;
  search.addEventListener("input", () => {
    view.restartTimer("search", () => {
      view.updateMatches();
      view.ctx.navigate({ q: search.value.trim() || null }, { replace: true });
    }, SEARCH_DELAY_MS);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(view.timers.search);
      view.updateMatches();
      timeline.nextMatch(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      search.value = "";
      view.updateMatches();
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
  return () => document.removeEventListener("keydown", onSlash);
}
