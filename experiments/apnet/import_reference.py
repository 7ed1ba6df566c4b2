"""Import one of the APNet authors' trained models (Keras 2 weights, scaler, config) as our run folder.

    python experiments/apnet/import_reference.py \
        --source ../shared/reference/APNet/experiments/UrbanSound8k/SB_CNN/fold1 \
        --output results/reference/sb_cnn/urbansound8k/fold1

DIR is one of the authors' fold or test folders (model.json, best_weights.hdf5, scaler.pickle, with
config.json in a parent folder). RUN_DIR gets model.keras, config.yaml, scaler.json, results.json (the
provenance: files read and their SHA-256) and reference_predictions.npz (their stored test predictions),
so score.py, inspect_prototypes.py, refine.py and the web app work on it. Prints one JSON line.
"""
import argparse
import json
import sys

from audiodata.errors import AudioDataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the authors' fold/test folder (model.json, best_weights.hdf5)")
    parser.add_argument("--output", required=True, help="run folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --output")
    args = parser.parse_args(argv)
    from apnet.reference import import_reference  # lazy: it imports Keras/TensorFlow (seconds), not needed by --help

    try:
        run_dir = import_reference(args.source, args.output, overwrite=args.overwrite)
    except AudioDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = json.loads((run_dir / "results.json").read_text())
    print(json.dumps({"run_dir": str(run_dir), **{k: results[k] for k in ("model", "dataset", "fold", "n_params",
                                                                          "input_shape")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
