"""Train the L2I interpreter on one fold: post-hoc (f frozen), by design, or by design without L_f.

    python experiments/l2i/train_interpreter.py --dataset esc50 --fold 1 --mode posthoc --theta att \
        --data-dir DATA --output runs

Reads the classifier (post-hoc) and the dictionary from the same run folder unless --classifier /
--dictionary are given; writes <output>/l2i/<dataset>/fold<N>/seed<S>/<mode>_<theta>/
{interpreter.keras,results.json,history.csv} (and classifier.keras by design); re-running continues
from the last completed epoch.
"""
import argparse
import sys
import time
from pathlib import Path

from audiodata.errors import AudioDataError

from l2i.training import MODES, load_config, run_directory, train_interpreter, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["esc50", "esc10", "sonyc_ust", "openmic"])
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--mode", default="posthoc", choices=list(MODES))
    parser.add_argument("--theta", default="att", choices=["att", "max"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default="runs")
    parser.add_argument("--config", default=None, help="YAML config (default: configs/<dataset>.yaml)")
    parser.add_argument("--classifier", default=None, help="classifier.keras (default: <run>/classifier/)")
    parser.add_argument("--dictionary", default=None, help="dictionary .npy (default: <run>/dictionary/W.npy)")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--epochs", type=int, default=None, help="overrides the mode's epochs")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    config = load_config(args.dataset, args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    section = "posthoc" if args.mode == "posthoc" else "bydesign"
    if args.epochs is not None:
        config[section] = dict(config[section], epochs=args.epochs)
    base = run_directory(args.output, args.dataset, args.fold, config["seed"])
    classifier = args.classifier or (base / "classifier" / "classifier.keras" if args.mode == "posthoc" else None)
    dictionary = args.dictionary or base / "dictionary" / "W.npy"
    run_dir = base / f"{args.mode}_{args.theta}"
    missing = [(what, path) for what, path in (("classifier", classifier), ("dictionary", dictionary))
               if path is not None and not Path(path).is_file()]
    if missing:
        what, path = missing[0]
        hint = {"classifier": "train it with experiments/l2i/train_classifier.py or pass --classifier",
                "dictionary": "learn it with experiments/l2i/learn_dictionary.py or pass --dictionary"}[what]
        parser.exit(2, f"error: the {what} {path} does not exist; {hint} (same --dataset, --fold, --seed, "
                       "--output)\n")
    start = time.perf_counter()
    try:
        results = train_interpreter(config, args.dataset, args.fold, run_dir, mode=args.mode, theta=args.theta,
                                    classifier_path=classifier, dictionary_path=dictionary, data_dir=args.data_dir,
                                    cache_dir=args.cache_dir, verbose=args.verbose)
    except AudioDataError as err:
        parser.exit(2, f"error: {err}\n")
    results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"], "config": config,
                    "classifier_path": str(classifier) if classifier else None, "dictionary_path": str(dictionary),
                    "wall_seconds": time.perf_counter() - start, "command": " ".join([sys.executable] + sys.argv)})
    write_results(run_dir / "results.json", results)
    print({k: v for k, v in results.items() if k != "config"})


if __name__ == "__main__":
    main()
