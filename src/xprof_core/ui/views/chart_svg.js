// Small SVG helpers shared by the memory, roofline and graph views: elements, axes (linear and
// log), a hover read-out, and their stylesheet (loaded once, next to this file).

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element: svg("rect", {x: 1}, child...). Text children are text nodes, never markup. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Load the views' stylesheet once (the page's own stylesheet belongs to the shell). */
export function ensureStyles() {
  if (document.querySelector("link[data-views-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "ui/views/charts.css";
  link.dataset.viewsCss = "1";
  document.head.append(link);
}

/** About `count` round tick values covering [lo, hi] (linear). */
export function linearTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Powers of ten covering [lo, hi] (both > 0). */
export function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

/** "1.5 GB"-style bytes with a unit chosen for the largest value of an axis. */
export function bytesScale(max) {
  const units = [["B", 1], ["KiB", 2 ** 10], ["MiB", 2 ** 20], ["GiB", 2 ** 30], ["TiB", 2 ** 40]];
  let unit = units[0];
  for (const u of units) if (max >= u[1]) unit = u;
  return { name: unit[0], div: unit[1], text: (v) => `${Number((v / unit[1]).toPrecision(4))} ${unit[0]}` };
}

/** A number as a short power-of-ten label: 1e-3, 0.1, 1, 10, 1k, 1M, 1G, 1T. */
export function shortNumber(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e12) return `${Number((v / 1e12).toPrecision(3))}T`;
  if (a >= 1e9) return `${Number((v / 1e9).toPrecision(3))}G`;
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (a >= 0.01) return `${Number(v.toPrecision(3))}`;
  return v.toExponential(0);
}

/** The index of the value in a sorted array closest to x. */
export function nearestIndex(sorted, x) {
  let lo = 0;
  let hi = sorted.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid;
    else hi = mid;
  }
  return Math.abs(sorted[hi] - x) < Math.abs(sorted[lo] - x) ? hi : lo;
}
