"""Evaluate a trained L2I run on the test split: fidelity, accuracy, faithfulness (Sec. IV-C, V-A, V-B).

    python experiments/l2i/evaluate.py --model runs/l2i/esc50/fold1/seed0/posthoc_att --dataset esc50 \
        --fold 1 --data-dir DATA [--taus 0.1 0.3 0.5 0.7 0.9] [--corruption none|noise|mix] --output runs

Computes, on every test clip (corrupted first with --corruption: white noise at 0 dB SNR, or a 0 dB
mixture with a test clip of another class, Sec. V-B):

* fidelity of the interpreter to f (Table IV), l2i.metrics.fidelity_scores: top-1 / top-5 (ESC); SONYC-UST:
  the authors' macro / micro AUPRC and max-F1 (11 thresholds, f binarised per class at 0.5 / 0.6,
  'non-machinery-impact' left out of the macro average) and ours with suffix _ap (average precision,
  f > 0.5); weighted F1 (OpenMIC-2018);
* the classifier's and the interpreter's scores against the labels (Tables I, VIII);
* test L_NMF (mean squared error per bin) and L_FID (Tables VI, VII);
* FF_median per tau and the Random Baseline with as many components removed (Table V, Figs. 2-3).

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/<mode>_<theta>/evaluation_<corruption>/: results.json,
ff_tau<tau>.csv (one row per interpreted clip and class), relevances.npz (relevance vectors, Fig. 5).
"""
import argparse
import csv
import sys

import numpy as np

from audiodata import cli as argtypes
from audiodata.download import cli_error
from audiodata.errors import AudioDataError
from l2i.pipeline import CORRUPTIONS, DEFAULT_TAUS, check_tau, evaluate_run, evaluation_folder, load_run
from l2i.training import write_results

#: Relevance thresholds tau lie in [0, 1) (Sec. III-E; l2i.pipeline.check_tau).
TAU = argtypes.fraction(include_0=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder holding interpreter.keras (<mode>_<theta>/)")
    parser.add_argument("--dataset", required=True, choices=["esc50", "esc10", "sonyc_ust", "openmic"])
    parser.add_argument("--fold", type=argtypes.positive_int, default=1)
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset folder (default $AUDIO_DATA_DIR)")
    parser.add_argument("--taus", type=TAU, nargs="+", default=list(DEFAULT_TAUS),
                        help="thresholds tau, each in [0, 1)")
    parser.add_argument("--corruption", default="none", choices=list(CORRUPTIONS))
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="noise, mixing partners and Random Baseline")
    parser.add_argument("--max-clips", type=argtypes.positive_int, default=None,
                        help="only the first N test clips (quick check)")
    parser.add_argument("--output", default="runs")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    try:
        taus = [check_tau(t) for t in args.taus]
        run = load_run(args.model, dataset=args.dataset)
        results, rows, relevances = evaluate_run(run, fold=args.fold, data_dir=args.data_dir, taus=taus,
                                                 corruption=args.corruption, seed=args.seed,
                                                 max_clips=args.max_clips, progress=args.progress)
    except AudioDataError as err:
        parser.exit(2, f"error: {cli_error(err)}\n")
    folder = evaluation_folder(args.output, run, args.corruption, args.fold)
    results["command"] = " ".join([sys.executable] + sys.argv)
    write_results(folder / "results.json", results)
    fields = ["clip_id", "class", "class_index", "tau", "ff", "n_removed", "ff_random", "n_random"]
    for tau in taus:
        with open(folder / f"ff_tau{tau:g}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(r for r in rows if r["tau"] == tau)
    np.savez(folder / "relevances.npz", **relevances)
    shown = {k: v for k, v in results.items() if not k.endswith("per_class")}
    print(shown)
    print(f"written to {folder}")


if __name__ == "__main__":
    main()
