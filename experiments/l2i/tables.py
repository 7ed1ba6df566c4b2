"""Tables I and IV-VIII of L2I (Parekh et al., TASLP 2024): the paper's numbers beside ours.

    python experiments/l2i/tables.py RESULTS_DIR [--output DIR]

Reads every results.json below RESULTS_DIR (the --output folder of the training and evaluation
scripts: <RESULTS_DIR>/l2i/<dataset>/fold<N>/seed<S>/...) and writes, per table, table_<N>.md and
table_<N>.csv to --output (default RESULTS_DIR/tables). Each row is one cell of the paper's table:
system, metric, the paper's value, ours (mean +- standard deviation over the folds and seeds found,
with their number) and the command behind ours -- or "not run" with the command that would produce it.
ESC-50 cells show ESC-10 results, marked as such, when no ESC-50 run exists. The baselines' rows (FLINT,
VIBI, Unsupervised-NMF, TD-NMF, FLINT by design) read the baseline_<name>/results.json of train_baseline.py.
Unsupervised-NMF and TD-NMF, as in the paper, report the best K and feature of their sweep (train_baseline.py
--k ... --features ...; l2i.baselines.training.select_sweep: combinations run on every fold and seed found,
highest mean test score), labelled "[K=<K>, <feature>]"; without a complete sweep, their baseline_<name>/ runs.
APNet's row (ESC only: APNet is single-label) reads <RESULTS_DIR>/apnet/<dataset>/fold*/seed*/results.json of
experiments/apnet/train.py (test_accuracy), only runs with M (n_prototypes of the config.yaml beside it) equal to
L2I's main dictionary size K.

Cells are picked by run identity (l2i/runs.py), not by folder name: Tables I, IV, V and VIII take runs of the
main configuration (l2i/configs/<dataset>.yaml) only; Table VI the fold-1 runs that differ from it in the hidden
layers only (row "Input": hidden_layers [input]); Table VII those that differ in alpha/beta only. The same run
found in several folders counts once.
"""
import argparse
import csv
import json
from pathlib import Path

import numpy as np
import yaml

from l2i.baselines.training import select_sweep
from l2i.pipeline import find_results
from l2i.runs import AXES, default_config, identity_hash, layers_label

#: The paper's numbers: {table: (title, [(system, metric, paper value, source)])}. ``source`` says where ours come
#: from: (kind, datasets, systems, getter name, scale) or None (not a system of this repository).
ESC = ("esc50", "esc10")
EVAL = "python experiments/l2i/evaluate.py --model $O/l2i/{dataset}/fold$F/seed$S/{system} --dataset {dataset} " \
       "--fold $F --data-dir $D --output $O"
TRAIN_F = "python experiments/l2i/train_classifier.py --dataset {dataset} --fold $F --data-dir $D --output $O"
TRAIN_I = "python experiments/l2i/train_interpreter.py --dataset {dataset} --fold $F --mode {mode} --theta {theta} " \
          "--data-dir $D --output $O"
TRAIN_B = "python experiments/l2i/train_baseline.py --baseline {baseline} --dataset {dataset} --fold $F " \
          "--data-dir $D --output $O"
TRAIN_APNET = "python experiments/apnet/train.py --dataset {dataset} --fold $F --n-prototypes {m} --data-dir $D " \
              "--output $O"
BASELINE = "baseline_"  # prefix of the run folders of train_baseline.py
SWEPT = ("nmf", "tdl_nmf")  # baselines whose row is the best of a K/feature sweep, as in the paper
SWEEP_FLAGS = "--k 64 128 256 512 --features logmag sqrt_mel"
APNET = "apnet"  # APNet's row of Table VIII: runs of experiments/apnet/train.py


def _system_kind(system, kind):
    """``"baseline"`` for a baseline_<name> folder of train_baseline.py, ``"apnet"`` for APNet, else ``kind``."""
    if system == APNET:
        return APNET
    return "baseline" if (system or "").startswith(BASELINE) else kind


