// L2I page: pick a test clip or upload a file, see f's prediction, component relevances, and listen (tau slider).
"use strict";

const l2i = {source: null, result: null, maxUpload: null, tauTimer: null};

function svgNode(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function drawRelevance(relevance, tau) {
  const chart = document.getElementById("relevance");
  chart.replaceChildren();
  const n = relevance.length, left = 40, width = 640, mid = 95, half = 75, bw = width / n;
  const y = r => mid - r * half;
  chart.append(svgNode("line", {x1: left, x2: left + width, y1: mid, y2: mid, stroke: "#888"}));
  for (const r of [1, -1]) {
    const label = svgNode("text", {x: 4, y: y(r) + 4, class: "axis", "font-size": 11});
    label.textContent = r > 0 ? "+1" : "−1";
    chart.append(label);
  }
  relevance.forEach((r, k) => {
    const selected = r > tau;
    const bar = svgNode("rect", {x: left + k * bw + bw * 0.12, width: bw * 0.76, y: Math.min(y(r), mid),
                                 height: Math.max(1, Math.abs(y(r) - mid)), class: "relevance-bar",
                                 "data-k": k, "data-selected": selected ? "1" : "0",
                                 fill: selected ? "#2f6fde" : "#c5ccd6"});
    chart.append(bar);
    if (n <= 40) {
      const label = svgNode("text", {x: left + (k + 0.5) * bw, y: 186, "text-anchor": "middle", "font-size": 10,
                                     fill: "#5f6b7a"});
      label.textContent = String(k);
      chart.append(label);
    }
  });
  chart.append(svgNode("line", {x1: left, x2: left + width, y1: y(tau), y2: y(tau), stroke: "#c43c3c",
                                "stroke-dasharray": "5 3", id: "tau-line"}));
  const tauLabel = svgNode("text", {x: left + width - 2, y: y(tau) - 4, "text-anchor": "end", fill: "#c43c3c",
                                    "font-size": 11});
  tauLabel.textContent = `τ = ${tau.toFixed(2)}`;
  chart.append(tauLabel);
}

function q(source, extra = "") { return `source=${encodeURIComponent(source)}${extra}`; }

function render(result) {
  const source = result.source, tau = result.tau;
  document.getElementById("result").hidden = false;
  document.getElementById("result-title").textContent =
    `${result.name}${result.true_class ? ` (true class: ${result.true_class})` : ""} → interpreted class ` +
    `${result.class} (p = ${result.class_probability.toFixed(2)})`;
  const bars = document.getElementById("prediction");
  bars.replaceChildren();
  for (const row of result.top5) {
    bars.append(el("span", {text: row.class}),
      el("div", {}, el("div", {class: "bar", style: `width:${(100 * row.probability).toFixed(1)}%`}),
                    el("div", {class: "bar g", style: `width:${(100 * row.interpreter).toFixed(1)}%; height:5px; margin-top:2px`})),
      el("span", {text: row.probability.toFixed(3)}));
  }
  drawRelevance(result.relevance, tau);
  document.getElementById("component-count").textContent =
    `${result.components.length} of ${result.relevance.length} components relevant`;
  const input = document.getElementById("input-audio");
  if (input.dataset.source !== source) {
    input.src = `/audio/l2i/input?${q(source)}`;
    input.dataset.source = source;
    document.getElementById("input-image").src = `/image/l2i/input?${q(source)}`;
  }
  document.getElementById("interpretation-audio").src = `/audio/l2i/interpretation?${q(source, `&tau=${tau}`)}`;
  document.getElementById("interpretation-image").src = `/image/l2i/interpretation?${q(source, `&tau=${tau}`)}`;
  const list = document.getElementById("components");
  list.replaceChildren(...result.components.map(k => {
    const audio = el("audio", {controls: "", preload: "none", src: `/audio/l2i/component?${q(source, `&k=${k}`)}`});
    return el("li", {"data-k": k}, el("span", {text: `component ${k} · r = ${result.relevance[k].toFixed(2)}`}), audio);
  }));
  if (!result.components.length) list.append(el("li", {class: "muted", text: "no component above τ"}));
  document.body.dataset.explained = source;
}

async function explain(source) {
  const tau = Number(document.getElementById("tau").value);
  try {
    l2i.result = await api(`/api/l2i/explain?${q(source, `&tau=${tau}`)}`);
    l2i.source = source;
    render(l2i.result);
  } catch (e) {
    showMessage(e.message, "error");
  }
}

async function upload() {
  const file = document.getElementById("upload-input").files[0];
  if (!file) { showMessage("Choose a file first.", "error"); return; }
  showMessage(`Uploading ${file.name}…`, "info");
  try {
    const result = await api("/api/l2i/upload", {method: "POST", body: file,
      headers: {"Content-Type": "application/octet-stream", "X-Filename": encodeURIComponent(file.name)}});
    const seconds = result.seconds === null ? "length unknown" : `${result.seconds} s`;
    const warnings = result.warnings || [];
    showMessage(`${result.name}: ${seconds} at ${result.original_sr} Hz, ${result.channels} channel(s).` +
                warnings.map(w => ` Warning: ${w}.`).join(""), warnings.length ? "warning" : "ok");
    await explain(result.source);
  } catch (e) {
    showMessage(e.message, "error");
  }
}

async function setup() {
  const status = await loadStatus();
  l2i.maxUpload = status.max_upload_bytes;
  if (!status.l2i) {
    document.getElementById("picker").replaceChildren(el("h2", {text: "No L2I model loaded"}),
      el("p", {}, "Start the app with ", el("code", {text: "--l2i-model RUN_FOLDER"}),
         " (a folder holding interpreter.keras, written by experiments/l2i/train_interpreter.py)."));
    document.body.dataset.ready = "1";
    return;
  }
  const info = await api("/api/l2i/info");
  document.getElementById("l2i-model").textContent =
    `${info.dataset} fold ${info.fold} · K = ${info.n_components} components · ${info.mode || ""} ${info.theta || ""}`;
  document.getElementById("upload-limit").textContent =
    `WAV, FLAC or OGG, at most ${(l2i.maxUpload / 2 ** 20).toFixed(0)} MB and ${info.max_duration} s`;
  const {clips} = await api("/api/l2i/clips");
  document.getElementById("clip-select").replaceChildren(...clips.map(c =>
    el("option", {value: c.clip_id, text: `${c.clip_id} (${c.class_name})`})));
  document.getElementById("explain-btn").addEventListener("click", () =>
    explain(`clip:${document.getElementById("clip-select").value}`));
  document.getElementById("upload-btn").addEventListener("click", upload);
  const slider = document.getElementById("tau");
  slider.addEventListener("input", () => {
    document.getElementById("tau-value").textContent = Number(slider.value).toFixed(2);
    clearTimeout(l2i.tauTimer);
    if (l2i.source) l2i.tauTimer = setTimeout(() => explain(l2i.source), 150);
  });
  document.body.dataset.ready = "1";
}

setup().catch(e => showMessage(e.message, "error"));
