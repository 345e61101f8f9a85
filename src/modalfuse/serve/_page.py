"""The web page served at ``/``: one HTML document with its style and script inline, nothing loaded from
elsewhere. The script reads ``GET /model``, builds one field per column the model uses (a drop zone and file
picker for images and audio, a text area for text, a number or category field for tabular columns), sends
the record as multipart form data to ``POST /predict?contributions=true`` and shows the prediction, the
probabilities, the inputs used, the problems, and a bar chart (inline SVG) of each input's contribution.
Every value from the server is shown as text (``textContent``), never as HTML."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modalfuse model</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d2330; --muted: #5b6475; --line: #d8dce4; --accent: #2f6fdb; --neg: #c2553a; }
  * { box-sizing: border-box; }
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0;
         background: #f6f7f9; }
  header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  header p { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
  main { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(300px, 1fr); gap: 20px;
         padding: 20px 24px; max-width: 1100px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
  h2 { font-size: 15px; margin: 0 0 10px; }
  .field { margin-bottom: 12px; }
  .field > span { display: block; font-weight: 600; margin-bottom: 4px; }
  .field small { color: var(--muted); font-weight: 400; }
  input[type=text], input[type=number], textarea { width: 100%; padding: 6px 8px; font: inherit;
         border: 1px solid var(--line); border-radius: 5px; }
  textarea { min-height: 64px; resize: vertical; }
  .drop { display: block; border: 2px dashed var(--line); border-radius: 6px; padding: 12px; text-align: center;
          color: var(--muted); cursor: pointer; }
  .drop.over { border-color: var(--accent); background: #eef3fd; }
  .drop input { display: block; margin: 6px auto 0; }
  .drop img { width: 96px; height: auto; display: block; margin: 8px auto 0; image-rendering: pixelated; }
  .drop audio { width: 100%; margin-top: 8px; }
  button { background: var(--accent); color: #fff; border: 0; border-radius: 5px; padding: 8px 18px; font: inherit;
           cursor: pointer; }
  button:disabled { opacity: .6; cursor: default; }
  #prediction { font-size: 28px; font-weight: 700; }
  #error { color: var(--neg); white-space: pre-wrap; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  td { padding: 2px 4px; }
  td.bar { width: 60%; }
  td.bar div { background: var(--accent); height: 10px; border-radius: 2px; }
  .muted { color: var(--muted); font-size: 13px; }
  ul { margin: 4px 0; padding-left: 18px; }
  svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
</style>
</head>
<body>
<header>
  <h1>modalfuse model</h1>
  <p id="about">loading the model's description…</p>
</header>
<main>
  <section>
    <h2>Record</h2>
    <form id="record" autocomplete="off"></form>
    <button id="submit" type="submit" form="record" disabled>Predict</button>
    <p class="muted">Leave out any input: the model treats it as missing.</p>
  </section>
  <section id="result" aria-live="polite">
    <h2>Prediction</h2>
    <div id="prediction" class="muted">—</div>
    <div id="error"></div>
    <table id="probabilities"></table>
    <p id="used" class="muted"></p>
    <ul id="problems"></ul>
    <h2>Contribution of each input</h2>
    <div id="chart" class="muted">Submit a record to see which inputs pushed the prediction.</div>
    <p class="muted">Larger: the input pushed the record toward the predicted class more. A missing input
      contributes 0.</p>
  </section>
</main>
<script>
"use strict";
const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
let MODEL = null;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function preview(zone, input, modality) {
  const old = zone.querySelector("img, audio");
  if (old) old.remove();
  const file = input.files[0];
  if (!file) return;
  const media = el(modality === "image" ? "img" : "audio", modality === "image" ? {alt: file.name} : {controls: ""});
  media.src = URL.createObjectURL(file);
  zone.appendChild(media);
  zone.querySelector(".hint").textContent = file.name;
}

function mediaField(col) {
  const zone = el("label", {class: "drop", id: "drop-" + col.name});
  zone.appendChild(el("span", {class: "hint"}, "drop a file here, or pick one"));
  const input = el("input", {type: "file", name: col.name, accept: col.modality + "/*", "data-column": col.name});
  zone.appendChild(input);
  input.addEventListener("change", () => preview(zone, input, col.modality));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      preview(zone, input, col.modality);
    }
  });
  return zone;
}

function valueField(col) {
  if (col.modality === "text") return el("textarea", {name: col.name, "data-column": col.name});
  if (col.modality === "numeric") {
    return el("input", {type: "number", step: "any", name: col.name, "data-column": col.name});
  }
  const input = el("input", {type: "text", name: col.name, "data-column": col.name, list: "cats-" + col.name});
  const list = el("datalist", {id: "cats-" + col.name});
  for (const c of col.categories || []) list.appendChild(el("option", {value: c}));
  const box = el("div");
  box.append(input, list);
  return box;
}

function buildForm(model) {
  const form = $("#record");
  for (const col of model.columns.filter((c) => c.used)) {
    const field = el("div", {class: "field"});
    const label = el("span", {}, col.name + " ");
    label.appendChild(el("small", {}, col.modality + (col.input !== col.name ? " · input " + col.input : "")));
    field.appendChild(label);
    field.appendChild(col.modality === "image" || col.modality === "audio" ? mediaField(col) : valueField(col));
    form.appendChild(field);
  }
  form.addEventListener("submit", submit);
  $("#submit").disabled = false;
}

function formData() {
  const data = new FormData();
  for (const input of document.querySelectorAll("#record [data-column]")) {
    if (input.type === "file") {
      if (input.files.length) data.append(input.name, input.files[0], input.files[0].name);
    } else if (input.value.trim() !== "") {
      data.append(input.name, input.value);
    }
  }
  return data;
}

function clearResult() {
  $("#error").textContent = "";
  $("#probabilities").replaceChildren();
  $("#problems").replaceChildren();
  $("#used").textContent = "";
  $("#prediction").removeAttribute("data-prediction");
}

async function submit(event) {
  event.preventDefault();
  clearResult();
  const data = formData();
  if ([...data.keys()].length === 0) {
    $("#error").textContent = "Give at least one input.";
    return;
  }
  $("#submit").disabled = true;
  $("#prediction").textContent = "…";
  try {
    const response = await fetch("predict?contributions=true", {method: "POST", body: data});
    const body = await response.json();
    if (!response.ok) {
      $("#prediction").textContent = "—";
      $("#error").textContent = body.message || response.status + " " + response.statusText;
      return;
    }
    show(body);
  } catch (err) {
    $("#prediction").textContent = "—";
    $("#error").textContent = "The server did not answer: " + err;
  } finally {
    $("#submit").disabled = false;
  }
}

function show(answer) {
  const pred = $("#prediction");
  pred.textContent = String(answer.prediction);
  pred.className = "";
  pred.setAttribute("data-prediction", String(answer.prediction));
  const rows = Object.entries(answer.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [cls, p] of rows) {
    const tr = el("tr", {"data-class": cls});
    tr.appendChild(el("td", {}, cls));
    tr.appendChild(el("td", {}, p.toFixed(3)));
    const bar = el("td", {class: "bar"});
    bar.appendChild(el("div", {style: "width:" + Math.round(p * 100) + "%"}));
    tr.appendChild(bar);
    $("#probabilities").appendChild(tr);
  }
  $("#used").textContent = "inputs used: " + (answer.inputs_used.join(", ") || "none") +
    (answer.inputs_missing.length ? " · treated as missing: " + answer.inputs_missing.join(", ") : "");
  for (const p of answer.problems || []) $("#problems").appendChild(el("li", {}, p.field + ": " + p.reason));
  for (const n of answer.notes || []) $("#problems").appendChild(el("li", {}, n));
  if (answer.contributions) {
    chart(answer.contributions);
  } else {
    $("#chart").textContent = "This model gives no contributions.";
    $("#chart").className = "muted";
  }
}

function chart(contributions) {
  const entries = Object.entries(contributions);
  const box = $("#chart");
  box.replaceChildren();
  box.className = "";
  const width = 460, row = 30, left = 110, right = 60;
  const height = entries.length * row + 10;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "contribution of each input to the prediction");
  const span = Math.max(1e-9, ...entries.map(([, v]) => Math.abs(v)));
  const hasNeg = entries.some(([, v]) => v < 0);
  const plot = width - left - right;
  const zero = left + (hasNeg ? plot / 2 : 0);
  const scale = (hasNeg ? plot / 2 : plot) / span;
  entries.forEach(([name, value], i) => {
    const y = 5 + i * row;
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", left - 8);
    label.setAttribute("y", y + 17);
    label.setAttribute("text-anchor", "end");
    label.textContent = name;
    const rect = document.createElementNS(SVG, "rect");
    const w = Math.abs(value) * scale;
    rect.setAttribute("x", value < 0 ? zero - w : zero);
    rect.setAttribute("y", y + 4);
    rect.setAttribute("width", Math.max(w, 0.5));
    rect.setAttribute("height", row - 10);
    rect.setAttribute("fill", value < 0 ? "#c2553a" : "#2f6fdb");
    rect.setAttribute("class", "bar");
    rect.setAttribute("data-input", name);
    rect.setAttribute("data-value", String(value));
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = name + ": " + value.toFixed(4);
    rect.appendChild(tip);
    const num = document.createElementNS(SVG, "text");
    num.setAttribute("x", value < 0 ? zero - w - 4 : zero + w + 4);
    num.setAttribute("y", y + 17);
    num.setAttribute("text-anchor", value < 0 ? "end" : "start");
    num.textContent = value.toFixed(3);
    svg.append(label, rect, num);
  });
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("x1", zero);
  axis.setAttribute("x2", zero);
  axis.setAttribute("y1", 0);
  axis.setAttribute("y2", height);
  axis.setAttribute("stroke", "#8a93a5");
  svg.appendChild(axis);
  box.appendChild(svg);
}

async function init() {
  try {
    const response = await fetch("model");
    MODEL = await response.json();
    const m = MODEL.model;
    $("#about").textContent = "fusion " + m.fusion + " · classes " + MODEL.classes.join(", ") +
      " · inputs " + Object.keys(MODEL.inputs).join(", ") + " · modalfuse " + MODEL.version;
    buildForm(MODEL);
  } catch (err) {
    $("#about").textContent = "cannot read the model's description: " + err;
  }
}
init();
</script>
</body>
</html>
"""
