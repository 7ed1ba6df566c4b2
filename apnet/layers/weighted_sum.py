"""Weighted sum layer of APNet: learnable per-prototype weights over frequency."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="apnet")
class WeightedSum(keras.layers.Layer):
    """Integrates the frequency axis of the similarity with a learnable kernel.

    Computes ``S_hat[i, j] = sum_f H[j, f] * S[i, j, f]`` (Eq. 7), with a
    trainable kernel ``H`` of shape ``(M, F')``: one weight per prototype and
    latent frequency bin. By default ``H`` starts at ``1 / F'`` everywhere
    (equal weights, i.e. the mean over frequency), as in the paper.

    Args:
        kernel_initializer: initializer for ``H``. ``None`` (default) means
            the constant ``1 / F'`` of Section 3.4.
        kernel_regularizer: optional regularizer for ``H``.
        kernel_constraint: optional constraint for ``H`` (e.g.
            ``"non_neg"``).
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of shape ``(batch, M, F')``, the
            frequency-dependent similarity ``S`` of Eq. 6.

    Returns:
        Tensor of shape ``(batch, M)``: ``S_hat`` of Eq. 7.

    Example:

    >>> import numpy as np
    >>> from apnet.layers import WeightedSum
    >>> s = np.ones((2, 50, 32), dtype="float32")
    >>> out = WeightedSum()(s)  # mean over frequency at initialisation
    >>> tuple(out.shape)
    (2, 50)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 3.4,
          Eq. (7).
    """

    def __init__(self, kernel_initializer=None, kernel_regularizer=None, kernel_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = (
            None if kernel_initializer is None else keras.initializers.get(kernel_initializer)
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "WeightedSum expects inputs of shape (batch, M, F') with known M and F'; "
                f"received input_shape={tuple(input_shape)}"
            )
        n_prototypes, n_freqs = input_shape[1], input_shape[2]
        initializer = self.kernel_initializer
        if initializer is None:
            initializer = keras.initializers.Constant(1.0 / n_freqs)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(n_prototypes, n_freqs),
            initializer=initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=True,
        )

    def call(self, inputs):
        s = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        return ops.sum(s * ops.cast(self.kernel, s.dtype)[None, :, :], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_initializer": (
                    None
                    if self.kernel_initializer is None
                    else keras.initializers.serialize(self.kernel_initializer)
                ),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            }
        )
        return config
