"""Benchmark: l2i.nmf.learn_dictionary against scikit-learn's multiplicative-update NMF.

Both solve Eq. 6 of L2I (Parekh et al., 2024) on the same real ESC-10
log-magnitude spectrograms, from the same starting point, for the same number
of iterations, with the same L1 weight on the activations:

* ours:    ||X - W H||_F^2 + l1 * ||H||_1,  columns of W kept at unit norm;
* sklearn: 0.5 ||X - W H||_F^2 + alpha_H * l1_ratio * n_samples * ||H||_1
  (sklearn >= 1.2 scales the penalty on H by n_samples, the number of rows of
  X, here F), so with l1_ratio=1, alpha_W=0 and alpha_H = l1 / (2 F) its cost is
  exactly half of ours for a fixed W.  sklearn does not constrain the norm of
  W, so it can lower its penalty by shrinking H and growing W without changing
  W H; we therefore evaluate both results with the same function
  (l2i.nmf.nmf_objective) after normalising W to unit-norm columns and
  rescaling H so that W H is unchanged.

Prints one JSON line.  Usage::

    python benchmarks/l2i_nmf_vs_sklearn.py --data ../shared/data/ESC-50 --clips 40
"""
import argparse
import json
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from sklearn.decomposition import NMF
from threadpoolctl import threadpool_limits

from audiodata import cli as argtypes
from l2i.nmf import learn_dictionary, nmf_objective


def log_magnitude(path, n_fft=1024, hop_length=512):
    """log(1 + |STFT|) of a mono clip (L2I Sec. III-A and IV-A2)."""
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.log1p(np.abs(librosa.stft(y.mean(axis=1), n_fft=n_fft, hop_length=hop_length)))


def normalise(W, H):
    """Unit-norm columns of W, rows of H rescaled so that W H is unchanged."""
    norms = np.maximum(np.linalg.norm(W.astype(np.float64), axis=0), 1e-12)
    return W / norms, H * norms[:, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "ESC-50")
    parser.add_argument("--clips", type=argtypes.positive_int, default=40)
    parser.add_argument("--components", type=argtypes.positive_int, default=64)
    parser.add_argument("--l1", type=argtypes.non_negative_float, default=1.0)
    parser.add_argument("--iterations", type=argtypes.positive_int, default=200)
    parser.add_argument("--seed", type=argtypes.seed, default=0)
    parser.add_argument("--threads", type=argtypes.positive_int, default=1)
    parser.add_argument("--repeats", type=argtypes.positive_int, default=3,
                        help="alternate the two fits this many times and report median seconds")
    args = parser.parse_args()
    meta = args.data / "meta" / "esc50.csv"
    if not meta.is_file():
        print(f"error: {meta} does not exist; --data must name an ESC-50 folder in its official layout "
              "(meta/esc50.csv, audio/)", file=sys.stderr)
        return 2

    esc10 = [line.split(",")[0] for line in (args.data / "meta" / "esc50.csv").read_text().splitlines()[1:]
             if line.split(",")[4] == "True"]
    files = sorted(f for f in esc10 if (args.data / "audio" / f).is_file())
    files = files[:: max(len(files) // args.clips, 1)][: args.clips]
    X = np.concatenate([log_magnitude(args.data / "audio" / f) for f in files], axis=1).astype(np.float32)
    n_features, n_frames = X.shape

    rng = np.random.default_rng(args.seed)
    W0 = rng.random((n_features, args.components)).astype(np.float32)
    W0 /= np.linalg.norm(W0, axis=0)
    H0 = rng.random((args.components, n_frames)).astype(np.float32)
    H0 *= X.mean() / (W0.mean() * args.components * 0.5)

    model = NMF(n_components=args.components, init="custom", solver="mu", beta_loss="frobenius",
                alpha_W=0.0, alpha_H=args.l1 / (2 * n_features), l1_ratio=1.0,
                max_iter=args.iterations, tol=0.0)
    times_ours, times_sk = [], []
    with threadpool_limits(args.threads):
        for _ in range(args.repeats):  # both fits are deterministic: only the times vary
            start = time.perf_counter()
            W_ours, H_ours, history = learn_dictionary(
                X, args.components, l1=args.l1, n_iter=args.iterations, tol=0.0, W_init=W0, H_init=H0,
            )
            times_ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            W_sk = model.fit_transform(X, W=W0.copy(), H=H0.copy())
            times_sk.append(time.perf_counter() - start)
    t_ours, t_sk = float(np.median(times_ours)), float(np.median(times_sk))
    H_sk = model.components_

    sk_own = 2 * (0.5 * np.sum((X.astype(np.float64) - W_sk @ H_sk) ** 2)
                  + args.l1 / (2 * n_features) * n_features * H_sk.sum(dtype=np.float64))
    W_skn, H_skn = normalise(W_sk, H_sk)
    obj_ours = nmf_objective(X, W_ours, H_ours, args.l1)
    obj_sk = nmf_objective(X, W_skn, H_skn, args.l1)
    x_norm = np.linalg.norm(X.astype(np.float64))
    result = {
        "data": f"{len(files)} ESC-10 clips, X {n_features}x{n_frames}",
        "K": args.components, "l1": args.l1, "iterations": args.iterations, "threads": args.threads,
        "sklearn_alpha_H": args.l1 / (2 * n_features), "sklearn_n_iter": int(model.n_iter_),
        "objective_ours": obj_ours, "objective_sklearn_unit_norm": obj_sk,
        "objective_sklearn_own_scale": float(sk_own),
        "objective_ratio_sklearn_over_ours": obj_sk / obj_ours,
        "rel_error_ours": float(np.linalg.norm(X - W_ours @ H_ours) / x_norm),
        "rel_error_sklearn": float(np.linalg.norm(X - W_sk @ H_sk) / x_norm),
        "l1_ours": float(H_ours.sum(dtype=np.float64)), "l1_sklearn_unit_norm": float(H_skn.sum()),
        "sklearn_W_col_norm_range": [float(np.linalg.norm(W_sk, axis=0).min()),
                                     float(np.linalg.norm(W_sk, axis=0).max())],
        "objective_monotone_ours": bool(np.all(np.diff(history["objective"]) <= 1e-6 * history["objective"][0])),
        "repeats": args.repeats, "seconds_ours": t_ours, "seconds_sklearn": t_sk, "time_ratio_sklearn_over_ours": t_sk / t_ours,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
