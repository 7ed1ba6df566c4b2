"""Tables 3 and 4 of the APNet paper, the paper's numbers beside ours, from the results.json of every run.

    python experiments/apnet/tables.py results [--output DIR]

Reads the folders written by train.py (RESULTS_DIR/<model>/<dataset>/fold<N>/seed<S>/results.json)
and by refine.py (results.json in folders below a training run, e.g. .../seed0/refine_prototypes/
and .../seed0/refine_prototypes/refine_channels/). Writes into --output (default RESULTS_DIR)
table3.md, table3.csv, table4.md and table4.csv, and prints both markdown tables.

* Table 3: mean test accuracy (%) over the runs (folds, and seeds if several) and parameters in
  millions, for every model x dataset of the paper, plus any other dataset we have APNet or
  baseline results for (paper column "—").
* Table 4: Medley-solos-DB, APNet before refinement, after the prototype refinement (Section
  5.2.1), after the channel refinement applied to the prototype-refined model (Section 5.2.2),
  and OpenL3. A channel refinement of the unrefined model is listed separately (not in the paper).

Each of our cells names the command(s) that produced it (the "command" field of results.json, with
the fold number replaced by N when the folds differ only in it) and the number of folds averaged.
Cells without results say "not run".
"""
import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

from audioruns.cli import existing_folder

#: Table 3 of Zinemanas et al. (Electronics 2021): (accuracy %, parameters in millions).
PAPER_TABLE3 = {
    "apnet": {"urbansound8k": (76.2, 1.2), "medley_solos_db": (65.8, 4.2), "speech_commands": (89.0, 1.8)},
    "sb_cnn": {"urbansound8k": (72.2, 0.86), "medley_solos_db": (64.7, 1.8), "speech_commands": (92.1, 0.17)},
    "att_crnn": {"urbansound8k": (61.1, 0.23), "medley_solos_db": (52.0, 0.29), "speech_commands": (93.2, 0.20)},
    "openl3_mlp": {"urbansound8k": (77.3, 9.5), "medley_solos_db": (67.3, 9.5), "speech_commands": (70.9, 9.5)},
}

#: Table 4 (Medley-solos-DB): row key -> (network as printed, accuracy %, approx. parameters in millions).
#: OpenL3 has 9.4 M parameters here and 9.5 M in Table 3, as printed.
PAPER_TABLE4 = {
    "apnet": ("APNet", 65.8, 4.2),
    "prototypes": ("APNet (R. prototypes)", 68.2, 1.8),
    "prototypes+channels": ("APNet (R. channels)", 69.1, 1.5),
    "openl3_mlp": ("Openl3", 67.3, 9.4),
}
#: Rows of Table 4 we may have that the paper does not report.
EXTRA_TABLE4 = {"channels": "APNet (R. channels only, not in the paper)"}

MODEL_NAMES = {"apnet": "APNet", "sb_cnn": "SB-CNN", "att_crnn": "Att-CRNN", "openl3_mlp": "OpenL3"}
DATASET_NAMES = {"urbansound8k": "UrbanSound8K", "medley_solos_db": "Medley-solos-DB",
                 "speech_commands": "Google Speech Commands", "fsdd": "FSDD", "esc10": "ESC-10"}
PAPER_DATASETS = ("urbansound8k", "medley_solos_db", "speech_commands")
TABLE4_DATASET = "medley_solos_db"
NOT_RUN = "not run"

TABLE3_COLUMNS = ["model", "dataset", "paper_accuracy", "accuracy_mean", "accuracy_std", "paper_params_M",
                  "params_M", "n_folds", "folds", "n_runs", "status", "command"]
TABLE4_COLUMNS = ["row", "network", "paper_accuracy", "accuracy_mean", "accuracy_std", "paper_params_M",
                  "params_M", "n_folds", "folds", "n_runs", "status", "command"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="the --output folder of train.py")
    parser.add_argument("--output", default=None, help="where to write the tables (default RESULTS_DIR)")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- reading
def collect_training_runs(results_dir):
    """One row per ``<model>/<dataset>/fold*/seed*/results.json``: model, dataset, fold, seed, accuracy, params."""
    rows = []
    for path in sorted(Path(results_dir).glob("*/*/fold*/seed*/results.json")):
        result = json.loads(path.read_text())
        rows.append({
            "model": result.get("model", path.parts[-5]),
            "dataset": result.get("dataset", path.parts[-4]),
            "fold": int(result.get("fold", path.parts[-3][len("fold"):])),
            "seed": int(result.get("seed", path.parts[-2][len("seed"):])),
            "accuracy": float(result["test_accuracy"]),
            "n_params": int(result["n_params"]),
            "command": result.get("command"),
            "path": str(path),
        })
    return pd.DataFrame(rows, columns=["model", "dataset", "fold", "seed", "accuracy", "n_params", "command", "path"])


