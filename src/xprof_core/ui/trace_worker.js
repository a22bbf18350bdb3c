// The trace viewer's worker: fetches a trace_viewer window, parses the JSON and builds the
// columnar model off the page's thread, so zooming and panning never wait for a download
// or a JSON.parse. It keeps the parsed events of recent answers to answer "args of event i".
//
// Messages in:  {type: "load", id, url, windowUs, slot} | {type: "cancel", id} | {type: "args", id, loadId, eventIdx}
//               | {type: "json", id, url}
//   slot: "base" (the whole profile, kept for the view's life) or "detail" (windows, the newest few kept)
// Messages out: {type: "progress", id, bytes} | {type: "loaded", id, model, timings}
//               | {type: "error", id, status, statusText, text, url} | {type: "args", id, event} | {type: "json", id, body}

import { buildTraceModel, transferList } from "./trace_model.js";

const KEEP_DETAIL_ANSWERS = 3;
const answers = new Map(); // load id → traceEvents
const detailIds = []; // ids of kept "detail" answers, oldest first
const controllers = new Map();

self.onmessage = (message) => {
  const msg = message.data;
  if (msg.type === "load") load(msg);
  else if (msg.type === "json") fetchJson(msg);
  else if (msg.type === "cancel") {
    const c = controllers.get(msg.id);
    if (c) c.abort();
  } else if (msg.type === "args") {
    const events = answers.get(msg.loadId);
    const e = events ? events[msg.eventIdx] : null;
    self.postMessage({ type: "args", id: msg.id, event: e ? { name: e.name, ts: e.ts, dur: e.dur, args: e.args || {} } : null });
  }
};

async function fetchJson({ id, url }) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const text = await response.text();
    if (!response.ok) {
      self.postMessage({ type: "error", id, status: response.status, statusText: response.statusText, text, url });
      return;
    }
    self.postMessage({ type: "json", id, body: JSON.parse(text) });
  } catch (err) {
    self.postMessage({ type: "error", id, status: 0, statusText: "", text: "", url, message: `request failed (${err.message})` });
  }
}

async function load({ id, url, windowUs, slot }) {
  const controller = new AbortController();
  controllers.set(id, controller);
  const t0 = performance.now();
  try {
    const response = await fetch(url, { signal: controller.signal, headers: { Accept: "application/json" } });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parts = [];
    let bytes = 0;
    let reported = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      parts.push(decoder.decode(value, { stream: true }));
      const now = performance.now();
      if (now - reported > 100) {
        reported = now;
        self.postMessage({ type: "progress", id, bytes });
      }
    }
    parts.push(decoder.decode());
    const text = parts.join("");
    if (!response.ok) {
      self.postMessage({ type: "error", id, status: response.status, statusText: response.statusText, text, url });
      return;
    }
    const t1 = performance.now();
    const trace = JSON.parse(text);
    const t2 = performance.now();
    const model = buildTraceModel(trace, windowUs);
    const t3 = performance.now();
    answers.set(id, trace.traceEvents || []);
    if (slot !== "base") {
      detailIds.push(id);
      while (detailIds.length > KEEP_DETAIL_ANSWERS) answers.delete(detailIds.shift());
    }
    self.postMessage({ type: "loaded", id, model, bytes,
      timings: { fetchMs: t1 - t0, parseMs: t2 - t1, buildMs: t3 - t2 } }, transferList(model));
  } catch (err) {
    if (err.name === "AbortError") return;
    self.postMessage({ type: "error", id, status: 0, statusText: "", text: "", url,
      message: `could not load the trace (${err.message})` });
  } finally {
    controllers.delete(id);
  }
}
