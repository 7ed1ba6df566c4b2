"""Train the L2I interpreter on one fold: post-hoc (f frozen), by design, or by design without L_f.

    python experiments/l2i/train_interpreter.py --dataset esc50 --fold 1 --mode posthoc --theta att \
        --data-dir DATA --output runs

Reads the classifier (post-hoc) and the dictionary matching the configuration's parameters (K, ...) from
the same run folder unless --classifier / --dictionary are given; writes
<output>/l2i/<dataset>/fold<N>/seed<S>/<run>/{interpreter.keras,results.json,identity.json,history.csv}
(and classifier.keras by design); re-running continues from the last completed epoch.

<run> is <mode>_<theta> for the main configuration (the config file's, i.e. the paper's) and
<mode>_<theta>-<tag>-<hash> for any other (l2i/runs.py), e.g. an ablation:

    --hidden-layers block3            Table VI, row B3 (names: block1..block6, or `input` for f's input)
    --alpha 1 --beta 0.8              Table VII
    --n-components 50                 Fig. 6 (learn that dictionary first: learn_dictionary.py --n-components 50)

--validation-fraction F keeps the weights of the epoch with the best fidelity on a validation split of F of the
training clips (stratified by class for ESC, drawn from the seed; trained on the rest) instead of the last
epoch's; such a run gets its own folder (<mode>_<theta>-valF-<hash>).
"""
import argparse
import json
import time
from pathlib import Path

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError

from audioruns.cli import (RUN_NOTES, add_distribute_option, add_run_options, add_verbose_option, finish_run,
                           show_config)
from l2i.runs import (DATASETS, classifier_identity, classifier_layers, config_path, dictionary_folder,
                      dictionary_identity, identity_from_results, interpreter_folder, interpreter_identity,
                      read_identity, write_identity)
from l2i.training import MODES, load_config, run_directory, train_interpreter


def _classifier_identity(path, config, dataset, mode):
    """Identity of the f the run explains: the classifier folder's (train_classifier.py), else its config."""
    if mode != "posthoc":  # by design: a new f of the config's classifier section
        return classifier_identity(config["classifier"])
    folder = Path(path).parent
    stored = read_identity(folder)
    if stored is None and (folder / "results.json").is_file():  # trained before identities existed
        stored = identity_from_results(json.loads((folder / "results.json").read_text()), dataset, "classifier")
    return stored or {"kind": "classifier", "file": str(Path(path).resolve())}


