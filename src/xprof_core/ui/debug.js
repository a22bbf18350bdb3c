// Opt-in inspection hooks. Opening the UI with `?debug=1` in the query string (before the `#`)
// publishes a few live objects on `window.xprofDebug` (the trace view's timeline as `trace`), for
// the browser tests and for anyone debugging in the console. Without the flag nothing is published.

const ENABLED = new URLSearchParams(location.search).has("debug");

/** Publish `value` as `window.xprofDebug[name]` when the page was opened with ?debug=1. */
export function publish(name, value) {
  if (!ENABLED) return;
  if (!window.xprofDebug) window.xprofDebug = {};
  window.xprofDebug[name] = value;
}

/** Withdraw what publish() put there, if it is still `value`. */
export function withdraw(name, value) {
  if (ENABLED && window.xprofDebug && window.xprofDebug[name] === value) delete window.xprofDebug[name];
}
