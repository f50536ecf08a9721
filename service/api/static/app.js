/* The layerserve dashboard: graphs -> layers -> variables, live figures, and the views of
   programs, checkpoints and versions where the server offers those routes.
   Every call goes through api(), which adds the bearer token; text from the server is only
   ever set as text. */
"use strict";

const { fmtNum, histogramChart, lineChart, barChart, dagChart } = window.charts;

const POLL_MS = 2000;
const HISTORY = 90; // points kept per live series (3 minutes at 2 s)
const MIN_POINTS = 30; // the charts span at least a minute, so early points do not stretch
const PAGE_SIZE = 50;
const TOKEN_KEY = "layerserve.token";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  graphs: [],
  features: { programs: false, checkpoints: false, versions: false, restore: null },
  timers: [],
  history: new Map(), // "graph/layerId" -> {rps: [], p50: [], p99: [], eps: []}
  view: 0, // bumps on every route change: late answers of a left view are dropped
  layerPage: new Map(), // graph -> {page, filter}
};

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

/* ---------- DOM helpers ---------- */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;

function badge(text, cls) { return h("span", { class: `badge ${cls || ""}` }, text); }
function yesNo(v) { return badge(v ? "yes" : "no", v ? "yes" : "no"); }
function shape(s) { return s === null || s === undefined ? "–" : `[${s.map((d) => (d === null ? "None" : d)).join(", ")}]`; }
function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
function fmtMs(x) { return x === null || x === undefined ? "–" : `${fmtNum(x, 3)} ms`; }
function fmtRate(x) { return x === null || x === undefined ? "–" : `${fmtNum(x, 3)}/s`; }
function fmtTime(t) {
  if (t === null || t === undefined) return "–";
  const d = typeof t === "number" ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/* ---------- the API ---------- */
async function api(path, opts = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let body;
  if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.json); }
  const resp = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store" });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (resp.status === 401) {
    showLogin(state.token ? "The server refused this token." : "");
    throw new ApiError(401, "sign in first", "unauthorized");
  }
  if (!resp.ok) {
    const err = data && data.error;
    const message = err && typeof err === "object" ? err.message : err || text || resp.statusText;
    throw new ApiError(resp.status, message, err && err.code);
  }
  return data;
}

/* ---------- sign in ---------- */
function showLogin(message) {
  stopTimers();
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#server-status").replaceChildren();
  $("#crumbs").replaceChildren();
  $("#main").replaceChildren(); // nothing of the state stays in the page
  $("#graph-list").replaceChildren();
  state.graphs = [];
  state.history.clear();
  $("#login").hidden = false;
  const error = $("#login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("#token-input").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  state.token = token;
  try {
    await api("/v1/graphs");
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) showLogin(`The server answered: ${e.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token-input").value = "";
  await start();
}

function signOut() {
  showLogin("");
  $("#login-error").hidden = true;
}

/* ---------- start ---------- */
async function start() {
  let graphs;
  try {
    graphs = await api("/v1/graphs");
  } catch (e) {
    if (e.status === 401) return; // the sign-in form is up
    if (e.status === 403) return showLogin("This token may not list graphs: use a token for every graph.");
    $("#app").hidden = false;
    $("#main").replaceChildren(errorCard(e));
    return;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = !state.token;
  state.graphs = graphs.graphs || [];
  await detectFeatures();
  renderGraphList();
  serverStatus();
  route();
}

/* The optional sections appear when the server's schema lists their routes. */
async function detectFeatures() {
  let schema;
  try { schema = await api("/openapi.json"); } catch { return; }
  const norm = (p) => p.replace(/\{[^}]+\}/g, "{}");
  const paths = Object.keys(schema.paths || {}).map(norm);
  const readable = new Set(Object.entries(schema.paths || {}).filter(([, ops]) => ops.get).map(([p]) => norm(p)));
  const has = (p) => readable.has(p);
  state.features.programs = has("/v1/graphs/{}/programs");
  state.features.checkpoints = has("/v1/graphs/{}/checkpoints");
  state.features.versions = has("/v1/graphs/{}/versions");
  const restore = paths.find((p) => /^\/v1\/graphs\/\{\}\/checkpoints\/\{\}[:/.]restore$/.test(p));
  state.features.restore = restore ? restore.slice(restore.length - 8, restore.length - 7) : null; // ":" or "/"
}

async function serverStatus() {
  const box = $("#server-status");
  try {
    const resp = await fetch("/readyz", { cache: "no-store" });
    const ready = await resp.json();
    box.replaceChildren(
      h("span", { class: `dot ${ready.ready ? "ok" : "bad"}` }), ready.ready ? "ready" : "not ready",
      h("span", { class: "sep" }), (ready.providers || []).join(", ") || "no provider",
      h("span", { class: "sep" }), `store: ${ready.store}`,
      h("span", { class: "sep" }), `ORT ${ready.onnxruntime}`);
  } catch { box.replaceChildren(h("span", { class: "dot bad" }), "unreachable"); }
}

function renderGraphList() {
  const filter = ($("#graph-filter").value || "").toLowerCase();
  const current = parseRoute().graph;
  const items = state.graphs.filter((g) => g.toLowerCase().includes(filter)).map((g) =>
    h("li", { class: g === current ? "active" : "", "data-graph": g },
      h("a", { href: `#/g/${enc(g)}` }, g)));
  $("#graph-list").replaceChildren(...(items.length ? items : [h("li", { class: "muted empty" }, "no graph")]));
}

/* ---------- routing ---------- */
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "g" || !parts[1]) return { name: "home" };
  const graph = parts[1];
  if (parts[2] === "l" && parts[3]) return { name: "layer", graph, layer: parts[3] };
  if (parts[2] === "programs" && parts[3]) return { name: "program", graph, program: parts[3] };
  return { name: "graph", graph, tab: parts[2] || "layers" };
}

