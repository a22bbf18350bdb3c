// Number, time and size formatting shared by every view. Units are in the names.

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const FRAC3 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });

/** A table or card number: integers with thousands separators, others with up to 3 decimals. */
export function formatNumber(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  return Number.isInteger(v) ? INT.format(v) : FRAC3.format(v);
}

/** Milliseconds with 3 decimals, e.g. "2.018 ms" (the overview's step times). */
export function formatMs(ms) {
  return ms === null || ms === undefined ? "n/a" : `${ms.toFixed(3)} ms`;
}

/** A percentage with one decimal, e.g. "97.2%". */
export function formatPct(pct) {
  return pct === null || pct === undefined ? "n/a" : `${pct.toFixed(1)}%`;
}

/** A duration given in µs, in the unit that suits it: "850 ns", "12.5 µs", "3.21 ms", "1.5 s". */
export function formatDurationUs(us) {
  const a = Math.abs(us);
  if (a === 0) return "0";
  if (a < 1) return `${trim(us * 1e3)} ns`;
  if (a < 1e3) return `${trim(us)} µs`;
  if (a < 1e6) return `${trim(us / 1e3)} ms`;
  return `${trim(us / 1e6)} s`;
}

const THIN = "\u2009"; // thin space: groups of decimals

/**
 * An exact time given in µs (as the trace JSON writes it, to the picosecond), in the unit that
 * suits it, every digit kept and grouped: "49.680 123 45 ms", "30 ns", "9,952.000 001 s".
 */
export function formatTimeExactUs(us) {
  if (us === null || us === undefined || !Number.isFinite(us)) return "n/a";
  const neg = us < 0;
  // Decimal digits of |us| to the picosecond, as text: no float arithmetic past this point.
  const [intPart, fracPart] = Math.abs(us).toFixed(6).split(".");
  const digits = intPart + fracPart; // the value in ps
  const ps = digits.replace(/^0+(?=\d)/, "");
  const units = [["s", 12], ["ms", 9], ["µs", 6], ["ns", 3], ["ps", 0]];
  let [unit, shift] = units[units.length - 1];
  for (const [u, k] of units) {
    if (ps.length > k) {
      [unit, shift] = [u, k];
      break;
    }
  }
  const whole = ps.length > shift ? ps.slice(0, ps.length - shift) : "0";
  const frac = ps.slice(ps.length - shift).padStart(shift, "0").replace(/0+$/, "");
  const groupedWhole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const groupedFrac = frac.replace(/(\d{3})(?=\d)/g, `$1${THIN}`);
  return `${neg ? "-" : ""}${groupedWhole}${groupedFrac ? `.${groupedFrac}` : ""} ${unit}`;
}

function trim(x) {
  const a = Math.abs(x);
  const digits = a >= 100 ? 1 : a >= 10 ? 2 : 3;
  return String(Number(x.toFixed(digits)));
}

/** A byte count: "812 B", "1.4 MB". */
export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MB`;
  return `${(n / (1 << 30)).toFixed(2)} GB`;
}

/** "a_b_c" → "A b c" (tool and category names as labels). */
export function humanize(name) {
  const s = String(name).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const HLO_TEXT = /^%(\S+) = /;

/** How an op is named on screen: the op name of HLO text ("%copy-done.5 = f32[...] copy-done(...)"
 * → "copy-done.5", as TPU profiles name their ops), else the name itself. */
export function opLabel(name) {
  const m = HLO_TEXT.exec(name);
  return m ? m[1] : name;
}
