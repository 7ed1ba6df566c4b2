"""Gaussian similarity of APNet: S = exp(-D)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="apnet")
class Similarity(keras.layers.Layer):
    """Elementwise Gaussian similarity ``S = exp(-D)`` of squared distances.

    Turns the frequency-dependent squared distances ``D[i, j, f]`` returned by
    :class:`apnet.layers.PrototypeLayer` into the frequency-dependent
    similarity ``S_ij[f]`` of Eq. 6, in ``(0, 1]``. It has no weights and keeps
    the input shape; it exists as a named, serialisable layer so that the
    similarity can be read from the model with ``get_layer`` (no ``Lambda``).

    Args:
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of any shape, typically ``(batch, M, F')``, of
            non-negative squared distances.

    Returns:
        Tensor of the same shape: ``exp(-inputs)``.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from apnet.layers import Similarity
    >>> d = np.array([[[0.0, 1.0]]], dtype="float32")
    >>> np.round(keras.ops.convert_to_numpy(Similarity()(d)), 4)
    array([[[1.    , 0.3679]]], dtype=float32)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 3.4,
          Eq. (6).
    """

    def call(self, inputs):
        return ops.exp(-ops.convert_to_tensor(inputs, dtype=self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return super().get_config()
