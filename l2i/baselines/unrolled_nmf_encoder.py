"""Differentiable NMF encoder: a fixed number of multiplicative sparse-NMF updates of H for a trainable W."""
import keras
from keras import ops

from audiodata.cli import non_negative_float, positive_float, positive_int, require
from l2i.baselines.non_neg_unit_norm import NonNegUnitNorm

__all__ = ["UnrolledNMFEncoder"]


@keras.saving.register_keras_serializable(package="l2i")
class UnrolledNMFEncoder(keras.layers.Layer):
    """Activations ``H`` of a spectrogram for a trainable dictionary ``W``, by ``n_iter`` unrolled updates.

    Starting from ``H_0 = 1``, the layer applies ``n_iter`` times the multiplicative
    update of sparse non-negative coding used by :func:`l2i.nmf.nmf_activations`
    (Hoyer, 2002)::

        H <- H * (W^T X) / (W^T W H + l1 / 2 + eps)

    Every operation is differentiable in ``W``, so a loss on ``H`` (e.g. the
    classification loss of a linear model on ``mean_t H``) trains ``W`` by back-
    propagation through the iterations. This is our approximation of the
    task-driven gradient of Mairal et al. (2012), which differentiates the *exact*
    sparse code through its optimality conditions on the active set: here the code
    is the truncated solver's output, and the same truncated solver is used for
    training and prediction, so the two agree. ``W`` is kept non-negative with
    unit-norm columns by :class:`l2i.baselines.NonNegUnitNorm`, which the optimizer
    applies after every step.

    Input is time-first, ``X`` of shape ``(batch, T, F)``, non-negative (``T`` may be
    None); output ``H`` has shape ``(batch, K, T)`` like L2I's activations.

    Args:
        n_components: int, ``K``.
        n_iter: int, number of unrolled updates (memory of the backward pass grows
            linearly with it: ``batch x T x K`` floats per update).
        l1: float >= 0, sparsity weight ``mu`` (Eq. 6) of the activations.
        eps: float > 0, floor added to the denominator.
        dictionary_initializer: initializer of ``W`` ``(F, K)`` (default uniform in [0, 1),
            then projected); set the NMF dictionary with ``set_weights``.
        dictionary_constraint: constraint of ``W`` (default :class:`NonNegUnitNorm`).
        **kwargs: ``name``, ``trainable``, ``dtype``.

    Call arguments:
        inputs: ``(batch, T, F)`` non-negative spectrogram.

    Example:

    >>> import numpy as np
    >>> layer = UnrolledNMFEncoder(n_components=4, n_iter=10)
    >>> layer(np.ones((2, 7, 16), "float32")).shape
    TensorShape([2, 4, 7])

    References:
        Mairal, Bach, Ponce, "Task-driven dictionary learning", IEEE TPAMI 2012;
        Bisot, Serizel, Essid, Richard, "Feature learning with matrix factorization
        applied to acoustic scene classification", IEEE/ACM TASLP 2017 (TDL with
        non-negativity); Le Roux, Hershey, Weninger, "Deep NMF for speech separation",
        ICASSP 2015 (unfolded multiplicative updates as network layers);
        Hoyer, "Non-negative sparse coding", 2002; Parekh et al., TASLP 2024, Sec. IV-C.
    """

    def __init__(self, n_components, n_iter=30, l1=0.1, eps=1e-8, dictionary_initializer="random_uniform",
                 dictionary_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.n_components = require(positive_int, n_components, "n_components", strict=True)
        self.n_iter = require(positive_int, n_iter, "n_iter", strict=True)
        self.l1 = require(non_negative_float, l1, "l1")
        self.eps = require(positive_float, eps, "eps")
        self.dictionary_initializer = keras.initializers.get(dictionary_initializer)
        self.dictionary_constraint = keras.constraints.get(dictionary_constraint or NonNegUnitNorm())

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError("the number of frequency bins (last input axis) must be known")
        self.dictionary = self.add_weight(
            shape=(int(input_shape[-1]), self.n_components), initializer=self.dictionary_initializer,
            constraint=self.dictionary_constraint, trainable=True, name="dictionary")
        self.dictionary.assign(self.dictionary_constraint(self.dictionary))

    def call(self, inputs):
        x = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        W = ops.cast(self.dictionary, x.dtype)
        numerator = ops.matmul(x, W)  # (batch, T, K) = (W^T X)^T
        gram = ops.matmul(ops.transpose(W), W)  # (K, K)
        H = ops.ones_like(numerator)
        for _ in range(self.n_iter):
            H = H * numerator / (ops.matmul(H, gram) + (self.l1 / 2 + self.eps))
        return ops.transpose(H, (0, 2, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_components, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "n_components": self.n_components,
            "n_iter": self.n_iter,
            "l1": self.l1,
            "eps": self.eps,
            "dictionary_initializer": keras.initializers.serialize(self.dictionary_initializer),
            "dictionary_constraint": keras.constraints.serialize(self.dictionary_constraint),
        })
        return config
