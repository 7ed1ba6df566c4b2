"""Train the classifier f of L2I (Kumar et al.'s CNN) on one fold, from scratch.

    python experiments/l2i/train_classifier.py --dataset esc50 --fold 1 --data-dir DATA --output runs

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/classifier/{classifier.keras,results.json,identity.json,
history.csv}; re-running continues from the last completed epoch. identity.json (l2i/runs.py) holds the
classifier section of the config but the budget (epochs); a classifier of another configuration in the same
folder is refused (use another --output).

On stderr: `run folder: PATH` at the start and at the end, the clips of each split on one line, a line starting
with `warning:` when the dataset folder holds less than half the clips of the official release (an excerpt or an
incomplete download), and a progress bar while features are extracted. --download first downloads the dataset
into --data-dir unless it is already there (--mirror URL: from a mirror); see experiments/l2i/README.md.
"""
import argparse
import sys
import time

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError
from l2i.runs import classifier_identity, write_identity
from l2i.training import load_config, run_directory, train_classifier, write_results



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["esc50", "esc10", "sonyc_ust", "openmic"])
    parser.add_argument("--fold", type=argtypes.positive_int, default=1)
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset folder (default $AUDIO_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default="runs")
    parser.add_argument("--config", default=None, help="YAML config (default: configs/<dataset>.yaml)")
    parser.add_argument("--seed", type=argtypes.seed, default=None, help="overrides the config's seed")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None, help="overrides classifier.epochs")
    parser.add_argument("--verbose", type=argtypes.non_negative_int, default=2, choices=(0, 1, 2),
                        help="Keras fit verbosity")
    add_download_options(parser)
    args = parser.parse_args(argv)

    config = load_config(args.dataset, args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    section = dict(config["classifier"], seed=config["seed"])
    if args.epochs is not None:
        section["epochs"] = args.epochs
    run_dir = run_directory(args.output, args.dataset, args.fold, config["seed"]) / "classifier"
    identity = classifier_identity(section)
    start = time.perf_counter()
    try:
        write_identity(run_dir, identity)
        argtypes.say(f"run folder: {run_dir}")
        if args.download:
            ensure_dataset(args.dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)
        results = train_classifier(section, args.dataset, args.fold, run_dir, data_dir=args.data_dir,
                                   cache_dir=args.cache_dir, verbose=args.verbose, progress=True)
    except AudioDataError as err:
        parser.exit(2, f"error: {cli_error(err)}\n")
    results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"], "config": section,
                    "identity": identity,
                    "wall_seconds": time.perf_counter() - start, "command": " ".join([sys.executable] + sys.argv)})
    write_results(run_dir / "results.json", results)
    argtypes.say(f"run folder: {run_dir} (classifier.keras, results.json, history.csv)")
    print({k: v for k, v in results.items() if k != "config"})


if __name__ == "__main__":
    main()