def refinement_stage(path, run_dir, base_n_prototypes=None):
    """The refinements that led to the results.json at ``path``, e.g. ``"prototypes+channels"``.

    The stages are the ``method`` of every refine.py results.json from the training run folder
    ``run_dir`` down to ``path`` (refine.py nests its default outputs). A channel refinement whose
    model had fewer prototypes than the training run (``n_prototypes_before``) counts as applied
    after the prototype refinement even when its folder is not nested.
    """
    path, run_dir = Path(path), Path(run_dir)
    methods = []
    folder = path.parent
    while folder != run_dir and run_dir in folder.parents:
        results = folder / "results.json"
        if results.is_file():
            methods.append(json.loads(results.read_text()).get("method"))
        folder = folder.parent
    methods = [m for m in reversed(methods) if m]
    result = json.loads(path.read_text())
    if (methods == ["channels"] and base_n_prototypes is not None
            and result.get("n_prototypes_before", base_n_prototypes) < base_n_prototypes):
        methods = ["prototypes", "channels"]
    return "+".join(methods)


def collect_refinement_runs(results_dir, dataset=TABLE4_DATASET):
    """One row per refine.py results.json below ``apnet/<dataset>/fold*/seed*/``."""
    rows = []
    for run_dir in sorted(Path(results_dir).glob(f"apnet/{dataset}/fold*/seed*")):
        base = run_dir / "results.json"
        base_result = json.loads(base.read_text()) if base.is_file() else {}
        config_path = run_dir / "config.yaml"
        base_m = None
        if config_path.is_file():
            base_m = yaml.safe_load(config_path.read_text()).get("n_prototypes")
        for path in sorted(run_dir.glob("*/**/results.json")):
            result = json.loads(path.read_text())
            if "method" not in result:
                continue
            rows.append({
                "stage": refinement_stage(path, run_dir, base_m),
                "fold": int(result.get("fold", base_result.get("fold", run_dir.parent.name[len("fold"):]))),
                "seed": int(result.get("seed", base_result.get("seed", run_dir.name[len("seed"):]))),
                "accuracy": float(result["test_accuracy_after"]),
                "n_params": int(result["n_params_after"]),
                "command": result.get("command"),
                "path": str(path),
            })
    return pd.DataFrame(rows, columns=["stage", "fold", "seed", "accuracy", "n_params", "command", "path"])


# ----------------------------------------------------------------------------- aggregating
def command_summary(commands, folds):
    """The distinct commands, with ``--fold K`` written ``--fold N`` when there are several folds."""
    commands = [c for c in commands if isinstance(c, str) and c]
    if not commands:
        return ""
    if len(set(folds)) > 1:
        commands = [re.sub(r"--fold(=|\s+)\d+", r"--fold\g<1>N", c) for c in commands]
    return "; ".join(dict.fromkeys(commands))


def format_folds(folds):
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    folds = sorted(set(int(f) for f in folds))
    parts, start = [], None
    for i, fold in enumerate(folds):
        if start is None:
            start = fold
        if i == len(folds) - 1 or folds[i + 1] != fold + 1:
            parts.append(str(start) if start == fold else f"{start}-{fold}")
            start = None
    return ", ".join(parts)


def aggregate(runs):
    """Mean/std accuracy (%) and mean parameters (M) of a group of runs, with folds and commands."""
    if runs is None or len(runs) == 0:
        return {"accuracy_mean": None, "accuracy_std": None, "params_M": None, "n_folds": 0, "folds": "",
                "n_runs": 0, "status": NOT_RUN, "command": ""}
    accuracy = 100.0 * runs["accuracy"]
    return {
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std": float(accuracy.std(ddof=1)) if len(runs) > 1 else 0.0,
        "params_M": float(runs["n_params"].mean() / 1e6),
        "n_folds": int(runs["fold"].nunique()),
        "folds": format_folds(runs["fold"]),
        "n_runs": int(len(runs)),
        "status": "ok",
        "command": command_summary(runs["command"].tolist(), runs["fold"].tolist()),
    }


