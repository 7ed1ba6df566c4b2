// Retrain & evaluate page: start/cancel a retrain, poll its progress, show accuracies and confusion matrices, save.
"use strict";

const page = {status: null, poll: null, lastJob: null};

function confusionTable(id, matrix, classes, title, titleText) {
  const table = document.getElementById(id);
  document.getElementById(title).textContent = titleText;
  table.replaceChildren();
  if (!matrix) return;
  table.append(el("tr", {}, el("th", {text: "true \\ pred"}), ...classes.map(c => el("th", {text: c}))));
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    table.append(el("tr", {}, el("th", {text: classes[i]}), ...row.map((n, j) => {
      const share = n / total, hue = i === j ? "46, 125, 79" : "196, 60, 60";
      return el("td", {text: String(n), style: `background: rgba(${hue}, ${(0.08 + 0.8 * share).toFixed(2)})`,
                       title: `${classes[i]} → ${classes[j]}: ${n}`});
    })));
  });
}

function accuracyTable(rows) {
  const table = document.getElementById("accuracy-table");
  table.replaceChildren(el("tr", {}, el("th", {text: "model"}), el("th", {text: "prototypes"}),
                           el("th", {text: "test accuracy"}), el("th", {text: "change"})));
  let previous = null;
  for (const row of rows) {
    const change = previous === null || row.accuracy === null ? "" : row.accuracy - previous;
    const cls = change === "" ? "" : change >= 0 ? "delta-up" : "delta-down";
    table.append(el("tr", {"data-role": row.role},
      el("td", {text: row.label}), el("td", {class: "num", text: String(row.n_prototypes ?? "–")}),
      el("td", {class: "num", "data-accuracy": row.accuracy ?? "", text: percent(row.accuracy)}),
      el("td", {class: `num ${cls}`, text: change === "" ? "" : `${change >= 0 ? "+" : ""}${(100 * change).toFixed(1)} pts`})));
    if (row.accuracy !== null) previous = row.accuracy;
  }
}

function epochTable(history) {
  const table = document.getElementById("epoch-table");
  table.replaceChildren();
  if (!history || !history.length) return;
  table.append(el("tr", {}, ...["epoch", "loss", "train acc.", "val. acc.", "seconds"].map(t => el("th", {text: t}))));
  for (const h of history) {
    table.append(el("tr", {}, el("td", {class: "num", text: String(h.epoch)}),
      el("td", {class: "num", text: (h.loss ?? NaN).toFixed(3)}),
      el("td", {class: "num", text: percent(h.probabilities_accuracy)}),
      el("td", {class: "num", text: percent(h.val_probabilities_accuracy)}),
      el("td", {class: "num", text: (h.seconds ?? 0).toFixed(1)})));
  }
}

function showResult(result) {
  const classes = page.status.classes;
  if (result.cancelled) { showMessage("Retrain cancelled: the model is unchanged.", "info"); return; }
  const history = page.status.history;
  const count = v => (history.find(h => h.version === v) || {}).n_prototypes;
  accuracyTable([
    {role: "original", label: "loaded model (version 0)", n_prototypes: count(0), accuracy: result.accuracy_original},
    {role: "before", label: `before retraining (version ${result.version_before})`,
     n_prototypes: count(result.version_before), accuracy: result.accuracy_before},
    {role: "after", label: `after ${result.epochs} epoch(s) (version ${result.version})`,
     n_prototypes: result.n_prototypes, accuracy: result.accuracy_after},
  ]);
  confusionTable("confusion-before", result.confusion_before, classes, "confusion-before-title",
                 `Before retraining (version ${result.version_before})`);
  confusionTable("confusion-after", result.confusion_after, classes, "confusion-after-title",
                 `After retraining (version ${result.version})`);
  epochTable(result.history);
}

function showJob(job) {
  const running = job.status === "running";
  document.getElementById("retrain-btn").disabled = running;
  document.getElementById("cancel-btn").disabled = !running || job.cancel_requested;
  document.getElementById("progress").value = job.progress || 0;
  const text = document.getElementById("progress-text");
  document.body.dataset.job = job.status;
  if (running) {
    const phase = job.phase === "evaluating" ? "evaluating on the test fold…"
      : `epoch ${job.epoch || 0}/${job.params.epochs} · batch ${job.batch || 0}/${job.steps || "?"}` +
        (job.loss ? ` · loss ${job.loss.toFixed(3)}` : "");
    text.textContent = `${(100 * (job.progress || 0)).toFixed(0)} % · ${phase} · ${(job.elapsed || 0).toFixed(0)} s`;
    epochTable(job.history);
  } else if (job.status === "done") {
    text.textContent = `done in ${(job.elapsed || 0).toFixed(0)} s`;
  } else if (job.status === "failed") {
    text.textContent = "failed";
    showMessage(`Retrain failed: ${job.error}`, "error");
  } else if (job.status === "cancelled") {
    text.textContent = "cancelled";
  } else {
    text.textContent = "idle";
  }
}

