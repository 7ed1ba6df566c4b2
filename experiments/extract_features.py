"""Extract (or read back from the cache) the features of a whole dataset and print one JSON line.

    python experiments/extract_features.py --dataset fsdd --features mel --data-dir DATA [--cache-dir CACHE]
    python experiments/extract_features.py --clean-cache [--dataset fsdd] [--older-than-days 30] [--cache-dir CACHE]

Prints {"dataset", "features", "n_clips", "shape", "seconds", "cached"}; a progress bar goes to stderr, and so
does a warning naming any damaged cache entry (it is repaired: its bad rows are recomputed).

--identity content (or --hash-contents) recognises unchanged audio files by a hash of their bytes instead of
their size and mtime (slower: reads every file; catches a same-size file whose mtime was restored).
--no-verify skips the per-row checksums of a cached entry (the size checks remain).
--clean-cache extracts nothing: it removes cache generations not used for --older-than-days days, partial
folders of dead extractions and unreadable leftovers, skipping anything in use, and prints
{"removed", "kept", "freed_bytes", "paths_removed"}.
"""
import argparse
import json
import sys
import time
import warnings

from audiodata import AudioDataError
from audiodata import cli as argtypes
from audiodata.datasets import DATASETS, get_dataset
from audiodata.features import clean_cache, extract_features


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                        help="dataset (required unless --clean-cache, where it limits the clean-up)")
    parser.add_argument("--features", default="mel",
                        help="feature set from audiodata/configs/<dataset>.yaml (mel, logmag, ...)")
    argtypes.add_data_options(parser)
    parser.add_argument("--n-jobs", type=argtypes.n_jobs, default=-1, help="worker processes (-1: all cores, 1: serial)")
    parser.add_argument("--strict", action="store_true", help="fail if metadata lists clips whose audio is missing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--identity", choices=("stat", "content"), default=None,
                        help="how unchanged audio files are recognised: size+mtime (stat) or a hash of the bytes "
                             "(content); default $AUDIO_CACHE_IDENTITY or stat")
    parser.add_argument("--hash-contents", action="store_true", help="same as --identity content")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not check the per-row checksums of a cached entry (also $AUDIO_CACHE_VERIFY=0)")
    parser.add_argument("--clean-cache", action="store_true",
                        help="remove unused generations, dead partial folders and leftovers instead of extracting")
    parser.add_argument("--older-than-days", type=argtypes.non_negative_float, default=30.0,
                        help="with --clean-cache: remove generations not used for this many days (default 30)")
    args = parser.parse_args(argv)
    if args.dataset is None and not args.clean_cache:
        parser.error("the following arguments are required: --dataset")
    if args.hash_contents:
        if args.identity == "stat":
            parser.error("--hash-contents contradicts --identity stat")
        args.identity = "content"
    return args


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _cache_names(dataset):
    """Cache folder names of a dataset name (Speech Commands' version is only known from its folder)."""
    if dataset is None:
        return None
    if dataset == "speech_commands":
        return ["speech_commands_v1", "speech_commands_v2"]
    return [dataset]


def main(argv=None):
    args = parse_args(argv)
    warnings.showwarning = _show_warning
    start = time.perf_counter()
    if args.clean_cache:
        report = clean_cache(args.cache_dir, dataset=_cache_names(args.dataset), older_than_days=args.older_than_days)
        for kept in report["kept"]:
            print(f"kept {kept['path']}: {kept['reason']}", file=sys.stderr)
        print(json.dumps({"removed": len(report["removed"]), "kept": len(report["kept"]),
                          "freed_bytes": sum(r["bytes"] for r in report["removed"]),
                          "paths_removed": [r["path"] for r in report["removed"]]}))
        return 0
    try:
        dataset = get_dataset(args.dataset, data_dir=args.data_dir, strict=args.strict)
        feats = extract_features(dataset, args.features, cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                                 progress=not args.no_progress, identity=args.identity,
                                 verify=False if args.no_verify else None)
    except AudioDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"dataset": args.dataset, "features": args.features, "n_clips": len(feats),
                      "shape": list(feats.shape), "seconds": round(time.perf_counter() - start, 3),
                      "cached": feats.cached}))
    feats.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