def table3(training_runs):
    """Table 3 as a DataFrame (:data:`TABLE3_COLUMNS`): every model x dataset of the paper and ours."""
    datasets = list(PAPER_DATASETS)
    if len(training_runs):
        datasets += sorted(set(training_runs["dataset"]) - set(PAPER_DATASETS))
    rows = []
    for dataset in datasets:
        for model in MODEL_NAMES:
            paper = PAPER_TABLE3.get(model, {}).get(dataset, (None, None))
            runs = training_runs[(training_runs["model"] == model) & (training_runs["dataset"] == dataset)] \
                if len(training_runs) else None
            if dataset not in PAPER_DATASETS and (runs is None or len(runs) == 0):
                continue
            rows.append({"model": model, "dataset": dataset, "paper_accuracy": paper[0],
                         "paper_params_M": paper[1], **aggregate(runs)})
    return pd.DataFrame(rows, columns=TABLE3_COLUMNS)


def table4(training_runs, refinement_runs):
    """Table 4 as a DataFrame (:data:`TABLE4_COLUMNS`), Medley-solos-DB."""
    rows = []

    def training(model):
        if not len(training_runs):
            return None
        return training_runs[(training_runs["model"] == model) & (training_runs["dataset"] == TABLE4_DATASET)]

    def refined(stage):
        return refinement_runs[refinement_runs["stage"] == stage] if len(refinement_runs) else None

    for key, (network, accuracy, params) in PAPER_TABLE4.items():
        runs = training(key) if key in MODEL_NAMES else refined(key)
        rows.append({"row": key, "network": network, "paper_accuracy": accuracy, "paper_params_M": params,
                     **aggregate(runs)})
    for key, network in EXTRA_TABLE4.items():
        runs = refined(key)
        if runs is not None and len(runs):
            rows.append({"row": key, "network": network, "paper_accuracy": None, "paper_params_M": None,
                         **aggregate(runs)})
    return pd.DataFrame(rows, columns=TABLE4_COLUMNS)


# ----------------------------------------------------------------------------- writing
def _number(value, digits):
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _ours(row, what):
    if row["status"] == NOT_RUN:
        return NOT_RUN
    if what == "accuracy":
        text = _number(row["accuracy_mean"], 1)
        return text + (f" ± {row['accuracy_std']:.1f}" if row["n_runs"] > 1 else "")
    return _number(row["params_M"], 2)


def _cells(row):
    folds = f"{row['n_folds']} ({row['folds']})" if row["n_folds"] else "0"
    command = f"`{row['command']}`" if row["command"] else "—"
    paper_params = "—" if pd.isna(row["paper_params_M"]) else f"{row['paper_params_M']:g}"  # as printed
    return [_number(row["paper_accuracy"], 1), _ours(row, "accuracy"), paper_params,
            _ours(row, "params"), folds, command]


def markdown_table3(table):
    lines = ["| model | dataset | paper acc. (%) | ours acc. (%) | paper params (M) | ours params (M) "
             "| folds | command |", "|---|---|---:|---:|---:|---:|---|---|"]
    for _, row in table.iterrows():
        dataset = DATASET_NAMES.get(row["dataset"], row["dataset"])
        if row["dataset"] not in PAPER_DATASETS:
            dataset += " (not in paper)"
        lines.append("| " + " | ".join([MODEL_NAMES.get(row["model"], row["model"]), dataset] + _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def markdown_table4(table):
    lines = ["| network | paper acc. (%) | ours acc. (%) | paper params (M) | ours params (M) | folds | command |",
             "|---|---:|---:|---:|---:|---|---|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join([row["network"]] + _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    results_dir = existing_folder(args.results_dir)
    if results_dir is None:
        return 2
    output = Path(args.output) if args.output else results_dir
    output.mkdir(parents=True, exist_ok=True)
    training_runs = collect_training_runs(results_dir)
    t3 = table3(training_runs)
    t4 = table4(training_runs, collect_refinement_runs(results_dir))
    md3 = ("**Table 3.** Mean accuracy (%) and parameters (millions) per model and dataset: the paper's "
           "Table 3 beside ours (mean ± sample std over runs).\n\n" + markdown_table3(t3))
    md4 = ("**Table 4.** Medley-solos-DB: APNet before and after the refinements (Section 5.2), and OpenL3: "
           "the paper's Table 4 beside ours.\n\n" + markdown_table4(t4))
    (output / "table3.md").write_text(md3)
    (output / "table4.md").write_text(md4)
    t3.to_csv(output / "table3.csv", index=False)
    t4.to_csv(output / "table4.csv", index=False)
    print(md3 + "\n" + md4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
