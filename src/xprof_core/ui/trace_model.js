// Chrome Trace Event JSON (as trace_viewer answers) → a columnar timeline model.
//
// One row per (pid, tid) named by the "M" events; every complete ("X") event goes into a lane:
// (row, nesting depth). An event nests one level below the deepest level whose latest event
// contains it; events that only partly overlap (consecutive GPU kernels launched with
// programmatic dependent launch) share a level. A level never holds an event inside another of
// the same level, so a lane's starts and ends are both sorted: a binary search finds either edge
// of a time window.
//
// Flow events ("s" then "f" with the same id) become arrows from (pid, tid, ts) to (pid, tid, ts).
// Names that are HLO text ("%copy-done.5 = f32[...] copy-done(...)", TPU ops) are labelled by the
// op name before " = "; the text stays the event's name, shown in its details.
//
// The model is plain typed arrays plus small metadata, so a worker can build it and transfer
// it to the page without copying. Times are µs (float64) relative to the profile start.

import { opLabel } from "./format.js";

/**
 * @typedef {object} TraceModel
 * @property {[number, number]} fullSpanUs the whole profile's span (µs)
 * @property {[number, number]|null} windowUs the window this answer covers (null: everything)
 * @property {Array<{pid:number, name:string, sortIndex:number}>} processes
 * @property {Array<{pid:number, tid:number, name:string, sortIndex:number, lane0:number, depths:number}>} rows
 *   lanes of row r are lane0 .. lane0 + depths - 1 (depth 0 first)
 * @property {Int32Array} laneBegin L + 1 offsets into the event columns, lane by lane
 * @property {Float64Array} start event start (µs), sorted within a lane
 * @property {Float64Array} dur event duration (µs)
 * @property {Int32Array} nameIdx index into `names`
 * @property {Int32Array} eventIdx index of the event in the answer's traceEvents (for its args)
 * @property {string[]} names distinct event names
 * @property {string[]} labels what to draw for each name (the op name of HLO text, else the name)
 * @property {{id: number[], srcPid: Int32Array, srcTid: Int32Array, srcTs: Float64Array,
 *   dstPid: Int32Array, dstTid: Int32Array, dstTs: Float64Array, length: number}} flows launch arrows
 * @property {object} counts {returned, dropped, droppedReason, eventsInWindow, skipped}
 */



/**
 * Build a model from a parsed trace_viewer answer.
 * @param {object} trace {traceEvents, fullTimespan (ms), droppedEvents, ...}
 * @param {[number, number]|null} windowUs the requested window, or null for the whole profile
 * @returns {TraceModel}
 */
