// Frame-time self-test of the timeline: synthetic Chrome trace events go through the same model
// builder and renderer as the trace viewer's; then the view is panned frame by frame and each
// frame is timed, at three zoom levels:
//   all      every slice in view (200,000 by default), so almost all are narrower than a pixel
//   zoom4    1/4 of the profile: ~50,000 slices of about a pixel, the densest case that coalesces little
//   zoom20   1/20 of the profile: ~10,000 slices a few pixels wide, one rectangle each
//   zoom400  1/400: a few hundred wide slices with labels
// "draw" is the renderer's own work; "flushed" adds a 1-pixel readback, which makes the canvas
// rasterise everything queued, so it is the whole cost of a frame on the page's thread; "raf"
// is the interval between animation frames while panning in a requestAnimationFrame loop
// (it also depends on the display's frame rate and on the machine's other load).
// URL parameters: slices=N, frames=N. Results: window.__selftest and the <pre> below the canvas.

import { buildTraceModel } from "./trace_model.js";
import { Timeline } from "./timeline.js";

const params = new URLSearchParams(location.search);
const SLICES = Number(params.get("slices") || 200000);
const FRAMES = Number(params.get("frames") || 90);
const PROCESSES = 2;
const THREADS = 10; // per process
const SPAN_US = 1e6;

/** Chrome trace events: per thread, top-level slices each holding one nested child. */
export function syntheticTrace(n) {
  const rows = PROCESSES * THREADS;
  const parents = Math.ceil(Math.ceil(n / rows) / 2);
  const slot = SPAN_US / parents;
  const events = [];
  let seed = 12345;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let p = 1; p <= PROCESSES; p++) {
    events.push({ ph: "M", name: "process_name", pid: p, args: { name: `/device:SYNTH:${p}` } });
    for (let t = 1; t <= THREADS; t++) {
      events.push({ ph: "M", name: "thread_name", pid: p, tid: t, args: { name: `Stream #${t}` } });
    }
  }
  let made = 0;
  for (let r = 0; r < rows && made < n; r++) {
    const pid = 1 + Math.floor(r / THREADS);
    const tid = 1 + (r % THREADS);
    for (let k = 0; k < parents && made < n; k++) {
      const ts = k * slot + random() * slot * 0.1;
      const dur = slot * (0.3 + random() * 0.55);
      events.push({ ph: "X", pid, tid, ts, dur, name: `op_${(k * 7 + r) % 97}`, args: { k } });
      made++;
      if (made < n) {
        events.push({ ph: "X", pid, tid, ts: ts + dur * 0.1, dur: dur * 0.6, name: `kernel_${(k * 13 + r) % 53}`, args: {} });
        made++;
      }
    }
  }
  return { traceEvents: events, fullTimespan: [0, SPAN_US / 1000], droppedEvents: { count: 0 } };
}

