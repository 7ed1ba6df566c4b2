"""Every published model of the APNet authors through our pipeline: accuracy and gap to their stored predictions.

    python experiments/apnet/reference_parity.py --reference ../shared/reference --data-dir ../shared/data \
        --output results/reference

Imports each authors' folder that has weights (import_reference.py) into OUTPUT/<Dataset>_<Model>_<fold>,
scores it on the clips of its test split that DATA holds (score.py) and, where the authors stored test
predictions, finds each clip's row (apnet.reference.match_stored_predictions). Prints a Markdown table
(the one in docs/reference_parity.md) and writes it with per-clip details to OUTPUT/parity.json.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from audiodata.cli import add_data_options
from audiodata.errors import AudioDataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="folder holding APNet/experiments (the authors' files)")
    add_data_options(parser, data_dir_required=True)
    parser.add_argument("--output", required=True, help="folder for the imported run folders and parity.json")
    args = parser.parse_args(argv)
    # Lazy: these import Keras/TensorFlow (seconds), which --help does not need.
    from apnet.reference import import_reference, match_stored_predictions
    from apnet.scoring import score_run

    root = Path(args.reference) / "APNet" / "experiments"
    sources = sorted(p.parent for p in root.rglob("best_weights.hdf5"))
    if not sources:
        print(f"error: no best_weights.hdf5 under {root}", file=sys.stderr)
        return 2
    rows, details = [], []
    for source in tqdm(sources, desc="models", unit="model"):
        name = str(source.relative_to(root))
        try:
            run_dir = import_reference(source, Path(args.output) / name.replace("/", "_"), overwrite=True)
            scored = score_run(run_dir, data_dir=args.data_dir, progress=False, return_predictions=True,
                               cache_dir=args.cache_dir)
        except AudioDataError as err:
            rows.append(f"| {name} | - | - | - | - | {err} |")
            continue
        ref_path = run_dir / "reference_predictions.npz"
        matches = []
        if ref_path.is_file():
            matches = match_stored_predictions(np.load(ref_path), scored["probabilities"], scored["labels"])
        gaps = [m["gap"] for m in matches]
        same = sum(m["their_class"] == m["our_class"] for m in matches)
        rows.append(f"| {name} | {scored['n_clips']} | {100 * scored['accuracy']:.1f} | "
                    + (f"{max(gaps):.1e} | {sum(g < 1e-3 for g in gaps)}/{len(gaps)} | {same}/{len(gaps)} |"
                       if matches else "- | - | - |"))
        details.append({"model": name, "run_dir": str(run_dir), "accuracy": scored["accuracy"],
                        "n_clips": scored["n_clips"],
                        "clips": [{"clip_id": c, **m} for c, m in zip(scored["clip_id"], matches)]})
    table = ["| authors' folder | clips | accuracy (%) | largest gap | clips within 1e-3 | same class |",
             "|---|---:|---:|---:|---:|---:|", *rows]
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "parity.json").write_text(json.dumps(details, indent=2) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
