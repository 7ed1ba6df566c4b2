"""Aggregate the results.json of every fold: mean and std of the test accuracy and of n_params.

    python experiments/apnet/evaluate.py results [--model apnet] [--dataset fsdd]

Reads RESULTS_DIR/<model>/<dataset>/fold*/seed*/results.json, prints one row per
(model, dataset) and writes RESULTS_DIR/summary.csv and RESULTS_DIR/summary.json (or the
paths given with --csv/--json).
"""
import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from audioruns.cli import existing_folder

COLUMNS = ["model", "dataset", "n_runs", "folds", "seeds", "accuracy_mean", "accuracy_std", "n_params_mean",
           "n_params_std", "epochs_mean", "seconds_per_epoch_mean"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="the --output folder of train.py")
    parser.add_argument("--model", default=None, help="only this model (default: all)")
    parser.add_argument("--dataset", default=None, help="only this dataset (default: all)")
    parser.add_argument("--csv", default=None, help="summary CSV (default RESULTS_DIR/summary.csv)")
    parser.add_argument("--json", default=None, help="summary JSON (default RESULTS_DIR/summary.json)")
    return parser.parse_args(argv)


def collect(results_dir, model=None, dataset=None):
    """One row per results.json under ``results_dir/<model>/<dataset>/fold*/seed*/``."""
    pattern = f"{model or '*'}/{dataset or '*'}/fold*/seed*/results.json"
    rows = [json.loads(path.read_text()) for path in sorted(Path(results_dir).glob(pattern))]
    return pd.DataFrame(rows)


def summarize(runs):
    """Mean and (sample) standard deviation over the runs of each (model, dataset)."""
    summary = []
    for (model, dataset), group in runs.groupby(["model", "dataset"], sort=True):
        summary.append({
            "model": model,
            "dataset": dataset,
            "n_runs": len(group),
            "folds": " ".join(str(f) for f in sorted(group["fold"].unique())),
            "seeds": " ".join(str(s) for s in sorted(group["seed"].unique())),
            "accuracy_mean": group["test_accuracy"].mean(),
            "accuracy_std": group["test_accuracy"].std(ddof=1) if len(group) > 1 else 0.0,
            "n_params_mean": group["n_params"].mean(),
            "n_params_std": group["n_params"].std(ddof=1) if len(group) > 1 else 0.0,
            "epochs_mean": group["epochs"].mean(),
            "seconds_per_epoch_mean": group["seconds_per_epoch"].mean(),
        })
    return pd.DataFrame(summary, columns=COLUMNS)


def main(argv=None):
    args = parse_args(argv)
    results_dir = existing_folder(args.results_dir)
    if results_dir is None:
        return 2
    runs = collect(results_dir, args.model, args.dataset)
    if runs.empty:
        print(f"error: no results.json under {results_dir}/{args.model or '*'}/{args.dataset or '*'}/fold*/seed*/",
              file=sys.stderr)
        return 2
    summary = summarize(runs)
    table = summary.assign(accuracy=[f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in
                                     zip(summary["accuracy_mean"], summary["accuracy_std"])],
                           params_M=[f"{p / 1e6:.3f}" for p in summary["n_params_mean"]])
    print(table[["model", "dataset", "n_runs", "folds", "accuracy", "params_M", "epochs_mean"]].to_string(index=False))
    csv_path = Path(args.csv) if args.csv else results_dir / "summary.csv"
    json_path = Path(args.json) if args.json else results_dir / "summary.json"
    summary.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps({"summary": summary.to_dict(orient="records"),
                                     "runs": runs.to_dict(orient="records")}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