export function buildTraceModel(trace, windowUs = null) {
  const events = trace.traceEvents || [];
  const procs = new Map(); // pid → {pid, name, sortIndex}
  const threadMeta = new Map(); // pid → Map(tid → {name, sortIndex})
  const rowOf = new Map(); // pid → Map(tid → row number)
  const rowKeys = []; // [pid, tid]
  const nameIds = new Map();
  const names = [];
  const n = events.length;
  // First pass: metadata, and X events into temporary columns.
  let count = 0;
  let skipped = 0;
  const flowStart = new Map(); // id → "s" event
  const flowPairs = [];
  const evRow = new Int32Array(n);
  const evTs = new Float64Array(n);
  const evDur = new Float64Array(n);
  const evName = new Int32Array(n);
  const evIdx = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const e = events[i];
    const ph = e.ph;
    if (ph === "X") {
      let tids = rowOf.get(e.pid);
      if (!tids) rowOf.set(e.pid, (tids = new Map()));
      let row = tids.get(e.tid);
      if (row === undefined) {
        row = rowKeys.length;
        tids.set(e.tid, row);
        rowKeys.push([e.pid, e.tid]);
      }
      let id = nameIds.get(e.name);
      if (id === undefined) {
        id = names.length;
        nameIds.set(e.name, id);
        names.push(String(e.name));
      }
      evRow[count] = row;
      evTs[count] = +e.ts || 0;
      evDur[count] = Math.max(0, +e.dur || 0);
      evName[count] = id;
      evIdx[count] = i;
      count++;
    } else if (ph === "M") {
      const a = e.args || {};
      if (e.name === "process_name" || e.name === "process_sort_index") {
        let p = procs.get(e.pid);
        if (!p) procs.set(e.pid, (p = { pid: e.pid, name: `pid ${e.pid}`, sortIndex: e.pid }));
        if (e.name === "process_name") {
          p.name = String(a.name);
          if (a.host !== undefined) p.host = String(a.host);
          if (a.plane !== undefined) p.plane = String(a.plane);
        } else p.sortIndex = Number(a.sort_index);
      } else if (e.name === "thread_name" || e.name === "thread_sort_index") {
        let m = threadMeta.get(e.pid);
        if (!m) threadMeta.set(e.pid, (m = new Map()));
        let t = m.get(e.tid);
        if (!t) m.set(e.tid, (t = { name: `tid ${e.tid}`, sortIndex: e.tid }));
        if (e.name === "thread_name") t.name = String(a.name);
        else t.sortIndex = Number(a.sort_index);
      }
    } else if (ph === "s") flowStart.set(e.id, e);
    else if (ph === "f") {
      const from = flowStart.get(e.id);
      if (from) flowPairs.push([from, e]);
    } else skipped++;
  }
  // Bucket events by row (counting sort keeps the answer's order inside a row).
  const R = rowKeys.length;
  const rowBegin = new Int32Array(R + 1);
  for (let k = 0; k < count; k++) rowBegin[evRow[k] + 1]++;
  for (let r = 0; r < R; r++) rowBegin[r + 1] += rowBegin[r];
  const fill = rowBegin.slice(0, R);
  const order = new Int32Array(count);
  for (let k = 0; k < count; k++) order[fill[evRow[k]]++] = k;
  // Per row: sort by (start, longer first) unless already so, then nesting depths.
  const depth = new Int32Array(count);
  const rowDepths = new Int32Array(R);
  const lastStart = []; // per level of the row: the latest event's start and end
  const lastEnd = [];
  for (let r = 0; r < R; r++) {
    const b = rowBegin[r];
    const e = rowBegin[r + 1];
    let sorted = true;
    for (let k = b + 1; k < e && sorted; k++) {
      const p = order[k - 1];
      const q = order[k];
      if (evTs[q] < evTs[p] || (evTs[q] === evTs[p] && evDur[q] > evDur[p])) sorted = false;
    }
    if (!sorted) {
      const part = Array.from(order.subarray(b, e));
      part.sort((p, q) => evTs[p] - evTs[q] || evDur[q] - evDur[p] || p - q);
      order.set(part, b);
    }
    let maxDepth = 0;
    for (let k = b; k < e; k++) {
      const ev = order[k];
      const t = evTs[ev];
      const end = t + evDur[ev];
      // The deepest level whose latest event contains this one (open at its start, ending no earlier).
      let d = maxDepth - 1;
      while (d >= 0 && !(lastStart[d] <= t && lastEnd[d] > t && lastEnd[d] >= end)) d--;
      d += 1;
      depth[ev] = d;
      if (d + 1 > maxDepth) maxDepth = d + 1;
      lastStart[d] = t;
      lastEnd[d] = end;
    }
    lastStart.length = 0;
    lastEnd.length = 0;
    rowDepths[r] = maxDepth;
  }
  // Lanes: (row, depth), rows in row order; counting sort by lane keeps start order.
  const laneOfRow = new Int32Array(R + 1);
  for (let r = 0; r < R; r++) laneOfRow[r + 1] = laneOfRow[r] + rowDepths[r];
  const L = laneOfRow[R];
  const laneBegin = new Int32Array(L + 1);
  for (let k = 0; k < count; k++) laneBegin[laneOfRow[evRow[k]] + depth[k] + 1]++;
  for (let l = 0; l < L; l++) laneBegin[l + 1] += laneBegin[l];
  const cursor = laneBegin.slice(0, L);
  const start = new Float64Array(count);
  const dur = new Float64Array(count);
  const nameIdx = new Int32Array(count);
  const eventIdx = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    const ev = order[k];
    const lane = laneOfRow[evRow[ev]] + depth[ev];
    const at = cursor[lane]++;
    start[at] = evTs[ev];
    dur[at] = evDur[ev];
    nameIdx[at] = evName[ev];
    eventIdx[at] = evIdx[ev];
  }
  const rows = rowKeys.map(([pid, tid], r) => {
    const t = (threadMeta.get(pid) || new Map()).get(tid) || { name: `tid ${tid}`, sortIndex: tid };
    if (!procs.has(pid)) procs.set(pid, { pid, name: `pid ${pid}`, sortIndex: pid });
    return { pid, tid, name: t.name, sortIndex: t.sortIndex, lane0: laneOfRow[r], depths: rowDepths[r] };
  });
  const span = trace.fullTimespan || [0, 0];
  let fullSpanUs = [span[0] * 1000, span[1] * 1000];
  if (!(fullSpanUs[1] > fullSpanUs[0])) {
    // No span from the server: use the events' own extent.
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 0; k < count; k++) {
      lo = Math.min(lo, start[k]);
      hi = Math.max(hi, start[k] + dur[k]);
    }
    fullSpanUs = count ? [lo, Math.max(hi, lo + 1)] : [0, 1];
  }
  const dropped = trace.droppedEvents || {};
  const flows = {
    length: flowPairs.length,
    srcPid: Int32Array.from(flowPairs, ([a]) => a.pid),
    srcTid: Int32Array.from(flowPairs, ([a]) => a.tid),
    srcTs: Float64Array.from(flowPairs, ([a]) => +a.ts),
    dstPid: Int32Array.from(flowPairs, ([, b]) => b.pid),
    dstTid: Int32Array.from(flowPairs, ([, b]) => b.tid),
    dstTs: Float64Array.from(flowPairs, ([, b]) => +b.ts),
  };
  return {
    fullSpanUs,
    windowUs,
    processes: [...procs.values()],
    rows,
    laneBegin,
    start,
    dur,
    nameIdx,
    eventIdx,
    names,
    labels: names.map(opLabel),
    flows,
    counts: {
      returned: count,
      dropped: Number(dropped.count || 0),
      droppedReason: dropped.reason && dropped.reason !== "none" ? String(dropped.reason) : "",
      eventsInWindow: Number(dropped.eventsInWindow ?? count),
      skipped,
    },
  };
}

/** The buffers of a model, for postMessage's transfer list. */
export function transferList(model) {
  const f = model.flows;
  return [model.laneBegin.buffer, model.start.buffer, model.dur.buffer, model.nameIdx.buffer, model.eventIdx.buffer,
    f.srcPid.buffer, f.srcTid.buffer, f.srcTs.buffer, f.dstPid.buffer, f.dstTid.buffer, f.dstTs.buffer];
}

/** First index in [lo, hi) of a sorted array whose value is >= x. */
export function lowerBound(a, x, lo, hi) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
