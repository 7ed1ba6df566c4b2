"""Continuous relaxation of top-k chunk selection (Gumbel-softmax, L2X / VIBI) with a hard top-k at inference."""
import keras
from keras import ops

from audiodata.cli import positive_float, positive_int, require

__all__ = ["GumbelTopKSelection"]


@keras.saving.register_keras_serializable(package="l2i")
class GumbelTopKSelection(keras.layers.Layer):
    """Select ``k`` of ``N`` chunks from their logits: relaxed k-hot while training, exact k-hot otherwise.

    Training (``training=True``): ``k`` independent Gumbel-softmax samples of the
    categorical ``p = softmax(logits)`` with temperature ``tau``, combined by an
    element-wise maximum -- the continuous subset sampling of L2X used by VIBI.
    The result lies in ``[0, 1]^N`` and is differentiable in the logits.

    Inference: the ``k`` largest logits give a hard mask with exactly ``k`` ones
    (``ops.top_k`` indices, so ties still select ``k`` distinct chunks).

    Args:
        k: int, number of selected chunks.
        temperature: float > 0, ``tau`` of the Gumbel-softmax.
        seed: int or None, seed of the Gumbel noise.
        **kwargs: ``name``, ``trainable``, ``dtype``.

    Call arguments:
        inputs: logits ``(batch, N)`` with ``N >= k``.
        training: bool.

    Example:

    >>> import numpy as np
    >>> layer = GumbelTopKSelection(k=2)
    >>> keras.ops.convert_to_numpy(layer(np.array([[0.1, 3.0, 2.0, -1.0]], "float32"))).tolist()
    [[0.0, 1.0, 1.0, 0.0]]

    References:
        Bang, Xie, Lee, Wu, Xing, "Explaining a black-box by using a deep variational
        information bottleneck approach", AAAI 2021, Sec. 3 (explainer, relaxation);
        Chen, Song, Wainwright, Jordan, "Learning to explain: an information-theoretic
        perspective on model interpretation" (L2X), ICML 2018, Sec. 3.2;
        Jang, Gu, Poole, "Categorical reparameterization with Gumbel-softmax", ICLR 2017.
    """

    def __init__(self, k, temperature=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.k = require(positive_int, k, "k", strict=True)
        self.temperature = require(positive_float, temperature, "temperature")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] < self.k:
            raise ValueError(f"cannot select k={self.k} of {input_shape[-1]} chunks")

    def call(self, inputs, training=False):
        logits = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if training:
            shape = (ops.shape(logits)[0], self.k, ops.shape(logits)[1])
            uniform = keras.random.uniform(shape, minval=1e-10, maxval=1.0, seed=self.seed_generator,
                                           dtype=logits.dtype)
            gumbel = -ops.log(-ops.log(uniform))
            samples = ops.softmax((ops.expand_dims(logits, 1) + gumbel) / self.temperature, axis=-1)
            return ops.max(samples, axis=1)
        _, indices = ops.top_k(logits, self.k)
        return ops.minimum(ops.sum(ops.one_hot(indices, ops.shape(logits)[-1], dtype=logits.dtype), axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "temperature": self.temperature, "seed": self.seed})
        return config