PAPER = {
    "I": ("Benchmarking performance of the pre-trained classifier f", [
        ("Human accuracy [55]", "ESC-50 top-1 (%)", "81.3", None),
        ("ESC50-CNN baseline [55]", "ESC-50 top-1 (%)", "64.5", None),
        ("Arnault et al. [59]", "SONYC-UST macro-AUPRC", "0.649", None),
        ("Koutini et al. [60]", "OpenMIC-2018 avg-weighted-F1", "0.822", None),
        ("VGGish [14], [61]", "SONYC-UST macro-AUPRC", "0.510", None),
        ("VGGish [14], [61]", "OpenMIC-2018 avg-weighted-F1", "0.785", None),
        ("Current-f", "ESC-50 top-1 (%)", "82.5", ("classifier", ESC, ("classifier",), "f_accuracy", 100)),
        ("Current-f", "SONYC-UST macro-AUPRC", "0.601", ("any", ("sonyc_ust",), None, "f_macro_auprc", 1)),
        ("Current-f", "OpenMIC-2018 avg-weighted-F1", "0.831", ("evaluation", ("openmic",), None, "f_wf1", 1)),
    ]),
    "IV": ("Fidelity of the interpreter to the classifier's output", [
        *[(name, metric, value, (_system_kind(system, "interp"), ds, (system,), getter, scale))
          for name, system, values in (
              ("L2I w/ Theta_ATT", "posthoc_att", ("65.7 ± 2.8", "88.2 ± 1.7", "0.909 ± 0.011", "0.917 ± 0.008",
                                                   "0.920 ± 0.004")),
              ("L2I w/ Theta_MAX", "posthoc_max", ("73.3 ± 2.3", "92.7 ± 1.2", "0.866 ± 0.014", "0.913 ± 0.012",
                                                   "0.906 ± 0.004")),
              ("FLINT [29]", "baseline_flint", ("73.5 ± 2.3", "93.4 ± 0.9", "0.816 ± 0.013", "0.907 ± 0.011",
                                                 "0.907 ± 0.004")),
              ("VIBI [63]", "baseline_vibi", ("27.7 ± 2.3", "53.0 ± 1.8", "0.608 ± 0.027", "0.575 ± 0.019",
                                              "0.581 ± 0.037")),
          )
          for (metric, ds, getter, scale), value in zip((
              ("ESC-50 top-1 fidelity (%)", ESC, "fid_top1", 100), ("ESC-50 top-5 fidelity (%)", ESC, "fid_top5", 100),
              ("SONYC-UST macro-AUPRC", ("sonyc_ust",), "fid_macro_auprc", 1),
              ("SONYC-UST micro-AUPRC", ("sonyc_ust",), "fid_micro_auprc", 1),
              ("OpenMIC-2018 avg-weighted-F1", ("openmic",), "fid_wf1", 1)), values)],
    ]),
    "V": ("Faithfulness FF_median on ESC-50 for different thresholds tau", [
        *[("L2I w/ Theta_ATT", f"FF_median, tau = {t}", v, ("evaluation", ESC, ("posthoc_att",), f"ff@{t}", 1))
          for t, v in ((0.9, "0.002"), (0.7, "0.004"), (0.5, "0.012"), (0.3, "0.040"), (0.1, "0.113"))],
        ("Random Baseline", "FF_median, tau = 0.1", "< 1e-4", ("evaluation", ESC, ("posthoc_att",), "ffr@0.1", 1)),
    ]),
    "VI": ("Hidden-layer ablation: test losses on ESC-50 fold 1 (single run)", [
        (blocks, metric, value, ("layers", ESC, ("posthoc_att",), getter + "|" + blocks, scale))
        for blocks, values in (("B3", ("0.104", "1.788", "53.0")), ("B6", ("0.118", "1.698", "57.8")),
                               ("B2+B3", ("0.093", "1.966", "51.8")), ("B5+B6", ("0.103", "1.572", "61.5")),
                               ("B4+B5+B6", ("0.079", "1.546", "65.5")), ("Input", ("0.102", "2.384", "34.5")))
        for (metric, getter, scale), value in zip((("L_NMF", "nmf", 1), ("L_FID", "lfid", 1),
                                                   ("top-1 fidelity (%)", "fid_top1", 100)), values)
    ]),
    "VII": ("Loss-weight ablation: test losses on SONYC-UST (single run)", [
        (f"alpha = {a}, beta = {b}", metric, value,
         ("weights", ("sonyc_ust",), ("posthoc_att",), f"{getter}|{a}|{b}", 1))
        for a, b, values in ((10.0, 0.8, ("0.028", "0.386", "0.900")), (10.0, 8.0, ("0.048", "0.386", "0.879")),
                             (10.0, 0.08, ("0.028", "0.388", "0.876")), (1.0, 0.8, ("0.045", "0.375", "0.921")),
                             (100.0, 0.8, ("0.027", "0.445", "0.612")))
        for (metric, getter), value in zip((("L_NMF", "nmf"), ("L_FID", "lfid"), ("macro-AUPRC", "fid_macro_auprc")),
                                           values)
    ]),
    "VIII": ("Classification performance for by-design interpretation", [
        (name, metric, value, source if system else None)
        for name, system, values in (
            ("L2I_BD w/ Theta_ATT", "bydesign_att", ("70.1 ± 1.5", "0.581 ± 0.008", "0.825 ± 0.005")),
            ("APNet [13]", APNET, ("63.6 ± 1.7", "0.422 ± 0.012", "0.563 ± 0.025")),
            ("Unsupervised-NMF", "baseline_nmf", ("39.4 ± 2.3", "0.373 ± 0.006", "0.659 ± 0.018")),
            ("TD-NMF [47]", "baseline_tdl_nmf", ("46.7 ± 2.7", "0.431 ± 0.018", "0.699 ± 0.012")),
            ("L2I-Posthoc", "posthoc_att", ("65.4 ± 3.4", "0.567 ± 0.007", "0.825 ± 0.003")),
            ("L2I_BD-NoPred", "bydesign_nopred_att", ("64.4 ± 1.1", "0.563 ± 0.004", "0.746 ± 0.006")),
            ("FLINT [29]", "baseline_flint_bydesign", ("75.3 ± 3.6", "0.556 ± 0.008", "0.827 ± 0.002")),
            ("BASE-f", "classifier", ("82.5", "0.601", "0.831")),
        )
        for (metric, source), value in zip((
            ("ESC-50 accuracy (%)", ("classifier", ESC, ("classifier",), "f_accuracy", 100) if system == "classifier"
             else (_system_kind(system, "interp"), ESC, (system,), "g_accuracy", 100)),
            ("SONYC-UST macro-AUPRC", ("any", ("sonyc_ust",), None, "f_macro_auprc", 1) if system == "classifier"
             else (_system_kind(system, "evaluation"), ("sonyc_ust",), (system,), "g_macro_auprc", 1)),
            ("OpenMIC-2018 avg-weighted-F1", ("evaluation", ("openmic",), None, "f_wf1", 1) if system == "classifier"
             else (_system_kind(system, "evaluation"), ("openmic",), (system,), "g_wf1", 1))), values)
    ]),
}


