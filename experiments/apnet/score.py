"""Score a run folder (trained with train.py or imported with import_reference.py) on one split of a dataset.

    python experiments/apnet/score.py --run RUN_DIR --dataset speech_commands --fold 1 --data-dir DATA

Prints one JSON line: accuracy, n_clips, n_correct, model, dataset, fold, split, features. The features of the
split's clips come from the feature cache (--cache-dir; computed on first use, verified on every use); labels are matched to the model's classes by name (a Speech Commands
v0.02 model scores a v0.01 folder). --predictions FILE also writes each clip's probabilities (CSV).
"""
import argparse
import json
import sys

from audiodata import cli as argtypes
from audiodata.errors import AudioDataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder (model.keras, config.yaml, scaler.json)")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the run's)")
    parser.add_argument("--fold", type=argtypes.positive_int, default=None,
                        help="fold (default: the run's; 1 for one partition)")
    argtypes.add_data_options(parser)
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=64)
    parser.add_argument("--jobs", type=argtypes.n_jobs, default=1,
                        help="processes computing features (-1: all cores)")
    parser.add_argument("--predictions", default=None, help="write clip_id, label and probabilities to this CSV")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from apnet.scoring import score_run  # lazy: it imports Keras/TensorFlow (seconds), which --help does not need

    try:
        result = score_run(args.run, args.dataset, args.fold, data_dir=args.data_dir, split=args.split,
                           batch_size=args.batch_size, n_jobs=args.jobs, progress=not args.quiet,
                           return_predictions=args.predictions is not None, cache_dir=args.cache_dir)
    except AudioDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.predictions:
        import pandas as pd  # lazy: only for --predictions (about a second to import)

        table = pd.DataFrame(result.pop("probabilities"), columns=result.pop("classes"))
        table.insert(0, "label", result.pop("labels"))
        table.insert(0, "clip_id", result.pop("clip_id"))
        table.to_csv(args.predictions, index=False)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