function stopTimers() { state.timers.forEach(clearInterval); state.timers = []; }
function every(ms, fn) { fn(); state.timers.push(setInterval(fn, ms)); }

function route() {
  if (!$("#login").hidden) return;
  stopTimers();
  state.view += 1;
  const r = parseRoute();
  renderGraphList();
  api("/v1/graphs").then((d) => { state.graphs = d.graphs || []; renderGraphList(); }).catch(() => {});
  renderCrumbs(r);
  const main = $("#main");
  main.replaceChildren();
  if (r.name === "home") return renderHome(main);
  if (r.name === "layer") return renderLayer(main, r.graph, r.layer);
  if (r.name === "program") return renderProgram(main, r.graph, r.program);
  return renderGraph(main, r.graph, r.tab);
}

function renderCrumbs(r) {
  const items = [h("a", { href: "#/" }, "Graphs")];
  if (r.graph) items.push(h("span", { class: "sep" }, "/"), h("a", { href: `#/g/${enc(r.graph)}` }, r.graph));
  if (r.name === "layer") items.push(h("span", { class: "sep" }, "/"), h("span", { id: "crumb-layer" }, r.layer));
  if (r.name === "program") items.push(h("span", { class: "sep" }, "/"), h("span", {}, `program ${r.program.slice(0, 12)}`));
  $("#crumbs").replaceChildren(...items);
}

function errorCard(e) {
  return h("div", { class: "card error-card", role: "alert" }, h("strong", {}, `Error ${e.status || ""}`), " ",
    e.message || String(e));
}

function guard(view, fn) {
  return async (...args) => {
    if (view !== state.view) return;
    try { await fn(...args); } catch (e) {
      if (view === state.view && !(e instanceof ApiError && e.status === 401)) console.warn(e);
    }
  };
}

/* ---------- home ---------- */
async function renderHome(main) {
  main.appendChild(h("h1", {}, "Graphs"));
  const cfg = await api("/v1/config").catch(() => null);
  const list = h("div", { class: "cards" }, ...state.graphs.map((g) =>
    h("a", { class: "card graph-card", href: `#/g/${enc(g)}`, "data-graph": g },
      h("div", { class: "graph-name" }, g), h("div", { class: "muted" }, "open graph →"))));
  main.appendChild(state.graphs.length ? list : h("p", { class: "muted" }, "No graph yet: create a layer to make one."));
  if (cfg) {
    const rows = ["host", "port", "state_dir", "store", "providers", "batching", "max_batch_size",
      "max_queue_delay_ms", "max_layers_per_graph", "token"].filter((k) => k in cfg)
      .map((k) => [k, Array.isArray(cfg[k]) ? cfg[k].join(", ") : cfg[k] === null ? "–" : String(cfg[k])]);
    main.appendChild(h("h2", {}, "Server"));
    main.appendChild(h("div", { class: "card narrow" }, propertyGrid(rows)));
  }
}

