"""Task-driven NMF (TDL-NMF): the NMF dictionary and the linear classifier trained jointly on the class loss."""
import tempfile
from pathlib import Path

import keras
import numpy as np

from audioruns.batches import EpochOrderedBatches
from audioruns.checkpoints import DivergenceGuard, EpochOrder
from audiodata.cli import non_negative_float, non_negative_int, positive_float, positive_int, require
from audiodata.errors import ParameterError
from l2i.baselines._common import (ProbabilityClassifier, as_clips, as_targets, fit_linear,
                                   masked_binary_crossentropy, save_npz)
from l2i.baselines.unrolled_nmf_encoder import UnrolledNMFEncoder
from l2i.nmf import learn_dictionary
from l2i.training import fit_resumable

__all__ = ["TDLNMFClassifier"]


class TDLNMFClassifier(ProbabilityClassifier):
    """The "TD-NMF" by-design baseline of L2I (Table VIII): task-driven NMF dictionary learning.

    1. ``W_0`` is learned by unsupervised sparse NMF (Eq. 6,
       :func:`l2i.nmf.learn_dictionary`) on the training spectrograms, exactly as in
       :class:`l2i.baselines.NMFClassifier` (or given as ``dictionary``).
    2. A Keras model (``model_``) maps a clip ``X`` ``(T, F)`` to
       ``H = UnrolledNMFEncoder(W)(X)`` (``n_iter`` multiplicative sparse-NMF updates,
       differentiable in ``W``), ``z = mean_t H``, a fixed standardisation of ``z``
       (mean and deviation of ``z`` under ``W_0`` on the training set) and a linear
       layer + softmax (sigmoid for multi-label). The linear layer starts from the
       logistic regression fitted on the standardised ``z`` under ``W_0``, so training
       starts at the unsupervised-NMF solution of the same encoder.
    3. ``W`` and the linear layer are trained jointly with Adam on the cross-entropy
       (masked binary cross-entropy for multi-label targets with NaN); after every step
       ``W`` is projected onto non-negative unit-norm columns
       (:class:`l2i.baselines.NonNegUnitNorm`).

    **Approximation.** Mairal et al. differentiate the exact sparse code ``H*(W)``
    implicitly through its optimality conditions; we back-propagate through a fixed
    number of unrolled multiplicative updates from ``H_0 = 1`` instead (the encoder
    used for prediction is the same truncated solver, so training and test agree).
    Clips must share their length ``T`` (they are batched).

    **Memory and resuming.** ``fit``, ``transform`` and ``predict_proba`` read the clips
    ``batch_size`` at a time from any array-like of rows (a memory-mapped feature cache),
    so the training set is never held in memory; step 1 reads it through memory-mapped
    views (or a memory-mapped scratch file when a ``transform`` is given). Only
    :func:`l2i.nmf.learn_dictionary`'s activations ``H`` [shape=(K, total frames)] are in
    memory. With ``run_dir``, ``fit`` resumes from the last completed epoch.

    Args:
        n_components: int, ``K`` (the paper sweeps 64-512).
        l1: float >= 0, sparsity weight of Eq. 6 (dictionary learning and encoder).
        n_iter: int, unrolled updates of the encoder.
        n_iter_dictionary: int, iterations of the initial :func:`l2i.nmf.learn_dictionary`.
        epochs, batch_size, learning_rate: the joint training (Adam).
        C: float > 0, inverse regularisation of the initial logistic regression.
        multilabel: bool, sigmoid outputs and masked binary cross-entropy.
        dictionary: optional ``(F, K)`` initial dictionary (skips step 1).
        seed: int, seeds NMF, the regression and Keras.
        verbose: int, Keras ``fit`` verbosity.

    Attributes (after ``fit``):
        model_: the trained ``keras.Model`` (input ``(batch, T, F)``, output probabilities);
            layers ``"nmf_activations"`` (weight ``dictionary``), ``"mean_activations"``,
            ``"activation_normalization"``, ``"linear"``, ``"prediction"``.
        initial_dictionary_: ``W_0``; history_: the Keras training history (dict).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((12, 20, 30)).astype("float32"); y = np.arange(12) % 3
    >>> model = TDLNMFClassifier(n_components=4, n_iter=5, n_iter_dictionary=20, epochs=2).fit(X, y)
    >>> model.predict_proba(X).shape
    (12, 3)

    References:
        Mairal, Bach, Ponce, "Task-driven dictionary learning", IEEE TPAMI 2012;
        Bisot et al., "Feature learning with matrix factorization applied to acoustic
        scene classification", IEEE/ACM TASLP 2017 (ref. [47] of L2I);
        Parekh et al., IEEE/ACM TASLP 2024, Sec. IV-C and Table VIII.
    """

    def __init__(self, n_components=64, l1=0.1, n_iter=30, n_iter_dictionary=200, epochs=20, batch_size=32,
                 learning_rate=1e-3, C=1.0, multilabel=False, dictionary=None, seed=0, verbose=0):
        self.n_components = require(positive_int, n_components, "n_components", strict=True)
        self.l1 = require(non_negative_float, l1, "l1")
        self.n_iter = require(positive_int, n_iter, "n_iter", strict=True)
        self.n_iter_dictionary = require(positive_int, n_iter_dictionary, "n_iter_dictionary", strict=True)
        self.epochs = require(non_negative_int, epochs, "epochs", strict=True)
        self.batch_size = require(positive_int, batch_size, "batch_size", strict=True)
        self.learning_rate = require(positive_float, learning_rate, "learning_rate")
        self.C = require(positive_float, C, "C")
        self.multilabel = bool(multilabel)
        self.dictionary = None if dictionary is None else np.asarray(dictionary, dtype=np.float32)
        self.seed = int(seed)
        self.verbose = int(verbose)

    def get_params(self):
        """The constructor arguments (for :func:`l2i.baselines.sweep_dictionary_sizes`)."""
        return {"n_components": self.n_components, "l1": self.l1, "n_iter": self.n_iter,
                "n_iter_dictionary": self.n_iter_dictionary, "epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "C": self.C, "multilabel": self.multilabel,
                "dictionary": self.dictionary, "seed": self.seed, "verbose": self.verbose}

    def fit(self, X, y, n_classes=None, rows=None, transform=None, run_dir=None):
        """Learn ``W_0``, initialise the linear layer, then train both; returns ``self``.

        Parameters
        ----------
        X : np.ndarray [shape=(N, T, F)], list of (T, F) arrays, or an array-like of rows
            Time-first non-negative spectrograms. Anything indexable by an int array of rows
            (``np.memmap``, :class:`audiodata.features.FeatureArray`) is read ``batch_size``
            rows at a time and never held whole (a list is stacked in memory).
        y : np.ndarray [shape=(n,) or (n, C)]
            Targets of the clips used (``rows`` order).
        n_classes : int, optional
        rows : int array, optional
            Rows of ``X`` to train on (default: all).
        transform : callable, optional
            Maps a batch ``(b, T, F)`` read from ``X`` to the non-negative spectrograms
            (e.g. the square root of the power mel from a log-mel cache).
        run_dir : str or Path, optional
            Resumable training: ``W_0``, the standardisation and the initial read-out go to
            ``run_dir/tdl_nmf_init.npz`` (reused on a re-run), the Keras training keeps
            ``run_dir/backup`` and ``run_dir/history.csv`` (:func:`l2i.training.fit_resumable`),
            so calling ``fit`` again on the same folder continues from the last completed epoch
            (and ends with the weights of an uninterrupted fit).

        Raises
        ------
        audioruns.errors.TrainingDivergedError
            The training loss became NaN or infinite.
        """
        X, rows = _source(X, rows)
        Y = as_targets(y, len(rows), n_classes, self.multilabel)
        keras.utils.set_random_seed(self.seed)
        n_frames, n_bins = _clip_shape(X, rows, transform)
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        init_path = None if run_dir is None else Path(run_dir) / "tdl_nmf_init.npz"
        if init_path is not None and init_path.is_file():
            with np.load(init_path) as saved:
                W0, mean, std, kernel, bias = (saved[k] for k in ("W0", "mean", "std", "kernel", "bias"))
            if W0.shape != (n_bins, self._n_atoms()) or kernel.shape[1] != Y.shape[1]:
                raise ParameterError(f"{init_path} holds a run of another shape (W0 {W0.shape}, "
                                     f"{kernel.shape[1]} classes); use another folder")
        else:
            if self.dictionary is None:
                with tempfile.TemporaryDirectory(dir=run_dir) as scratch:
                    clips = _dictionary_views(X, rows, transform, self.batch_size, scratch)
                    W0, _, _ = learn_dictionary(clips, self.n_components, l1=self.l1,
                                                n_iter=self.n_iter_dictionary, seed=self.seed)
                    del clips
            else:
                W0 = self.dictionary
                if W0.shape[0] != n_bins:
                    raise ParameterError(f"dictionary has {W0.shape[0]} rows, the clips {n_bins} bins")
            W0 = np.asarray(W0, dtype=np.float32)
            encoder = self._encoder(W0, n_bins)
            Z0 = np.concatenate([keras.ops.convert_to_numpy(encoder(batch[0])).mean(axis=2)
                                 for batch in _ClipBatches(X, rows, None, self.batch_size, transform)])
            mean, std = Z0.mean(axis=0), np.maximum(Z0.std(axis=0), 1e-8)
            kernel, bias = fit_linear((Z0 - mean) / std, Y, self.multilabel, self.C, seed=self.seed)
            if init_path is not None:
                save_npz(init_path, W0=W0, mean=mean, std=std, kernel=kernel, bias=bias)
        self.initial_dictionary_ = np.asarray(W0, dtype=np.float32)
        self.n_classes_ = Y.shape[1]
        encoder = self._encoder(self.initial_dictionary_, n_bins)
        self.model_ = _build_model(encoder, n_frames, n_bins, self.n_classes_, mean, std ** 2, self.multilabel)
        self.model_.get_layer("linear").set_weights([kernel, bias])
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                            loss=masked_binary_crossentropy if self.multilabel else "categorical_crossentropy")
        train = _ClipBatches(X, rows, Y, self.batch_size, transform, shuffle=True, seed=self.seed)
        if run_dir is None:
            # shuffle=False: the batches are ordered by (seed, epoch) (Keras' shuffle uses the global `random`).
            self.history_ = self.model_.fit(train, epochs=self.epochs, verbose=self.verbose, shuffle=False,
                                            callbacks=[DivergenceGuard(), EpochOrder(train)]).history
            self.epochs_this_run_ = self.epochs
        else:
            rows_csv, self.epochs_this_run_ = fit_resumable(self.model_, train, run_dir, self.epochs,
                                                           verbose=self.verbose)
            keys = [k for k in (rows_csv[0] if rows_csv else {}) if k != "epoch"]
            self.history_ = {k: [row[k] for row in rows_csv] for k in keys}
        return self

    def _n_atoms(self):
        return self.n_components if self.dictionary is None else self.dictionary.shape[1]

    def _encoder(self, W0, n_bins):
        encoder = UnrolledNMFEncoder(W0.shape[1], n_iter=self.n_iter, l1=self.l1, name="nmf_activations")
        encoder.build((None, None, n_bins))
        encoder.set_weights([W0])
        return encoder

    @property
    def dictionary_(self):
        """The trained dictionary ``W`` [shape=(F, K)], non-negative with unit-norm columns."""
        self._check_fitted()
        return keras.ops.convert_to_numpy(self.model_.get_layer("nmf_activations").dictionary)

    def transform(self, X, rows=None, transform=None):
        """Time-averaged activations ``z = mean_t H`` [shape=(N, K)] of the trained encoder (read by batches)."""
        self._check_fitted()
        X, rows = _source(X, rows)
        sub = keras.Model(self.model_.inputs[0], self.model_.get_layer("mean_activations").output)
        return np.asarray(sub.predict(_ClipBatches(X, rows, None, self.batch_size, transform), verbose=0))

    def predict_proba(self, X, rows=None, transform=None):
        """Class probabilities [shape=(N, C)] of ``X`` (or of its ``rows``), read ``batch_size`` clips at a time."""
        self._check_fitted()
        X, rows = _source(X, rows)
        return np.asarray(self.model_.predict(_ClipBatches(X, rows, None, self.batch_size, transform), verbose=0))

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ParameterError("this TDLNMFClassifier is not fitted yet; call fit(X, y) first")