async function refreshStatus() {
  page.status = await loadStatus();
  document.getElementById("current-version").textContent = `version ${page.status.version}`;
  document.getElementById("current-edits").textContent =
    `${page.status.n_prototypes} prototypes, ${page.status.history.length - 1} edit(s) since loading`;
  document.getElementById("output-dir").textContent = page.status.output_dir_shown;
  return page.status;
}

async function pollJob() {
  const job = await api("/api/retrain");
  showJob(job);
  if (job.status === "running") {
    page.poll = setTimeout(() => pollJob().catch(e => showMessage(e.message, "error")), 500);
    return;
  }
  page.poll = null;
  if (page.lastJob !== job.id && job.result) {
    page.lastJob = job.id;
    await refreshStatus();
    showResult(job.result);
    if (!job.result.cancelled) {
      showMessage(`Retrained: test accuracy ${percent(job.result.accuracy_before)} → ${percent(job.result.accuracy_after)}.`, "ok");
    }
  }
}

async function startRetrain() {
  const epochs = Number(document.getElementById("epochs").value);
  try {
    const job = await api("/api/retrain", {json: {epochs}});
    showMessage(`Retraining ${epochs} epoch(s)…`, "info");
    showJob(job);
    if (!page.poll) pollJob();
  } catch (e) {
    showMessage(e.message, e.status === 409 ? "info" : "error");
  }
}

async function evaluateCurrent() {
  const button = document.getElementById("evaluate-btn");
  button.disabled = true;
  try {
    const original = await api("/api/evaluate", {json: {version: 0}});
    const current = await api("/api/evaluate", {json: {}});
    await refreshStatus();
    accuracyTable([
      {role: "original", label: "loaded model (version 0)", n_prototypes: original.n_prototypes, accuracy: original.accuracy},
      {role: "current", label: `current (version ${current.version})`, n_prototypes: current.n_prototypes,
       accuracy: current.accuracy}]);
    confusionTable("confusion-before", original.confusion, page.status.classes, "confusion-before-title",
                   "Loaded model (version 0)");
    confusionTable("confusion-after", current.confusion, page.status.classes, "confusion-after-title",
                   `Current (version ${current.version})`);
  } catch (e) {
    showMessage(e.message, "error");
  } finally {
    button.disabled = false;
  }
}

async function save() {
  try {
    const result = await api("/api/save", {json: {}});
    const saved = document.getElementById("saved");
    const mb = bytes => (bytes / 2 ** 20).toFixed(1);
    saved.replaceChildren(result.already_saved ? "Already saved as " : "Saved ",
                          el("code", {id: "saved-path", text: result.path_shown}),
                          ` (version ${result.version}, ${result.n_prototypes} prototypes, ${mb(result.bytes)} MB; ` +
                          `${result.saves} of at most ${result.max_saves} files this session, ` +
                          `${mb(result.session_bytes)} MB; ${mb(result.disk_free_bytes)} MB free on the disk).`);
    showMessage(result.already_saved ? `Version ${result.version} is already saved: ${result.path_shown}`
                                     : `Saved ${result.path_shown}`, "ok");
  } catch (e) {
    showMessage(e.message, "error");
  }
}

async function setup() {
  document.getElementById("retrain-btn").addEventListener("click", startRetrain);
  document.getElementById("cancel-btn").addEventListener("click", () =>
    api("/api/retrain/cancel", {json: {}}).then(showJob).catch(e => showMessage(e.message, "error")));
  document.getElementById("evaluate-btn").addEventListener("click", evaluateCurrent);
  document.getElementById("save-btn").addEventListener("click", save);
  await refreshStatus();
  const job = await api("/api/retrain");
  showJob(job);
  if (job.status === "running") pollJob();
  else if (job.result) { page.lastJob = job.id; showResult(job.result); }
  document.body.dataset.ready = "1";
}

setup().catch(e => showMessage(e.message, "error"));