function propertyGrid(rows) {
  return h("dl", { class: "props" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-prop": k }, v)]));
}

/* ---------- graph ---------- */
function tabs(graph, active) {
  const list = [["layers", "Layers"], ["live", "Live"]];
  if (state.features.programs) list.push(["programs", "Programs"]);
  if (state.features.checkpoints) list.push(["checkpoints", "Checkpoints"]);
  if (state.features.versions) list.push(["versions", "Versions"]);
  return h("nav", { class: "tabs" }, ...list.map(([id, label]) =>
    h("a", { href: `#/g/${enc(graph)}/${id}`, class: id === active ? "active" : "", "data-tab": id }, label)));
}

function renderGraph(main, graph, tab) {
  main.appendChild(h("div", { class: "title-row" }, h("h1", {}, graph), h("span", { class: "muted", id: "graph-summary" })));
  main.appendChild(tabs(graph, tab));
  const body = h("section", { class: "tab-body" });
  main.appendChild(body);
  const view = state.view;
  if (tab === "live") return renderLive(body, graph, view);
  if (tab === "programs" && state.features.programs) return renderPrograms(body, graph, view);
  if (tab === "checkpoints" && state.features.checkpoints) return renderCheckpoints(body, graph, view);
  if (tab === "versions" && state.features.versions) return renderVersions(body, graph, view);
  return renderLayers(body, graph, view);
}

function rememberFigures(graph, figures) {
  const seen = new Set();
  for (const [id, f] of Object.entries(figures.layers || {})) {
    seen.add(id);
    pushHistory(graph, id, f);
  }
  for (const key of state.history.keys()) {
    const [g, id] = splitKey(key);
    if (g === graph && !seen.has(id)) pushHistory(graph, id, null);
  }
}
function splitKey(key) { const i = key.indexOf("/"); return [key.slice(0, i), key.slice(i + 1)]; }
function pushHistory(graph, id, f) {
  const key = `${graph}/${id}`;
  const hist = state.history.get(key) || { rps: [], p50: [], p99: [], eps: [] };
  const add = (arr, v) => { arr.push(v); if (arr.length > HISTORY) arr.shift(); };
  add(hist.rps, f ? f.requests_per_s : 0);
  add(hist.eps, f ? f.errors_per_s : 0);
  add(hist.p50, f ? f.p50_ms : null);
  add(hist.p99, f ? f.p99_ms : null);
  state.history.set(key, hist);
}

async function fetchFigures(graph) {
  const figures = await api(`/v1/graphs/${enc(graph)}/figures?window=10`);
  rememberFigures(graph, figures);
  return figures;
}

function renderLayers(body, graph, view) {
  const saved = state.layerPage.get(graph) || { page: 0, filter: "" };
  state.layerPage.set(graph, saved);
  const filter = h("input", { class: "filter", type: "search", placeholder: "Filter by name, class or scope",
    value: saved.filter, "aria-label": "filter layers", id: "layer-filter" });
  const pager = h("div", { class: "pager" });
  const table = h("table", { class: "grid layers-table" });
  body.append(h("div", { class: "toolbar" }, filter, pager), h("div", { class: "card flush" }, table));
  let layers = [];
  let figures = { layers: {} };
  const draw = () => {
    const q = saved.filter.toLowerCase();
    const shown = q ? layers.filter((l) => [l.name, l.class, l.scope_name || "", l.id].some((s) => s.toLowerCase().includes(q))) : layers;
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    saved.page = Math.min(saved.page, pages - 1);
    const first = saved.page * PAGE_SIZE;
    const rows = shown.slice(first, first + PAGE_SIZE).map((l) => layerRow(graph, l, figures.layers[l.id]));
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["Name", "Class", "Scope", "dtype", "Trainable", "Built",
      "Params", "Provider", "req/s", "p99"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 10, class: "muted empty" },
      layers.length ? "No layer matches the filter." : "This graph has no layer yet."))])));
    pager.replaceChildren(
      h("span", { class: "muted", id: "layer-count" }, shown.length
        ? `${fmtInt(first + 1)}–${fmtInt(Math.min(first + PAGE_SIZE, shown.length))} of ${fmtInt(shown.length)}`
        : "0 layers"),
      h("button", { class: "ghost", type: "button", disabled: saved.page === 0, id: "page-prev",
        onclick: () => { saved.page -= 1; draw(); } }, "‹ Prev"),
      h("button", { class: "ghost", type: "button", disabled: saved.page >= pages - 1, id: "page-next",
        onclick: () => { saved.page += 1; draw(); } }, "Next ›"));
    const params = layers.reduce((s, l) => s + (l.count_params || 0), 0);
    const summary = $("#graph-summary");
    if (summary) summary.textContent = `${fmtInt(layers.length)} layers · ${fmtInt(params)} parameters`;
  };
  filter.addEventListener("input", () => { saved.filter = filter.value; saved.page = 0; draw(); });
  every(10000, guard(view, async () => { layers = (await api(`/v1/graphs/${enc(graph)}/layers`)).layers; draw(); }));
  every(POLL_MS, guard(view, async () => { figures = await fetchFigures(graph); if (layers.length) draw(); }));
}

