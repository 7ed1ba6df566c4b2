"""Unsupervised-NMF classifier: sparse-NMF dictionary, time-averaged activations, logistic regression."""
from pathlib import Path

import numpy as np

from audiodata.cli import non_negative_float, positive_float, positive_int, require
from audiodata.errors import ParameterError
from l2i.baselines._common import (ProbabilityClassifier, as_clips, as_targets, fit_linear, linear_probabilities,
                                   save_npz)
from l2i.nmf import learn_dictionary, nmf_activations

__all__ = ["NMFClassifier"]

#: The file of ``run_dir`` holding the dictionary's sparse-NMF state (``W``, ``H``, ``iteration``, ``converged``).
CHECKPOINT = "nmf_dictionary_checkpoint.npz"


class NMFClassifier(ProbabilityClassifier):
    """The "Unsupervised-NMF" by-design baseline of L2I (Table VIII): NMF features + a linear model.

    1. ``fit`` learns a dictionary ``W`` [shape=(F, K)] by sparse NMF (Eq. 6,
       :func:`l2i.nmf.learn_dictionary`) on the training spectrograms concatenated
       along time (log-magnitude ``log(1 + |STFT|)``, or the square root of the power
       mel spectrogram -- the two data types of Sec. IV-C);
    2. every clip is encoded by its activations ``H`` [shape=(K, T)] for that fixed
       ``W`` (:func:`l2i.nmf.nmf_activations`), averaged over time: ``z = mean_t H``;
    3. ``z`` is standardised (training mean and standard deviation) and a logistic
       regression is fitted: multinomial (softmax) for multi-class data, one binary
       regression per class on its annotated labels for multi-label data. The
       standardisation is an affine map, so the classifier stays linear in ``z``.

    Inputs are time-first, like the cached features: an array ``(N, T, F)`` or a list
    of ``(T_i, F)`` arrays (clips may differ in length). Targets are integer labels
    ``(N,)`` or one-/multi-hot rows ``(N, C)`` (NaN = label not annotated, OpenMIC).

    Args:
        n_components: int, dictionary size ``K`` (the paper sweeps 64-512, see
            :func:`l2i.baselines.sweep_dictionary_sizes`).
        l1: float >= 0, sparsity weight ``mu`` of Eq. 6, for the dictionary and the activations.
        n_iter_dictionary: int, iterations of :func:`l2i.nmf.learn_dictionary`.
        n_iter_activations: int, iterations of :func:`l2i.nmf.nmf_activations`.
        tol: float, relative tolerance of both NMF solvers (0 runs every iteration).
        C: float > 0, inverse l2-regularisation of the logistic regression (scikit-learn).
        max_iter: int, iterations of the logistic regression solver.
        multilabel: bool, sigmoid read-out per class (SONYC-UST, OpenMIC) instead of softmax.
        dictionary: optional ``(F, K)`` array used instead of learning one (then
            ``n_components`` is ignored).
        seed: int, seed of the NMF initialisations and the regression.

    Attributes (after ``fit``):
        dictionary_: ``(F, K)`` unit-norm non-negative dictionary.
        mean_, scale_: ``(K,)`` standardisation of the averaged activations.
        kernel_, bias_: ``(K, C)`` and ``(C,)``, the linear read-out on standardised ``z``.
        n_classes_: int.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((12, 20, 30)).astype("float32"); y = np.arange(12) % 3
    >>> model = NMFClassifier(n_components=4, n_iter_dictionary=20, n_iter_activations=20).fit(X, y)
    >>> model.predict_proba(X).shape
    (12, 3)

    References:
        Parekh et al., IEEE/ACM TASLP 2024, Sec. IV-C ("Metrics and baselines
        (By-design)": unsupervised NMF, log-magnitude or sqrt power mel, K in 64-512,
        best reported) and Table VIII; Eq. 6 for the dictionary.
    """

    def __init__(self, n_components=64, l1=0.1, n_iter_dictionary=200, n_iter_activations=200, tol=1e-4, C=1.0,
                 max_iter=1000, multilabel=False, dictionary=None, seed=0):
        self.n_components = require(positive_int, n_components, "n_components", strict=True)
        self.l1 = require(non_negative_float, l1, "l1")
        self.n_iter_dictionary = require(positive_int, n_iter_dictionary, "n_iter_dictionary", strict=True)
        self.n_iter_activations = require(positive_int, n_iter_activations, "n_iter_activations", strict=True)
        self.tol = require(non_negative_float, tol, "tol")
        self.C = require(positive_float, C, "C")
        self.max_iter = require(positive_int, max_iter, "max_iter", strict=True)
        self.multilabel = bool(multilabel)
        self.dictionary = None if dictionary is None else np.asarray(dictionary, dtype=np.float32)
        if self.dictionary is not None and self.dictionary.ndim != 2:
            raise ValueError(f"`dictionary` must be a 2-D array (F, K); received shape {self.dictionary.shape}")
        self.seed = int(seed)

    def get_params(self):
        """The constructor arguments (for :func:`l2i.baselines.sweep_dictionary_sizes`)."""
        return {"n_components": self.n_components, "l1": self.l1, "n_iter_dictionary": self.n_iter_dictionary,
                "n_iter_activations": self.n_iter_activations, "tol": self.tol, "C": self.C,
                "max_iter": self.max_iter, "multilabel": self.multilabel, "dictionary": self.dictionary,
                "seed": self.seed}

    def fit(self, X, y, n_classes=None, run_dir=None, checkpoint_every=10):
        """Learn ``W`` on ``X``, encode the clips and fit the linear model; returns ``self``.

        With ``run_dir``, the dictionary's sparse NMF saves its state (``W``, ``H``, iterations
        done) to ``run_dir/nmf_dictionary_checkpoint.npz`` every ``checkpoint_every`` iterations
        and at the end; calling ``fit`` again on the same folder continues from that iteration
        (``dictionary_iterations_this_run_`` counts the new ones). Memory-mapped clips (rows of a
        feature cache) are read block by block, never copied whole.
        """
        clips = as_clips(X)
        Y = as_targets(y, len(clips), n_classes, self.multilabel)
        self.dictionary_iterations_ = self.dictionary_iterations_this_run_ = 0
        if self.dictionary is None:
            W, _, self.dictionary_history_ = self._learn_dictionary([c.T for c in clips], run_dir,
                                                                    int(checkpoint_every))
        else:
            W = self.dictionary
            if W.shape[0] != clips[0].shape[1]:
                raise ParameterError(f"dictionary has {W.shape[0]} rows, the clips {clips[0].shape[1]} bins")
        self.dictionary_ = np.asarray(W, dtype=np.float32)
        Z = self._encode(clips)
        self.mean_ = Z.mean(axis=0)
        self.scale_ = np.maximum(Z.std(axis=0), 1e-8)
        self.n_classes_ = Y.shape[1]
        self.kernel_, self.bias_ = fit_linear((Z - self.mean_) / self.scale_, Y, self.multilabel, self.C,
                                              self.max_iter, self.seed)
        return self

    def _learn_dictionary(self, data, run_dir, checkpoint_every):
        """:func:`l2i.nmf.learn_dictionary`, checkpointed to (and resumed from) ``run_dir``."""
        kwargs = {"l1": self.l1, "seed": self.seed, "tol": self.tol}
        if run_dir is None:
            W, H, history = learn_dictionary(data, self.n_components, n_iter=self.n_iter_dictionary, **kwargs)
            self.dictionary_iterations_ = self.dictionary_iterations_this_run_ = history["n_iter"]
            return W, H, history
        path = Path(run_dir) / CHECKPOINT
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        n_frames = sum(d.shape[1] for d in data)
        done, converged, init = 0, False, {}
        if path.is_file():
            with np.load(path) as saved:
                W, H = saved["W"], saved["H"]
                done, converged = int(saved["iteration"]), bool(saved["converged"])
            if W.shape != (data[0].shape[0], self.n_components) or H.shape != (self.n_components, n_frames):
                raise ParameterError(f"{path} holds a dictionary of another shape ({W.shape}, H {H.shape}); "
                                     "use another folder")
            init = {"W_init": W, "H_init": H}
        remaining = self.n_iter_dictionary - done
        if converged or remaining <= 0:
            self.dictionary_iterations_, self.dictionary_iterations_this_run_ = done, 0
            return W, H, {"objective": [], "n_iter": 0, "converged": converged, "seconds": 0.0}

        def save(iteration, W, H, converged=False):
            save_npz(path, W=W, H=H, iteration=np.int64(done + iteration), converged=np.bool_(converged))

        def callback(iteration, W, H):
            if iteration % max(checkpoint_every, 1) == 0:
                save(iteration, W, H)

        W, H, history = learn_dictionary(data, self.n_components, n_iter=remaining, callback=callback, **kwargs,
                                         **init)
        save(history["n_iter"], W, H, converged=history["converged"])
        self.dictionary_iterations_ = done + history["n_iter"]
        self.dictionary_iterations_this_run_ = history["n_iter"]
        return W, H, history

    def transform(self, X):
        """Time-averaged activations ``z = mean_t H`` [shape=(N, K)] for the learned ``W``."""
        self._check_fitted()
        return self._encode(as_clips(X))

    def predict_proba(self, X):
        """Class probabilities [shape=(N, C)]: softmax (multi-class) or sigmoid (multi-label)."""
        Z = self.transform(X)
        return linear_probabilities((Z - self.mean_) / self.scale_, self.kernel_, self.bias_, self.multilabel)

    def _encode(self, clips):
        H, _ = nmf_activations([c.T for c in clips], self.dictionary_, l1=self.l1, n_iter=self.n_iter_activations,
                               seed=self.seed, tol=self.tol)
        bounds = np.cumsum([0] + [c.shape[0] for c in clips])
        return np.stack([H[:, a:b].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)

    def _check_fitted(self):
        if not hasattr(self, "dictionary_"):
            raise ParameterError("this NMFClassifier is not fitted yet; call fit(X, y) first")