def _source(X, rows):
    """``(array-like of rows, rows)``: a list of clips is stacked; arrays and feature caches are kept as they are."""
    if isinstance(X, (list, tuple)):
        clips = as_clips(X)
        lengths = {c.shape[0] for c in clips}
        if len(lengths) != 1:
            raise ParameterError(f"TDL-NMF batches clips: they must share their length T; "
                                 f"got lengths {sorted(lengths)}")
        X = np.stack(clips)
    if len(getattr(X, "shape", ())) != 3:
        raise ParameterError(f"X must hold time-first spectrograms (N, T, F); got shape {getattr(X, 'shape', None)}")
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size == 0:
        raise ParameterError("rows must be a non-empty 1-D array of row numbers")
    return X, rows


def _clip_shape(X, rows, transform):
    """``(T, F)`` of the clips after ``transform`` (reads one row)."""
    first = np.asarray(X[rows[:1]], dtype=np.float32)
    if transform is not None:
        first = transform(first)
    return int(first.shape[1]), int(first.shape[2])


def _checked(batch, transform):
    batch = np.asarray(batch, dtype=np.float32)
    if transform is not None:
        batch = np.asarray(transform(batch), dtype=np.float32)
    if not np.all(np.isfinite(batch)) or np.any(batch < 0):
        raise ParameterError(f"the spectrograms must be finite and non-negative (NMF data); min {np.nanmin(batch):.4g}")
    return batch


