"""Train the classifier f of L2I (Kumar et al.'s CNN) on one fold, from scratch.

    python experiments/l2i/train_classifier.py --dataset esc50 --fold 1 --data-dir DATA --output runs

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/classifier/{classifier.keras,results.json,identity.json,
history.csv}; re-running continues from the last completed epoch. identity.json (l2i/runs.py) holds the
classifier section of the config but the budget (epochs); a classifier of another configuration in the same
folder is refused (use another --output).
"""
import argparse
import time

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError
from audioruns.cli import (RUN_NOTES, add_distribute_option, add_run_options, add_verbose_option, finish_run,
                           load_run_config)
from l2i.runs import DATASETS, classifier_identity, config_path, write_identity
from l2i.training import load_config, run_directory, train_classifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=RUN_NOTES.format(paper="l2i"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, DATASETS, "l2i")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None, help="overrides classifier.epochs")
    add_verbose_option(parser)
    add_distribute_option(parser)
    add_download_options(parser)
    args = parser.parse_args(argv)

    config = load_run_config(args, load_config, config_path)
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
                                   cache_dir=args.cache_dir, verbose=args.verbose, progress=True,
                                   distribute=args.distribute)
    except AudioDataError as err:
        parser.exit(2, f"error: {cli_error(err)}\n")
    results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"], "config": section,
                    "identity": identity})
    finish_run(run_dir, results, start, "classifier.keras, results.json, history.csv")


if __name__ == "__main__":
    main()
