"""VIBI (Bang et al., AAAI 2021): black-box explainer selecting k time-frequency chunks + approximator."""
import math

import keras
import numpy as np
from keras import ops

from audiodata.cli import non_negative_float, positive_int, require
from l2i.baselines._common import crossentropy
from l2i.baselines.gumbel_top_k_selection import GumbelTopKSelection
from l2i.classifier import check_input_statistics
from l2i.trainer import InterpreterModel

__all__ = ["VIBI"]


@keras.saving.register_keras_serializable(package="l2i")
class VIBI(InterpreterModel):
    """Variational information bottleneck for interpretation, on a time-first log-mel input.

    VIBI treats the classifier ``f`` as a black box and only needs its outputs.

    * **Explainer** ``p(z | x)``: two 3x3 convolutions + ReLU on the (standardised)
      input, average pooling onto a grid of ``chunk_size`` time-frequency chunks and a
      1x1 convolution give one logit per chunk; ``p = softmax(logits)`` over the
      ``N = ceil(T / c_t) * ceil(F / c_f)`` chunks (output ``"selection"``).
    * **Selection** (:class:`l2i.baselines.GumbelTopKSelection`): while training, a
      relaxed k-hot sample (k Gumbel-softmax draws combined by a maximum); at inference,
      the exact top-``k`` chunks (output ``"mask"`` ``(batch, n_t, n_f)``, exactly ``k``
      ones). The chunk mask is upsampled to ``(T, F)`` and multiplies the input (``x * z``).
    * **Approximator** ``q(y | x * z)``: three 3x3 convolutions (+ ReLU, 2x2 max pooling
      between them), global max pooling, a linear layer and a softmax (sigmoid for
      multi-label) -- output ``"approximation"``, the surrogate of ``f`` whose
      agreement with ``f`` is the fidelity of Table IV.

    Training (``fit(x, f(x))``, the teacher's probabilities as targets) minimises the
    information-bottleneck objective of VIBI::

        L = CE(f(x), q(y | x * z)) + beta * KL(p(z | x) || r(z)),   r = uniform over chunks

    with ``KL = sum_n p_n log p_n + log N``; the terms are logged as
    ``fidelity_loss`` and ``kl_loss``.

    Args:
        input_shape: pair ``(T, F)`` (frames, mel bands).
        n_classes: int, ``C``.
        k: int, number of chunks kept.
        chunk_size: pair ``(c_t, c_f)``, frames and bands of one chunk.
        beta: float >= 0, weight of the KL term.
        temperature: float > 0, Gumbel-softmax temperature.
        multilabel: bool, sigmoid output and binary cross-entropy.
        explainer_filters, approximator_filters: int, channels of the convolutions.
        input_mean, input_std: optional per-band statistics (``F`` floats each); the
            input is standardised by a ``Normalization`` layer (``"input_normalization"``)
            before masking, so a removed chunk is set to the band mean.
        seed: int or None, seed of the Gumbel noise.
        **kwargs: ``name``, ``trainable``.

    Example:

    >>> import numpy as np
    >>> model = VIBI(input_shape=(32, 16), n_classes=3, k=2, chunk_size=(8, 8), explainer_filters=4,
    ...              approximator_filters=4)
    >>> out = model.predict(np.zeros((2, 32, 16), "float32"), verbose=0)
    >>> out["approximation"].shape, out["mask"].shape, out["mask"].sum(axis=(1, 2)).tolist()
    ((2, 3), (2, 4, 2), [2.0, 2.0])

    References:
        Bang, Xie, Lee, Wu, Xing, "Explaining a black-box by using a deep variational
        information bottleneck approach", AAAI 2021, Eq. 3-6 (objective), Sec. 3
        (explainer, approximator, continuous relaxation); Parekh et al., IEEE/ACM
        TASLP 2024, Sec. IV-C and Table IV (VIBI as a post-hoc fidelity baseline).
    """

    LOSS_TERMS = ("fidelity", "kl")

    def __init__(self, input_shape, n_classes, k=8, chunk_size=(16, 16), beta=0.01, temperature=0.5,
                 multilabel=False, explainer_filters=32, approximator_filters=32, input_mean=None, input_std=None,
                 seed=None, **kwargs):
        shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else ()
        if len(shape) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise ValueError(f"`input_shape` must be a pair of positive ints (T, F); "
                             f"received input_shape={input_shape!r}")
        chunk = tuple(chunk_size) if isinstance(chunk_size, (list, tuple)) else ()
        if len(chunk) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in chunk):
            raise ValueError(f"`chunk_size` must be a pair of positive ints; received chunk_size={chunk_size!r}")
        require(positive_int, n_classes, "n_classes", strict=True)
        n_frames, n_bands = shape
        grid = (math.ceil(n_frames / chunk[0]), math.ceil(n_bands / chunk[1]))
        require(positive_int, k, "k", strict=True)
        if k > grid[0] * grid[1]:
            raise ValueError(f"`k`={k} exceeds the {grid[0] * grid[1]} chunks of a {shape} input "
                             f"with chunk_size={chunk}")
        require(non_negative_float, beta, "beta")
        require(positive_int, explainer_filters, "explainer_filters", strict=True)
        require(positive_int, approximator_filters, "approximator_filters", strict=True)
        input_mean, input_std = check_input_statistics(input_mean, input_std, n_bands)

        inputs = keras.Input(shape=shape, name="mel")
        x = inputs
        if input_mean is not None:
            x = keras.layers.Normalization(axis=-1, mean=input_mean, variance=np.square(input_std).tolist(),
                                           name="input_normalization")(x)
        x = keras.layers.Reshape((n_frames, n_bands, 1), name="add_channel")(x)
        # Explainer p(z | x).
        e = keras.layers.Conv2D(explainer_filters, 3, padding="same", activation="relu", name="explainer_conv1")(x)
        e = keras.layers.Conv2D(explainer_filters, 3, padding="same", activation="relu", name="explainer_conv2")(e)
        e = keras.layers.AveragePooling2D(chunk, padding="same", name="explainer_chunk_pool")(e)
        e = keras.layers.Conv2D(1, 1, name="explainer_chunk_logits")(e)
        logits = keras.layers.Reshape((grid[0] * grid[1],), name="explainer_logits")(e)
        selection = keras.layers.Activation("softmax", name="selection")(logits)
        # Relaxed (training) or hard (inference) k-hot chunk mask, upsampled onto the input.
        z = GumbelTopKSelection(k, temperature=temperature, seed=seed, name="chunk_selection")(logits)
        mask = keras.layers.Reshape(grid, name="mask")(z)
        m = keras.layers.Reshape((*grid, 1), name="mask_add_channel")(z)
        m = keras.layers.UpSampling2D(chunk, name="mask_upsample")(m)
        m = keras.layers.Cropping2D(((0, grid[0] * chunk[0] - n_frames), (0, grid[1] * chunk[1] - n_bands)),
                                    name="mask_crop")(m)
        masked = keras.layers.Multiply(name="masked_input")([x, m])
        # Approximator q(y | x * z).
        a = masked
        for i in range(1, 4):
            a = keras.layers.Conv2D(approximator_filters, 3, padding="same", activation="relu",
                                    name=f"approximator_conv{i}")(a)
            if i < 3:
                a = keras.layers.MaxPooling2D(2, padding="same", name=f"approximator_pool{i}")(a)
        a = keras.layers.GlobalMaxPooling2D(name="approximator_global_pool")(a)
        a = keras.layers.Dense(n_classes, name="approximator_linear")(a)
        approximation = keras.layers.Activation("sigmoid" if multilabel else "softmax", name="approximation")(a)
        super().__init__(inputs=inputs, outputs={"approximation": approximation, "selection": selection,
                                                 "mask": mask}, **kwargs)

        self.spectrogram_shape = shape
        self.n_classes = int(n_classes)
        self.k = int(k)
        self.chunk_size = chunk
        self.grid = grid
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.multilabel = bool(multilabel)
        self.explainer_filters = int(explainer_filters)
        self.approximator_filters = int(approximator_filters)
        self.input_mean = input_mean
        self.input_std = input_std
        self.seed = seed

    def loss_terms(self, y, y_pred, *, x=None):
        """``{"fidelity": CE(f(x), q), "kl": KL(p(z|x) || uniform)}`` (batch means) and the total."""
        approximation = y_pred["approximation"]
        fidelity = crossentropy(ops.cast(y, approximation.dtype), approximation, self.multilabel)
        p = y_pred["selection"]
        n_chunks = self.grid[0] * self.grid[1]
        kl = ops.mean(ops.sum(p * ops.log(ops.maximum(p, 1e-12)), axis=-1)) + math.log(n_chunks)
        return {"fidelity": fidelity, "kl": kl}, fidelity + self.beta * kl

    def constructor_config(self):
        return {
            "input_shape": list(self.spectrogram_shape),
            "n_classes": self.n_classes,
            "k": self.k,
            "chunk_size": list(self.chunk_size),
            "beta": self.beta,
            "temperature": self.temperature,
            "multilabel": self.multilabel,
            "explainer_filters": self.explainer_filters,
            "approximator_filters": self.approximator_filters,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
            "seed": self.seed,
        }
