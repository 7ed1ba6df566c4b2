"""Benchmark of apnet.layers.PrototypeLayer against the broadcast formulation.

Compares, for one forward + backward pass (gradients with respect to the input
and to the prototypes), the expanded distance computation of
``PrototypeLayer`` (``||z||^2 - 2<z,p> + ||p||^2`` per frequency bin) with the
naive formulation that materialises the ``(batch, M, T', F', C)`` difference
tensor, at the UrbanSound8K shapes of APNet (batch 64, M = 50, latent
21 x 32 x 32), on the TensorFlow backend on CPU.

Each variant runs in a fresh subprocess, so its memory is measured alone: the
peak-memory figure is the growth of the process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from just before the first
full-size step (inputs, weights and the traced graph already in memory; the
graph is traced on a batch of 1) to after the last one. The time is the median
wall-clock time of ``--repeats`` steps after one untimed full-size step.

Usage::

    python benchmarks/apnet_prototype_layer.py            # UrbanSound8K shapes
    python benchmarks/apnet_prototype_layer.py --batch 8  # quicker

Prints the per-variant lines, then one JSON line with the results, ratios
(broadcast / expanded) and the largest differences between the two outputs and
gradients.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from audiodata import cli as argtypes


def broadcast_distances(z, prototypes):
    """Reference D[i, j, f] built from the materialised (batch, M, T', F', C) difference."""
    from keras import ops

    diff = ops.expand_dims(z, 1) - ops.expand_dims(ops.cast(prototypes, z.dtype), 0)
    return ops.sum(ops.square(diff), axis=(2, 4))


def run_worker(args):
    """Time and measure one variant; save its outputs under ``args.out``; print one JSON line."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import resource
    import time

    import numpy as np
    import tensorflow as tf

    from apnet.layers import PrototypeLayer

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    t_dim, f_dim, c_dim = args.latent
    rng = np.random.default_rng(args.seed)
    z = tf.constant(rng.uniform(size=(args.batch, t_dim, f_dim, c_dim)).astype("float32"))
    cotangent = tf.constant(rng.normal(size=(args.batch, args.n_prototypes, f_dim)).astype("float32"))
    layer = PrototypeLayer(n_prototypes=args.n_prototypes)
    layer.build(z.shape)
    layer.prototypes.assign(rng.uniform(size=tuple(layer.prototypes.shape)).astype("float32"))

    def distances(x):
        return layer(x) if args.worker == "expanded" else broadcast_distances(x, layer.prototypes)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, t_dim, f_dim, c_dim), tf.float32),
            tf.TensorSpec((None, args.n_prototypes, f_dim), tf.float32),
        ]
    )
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            d = distances(x)
            loss = tf.reduce_sum(d * w)
        grad_z, grad_p = tape.gradient(loss, [x, layer.prototypes])
        return d, grad_z, grad_p

    step(z[:1], cotangent[:1])  # trace the graph on a batch of 1
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outputs = [o.numpy() for o in step(z, cotangent)]  # untimed full-size step
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = [o.numpy() for o in step(z, cotangent)]
        times.append(time.perf_counter() - start)
    rss_after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(Path(args.out) / f"{args.worker}.npz", d=outputs[0], grad_z=outputs[1], grad_p=outputs[2])
    assert all(np.array_equal(a, b) for a, b in zip(outputs, result))
    print(
        json.dumps(
            {
                "variant": args.worker,
                "median_step_s": float(np.median(times)),
                "min_step_s": float(np.min(times)),
                "peak_rss_growth_mb": (rss_after_kb - rss_before_kb) / 1024,
                "peak_rss_mb": rss_after_kb / 1024,
            }
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=argtypes.positive_int, default=64,
                        help="batch size (APNet, UrbanSound8K: 64 here)")
    parser.add_argument("--n-prototypes", type=argtypes.positive_int, default=50,
                        help="M, number of prototypes (Table 2)")
    parser.add_argument("--latent", type=argtypes.positive_int, nargs=3, default=(21, 32, 32), metavar=("T", "F", "C"),
                        help="latent shape (T', F', C): 84 x 128 mel input pooled twice, C = 32")
    parser.add_argument("--repeats", type=argtypes.positive_int, default=10, help="timed steps per variant")
    parser.add_argument("--threads", type=argtypes.non_negative_int, default=0,
                        help="TensorFlow CPU threads (0: its default)")
    parser.add_argument("--seed", type=argtypes.seed, default=0)
    parser.add_argument("--worker", choices=["expanded", "broadcast"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return

    import numpy as np

    with tempfile.TemporaryDirectory() as out:
        results = {}
        for variant in ("expanded", "broadcast"):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--out", out] + [
                a for a in (argv if argv is not None else sys.argv[1:])
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{variant} worker failed with exit status {proc.returncode}")
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"# {variant}: {results[variant]}", flush=True)
        expanded, broadcast = (np.load(Path(out) / f"{v}.npz") for v in ("expanded", "broadcast"))
        diffs = {
            f"max_abs_diff_{key}": float(np.max(np.abs(expanded[key] - broadcast[key])))
            for key in ("d", "grad_z", "grad_p")
        }
        diffs["max_rel_diff_d"] = float(
            np.max(np.abs(expanded["d"] - broadcast["d"]) / np.maximum(np.abs(broadcast["d"]), 1e-12))
        )
    e, b = results["expanded"], results["broadcast"]
    summary = {
        "benchmark": "apnet_prototype_layer",
        "backend": "tensorflow",
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "batch": args.batch,
        "n_prototypes": args.n_prototypes,
        "latent": list(args.latent),
        "repeats": args.repeats,
        "difference_tensor_mb": args.batch * args.n_prototypes * int(np.prod(args.latent)) * 4 / 2**20,
        "expanded_step_s": e["median_step_s"],
        "broadcast_step_s": b["median_step_s"],
        "speedup": b["median_step_s"] / e["median_step_s"],
        "expanded_peak_rss_growth_mb": e["peak_rss_growth_mb"],
        "broadcast_peak_rss_growth_mb": b["peak_rss_growth_mb"],
        "memory_ratio": b["peak_rss_growth_mb"] / max(e["peak_rss_growth_mb"], 1e-3),
        **diffs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