# --------------------------------------------------------------------------- reading our numbers
def _value(entry, getter):
    """One number of one results.json entry (None when absent)."""
    res, kind = entry["results"], entry["kind"]
    name = getter.split("|")[0]
    if kind == "classifier":
        return {"f_accuracy": res.get("test_accuracy"), "f_macro_auprc": res.get("test_macro_auprc")}.get(name)
    if kind == "interpreter":
        return {"fid_top1": res.get("fidelity_top1"), "fid_top5": res.get("fidelity_top5"),
                "fid_macro_auprc": res.get("fidelity_macro_auprc"), "fid_micro_auprc": res.get("fidelity_micro_auprc"),
                "fid_wf1": res.get("fidelity_weighted_f1"),  # training-time fidelity = l2i.metrics.fidelity_scores
                "g_accuracy": res.get("accuracy"), "nmf": res.get("test_nmf_loss")}.get(name)
    if kind not in ("evaluation", "baseline"):  # a baseline's results.json names its scores as evaluate.py does
        return None
    fid, f, g = res.get("fidelity", {}), res.get("classifier", {}), res.get("interpreter", {})
    if name.startswith(("ff@", "ffr@")):
        tau = float(name.split("@")[1])
        taus = [float(t) for t in res.get("taus", [])]
        series = res.get("ff_median" if name.startswith("ff@") else "ff_median_random", [])
        return series[taus.index(tau)] if tau in taus else None
    return {"fid_top1": fid.get("top1"), "fid_top5": fid.get("top5"), "fid_macro_auprc": fid.get("macro_auprc"),
            "fid_micro_auprc": fid.get("micro_auprc"), "fid_wf1": fid.get("weighted_f1"),
            "f_accuracy": f.get("accuracy"), "f_macro_auprc": f.get("macro_auprc"), "f_wf1": f.get("weighted_f1"),
            "g_accuracy": g.get("accuracy"), "g_macro_auprc": g.get("macro_auprc"), "g_wf1": g.get("weighted_f1"),
            "nmf": res.get("test_nmf_loss"), "lfid": res.get("test_fidelity_loss")}.get(name)


