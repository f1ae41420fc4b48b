// The dashboard page: receives the run's records over Socket.IO and draws them.
//
// The server sends "history" (every record so far: on connecting, and when a new run starts)
// and then "records" (small batches of new ones). A record is one line of logs/metrics.jsonl:
// {type: "run" | "train" | "eval" | "sample" | "checkpoint" | "end", step, ...}.
// Charts are uPlot (vendor/uPlot.iife.min.js); nothing is fetched from the internet.
//
// Records are data, never markup: every string goes into the page as text (textContent,
// createElement; never innerHTML), so a metric named `val_<img onerror=...>` is shown as those
// characters. A number may arrive as the text "NaN" or "Infinity" (the server sends those as
// strings: JSON has no such numbers): it is shown as that word, and charts leave a gap.
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const LABELS = {val_loss: "val loss", val_bpb: "bits per byte (val)", val_ppl: "perplexity (val)"};

let state;  // everything drawn, rebuilt from the records
let charts = {};  // id -> {plot, series: [[record key, label], ...]}

function emptyState() {
  return {run: null, end: null, train: [], eval: [], samples: [], checkpoints: []};
}

// ---- records in ----

function apply(record) {
  if (record === null || typeof record !== "object" || typeof record.step !== "number") return;
  switch (record.type) {
    case "run": state.run = record; state.end = null; break;  // a new session of the run
    case "end": state.end = record; break;
    case "train": state.train.push(record); break;
    case "eval": state.eval.push(record); break;
    case "sample": state.samples.push(record); break;
    case "checkpoint": state.checkpoints.push(record); break;
  }
}

function tokensAt(step) {
  const perStep = state.run ? number(state.run.tokens_per_step) || 0 : 0;
  return step * perStep;
}

// ---- charts ----

function makeChart(id, series) {
  const element = document.getElementById(id);
  const uplotSeries = [{label: xAxis()}].concat(series.map(([name, label], i) => ({
    label: label, stroke: COLORS[i % COLORS.length], width: 2,
    spanGaps: true,  // validation points are sparser than training points: join them
    points: {show: name.startsWith("val_")},
  })));
  const options = {
    width: chartWidth(element), height: 220,
    scales: {x: {time: false}},  // steps or tokens, not dates
    series: uplotSeries,
    axes: [{label: xAxis()}, {size: 60}],
    legend: {live: true},
  };
  charts[id] = {plot: new uPlot(options, [[]].concat(series.map(() => [])), element),
                series: series};
}

function ensureMetricCharts() {
  // One chart per validation metric other than the loss (which shares the loss chart).
  for (const record of state.eval) {
    for (const key of Object.keys(record)) {
      if (!key.startsWith("val_") || key === "val_loss" || key === "val_ppl") continue;
      const id = "chart-" + key;
      if (charts[id]) continue;
      const figure = document.createElement("figure");
      figure.className = "chart";
      figure.id = id;
      figure.dataset.points = "0";
      const caption = document.createElement("figcaption");
      caption.textContent = LABELS[key] || key.replace(/_/g, " ");
      figure.appendChild(caption);
      document.getElementById("charts").appendChild(figure);
      makeChart(id, [[key, LABELS[key] || key]]);
    }
  }
}

function xAxis() {
  return document.querySelector("input[name=xaxis]:checked").value;
}

function chartWidth(element) {
  return Math.max(280, element.clientWidth - 8);
}

// Aligned columns for uPlot: one x per step that has any value, null where a series has none.
function columns(series, sources) {
  const rows = new Map();
  for (const [name, records] of sources) {
    for (const record of records) {
      if (!(name in record)) continue;
      if (!rows.has(record.step)) rows.set(record.step, {});
      rows.get(record.step)[name] = number(record[name]);  // not a number: a gap
    }
  }
  const steps = [...rows.keys()].sort((a, b) => a - b);
  const x = xAxis() === "tokens" ? steps.map(tokensAt) : steps;
  return [x].concat(series.map(([name]) => steps.map((s) => rows.get(s)[name] ?? null)));
}

function redrawCharts() {
  ensureMetricCharts();
  for (const [id, chart] of Object.entries(charts)) {
    const sources = chart.series.map(([name]) =>
      [name, name.startsWith("val_") ? state.eval : state.train]);
    const data = columns(chart.series, sources);
    chart.plot.setData(data);
    const first = data[1] || [];
    document.getElementById(id).dataset.points = String(first.filter((v) => v !== null).length);
  }
}

// ---- text panels ----

// A finite number, or null (a string such as "NaN", a missing value).
function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

// `value` with `digits` decimals; the word itself for "NaN", "Infinity" (or any other text).
function fixed(value, digits) {
  if (number(value) !== null) return value.toFixed(digits);
  return value === undefined || value === null ? "–" : String(value);
}

function compact(n) {
  if (number(n) === null) return fixed(n, 0);
  const units = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
  for (const [size, unit] of units) if (Math.abs(n) >= size) return (n / size).toFixed(2) + unit;
  return String(Math.round(n * 100) / 100);
}

