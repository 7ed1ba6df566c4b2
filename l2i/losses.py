"""Loss terms of L2I (Parekh et al., 2024, Sec. III-B), the one implementation of each.

* :func:`nmf_reconstruction_loss` -- ``L_NMF`` (Eq. 3): the sum of Eq. 3 (``reduction="sum"``)
  or its mean per time-frequency bin (``reduction="mean"``, the scale of Tables VI-VII, used by
  training and evaluation);
* :func:`masked_binary_crossentropy` -- binary cross-entropy over the annotated labels only
  (OpenMIC-2018), the multi-label classification and fidelity loss
  (:func:`audioruns.metrics.masked_binary_crossentropy`, saved in model files under this name);
* :func:`crossentropy` -- ``L_FID`` / the classification loss: Eq. 1 (multi-class) or Eq. 2
  (multi-label, :func:`masked_binary_crossentropy`), batch mean.

They take Keras tensors or NumPy arrays (evaluation calls them on NumPy predictions) and return
a scalar tensor (``float(...)`` for a number).
"""
import keras
from keras import ops

from audioruns.metrics import masked_binary_crossentropy as _masked_binary_crossentropy

__all__ = ["crossentropy", "masked_binary_crossentropy", "nmf_reconstruction_loss"]


@keras.saving.register_keras_serializable(package="l2i")
def nmf_reconstruction_loss(X, X_hat, reduction="sum"):
    """Reconstruction loss ``L_NMF`` of L2I, Eq. 3, averaged over the batch.

    ``L_NMF(x) = ||X - W H_I(x)||_2^2``: the squared Frobenius norm of the
    difference between the input log-magnitude spectrogram ``X`` and its NMF
    reconstruction ``X_hat = W H_I(x)`` (the output of
    :class:`l2i.layers.NMFReconstruction`), summed over frequencies and frames
    -- not averaged, as in the paper, so the weight ``alpha`` of Eq. 4 keeps its
    meaning -- then averaged over the examples of the batch.

    Parameters
    ----------
    X : tensor [shape=(batch, F, T)]
        Target log-magnitude spectrograms (``y_true`` when used as a Keras loss).
    X_hat : tensor [shape=(batch, F, T)]
        Reconstructions ``W H`` (``y_pred``).
    reduction : {'sum', 'mean'}
        'sum' (default): Eq. 3 as written, summed over the bins. 'mean': the mean
        per bin, ``mean_{b,f,t}``, i.e. the 'sum' value divided by ``F * T``: the
        scale of the paper's reported ``L_NMF`` (Tables VI-VII), used by
        :class:`l2i.trainer.L2ITrainer` and the evaluation (``test_nmf_loss``).

    Returns
    -------
    loss : scalar tensor
        ``mean_b sum_{f,t} (X[b, f, t] - X_hat[b, f, t])^2`` ('sum') or
        ``mean_{b,f,t} (X[b, f, t] - X_hat[b, f, t])^2`` ('mean').

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((2, 3, 4), "float32"); X_hat = np.zeros((2, 3, 4), "float32")
    >>> float(nmf_reconstruction_loss(X, X_hat))
    12.0

    References
    ----------
    Parekh et al., IEEE/ACM TASLP 2024, Eq. 3 (``L_NMF``) and Eq. 4 (its weight
    ``alpha`` in the training loss).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"`reduction` must be 'sum' or 'mean'; received reduction={reduction!r}")
    X_hat = ops.convert_to_tensor(X_hat)
    X = ops.cast(ops.convert_to_tensor(X), X_hat.dtype)
    squared = ops.square(X - X_hat)
    if reduction == "mean":
        return ops.mean(squared)
    per_example = ops.sum(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=-1)
    return ops.mean(per_example)


@keras.saving.register_keras_serializable(package="l2i")
def masked_binary_crossentropy(y_true, y_pred):
    """Binary cross-entropy averaged over the *annotated* labels only (NaN = not annotated).

    OpenMIC-2018 annotates only some instruments per clip (``label_mask``); the
    targets of :func:`l2i.training.load_fold` hold NaN elsewhere, and those entries
    count for nothing. Fully annotated targets give the ordinary mean binary
    cross-entropy (Eq. 2: mean over classes and examples). Probabilities are
    clipped to ``[1e-7, 1 - 1e-7]`` (Keras' epsilon). The run layer's
    :func:`audioruns.metrics.masked_binary_crossentropy`, registered here as
    ``l2i>masked_binary_crossentropy`` so that saved models keep loading.

    Parameters
    ----------
    y_true : tensor [shape=(batch, C)]
        0/1 targets (or probabilities, for ``L_FID``), NaN where unknown.
    y_pred : tensor [shape=(batch, C)]
        Probabilities (sigmoid outputs).

    Returns
    -------
    loss : scalar tensor
        ``sum(mask * bce) / max(sum(mask), 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1.0, np.nan]], "float32"); p = np.array([[0.5, 0.99]], "float32")
    >>> round(float(masked_binary_crossentropy(y, p)), 4)
    0.6931
    """
    return _masked_binary_crossentropy(y_true, y_pred)


def crossentropy(target, prediction, multilabel):
    """Eq. 1 (multi-class: categorical cross-entropy summed over classes) or Eq. 2 (multi-label:
    :func:`masked_binary_crossentropy`, mean over annotated classes); batch mean.

    ``L_FID`` is ``crossentropy(f(x), Theta(H), multilabel)``; the classification loss
    ``crossentropy(y, f(x), multilabel)``.

    Parameters
    ----------
    target : tensor [shape=(batch, C)]
        Probabilities or 0/1 labels (NaN = not annotated, multi-label only).
    prediction : tensor [shape=(batch, C)]
        Softmax (multi-class) or sigmoid (multi-label) outputs.
    multilabel : bool

    Returns
    -------
    loss : scalar tensor
    """
    if multilabel:
        return masked_binary_crossentropy(target, prediction)
    prediction = ops.convert_to_tensor(prediction)
    target = ops.cast(ops.convert_to_tensor(target), prediction.dtype)
    return ops.mean(keras.losses.categorical_crossentropy(target, prediction))