def _blocks(entry):
    """``B4+B5+B6`` from the run's hidden layers (``block4`` ...); ``Input`` for f's input (``input``)."""
    return layers_label(entry["identity"]["interpreter"]["hidden_layers"])


def _weights(entry):
    weights = entry["identity"]["weights"]
    return float(weights["alpha"]), float(weights["beta"])


def _selected(entry, kind, parts, f_only=False):
    """Whether ``entry``'s configuration belongs in a cell of ``kind``: the main configuration (Tables I, IV, V,
    VIII), or the main one but for the hidden layers (Table VI, fold 1) or the loss weights (Table VII).
    ``f_only``: a cell of f's scores (Tables I, VIII BASE-f), where an evaluation counts when the run explains
    the main f post hoc, whatever the interpreter's configuration."""
    if kind == "baseline":
        return True  # train_baseline.py folders: one per baseline, no identity
    diffs = entry.get("differences")
    if diffs is None:
        return False
    if f_only and entry["kind"] == "evaluation":
        return entry["identity"].get("mode") == "posthoc" and not [d for d in diffs if d.startswith("classifier")]
    if kind == "layers":
        return set(diffs) <= AXES["layers"] and entry["fold"] == 1 and _blocks(entry) == parts[1]
    if kind == "weights":
        return set(diffs) <= AXES["weights"] and _weights(entry) == (float(parts[1]), float(parts[2]))
    return not diffs


def ours(entries, source):
    """``(values, commands, datasets)`` of one cell from all entries, evaluation preferred per run.

    Only runs of the right configuration count (:func:`_selected`, ``l2i/runs.py``); several folders holding
    the same run (same dataset, fold, seed and identity) count once.
    """
    kind, datasets, systems, getter, scale = source
    parts = getter.split("|")
    per_run = {}
    for dataset in datasets:
        for entry in entries:
            base = entry.get("base", entry["system"])
            if entry["dataset"] != dataset or (systems is not None and base not in systems):
                continue
            if entry["kind"] == "evaluation" and entry["corruption"] != "none":
                continue
            allowed = {"classifier": ("classifier",), "interp": ("evaluation", "interpreter"),
                       "any": ("evaluation", "classifier"), "evaluation": ("evaluation",),
                       "layers": ("evaluation",), "weights": ("evaluation",), "baseline": ("baseline",)}[kind]
            if entry["kind"] not in allowed or not _selected(entry, kind, parts, f_only=systems is None):
                continue
            value = _value(entry, getter)
            if value is None or not np.isfinite(value):
                continue
            run = identity_hash(entry["identity"]) if entry.get("identity") and systems else base
            key = (entry["fold"], entry["seed"], run if systems else "f")
            rank = allowed.index(entry["kind"])
            if key not in per_run or rank < per_run[key][0]:
                per_run[key] = (rank, float(value) * scale, entry["results"].get("command", ""))
        if per_run:
            return [v for _, v, _ in per_run.values()], [c for _, _, c in per_run.values()], dataset
    return [], [], None


def _format(values, scale):
    digits = 1 if scale == 100 else 3
    mean, std = float(np.mean(values)), float(np.std(values))
    spec = f".{digits}f" if abs(mean) >= 10 ** -digits or mean == 0 else ".2g"  # tiny values: 2 significant digits
    if len(values) == 1:
        return f"{mean:{spec}}"
    return f"{mean:{spec}} ± {std:{spec}} ({len(values)} runs)"


