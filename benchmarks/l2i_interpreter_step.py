"""Benchmark: seconds per training step of the post-hoc L2I interpreter (Eq. 4-5) on CPU.

ESC-50 shapes (Sec. IV-A, Table II): log-mel input 431 x 128 to the frozen classifier f
(Kumar et al.'s CNN at full width), log-magnitude target 431 x 513, K = 100 components,
50 classes, Theta_ATT, Psi width 256 (``l2i/configs/esc50.yaml``). Inputs are
random (the time of a step does not depend on the values). One step = ``train_on_batch``
of :class:`l2i.trainer.L2ITrainer` in ``"posthoc"`` mode (compiled graph, not eager); the
first ``--warmup`` steps (tracing, allocation) are dropped and the median of the next
``--steps`` is reported. Prints one JSON line.

    python benchmarks/l2i_interpreter_step.py --batch-size 32 --steps 10 --warmup 3
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from audiodata import cli as argtypes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=32)
    parser.add_argument("--steps", type=argtypes.positive_int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=argtypes.non_negative_int, default=3, help="untimed steps first")
    parser.add_argument("--n-components", type=argtypes.positive_int, default=100, help="K")
    parser.add_argument("--theta", default="att", choices=["att", "max"])
    parser.add_argument("--threads", type=argtypes.non_negative_int, default=None,
                        help="TensorFlow intra/inter-op threads (0 or unset: its default)")
    args = parser.parse_args(argv)

    import keras

    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from l2i.classifier import KumarCNN
    from l2i.trainer import L2ITrainer

    rng = np.random.default_rng(0)
    n_frames, n_mels, n_bins, n_classes, batch = 431, 128, 513, 50, args.batch_size
    keras.utils.set_random_seed(0)
    f = KumarCNN(n_classes=n_classes, n_frames=n_frames, n_mels=n_mels)
    W = rng.random((n_bins, args.n_components)).astype("float32")
    W /= np.linalg.norm(W, axis=0)
    trainer = L2ITrainer(f, W, mode="posthoc", alpha=10.0, beta=0.8, theta=args.theta,
                         interpreter_kwargs={"psi_channels": 256, "attention_units": 256})
    trainer.compile(optimizer=keras.optimizers.Adam(2e-4))
    x = rng.standard_normal((batch, n_frames, n_mels)).astype("float32")
    y = {"labels": np.eye(n_classes, dtype="float32")[rng.integers(0, n_classes, batch)],
         "spectrogram": rng.random((batch, n_bins, n_frames)).astype("float32"),
         "teacher": np.full((batch, n_classes), 1.0 / n_classes, dtype="float32")}
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.train_on_batch(x, y)
        elapsed = time.perf_counter() - start
        if step >= args.warmup:
            times.append(elapsed)
    result = {
        "benchmark": "l2i_interpreter_step", "mode": "posthoc", "theta": args.theta, "batch_size": batch,
        "n_components": args.n_components, "mel_shape": [n_frames, n_mels], "logmag_shape": [n_frames, n_bins],
        "n_classes": n_classes, "steps": args.steps, "warmup": args.warmup,
        "median_seconds_per_step": float(np.median(times)), "min_seconds": float(np.min(times)),
        "max_seconds": float(np.max(times)), "clips_per_second": batch / float(np.median(times)),
        "trainable_params": int(sum(np.prod(w.shape) for w in trainer.trainable_weights)),
        "backend": keras.backend.backend(), "keras": keras.__version__, "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(), "threads": args.threads,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