function layerRow(graph, l, f) {
  return h("tr", { "data-layer": l.id, class: "clickable", onclick: () => { location.hash = `#/g/${enc(graph)}/l/${enc(l.id)}`; } },
    h("td", {}, h("a", { href: `#/g/${enc(graph)}/l/${enc(l.id)}` }, l.name)),
    h("td", {}, badge(l.class, "class")),
    h("td", { class: "mono" }, l.scope_name || "–"),
    h("td", { class: "mono" }, l.dtype || "–"),
    h("td", {}, yesNo(l.trainable)),
    h("td", {}, yesNo(l.built)),
    h("td", { class: "num" }, fmtInt(l.count_params)),
    h("td", { class: "mono small" }, (l.providers || []).map((p) => p.replace("ExecutionProvider", "")).join(", ")),
    h("td", { class: "num" }, f ? fmtNum(f.requests_per_s, 3) : "–"),
    h("td", { class: "num" }, f ? fmtMs(f.p99_ms) : "–"));
}

/* ---------- live (the graph's busiest layers) ---------- */
function renderLive(body, graph, view) {
  const table = h("table", { class: "grid live-table" });
  body.append(h("p", { class: "muted" }, "Applies and inferences of the last 10 seconds, refreshed every 2 seconds."),
    h("div", { class: "card flush" }, table));
  every(POLL_MS, guard(view, async () => {
    const figures = await fetchFigures(graph);
    const entries = Object.entries(figures.layers).sort((a, b) => b[1].requests_per_s - a[1].requests_per_s);
    const rows = entries.map(([id, f]) => {
      const hist = state.history.get(`${graph}/${id}`);
      return h("tr", { "data-layer": id, class: "clickable", onclick: () => { location.hash = `#/g/${enc(graph)}/l/${enc(id)}`; } },
        h("td", {}, h("a", { href: `#/g/${enc(graph)}/l/${enc(id)}` }, f.name)),
        h("td", { class: "num" }, fmtRate(f.requests_per_s)),
        h("td", { class: "spark" }, lineChart([{ values: hist.rps, cls: "rps", fill: true }], { width: 160, height: 28, points: MIN_POINTS })),
        h("td", { class: "num" }, fmtMs(f.p50_ms)), h("td", { class: "num" }, fmtMs(f.p99_ms)),
        h("td", { class: "num" }, f.batch.mean === null ? "–" : fmtNum(f.batch.mean, 3)),
        h("td", { class: `num ${f.errors ? "bad" : ""}` }, fmtInt(f.errors)),
        h("td", { class: "num" }, fmtInt(f.total_requests)));
    });
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["Layer", "req/s", "recent", "p50", "p99", "batch (mean)",
      "errors", "total"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 8, class: "muted empty" },
      "No traffic in the last 10 seconds."))])));
  }));
}

/* ---------- layer ---------- */
async function renderLayer(main, graph, ref) {
  const view = state.view;
  let layer;
  try { layer = await api(`/v1/graphs/${enc(graph)}/layers/${enc(ref)}`); } catch (e) {
    if (view === state.view) main.replaceChildren(errorCard(e));
    return;
  }
  if (view !== state.view) return;
  const crumb = $("#crumb-layer");
  if (crumb) crumb.textContent = layer.name;
  const header = h("div", { class: "title-row" }, h("h1", { id: "layer-name" }, layer.name), badge(layer.class, "class big"),
    h("span", { class: "muted mono" }, `id ${layer.id}`), h("span", { class: "muted", id: "layer-version" }, `version ${layer.version}`));
  const props = h("div", { class: "card" });
  const config = h("div", { class: "card" });
  const live = h("div", { class: "card live-card" });
  const vars = h("div", { class: "variables" });
  main.append(header,
    h("div", { class: "two-col" },
      h("section", {}, h("h2", {}, "Layer"), props),
      h("section", {}, h("h2", {}, "Live figures ", h("span", { class: "muted small" }, "last 10 s, refreshing")), live)),
    h("h2", {}, "Config"), config,
    h("h2", {}, "Variables"), vars);
  drawProps(props, config, layer);
  let version = null;
  every(POLL_MS, guard(view, async () => {
    const current = await api(`/v1/graphs/${enc(graph)}/layers/${enc(layer.id)}`);
    if (current.version !== version) {
      const stats = await api(`/v1/graphs/${enc(graph)}/layers/${enc(layer.id)}/statistics?bins=30`);
      if (view !== state.view) return;
      version = current.version;
      drawProps(props, config, current);
      $("#layer-version").textContent = `version ${current.version}`;
      drawVariables(vars, stats);
    }
    const figures = await fetchFigures(graph);
    if (view === state.view) drawLive(live, graph, layer.id, figures.layers[layer.id]);
  }));
}

