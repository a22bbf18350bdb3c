// The trace timeline on one canvas: a time axis, one row per process thread (grouped under
// process headers), nested slices by depth, and flow arrows from host launches to device work.
// The wheel scrolls rows (a scrollbar shows where), Ctrl/Alt+wheel and W/S zoom at the pointer,
// Shift+wheel, A/D and drag pan; keys work wherever the page's focus is, unless typing in a field.
// Hovering a slice or a row label shows it in full; click a slice to select it; drag the label
// gutter's edge to resize it. Processes can be hidden and threads filtered by name.
//
// Drawing stays fast at any density:
//  * culling: only rows in view are visited, and a lane's slices in the time window are found
//    by binary search (lanes are sorted by start and their slices never overlap);
//  * coalescing: a slice narrower than a pixel starts a "run"; every slice starting in the same
//    pixel column is skipped with one binary search, and the run grows while the next slice is
//    also narrow and touches it; one rectangle is drawn per run, so work is bounded by pixels,
//    not by slices;
//  * batching: rectangles are collected per colour into flat arrays and filled with one path
//    per colour; labels are drawn last in one font and colour, truncated by an estimated width.
//
// Data comes as layers (see trace_model.js): a base layer covering the whole profile and an
// optional detail layer for the zoomed window; the base is drawn only outside the detail's window.

import { lowerBound } from "./trace_model.js";
import { formatDurationUs } from "./format.js";

const DEFAULT_GUTTER = 220; // px of row labels at the left (the user can drag its edge)
const MIN_GUTTER = 80;
const GUTTER_GRAB = 4; // px either side of the gutter's edge that grab it
const AXIS = 24; // px of time axis at the top
const LANE_H = 16; // px per nesting level
const ROW_PAD = 3; // px above and below a thread's lanes
const PROC_H = 20; // px of a process header
const LABEL_MIN_PX = 36; // narrower slices get no label
const MIN_SPAN_US = 1e-3; // 1 ns
const PALETTE = ["#8fb8e8", "#f5b58c", "#a5d6a7", "#e6a5c7", "#c5b3e6", "#f2d58a", "#90d4d0", "#e8a39b",
  "#b7c98a", "#d4b996", "#9fc3d8", "#e0b0e0", "#c2d68f", "#f0c08c", "#a0b9e0", "#d9a6a6", "#9ed1b8",
  "#d6c18f", "#b5a8d9", "#e3b98a"];
const MATCH = PALETTE.length; // colour slot of search matches
const DIM = PALETTE.length + 1; // colour slot of non-matches while searching
const COLORS = [...PALETTE, "#ff6d00", "#dfe2e6"];
const TEXT = "#1f2328";

/** A stable palette index for a name (FNV-1a hash). */
export function colorIndex(name) {
  let x = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    x ^= name.charCodeAt(i);
    x = Math.imul(x, 0x01000193);
  }
  return (x >>> 0) % PALETTE.length;
}

/** Rectangles of one colour: a growable flat Float32Array of x, y, w, h. */
class RectBatch {
  constructor() {
    this.data = new Float32Array(4096);
    this.n = 0;
  }