def _template(source):
    kind, datasets, systems, getter, _ = source
    dataset = datasets[0]
    system = systems[0] if systems else "posthoc_att"
    if kind == "classifier":
        return TRAIN_F.format(dataset=dataset)
    if kind == "baseline":
        name = system[len(BASELINE):]
        return TRAIN_B.format(baseline=name, dataset=dataset) + (f" {SWEEP_FLAGS}" if name in SWEPT else "")
    if kind == APNET:
        return TRAIN_APNET.format(dataset=dataset, m=_main_k(dataset))
    if kind in ("layers", "weights"):
        parts = getter.split("|")
        if kind == "layers":
            flags = "--hidden-layers " + " ".join("input" if b == "Input" else "block" + b[1:]
                                                  for b in parts[1].split("+"))
        else:
            flags = f"--alpha {float(parts[1]):g} --beta {float(parts[2]):g}"
        train = TRAIN_I.format(dataset=dataset, mode="posthoc", theta="att")
        # the run folder: posthoc_att for the main configuration, else posthoc_att-<tag>-<hash> (printed)
        return f"{train} {flags}; then " + EVAL.format(dataset=dataset, system="<run folder>")
    return EVAL.format(dataset=dataset, system=system)


# --------------------------------------------------------------------------- NMF sweeps and APNet (Table VIII)
def sweep_cell(entries, source, selections):
    """``(values, commands, dataset, label, note)`` of an Unsupervised-NMF or TD-NMF cell.

    Per dataset (ESC-50, then ESC-10): the runs of the sweep's selected ``baseline_<name>_k<K>_<feature>``
    (``selections[dataset]``: :func:`l2i.baselines.training.select_sweep`'s answer), labelled ``K=<K>,
    <feature>``; without a selection (no sweep, or no combination run on every fold and seed), the runs of
    ``baseline_<name>/``. ``note`` says why a cell is empty although sweep runs exist.
    """
    kind, datasets, systems, getter, scale = source
    incomplete = False
    for dataset in datasets:
        selection = selections.get(dataset)
        best = (selection or {}).get("selected")
        if best is not None:
            values, commands, found = ours(entries, (kind, (dataset,), (best["system"],), getter, scale))
            if values:
                return values, commands, found, f"K={best['n_components']}, {best['feature']}", None
        incomplete = incomplete or selection is not None
        values, commands, found = ours(entries, (kind, (dataset,), systems, getter, scale))
        if values:
            return values, commands, found, None, None
    note = "sweep incomplete: no K/feature combination run on every fold and seed" if incomplete else None
    return [], [], None, None, note


def _main_k(dataset):
    """K of L2I's main dictionary (``dictionary.n_components`` of l2i/configs/<dataset>.yaml).

    APNet's M in Table VIII."""
    return int(default_config(dataset)["dictionary"]["n_components"])


