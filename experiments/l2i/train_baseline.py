"""Train one baseline of L2I on one fold and score it on the test split (Sec. IV-C, Tables IV and VIII).

    python experiments/l2i/train_baseline.py --baseline flint --dataset esc50 --fold 1 --data-dir DATA --output runs

Baselines (hyperparameters: the `baselines:` section of configs/<dataset>.yaml; docs/l2i_baselines.md):

* post-hoc, fidelity to the trained classifier f (Table IV): `flint` (FLINT on f's hidden layers, f frozen),
  `vibi` (VIBI, f a black box). They read <run>/classifier/classifier.keras (train_classifier.py, same
  --dataset, --fold, --seed, --output) unless --classifier is given;
* by design, classification performance (Table VIII): `flint_bydesign` (FLINT trained jointly with a new f),
  `nmf` (unsupervised NMF + logistic regression), `tdl_nmf` (task-driven NMF).

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/baseline_<name>/: results.json (scores named as in evaluate.py:
`fidelity` {top1, top5 | macro_auprc, micro_auprc, max_f1 | weighted_f1} for flint, vibi, flint_bydesign;
`interpreter` {accuracy | macro_auprc, micro_auprc | weighted_f1}, the baseline's own classification score;
`classifier`, the same for f; plus n_params, seconds, command), the model (flint.keras, vibi.keras,
tdl_nmf.keras or nmf.npz) and history.csv (flint, vibi, flint_bydesign, tdl_nmf). Re-running flint, vibi or
flint_bydesign continues from the last completed epoch (backup/); nmf and tdl_nmf start over. --epochs sets
the training epochs (nmf: the dictionary's NMF iterations, as in learn_dictionary.py).
"""
import argparse
import sys
import time
from pathlib import Path

from audiodata.errors import AudioDataError

from l2i.baselines.training import BASELINES, train_baseline
from l2i.training import load_config, run_directory, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, choices=list(BASELINES))
    parser.add_argument("--dataset", required=True, choices=["esc50", "esc10", "sonyc_ust", "openmic"])
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default="runs")
    parser.add_argument("--config", default=None, help="YAML config (default: configs/<dataset>.yaml)")
    parser.add_argument("--classifier", default=None, help="classifier.keras (default: <run>/classifier/)")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--epochs", type=int, default=None,
                        help="overrides baselines.<name>.epochs (nmf: baselines.nmf.n_iter_dictionary)")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    config = load_config(args.dataset, args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    section = (config.get("baselines") or {}).get(args.baseline)
    if not isinstance(section, dict):
        parser.exit(2, f"error: the config {args.config or f'configs/{args.dataset}.yaml'} has no "
                       f"baselines.{args.baseline} section\n")
    if args.epochs is not None:
        key = "n_iter_dictionary" if args.baseline == "nmf" else "epochs"
        config["baselines"] = dict(config["baselines"], **{args.baseline: dict(section, **{key: args.epochs})})
    base = run_directory(args.output, args.dataset, args.fold, config["seed"])
    classifier = None
    if BASELINES[args.baseline] == "posthoc":
        classifier = args.classifier or base / "classifier" / "classifier.keras"
        if not Path(classifier).is_file():
            parser.exit(2, f"error: the classifier {classifier} does not exist; train it with "
                           "experiments/l2i/train_classifier.py or pass --classifier (same --dataset, --fold, "
                           "--seed, --output)\n")
    run_dir = base / f"baseline_{args.baseline}"
    start = time.perf_counter()
    try:
        results = train_baseline(config, args.baseline, args.dataset, args.fold, run_dir, classifier_path=classifier,
                                 data_dir=args.data_dir, cache_dir=args.cache_dir, verbose=args.verbose)
    except AudioDataError as err:
        parser.exit(2, f"error: {err}\n")
    command = [sys.executable] + (sys.argv if argv is None else [__file__] + list(argv))
    results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"],
                    "config": config,
                    "classifier_path": str(classifier) if classifier else None,
                    "wall_seconds": time.perf_counter() - start, "command": " ".join(map(str, command))})
    write_results(run_dir / "results.json", results)
    print({k: v for k, v in results.items() if k != "config"})


if __name__ == "__main__":
    main()
