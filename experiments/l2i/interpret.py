"""Interpret the decision of a trained L2I system on any audio file (Sec. III-E, Algorithm 1).

    python experiments/l2i/interpret.py --model runs/l2i/esc50/fold1/seed0/posthoc_att \
        --audio my_recording.wav [--class dog] [--tau 0.1] [--start 0] --output out/

The file may have any sample rate and any number of channels: it is resampled to the
dataset rate (44.1 kHz), mixed down to mono, and one window of the dataset clip length
(5 s for ESC-50, 10 s for SONYC-UST / OpenMIC-2018) starting at --start seconds is
analysed, zero-padded when the file is shorter (choose --start for later parts of a long
file). Prints the prediction and the relevant components; writes to --output:
interpretation.wav (x_int), component_<k>.wav (x_k), input.wav (the analysed window),
interpretation.png and interpretation.json.

Without --class the class predicted by the classifier f is interpreted.
"""
import argparse

from audiodata import cli as argtypes
from audiodata.errors import AudioDataError

#: Relevance thresholds tau lie in [0, 1) (Sec. III-E; l2i.pipeline.check_tau).
TAU = argtypes.fraction(include_0=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder holding interpreter.keras (<mode>_<theta>/)")
    parser.add_argument("--audio", required=True, help="audio file (WAV, FLAC, OGG; any rate, any channels)")
    parser.add_argument("--class", dest="class_name", default=None,
                        help="class to interpret (name or index; default: f's prediction)")
    parser.add_argument("--tau", type=TAU, default=0.1, help="relevance threshold tau in [0, 1) (Sec. III-E)")
    parser.add_argument("--start", type=argtypes.non_negative_float, default=0.0,
                        help="start of the analysed window, in seconds")
    parser.add_argument("--dataset", default=None, help="dataset of the run (default: from its results.json)")
    parser.add_argument("--output", required=True, help="folder for the audio files and the figure")
    args = parser.parse_args(argv)

    from l2i.pipeline import check_tau, interpret_file, load_run  # lazy: Keras/TensorFlow (seconds), not for --help

    try:
        tau = check_tau(args.tau)
        run = load_run(args.model, dataset=args.dataset)
        explanation, info = interpret_file(run, args.audio, args.class_name, tau=tau, start=args.start,
                                           output=args.output)
    except AudioDataError as err:
        parser.exit(2, f"error: {err}\n")
    summary = explanation.summary()
    print(f"file: {args.audio} ({info['original_sr']} Hz, {info['channels']} channel(s), "
          f"{'length unknown' if info['seconds'] is None else format(info['seconds'], '.2f') + ' s'}; "
          f"analysed {run.duration:g} s from {info['start']:g} s at {run.sr} Hz mono)")
    print("prediction of f: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["top5_classifier"].items()))
    print(f"interpreted class: {summary['class']} (p = {summary['class_probability']:.3f})")
    print(f"relevant components (r > {tau:g}): "
          + (", ".join(f"{k} (r = {v:.2f})" for k, v in summary["relevance"].items()) or "none"))
    print(f"written to {args.output}: " + ", ".join(sorted(p.name for p in _files(info["paths"]))))


def _files(paths):
    for value in paths.values():
        if isinstance(value, dict):
            yield from value.values()
        else:
            yield value


if __name__ == "__main__":
    main()
