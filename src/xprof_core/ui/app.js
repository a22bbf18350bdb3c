// The web UI's entry point: URL state, the top bar (run, hosts, capture), tool tabs, and views.
//
// Everything a view shows is named by the URL hash, so a view can be shared and reloaded:
//   #run=<run>&tool=<tool>&hosts=<h1,h2>&start_ms=<ms>&end_ms=<ms>&q=<search>&run2=<run compared with>
// (a query string with the same keys is accepted on first load and moved into the hash).

import { apiUrl, dataUrl, fetchJson } from "./api.js";
import { initCaptureDialog } from "./capture.js";
import { h, replaceChildren } from "./dom.js";
import { humanize } from "./format.js";
import { errorPanel, loadingPanel } from "./status_panels.js";

const STATE_KEYS = ["run", "tool", "hosts", "start_ms", "end_ms", "q", "run2",
  "memory_id", "module_name", "program_id", "memory_space", "node_name", "graph_width", "merge_fusion"];
const TOOL_LABELS = {
  overview_page: "Overview",
  input_pipeline_analyzer: "Input pipeline",
  framework_op_stats: "Framework op stats",
  hlo_stats: "HLO stats",
  op_profile: "Op profile",
  kernel_stats: "Kernel stats",
  trace_viewer: "Trace viewer",
  memory_profile: "Memory profile",
  memory_viewer: "Memory viewer",
  roofline_model: "Roofline",
  graph_viewer: "Graph viewer",
  xprof_input_pipeline: "XProf's input pipeline analysis",
  diff: "Compare",
};
// Tools shown inside another tool's view, not as tabs of their own: tool -> the view that shows it.
const SHOWN_WITHIN = {
  xprof_input_pipeline: "input_pipeline_analyzer",
};
// Which module renders which tool; any other tool gets the generic view (its tables and fields).
const VIEW_MODULES = {
  overview_page: "./views/overview.js",
  input_pipeline_analyzer: "./views/tables.js",
  framework_op_stats: "./views/tables.js",
  hlo_stats: "./views/tables.js",
  kernel_stats: "./views/tables.js",
  op_profile: "./views/op_profile.js",
  trace_viewer: "./views/trace_viewer.js",
  memory_profile: "./views/memory_profile.js",
  memory_viewer: "./views/memory_viewer.js",
  roofline_model: "./views/roofline_model.js",
  graph_viewer: "./views/graph_viewer.js",
  diff: "./views/diff.js",
};
const DETAIL_CONCURRENCY = 6;
const DETAIL_RUNS = 100;

function toolLabel(tool) {
  return TOOL_LABELS[tool] || humanize(tool);
}

// --- URL state ---

/** The state named by the URL: {run, tool, hosts: string[], start_ms, end_ms, q}. */
function readState() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const state = {};
  for (const key of STATE_KEYS) {
    const v = params.get(key);
    if (v !== null && v !== "") state[key] = v;
  }
  state.hosts = state.hosts ? state.hosts.split(",").filter(Boolean) : [];
  return state;
}

function stateHash(state) {
  const params = new URLSearchParams();
  for (const key of STATE_KEYS) {
    const v = key === "hosts" ? (state.hosts || []).join(",") : state[key];
    if (v !== undefined && v !== null && v !== "") params.set(key, String(v));
  }
  return `#${params.toString()}`;
}

/**
 * Change the URL state. `replace` rewrites the current history entry without re-rendering
 * (used for the trace window while the user zooms); otherwise a new entry is pushed and the
 * hashchange handler renders it.
 */
function navigate(patch, { replace = false } = {}) {
  const next = { ...readState(), ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === null || v === undefined) delete next[k];
  const hash = stateHash(next);
  if (hash === location.hash || (hash === "#" && !location.hash)) return;
  if (replace) history.replaceState(null, "", hash);
  else location.hash = hash;
}

function adoptQueryState() {
  const q = new URLSearchParams(location.search);
  if (!STATE_KEYS.some((k) => q.has(k)) || location.hash.length > 1) return;
  const state = {};
  for (const k of STATE_KEYS) if (q.get(k)) state[k] = q.get(k);
  state.hosts = state.hosts ? state.hosts.split(",") : [];
  history.replaceState(null, "", location.pathname + stateHash(state));
}

// --- data shared across views ---

const cache = { runs: null, hosts: new Map(), tools: new Map(), config: null, hardware: new Map() };

