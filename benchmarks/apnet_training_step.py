"""Time of one APNet training step (one batch: forward, Eq. 10 loss, backward, Adam) on CPU.

Builds :class:`apnet.APNet` at the shapes of a dataset, compiles it with
:func:`apnet.training.compile_apnet` (the Table 2 loss weights) and times
``model.train_on_batch`` on random scaled inputs in [-1, 1] and random one-hot targets, on the
TensorFlow backend with the GPU hidden. The first ``--warmup`` steps (tracing, oneDNN
primitive creation) are not timed; the result is the median (and min/max) of the next
``--steps`` steps.

Shapes (``--shape``):

* ``urbansound8k`` -- input 84 x 128 (T x F, Section 4.3), K = 10, M = 50, C = 32, batch
  B = 256 (Table 2);
* ``fsdd`` -- input 64 x 64, K = 10, M = 20, C = 32, batch 64 (apnet/configs/fsdd.yaml).

Usage::

    python benchmarks/apnet_training_step.py                     # both shapes, their batch sizes
    python benchmarks/apnet_training_step.py --shape urbansound8k --batch 64 --steps 5

Prints one JSON line per shape: the shape and settings, TensorFlow's thread counts, the
median/min/max seconds per step, clips per second (batch / median) and the 1-minute load
average after the run (other processes on a shared machine slow the steps down).
"""
import argparse
import json
import os
import platform
import time

from audiodata import cli as argtypes

SHAPES = {
    "urbansound8k": {"input_shape": (84, 128), "n_classes": 10, "n_prototypes": 50, "n_filters": 32,
                     "batch": 256, "alpha": 10, "beta": 5, "gamma": 5},
    "fsdd": {"input_shape": (64, 64), "n_classes": 10, "n_prototypes": 20, "n_filters": 32,
             "batch": 64, "alpha": 10, "beta": 5, "gamma": 5},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(SHAPES) + ("all",), default="all", help="dataset shapes to time")
    parser.add_argument("--batch", type=argtypes.positive_int, default=None,
                        help="batch size (default: the dataset's, see above)")
    parser.add_argument("--steps", type=argtypes.positive_int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=argtypes.non_negative_int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=argtypes.non_negative_int, default=0,
                        help="TensorFlow intra/inter-op threads (0: its default)")
    parser.add_argument("--seed", type=argtypes.seed, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "batch"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be positive, got {value}")
    return args


def time_steps(shape, batch, steps, warmup, seed):
    """Median/min/max seconds of ``model.train_on_batch`` for one shape of :data:`SHAPES`."""
    import keras
    import numpy as np

    from apnet import APNet
    from apnet.training import compile_apnet

    settings = SHAPES[shape]
    keras.utils.set_random_seed(seed)
    model = APNet(input_shape=settings["input_shape"], n_classes=settings["n_classes"],
                  n_prototypes=settings["n_prototypes"], n_filters=settings["n_filters"])
    compile_apnet(model, settings["alpha"], settings["beta"], settings["gamma"])
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (batch,) + settings["input_shape"]).astype("float32")
    y = np.eye(settings["n_classes"], dtype="float32")[rng.integers(0, settings["n_classes"], batch)]
    targets = {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(batch, "float32")}
    for _ in range(warmup):
        model.train_on_batch(x, targets)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, targets)
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    return {"shape": shape, "input_shape": list(settings["input_shape"]), "n_prototypes": settings["n_prototypes"],
            "n_filters": settings["n_filters"], "batch": batch, "n_params": int(model.count_params()),
            "warmup": warmup, "steps": steps, "median_s": median, "min_s": float(np.min(seconds)),
            "max_s": float(np.max(seconds)), "clips_per_s": batch / median}


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    machine = {"backend": "tensorflow", "device": "cpu", "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
               "processor": platform.processor() or platform.machine(),
               "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
               "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    for shape in (SHAPES if args.shape == "all" else (args.shape,)):
        batch = args.batch or SHAPES[shape]["batch"]
        result = time_steps(shape, batch, args.steps, args.warmup, args.seed)
        print(json.dumps({**result, **machine, "load_average_1min": os.getloadavg()[0]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
