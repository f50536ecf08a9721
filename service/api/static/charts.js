/* Small SVG charts for the dashboard: histograms, sparklines, line and bar charts, and a
   layered drawing of a directed graph. Every label is set as text (never parsed as markup). */
(() => {
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const child of children) {
    if (child == null) continue;
    el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/* A number in at most 4 significant digits, switching to exponents for very small or large values. */
function fmtNum(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

/* Bars of a histogram: edges has one more entry than counts. */
function histogramChart(edges, counts, opts = {}) {
  const W = opts.width || 320, H = opts.height || 120, padL = 34, padB = 18, padT = 6, padR = 6;
  const svg = svgEl("svg", { class: "chart histogram", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": opts.label || "histogram" });
  if (!counts || counts.length === 0) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, "no finite values"));
    return svg;
  }
  const maxCount = Math.max(...counts, 1);
  const plotW = W - padL - padR, plotH = H - padT - padB, bw = plotW / counts.length;
  svg.appendChild(svgEl("line", { x1: padL, y1: padT + plotH, x2: W - padR, y2: padT + plotH, class: "axis" }));
  counts.forEach((c, i) => {
    const h = (c / maxCount) * plotH;
    const bar = svgEl("rect", { class: "bar", x: (padL + i * bw + 0.5).toFixed(2), y: (padT + plotH - h).toFixed(2),
      width: Math.max(bw - 1, 0.5).toFixed(2), height: h.toFixed(2), "data-count": c });
    bar.appendChild(svgEl("title", {}, `[${fmtNum(edges[i])}, ${fmtNum(edges[i + 1])}): ${c}`));
    svg.appendChild(bar);
  });
  svg.appendChild(svgEl("text", { x: padL - 4, y: padT + 8, class: "tick", "text-anchor": "end" }, String(maxCount)));
  svg.appendChild(svgEl("text", { x: padL - 4, y: padT + plotH, class: "tick", "text-anchor": "end" }, "0"));
  svg.appendChild(svgEl("text", { x: padL, y: H - 4, class: "tick" }, fmtNum(edges[0])));
  svg.appendChild(svgEl("text", { x: W - padR, y: H - 4, class: "tick", "text-anchor": "end" },
    fmtNum(edges[edges.length - 1])));
  return svg;
}

/* One or more series over time (arrays of numbers or nulls, oldest first), on a shared y scale from 0. */
function lineChart(series, opts = {}) {
  const W = opts.width || 260, H = opts.height || 70, padT = 6, padB = 4, padL = 2, padR = 2;
  const svg = svgEl("svg", { class: "chart line", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
    role: "img", "aria-label": opts.label || "chart" });
  const n = Math.max(opts.points || 0, ...series.map((s) => s.values.length), 2);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const top = Math.max(opts.min || 0, ...all, 1e-9) * 1.15;
  const x = (i, len) => padL + ((n - len + i) / (n - 1)) * (W - padL - padR);
  const y = (v) => padT + (1 - v / top) * (H - padT - padB);
  svg.appendChild(svgEl("line", { x1: padL, y1: H - padB, x2: W - padR, y2: H - padB, class: "axis" }));
  for (const s of series) {
    const pts = [];
    s.values.forEach((v, i) => { if (v !== null && v !== undefined) pts.push([x(i, s.values.length), y(v)]); });
    if (pts.length === 0) continue;
    const line = pts.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ");
    if (s.fill) {
      const area = `${pts[0][0].toFixed(1)},${H - padB} ${line} ${pts[pts.length - 1][0].toFixed(1)},${H - padB}`;
      svg.appendChild(svgEl("polygon", { points: area, class: `area ${s.cls || ""}` }));
    }
    svg.appendChild(svgEl("polyline", { points: line, class: `series ${s.cls || ""}` }));
  }
  return svg;
}

/* Counts by category (e.g. runs by requests carried), as labelled bars. */
function barChart(entries, opts = {}) {
  const W = opts.width || 260, H = opts.height || 70, padB = 14, padT = 4;
  const svg = svgEl("svg", { class: "chart bars", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": opts.label || "bar chart" });
  if (entries.length === 0) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, opts.empty || "no data"));
    return svg;
  }
  const max = Math.max(...entries.map((e) => e[1]), 1);
  const bw = W / entries.length;
  entries.forEach(([label, value], i) => {
    const h = (value / max) * (H - padB - padT);
    const bar = svgEl("rect", { class: "bar", x: (i * bw + 2).toFixed(1), y: (H - padB - h).toFixed(1),
      width: Math.max(bw - 4, 1).toFixed(1), height: h.toFixed(1) });
    bar.appendChild(svgEl("title", {}, `${label}: ${value}`));
    svg.appendChild(bar);
    svg.appendChild(svgEl("text", { x: (i * bw + bw / 2).toFixed(1), y: H - 3, class: "tick", "text-anchor": "middle" },
      String(label)));
  });
  return svg;
}

/* A directed graph drawn in layers (longest path from the sources), left to right.
   nodes: [{id, label, kind}], edges: [[from, to]]. */
function dagChart(nodes, edges, opts = {}) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const [a, b] of edges) if (byId.has(a) && byId.has(b)) preds.get(b).push(a);
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle: draw it anyway
    visiting.add(id);
    const d = Math.max(-1, ...preds.get(id).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  nodes.forEach((n) => depthOf(n.id));
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n);
  const NW = 150, NH = 34, GX = 56, GY = 18, pad = 12;
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((n, r) => pos.set(n.id, [pad + c * (NW + GX), pad + r * (NH + GY)])));
  const W = pad * 2 + columns.length * (NW + GX) - GX;
  const H = pad * 2 + Math.max(...columns.map((c) => c.length)) * (NH + GY) - GY;
  const svg = svgEl("svg", { class: "chart dag", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": opts.label || "program graph" });
  svg.style.maxWidth = `${W}px`; // fit the card, never drawn larger than life
  svg.appendChild(svgEl("defs", {}, svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svgEl("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  for (const [a, b] of edges) {
    if (!pos.has(a) || !pos.has(b)) continue;
    const [x1, y1] = pos.get(a), [x2, y2] = pos.get(b);
    const sx = x1 + NW, sy = y1 + NH / 2, tx = x2, ty = y2 + NH / 2, mx = (sx + tx) / 2;
    svg.appendChild(svgEl("path", { d: `M${sx},${sy} C${mx},${sy} ${mx},${ty} ${tx},${ty}`, class: "edge",
      "marker-end": "url(#arrow)" }));
  }
  for (const n of nodes) {
    const [x, y] = pos.get(n.id);
    const g = svgEl("g", { class: `node kind-${(n.kind || "op").replace(/[^a-z0-9_-]/gi, "")}`, "data-node": n.id,
      transform: `translate(${x},${y})` });
    g.appendChild(svgEl("rect", { width: NW, height: NH, rx: n.kind === "layer" ? 6 : 17 }));
    const label = n.label.length > 22 ? n.label.slice(0, 21) + "…" : n.label;
    g.appendChild(svgEl("text", { x: NW / 2, y: n.sub ? 14 : 21, "text-anchor": "middle", class: "label" }, label));
    if (n.sub) g.appendChild(svgEl("text", { x: NW / 2, y: 27, "text-anchor": "middle", class: "sub" }, n.sub.slice(0, 26)));
    g.appendChild(svgEl("title", {}, n.title || n.label));
    svg.appendChild(g);
  }
  return svg;
}

window.charts = { svgEl, fmtNum, histogramChart, lineChart, barChart, dagChart };
})();
