// Explore & edit page: the latent map, the selection panel, delete / convert / undo.
"use strict";

const W = 660, H = 540, MARGIN = 28;
const state = {status: null, map: null, method: "pca", selection: null, hoverTimer: null};

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function scaler(points) {
  const xs = points.map(p => p.x), ys = points.map(p => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (W - 2 * MARGIN) / ((x1 - x0) || 1), sy = (H - 2 * MARGIN) / ((y1 - y0) || 1);
  return p => [MARGIN + (p.x - x0) * sx, H - MARGIN - (p.y - y0) * sy];
}

function drawMap() {
  const map = state.map, root = document.getElementById("map");
  clearTimeout(state.hoverTimer);
  document.getElementById("tooltip").hidden = true;  // its dot is being replaced
  root.replaceChildren();
  const place = scaler(map.instances.concat(map.prototypes));
  const instances = svg("g", {id: "instances"});
  for (const p of map.instances) {
    const [cx, cy] = place(p);
    const dot = svg("circle", {cx: cx.toFixed(1), cy: cy.toFixed(1), r: 3.6, fill: classColor(p.label),
                               class: "instance", "data-id": p.id, "data-label": p.label});
    instances.append(dot);
  }
  const prototypes = svg("g", {id: "prototypes"});
  for (const p of map.prototypes) {
    const [cx, cy] = place(p), s = 8.5;
    const d = `M${cx},${cy - s} L${cx + s},${cy} L${cx},${cy + s} L${cx - s},${cy} Z`;
    const shape = svg("path", {d, fill: classColor(p.w_class), "data-index": p.index,
                               class: "prototype" + (p.origin.startsWith("instance") ? " converted" : "")});
    prototypes.append(shape);
    const label = svg("text", {x: cx + s + 2, y: cy - s + 2, class: "plabel"});
    label.textContent = `P${p.index}`;
    prototypes.append(label);
  }
  root.append(instances, prototypes);
  const axes = svg("text", {x: MARGIN, y: H - 8, class: "axis"});
  axes.textContent = map.method === "pca"
    ? `PCA of the latent vectors (explained variance ${map.explained_variance.map(v => (100 * v).toFixed(1) + " %").join(", ")})`
    : `t-SNE of latent vectors and prototypes (perplexity ${map.perplexity.toFixed(0)})`;
  root.append(axes);
  document.getElementById("map-info").textContent =
    `${map.instances.length} training instances · ${map.prototypes.length} prototypes · version ${map.version}`;
  const legend = document.getElementById("legend");
  legend.replaceChildren(...map.classes.map((name, k) =>
    el("span", {}, el("i", {style: `background:${classColor(k)}`}), name)),
    el("span", {}, el("i", {class: "diamond", style: "background:#fff"}), "prototype (colour: class it votes for)"));
  markSelection();
}

function markSelection() {
  const sel = state.selection;
  document.querySelectorAll("#map .selected").forEach(n => n.classList.remove("selected"));
  if (!sel) return;
  if (sel.kind === "instance") {
    const node = document.querySelector(`#map .instance[data-id="${CSS.escape(sel.id)}"]`);
    if (node) { node.classList.add("selected"); node.parentNode.append(node); }
  } else {
    for (const j of sel.indices) {
      const node = document.querySelector(`#map .prototype[data-index="${j}"]`);
      if (node) node.classList.add("selected");
    }
  }
}

function updateButtons() {
  const sel = state.selection, busy = state.status && state.status.job && state.status.job.status === "running";
  document.getElementById("delete-btn").disabled = busy || !(sel && sel.kind === "prototypes" && sel.indices.size);
  document.getElementById("delete-btn").textContent =
    sel && sel.kind === "prototypes" && sel.indices.size > 1
      ? `Delete ${sel.indices.size} selected prototypes` : "Delete selected prototypes";
  document.getElementById("convert-btn").disabled = busy || !(sel && sel.kind === "instance" && sel.convertible);
  document.getElementById("undo-btn").disabled = busy || !(state.status && state.status.can_undo);
}

function renderHistory() {
  const list = document.getElementById("history");
  list.replaceChildren(...state.status.history.map((h, i, all) =>
    el("li", {class: i === all.length - 1 ? "current" : "", text: `v${h.version}: ${h.description} (${h.n_prototypes} prototypes)`})));
}

async function refresh({keepSelection = true} = {}) {
  state.status = await loadStatus();
  renderHistory();
  const method = document.getElementById("projection").value;
  if (method === "tsne") showMessage("computing t-SNE (a few seconds)…", "info");
  state.map = await api(`/api/map?method=${method}&version=${state.status.version}`);
  if (method === "tsne") showMessage("", "info");
  if (!keepSelection) state.selection = null;
  if (state.selection && state.selection.kind === "prototypes") {
    const n = state.map.prototypes.length;
    state.selection.indices = new Set([...state.selection.indices].filter(j => j < n));
    if (!state.selection.indices.size) state.selection = null;
  }
  drawMap();
  await renderSelection();
  updateButtons();
}

async function renderSelection() {
  const box = document.getElementById("selection-details");
  const sel = state.selection, v = state.status.version;
  document.getElementById("selection-empty").hidden = !!sel;
  box.replaceChildren();
  if (!sel) return;
  if (sel.kind === "instance") {
    const info = await api(`/api/instance/${encodeURIComponent(sel.id)}?version=${v}`);
    sel.convertible = info.convertible;
    const id = encodeURIComponent(sel.id);
    box.append(
      el("p", {id: "selection-title"}, el("b", {text: `Instance ${info.clip_id}`}),
         ` · class ${info.class_name} · ${info.split} split`),
      el("p", {text: `Prediction: ${info.predicted_name} (p = ${info.probabilities[info.predicted].toFixed(2)})`}),
      el("p", {}, "Closest prototypes: ", el("span", {class: "chips"}, ...info.closest_prototypes.map(c =>
        el("span", {class: "chip", text: `P${c.index} (D = ${c.distance.toFixed(2)})`,
                    onclick: () => selectPrototype(c.index, false)})))),
      el("img", {class: "spectrogram", id: "selection-image", alt: "mel-spectrogram",
                 src: `/image/clip/${id}`}),
      el("img", {class: "spectrogram", alt: "reconstruction", src: `/image/reconstruction/${id}?version=${v}`}),
      player("Original", `/audio/clip/${id}`, "audio-original"),
      player("Reconstruction", `/audio/reconstruction/${id}?version=${v}`, "audio-reconstruction"));
  } else {
    const indices = [...sel.indices];
    const j = indices[indices.length - 1];
    const info = await api(`/api/prototype/${j}?version=${v}`);
    box.append(
      el("p", {id: "selection-title"}, el("b", {text: `Prototype ${j}`}),
         ` · votes for class ${info.w_class_name} · decoded as ${info.class_name}`),
      el("p", {class: "muted", text: `origin: ${info.origin} · nearest training instance ${info.nearest_clip_id} ` +
                                     `(D = ${info.nearest_distance.toFixed(2)})`}),
      indices.length > 1 ? el("p", {text: `Selected: ${indices.map(i => "P" + i).join(", ")}`}) : "",
      el("img", {class: "spectrogram", id: "selection-image", alt: "decoded prototype",
                 src: `/image/prototype/${j}?version=${v}`}),
      wRow(info.w_row),
      player("Decoded (Griffin-Lim)", `/audio/prototype/${j}?version=${v}`, "audio-prototype"),
      player("Nearest instance", `/audio/clip/${encodeURIComponent(info.nearest_clip_id)}`, "audio-nearest"));
  }
}

function wRow(row) {
  const n = row.length, top = Math.max(...row.map(Math.abs)) || 1, bw = 300 / n, mid = 50;
  const chart = svg("svg", {viewBox: "0 0 320 96", class: "wrow"});
  const caption = svg("text", {x: 10, y: 11, class: "axis"});
  caption.textContent = `row of W: its vote for each class (max |w| = ${top.toFixed(2)})`;
  chart.append(caption, svg("line", {x1: 10, x2: 310, y1: mid, y2: mid, stroke: "#999"}));
  row.forEach((w, k) => {
    const h = 30 * Math.abs(w) / top;
    const bar = svg("rect", {x: 10 + k * bw + 1, width: bw - 2, y: w >= 0 ? mid - h : mid, height: Math.max(h, 0.5),
                             fill: classColor(k)});
    const title = svg("title", {});
    title.textContent = `${state.map.classes[k]}: ${w.toFixed(3)}`;
    bar.append(title);
    const label = svg("text", {x: 10 + (k + 0.5) * bw, y: 93, "text-anchor": "middle", class: "axis"});
    label.textContent = n <= 20 ? state.map.classes[k] : "";
    chart.append(bar, label);
  });
  return chart;
}

function selectInstance(id) {
  state.selection = {kind: "instance", id, convertible: false};
  markSelection();
  renderSelection().then(updateButtons).catch(e => showMessage(e.message, "error"));
}

function selectPrototype(index, add) {
  const sel = state.selection;
  if (add && sel && sel.kind === "prototypes") {
    if (sel.indices.has(index)) sel.indices.delete(index); else sel.indices.add(index);
    if (!sel.indices.size) state.selection = null;
  } else {
    state.selection = {kind: "prototypes", indices: new Set([index])};
  }
  markSelection();
  renderSelection().then(updateButtons).catch(e => showMessage(e.message, "error"));
}

function showTooltip(event, node) {
  const tip = document.getElementById("tooltip"), panel = document.querySelector(".map-panel");
  const box = panel.getBoundingClientRect();
  const v = state.status.version;
  let text, src;
  if (node.classList.contains("instance")) {
    text = `instance ${node.dataset.id} · class ${state.map.classes[node.dataset.label]}`;
    src = `/image/clip/${encodeURIComponent(node.dataset.id)}`;
  } else {
    const p = state.map.prototypes[node.dataset.index];
    text = `prototype P${p.index} · votes for ${state.map.classes[p.w_class]} · ${p.origin}`;
    src = `/image/prototype/${p.index}?version=${v}`;
  }
  tip.replaceChildren(el("div", {text}));
  tip.hidden = false;
  tip.style.left = `${Math.min(event.clientX - box.left + 14, box.width - 270)}px`;
  tip.style.top = `${event.clientY - box.top + 14}px`;
  clearTimeout(state.hoverTimer);
  state.hoverTimer = setTimeout(() => { if (!tip.hidden) tip.append(el("img", {src, alt: "mel-spectrogram"})); }, 180);
}

async function edit(path, payload, done) {
  try {
    const result = await api(path, {json: payload});
    showMessage(done(result), "ok");
  } catch (e) {
    showMessage(e.message, "error");
  }
  await refresh();
}

function setup() {
  const map = document.getElementById("map");
  map.addEventListener("click", event => {
    const node = event.target;
    if (node.classList.contains("instance")) selectInstance(node.dataset.id);
    else if (node.classList.contains("prototype")) selectPrototype(Number(node.dataset.index), event.shiftKey);
  });
  map.addEventListener("mouseover", event => {
    const node = event.target;
    if (node.classList.contains("instance") || node.classList.contains("prototype")) showTooltip(event, node);
  });
  map.addEventListener("mouseout", () => {
    clearTimeout(state.hoverTimer);
    document.getElementById("tooltip").hidden = true;
  });
  document.getElementById("projection").addEventListener("change", () =>
    refresh().catch(e => showMessage(e.message, "error")));
  document.getElementById("delete-btn").addEventListener("click", () => {
    const indices = [...state.selection.indices].sort((a, b) => a - b);
    state.selection = null;
    edit("/api/delete", {indices}, r =>
      `Deleted prototype(s) ${indices.map(i => "P" + i).join(", ")}: ${r.n_prototypes} prototypes left (version ${r.version}).`);
  });
  document.getElementById("convert-btn").addEventListener("click", () => {
    const id = state.selection.id;
    edit("/api/convert", {clip_id: id}, r => {
      state.selection = {kind: "prototypes", indices: new Set([r.index])};
      return `Instance ${id} is now prototype P${r.index} (version ${r.version}, ${r.n_prototypes} prototypes).`;
    });
  });
  document.getElementById("undo-btn").addEventListener("click", () => {
    edit("/api/undo", {}, r => `Undone: ${r.undone}. Back to version ${r.version} (${r.n_prototypes} prototypes).`);
  });
  refresh({keepSelection: false}).then(() => { document.body.dataset.ready = "1"; })
    .catch(e => showMessage(e.message, "error"));
}

setup();