  /** Add a rectangle snapped to whole CSS pixels: aligned rectangles fill without anti-aliased edges. */
  push(x, y, w, h) {
    const x0 = Math.floor(x);
    w = Math.max(1, Math.round(x + w) - x0);
    x = x0;
    if (this.n + 4 > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    const d = this.data;
    d[this.n] = x;
    d[this.n + 1] = y;
    d[this.n + 2] = w;
    d[this.n + 3] = h;
    this.n += 4;
  }
}

export class Timeline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} hooks onViewChange(startUs, endUs), onSelect(hit|null), onResize(widthPx), onDraw(stats)
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.hooks = hooks;
    this.layers = []; // {model, clip: [a, b] | null, color: Uint8Array, match: Uint8Array|null}
    this.fullSpan = [0, 1];
    this.view = [0, 1];
    this.scrollY = 0;
    this.items = []; // layout, top to bottom: {kind: "proc"|"thread", pid, tid, name, y, h, depths, lanes, laneDepths}
    this.totalHeight = 0;
    this.collapsed = new Set();
    this.selected = null; // {layer, index, item, depth}
    this.searchText = "";
    this.batches = COLORS.map(() => new RectBatch());
    this.labels = [];
    this.width = 0;
    this.height = 0;
    this.frameTimes = [];
    this.lastFrame = null;
    this.held = new Set();
    this.pointer = null;
    this.mouseX = null;
    this.pending = 0; // requestAnimationFrame id of the next draw
    this.keyLoop = 0; // requestAnimationFrame id of the W/A/S/D animation
    this.charWidth = 6.2;
    this.listeners = [];
    this.gutter = DEFAULT_GUTTER;
    this.hiddenPids = new Set(); // processes the user hid
    this.threadFilter = ""; // lower-cased text thread names must contain
    this.showFlows = true;
    this.hover = null; // what the pointer is over: {hit} | {label} | null
    this.listen(canvas, "wheel", (e) => this.onWheel(e), { passive: false });
    this.listen(canvas, "pointerdown", (e) => this.onPointerDown(e));
    this.listen(canvas, "pointermove", (e) => this.onPointerMove(e));
    this.listen(canvas, "pointerup", (e) => this.onPointerUp(e));
    this.listen(canvas, "pointercancel", () => { this.pointer = null; canvas.classList.remove("dragging"); });
    this.listen(canvas, "pointerleave", () => {
      this.mouseX = null;
      this.setHover(null);
    });
    // Keys reach the timeline from anywhere on the page but form fields (no click needed first).
    this.listen(document, "keydown", (e) => {
      if (!isTyping(e.target)) this.onKeyDown(e);
    });
    this.listen(document, "keyup", (e) => this.held.delete(e.key.toLowerCase()));
    this.listen(window, "blur", () => this.held.clear());
    this.scrollbar = new Scrollbar(canvas.parentElement || canvas, (y) => {
      this.scrollY = y;
      this.clampScroll();
      this.requestDraw();
    });
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(canvas.parentElement || canvas);
    this.resize();
  }

  listen(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this.listeners.push([target, type, fn, options]);
  }

  destroy() {
    for (const [t, type, fn, options] of this.listeners) t.removeEventListener(type, fn, options);
    this.scrollbar.destroy();
    this.resizeObserver.disconnect();
    if (this.pending) cancelAnimationFrame(this.pending);
    if (this.keyLoop) cancelAnimationFrame(this.keyLoop);
    this.held.clear();
  }

  // --- data ---

  /** Width in CSS px of the time area (what a window's `resolution` should be). */
  get plotWidth() {
    return Math.max(1, this.width - this.gutter);
  }

  /**
   * Set the base layer (whole profile) and the optional detail layer (a window).
   * The base's full span becomes the zoom-out limit.
   */
  setLayers(base, detail = null) {
    const layer = (model, clip) => {
      if (!model) return null;
      const color = new Uint8Array(model.names.length);
      model.labels.forEach((label, i) => { color[i] = colorIndex(label); });
      return { model, clip, color, match: null };
    };
    const old = this.layers;
    this.layers = [layer(base, null), layer(detail, detail && detail.windowUs)].filter(Boolean);
    if (base) this.fullSpan = base.fullSpanUs;
    this.applySearch();
    this.layout();
    // Keep the selection when the same slice is present again (matched by start, duration and name).
    if (this.selected) {
      const s = this.selected;
      const m = old[s.layer] && old[s.layer].model;
      this.selected = m ? this.findSlice(m.start[s.index], m.dur[s.index], m.names[m.nameIdx[s.index]], s.item.key, s.depth)
        : null;
    }
    this.requestDraw();
  }

  layout() {
    const procs = new Map();
    const threads = new Map();
    this.layers.forEach((layer, li) => {
      for (const p of layer.model.processes) if (!procs.has(p.pid)) procs.set(p.pid, p);
      for (const r of layer.model.rows) {
        const key = `${r.pid}:${r.tid}`;
        let t = threads.get(key);
        if (!t) {
          // lanes[li] / laneDepths[li]: the row's first lane and its number of depths in layer li.
          t = { kind: "thread", key, pid: r.pid, tid: r.tid, name: r.name, sortIndex: r.sortIndex, depths: 0,
            lanes: [], laneDepths: [] };
          threads.set(key, t);
        }
        t.lanes[li] = r.lane0;
        t.laneDepths[li] = r.depths;
        t.depths = Math.max(t.depths, r.depths);
      }
    });
    const byPid = new Map();
    for (const t of threads.values()) {
      if (this.hiddenPids.has(t.pid)) continue;
      if (this.threadFilter && !t.name.toLowerCase().includes(this.threadFilter)) continue;
      if (!byPid.has(t.pid)) byPid.set(t.pid, []);
      byPid.get(t.pid).push(t);
    }
    this.processes = [...procs.values()].sort((a, b) => a.sortIndex - b.sortIndex || a.pid - b.pid);
    const pids = [...byPid.keys()].sort((a, b) => {
      const pa = procs.get(a) || { sortIndex: a };
      const pb = procs.get(b) || { sortIndex: b };
      return pa.sortIndex - pb.sortIndex || a - b;
    });
    const items = [];
    let y = 0;
    for (const pid of pids) {
      const p = procs.get(pid) || { name: `pid ${pid}` };
      const list = byPid.get(pid).sort((a, b) => a.sortIndex - b.sortIndex || a.tid - b.tid);
      items.push({ kind: "proc", pid, name: p.name, host: p.host, plane: p.plane, y, h: PROC_H, count: list.length });
      y += PROC_H;
      if (this.collapsed.has(pid)) continue;
      for (const t of list) {
        t.y = y;
        t.h = Math.max(1, t.depths) * LANE_H + 2 * ROW_PAD;
        items.push(t);
        y += t.h;
      }
    }
    this.items = items;
    this.totalHeight = y;
    this.itemByKey = new Map(items.filter((it) => it.kind === "thread").map((it) => [it.key, it]));
    this.clampScroll();
  }

  /** Hide or show processes and keep the threads whose name contains `text` (case-insensitive). */
  setFilter({ hiddenPids = this.hiddenPids, threadText = this.threadFilter } = {}) {
    this.hiddenPids = new Set(hiddenPids);
    this.threadFilter = (threadText || "").trim().toLowerCase();
    this.layout();
    if (this.selected && !this.items.includes(this.selected.item)) this.select(null);
    this.requestDraw();
  }

  /** What is drawn for slice `index` of layer `li`: the op name of HLO text, else the name. */
  labelOf(li, index) {
    const m = this.layers[li].model;
    return m.labels[m.nameIdx[index]];
  }

  // --- search ---

  /** Highlight slices whose name contains `text` (case-insensitive); returns the matches loaded. */
  setSearch(text) {
    this.searchText = (text || "").trim().toLowerCase();
    const count = this.applySearch();
    this.requestDraw();
    return count;
  }

  applySearch() {
    let count = 0;
    for (const layer of this.layers) {
      if (!this.searchText) {
        layer.match = null;
        continue;
      }
      const names = layer.model.names;
      const match = new Uint8Array(names.length);
      for (let i = 0; i < names.length; i++) match[i] = names[i].toLowerCase().includes(this.searchText) ? 1 : 0;
      layer.match = match;
      const ni = layer.model.nameIdx;
      for (let k = 0; k < ni.length; k++) count += match[ni[k]];
    }
    this.matchCount = count;
    return count;
  }

  /**
   * The next (dir 1) or previous (dir -1) search match after the selection or the view's
   * start, across rows; selects it and centres the view on it. Returns the hit or null.
   */
  nextMatch(dir = 1) {
    if (!this.searchText) return null;
    const from = this.selected ? this.sliceStart(this.selected) : this.view[0];
    let best = null;
    this.layers.forEach((layer, li) => {
      if (!layer.match) return;
      const m = layer.model;
      for (let k = 0; k < m.start.length; k++) {
        if (!layer.match[m.nameIdx[k]]) continue;
        const t = m.start[k];
        if (!this.inClip(layer, t)) continue;
        const after = dir > 0 ? t > from || (t === from && this.isAfterSelected(li, k)) : t < from;
        if (!after) continue;
        if (!best || (dir > 0 ? t < best.t : t > best.t)) best = { t, layer: li, index: k };
      }
    });
    if (!best) return null;
    const hit = this.hitFor(best.layer, best.index);
    this.select(hit);
    const span = this.view[1] - this.view[0];
    const d = this.layers[best.layer].model.dur[best.index];
    // Show the match at a readable size: zoom out if it is wider than the view, in if it is a sliver.
    let newSpan = span;
    if (d > span) newSpan = d * 1.5;
    else if ((d * this.plotWidth) / span < 2) newSpan = Math.max(d * 40, MIN_SPAN_US * 50);
    this.setView(best.t + d / 2 - newSpan / 2, best.t + d / 2 + newSpan / 2);
    this.scrollTo(hit);
    return hit;
  }

  isAfterSelected(li, k) {
    return !this.selected || li !== this.selected.layer || k > this.selected.index;
  }

  inClip(layer, t) {
    if (layer.clip) return t >= layer.clip[0] && t <= layer.clip[1];
    const detail = this.layers.find((l) => l.clip);
    return !detail || t < detail.clip[0] || t > detail.clip[1];
  }

  // --- view ---

  setView(startUs, endUs, notify = true) {
    const full = this.fullSpan;
    const fullSpan = Math.max(MIN_SPAN_US, full[1] - full[0]);
    let span = Math.min(Math.max(endUs - startUs, MIN_SPAN_US), fullSpan * 1.2);
    if (!(span > 0)) span = fullSpan; // NaN from a bad URL
    let s = startUs + (endUs - startUs - span) / 2;
    if (!Number.isFinite(s)) s = full[0];
    // Keep some of the profile in view.
    const margin = span * 0.45;
    s = Math.min(Math.max(s, full[0] - margin), full[1] - span + margin);
    const changed = s !== this.view[0] || s + span !== this.view[1];
    this.view = [s, s + span];
    this.requestDraw();
    if (changed && notify && this.hooks.onViewChange) this.hooks.onViewChange(this.view[0], this.view[1]);
  }

  resetView() {
    const [a, b] = this.fullSpan;
    const pad = (b - a) * 0.01;
    this.setView(a - pad, b + pad);
  }

  /** Zoom by `factor` (< 1 zooms in) keeping the time under x (CSS px) in place. */
  zoomAt(x, factor) {
    const [s, e] = this.view;
    const px = Math.min(Math.max(x - this.gutter, 0), this.plotWidth);
    const t = s + ((e - s) * px) / this.plotWidth;
    const span = (e - s) * factor;
    this.setView(t - (span * px) / this.plotWidth, t - (span * px) / this.plotWidth + span);
  }

  /** Zoom by `factor` around the middle of the plot. */
  zoomBy(factor) {
    this.zoomAt(this.gutter + this.plotWidth / 2, factor);
  }

  panByPx(dx) {
    const [s, e] = this.view;
    const dt = ((e - s) * dx) / this.plotWidth;
    this.setView(s + dt, e + dt);
  }

  scrollBy(dy) {
    this.scrollY += dy;
    this.clampScroll();
    this.requestDraw();
  }

  clampScroll() {
    const max = Math.max(0, this.totalHeight - (this.height - AXIS));
    this.scrollY = Math.round(Math.min(Math.max(0, this.scrollY), max));
  }

  scrollTo(hit) {
    if (!hit) return;
    const top = hit.item.y + ROW_PAD + hit.depth * LANE_H;
    const visible = this.height - AXIS;
    if (top < this.scrollY || top + LANE_H > this.scrollY + visible) this.scrollY = top - visible / 3;
    this.clampScroll();
    this.requestDraw();
  }

  resize() {
    const box = (this.canvas.parentElement || this.canvas).getBoundingClientRect();
    const w = Math.max(this.gutter + 50, Math.floor(box.width));
    const h = Math.max(AXIS + 40, Math.floor(box.height));
    const dpr = window.devicePixelRatio || 1;
    if (w === this.width && h === this.height && this.dpr === dpr) return;
    this.width = w;
    this.height = h;
    this.dpr = dpr;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.ctx.font = "11px system-ui, sans-serif";
    this.charWidth = this.ctx.measureText("abcdefghijklmnopqrstuvwxyz_0123456789").width / 37 || 6.2;
    this.clampScroll();
    this.drawNow();
    if (this.hooks.onResize) this.hooks.onResize(w);
  }

  // --- selection ---

  select(hit) {
    this.selected = hit;
    this.requestDraw();
    if (this.hooks.onSelect) this.hooks.onSelect(hit);
  }

  sliceStart(hit) {
    return this.layers[hit.layer].model.start[hit.index];
  }

  hitFor(li, index) {
    const m = this.layers[li].model;
    // Find the lane holding `index`: lanes are contiguous ranges of laneBegin.
    const lane = upperBoundInt(m.laneBegin, index) - 1;
    for (const item of this.items) {
      if (item.kind !== "thread" || item.lanes[li] === undefined) continue;
      const d = lane - item.lanes[li];
      if (d >= 0 && d < item.laneDepths[li]) return { layer: li, index, item, depth: d };
    }
    return { layer: li, index, item: this.items[0], depth: 0 };
  }

  /** The canvas point (CSS px) in the middle of a slice's visible part, or null when it is out of view. */
  pointOf(li, index) {
    const hit = this.hitFor(li, index);
    const m = this.layers[li].model;
    const [vs, ve] = this.view;
    const k = this.plotWidth / (ve - vs);
    const x0 = Math.max(this.gutter, this.gutter + (m.start[index] - vs) * k);
    const x1 = Math.min(this.width, this.gutter + (m.start[index] + m.dur[index] - vs) * k);
    const y = AXIS + hit.item.y - this.scrollY + ROW_PAD + hit.depth * LANE_H + LANE_H / 2;
    if (x1 < x0 || y < AXIS || y > this.height || this.collapsed.has(hit.item.pid)) return null;
    return { x: (x0 + x1) / 2, y };
  }

  findSlice(startUs, durUs, name, key, depth) {
    for (let li = 0; li < this.layers.length; li++) {
      const m = this.layers[li].model;
      const item = this.items.find((it) => it.key === key);
      if (!item || item.lanes[li] === undefined || depth >= item.laneDepths[li]) continue;
      const lane = item.lanes[li] + depth;
      const k = lowerBound(m.start, startUs, m.laneBegin[lane], m.laneBegin[lane + 1]);
      if (k < m.laneBegin[lane + 1] && m.start[k] === startUs && m.dur[k] === durUs && m.names[m.nameIdx[k]] === name) {
        return { layer: li, index: k, item, depth };
      }
    }
    return null;
  }

  /** The slice under canvas point (x, y) in CSS px, or a process header, or null. */
  hitTest(x, y) {
    if (y < AXIS) return null;
    const yy = y - AXIS + this.scrollY;
    let lo = 0;
    let hi = this.items.length - 1;
    let found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const it = this.items[mid];
      if (yy < it.y) hi = mid - 1;
      else if (yy >= it.y + it.h) lo = mid + 1;
      else {
        found = it;
        break;
      }
    }
    if (!found) return null;
    if (found.kind === "proc") return { proc: found };
    if (x < this.gutter) return null;
    const depth = Math.floor((yy - found.y - ROW_PAD) / LANE_H);
    if (depth < 0 || depth >= found.depths) return null;
    const [s, e] = this.view;
    const k = this.plotWidth / (e - s);
    const t = s + (x - this.gutter) / k;
    const tol = 3 / k; // a few pixels, so slivers can be clicked
    for (let li = this.layers.length - 1; li >= 0; li--) {
      const layer = this.layers[li];
      if (!this.inClip(layer, t)) continue;
      if (found.lanes[li] === undefined || depth >= found.laneDepths[li]) continue;
      const m = layer.model;
      const lane = found.lanes[li] + depth;
      const b = m.laneBegin[lane];
      const en = m.laneBegin[lane + 1];
      const i = lowerBound(m.start, t + tol, b, en) - 1;
      // Candidates: the last slice starting before t + tol, and its predecessor.
      let best = -1;
      let bestDist = Infinity;
      for (let j = Math.max(b, i - 1); j <= i; j++) {
        const dist = t < m.start[j] ? m.start[j] - t : t > m.start[j] + m.dur[j] ? t - m.start[j] - m.dur[j] : 0;
        if (dist <= tol && dist < bestDist) {
          best = j;
          bestDist = dist;
        }
      }
      if (best >= 0) return { layer: li, index: best, item: found, depth };
    }
    return null;
  }

  // --- input ---

  /** Wheel: rows scroll; Ctrl/Alt/Meta+wheel zooms at the pointer; Shift+wheel or a sideways wheel pans. */
  onWheel(e) {
    e.preventDefault();
    const scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.height : 1;
    const dx = e.deltaX * scale;
    const dy = e.deltaY * scale;
    if (e.ctrlKey || e.altKey || e.metaKey) this.zoomAt(e.offsetX, Math.exp((dy || dx) * 0.0015));
    else if (e.shiftKey) this.panByPx(dy || dx);
    else {
      if (dx) this.panByPx(dx);
      if (dy) this.scrollBy(dy);
    }
  }

  onPointerDown(e) {
    if (e.button !== 0) return;
    this.canvas.focus({ preventScroll: true });
    const onEdge = Math.abs(e.offsetX - this.gutter) <= GUTTER_GRAB && e.offsetY > AXIS;
    this.pointer = { id: e.pointerId, x0: e.offsetX, y0: e.offsetY, x: e.offsetX, y: e.offsetY, moved: false,
      gutter: onEdge ? this.gutter : null };
    this.canvas.setPointerCapture(e.pointerId);
  }

  onPointerMove(e) {
    this.mouseX = e.offsetX;
    const p = this.pointer;
    if (!p || p.id !== e.pointerId) {
      this.canvas.classList.toggle("resize-gutter", Math.abs(e.offsetX - this.gutter) <= GUTTER_GRAB && e.offsetY > AXIS);
      this.setHover(this.hoverAt(e.offsetX, e.offsetY), e.offsetX, e.offsetY);
      return;
    }
    if (p.gutter !== null) {
      this.setGutter(p.gutter + e.offsetX - p.x0);
      return;
    }
    // A press that moves less than 4 px is a click; past that, the whole movement pans.
    if (!p.moved) {
      if (Math.hypot(e.offsetX - p.x0, e.offsetY - p.y0) < 4) return;
      p.moved = true;
      this.canvas.classList.add("dragging");
    }
    const dx = e.offsetX - p.x;
    const dy = e.offsetY - p.y;
    p.x = e.offsetX;
    p.y = e.offsetY;
    if (dx) this.panByPx(-dx);
    if (dy) this.scrollBy(-dy);
  }

  onPointerUp(e) {
    const p = this.pointer;
    if (!p || p.id !== e.pointerId) return;
    this.pointer = null;
    this.canvas.classList.remove("dragging");
    if (p.moved || p.gutter !== null) return;
    const hit = this.hitTest(e.offsetX, e.offsetY);
    if (hit && hit.proc) this.toggleProcess(hit.proc.pid);
    else this.select(hit);
  }

  toggleProcess(pid) {
    if (this.collapsed.has(pid)) this.collapsed.delete(pid);
    else this.collapsed.add(pid);
    this.layout();
    if (this.selected && this.collapsed.has(this.selected.item.pid)) this.select(null);
    this.requestDraw();
  }

  /** Resize the label gutter to `px` (within bounds); the plot keeps the same time span. */
  setGutter(px) {
    const g = Math.round(Math.min(Math.max(px, MIN_GUTTER), Math.max(MIN_GUTTER, this.width - 100)));
    if (g === this.gutter) return;
    this.gutter = g;
    this.requestDraw();
    if (this.hooks.onResize) this.hooks.onResize(this.width);
  }

  /** What the pointer is over: a slice ({hit}), a row or process label ({label, item}), or null. */
  hoverAt(x, y) {
    if (y < AXIS) return null;
    if (x < this.gutter - GUTTER_GRAB) {
      const yy = y - AXIS + this.scrollY;
      const item = this.items.find((it) => yy >= it.y && yy < it.y + it.h);
      return item ? { label: item.kind === "proc" ? this.headerText(item) : item.name, item } : null;
    }
    const hit = this.hitTest(x, y);
    return hit && !hit.proc ? { hit } : null;
  }

  setHover(hover, x = 0, y = 0) {
    this.hover = hover;
    if (this.hooks.onHover) this.hooks.onHover(hover, x, y);
  }

  /** A process header as drawn: "GPU:4 · host" when hosts are told apart, else the plane's name. */
  headerText(item) {
    if (!item.host) return item.name;
    return `${(item.plane || item.name).replace(/^\/(device|host):/, "")} · ${item.host}`;
  }

  /** The slice of thread (pid, tid) that starts at `startUs` with duration `durUs` and name `name`, at any depth. */
  findSliceAt(pid, tid, startUs, durUs, name) {
    const item = this.itemByKey && this.itemByKey.get(`${pid}:${tid}`);
    if (!item) return null;
    for (let li = this.layers.length - 1; li >= 0; li--) {
      const m = this.layers[li].model;
      if (item.lanes[li] === undefined) continue;
      for (let d = 0; d < item.laneDepths[li]; d++) {
        const lane = item.lanes[li] + d;
        const end = m.laneBegin[lane + 1];
        for (let k = lowerBound(m.start, startUs - 1e-7, m.laneBegin[lane], end); k < end && m.start[k] <= startUs + 1e-7; k++) {
          if (Math.abs(m.dur[k] - durUs) < 1e-7 && m.names[m.nameIdx[k]] === name) return { layer: li, index: k, item, depth: d };
        }
      }
    }
    return null;
  }

  onKeyDown(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if ("wasd".includes(key) && key.length === 1) {
      e.preventDefault();
      if (!this.held.has(key)) {
        this.held.add(key);
        this.step(key, 1 / 12); // respond at once; the animation takes over while the key is held
        this.animateKeys();
      }
      return;
    }
    const handled = {
      arrowleft: () => this.panByPx(-this.plotWidth / 10),
      arrowright: () => this.panByPx(this.plotWidth / 10),
      arrowup: () => this.scrollBy(-LANE_H * 3),
      arrowdown: () => this.scrollBy(LANE_H * 3),
      pageup: () => this.scrollBy(-(this.height - AXIS) * 0.9),
      pagedown: () => this.scrollBy((this.height - AXIS) * 0.9),
      home: () => this.resetView(),
      0: () => this.resetView(),
      escape: () => this.select(null),
      f: () => this.zoomToSelection(),
    }[key];
    if (handled) {
      e.preventDefault();
      handled();
    }
  }

  /** One step of W/A/S/D, `frac` of a second's worth of motion. */
  step(key, frac) {
    const x = this.mouseX ?? this.gutter + this.plotWidth / 2;
    if (key === "w") this.zoomAt(x, Math.pow(0.15, frac));
    else if (key === "s") this.zoomAt(x, Math.pow(1 / 0.15, frac));
    else if (key === "a") this.panByPx(-this.plotWidth * 0.8 * frac);
    else if (key === "d") this.panByPx(this.plotWidth * 0.8 * frac);
  }

  animateKeys() {
    if (this.keyLoop) return;
    let last = performance.now();
    const tick = (now) => {
      if (!this.held.size) {
        this.keyLoop = 0;
        return;
      }
      const frac = Math.min(0.1, (now - last) / 1000);
      last = now;
      for (const key of this.held) this.step(key, frac);
      this.keyLoop = requestAnimationFrame(tick);
    };
    this.keyLoop = requestAnimationFrame(tick);
  }

  zoomToSelection() {
    if (!this.selected) return;
    const m = this.layers[this.selected.layer].model;
    const s = m.start[this.selected.index];
    const d = Math.max(m.dur[this.selected.index], MIN_SPAN_US);
    this.setView(s - d * 0.25, s + d * 1.25);
  }

  // --- drawing ---

  requestDraw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.drawNow();
    });
  }

  /** Draw a frame now; returns its statistics (also kept in lastFrame and frameTimes). */
  drawNow() {
    const t0 = performance.now();
    const ctx = this.ctx;
    const W = this.width;
    const H = this.height;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, H);
    const [vs, ve] = this.view;
    const k = this.plotWidth / (ve - vs);
    const stats = { rects: 0, labels: 0, visited: 0, visible: 0, lanes: 0, arrows: 0, headers: [], axisLabels: [] };
    for (const b of this.batches) b.n = 0;
    this.labels.length = 0;

    // Visible items by binary search on y.
    const top = this.scrollY;
    const bottom = this.scrollY + H - AXIS;
    let first = 0;
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].y + this.items[mid].h <= top) {
        first = mid + 1;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const detail = this.layers.find((l) => l.clip);
    // Row backgrounds and the gutter.
    for (let i = first; i < this.items.length && this.items[i].y < bottom; i++) {
      const it = this.items[i];
      const y = AXIS + it.y - this.scrollY;
      if (it.kind === "proc") {
        ctx.fillStyle = "#eef1f5";
        ctx.fillRect(0, y, W, it.h);
      } else if (i % 2) {
        ctx.fillStyle = "#fafbfc";
        ctx.fillRect(this.gutter, y, W - this.gutter, it.h);
      }
    }
    // Slices, clipped to the plot area.
    ctx.save();
    ctx.beginPath();
    ctx.rect(this.gutter, AXIS, W - this.gutter, H - AXIS);
    ctx.clip();
    for (let i = first; i < this.items.length && this.items[i].y < bottom; i++) {
      const it = this.items[i];
      if (it.kind !== "thread") continue;
      const rowTop = AXIS + it.y - this.scrollY + ROW_PAD;
      this.layers.forEach((layer, li) => {
        if (it.lanes[li] === undefined) return;
        const ranges = layer.clip ? [[Math.max(vs, layer.clip[0]), Math.min(ve, layer.clip[1])]]
          : detail ? [[vs, Math.min(ve, detail.clip[0])], [Math.max(vs, detail.clip[1]), ve]] : [[vs, ve]];
        for (let d = 0; d < it.laneDepths[li]; d++) {
          const y = rowTop + d * LANE_H;
          if (y + LANE_H < AXIS || y > H) continue;
          for (const [a, b] of ranges) if (b > a) this.drawLane(layer, it.lanes[li] + d, a, b, y, k, stats);
        }
      });
    }
    // Fill each colour with one path.
    for (let c = 0; c < this.batches.length; c++) {
      const batch = this.batches[c];
      if (!batch.n) continue;
      ctx.fillStyle = COLORS[c];
      const d = batch.data;
      ctx.beginPath();
      for (let j = 0; j < batch.n; j += 4) ctx.rect(d[j], d[j + 1], d[j + 2], d[j + 3]);
      ctx.fill();
      stats.rects += batch.n / 4;
    }
    // Labels in one font and colour.
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = TEXT;
    ctx.textBaseline = "middle";
    const cw = this.charWidth;
    for (const [x, y, w, text] of this.labels) {
      const fit = Math.floor((w - 6) / cw);
      if (fit < 3) continue;
      ctx.fillText(text.length > fit ? `${text.slice(0, fit - 1)}…` : text, x + 3, y + LANE_H / 2);
      stats.labels++;
    }
    this.drawSelection(ctx, vs, k);
    if (detail) this.drawWindowEdges(ctx, detail.clip, vs, k);
    if (this.showFlows) this.drawFlows(ctx, vs, k, stats);
    ctx.restore();
    this.drawGutter(ctx, first, bottom, stats);
    this.drawAxis(ctx, vs, ve, k, stats);
    this.scrollbar.update(this.scrollY, this.totalHeight, H - AXIS, AXIS);
    const ms = performance.now() - t0;
    stats.ms = ms;
    this.lastFrame = stats;
    this.frameTimes.push(ms);
    if (this.frameTimes.length > 600) this.frameTimes.splice(0, this.frameTimes.length - 600);
    if (this.hooks.onDraw) this.hooks.onDraw(stats);
    return stats;
  }

  /** Collect the rectangles (and labels) of one lane between times a and b. */
  drawLane(layer, lane, a, b, y, k, stats) {
    const m = layer.model;
    const starts = m.start;
    const durs = m.dur;
    const names = m.nameIdx;
    const hiIdx = m.laneBegin[lane + 1];
    // Slices of a lane never overlap, so their ends are sorted too: binary search both edges.
    let i = lowerBoundEnd(starts, durs, a, m.laneBegin[lane], hiIdx);
    const x0Plot = this.gutter;
    const X = (t) => x0Plot + (t - this.view[0]) * k;
    const T = (x) => this.view[0] + (x - x0Plot) / k;
    const match = layer.match;
    const colorOf = layer.color;
    const batches = this.batches;
    const h = LANE_H - 1;
    stats.lanes++;
    stats.visible += lowerBound(starts, b, i, hiIdx) - i;
    while (i < hiIdx) {
      const s = starts[i];
      if (s > b) break;
      const e = s + durs[i];
      stats.visited++;
      if (e < a) {
        i++;
        continue;
      }
      const x0 = X(s < a ? a : s);
      const x1 = X(e > b ? b : e);
      if (x1 - x0 >= 1) {
        const c = match ? (match[names[i]] ? MATCH : DIM) : colorOf[names[i]];
        batches[c].push(x0, y, x1 - x0, h);
        if (x1 - x0 >= LABEL_MIN_PX) {
          const lx = Math.max(x0, x0Plot);
          this.labels.push([lx, y, x1 - lx, m.labels[names[i]]]);
        }
        i++;
        continue;
      }
      // A run of sub-pixel slices: skip everything starting in this pixel column at once,
      // and keep going while the next slice is narrow and touches the run.
      let runEnd = x1;
      let hit = match ? match[names[i]] : 0;
      const c0 = colorOf[names[i]];
      let j = i;
      for (;;) {
        const px = Math.floor(X(starts[j]));
        // Every slice paints at least the pixel column it starts in, even when it ends early in it.
        if (px + 1 > runEnd) runEnd = px + 1;
        let next = lowerBound(starts, T(px + 1), j + 1, hiIdx);
        let last = next - 1;
        if (last > j) {
          // The last slice starting in this column may be wide: leave it to be drawn on its own.
          const ls = starts[last];
          const le = ls + durs[last];
          if (X(le > b ? b : le) - X(ls) >= 1) {
            next = last;
            last -= 1;
          }
        }
        if (last > j) {
          const le = starts[last] + durs[last];
          const xe = X(le > b ? b : le);
          if (xe > runEnd) runEnd = xe;
          if (match && !hit) for (let q = j + 1; q <= last && !hit; q++) hit = match[names[q]];
          stats.visited += last - j;
        }
        j = next;
        if (j >= hiIdx) break;
        const sj = starts[j];
        if (sj > b) break;
        const xs = X(sj);
        if (xs > runEnd + 1) break;
        const ej = sj + durs[j];
        if (X(ej > b ? b : ej) - xs >= 1) break; // a wide slice: draw it on its own
        const xe = X(ej > b ? b : ej);
        if (xe > runEnd) runEnd = xe;
        if (match && !hit) hit = match[names[j]];
        stats.visited++;
      }
      const c = match ? (hit ? MATCH : DIM) : c0;
      batches[c].push(x0, y, Math.max(1, runEnd - x0), h);
      i = j;
    }
  }

  drawSelection(ctx, vs, k) {
    const sel = this.selected;
    if (!sel || this.collapsed.has(sel.item.pid)) return;
    const m = this.layers[sel.layer] && this.layers[sel.layer].model;
    if (!m) return;
    const x0 = this.gutter + (m.start[sel.index] - vs) * k;
    const w = Math.max(2, m.dur[sel.index] * k);
    const y = AXIS + sel.item.y - this.scrollY + ROW_PAD + sel.depth * LANE_H;
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 2;
    ctx.strokeRect(Math.max(x0, this.gutter - 4), y, Math.min(w, this.width + 8), LANE_H - 1);
  }

  drawWindowEdges(ctx, clip, vs, k) {
    // Thin dashed lines where the detailed window ends, so the coarser base outside is recognisable.
    ctx.strokeStyle = "rgba(26,115,232,0.35)";
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    for (const t of clip) {
      const x = Math.round(this.gutter + (t - vs) * k) + 0.5;
      if (x > this.gutter && x < this.width) {
        ctx.moveTo(x, AXIS);
        ctx.lineTo(x, this.height);
      }
    }
    ctx.stroke();
    ctx.setLineDash([]);
  }

  /** Arrows from each launch to the device event it started (the model's flows), where both rows are shown. */
  drawFlows(ctx, vs, k, stats) {
    const W = this.width;
    const H = this.height;
    ctx.strokeStyle = "rgba(80, 80, 80, 0.75)";
    ctx.fillStyle = "rgba(80, 80, 80, 0.75)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    const heads = [];
    this.layers.forEach((layer, li) => {
      const f = layer.model.flows;
      if (!f || !f.length) return;
      for (let i = 0; i < f.length; i++) {
        if (!this.inClip(layer, f.dstTs[i])) continue;
        const a = this.flowEnd(li, f.srcPid[i], f.srcTid[i], f.srcTs[i]);
        const b = this.flowEnd(li, f.dstPid[i], f.dstTid[i], f.dstTs[i]);
        if (!a || !b) continue;
        const x0 = this.gutter + (f.srcTs[i] - vs) * k;
        const x1 = this.gutter + (f.dstTs[i] - vs) * k;
        if ((x0 < this.gutter && x1 < this.gutter) || (x0 > W && x1 > W)) continue;
        if ((a < AXIS && b < AXIS) || (a > H && b > H)) continue;
        ctx.moveTo(x0, a);
        ctx.lineTo(x1, b);
        heads.push([x0, a, x1, b]);
        stats.arrows++;
      }
    });
    ctx.stroke();
    for (const [x0, y0, x1, y1] of heads) {
      const angle = Math.atan2(y1 - y0, x1 - x0);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - 6 * Math.cos(angle - 0.4), y1 - 6 * Math.sin(angle - 0.4));
      ctx.lineTo(x1 - 6 * Math.cos(angle + 0.4), y1 - 6 * Math.sin(angle + 0.4));
      ctx.fill();
    }
  }

  /** The y (CSS px) of a flow's end: the middle of the slice of that thread starting at `ts`, or the row's top lane. */
  flowEnd(li, pid, tid, ts) {
    const item = this.itemByKey.get(`${pid}:${tid}`);
    if (!item) return null;
    const top = AXIS + item.y - this.scrollY + ROW_PAD;
    const m = this.layers[li].model;
    if (item.lanes[li] !== undefined) {
      for (let d = 0; d < item.laneDepths[li]; d++) {
        const lane = item.lanes[li] + d;
        const at = lowerBound(m.start, ts, m.laneBegin[lane], m.laneBegin[lane + 1]);
        if (at < m.laneBegin[lane + 1] && m.start[at] === ts) return top + d * LANE_H + LANE_H / 2;
      }
    }
    return top + LANE_H / 2;
  }

  drawGutter(ctx, first, bottom, stats) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, AXIS, this.gutter, this.height - AXIS);
    ctx.clip();
    ctx.fillStyle = "#f6f7f9";
    ctx.fillRect(0, AXIS, this.gutter, this.height - AXIS);
    ctx.textBaseline = "middle";
    for (let i = first; i < this.items.length && this.items[i].y < bottom; i++) {
      const it = this.items[i];
      const y = AXIS + it.y - this.scrollY;
      if (it.kind === "proc") {
        ctx.fillStyle = "#eef1f5";
        ctx.fillRect(0, y, this.gutter, it.h);
        ctx.fillStyle = TEXT;
        ctx.font = "600 12px system-ui, sans-serif";
        const mark = this.collapsed.has(it.pid) ? "▸" : "▾";
        const text = this.headerText(it);
        ctx.fillText(clipText(`${mark} ${text}`, this.gutter - 10, 6.8), 6, y + it.h / 2);
        stats.headers.push({ pid: it.pid, device: it.plane || it.name, host: it.host || "", text });
      } else {
        ctx.fillStyle = "#5f6670";
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(clipText(it.name, this.gutter - 22, this.charWidth), 16, y + Math.min(it.h, LANE_H + 2 * ROW_PAD) / 2);
      }
    }
    ctx.strokeStyle = "#d8dce2";
    ctx.beginPath();
    ctx.moveTo(this.gutter - 0.5, AXIS);
    ctx.lineTo(this.gutter - 0.5, this.height);
    ctx.stroke();
    ctx.restore();
  }

  /**
   * The time axis. Tick labels use the unit of the tick step (ns, µs, ms, s); when the view is far
   * from the start, ticks count from an anchor shown at the left ("9.952 s +"), so a label never
   * needs more than a few digits (no "9952000 µs").
   */
  drawAxis(ctx, vs, ve, k, stats) {
    const W = this.width;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, AXIS);
    ctx.strokeStyle = "#d8dce2";
    ctx.beginPath();
    ctx.moveTo(0, AXIS - 0.5);
    ctx.lineTo(W, AXIS - 0.5);
    const step = niceStep((ve - vs) * (110 / this.plotWidth));
    const unit = step < 1e-3 ? [1e-6, "ps"] : step < 1 ? [1e-3, "ns"] : step < 1e3 ? [1, "µs"] : step < 1e6 ? [1e3, "ms"] : [1e6, "s"];
    const decimals = Math.max(0, -Math.floor(Math.log10(step / unit[0]) + 1e-9));
    // Ticks count from an anchor: a multiple of 1000 units at or before the first tick.
    const firstTick = Math.ceil(vs / step) * step;
    const block = unit[0] * 1000;
    const anchor = Math.abs(firstTick) >= block ? Math.floor(firstTick / block) * block : 0;
    ctx.fillStyle = "#5f6670";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const labels = [];
    for (let i = 0, t = firstTick; t <= ve && i < 1000; i++, t = firstTick + i * step) {
      const x = Math.round(this.gutter + (t - vs) * k) + 0.5;
      ctx.moveTo(x, AXIS - 6);
      ctx.lineTo(x, AXIS);
      const value = ((t - anchor) / unit[0]).toFixed(decimals);
      labels.push([x, `${anchor ? "+" : ""}${value} ${unit[1]}`]);
    }
    ctx.stroke();
    for (const [x, text] of labels) {
      ctx.fillText(text, x + 3, AXIS / 2 - 1);
      stats.axisLabels.push(text);
    }
    ctx.fillStyle = "#f6f7f9";
    ctx.fillRect(0, 0, this.gutter, AXIS - 1);
    ctx.fillStyle = TEXT;
    const corner = anchor ? `${formatDurationUs(anchor)} +` : `Span ${formatDurationUs(ve - vs)}`;
    ctx.fillText(clipText(corner, this.gutter - 12, this.charWidth), 6, AXIS / 2 - 1);
    stats.axisAnchor = anchor;
  }
}

