"""Prototype layer of APNet: frequency-dependent squared distances to learned prototypes."""
import keras
from keras import ops

from audiodata.cli import positive_int, require


@keras.saving.register_keras_serializable(package="apnet")
class PrototypeLayer(keras.layers.Layer):
    """Squared L2 distances, per latent frequency bin, from each input to M prototypes.

    The layer stores ``M`` trainable prototypes ``P_j`` with the shape of the
    latent representation ``(T', F', C)`` and returns, for every encoded input
    ``Z_i`` and prototype ``P_j``, the squared distance summed over time and
    channels but kept per frequency bin:

    ``D[i, j, f] = sum_{t, c} (Z_i[t, f, c] - P_j[t, f, c]) ** 2``

    which is the argument of the exponential of Eq. 6; summing it over ``f``
    gives ``D_ij`` of Eq. 4 (:func:`apnet.losses.prototype_loss`, Eq. 5, takes
    this sum with ``frequency_reduction="sum"``, the mean over ``f`` by default).
    Apply :class:`apnet.layers.Similarity` to get ``S_ij[f]`` of Eq. 6.

    The distance is computed without materialising the
    ``(batch, M, T', F', C)`` difference tensor, by expanding
    ``||z||^2 - 2 <z, p> + ||p||^2`` per frequency bin (one batched matrix
    product over the ``T' * C`` axis per bin) and clamping at 0 to remove the
    small negative values left by rounding. Memory is ``O(batch * M * F')``
    instead of ``O(batch * M * T' * F' * C)``. The expansion loses relative
    precision when an input is almost equal to a prototype: the absolute error
    is about ``eps * (||z||^2 + ||p||^2)`` per bin (``eps`` the dtype's
    machine epsilon), which is negligible against ``exp(-D)`` in Eq. 6.

    Args:
        n_prototypes: int, number of prototypes ``M``.
        prototypes_initializer: initializer for the prototypes. Defaults to
            ``RandomUniform(-0.05, 0.05)``, the Keras 2 ``"uniform"`` default the
            reference implementation used (wider ranges make ``exp(-D)`` underflow
            to 0 at the start of training).
        prototypes_regularizer: optional regularizer for the prototypes.
        prototypes_constraint: optional constraint for the prototypes.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of shape ``(batch, T', F', C)``, the encoded
            input ``Z`` of Eq. 1.

    Returns:
        Tensor of shape ``(batch, M, F')``: ``D[i, j, f]``, non-negative.

    Example:

    >>> import numpy as np
    >>> from apnet.layers import PrototypeLayer
    >>> z = np.random.rand(4, 21, 32, 32).astype("float32")
    >>> layer = PrototypeLayer(n_prototypes=50)
    >>> tuple(layer(z).shape)
    (4, 50, 32)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 3.3-3.4,
          Eqs. (4)-(6).
        - Li et al., "Deep Learning for Case-Based Reasoning through
          Prototypes", AAAI 2018.
    """

    def __init__(
        self,
        n_prototypes,
        prototypes_initializer=None,
        prototypes_regularizer=None,
        prototypes_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_prototypes = require(positive_int, n_prototypes, "n_prototypes", strict=True)
        if prototypes_initializer is None:
            prototypes_initializer = keras.initializers.RandomUniform(minval=-0.05, maxval=0.05)
        self.prototypes_initializer = keras.initializers.get(prototypes_initializer)
        self.prototypes_regularizer = keras.regularizers.get(prototypes_regularizer)
        self.prototypes_constraint = keras.constraints.get(prototypes_constraint)

    def build(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(
                "PrototypeLayer expects inputs of shape (batch, T', F', C) with known "
                f"T', F' and C; received input_shape={tuple(input_shape)}"
            )
        self.prototypes = self.add_weight(
            name="prototypes",
            shape=(self.n_prototypes,) + tuple(input_shape[1:]),
            initializer=self.prototypes_initializer,
            regularizer=self.prototypes_regularizer,
            constraint=self.prototypes_constraint,
            trainable=True,
        )

    def call(self, inputs):
        z = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        p = ops.cast(self.prototypes, z.dtype)
        # ||z||^2 and ||p||^2 per frequency bin: (batch, F') and (M, F').
        z_sq = ops.sum(ops.square(z), axis=(1, 3))
        p_sq = ops.sum(ops.square(p), axis=(1, 3))
        # <z, p> per frequency bin, contracted over t and c: (batch, M, F').
        cross = ops.einsum("itfc,jtfc->ijf", z, p)
        distances = z_sq[:, None, :] - 2.0 * cross + p_sq[None, :, :]
        return ops.maximum(distances, 0.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_prototypes, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_prototypes": self.n_prototypes,
                "prototypes_initializer": keras.initializers.serialize(self.prototypes_initializer),
                "prototypes_regularizer": keras.regularizers.serialize(self.prototypes_regularizer),
                "prototypes_constraint": keras.constraints.serialize(self.prototypes_constraint),
            }
        )
        return config
