"""Train one baseline of L2I on one fold and score it on the test split (Sec. IV-C, Tables IV and VIII).

    python experiments/l2i/train_baseline.py --baseline flint --dataset esc50 --fold 1 --data-dir DATA --output runs

Baselines (hyperparameters: the `baselines:` section of l2i/configs/<dataset>.yaml; docs/l2i_baselines.md):

* post-hoc, fidelity to the trained classifier f (Table IV): `flint` (FLINT on f's hidden layers, f frozen),
  `vibi` (VIBI, f a black box). They read <run>/classifier/classifier.keras (train_classifier.py, same
  --dataset, --fold, --seed, --output) unless --classifier is given;
* by design, classification performance (Table VIII): `flint_bydesign` (FLINT trained jointly with a new f),
  `nmf` (unsupervised NMF + logistic regression), `tdl_nmf` (task-driven NMF).

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/baseline_<name>/: results.json (scores named as in evaluate.py:
`fidelity` {top1, top5 | macro_auprc, micro_auprc, max_f1 | weighted_f1} for flint, vibi, flint_bydesign;
`interpreter` {accuracy | macro_auprc, micro_auprc | weighted_f1}, the baseline's own classification score;
`classifier`, the same for f; plus n_params, seconds, command), the model (flint.keras, vibi.keras,
tdl_nmf.keras or nmf.npz) and history.csv (flint, vibi, flint_bydesign, tdl_nmf). Re-running the same command
continues from the last completed epoch (backup/; nmf: from the dictionary NMF's last checkpoint,
nmf_dictionary_checkpoint.npz). --epochs sets the training epochs (nmf: the dictionary's NMF iterations, as in
learn_dictionary.py).

Sweep (nmf, tdl_nmf; the paper tries K = 64 ... 512 on two features and reports the best):

    python experiments/l2i/train_baseline.py --baseline nmf --dataset esc50 --fold 1 --k 64 128 256 512 \
        --features logmag sqrt_mel --data-dir DATA --output runs

trains every combination in its own folder baseline_<name>_k<K>_<feature>/ (results.json with a `sweep` field
{baseline, n_components, feature, metric, score}), then writes <output>/l2i/<dataset>/baseline_<name>_sweep.json:
the selection over every fold and seed run so far (l2i.baselines.training.select_sweep: highest mean of the
interpreter's accuracy | macro_auprc | weighted_f1 over the folds and seeds every combination has; ties to the
smaller K, then logmag). Without --k and --features the run goes to baseline_<name>/ with the config's values.
"""
import argparse
import sys
import time
from pathlib import Path

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError

from l2i.baselines.training import (BASELINES, NMF_FEATURES, SWEEP_METRICS, select_sweep, sweep_system,
                                   train_baseline)
from audioruns.cli import RUN_NOTES, add_distribute_option, add_run_options, add_verbose_option, load_run_config
from l2i.runs import DATASETS, config_path
from l2i.training import load_config, run_directory, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=RUN_NOTES.format(paper="l2i"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, choices=list(BASELINES))
    add_run_options(parser, DATASETS, "l2i")
    parser.add_argument("--classifier", default=None, help="classifier.keras (default: <run>/classifier/)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None,
                        help="overrides baselines.<name>.epochs (nmf: baselines.nmf.n_iter_dictionary)")
    parser.add_argument("--k", type=argtypes.positive_int, nargs="+", default=None, metavar="K",
                        help="nmf, tdl_nmf: dictionary sizes to sweep (the paper: 64 128 256 512)")
    parser.add_argument("--features", nargs="+", default=None, choices=NMF_FEATURES,
                        help="nmf, tdl_nmf: input features to sweep (the paper: both)")
    add_verbose_option(parser)
    add_distribute_option(parser)
    add_download_options(parser)
    args = parser.parse_args(argv)
    sweep = args.k is not None or args.features is not None
    if sweep and args.baseline not in ("nmf", "tdl_nmf"):
        parser.exit(2, "error: --k and --features sweep the nmf and tdl_nmf baselines only\n")

    config = load_run_config(args, load_config, config_path)
    path = args.config or config_path(args.dataset)
    section = (config.get("baselines") or {}).get(args.baseline)
    if not isinstance(section, dict):
        parser.exit(2, f"error: the config {path} has no baselines.{args.baseline} section\n")
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
    if not sweep:
        combinations = [(None, None, base / f"baseline_{args.baseline}")]
    else:
        ks = list(dict.fromkeys(args.k or [int(section.get("n_components", 64))]))
        features = list(dict.fromkeys(args.features or [section.get("feature", "logmag")]))
        combinations = [(k, f, base / sweep_system(args.baseline, k, f)) for k in ks for f in features]
    command = [sys.executable] + (sys.argv if argv is None else [__file__] + list(argv))
    if args.download:
        try:
            ensure_dataset(args.dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)
        except AudioDataError as err:
            parser.exit(2, f"error: {cli_error(err)}\n")
    for k, feature, run_dir in combinations:
        run_config = config
        if sweep:
            run_section = dict(config["baselines"][args.baseline], n_components=k, feature=feature)
            run_config = dict(config, baselines=dict(config["baselines"], **{args.baseline: run_section}))
        argtypes.say(f"run folder: {run_dir}")
        start = time.perf_counter()
        try:
            results = train_baseline(run_config, args.baseline, args.dataset, args.fold, run_dir,
                                     classifier_path=classifier, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                     verbose=args.verbose, progress=True, distribute=args.distribute)
        except AudioDataError as err:
            parser.exit(2, f"error: {cli_error(err)}\n")
        results.update({"dataset": args.dataset, "fold": args.fold, "seed": config["seed"],
                        "config": run_config,
                        "classifier_path": str(classifier) if classifier else None,
                        "wall_seconds": time.perf_counter() - start, "command": " ".join(map(str, command))})
        if sweep:
            metric = SWEEP_METRICS[args.dataset]
            results["sweep"] = {"baseline": args.baseline, "n_components": int(k), "feature": feature,
                                "metric": f"interpreter.{metric}", "score": results["interpreter"].get(metric)}
        write_results(run_dir / "results.json", results)
        argtypes.say(f"run folder: {run_dir} (results.json, the model, history.csv)")
        print({key: v for key, v in results.items() if key != "config"})
    if sweep:
        selection = select_sweep(args.output, args.baseline, args.dataset)
        path = Path(args.output) / "l2i" / args.dataset / f"baseline_{args.baseline}_sweep.json"
        write_results(path, selection)
        best = selection["selected"]
        print(f"sweep of {args.baseline} on {args.dataset} ({len(selection['runs'])} fold/seed runs): best "
              + (f"K = {best['n_components']}, {best['feature']}, {selection['metric']} = {best['mean']:.4f}"
                 if best else "none complete") + f"; written to {path}")


if __name__ == "__main__":
    main()
