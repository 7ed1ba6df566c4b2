"""Loss terms of L2I (Parekh et al., 2024, Sec. III-B)."""
import keras
from keras import ops

__all__ = ["nmf_reconstruction_loss"]


@keras.saving.register_keras_serializable(package="l2i")
def nmf_reconstruction_loss(X, X_hat):
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

    Returns
    -------
    loss : scalar tensor
        ``mean_b sum_{f,t} (X[b, f, t] - X_hat[b, f, t])^2``.

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
    X_hat = ops.convert_to_tensor(X_hat)
    X = ops.cast(ops.convert_to_tensor(X), X_hat.dtype)
    squared = ops.square(X - X_hat)
    per_example = ops.sum(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=-1)
    return ops.mean(per_example)