async function getRuns(refresh = false) {
  if (!cache.runs || refresh) cache.runs = sortRunsNewestFirst(await fetchJson(apiUrl("runs")));
  return cache.runs;
}

async function getHosts(run) {
  if (!cache.hosts.has(run)) {
    cache.hosts.set(run, fetchJson(apiUrl("hosts", { run })).then((hs) => hs.map((x) => x.hostname)));
  }
  return cache.hosts.get(run);
}

async function getTools(run) {
  if (!cache.tools.has(run)) cache.tools.set(run, fetchJson(apiUrl("run_tools", { run })));
  return cache.tools.get(run);
}

/** XProf names sessions by start time (YYYY_MM_DD_HH_MM_SS); newest first, then by name. */
function sortRunsNewestFirst(runs) {
  const session = (r) => r.split("/").pop();
  return [...runs].sort((a, b) => {
    const sa = session(a);
    const sb = session(b);
    if (sa !== sb) return sa < sb ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/** "2026_11_28_01_22_50" → "2026-11-28 01:22:50", or null when the session is not a timestamp. */
function sessionTime(run) {
  const m = /(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})$/.exec(run);
  return m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}` : null;
}

// --- rendering ---

const main = document.getElementById("main");
const runPicker = document.getElementById("run-picker");
const runSelect = document.getElementById("run-select");
const hostPicker = document.getElementById("host-picker");
const tabs = document.getElementById("tool-tabs");
let mounted = null; // {key, view, controller}
let renderSeq = 0;

async function render() {
  const seq = ++renderSeq;
  const state = readState();
  if (!state.run) {
    unmount();
    runPicker.hidden = hostPicker.hidden = tabs.hidden = true;
    document.title = "xprof-core";
    await renderLanding(seq);
    return;
  }
  let tools;
  let hosts;
  try {
    [tools, hosts] = await Promise.all([getTools(state.run), getHosts(state.run)]);
    await getRuns();
  } catch (err) {
    if (seq !== renderSeq) return;
    unmount();
    replaceChildren(main, errorPanel(`Could not open run ${state.run}`, err), backLink());
    return;
  }
  if (seq !== renderSeq) return;
  renderRunPicker(state);
  renderHostPicker(state, hosts);
  renderTabs(state, tools);
  if (SHOWN_WITHIN[state.tool] && tools.includes(SHOWN_WITHIN[state.tool])) {
    history.replaceState(null, "", stateHash({ ...state, tool: SHOWN_WITHIN[state.tool] }));
    await render();
    return;
  }
  if (!state.tool && tools.length) {
    // A run without a tool opens its overview; replace, so Back does not land here again.
    history.replaceState(null, "", stateHash({ ...state, tool: tools.includes("overview_page") ? "overview_page" : tools[0] }));
    await render();
    return;
  }
  if (!tools.includes(state.tool) && state.tool !== "diff") {
    unmount();
    replaceChildren(main, errorPanel(`Unknown tool ${state.tool || "(none)"}`,
      { message: `run ${state.run} offers: ${tools.join(", ") || "no tools"}`, body: { tools } }), backLink());
    main.dataset.ready = "error";
    return;
  }
  document.title = `${toolLabel(state.tool)} · ${state.run} · xprof-core`;
  const key = `${state.run}\u0000${state.tool}\u0000${state.hosts.join(",")}\u0000${state.run2 || ""}`;
  if (mounted && mounted.key === key) {
    if (mounted.view && mounted.view.update) mounted.view.update(state);
    return;
  }
  unmount();
  const controller = new AbortController();
  mounted = { key, view: null, controller };
  const ctx = makeContext(state, hosts, controller.signal);
  replaceChildren(main);
  try {
    const module = await import(VIEW_MODULES[state.tool] || "./views/generic.js");
    if (controller.signal.aborted) return;
    mounted.view = (await module.mount(ctx)) || null;
    if (!controller.signal.aborted) main.dataset.ready = state.tool;
  } catch (err) {
    if (err.name === "AbortError" || controller.signal.aborted) return;
    replaceChildren(main, errorPanel(`The ${toolLabel(state.tool)} view failed`, err));
    console.error(err); // a broken view is a bug: let the browser tests see it
  }
}

function unmount() {
  if (!mounted) return;
  mounted.controller.abort();
  if (mounted.view && mounted.view.destroy) mounted.view.destroy();
  mounted = null;
}

/** What a view gets: the state, the run's hosts, its container, and a loader with progress and errors. */
function makeContext(state, runHosts, signal) {
  return {
    state,
    run: state.run,
    tool: state.tool,
    hosts: state.hosts,
    runHosts,
    container: main,
    signal,
    navigate,
    dataUrl: (params = {}, tool = state.tool) => dataUrl(state.run, tool, state.hosts, params),
    csvUrl: (table) => dataUrl(state.run, state.tool, state.hosts, { table }, "data_csv"),
    /**
     * Fetch a tool's JSON (default: the view's tool) into `into` (default: the main area) showing progress;
     * null after showing an error.
     */
    async load(params = {}, into = main, tool = state.tool) {
      const what = `${toolLabel(tool)} for ${hostLabel(state.hosts, runHosts)}`;
      const panel = loadingPanel(`Loading ${what}…`);
      replaceChildren(into, panel.el);
      try {
        return await fetchJson(dataUrl(state.run, tool, state.hosts, params),
          { signal, onProgress: panel.progress });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        replaceChildren(into, errorPanel(`Could not load ${what} of run ${state.run}`, err));
        return null;
      } finally {
        panel.stop();
      }
    },
  };
}

function hostLabel(selected, all) {
  if (!selected.length || selected.length === all.length) return all.length === 1 ? all[0] : `all ${all.length} hosts`;
  return selected.length <= 3 ? selected.join(", ") : `${selected.length} hosts`;
}

function backLink() {
  return h("p", {}, h("a", { href: "#", text: "← All runs" }));
}

function renderRunPicker(state) {
  runPicker.hidden = false;
  const runs = cache.runs || [state.run];
  if (runSelect.dataset.runs !== runs.join("\n")) {
    replaceChildren(runSelect, runs.map((r) => h("option", { value: r, text: r })));
    runSelect.dataset.runs = runs.join("\n");
  }
  runSelect.value = state.run;
  renderComparePicker(state, runs);
}

/** "Compare with…": a second run picker that opens the diff of the chosen run against this one. */
function renderComparePicker(state, runs) {
  let select = document.getElementById("compare-select");
  if (!select) {
    select = h("select", { id: "compare-select", "aria-label": "Compare with another run" });
    select.addEventListener("change", () => {
      if (select.value === "") navigate({ tool: "overview_page", run2: null });
      else navigate({ tool: "diff", run2: select.value, start_ms: null, end_ms: null });
    });
    runPicker.append(select);
  }
  const others = runs.filter((r) => r !== state.run);
  const comparing = state.tool === "diff" && state.run2;
  replaceChildren(select, [
    h("option", { value: "", text: comparing ? "Stop comparing" : "Compare with…" }),
    ...others.map((r) => h("option", { value: r, text: `Compare with ${r}` })),
  ]);
  select.value = comparing ? state.run2 : "";
  select.hidden = !others.length;
}

function renderHostPicker(state, hosts) {
  hostPicker.hidden = false;
  if (hosts.length <= 1) {
    replaceChildren(hostPicker, h("span.muted", { text: "Host" }), h("span.mono", { text: hosts[0] || "none" }));
    return;
  }
  const selected = new Set(state.hosts.length ? state.hosts : hosts);
  const boxes = hosts.map((name) => h("input", { type: "checkbox", value: name, checked: selected.has(name) }));
  const all = h("input", { type: "checkbox", checked: selected.size === hosts.length });
  const apply = () => {
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) return;
    navigate({ hosts: chosen.length === hosts.length ? [] : chosen, start_ms: null, end_ms: null });
  };
  all.addEventListener("change", () => {
    boxes.forEach((b) => { b.checked = all.checked || b === boxes[0]; });
    apply();
  });
  boxes.forEach((b) => b.addEventListener("change", () => {
    all.checked = boxes.every((x) => x.checked);
    apply();
  }));
  const details = h("details", {},
    h("summary", { text: `Hosts: ${hostLabel(state.hosts, hosts)}` }),
    h("div.host-list", {}, h("label", {}, all, " All hosts"), boxes.map((b) => h("label", {}, b, ` ${b.value}`))));
  replaceChildren(hostPicker, details);
}

function renderTabs(state, tools) {
  tabs.hidden = false;
  replaceChildren(tabs, tools.filter((tool) => !SHOWN_WITHIN[tool]).map((tool) => h("a", {
    href: stateHash({ run: state.run, tool, hosts: state.hosts }),
    text: toolLabel(tool),
    dataset: { tool },
    "aria-current": tool === state.tool ? "page" : null,
  })));
  disableTabsThatDoNotApply(state.run);
}

// Tools that have nothing to show on some hardware, and why: kernel stats need GPU kernels.
const NOT_FOR = {
  kernel_stats: {
    CPU_ONLY: "No GPU kernels: this run is a CPU-only profile.",
    TPU: "No GPU kernels: this run's devices are TPUs (see HLO stats and Op profile).",
  },
};

/** The run's hardware type (overview_page's run environment), fetched once per run. */
function getHardware(run) {
  if (!cache.hardware.has(run)) {
    cache.hardware.set(run, fetchJson(dataUrl(run, "overview_page", []))
      .then((d) => (d.run_environment || {}).hardware_type || "")
      .catch(() => ""));
  }
  return cache.hardware.get(run);
}

/** Grey out the tabs of tools that do not apply to this run's hardware, with the reason as their tooltip. */
async function disableTabsThatDoNotApply(run) {
  const hardware = await getHardware(run);
  if (readState().run !== run) return;
  for (const [tool, reasons] of Object.entries(NOT_FOR)) {
    const tab = tabs.querySelector(`[data-tool="${tool}"]`);
    const reason = reasons[hardware];
    if (!tab || !reason) continue;
    tab.setAttribute("aria-disabled", "true");
    tab.title = reason;
    tab.classList.add("disabled");
    tab.addEventListener("click", (e) => e.preventDefault());
  }
}

async function renderLanding(seq) {
  const panel = loadingPanel("Loading runs…");
  replaceChildren(main, panel.el);
  let runs;
  try {
    runs = await getRuns(true);
  } catch (err) {
    if (seq === renderSeq) replaceChildren(main, errorPanel("Could not list the runs", err));
    return;
  } finally {
    panel.stop();
  }
  if (seq !== renderSeq) return;
  const cards = runs.map((run) => {
    const when = sessionTime(run);
    const hostsEl = h("div.hosts.muted", { text: "Hosts: …" });
    const toolsEl = h("div.tools", {}, h("a", { href: stateHash({ run, tool: "overview_page" }), text: "Open" }));
    const card = h("article.panel.run-card", { dataset: { run } },
      h("h2", {}, h("a", { href: stateHash({ run }), text: run })),
      when ? h("div.when.muted", { text: `Captured ${when}` }) : null,
      hostsEl, toolsEl);
    return { run, card, hostsEl, toolsEl };
  });
  replaceChildren(main, h("section.view", {},
    h("h1", { text: runs.length ? `Runs (${runs.length}, newest first)` : "No runs" }),
    runs.length ? null : h("p.muted", { text: "This logdir holds no profiles yet. Capture one, or point --logdir elsewhere." }),
    h("div.run-list", {}, cards.map((c) => c.card))));
  // Hosts and tools of the newest runs, a few requests at a time.
  const queue = cards.slice(0, DETAIL_RUNS);
  const worker = async () => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      try {
        const [hosts, tools] = await Promise.all([getHosts(c.run), getTools(c.run)]);
        if (seq !== renderSeq) return;
        c.hostsEl.textContent = `Hosts (${hosts.length}): ${hosts.join(", ") || "none"}`;
        replaceChildren(c.toolsEl, tools.map((tool) =>
          h("a", { href: stateHash({ run: c.run, tool }), text: toolLabel(tool), dataset: { tool } })));
      } catch (err) {
        c.hostsEl.textContent = `Could not read this run: ${err.message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  if (seq === renderSeq) main.dataset.ready = "landing";
}

// --- start ---

async function start() {
  adoptQueryState();
  // The skip link must not touch the hash: the hash is the view's state.
  document.querySelector(".skip-link").addEventListener("click", (e) => {
    e.preventDefault();
    main.focus();
  });
  runSelect.addEventListener("change", () => navigate({ run: runSelect.value, hosts: [], start_ms: null, end_ms: null,
    ...(readState().tool === "diff" ? { tool: "overview_page", run2: null } : {}) }));
  window.addEventListener("hashchange", () => {
    delete main.dataset.ready;
    render().catch(reportError);
  });
  try {
    cache.config = await fetchJson(apiUrl("config"));
  } catch (err) {
    cache.config = { hideCaptureProfileButton: false };
    console.warn("config unavailable:", err.message);
  }
  initCaptureDialog({ hidden: Boolean(cache.config.hideCaptureProfileButton), onCaptured: () => getRuns(true) });
  document.body.dataset.configLoaded = "1";
  await render();
}

function reportError(err) {
  replaceChildren(main, errorPanel("Something went wrong", err));
}

start().catch(reportError);