function summary(times) {
  const s = [...times].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  const round = (x) => Math.round(x * 10) / 10;
  return { max: round(s[s.length - 1]), p95: round(q(0.95)), p50: round(q(0.5)), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

// Pan right, left, right...: net zero over every 60 frames, so the same slices stay in view.
const direction = (f) => ((f + 15) % 60 < 30 ? 1 : -1);

function panTimed(timeline, frames, dx) {
  const draw = [];
  const flushed = [];
  let visible = Infinity;
  let rects = 0;
  let labels = 0;
  for (let f = 0; f < frames; f++) {
    timeline.panByPx(direction(f) * dx);
    const t0 = performance.now();
    const stats = timeline.drawNow();
    const t1 = performance.now();
    timeline.ctx.getImageData(0, 0, 1, 1);
    flushed.push(performance.now() - t0);
    draw.push(t1 - t0);
    visible = Math.min(visible, stats.visible);
    rects = Math.max(rects, stats.rects);
    labels = Math.max(labels, stats.labels);
  }
  return { visibleSlices: visible, rects, labels, draw: summary(draw), flushed: summary(flushed) };
}

function panRaf(timeline, frames, dx) {
  return new Promise((resolve) => {
    const gaps = [];
    let last = null;
    let f = 0;
    const tick = (now) => {
      if (last !== null) gaps.push(now - last);
      last = now;
      if (f >= frames) {
        resolve(summary(gaps));
        return;
      }
      timeline.panByPx(direction(f++) * dx);
      timeline.drawNow();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}

async function scenario(timeline, view, dx) {
  timeline.setView(view[0], view[1], false);
  timeline.drawNow();
  const raf = await panRaf(timeline, FRAMES, dx);
  return { ...panTimed(timeline, FRAMES, dx), raf };
}

/**
 * The coalescing oracle: one lane of slices from 0.02 px to 40 px wide with gaps from 0 to 6 px,
 * viewed through many windows. Every pixel column that some slice touches must be painted
 * ("missing" counts those that are not), and every painted column must be within 2 px of such
 * a column ("far" counts those that are not: coalescing may only fill sub-pixel gaps).
 */
function coverageCheck() {
  const host = document.createElement("div");
  host.style.cssText = "position:absolute;left:-5000px;top:0;width:1200px;height:120px";
  const canvas = document.createElement("canvas");
  host.append(canvas);
  document.body.append(host);
  const timeline = new Timeline(canvas);
  const k = 1; // µs per px of the oracle's views below
  const events = [{ ph: "M", name: "process_name", pid: 1, args: { name: "oracle" } }];
  let seed = 99;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let t = 0;
  for (let i = 0; i < 30000; i++) {
    const w = 0.02 * Math.pow(2000, random()) * k; // log-uniform 0.02 .. 40 px
    const gap = random() < 0.3 ? 0 : random() * 6 * k;
    events.push({ ph: "X", pid: 1, tid: 1, ts: t, dur: w, name: `s${i % 7}` });
    t += w + gap;
  }
  const model = buildTraceModel({ traceEvents: events, fullTimespan: [0, t / 1000] }, null);
  timeline.setLayers(model, null);
  const G = timeline.width - timeline.plotWidth;
  const W = timeline.width;
  let missing = 0;
  let far = 0;
  let views = 0;
  for (let vs = 0; vs + timeline.plotWidth * k < t; vs += timeline.plotWidth * k * 7.3) {
    const ve = vs + timeline.plotWidth * k;
    timeline.setView(vs, ve, false);
    const scale = timeline.plotWidth / (timeline.view[1] - timeline.view[0]);
    const v0 = timeline.view[0];
    const v1 = timeline.view[1];
    timeline.drawNow();
    const drawn = new Uint8Array(W);
    for (const batch of timeline.batches) {
      for (let j = 0; j < batch.n; j += 4) {
        for (let x = Math.max(G, batch.data[j]); x < Math.min(W, batch.data[j] + batch.data[j + 2]); x++) drawn[x] = 1;
      }
    }
    const touched = new Uint8Array(W);
    for (let i = 0; i < model.start.length; i++) {
      const s = model.start[i];
      const e = s + model.dur[i];
      if (e < v0 || s > v1) continue;
      const x0 = G + (Math.max(s, v0) - v0) * scale;
      const x1 = G + (Math.min(e, v1) - v0) * scale;
      const a = Math.floor(x0);
      const b = Math.max(a + 1, Math.round(x1));
      for (let x = Math.max(G, a); x < Math.min(W, b); x++) touched[x] = 1;
    }
    for (let x = G; x < W; x++) {
      if (touched[x] && !drawn[x]) missing++;
      if (drawn[x] && !touched[x] && !touched[x - 1] && !touched[x + 1] && !touched[x - 2] && !touched[x + 2]) far++;
    }
    views++;
  }
  timeline.destroy();
  host.remove();
  return { slices: model.start.length, views, missing, far };
}

async function run() {
  const t0 = performance.now();
  const trace = syntheticTrace(SLICES);
  const t1 = performance.now();
  const model = buildTraceModel(trace, null);
  const t2 = performance.now();
  const timeline = new Timeline(document.getElementById("canvas"));
  timeline.setLayers(model, null);
  const result = {
    slices: model.start.length,
    rows: model.rows.length,
    canvas: [timeline.width, timeline.height, window.devicePixelRatio || 1],
    generateMs: Math.round(t1 - t0),
    buildModelMs: Math.round(t2 - t1),
    // A view a little wider than the profile: panning by ±3 px keeps every slice in it.
    all: await scenario(timeline, [-0.1 * SPAN_US, 1.1 * SPAN_US], 3),
    zoom4: await scenario(timeline, [0.4 * SPAN_US, 0.65 * SPAN_US], 8),
    zoom20: await scenario(timeline, [0.4 * SPAN_US, 0.45 * SPAN_US], 8),
    zoom400: await scenario(timeline, [0.4 * SPAN_US, 0.4025 * SPAN_US], 8),
  };
  result.maxFlushedFrameMs = Math.max(...["all", "zoom4", "zoom20", "zoom400"].map((k) => result[k].flushed.max));
  result.coverage = coverageCheck();
  result.ok = result.maxFlushedFrameMs < 100 && result.all.visibleSlices === SLICES
    && result.coverage.missing === 0 && result.coverage.far === 0;
  document.getElementById("result").textContent = JSON.stringify(result, null, 2);
  window.__selftest = result;
}

run().catch((err) => {
  document.getElementById("result").textContent = `failed: ${err.stack || err}`;
  window.__selftest = { error: String(err.stack || err) };
});
