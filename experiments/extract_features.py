"""Extract (or read back from the cache) the features of a whole dataset and print one JSON line.

    python experiments/extract_features.py --dataset fsdd --features mel --data-dir DATA [--cache-dir CACHE]

Prints {"dataset", "features", "n_clips", "shape", "seconds", "cached"}; a progress bar goes to stderr.
"""
import argparse
import json
import sys
import time
import warnings

from audiodata import AudioDataError
from audiodata.datasets import DATASETS, get_dataset
from audiodata.features import extract_features


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--features", default="mel",
                        help="feature set from audiodata/configs/<dataset>.yaml (mel, logmag, ...)")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset folder (default $AUDIO_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default $AUDIO_CACHE_DIR or ~/.cache)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes (-1: all cores, 1: serial)")
    parser.add_argument("--strict", action="store_true", help="fail if metadata lists clips whose audio is missing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    warnings.showwarning = _show_warning
    start = time.perf_counter()
    try:
        dataset = get_dataset(args.dataset, data_dir=args.data_dir, strict=args.strict)
        feats = extract_features(dataset, args.features, cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                                 progress=not args.no_progress)
    except AudioDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"dataset": args.dataset, "features": args.features, "n_clips": len(feats),
                      "shape": list(feats.shape), "seconds": round(time.perf_counter() - start, 3),
                      "cached": feats.cached}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