class _ClipBatches(EpochOrderedBatches):
    """``batch_size`` rows of ``X`` per batch, read when asked for, in the epoch order of
    :class:`audioruns.batches.EpochOrderedBatches` (as :class:`l2i.training.L2IBatches`), so a resumed
    run sees the batches of an uninterrupted one. Yields ``(x,)`` when ``targets`` is None, else ``(x, y)``.
    """

    def __init__(self, X, rows, targets, batch_size, transform=None, shuffle=False, seed=0):
        self.X, self.transform = X, transform
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)
        super().__init__(rows, batch_size, shuffle=shuffle, seed=seed)

    def _batch(self, positions, rows):
        x = _checked(self.X[rows], self.transform)
        return (x,) if self.targets is None else (x, self.targets[positions])


def _dictionary_views(X, rows, transform, batch_size, scratch):
    """Frequency-first ``(F, T)`` views of the clips for :func:`l2i.nmf.learn_dictionary`, never all in memory.

    Rows of an ``np.ndarray``/``np.memmap`` without ``transform`` are views of it; otherwise the
    clips are written ``batch_size`` at a time to a memory-mapped file in ``scratch``.
    """
    if transform is None and isinstance(X, np.ndarray):
        return [X[r].T for r in rows]
    n_frames, n_bins = _clip_shape(X, rows, transform)
    out = np.lib.format.open_memmap(Path(scratch) / "dictionary_data.npy", mode="w+", dtype=np.float32,
                                    shape=(len(rows), n_frames, n_bins))
    for start in range(0, len(rows), batch_size):
        out[start:start + batch_size] = _checked(X[rows[start:start + batch_size]], transform)
    out.flush()
    return [out[i].T for i in range(len(rows))]



def _build_model(encoder, n_frames, n_frequencies, n_classes, mean, variance, multilabel):
    """``X -> H -> mean_t H -> standardise -> linear -> softmax/sigmoid`` (all layers named)."""
    inputs = keras.Input(shape=(n_frames, n_frequencies), name="spectrogram")
    H = encoder(inputs)
    z = keras.layers.GlobalAveragePooling1D(data_format="channels_first", name="mean_activations")(H)
    z = keras.layers.Normalization(axis=-1, mean=mean.tolist(), variance=variance.tolist(),
                                   name="activation_normalization")(z)
    logits = keras.layers.Dense(n_classes, name="linear")(z)
    outputs = keras.layers.Activation("sigmoid" if multilabel else "softmax", name="prediction")(logits)
    return keras.Model(inputs, outputs, name="tdl_nmf")
