"""Pre-learn the NMF dictionary W of L2I for one fold (sparse NMF, Eq. 6; constructions of Sec. IV-A3).

    python experiments/l2i/learn_dictionary.py --dataset esc50 --fold 1 --data-dir DATA --output runs

Writes <output>/l2i/<dataset>/fold<N>/seed<S>/<folder>/{W.npy,W.json,results.json,identity.json}, the
folder keyed on the dictionary's parameters (l2i/runs.py): `dictionary` for the config file's (K = 100 for
ESC-50), `dictionary-<tag>-<hash>` for any other (e.g. `dictionary-K50-<hash>` with --n-components 50), so
dictionaries of different K live side by side. An existing dictionary of the same parameters is kept (delete
it to learn again); the number of iterations (--epochs) is a budget, not a parameter.
"""
import argparse
import json
import sys
import time

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError
from l2i.dictionary import learn_dataset_dictionary
from l2i.nmf import save_dictionary
from audioruns.cli import RUN_NOTES, add_run_options, load_run_config
from l2i.runs import (DATASETS, config_path, dictionary_folder, dictionary_identity, identity_from_results,
                      read_identity, write_identity)
from l2i.training import load_config, load_fold, run_directory, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=RUN_NOTES.format(paper="l2i"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, DATASETS, "l2i")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None,
                        help="NMF iterations (overrides dictionary.n_iter)")
    parser.add_argument("--n-components", type=argtypes.positive_int, default=None,
                        help="K (ESC) or components per class (SONYC-UST, OpenMIC)")
    add_download_options(parser)
    args = parser.parse_args(argv)

    config = load_run_config(args, load_config, config_path)
    section = dict(config["dictionary"])
    if args.epochs is not None:
        section["n_iter"] = args.epochs
    if args.n_components is not None:
        section["n_components" if args.dataset in ("esc50", "esc10") else "n_per_class"] = args.n_components
    identity = dictionary_identity(args.dataset, section)
    out_dir = run_directory(args.output, args.dataset, args.fold, config["seed"]) / dictionary_folder(
        args.dataset, section)
    if (out_dir / "W.npy").exists():
        stored = read_identity(out_dir)
        if stored is None and (out_dir / "W.json").is_file():  # written before identities existed
            meta = json.loads((out_dir / "W.json").read_text())
            stored = identity_from_results({"params": meta.get("params", meta)}, args.dataset, "dictionary")
        if stored != identity:
            parser.exit(2, f"error: {out_dir / 'W.npy'} was learned with other parameters ({stored}); move it "
                           "away to learn the dictionary of this configuration\n")
        print(f"{out_dir / 'W.npy'} exists (same parameters: {identity}); nothing to do")
        return
    write_identity(out_dir, identity)
    argtypes.say(f"run folder: {out_dir}")
    start = time.perf_counter()
    try:
        if args.download:
            ensure_dataset(args.dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)
        data = load_fold(args.dataset, args.fold, data_dir=args.data_dir, cache_dir=args.cache_dir, progress=True)
        W, info = learn_dataset_dictionary(args.dataset, data.logmag, data.rows["train"], data.targets["train"],
                                           section, seed=int(config["seed"]))
    except AudioDataError as err:
        parser.exit(2, f"error: {cli_error(err)}\n")
    params = dict(section, dataset=args.dataset, fold=args.fold, seed=config["seed"], identity=identity)
    save_dictionary(out_dir / "W", W, params)
    objectives = {str(k): h["objective"][-1] for k, h in info["histories"].items()}
    results = {"shape": list(W.shape), "final_objective": objectives, "params": params, "identity": identity,
               "seconds": time.perf_counter() - start, "command": " ".join([sys.executable] + sys.argv)}
    write_results(out_dir / "results.json", results)
    argtypes.say(f"run folder: {out_dir} (W.npy, W.json, results.json)")
    print(results)


if __name__ == "__main__":
    main()
