"""Tables I and IV-VIII of L2I (Parekh et al., TASLP 2024): the paper's numbers beside ours.

    python experiments/l2i/tables.py RESULTS_DIR [--output DIR]

Reads every results.json below RESULTS_DIR (the --output folder of the training and evaluation
scripts: <RESULTS_DIR>/l2i/<dataset>/fold<N>/seed<S>/...) and writes, per table, table_<N>.md and
table_<N>.csv to --output (default RESULTS_DIR/tables). Each row is one cell of the paper's table:
system, metric, the paper's value, ours (mean +- standard deviation over the folds and seeds found,
with their number) and the command behind ours -- or "not run" with the command that would produce it.
ESC-50 cells show ESC-10 results, marked as such, when no ESC-50 run exists. The baselines' rows (FLINT,
VIBI, Unsupervised-NMF, TD-NMF, FLINT by design) read the baseline_<name>/results.json of train_baseline.py.
"""
import argparse
import csv
from pathlib import Path

import numpy as np

from l2i.pipeline import find_results

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
BASELINE = "baseline_"  # prefix of the run folders of train_baseline.py


def _system_kind(system, kind):
    """``"baseline"`` for a baseline_<name> folder of train_baseline.py, else ``kind``."""
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
            ("APNet [13]", None, ("63.6 ± 1.7", "0.422 ± 0.012", "0.563 ± 0.025")),
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
    """``B4+B5+B6`` from the training config's hidden layers (``block4`` ...); ``Input`` for the input layer."""
    config = (entry["training"] or {}).get("config", {})
    layers = config.get("interpreter", {}).get("hidden_layers", ["block4", "block5", "block6"])
    names = ["B" + name[len("block"):] if name.startswith("block") else "Input" for name in layers]
    return "+".join(names)


def _weights(entry):
    section = (entry["training"] or {}).get("config", {}).get("posthoc", {})
    return float(section.get("alpha", 10.0)), float(section.get("beta", 0.8))


def ours(entries, source):
    """``(values, commands, datasets)`` of one cell from all entries, evaluation preferred per run."""
    kind, datasets, systems, getter, scale = source
    parts = getter.split("|")
    per_run = {}
    for dataset in datasets:
        for entry in entries:
            if entry["dataset"] != dataset or (systems is not None and entry["system"] not in systems):
                continue
            if entry["kind"] == "evaluation" and entry["corruption"] != "none":
                continue
            allowed = {"classifier": ("classifier",), "interp": ("evaluation", "interpreter"),
                       "any": ("evaluation", "classifier"), "evaluation": ("evaluation",),
                       "layers": ("evaluation",), "weights": ("evaluation",), "baseline": ("baseline",)}[kind]
            if entry["kind"] not in allowed:
                continue
            if kind == "layers" and (entry["fold"] != 1 or _blocks(entry) != parts[1]):
                continue
            if kind == "weights" and _weights(entry) != (float(parts[1]), float(parts[2])):
                continue
            value = _value(entry, getter)
            if value is None or not np.isfinite(value):
                continue
            key = (entry["fold"], entry["seed"], entry["system"] if systems else "f")
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
        return TRAIN_B.format(baseline=system[len(BASELINE):], dataset=dataset)
    command = EVAL.format(dataset=dataset, system=system)
    if kind == "layers":
        command = f"train_interpreter.py with interpreter.hidden_layers = {getter.split('|')[1]}; then " + command
    if kind == "weights":
        _, a, b = getter.split("|")
        command = f"train_interpreter.py with posthoc.alpha = {a}, posthoc.beta = {b}; then " + command
    return command


def build_tables(results_dir):
    """``{table: (title, rows)}`` with rows ``{"system", "metric", "paper", "ours", "command", "n_runs"}``."""
    entries = find_results(results_dir)
    tables = {}
    for table, (title, cells) in PAPER.items():
        rows = []
        for system, metric, paper, source in cells:
            if source is None:
                rows.append({"system": system, "metric": metric, "paper": paper, "ours": "n/a (not our system)",
                             "command": "", "n_runs": 0})
                continue
            values, commands, dataset = ours(entries, source)
            if values:
                text = _format(values, source[4])
                if dataset == "esc10":
                    text += " [ESC-10]"
                command = commands[0] + (f"  (+{len(set(commands)) - 1} more)" if len(set(commands)) > 1 else "")
            else:
                text, command = "not run", _template(source)
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
