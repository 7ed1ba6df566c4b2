"""Refine a trained APNet (Section 5.2): remove redundant prototypes or latent channels, retrain, test.

    python experiments/apnet/refine.py --method prototypes --model RUN/model.keras --data-dir /data
    python experiments/apnet/refine.py --method channels --n-channels 8 \
        --model RUN/refine_prototypes/model.keras --data-dir /data       # Table 4: prototypes, then channels

RUN is a folder written by train.py (model.keras, config.yaml, scaler.json, results.json).

--rules authors (default; what the authors' code did, hence what produced Table 4):
  prototypes: each prototype, in class-sorted order, is removed when its nearest neighbour
  (Eq. 11) has the same class (the model's prediction on the prototype) and is closer than
  min + mean / 2 of Eq. 11 (mean over the whole matrix, diagonal included), unless it is the
  neighbour of a prototype removed before; channels: Eq. 13 with i = j (--pairing same), pairs
  (k > q) from the smallest up each remove k, or q when k already is, until --n-channels channels
  are removed; the decoder is re-created with new weights (--decoder reinitialize).
--rules paper (Section 5.2 read literally): every pair closer than min + mean / 2 of Eq. 11 (over
  j != l) loses one prototype; Eq. 13 over every pair of prototypes (--pairing all), the
  --n-channels smallest pairs of kept channels lose one channel; the decoder keeps its weights.
--threshold, --pairing, --decoder and --same-class override single parts of either set.

The refined model is trained --epochs more epochs (20 in the paper) with the run's settings,
keeping the best validation epoch, and tested. See docs/apnet_deviations.md, "Refinement".

Writes into --output (default RUN/refine_<method>/): model.keras (the run's scaler inside),
history.csv, backup/, config.yaml and scaler.json (so that the folder can be refined again),
distances.npy (the matrix of Eq. 11 or 13) and results.json (test accuracy and parameters
before/after, the rules, what was removed, epochs, seconds, command). Re-running the same command
resumes an interrupted retraining.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from apnet import inspection, refinement
from apnet.inspection import load_run
from apnet.refinement import retrain
from apnet.training import fold_batches, load_fold, predict_classes
from audiodata import cli as argtypes
from audiodata.download import cli_error
from audiodata.errors import AudioDataError
from audioruns.checkpoints import write_text_atomic
from audioruns.metrics import accuracy
from audioruns.preprocessing import load_scaled_model

METHODS = ("prototypes", "channels")
RULES = refinement.RULES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, choices=METHODS, help="Section 5.2.1 or 5.2.2")
    parser.add_argument("--model", required=True, help="model.keras of a train.py (or refine.py) run folder")
    argtypes.add_data_options(parser)
    parser.add_argument("--output", default=None, help="output folder (default: next to the model, refine_<method>)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=20,
                        help="epochs of retraining (20 in Section 5.2)")
    parser.add_argument("--rules", default="authors", choices=RULES,
                        help="authors: the authors' code, which produced Table 4 (default); paper: Section 5.2 "
                             "read literally")
    parser.add_argument("--threshold", type=argtypes.non_negative_float, default=None,
                        help="prototypes: distance threshold in units of Eq. 11 (default Eq. 12: min + mean / 2, "
                             "the mean as --rules says)")
    parser.add_argument("--same-class", action="store_true",
                        help="prototypes, --rules paper: only pairs of prototypes of one class (the model's "
                             "prediction on the prototype); always on with --rules authors")
    parser.add_argument("--n-channels", type=argtypes.positive_int, default=8,
                        help="channels: how many to remove (8 in the paper)")
    parser.add_argument("--channel-source", default="prototypes", choices=("prototypes", "train"),
                        help="channels: Eq. 13 over the prototypes (paper and authors) or the encoded training split")
    parser.add_argument("--pairing", default=None, choices=("all", "same"),
                        help="channels: Eq. 13 over every pair (i, j) as printed (default of --rules paper), or "
                             "i = j as the authors' code (default of --rules authors)")
    parser.add_argument("--decoder", default=None, choices=("keep", "reinitialize"),
                        help="channels: keep the decoder's weights (default of --rules paper) or re-create the "
                             "decoder with new weights as the authors' code (default of --rules authors)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=None,
                        help="override the run's batch size B")
    parser.add_argument("--verbose", type=argtypes.non_negative_int, default=2, choices=(0, 1, 2),
                        help="Keras fit verbosity")
    return parser.parse_args(argv)


def accuracy_on_test(model, data, scaler, batch_size):
    """Accuracy of ``model`` on the test split of ``data``."""
    batches = fold_batches(data, batch_size, scaler=scaler, splits=("test",))
    return accuracy(predict_classes(model, batches["test"]), data.targets["test"])


def refine(args, run, data):
    """Apply the refinement of ``args.method`` to ``run.model``: (new model, distances, details).

    ``details`` records the rules and the settings they resolved to, and what was removed.
    """
    model, scaler = run.model, run.scaler
    batch_size = int(run.config["batch_size"])
    rules = args.rules
    defaults = refinement.RULE_DEFAULTS[rules]
    if args.method == "prototypes":
        distances = inspection.prototype_distance_matrix(model)
        threshold = refinement.redundancy_threshold(distances, rules) if args.threshold is None else args.threshold
        same_class = rules == "authors" or args.same_class
        classes = refinement.prototype_classes(model) if same_class else None
        removed = refinement.redundant_prototypes(distances, threshold, classes, rules=rules)
        details = {"rules": rules, "threshold": threshold, "same_class": same_class,
                   "prototype_classes": None if classes is None else classes.tolist(),
                   "removed_prototypes": removed.tolist()}
        return refinement.remove_prototypes(model, removed), distances, details
    pairing = args.pairing or defaults["pairing"]
    decoder = args.decoder or defaults["decoder"]
    if args.channel_source == "prototypes":
        distances = refinement.channel_distance_matrix(model, pairing=pairing)
    else:
        x_train = data.features[data.rows["train"]]
        distances = refinement.latent_channel_distance_matrix(model, x_train, batch_size=batch_size, scaler=scaler,
                                                             pairing=pairing)
    removed = refinement.redundant_channels(distances, args.n_channels, rules=rules)
    details = {"rules": rules, "channel_source": args.channel_source, "pairing": pairing, "decoder": decoder,
               "removed_channels": removed.tolist()}
    seed = int(run.config.get("seed", 0))
    return refinement.remove_channels(model, removed, decoder=decoder, seed=seed), distances, details


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join(["python", "experiments/apnet/refine.py"] + list(sys.argv[1:] if argv is None else argv))
    try:
        run = load_run(args.model)
        config = dict(run.config)
        if args.batch_size is not None:
            config["batch_size"] = args.batch_size
        output = Path(args.output) if args.output else run.run_dir / f"refine_{args.method}"
        data = load_fold(run.dataset, run.fold, config["features"], data_dir=args.data_dir,
                         cache_dir=args.cache_dir, progress=True)
        refined, distances, details = refine(args, run, data)
    except (AudioDataError, ValueError) as err:
        print(f"error: {cli_error(err)}", file=sys.stderr)
        return 2
    model, scaler = run.model, run.scaler
    batch_size = int(config["batch_size"])
    accuracy_before = accuracy_on_test(model, data, scaler, batch_size)

    output.mkdir(parents=True, exist_ok=True)
    np.save(output / "distances.npy", distances)
    scaler.save(output / "scaler.json")  # also inside model.keras; kept for older readers
    n_prototypes = refined.get_layer("prototypes").n_prototypes
    n_channels = refined.get_layer("encoder_conv3").filters
    refined_config = {**config, "n_prototypes": n_prototypes, "latent_channels": n_channels,
                      "refinement": {"method": args.method, "source_model": str(args.model), "epochs": args.epochs,
                                     **details}}
    (output / "config.yaml").write_text(yaml.safe_dump(refined_config, sort_keys=False))

    start = time.perf_counter()
    history, epochs_run = retrain(refined, config, data, scaler, output, epochs=args.epochs, verbose=args.verbose)
    best, _ = load_scaled_model(output / "model.keras")  # the refined model on scaled inputs
    monitor = "val_probabilities_accuracy"
    best_row = history.loc[history[monitor].idxmax()] if monitor in history and len(history) else None
    results = {
        "dataset": run.dataset,
        "fold": run.fold,
        "seed": config["seed"],
        "method": args.method,
        **details,
        "test_accuracy_before": accuracy_before,
        "test_accuracy_after": accuracy_on_test(best, data, scaler, batch_size),
        "n_params_before": int(model.count_params()),
        "n_params_after": int(best.count_params()),
        "n_prototypes_before": int(model.get_layer("prototypes").n_prototypes),
        "n_prototypes_after": int(n_prototypes),
        "n_channels_before": int(model.get_layer("encoder_conv3").filters),
        "n_channels_after": int(n_channels),
        "epochs": int(len(history)),
        "epochs_this_run": int(epochs_run),
        "best_epoch": None if best_row is None else int(best_row["epoch"]) + 1,
        "best_val_accuracy": None if best_row is None else float(best_row[monitor]),
        "seconds": float(history["seconds"].sum()) if "seconds" in history else time.perf_counter() - start,
        "source_model": str(args.model),
        "command": command,
    }
    write_text_atomic(output / "results.json", json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