def apnet_runs(results_dir, dataset):
    """APNet runs of ``experiments/apnet/train.py`` in ``<results_dir>/apnet/<dataset>/fold*/seed*/``.

    Returns ``[{"dataset", "fold", "seed", "n_prototypes", "test_accuracy", "command", "path"}]``: results.json
    entries with ``model == "apnet"`` and a finite ``test_accuracy`` (0-1), M from the ``config.yaml`` beside
    (runs without one are left out: their M is unknown).
    """
    runs = []
    for path in sorted(Path(results_dir).glob(f"apnet/{dataset}/fold*/seed*/results.json")):
        try:
            results = json.loads(path.read_text())
            config = yaml.safe_load((path.parent / "config.yaml").read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if not isinstance(results, dict) or not isinstance(config, dict) or results.get("model") != APNET:
            continue
        value, m = results.get("test_accuracy"), config.get("n_prototypes")
        if value is None or m is None or not np.isfinite(float(value)):
            continue
        runs.append({"dataset": results.get("dataset", dataset), "fold": int(results.get("fold", 0)),
                     "seed": int(results.get("seed", config.get("seed", 0))), "n_prototypes": int(m),
                     "test_accuracy": float(value), "command": results.get("command", ""), "path": path})
    return runs


def apnet_cell(results_dir, source):
    """``(values, commands, dataset, label, note)`` of an APNet cell: test accuracy (x ``scale``) of the runs with
    M = L2I's main K, ESC-50 first, then ESC-10; multi-label datasets: n/a (APNet is single-label)."""
    _, datasets, _, _, scale = source
    if not set(datasets) <= set(ESC):
        return [], [], None, None, "n/a (APNet is single-label; not run on multi-label data)"
    other = set()
    for dataset in datasets:
        k = _main_k(dataset)
        runs = [r for r in apnet_runs(results_dir, dataset) if r["dataset"] == dataset]
        chosen = {(r["fold"], r["seed"]): r for r in runs if r["n_prototypes"] == k}
        other |= {r["n_prototypes"] for r in runs if r["n_prototypes"] != k}
        if chosen:
            runs = [chosen[key] for key in sorted(chosen)]
            return ([r["test_accuracy"] * scale for r in runs], [r["command"] for r in runs], dataset, f"M={k}",
                    None)
    note = f"runs with M = {', '.join(map(str, sorted(other)))} only, not M = K" if other else None
    return [], [], None, None, note


def build_tables(results_dir):
    """``{table: (title, rows)}`` with rows ``{"system", "metric", "paper", "ours", "command", "n_runs"}``."""
    entries = find_results(results_dir)
    selections = {(name, dataset): select_sweep(results_dir, name, dataset)
                  for name in SWEPT for dataset in (*ESC, "sonyc_ust", "openmic")}
    tables = {}
    for table, (title, cells) in PAPER.items():
        rows = []
        for system, metric, paper, source in cells:
            if source is None:
                rows.append({"system": system, "metric": metric, "paper": paper, "ours": "n/a (not our system)",
                             "command": "", "n_runs": 0})
                continue
            label = note = None
            name = (source[2] or ("",))[0][len(BASELINE):]
            if source[0] == APNET:
                values, commands, dataset, label, note = apnet_cell(results_dir, source)
            elif source[0] == "baseline" and name in SWEPT:
                values, commands, dataset, label, note = sweep_cell(
                    entries, source, {d: selections[(name, d)] for d in source[1]})
            else:
                values, commands, dataset = ours(entries, source)
            if values:
                text = _format(values, source[4])
                if dataset == "esc10":
                    text += " [ESC-10]"
                if label:
                    text += f" [{label}]"
                command = commands[0] + (f"  (+{len(set(commands)) - 1} more)" if len(set(commands)) > 1 else "")
            elif note and note.startswith("n/a"):
                text, command = note, ""
            else:
                text, command = "not run" + (f" ({note})" if note else ""), _template(source)
            rows.append({"system": system, "metric": metric, "paper": paper, "ours": text, "command": command,
                         "n_runs": len(values)})
        tables[table] = (title, rows)
    return tables


def write_tables(tables, output):
    """Write ``table_<N>.md`` and ``table_<N>.csv`` per table to ``output``; returns the paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    fields = ["system", "metric", "paper", "ours", "n_runs", "command"]
    for table, (title, rows) in tables.items():
        md = [f"# Table {table}: {title}", "", "| system | metric | paper | ours | command |", "|---|---|---|---|---|"]
        md += [f"| {r['system']} | {r['metric']} | {r['paper']} | {r['ours']} | "
               f"{'`' + r['command'] + '`' if r['command'] else ''} |" for r in rows]
        (output / f"table_{table}.md").write_text("\n".join(md) + "\n")
        with open(output / f"table_{table}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: r[k] for k in fields} for r in rows)
        paths += [output / f"table_{table}.md", output / f"table_{table}.csv"]
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", help="folder holding l2i/<dataset>/fold<N>/seed<S>/... results")
    parser.add_argument("--output", default=None, help="default: RESULTS_DIR/tables")
    args = parser.parse_args(argv)
    if not Path(args.results_dir).is_dir():
        parser.exit(2, f"error: {args.results_dir}: no such folder\n")
    tables = build_tables(args.results_dir)
    paths = write_tables(tables, args.output or Path(args.results_dir) / "tables")
    for table, (title, rows) in tables.items():
        done = sum(r["n_runs"] > 0 for r in rows)
        print(f"Table {table}: {done}/{len(rows)} cells with our numbers")
    print(f"written: {', '.join(p.name for p in paths)} to {paths[0].parent}")


if __name__ == "__main__":
    main()
