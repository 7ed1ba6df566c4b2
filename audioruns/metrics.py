"""Classification metrics shared by both papers, each defined once.

They know nothing of a dataset: the paper-specific choices (SONYC-UST's 11-threshold AUPRC,
classes left out, OpenMIC-2018's weighted F1, which metric a dataset reports) stay in
:mod:`l2i.metrics`, which builds on these.

* :func:`accuracy` -- argmax of probabilities against class indices or one-hot targets
  (NaN targets, i.e. not annotated, count as 0 as in :func:`l2i.metrics.task_scores`);
* :func:`average_precision` -- AUPRC as scikit-learn's average precision, macro or micro,
  over the annotated labels only (:func:`l2i.metrics.auprc`);
* :func:`top_k_agreement` -- how often the class of one model is among the top ``k`` of
  another (L2I's fidelity of the interpreter to the classifier, :func:`l2i.metrics.top_k_fidelity`);
* :func:`masked_binary_crossentropy` -- binary cross-entropy over the annotated labels only,
  a Keras-ops function usable as a loss (:func:`l2i.losses.masked_binary_crossentropy`).

The first three take NumPy arrays and return a Python number; the last takes tensors or
arrays and returns a scalar tensor.
"""
import warnings

import keras
import numpy as np
from keras import ops

from audiodata.errors import ParameterError
from audioruns.distribute import replica_sum

__all__ = ["accuracy", "average_precision", "masked_binary_crossentropy", "top_k_agreement"]


# --------------------------------------------------------------------------- checks
def _as_matrix(a, name, n_rows=None, n_cols=None):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ParameterError(f"{name} must have shape (N, n_classes), got {a.shape}")
    if (n_rows is not None and a.shape[0] != n_rows) or (n_cols is not None and a.shape[1] != n_cols):
        raise ParameterError(f"{name} must have shape {(n_rows, n_cols)}, got {a.shape}")
    return a


def _kept_classes(n_classes, ignore):
    ignore = np.asarray(list(ignore) if ignore is not None else [], dtype=int)
    if ignore.size and (ignore.min() < 0 or ignore.max() >= n_classes):
        raise ParameterError(f"ignore holds class indices outside [0, {n_classes}): {ignore.tolist()}")
    return np.setdiff1d(np.arange(n_classes), ignore)


def _check_binary(y, name):
    if not np.all(np.isin(y, (0, 1))):
        raise ParameterError(f"{name} must hold only 0 and 1 (binarize probabilities first), got {np.unique(y)[:5]}")
    return y.astype(int)


# --------------------------------------------------------------------------- metrics
def accuracy(probabilities, labels, *, normalize=True):
    """Fraction (or number) of samples whose most probable class is the labelled one.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(N, n_classes)]
        Scores or probabilities; only the argmax of each row is used.
    labels : np.ndarray [shape=(N,)] of int, or [shape=(N, n_classes)]
        Class indices, or one-hot (or probability) targets whose argmax is the class. In
        the latter, NaN (a label not annotated) counts as 0, as :func:`l2i.metrics.task_scores`
        has always done (a row of NaN is class 0).
    normalize : bool, keyword-only
        True: the fraction of correct samples (NaN when ``N == 0``); False: their number
        (as scikit-learn's ``accuracy_score``).

    Returns
    -------
    accuracy : float in [0, 1], or int if not ``normalize``

    Raises
    ------
    audiodata.errors.ParameterError
        ``probabilities`` is not of shape ``(N, n_classes)``, or ``labels`` is neither class
        indices of shape ``(N,)`` nor targets of the shape of ``probabilities``.

    Examples
    --------
    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]))
    0.6666666666666666
    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0, 0.0], [np.nan, 1.0]]), normalize=False)
    2
    """
    probabilities = _as_matrix(probabilities, "probabilities")
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = np.nan_to_num(_as_matrix(labels, "labels", *probabilities.shape)).argmax(axis=1)
    elif labels.shape != probabilities.shape[:1]:
        raise ParameterError(f"labels must have shape ({probabilities.shape[0]},) (class indices) or "
                             f"{probabilities.shape} (one-hot), got {labels.shape}")
    correct = probabilities.argmax(axis=1) == labels
    if not normalize:
        return int(np.sum(correct))
    return float(np.mean(correct)) if correct.size else float("nan")


