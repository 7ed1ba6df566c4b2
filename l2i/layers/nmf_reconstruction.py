"""The NMF reconstruction ``W H`` of L2I's interpreter with a fixed, pre-learned dictionary."""
import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="l2i")
class NMFReconstruction(keras.layers.Layer):
    """Reconstruct a spectrogram as ``W H`` from time activations ``H`` (L2I, Eq. 3).

    The interpreter of L2I predicts an encoding ``H`` [shape=(K, T)] that must
    serve as the time activations of a pre-learned NMF dictionary ``W``
    [shape=(F, K)] (see :func:`l2i.nmf.learn_dictionary`).  This layer holds
    ``W`` as a non-trainable weight named ``"dictionary"`` and returns the
    reconstruction ``W H`` [shape=(F, T)] of every example; the reconstruction
    loss ``||X - W H||_2^2`` is :func:`l2i.losses.nmf_reconstruction_loss`.

    The dictionary is stored twice when the model is saved: as the weight, and
    as a nested list in ``get_config()``, so that ``from_config`` alone (e.g.
    ``keras.models.clone_model``) rebuilds the exact layer rather than one with
    an empty dictionary.

    Args:
        dictionary: array-like of shape ``(F, K)``, finite and non-negative:
            the pre-learned NMF dictionary ``W`` (its columns are used as given;
            :func:`l2i.nmf.learn_dictionary` returns unit-norm columns).
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: tensor of shape ``(batch, K, T)``, the non-negative time
            activations ``H`` (non-negativity is the job of the layer that
            produces them, e.g. a ReLU).

    Returns:
        Tensor of shape ``(batch, F, T)``: ``W H`` for every example.

    Example:

    >>> import numpy as np
    >>> W = np.abs(np.random.default_rng(0).normal(size=(513, 8))).astype("float32")
    >>> layer = NMFReconstruction(W)
    >>> H = np.ones((2, 8, 431), dtype="float32")
    >>> tuple(layer(H).shape)
    (2, 513, 431)

    References:
        Parekh et al., "Tackling Interpretability in Audio Classification
        Networks with Non-negative Matrix Factorization", IEEE/ACM TASLP 2024:
        Eq. 3 (reconstruction ``X ~ W H_I(x)``), Eq. 6 (how ``W`` is learned).
    """

    def __init__(self, dictionary, **kwargs):
        super().__init__(**kwargs)
        array = np.asarray(dictionary, dtype="float64")
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(
                f"dictionary must be a non-empty 2-D array of shape (F, K), got shape {array.shape}"
            )
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError("dictionary must be finite and non-negative (an NMF dictionary, Eq. 6)")
        self._dictionary_value = array.astype("float32")
        self.n_frequencies, self.n_components = array.shape

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"NMFReconstruction expects activations of shape (batch, K, T), got {input_shape}"
            )
        if input_shape[1] is not None and input_shape[1] != self.n_components:
            raise ValueError(
                f"activations have {input_shape[1]} components on axis 1, "
                f"the dictionary has K={self.n_components}"
            )
        self.dictionary = self.add_weight(
            name="dictionary",
            shape=(self.n_frequencies, self.n_components),
            initializer="zeros",
            trainable=False,
        )
        self.dictionary.assign(self._dictionary_value)

    def call(self, inputs):
        dictionary = ops.cast(self.dictionary, inputs.dtype)
        return ops.einsum("fk,bkt->bft", dictionary, inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_frequencies, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"dictionary": self._dictionary_value.tolist()})
        return config
