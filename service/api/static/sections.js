/* The dashboard's optional sections: programs, checkpoints and versions. app.js shows each tab
   only where the server's schema offers its routes, and calls these to draw them (the helpers,
   state and api() come from app.js). */
"use strict";

/* ---------- programs (offered by servers with TF1 graph mode) ---------- */
function renderPrograms(body, graph, view) {
  const table = h("table", { class: "grid" });
  body.append(h("div", { class: "card flush" }, table));
  guard(view, async () => {
    const data = await api(`/v1/graphs/${enc(graph)}/programs`);
    const items = data.programs || [];
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["Program", "Feeds", "Fetches", "Nodes"].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...(items.length ? items.map((p) => {
        const id = p.id;
        return h("tr", { class: "clickable", "data-program": id, onclick: () => { location.hash = `#/g/${enc(graph)}/programs/${enc(id)}`; } },
          h("td", { class: "mono" }, h("a", { href: `#/g/${enc(graph)}/programs/${enc(id)}` }, id.slice(0, 12))),
          h("td", { class: "mono small" }, (p.feeds || []).join(", ") || "–"),
          h("td", { class: "mono small" }, (p.fetches || []).join(", ") || "–"),
          h("td", { class: "num" }, fmtInt(p.n_nodes)));
      }) : [h("tr", {}, h("td", { colspan: 4, class: "muted empty" }, "No program registered in this graph."))])));
  })();
}

/* Nodes and edges of a program's outline (GET /v1/graphs/{g}/programs/{id}). */
function programGraph(p) {
  const nodes = (p.nodes || []).map((n) => {
    const label = n.kind === "layer" ? n.label : n.name.split("/").pop();
    let sub = n.kind === "layer" ? n.class : n.kind === "variable" ? `${n.access} ${n.variable}` : n.op;
    if (sub.toLowerCase() === label.toLowerCase()) sub = ""; // "sub" computed by Sub says it once
    return { id: n.name, label, kind: n.kind, sub,
      title: `${n.name}\n${n.op}${n.variable ? `\n${n.variable}` : ""}${n.layer ? `\nlayer ${n.layer}` : ""}`,
      inputs: n.inputs || [] };
  });
  const edges = nodes.flatMap((n) => n.inputs.map((src) => [src, n.id]));
  return { nodes, edges };
}

function renderProgram(main, graph, name) {
  const view = state.view;
  main.append(h("div", { class: "title-row" }, h("h1", { class: "mono" }, name.slice(0, 12)), badge("program", "class big"),
    h("span", { class: "muted", id: "program-summary" })));
  const box = h("div", { class: "card dag-card" });
  main.append(box);
  guard(view, async () => {
    const p = await api(`/v1/graphs/${enc(graph)}/programs/${enc(name)}`);
    const { nodes, edges } = programGraph(p);
    $("#program-summary").textContent = `${fmtInt(p.n_nodes)} nodes · feeds ${p.feeds.join(", ") || "none"} · ` +
      `fetches ${p.fetches.join(", ") || "none"}${p.truncated ? " · drawing the first nodes only" : ""}`;
    box.replaceChildren(nodes.length ? dagChart(nodes, edges, { label: `graph of program ${name}` })
      : h("p", { class: "muted" }, "This program has no node."));
    main.append(h("div", { class: "legend-row muted" }, ...[["placeholder", "feed"], ["layer", "layer call"],
      ["variable", "variable read / write"], ["op", "op"]].map(([k, label]) => h("span", {}, h("i", { class: `swatch kind-${k}` }), label))));
  })();
}

/* ---------- checkpoints and versions (offered by servers with named checkpoints) ---------- */
function renderCheckpoints(body, graph, view) {
  const nameInput = h("input", { class: "filter", placeholder: "checkpoint name", id: "checkpoint-name", "aria-label": "checkpoint name" });
  const message = h("span", { class: "muted", id: "checkpoint-message", role: "status" });
  const table = h("table", { class: "grid" });
  const load = guard(view, async () => {
    const data = await api(`/v1/graphs/${enc(graph)}/checkpoints`);
    const items = data.checkpoints || data.items || [];
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["Checkpoint", "Created", "Source", "Graph version", "Size", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...(items.length ? items.map((c) => checkpointRow(graph, c, message, load))
        : [h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, "No checkpoint yet."))])));
  });
  const create = async () => {
    const name = nameInput.value.trim();
    if (!name) return;
    try {
      await api(`/v1/graphs/${enc(graph)}/checkpoints`, { method: "POST", json: { name } });
      message.textContent = `Saved checkpoint ${name}.`;
      nameInput.value = "";
    } catch (e) { message.textContent = `Not saved: ${e.message}`; }
    await load();
  };
  body.append(h("div", { class: "toolbar" }, nameInput,
    h("button", { class: "primary", type: "button", id: "checkpoint-create", onclick: create }, "Save checkpoint"), message),
  h("div", { class: "card flush" }, table));
  load();
}

function checkpointRow(graph, c, message, reload) {
  const name = c.name || c.id;
  const restore = async (event) => {
    const button = event.currentTarget;
    if (!window.confirm(`Restore every variable of graph ${graph} from checkpoint ${name}?`)) return;
    button.disabled = true;
    try {
      const sep = state.features.restore || ":";
      await api(`/v1/graphs/${enc(graph)}/checkpoints/${enc(name)}${sep}restore`, { method: "POST", json: {} });
      message.textContent = `Restored checkpoint ${name}.`;
    } catch (e) { message.textContent = `Not restored: ${e.message}`; }
    button.disabled = false;
    await reload();
  };
  const size = c.bytes === undefined ? "–" : `${fmtNum(c.bytes / 1024, 3)} KiB`;
  return h("tr", { "data-checkpoint": name }, h("td", { class: "mono" }, name),
    h("td", { class: "nowrap" }, fmtTime(c.created || c.created_at || c.time)),
    h("td", {}, c.source === "upload" ? badge("uploaded") : badge("snapshot", "class")),
    h("td", { class: "num" }, c.version === null || c.version === undefined ? "–" : String(c.version)),
    h("td", { class: "num" }, size),
    h("td", { class: "actions" }, state.features.restore !== null
      ? h("button", { class: "primary small", type: "button", "data-restore": name, onclick: restore }, "Restore") : null));
}

function renderVersions(body, graph, view) {
  const table = h("table", { class: "grid" });
  body.append(h("div", { class: "card flush" }, table));
  guard(view, async () => {
    const data = await api(`/v1/graphs/${enc(graph)}/versions`);
    const items = [...(data.versions || data.items || [])].reverse(); // newest first
    table.replaceChildren(h("thead", {}, h("tr", {}, ...["Version", "Time", "Cause", "Variables"].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...(items.length ? items.map((v) => h("tr", { "data-version": v.version },
        h("td", { class: "num" }, String(v.version ?? v.revision ?? "–")), h("td", { class: "nowrap" }, fmtTime(v.time || v.created || v.created_at)),
        h("td", {}, badge(String(v.cause || v.reason || "commit"), v.checkpoint ? "class" : ""),
          v.checkpoint ? h("span", { class: "muted" }, ` from ${v.checkpoint}`) : null),
        h("td", { class: "mono small" }, Array.isArray(v.variables) ? v.variables.join(", ") : String(v.variables ?? "–"))))
        : [h("tr", {}, h("td", { colspan: 4, class: "muted empty" }, "No version recorded yet."))])));
  })();
}
