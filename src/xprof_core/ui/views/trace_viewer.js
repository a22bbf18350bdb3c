// trace_viewer: the timeline canvas, its toolbar (search, zoom), status, and slice details.
//
// A worker fetches and parses every answer (trace_worker.js via trace_client.js). The first answer
// covers the whole profile at one event per pixel (the base layer). As the user zooms in, the
// visible window plus a margin is fetched again with `resolution` = plot width × (fetched span /
// visible span), so the server's thinning keeps about one event per pixel at the current zoom
// (the detail layer).
//
// Every answer asks for XProf's derived lines (derived=1) and the launch arrows (flows=1). Search
// runs on the server over the whole profile (search=…): the match count is the profile's, and
// jumping to a match moves the view there, loads it, and selects the slice.
//
// The parts: buildTraceDom (the elements), TraceView (the loads and what they show: the base and
// detail layers, the status line, the tooltip), TraceSearch (matches from the server and the walk
// through them), and the toolbar's controls (bindToolbar, bindFilters). The root element says
// what the tests need: data-loads (answers shown), data-busy (a fetch due or running).

import { dataUrl } from "../api.js";
import { publish, withdraw } from "../debug.js";
import { h, replaceChildren } from "../dom.js";
import { formatBytes, formatDurationUs, formatNumber, formatTimeExactUs } from "../format.js";
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
const SEARCH_PAGE = 500; // matches asked for at a time
const MAX_DEFAULT_HOSTS = 4;
// What every trace answer includes besides the events: XProf's derived lines and launch arrows.
const TRACE_EXTRAS = { derived: 1, flows: 1 };

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
    flows: h("input", { type: "checkbox", checked: true, "aria-label": "Flow events" }),
    threadFilter: h("input", { type: "search", placeholder: "Filter threads…", "aria-label": "Filter threads" }),
    processList: h("div.filter-list"),
    tooltip: h("div.trace-tooltip", { hidden: true, role: "tooltip" }),
    status: h("div.trace-status", { role: "status" }),
    canvas: h("canvas", { tabindex: "0", role: "application", "aria-roledescription": "timeline",
      "aria-label": "Trace timeline. W/S zoom, A/D pan, arrow keys scroll, click a slice for details, Escape clears." }),
    overlay: h("div.trace-overlay", { hidden: true, role: "status", "aria-live": "polite" }),
    details: h("aside.panel.trace-details", { hidden: true, "aria-label": "Selected slice", tabindex: "-1" }),
  };
  dom.wrap = h("div.trace-canvas-wrap", {}, dom.canvas, dom.overlay, dom.tooltip);
  dom.filter = h("details.trace-filter", {}, h("summary", { text: "Processes" }), dom.processList);
  const hostNote = !ctx.hosts.length && hosts.length
    ? h("p.note", { text: `Showing host ${hosts[0]} of ${ctx.runHosts.length}; choose more in the Hosts menu.` }) : null;
  dom.root = h("section.view.fill.trace-view", { dataset: { view: "trace_viewer", loads: "0", busy: "1" } },
    h("div.trace-toolbar", {}, dom.search, dom.prevMatch, dom.nextMatch, dom.matchText, h("span.spacer"),
      dom.filter, dom.threadFilter, h("label.toggle", {}, dom.flows, " Flow events"),
      dom.zoomIn, dom.zoomOut, dom.reset),
    hostNote,
    dom.status,
    h("div.trace-body", {}, dom.wrap, dom.details),
    h("div.keys", {}, "Keys: ", h("kbd", { text: "W" }), "/", h("kbd", { text: "S" }), " zoom · ",
      h("kbd", { text: "A" }), "/", h("kbd", { text: "D" }), " pan · wheel scrolls rows, Ctrl/Alt+wheel zooms at the pointer,"
        + " Shift+wheel and drag pan · ",
      h("kbd", { text: "↑" }), h("kbd", { text: "↓" }), " scroll rows · ", h("kbd", { text: "F" }), " zoom to selection · ",
      h("kbd", { text: "0" }), " reset · click a process name to fold it · drag the labels' edge to widen them"));
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
      onHover: (hover, x, y) => this.showTooltip(hover, x, y),
    });
    this.search = new TraceSearch(this);
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
    bindFilters(this);
    const { start_ms: startMs, end_ms: endMs } = this.ctx.state;
    const s = Number(startMs);
    const e = Number(endMs);
    if (startMs !== undefined && endMs !== undefined && e > s) this.timeline.setView(s * 1000, e * 1000);
    else this.timeline.resetView();
    this.updateStatus();
    this.search.refresh();
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
      this.search.refresh();
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

  /** An absolute URL of this view's trace answer with `params` (the worker resolves no relative URL). */
  traceUrl(params) {
    return new URL(dataUrl(this.ctx.run, "trace_viewer", this.hosts, { ...params, ...TRACE_EXTRAS }), document.baseURI).href;
  }

  loadWindow(windowUs, resolution) {
    const params = { resolution };
    if (windowUs) {
      params.start_time_ms = (windowUs[0] / 1000).toFixed(6);
      params.end_time_ms = (windowUs[1] / 1000).toFixed(6);
    }
    return this.client.load(this.traceUrl(params), windowUs, windowUs ? "detail" : "base",
      (bytes) => this.showOverlay(windowUs, bytes));
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
      this.search.highlight();
      this.search.selectPending();
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

  // --- tooltip ---

  /** A slice under the pointer: its name and duration; a row label: its whole name. */
  showTooltip(hover, x, y) {
    const tip = this.dom.tooltip;
    if (!hover) {
      tip.hidden = true;
      return;
    }
    if (hover.hit) {
      const { layer, index } = hover.hit;
      const m = this.timeline.layers[layer].model;
      replaceChildren(tip, h("div.name", { text: m.labels[m.nameIdx[index]] }),
        h("div.muted", { text: `${formatDurationUs(m.dur[index])} · at ${formatTimeExactUs(m.start[index])}` }));
    } else replaceChildren(tip, hover.label);
    tip.hidden = false;
    const wrap = this.dom.wrap.getBoundingClientRect();
    const left = Math.min(x + 14, Math.max(0, wrap.width - tip.offsetWidth - 4));
    const top = y + 18 + tip.offsetHeight > wrap.height ? y - tip.offsetHeight - 8 : y + 18;
    tip.style.left = `${left}px`;
    tip.style.top = `${Math.max(0, top)}px`;
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
      name: m.labels[m.nameIdx[hit.index]],
      fullName: m.names[m.nameIdx[hit.index]],
      startUs: m.start[hit.index],
      durUs: m.dur[hit.index],
      process: proc ? proc.name : String(hit.item.pid),
      thread: hit.item.name,
      depth: hit.depth,
      onZoom: () => timeline.zoomToSelection(),
      // "Show in graph": the HLO op of a slice that names one (its hlo_op stat, or an XLA op's own name:
      // the op name, not the HLO text, for TPU ops).
      linkFor: (args) => {
        const name = m.labels[m.nameIdx[hit.index]];
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

/**
 * Whole-profile search: the server finds every event whose name contains the text (search=…) and
 * sends them in time order, a page at a time; Enter / Next walks through them. A match outside the
 * loaded layers is reached by moving the view there: the window loads, then the slice is selected.
 * Loaded matches are also highlighted on the canvas.
 */
class TraceSearch {
  constructor(view) {
    this.view = view;
    this.query = "";
    this.total = 0;
    this.matches = []; // {ts, dur, pid, tid, name}, time order
    this.more = false; // the server has more after the last page
    this.at = -1; // index of the match shown
    this.pending = null; // a match to select once its window is loaded
    this.seq = 0;
  }

  /** The search box changed (or the URL did): ask the server again. */
  async refresh() {
    const { search, matchText } = this.view.dom;
    const q = search.value.trim();
    const seq = ++this.seq;
    this.query = q;
    this.matches = [];
    this.total = 0;
    this.at = -1;
    this.pending = null;
    this.highlight();
    this.updateButtons();
    if (!q) {
      matchText.textContent = "";
      return;
    }
    matchText.textContent = "searching…";
    try {
      const page = await this.fetchPage(null);
      if (seq !== this.seq) return;
      this.total = page.total;
      this.matches = page.matches;
      this.more = page.after > page.returned;
    } catch (err) {
      if (seq === this.seq) matchText.textContent = `search failed: ${err.message}`;
      return;
    }
    this.showCount();
    this.updateButtons();
  }

  async fetchPage(fromUs) {
    const params = { search: this.query, search_limit: SEARCH_PAGE };
    if (fromUs !== null) params.search_from_ms = (fromUs / 1000).toFixed(6);
    return (await this.view.client.json(this.view.traceUrl(params))).search;
  }

  highlight() {
    this.view.timeline.setSearch(this.query);
  }

  showCount() {
    const { matchText } = this.view.dom;
    const n = this.total;
    const where = this.at >= 0 ? ` · ${formatNumber(this.at + 1)} of ${formatNumber(n)}` : "";
    matchText.textContent = `${formatNumber(n)} match${n === 1 ? "" : "es"} in the profile${where}`;
    matchText.dataset.total = String(n);
  }

  updateButtons() {
    const { prevMatch, nextMatch } = this.view.dom;
    prevMatch.disabled = nextMatch.disabled = !this.query || !this.total;
  }

  /** Go to the next (dir 1) or previous (dir -1) match, fetching the next page when needed. */
  async step(dir) {
    if (!this.total) return;
    let next = this.at + dir;
    if (next >= this.matches.length && this.more) {
      const seq = this.seq;
      const last = this.matches[this.matches.length - 1];
      const page = await this.fetchPage(last.ts);
      if (seq !== this.seq) return;
      // The page starts at the last match's time: skip what is already listed there.
      const seen = new Set(this.matches.filter((m) => m.ts === last.ts).map(matchKey));
      this.matches.push(...page.matches.filter((m) => !seen.has(matchKey(m))));
      this.more = page.after > page.returned;
    }
    if (next < 0 || next >= this.matches.length) next = dir > 0 ? 0 : this.matches.length - 1; // wrap around
    this.at = next;
    this.showCount();
    this.goTo(this.matches[next]);
  }

  /** Show a match: centre the view on it at a readable zoom, and select it once loaded. */
  goTo(match) {
    const timeline = this.view.timeline;
    const span = timeline.view[1] - timeline.view[0];
    const fits = match.dur <= span && (match.dur * timeline.plotWidth) / span >= 2;
    const newSpan = fits ? span : Math.max(match.dur * 40, 1);
    const centre = match.ts + match.dur / 2;
    this.pending = match;
    timeline.setView(centre - newSpan / 2, centre + newSpan / 2);
    this.selectPending();
  }

  /** Select the pending match if a loaded layer holds it. */
  selectPending() {
    const m = this.pending;
    if (!m) return;
    const timeline = this.view.timeline;
    const hit = timeline.findSliceAt(m.pid, m.tid, m.ts, m.dur, m.name);
    if (!hit) return;
    this.pending = null;
    timeline.select(hit);
    timeline.scrollTo(hit);
  }
}

function matchKey(m) {
  return `${m.ts}|${m.pid}|${m.tid}|${m.dur}|${m.name}`;
}

/** The toolbar's search box, match buttons, zoom buttons and flow toggle, and "/" to search; returns an unbind function. */
function bindToolbar(view) {
  const { search, prevMatch, nextMatch, zoomIn, zoomOut, reset, canvas, flows } = view.dom;
  const timeline = view.timeline;
  search.addEventListener("input", () => {
    view.restartTimer("search", () => {
      view.search.refresh();
      view.ctx.navigate({ q: search.value.trim() || null }, { replace: true });
    }, SEARCH_DELAY_MS);
  });
  search.addEventListener("keydown", async (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      if (view.timers.search) {
        clearTimeout(view.timers.search);
        view.timers.search = 0;
        await view.search.refresh();
      } else if (view.search.query !== search.value.trim()) await view.search.refresh();
      view.search.step(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      search.value = "";
      view.search.refresh();
      canvas.focus();
    }
  });
  nextMatch.addEventListener("click", () => view.search.step(1));
  prevMatch.addEventListener("click", () => view.search.step(-1));
  zoomIn.addEventListener("click", () => timeline.zoomBy(0.5));
  zoomOut.addEventListener("click", () => timeline.zoomBy(2));
  reset.addEventListener("click", () => timeline.resetView());
  flows.addEventListener("change", () => {
    timeline.showFlows = flows.checked;
    timeline.requestDraw();
  });
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

/** One checkbox per process and the thread-name filter, once the first answer names them. */
function bindFilters(view) {
  const { processList, threadFilter, filter } = view.dom;
  const timeline = view.timeline;
  const hidden = new Set();
  const boxes = timeline.processes.map((p) => {
    const box = h("input", { type: "checkbox", checked: true, value: String(p.pid) });
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(p.pid);
      else hidden.add(p.pid);
      timeline.setFilter({ hiddenPids: hidden });
      filter.querySelector("summary").textContent = hidden.size ? `Processes (${hidden.size} hidden)` : "Processes";
    });
    return h("label", { title: p.name }, box, ` ${p.name}`);
  });
  replaceChildren(processList, boxes);
  threadFilter.addEventListener("input", () => timeline.setFilter({ threadText: threadFilter.value }));
}