def _dictionary_identity(path, section, dataset):
    """Identity of the dictionary at ``path`` (its identity.json or W.json), or of ``section``."""
    folder = Path(path).parent
    stored = read_identity(folder)
    meta = Path(path).with_suffix(".json")
    if stored is None and meta.is_file():
        params = json.loads(meta.read_text())
        params = params.get("params", params)  # l2i.nmf.save_dictionary nests them
        stored = params.get("identity") or (identity_from_results({"params": params}, dataset, "dictionary")
                                            if Path(path).name == "W.npy" else None)
    return stored or {"kind": "dictionary", "file": str(Path(path).resolve())}



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=RUN_NOTES.format(paper="l2i"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, DATASETS, "l2i")
    parser.add_argument("--mode", default="posthoc", choices=list(MODES))
    parser.add_argument("--theta", default="att", choices=["att", "max"])
    parser.add_argument("--classifier", default=None, help="classifier.keras (default: <run>/classifier/)")
    parser.add_argument("--dictionary", default=None, help="dictionary .npy (default: <run>/dictionary/W.npy)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None, help="overrides the mode's epochs")
    parser.add_argument("--hidden-layers", nargs="+", default=None,
                        help="overrides interpreter.hidden_layers: block1..block6, or input (f's input, Table VI)")
    parser.add_argument("--alpha", type=argtypes.non_negative_float, default=None,
                        help="overrides the mode's alpha (weight of L_NMF)")
    parser.add_argument("--beta", type=argtypes.non_negative_float, default=None,
                        help="overrides the mode's beta (weight of ||H||_1)")
    parser.add_argument("--gamma", type=argtypes.non_negative_float, default=None,
                        help="overrides bydesign.gamma (weight of L_FID)")
    parser.add_argument("--n-components", type=argtypes.positive_int, default=None,
                        help="K of the dictionary to use (ESC; components per class for SONYC-UST, OpenMIC), "
                             "as given to learn_dictionary.py")
    parser.add_argument("--validation-fraction", type=argtypes.fraction(include_0=True), default=None,
                        help="carve this fraction of the training clips (0 <= F < 1, 0: off; stratified by class "
                             "for ESC, seeded) as a validation split and keep the epoch with the best validation "
                             "fidelity (default: off, the last epoch is kept)")
    add_verbose_option(parser)
    add_distribute_option(parser)
    add_download_options(parser)
    args = parser.parse_args(argv)

    config = load_config(args.dataset, args.config)
    if args.validation_fraction is not None:
        config["validation_fraction"] = args.validation_fraction or None
    if args.seed is not None:
        config["seed"] = args.seed
    show_config(args, args.config or config_path(args.dataset), config)
    section = "posthoc" if args.mode == "posthoc" else "bydesign"
    for key in ("epochs", "alpha", "beta", "gamma"):
        if getattr(args, key) is not None:
            config[section] = dict(config[section], **{key: getattr(args, key)})
    if args.hidden_layers is not None:
        config["interpreter"] = dict(config.get("interpreter", {}), hidden_layers=list(args.hidden_layers))
    if args.n_components is not None:
        config["dictionary"] = dict(config["dictionary"], **{
            "n_components" if args.dataset in ("esc50", "esc10") else "n_per_class": args.n_components})
    base = run_directory(args.output, args.dataset, args.fold, config["seed"])
    classifier = args.classifier or (base / "classifier" / "classifier.keras" if args.mode == "posthoc" else None)
    dictionary = args.dictionary or base / dictionary_folder(args.dataset, config["dictionary"]) / "W.npy"
    missing = [(what, path) for what, path in (("classifier", classifier), ("dictionary", dictionary))
               if path is not None and not Path(path).is_file()]
    if missing:
        what, path = missing[0]
        hint = {"classifier": "train it with experiments/l2i/train_classifier.py or pass --classifier",
                "dictionary": "learn it with experiments/l2i/learn_dictionary.py or pass --dictionary"}[what]
        parser.exit(2, f"error: the {what} {path} does not exist; {hint} (same --dataset, --fold, --seed, "
                       "--output" + (", --n-components" if what == "dictionary" else "") + ")\n")
    dictionary_id = _dictionary_identity(dictionary, config["dictionary"], args.dataset)
    if args.dictionary is None and dictionary_id != dictionary_identity(args.dataset, config["dictionary"]):
        parser.exit(2, f"error: {dictionary} was learned with other parameters ({dictionary_id}); learn the "
                       "dictionary of this configuration with experiments/l2i/learn_dictionary.py\n")
    identity = interpreter_identity(config, args.mode, args.theta, dictionary_id,
                                    _classifier_identity(classifier, config, args.dataset, args.mode))
    run_dir = base / interpreter_folder(args.mode, args.theta, identity, args.dataset)
    try:
        write_identity(run_dir, identity)
    except AudioDataError as err:
        parser.exit(2, f"error: {err}\n")
    # named hidden-layer choices (input) -> layers of f
    config["interpreter"] = dict(config.get("interpreter", {}))
    if "hidden_layers" in config["interpreter"]:
        config["interpreter"]["hidden_layers"] = classifier_layers(config["interpreter"]["hidden_layers"])
    argtypes.say(f"run folder: {run_dir}")
    start = time.perf_counter()
    try:
        if args.download:
            ensure_dataset(args.dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)
        results = train_interpreter(config, args.dataset, args.fold, run_dir, mode=args.mode, theta=args.theta,
                                    classifier_path=classifier, dictionary_path=dictionary, data_dir=args.data_dir,
                                    cache_dir=args.cache_dir, verbose=args.verbose, progress=True,
                                    distribute=args.distribute)
    except AudioDataError as err:
        parser.exit(2, f"error: {cli_error(err)}\n")
    results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"], "config": config,
                    "identity": identity, "run": run_dir.name,
                    "classifier_path": str(classifier) if classifier else None, "dictionary_path": str(dictionary)})
    finish_run(run_dir, results, start, "interpreter.keras, results.json, history.csv")


if __name__ == "__main__":
    main()