def average_precision(y_true, y_score, *, average="macro", ignore=(), mask=None):
    """Area under the precision-recall curve as scikit-learn's average precision (AUPRC).

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
        Binary targets.
    y_score : np.ndarray [shape=(N, n_classes)]
        Scores (probabilities).
    average : {'macro', 'micro'}, keyword-only
        'macro': mean of the per-class AP; 'micro': AP of all (sample, class) pairs pooled.
    ignore : sequence of int, keyword-only
        Classes left out entirely.
    mask : np.ndarray [shape=(N, n_classes)] of bool, optional, keyword-only
        Which (sample, class) labels count (the annotated ones); all by default.

    Returns
    -------
    auprc : float
        For 'macro', classes without an (annotated) positive sample (AP undefined)
        are left out with a warning naming them; a class whose samples are all
        positive has AP 1. :class:`~audiodata.errors.ParameterError` when no class has a
        positive.

    Raises
    ------
    audiodata.errors.ParameterError
        Arrays of the wrong shape, ``average`` not ``'macro'`` or ``'micro'``, ``ignore``
        indices outside ``[0, n_classes)``, or no positive label to score.
    """
    from sklearn.metrics import average_precision_score  # scikit-learn only where it is used

    if average not in ("macro", "micro"):
        raise ParameterError(f"average must be 'macro' or 'micro', got {average!r}")
    y_score = _as_matrix(y_score, "y_score")
    y_true = _check_binary(_as_matrix(y_true, "y_true", *y_score.shape), "y_true")
    mask = np.ones(y_true.shape, dtype=bool) if mask is None else _as_matrix(mask, "mask", *y_true.shape).astype(bool)
    keep = _kept_classes(y_true.shape[1], ignore)
    y_true, y_score, mask = y_true[:, keep], y_score[:, keep], mask[:, keep]
    if average == "micro":
        if not y_true[mask].any():
            raise ParameterError("micro-AUPRC is undefined: no positive label in y_true")
        return float(average_precision_score(y_true[mask], y_score[mask]))
    has_pos = np.array([y_true[mask[:, j], j].any() for j in range(y_true.shape[1])], dtype=bool)
    if not has_pos.any():
        raise ParameterError("macro-AUPRC is undefined: no class has a positive label in y_true")
    if not has_pos.all():
        warnings.warn(f"classes {keep[~has_pos].tolist()} have no positive sample; left out of macro-AUPRC",
                      stacklevel=2)
    return float(np.mean([average_precision_score(y_true[mask[:, j], j], y_score[mask[:, j], j])
                          for j in np.flatnonzero(has_pos)]))


def top_k_agreement(reference, scores, *, k=1):
    """Fraction of samples whose class predicted by ``reference`` is among the top ``k`` of ``scores``.

    Parameters
    ----------
    reference : np.ndarray [shape=(N, n_classes)]
        Scores or probabilities of the model whose prediction is the target (only the
        argmax is used; L2I: the classifier ``f``).
    scores : np.ndarray [shape=(N, n_classes)]
        Scores of the model compared with it (L2I: the interpreter ``Theta(H_I(x))``).
    k : int in [1, n_classes], keyword-only

    Returns
    -------
    agreement : float in [0, 1]
        Ties in ``scores`` count in favour: the reference class is in the top ``k``
        when fewer than ``k`` classes score strictly higher.

    Raises
    ------
    audiodata.errors.ParameterError
        Arrays of the wrong shape, or ``k`` not an integer in ``[1, n_classes]``.
    """
    scores = _as_matrix(scores, "scores")
    reference = _as_matrix(reference, "reference", *scores.shape)
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= scores.shape[1]):
        raise ParameterError(f"k must be an integer in [1, {scores.shape[1]}], got {k!r}")
    pred = np.argmax(reference, axis=1)
    score = scores[np.arange(len(pred)), pred]
    rank = (scores > score[:, None]).sum(axis=1)
    return float(np.mean(rank < k))


@keras.saving.register_keras_serializable(package="audioruns")
def masked_binary_crossentropy(y_true, y_pred):
    """Binary cross-entropy averaged over the *annotated* labels only (NaN = not annotated).

    A multi-label dataset may annotate only some classes per clip (OpenMIC-2018); its
    targets hold NaN elsewhere, and those entries count for nothing. Fully annotated
    targets give the ordinary mean binary cross-entropy (mean over classes and examples).
    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` (Keras' epsilon).

    Parameters
    ----------
    y_true : tensor [shape=(batch, C)]
        0/1 targets (or probabilities), NaN where unknown.
    y_pred : tensor [shape=(batch, C)]
        Probabilities (sigmoid outputs).

    Returns
    -------
    loss : scalar tensor
        ``sum(mask * bce) / max(sum(mask), 1)``: 0 when nothing is annotated.

    Examples
    --------
    >>> y = np.array([[1.0, np.nan]], "float32"); p = np.array([[0.5, 0.99]], "float32")
    >>> round(float(masked_binary_crossentropy(y, p)), 4)
    0.6931
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    mask = ops.cast(ops.logical_not(ops.isnan(y_true)), y_pred.dtype)
    y_clean = ops.where(mask > 0, y_true, ops.zeros_like(y_true))
    bce = ops.binary_crossentropy(y_clean, y_pred)
    # the annotated labels of the global batch (every replica's, under TensorFlow's MirroredStrategy: each
    # replica's share of the loss is then its part of the global mean, and Keras sums the replicas' gradients)
    return ops.sum(bce * mask) / ops.maximum(replica_sum(ops.sum(mask)), 1.0)