function drawProps(card, configCard, l) {
  const providers = (l.providers || []).join(", ");
  card.replaceChildren(propertyGrid([
    ["class", l.class], ["name", l.name], ["scope", l.scope_name || "–"], ["dtype", l.dtype || "–"],
    ["trainable", yesNo(l.trainable)], ["built", yesNo(l.built)], ["count_params", fmtInt(l.count_params)],
    ["provider", providers || "–"], ["build input shape", shape(l.build_input_shape)],
    ["pending updates", fmtInt(l.n_updates)], ["losses", fmtInt(l.n_losses)],
    ["batching", Object.keys(l.batching || {}).length ? JSON.stringify(l.batching) : "server defaults"],
  ]));
  configCard.replaceChildren(h("pre", { class: "mono config", id: "layer-config" }, JSON.stringify(l.config, null, 2)));
}

function figure(name, value, chart, cls, legend) {
  return h("div", { class: `figure ${cls || ""}` }, h("div", { class: "figure-label" }, name, legend || null),
    h("div", { class: "figure-value", "data-figure": name }, value), chart);
}

function drawLive(card, graph, id, f) {
  const hist = state.history.get(`${graph}/${id}`) || { rps: [], p50: [], p99: [], eps: [] };
  const sizes = f ? Object.entries(f.batch.sizes).map(([k, v]) => [k, v]) : [];
  card.replaceChildren(h("div", { class: "figures" },
    figure("requests/s", f ? fmtNum(f.requests_per_s, 3) : "0",
      lineChart([{ values: hist.rps, cls: "rps", fill: true }], { points: MIN_POINTS, label: "requests per second" })),
    figure("latency p50 / p99", f && f.p50_ms !== null ? `${fmtNum(f.p50_ms, 3)} / ${fmtNum(f.p99_ms, 3)} ms` : "–",
      lineChart([{ values: hist.p99, cls: "p99" }, { values: hist.p50, cls: "p50" }], { points: MIN_POINTS, label: "latency" }),
      "", h("span", { class: "legend" }, h("i", { class: "p50" }), "p50", h("i", { class: "p99" }), "p99")),
    figure("batch sizes", f && f.batch.runs ? `mean ${fmtNum(f.batch.mean, 3)} · max ${f.batch.max}` : "–",
      barChart(sizes, { label: "runs by requests carried", empty: "no run in the window" }), "",
      h("span", { class: "legend muted" }, "requests per run")),
    figure("errors/s", f ? fmtNum(f.errors_per_s, 3) : "0",
      lineChart([{ values: hist.eps, cls: "errors", fill: true }], { points: MIN_POINTS, label: "errors per second" }),
      f && f.errors ? "bad" : ""),
  ), h("div", { class: "totals muted" }, "since start: ",
    h("span", { "data-figure": "total_requests" }, fmtInt(f ? f.total_requests : 0)), " requests, ",
    h("span", { "data-figure": "total_errors" }, fmtInt(f ? f.total_errors : 0)), " errors"));
}

function drawVariables(box, stats) {
  if (!stats.variables.length) {
    box.replaceChildren(h("p", { class: "muted" }, "This layer has no variables (yet: built layers with weights show them here)."));
    return;
  }
  box.replaceChildren(...stats.variables.map((v) => h("div", { class: "card variable", "data-variable": v.name },
    h("div", { class: "var-head" }, h("span", { class: "mono var-name" }, v.name),
      h("span", { class: "muted" }, `${shape(v.shape)} · ${v.dtype}`), v.trainable ? badge("trainable", "yes") : badge("frozen", "no")),
    h("div", { class: "stats" }, ...[["min", v.min], ["max", v.max], ["mean", v.mean], ["std", v.std]].map(([k, x]) =>
      h("div", { class: "stat" }, h("span", { class: "stat-label" }, k), h("span", { class: "stat-value", "data-stat": k }, fmtNum(x))))),
    histogramChart(v.histogram.edges, v.histogram.counts, { label: `histogram of ${v.name}` }),
    v.nan || v.inf ? h("p", { class: "error" }, `${v.nan} NaN and ${v.inf} infinite values left out`) : null)));
}

/* ---------- wiring ---------- */
document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#graph-filter").addEventListener("input", renderGraphList);
  window.addEventListener("hashchange", route);
  start();
});