function duration(seconds) {
  if (number(seconds) === null) return fixed(seconds, 0);
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}m ${String(s % 60).padStart(2, "0")}s`;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function drawProgress() {
  const last = state.train[state.train.length - 1];
  const step = Math.max(last ? last.step : 0, state.end ? state.end.step : 0,
                        state.run ? state.run.step : 0);
  const max = state.run ? number(state.run.max_steps) || 0 : 0;
  document.body.dataset.step = String(step);
  setText("step", max ? `${step} / ${max}` : String(step));
  document.getElementById("bar-fill").style.width = max ? `${(100 * step) / max}%` : "0";
  setText("loss", last ? fixed(last.loss, 4) : "–");
  const losses = state.eval.map((e) => number(e.val_loss)).filter((v) => v !== null);
  setText("best", losses.length ? losses.reduce((a, b) => Math.min(a, b)).toFixed(4) : "–");
  setText("speed", last ? compact(last.tokens_per_sec) : "–");
  setText("tokens", last ? compact(last.tokens) : "–");
  setText("elapsed", last ? duration(last.elapsed) : "–");
  setText("eta", state.end ? "–" : last ? duration(last.eta) : "–");

  let status = "waiting", text = "waiting for the run";
  if (state.end) {
    status = state.end.reason === "done" ? "finished" : "stopped";
    text = state.end.reason === "done" ? "finished" : `stopped (${state.end.reason})`;
  } else if (state.run) {
    status = "training";
    text = state.run.resumed ? "training (resumed)" : "training";
  }
  document.body.dataset.status = status;
  const badge = document.getElementById("status");
  badge.className = "badge " + status;
  badge.textContent = text;
}

function drawFacts() {
  const run = state.run;
  const rows = run ? [
    ["model", `${run.architecture} · preset ${run.preset}`],
    ["parameters", compact(run.parameters)],
    ["shape", `${run.layers} layers · width ${run.dim} · ${run.heads} heads`],
    ["context", `${run.context} tokens`], ["vocabulary", `${run.vocab_size} tokens`],
    ["device", run.processes > 1 ? `${run.processes} processes (${run.parallelism}) · ${run.device}`
                                  : run.device],
    ["precision", run.precision],
    ["dataset", `${compact(run.train_tokens)} train · ${compact(run.val_tokens)} val tokens`],
    ["tokens per step", compact(run.tokens_per_step)], ["started", run.started],
  ] : [];
  const body = document.querySelector("#facts tbody");
  body.replaceChildren(...rows.map(([key, value]) => {
    const row = document.createElement("tr");
    for (const text of [key, value]) {
      const cell = document.createElement("td");
      cell.textContent = text;  // textContent: sample text and paths are never parsed as HTML
      row.appendChild(cell);
    }
    return row;
  }));
}

function drawList(id, records, describe, limit) {
  const items = records.slice(-limit).reverse().map((record) => {
    const item = document.createElement("li");
    describe(item, record);
    return item;
  });
  document.getElementById(id).replaceChildren(...items);
}

function drawPanels() {
  drawFacts();
  drawList("samples", state.samples, (item, r) => {
    const head = document.createElement("span");
    head.className = "step";
    head.textContent = `step ${r.step}`;
    const prompt = document.createElement("b");
    prompt.textContent = String(r.prompt ?? "");
    const text = document.createTextNode(String(r.text ?? ""));
    if (r.continues === false) {  // bert, t5: the prompt comes back with its blanks filled in
      item.append(head, prompt, document.createElement("br"), text);
    } else {  // gpt: the text goes on from the prompt
      item.append(head, prompt, text);
    }
  }, 20);
  drawList("checkpoints", state.checkpoints, (item, r) => {
    const loss = r.val_loss !== undefined && r.val_loss !== null
      ? ` (val loss ${fixed(r.val_loss, 4)})` : "";
    item.textContent = `step ${r.step} · ${String(r.path ?? "").split("/").pop()}${loss}`;
  }, 50);
}

function redraw() {
  drawProgress();
  drawPanels();
  redrawCharts();
}

// New records redraw the page at most twice a second: the browser often shares the machine
// with the training, and drawing every batch would take time from it.
const REDRAW_MS = 500;
let redrawTimer = null;

function scheduleRedraw() {
  if (redrawTimer === null) {
    redrawTimer = setTimeout(() => { redrawTimer = null; redraw(); }, REDRAW_MS);
  }
}

// ---- wiring ----

function rebuildCharts() {
  for (const chart of Object.values(charts)) chart.plot.destroy();
  charts = {};
  document.querySelectorAll("figure.chart").forEach((f) => {
    if (f.id.startsWith("chart-val_")) f.remove();
  });
  makeChart("chart-loss", [["loss", "train loss"], ["val_loss", "val loss"]]);
  makeChart("chart-lr", [["lr", "learning rate"]]);
  makeChart("chart-speed", [["tokens_per_sec", "tokens/s"]]);
  const onGpu = state.train.some((r) => r.gpu_mb !== undefined);
  makeChart("chart-memory", [["rss_mb", "process (RSS)"]].concat(onGpu ? [["gpu_mb", "GPU"]] : []));
  redraw();
}

state = emptyState();
rebuildCharts();

const socket = io();  // the server that served this page
socket.on("connect", () => {
  const badge = document.getElementById("connection");
  badge.className = "badge live";
  badge.textContent = "live";
});
socket.on("disconnect", () => {
  const badge = document.getElementById("connection");
  badge.className = "badge off";
  badge.textContent = state.end ? "server gone (run `make dashboard` to look again)"
                                : "disconnected: reconnecting";
});
socket.on("history", (records) => {
  state = emptyState();
  records.forEach(apply);
  rebuildCharts();  // which series exist (a GPU, the validation metrics) depends on the records
});
socket.on("records", (records) => {
  const hadGpu = state.train.some((r) => r.gpu_mb !== undefined);
  records.forEach(apply);
  if (!hadGpu && records.some((r) => r.gpu_mb !== undefined)) rebuildCharts();
  else scheduleRedraw();
});

document.querySelectorAll("input[name=xaxis]").forEach((input) =>
  input.addEventListener("change", rebuildCharts));
window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(charts)) {
    chart.plot.setSize({width: chartWidth(document.getElementById(id)), height: 220});
  }
});
