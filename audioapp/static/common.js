// Shared helpers of the three pages: JSON API calls, messages, the header status line, class colours.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];

function classColor(k) {
  if (k < PALETTE.length) return PALETTE[k];
  return `hsl(${(k * 137.508) % 360}, 55%, 50%)`;
}

// Fetch JSON; throws an Error carrying the server's message and HTTP status on failure.
async function api(path, {json, method, body, headers} = {}) {
  const options = {method: method || "GET", headers: Object.assign({}, headers || {})};
  if (json !== undefined) {
    options.method = method || "POST";
    options.body = JSON.stringify(json);
    options.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    options.body = body;
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function showMessage(text, kind = "info") {
  const box = document.getElementById("message");
  if (!box) return;
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = !text;
  box.dataset.kind = kind;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP, unlike style=""
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function player(label, src, id) {
  const audio = el("audio", {controls: "", preload: "none", src});
  if (id) audio.id = id;
  return el("div", {class: "player"}, el("span", {text: label}), audio);
}

function percent(x) { return x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`; }

async function loadStatus() {
  const status = await api("/api/status");
  const line = document.getElementById("model-status");
  if (line) {
    const name = status.model_path.split("/").pop();
    line.innerHTML = "";
    line.append(
      "model ", el("b", {text: name}), ` · ${status.dataset} fold ${status.fold} · version `,
      el("b", {id: "status-version", text: String(status.version)}), " · ",
      el("b", {id: "status-prototypes", text: String(status.n_prototypes)}), " prototypes",
      status.job && status.job.status === "running" ? el("span", {text: " · retraining…"}) : "");
  }
  return status;
}