/** Whether a key press is typing into a form field (then it is not a timeline key). */
function isTyping(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement
    || target instanceof HTMLTextAreaElement || (target instanceof HTMLElement && target.isContentEditable);
}

/** A vertical scrollbar over the right edge of the canvas: its thumb shows and moves the scroll position. */
class Scrollbar {
  constructor(parent, onScroll) {
    this.onScroll = onScroll;
    this.el = document.createElement("div");
    this.el.className = "trace-scrollbar";
    this.thumb = document.createElement("div");
    this.thumb.className = "thumb";
    this.el.append(this.thumb);
    parent.append(this.el);
    this.state = { scrollY: 0, total: 1, visible: 1 };
    this.drag = null;
    this.thumb.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      this.drag = { y0: e.clientY, scroll0: this.state.scrollY };
      this.thumb.setPointerCapture(e.pointerId);
    });
    this.thumb.addEventListener("pointermove", (e) => {
      if (!this.drag) return;
      const track = this.el.clientHeight;
      this.onScroll(this.drag.scroll0 + ((e.clientY - this.drag.y0) * this.state.total) / Math.max(1, track));
    });
    this.thumb.addEventListener("pointerup", () => { this.drag = null; });
    this.el.addEventListener("pointerdown", (e) => {
      if (e.target !== this.el) return;
      const { top, height } = this.thumb.getBoundingClientRect();
      const page = this.state.visible * 0.9;
      this.onScroll(this.state.scrollY + (e.clientY < top ? -page : e.clientY > top + height ? page : 0));
    });
  }

  update(scrollY, total, visible, top) {
    this.state = { scrollY, total, visible };
    const show = total > visible;
    this.el.hidden = !show;
    if (!show) return;
    this.el.style.top = `${top}px`;
    const track = visible;
    const h = Math.max(24, (track * visible) / total);
    this.thumb.style.height = `${h}px`;
    this.thumb.style.top = `${((track - h) * scrollY) / Math.max(1, total - visible)}px`;
  }

  destroy() {
    this.el.remove();
  }
}

function niceStep(raw) {
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function clipText(text, width, cw) {
  const fit = Math.floor(width / cw);
  return text.length > fit ? `${text.slice(0, Math.max(1, fit - 1))}…` : text;
}

/** First index in [lo, hi) whose slice ends at or after t (ends are sorted within a lane). */
function lowerBoundEnd(starts, durs, t, lo, hi) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid] + durs[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBoundInt(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
