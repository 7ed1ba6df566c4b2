"""Private helpers shared by the baselines: input checks, targets, the linear read-out, losses."""
import os
from pathlib import Path

import keras
import numpy as np
from keras import ops
from sklearn.linear_model import LogisticRegression

from audiodata.errors import ParameterError
from audioruns.metrics import accuracy
from l2i.losses import crossentropy as _crossentropy
from l2i.metrics import auprc
from l2i.nmf import check_matrix


def as_clips(X, name="X"):
    """A list of time-first ``(T_i, F)`` non-negative float32 spectrograms (all with the same ``F``)."""
    if isinstance(X, np.ndarray) and X.ndim == 3:
        clips = [X[i] for i in range(X.shape[0])]
    else:
        clips = list(X)
    if not clips:
        raise ParameterError(f"{name} holds no clip")
    out = []
    n_freq = None
    for i, clip in enumerate(clips):
        clip = np.asarray(clip, dtype=np.float32)
        n_freq = check_matrix(clip, f"{name}[{i}]", n_freq, axis=1, layout="time-first spectrogram (T, F)",
                              what="frequency bins", first=f"{name}[0]")
        if not np.all(np.isfinite(clip)) or np.any(clip < 0):
            raise ParameterError(f"{name}[{i}] must be finite and non-negative (NMF data); "
                                 f"min {np.nanmin(clip):.4g}")
        out.append(clip)
    return out


def as_targets(y, n_samples, n_classes=None, multilabel=False):
    """``(N, C)`` float32 targets from integer labels ``(N,)`` or one-/multi-hot rows (NaN = not annotated)."""
    y = np.asarray(y)
    if y.ndim == 1:
        if multilabel:
            raise ParameterError("multi-label targets must be a (N, n_classes) multi-hot matrix")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ParameterError(f"integer class labels must be non-negative ints; got dtype {y.dtype}")
        n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
        if y.max() >= n_classes:
            raise ParameterError(f"label {int(y.max())} outside [0, {n_classes})")
        y = np.eye(n_classes, dtype=np.float32)[y]
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2 or y.shape[0] != n_samples:
        raise ParameterError(f"y must have shape ({n_samples},) or ({n_samples}, n_classes); got {y.shape}")
    if n_classes is not None and y.shape[1] != n_classes:
        raise ParameterError(f"y has {y.shape[1]} classes, expected n_classes={n_classes}")
    if not multilabel and np.isnan(y).any():
        raise ParameterError("multi-class targets may not hold NaN")
    return y


def fit_linear(Z, Y, multilabel, C=1.0, max_iter=1000, seed=0):
    """Logistic regression on features ``Z`` (N, K) as a ``(kernel (K, C), bias (C,))`` pair.

    Multi-class: multinomial logistic regression (softmax read-out); classes absent from
    ``Y`` get a zero kernel column and a bias of -30. Multi-label: one binary logistic
    regression per class on its annotated rows (sigmoid read-out); a class with a single
    observed value gets a zero column and the logit of its rate.
    """
    n_features, n_classes = Z.shape[1], Y.shape[1]
    kernel = np.zeros((n_features, n_classes), dtype=np.float64)
    bias = np.full(n_classes, -30.0)
    if not multilabel:
        labels = np.argmax(Y, axis=1)
        present = np.unique(labels)
        if present.size == 1:
            bias[present[0]] = 0.0
            return kernel.astype(np.float32), bias.astype(np.float32)
        model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(Z, labels)
        if present.size == 2:  # sklearn keeps one coefficient row for two classes
            kernel[:, present[1]] = model.coef_[0] / 2
            kernel[:, present[0]] = -model.coef_[0] / 2
            bias[present[1]], bias[present[0]] = model.intercept_[0] / 2, -model.intercept_[0] / 2
        else:
            kernel[:, present] = model.coef_.T
            bias[present] = model.intercept_
        return kernel.astype(np.float32), bias.astype(np.float32)
    for j in range(n_classes):
        rows = ~np.isnan(Y[:, j])
        values = Y[rows, j]
        if values.size == 0:
            bias[j] = 0.0
        elif np.unique(values).size == 1:
            rate = np.clip(values.mean(), 1e-4, 1 - 1e-4)
            bias[j] = np.log(rate / (1 - rate))
        else:
            model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(Z[rows], values)
            kernel[:, j], bias[j] = model.coef_[0], model.intercept_[0]
    return kernel.astype(np.float32), bias.astype(np.float32)


class ProbabilityClassifier:
    """``predict`` and ``score`` of a fitted classifier from its ``predict_proba(X)`` [shape=(N, C)].

    The NMF baselines derive from it; they set ``multilabel`` and, once fitted, ``n_classes_``.
    """

    def predict(self, X):
        """Class indices (multi-class) or 0/1 decisions at 0.5 (multi-label)."""
        probabilities = self.predict_proba(X)
        return (probabilities >= 0.5).astype(int) if self.multilabel else np.argmax(probabilities, axis=1)

    def score(self, X, y):
        """Accuracy (multi-class) or macro-AUPRC over annotated labels (multi-label)."""
        probabilities = self.predict_proba(X)
        Y = as_targets(y, probabilities.shape[0], self.n_classes_, self.multilabel)
        return classification_score(Y, probabilities, self.multilabel)


def linear_probabilities(Z, kernel, bias, multilabel):
    logits = np.asarray(Z, np.float64) @ kernel + bias
    if multilabel:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def classification_score(Y, probabilities, multilabel):
    """Accuracy (multi-class) or macro-AUPRC over the annotated labels (multi-label, NaN = not annotated):
    :func:`l2i.metrics.auprc`, the one definition the L2I tables use."""
    if not multilabel:
        return accuracy(probabilities, Y)
    Y = np.asarray(Y, dtype=np.float64)
    annotated = ~np.isnan(Y)
    return auprc(np.where(annotated, Y, 0.0), probabilities, average="macro", mask=annotated)


def crossentropy(target, prediction, multilabel):
    """Batch-mean cross-entropy: categorical (softmax outputs) or binary over annotated labels (NaN = unknown);
    :func:`l2i.losses.crossentropy`, the one definition of Eqs. 1-2."""
    return _crossentropy(target, prediction, multilabel)


def softmax_entropy(v, axis=-1):
    """FLINT's entropy of a real vector: ``E(v) = -sum_i p_i log p_i`` with ``p = softmax(v)``."""
    log_p = ops.log_softmax(v, axis=axis)
    return -ops.sum(ops.exp(log_p) * log_p, axis=axis)


@keras.saving.register_keras_serializable(package="l2i", name="baselines_masked_binary_crossentropy")
def masked_binary_crossentropy(y_true, y_pred):
    """Keras loss: binary cross-entropy averaged over the annotated labels (NaN targets count for nothing)."""
    return crossentropy(y_true, y_pred, multilabel=True)


def save_npz(path, **arrays):
    """``np.savez`` written atomically (temporary file, then rename), so an interruption keeps the last one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
