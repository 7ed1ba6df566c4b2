"""Train APNet (or a baseline) on one fold of a dataset with the paper's settings, resumably.

    python experiments/apnet/train.py --fold 1                      # UrbanSound8K fold 1, Table 2
    python experiments/apnet/train.py --dataset fsdd --fold 1 --epochs 5 --data-dir /data
    python experiments/apnet/train.py --dataset fsdd --fold 1 --download --data-dir /data   # get FSDD first

Writes into <output>/<model>/<dataset>/fold<N>/seed<S>/: model.keras (best validation
accuracy), history.csv, config.yaml (the config used, overrides applied), scaler.json
(the model's normaliser, fitted on the training split), results.json and backup/ (the last
epoch, for resuming). Each model trains with the batch size, normaliser, last-layer
initialisation and early stopping of the config (apnet.training.training_settings: the
authors' per-model values for the paper's datasets). Running the same command again after an
interruption continues from the last completed epoch, early-stopping counter included.
--distribute trains the model data-parallel over every visible device (docs/distributed.md); the
device count is recorded in results.json ("distribution") and is not part of the run's identity.

On stderr it says where the results go (`run folder: PATH`, at the start and at the end),
how many clips each split has (`fsdd fold 1: train 2,000, validation 500, test 500 clips`),
warns (a line starting with `warning:`) when the dataset folder holds less than half the clips
of the official release (an excerpt or an incomplete download: the accuracy would mean nothing),
and draws a progress bar while it extracts features that are not cached yet. The last line of
stdout is results.json on one line. --download first downloads the dataset into --data-dir
(audiodata.download.ensure_dataset: nothing when it is already there; --mirror URL fetches the
files from a mirror instead of the official hosts).
"""
import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from apnet.training import train_fold, training_settings
from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError, ParameterError
from audioruns.checkpoints import write_text_atomic
from audioruns.cli import add_config_options, add_distribute_option, add_verbose_option, shipped_config, show_config

DATASETS = ("urbansound8k", "medley_solos_db", "speech_commands", "fsdd", "esc10", "esc50")
MODELS = ("apnet", "sb_cnn", "att_crnn", "openl3_mlp")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="urbansound8k", choices=DATASETS)
    parser.add_argument("--model", default="apnet", choices=MODELS)
    parser.add_argument("--fold", type=argtypes.positive_int, required=True,
                        help="test fold (1 for datasets with one partition)")
    argtypes.add_data_options(parser)
    add_config_options(parser, "apnet")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None, help="override the config's epochs")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=None,
                        help="override the batch size of the model trained (the config's batch_size for apnet, "
                             "baseline_batch_size[<model>] for a baseline)")
    parser.add_argument("--seed", type=argtypes.seed, default=None, help="override the config's seed")
    parser.add_argument("--n-prototypes", type=argtypes.positive_int, default=None,
                        help="override the config's M (e.g. L2I's comparison: as many prototypes as NMF components)")
    parser.add_argument("--output", default="results", help="results root (default ./results)")
    add_verbose_option(parser)
    add_distribute_option(parser)
    add_download_options(parser)
    return parser.parse_args(argv)


def load_config(args):
    """The config file with the command-line overrides applied; checks the fold.

    ``--batch-size`` replaces the batch size of the model trained: ``batch_size`` (APNet's
    ``B``) for ``--model apnet``, ``baseline_batch_size[<model>]`` for a baseline.
    """
    path = Path(args.config) if args.config else shipped_config("apnet", args.dataset)
    if not path.is_file():
        raise ParameterError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise ParameterError(f"config file {path} does not hold a mapping of settings")
    overrides = (("epochs", args.epochs), ("batch_size", args.batch_size), ("seed", args.seed),
                 ("n_prototypes", args.n_prototypes))
    for key, value in overrides:
        if value is not None:  # ranges checked by parse_args' types (audiodata.cli)
            if key == "batch_size" and args.model != "apnet":
                config["baseline_batch_size"] = {**(config.get("baseline_batch_size") or {}), args.model: value}
            else:
                config[key] = value
    if args.fold not in config["folds"]:
        raise ParameterError(f"{args.dataset}: --fold must be one of {config['folds']}, got {args.fold}")
    try:
        training_settings(args.model, config)  # checks batch size, normalizer, init_last_layer, early_stopping
    except ValueError as err:
        raise ParameterError(f"{path}: {err}") from None
    show_config(args, path, config)
    return config


def check_resume(run_dir, config):
    """Refuse to resume a run whose saved config differs (other than in ``epochs``).

    Every key counts, the per-model ones too (``baseline_batch_size``, ``normalizer``,
    ``init_last_layer``, ``early_stopping``): a run saved before a key existed is refused
    as well, since it trained with the old default.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = yaml.safe_load(saved_path.read_text())
    changed = sorted(k for k in set(saved) | set(config) if k != "epochs" and saved.get(k) != config.get(k))
    if changed:
        raise ParameterError(f"{run_dir} holds a run with another config (differs in {changed}); "
                             "choose another --output or delete that folder")


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join(["python", "experiments/apnet/train.py"] + list(sys.argv[1:] if argv is None else argv))
    try:
        config = load_config(args)
        run_dir = Path(args.output) / args.model / args.dataset / f"fold{args.fold}" / f"seed{config['seed']}"
        check_resume(run_dir, config)
        run_dir.mkdir(parents=True, exist_ok=True)
        argtypes.say(f"run folder: {run_dir}")
        if args.download:
            ensure_dataset(args.dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        results = train_fold(config, args.dataset, args.fold, run_dir, model_name=args.model,
                             data_dir=args.data_dir, cache_dir=args.cache_dir, verbose=args.verbose, progress=True,
                             distribute=args.distribute)
    except AudioDataError as err:
        print(f"error: {cli_error(err)}", file=sys.stderr)
        return 2
    results = {"model": args.model, "dataset": args.dataset, "fold": args.fold, "seed": config["seed"],
               **results, "command": command}
    write_text_atomic(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    argtypes.say(f"run folder: {run_dir} (model.keras, results.json, history.csv)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
