"""Decode the prototypes of a trained APNet into mel-spectrograms and audio (Section 5.1.2).

    python experiments/apnet/inspect_prototypes.py --model RUN/model.keras --data-dir /data [--output DIR]

RUN is a folder written by train.py or refine.py. Each prototype is decoded with the pooling
masks of its nearest training instance, classified by the model, unscaled and turned into audio
(mel inversion + Griffin-Lim). Writes into --output (default RUN/prototypes/):
prototype_<j>_<class>.wav and .png, summary.json and summary.csv (prototype, nearest training
clip, class of the decoded spectrogram, argmax class of W) and weights.npz with what Figures 6,
7 and 9 show: W_T (K, M), H (M, F'), H_upsampled (M, F), distances (Eq. 11, M x M) and order
(prototypes sorted by class).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audiodata import cli as argtypes
from audiodata.download import cli_error
from audiodata.errors import AudioDataError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model.keras of a train.py or refine.py run folder")
    argtypes.add_data_options(parser)
    parser.add_argument("--output", default=None, help="output folder (default: RUN/prototypes)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=256,
                        help="batch size of the forward passes")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Lazy: apnet imports Keras/TensorFlow, audiodata.datasets/.features pandas (seconds); --help needs neither.
    from audiodata.datasets import get_dataset
    from audiodata.features import load_feature_params

    from apnet import inspection
    from apnet.training import load_fold

    try:
        run = inspection.load_run(args.model)
        features = run.config["features"]
        data = load_fold(run.dataset, run.fold, features, data_dir=args.data_dir, cache_dir=args.cache_dir,
                         progress=True)
        params = load_feature_params(get_dataset(run.dataset, data_dir=args.data_dir).config_name, features)
    except AudioDataError as err:
        print(f"error: {cli_error(err)}", file=sys.stderr)
        return 2
    model, rows = run.model, data.rows["train"]
    output = Path(args.output) if args.output else run.run_dir / "prototypes"
    decoded = inspection.decode_prototypes(model, data.features[rows], batch_size=args.batch_size, scaler=run.scaler)
    summary = inspection.write_prototypes(output, decoded, params, scaler=run.scaler, class_names=data.classes,
                                          clip_ids=data.features.clips["clip_id"].to_numpy()[rows])
    np.savez(output / "weights.npz", W_T=inspection.fully_connected_weights(model),
             H=inspection.weighted_sum_weights(model),
             H_upsampled=inspection.weighted_sum_weights(model, upsample=True),
             distances=inspection.prototype_distance_matrix(model), order=inspection.class_order(decoded["classes"]),
             classes=decoded["classes"], mel=decoded["mel"])
    print(json.dumps({"output": str(output), "n_prototypes": len(summary),
                      "classes": summary["class_name"].tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
