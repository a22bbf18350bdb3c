// The page's side of the trace worker (trace_worker.js): requests go out as messages with an id,
// answers come back as promises. Loads report download progress; a load can be cancelled; the
// worker keeps recent answers so a slice's args can be asked for later by (load id, event index).

import { errorFromResponse } from "./api.js";

export class TraceClient {
  constructor() {
    this.worker = new Worker(new URL("./trace_worker.js", import.meta.url), { type: "module" });
    this.pending = new Map(); // id → {resolve, reject, onProgress}
    this.nextId = 1;
    this.worker.onmessage = (message) => this.receive(message.data);
    this.worker.onerror = (e) => this.failAll(new Error(`trace worker failed: ${e.message}`));
  }

  receive(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === "progress") {
      p.onProgress(msg.bytes);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === "loaded") {
      msg.model.loadId = msg.id;
      msg.model.bytes = msg.bytes;
      msg.model.timings = msg.timings;
      p.resolve(msg.model);
    } else if (msg.type === "args") p.resolve(msg.event);
    else if (msg.type === "json") p.resolve(msg.body);
    else {
      p.reject(msg.status ? errorFromResponse(msg.status, msg.statusText, msg.text, msg.url)
        : Object.assign(new Error(msg.message), { url: msg.url, status: 0 }));
    }
  }

  send(msg, onProgress = () => {}) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, onProgress }));
    this.worker.postMessage({ ...msg, id });
    return { id, promise };
  }

  /**
   * Fetch and parse a trace answer into a model (trace_model.js).
   * @param {string} url absolute URL of the trace_viewer request
   * @param {[number, number]|null} windowUs the window asked for, null for the whole profile
   * @param {"base"|"detail"} slot base answers are kept for the view's life, detail ones a few at a time
   * @returns {{id: number, promise: Promise<object>}}
   */
  load(url, windowUs, slot, onProgress) {
    return this.send({ type: "load", url, windowUs, slot }, onProgress);
  }

  /** Fetch any JSON answer off the page's thread (search results). */
  json(url) {
    return this.send({ type: "json", url }).promise;
  }

  /** The event (with its args) at `eventIdx` of the answer `loadId`. */
  args(loadId, eventIdx) {
    return this.send({ type: "args", loadId, eventIdx }).promise;
  }

  cancel(id) {
    this.worker.postMessage({ type: "cancel", id });
  }

  failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  terminate() {
    this.worker.terminate();
    this.failAll(new DOMException("view closed", "AbortError"));
  }
}
