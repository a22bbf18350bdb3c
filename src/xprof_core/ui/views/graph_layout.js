// A layered (Sugiyama-style) layout for the small HLO neighbourhoods the graph viewer shows:
// layers by longest path from the sources, order within a layer by barycentre sweeps that keep the
// members of a cluster (a fused computation) together, columns of their own for clusters, then
// cluster boxes around their members.

const H_GAP = 24;
const V_GAP = 46;
const CLUSTER_PAD = 12;
const CLUSTER_LABEL = 18;
const SWEEPS = 6;

/**
 * @param {Array<{id: string, w: number, h: number, cluster: string|null}>} nodes in drawing order
 * @param {Array<{from: string, to: string}>} edges
 * @param {Array<{id: string, parent: string|null}>} clusters
 * @returns {{nodes: Map<string, {x: number, y: number, w: number, h: number, layer: number}>,
 *   clusters: Map<string, {x: number, y: number, w: number, h: number}>, width: number, height: number}}
 */
export function layoutGraph(nodes, edges, clusters) {
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const out = nodes.map(() => []);
  const inc = nodes.map(() => []);
  for (const e of edges) {
    const a = index.get(e.from);
    const b = index.get(e.to);
    if (a === undefined || b === undefined || a === b) continue;
    out[a].push(b);
    inc[b].push(a);
  }
  // Break cycles: keep only edges that go forward in a depth-first order.
  const state = new Array(nodes.length).fill(0);
  const forward = nodes.map(() => []);
  const visit = (start) => {
    const stack = [[start, 0]];
    state[start] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, k] = top;
      if (k < out[v].length) {
        top[1]++;
        const w = out[v][k];
        if (state[w] === 0) {
          forward[v].push(w);
          state[w] = 1;
          stack.push([w, 0]);
        } else if (state[w] === 2) forward[v].push(w);
      } else {
        state[v] = 2;
        stack.pop();
      }
    }
  };
  nodes.forEach((_, i) => { if (state[i] === 0 && inc[i].length === 0) visit(i); });
  nodes.forEach((_, i) => { if (state[i] === 0) visit(i); });

  // Layers: longest path from a source (Kahn's order over the forward edges).
  const indeg = nodes.map(() => 0);
  forward.forEach((ws) => ws.forEach((w) => { indeg[w]++; }));
  const layer = nodes.map(() => 0);
  const queue = nodes.map((_, i) => i).filter((i) => indeg[i] === 0);
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    for (const w of forward[v]) {
      layer[w] = Math.max(layer[w], layer[v] + 1);
      if (--indeg[w] === 0) queue.push(w);
    }
  }
  const layerCount = Math.max(0, ...layer) + 1;
  const layers = Array.from({ length: layerCount }, () => []);
  nodes.forEach((_, i) => layers[layer[i]].push(i));

  // Cluster paths (outermost first) so that a layer can be grouped by cluster.
  const parentOf = new Map(clusters.map((c) => [c.id, c.parent]));
  const chain = nodes.map((n) => {
    const path = [];
    for (let c = n.cluster; c; c = parentOf.get(c) || null) path.unshift(c);
    return path;
  });
  const pos = nodes.map(() => 0);
  const setPositions = () => layers.forEach((ls) => ls.forEach((v, k) => { pos[v] = k; }));
  setPositions();
  const preds = nodes.map((_, i) => inc[i]);
  const succs = out;
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers : [...layers].reverse();
    for (const ls of order) {
      const bary = new Map();
      for (const v of ls) {
        const nb = down ? preds[v] : succs[v];
        bary.set(v, nb.length ? nb.reduce((s, u) => s + pos[u], 0) / nb.length : pos[v]);
      }
      // Each cluster (at every nesting depth) sorts by the mean barycentre of its members in this layer.
      const groupMean = new Map();
      for (const v of ls) {
        for (let d = 0; d < chain[v].length; d++) {
          const key = chain[v].slice(0, d + 1).join("\u0000");
          const g = groupMean.get(key) || { sum: 0, n: 0 };
          g.sum += bary.get(v);
          g.n += 1;
          groupMean.set(key, g);
        }
      }
      const keyOf = (v) => {
        const k = [];
        const c = chain[v];
        for (let d = 0; d < c.length; d++) {
          const g = groupMean.get(c.slice(0, d + 1).join("\u0000"));
          k.push(g.sum / g.n, c.slice(0, d + 1).join("\u0000"));
        }
        k.push(bary.get(v), "");
        return k;
      };
      const keys = new Map(ls.map((v) => [v, keyOf(v)]));
      ls.sort((a, b) => {
        const ka = keys.get(a);
        const kb = keys.get(b);
        for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
          if (ka[i] === kb[i]) continue;
          if (typeof ka[i] === "number" && typeof kb[i] === "number") return ka[i] - kb[i];
          return ka[i] < kb[i] ? -1 : 1;
        }
        return ka.length - kb.length || a - b;
      });
      ls.forEach((v, k) => { pos[v] = k; });
    }
  }

  // Coordinates. Each outermost cluster gets a band of columns of its own (so that cluster boxes never
  // overlap); nodes outside clusters share bands when they sit in different layers. Bands go left to
  // right in the order of their members' mean position after the sweeps.
  const groupOf = (v) => (chain[v].length ? `c\u0000${chain[v][0]}` : `n\u0000${v}`);
  const groups = new Map();
  for (const ls of layers) {
    for (const v of ls) {
      const g = groupOf(v);
      if (!groups.has(g)) groups.set(g, { members: [], sum: 0, cluster: chain[v].length > 0 });
      const grp = groups.get(g);
      grp.members.push(v);
      grp.sum += pos[v] / Math.max(1, layers[layer[v]].length - 1 || 1);
    }
  }
  const ordered = [...groups.values()].sort((a, b) => a.sum / a.members.length - b.sum / b.members.length);
  const bands = [];
  for (const grp of ordered) {
    const used = new Set(grp.members.map((v) => layer[v]));
    const last = bands[bands.length - 1];
    if (!grp.cluster && last && !last.cluster && ![...used].some((l) => last.layers.has(l))) {
      last.members.push(...grp.members);
      used.forEach((l) => last.layers.add(l));
    } else {
      bands.push({ members: [...grp.members], layers: used, cluster: grp.cluster });
    }
  }
  const bandOf = new Map();
  bands.forEach((band, i) => band.members.forEach((v) => bandOf.set(v, i)));
  const margin = CLUSTER_PAD * 3;
  const bandWidth = bands.map((band) => {
    let widest = 0;
    for (const l of band.layers) {
      const inLayer = layers[l].filter((v) => bandOf.get(v) === bandOf.get(band.members[0]));
      const w = inLayer.reduce((s, v, k) => s + nodes[v].w + (k ? H_GAP : 0), 0);
      widest = Math.max(widest, w);
    }
    return widest + (band.cluster ? 2 * CLUSTER_PAD * Math.max(...band.members.map((v) => chain[v].length)) : 0);
  });
  const bandStart = [];
  let cursor = margin;
  for (let i = 0; i < bands.length; i++) {
    bandStart.push(cursor);
    cursor += bandWidth[i] + H_GAP * 2;
  }
  const width = cursor - H_GAP * 2;
  const placed = new Map();
  let y = CLUSTER_PAD * 2 + CLUSTER_LABEL;
  for (const ls of layers) {
    const height = Math.max(0, ...ls.map((v) => nodes[v].h));
    for (let b = 0; b < bands.length; b++) {
      const inBand = ls.filter((v) => bandOf.get(v) === b);
      if (!inBand.length) continue;
      const used = inBand.reduce((s, v, k) => s + nodes[v].w + (k ? H_GAP : 0), 0);
      let x = bandStart[b] + (bandWidth[b] - used) / 2;
      for (const v of inBand) {
        const n = nodes[v];
        placed.set(n.id, { x, y: y + (height - n.h) / 2, w: n.w, h: n.h, layer: layer[v] });
        x += n.w + H_GAP;
      }
    }
    y += height + V_GAP + CLUSTER_LABEL;
  }

  // Cluster boxes: innermost first, each around its members and nested boxes.
  const depthOf = (id) => { let d = 0; for (let c = parentOf.get(id); c; c = parentOf.get(c)) d++; return d; };
  const boxes = new Map();
  for (const c of [...clusters].sort((a, b) => depthOf(b.id) - depthOf(a.id))) {
    const members = nodes.filter((n) => n.cluster === c.id).map((n) => placed.get(n.id));
    for (const inner of clusters) if (inner.parent === c.id && boxes.has(inner.id)) members.push(boxes.get(inner.id));
    if (!members.length) continue;
    const x0 = Math.min(...members.map((b) => b.x)) - CLUSTER_PAD;
    const y0 = Math.min(...members.map((b) => b.y)) - CLUSTER_PAD - CLUSTER_LABEL;
    const x1 = Math.max(...members.map((b) => b.x + b.w)) + CLUSTER_PAD;
    const y1 = Math.max(...members.map((b) => b.y + b.h)) + CLUSTER_PAD;
    boxes.set(c.id, { x: x0, y: y0, w: x1 - x0, h: y1 - y0 });
  }
  let maxX = width + margin;
  let maxY = y;
  for (const b of [...placed.values(), ...boxes.values()]) {
    maxX = Math.max(maxX, b.x + b.w + margin);
    maxY = Math.max(maxY, b.y + b.h + margin);
  }
  return { nodes: placed, clusters: boxes, width: maxX, height: maxY };
}

