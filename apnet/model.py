"""APNet: the audio prototype network of Zinemanas et al. (Electronics 2021) as one functional model."""
import keras

from apnet.initializers import PrototypeClassKernel, reference_prototypes_initializer
from apnet.layers import LeakyReLU, MaskedMaxPooling2D, MaskedUpsampling, PrototypeLayer, Similarity, WeightedSum
from audiodata.cli import positive_int, require

#: Names of the model outputs, in order (keys for ``compile(loss={...})`` and the targets).
OUTPUT_NAMES = ("probabilities", "reconstruction", "prototypes")


def _weighted_sum_constraint(unit_norm):
    """The reference implementation keeps each frequency column of H at unit norm over the
    prototypes (``UnitNorm(axis=0)``); the paper only says H starts at 1/F' (Section 3.4)."""
    return keras.constraints.UnitNorm(axis=0) if unit_norm else None


@keras.saving.register_keras_serializable(package="apnet")
class APNet(keras.Model):
    """Audio Prototype Network: autoencoder + prototype classifier (Figure 1).

    The input is a (min-max scaled, see Section 3.2) log-mel spectrogram ``X`` of shape
    ``(T, F)``.

    * Encoder ``f`` (Eq. 1, Figure 2): three ``kernel_size`` x ``kernel_size`` Conv2D
      layers with ``n_filters`` channels, ``padding="same"`` and leaky ReLU, with a 2x2
      :class:`~apnet.layers.MaskedMaxPooling2D` after the first two. The latent ``Z`` has
      shape ``(T', F', C) = (ceil(T / 4), ceil(F / 4), C)``.
    * Decoder ``g`` (Eq. 2): transposed convolutions mirroring the encoder; the two
      :class:`~apnet.layers.MaskedUpsampling` layers use the encoder's pooling masks
      (SegNet), which also crops odd sizes back, and the last layer (one channel) has a
      tanh so that the reconstruction is in ``[-1, 1]`` like the scaled input.
    * Classifier: :class:`~apnet.layers.PrototypeLayer` (``M`` prototypes, distances per
      latent frequency, Eqs. 4 and 6) -> :class:`~apnet.layers.Similarity` (Eq. 6) ->
      :class:`~apnet.layers.WeightedSum` (Eq. 7) -> Dense without bias + softmax (Eq. 8).
      The Dense kernel starts from :func:`apnet.initializers.prototype_class_kernel`
      (each prototype votes for one class) unless ``dense_kernel_initializer`` says
      otherwise.

    Outputs (names in :data:`OUTPUT_NAMES`): ``probabilities`` ``(batch, K)`` for
    ``l_c`` (Eq. 9), ``reconstruction`` ``(batch, T, F)`` for ``l_r`` (Eq. 3) and
    ``prototypes`` -- the distances ``(batch, M, F')`` -- for ``l_p`` (Eq. 5,
    :class:`apnet.losses.PrototypeLoss`); weight them with ``(alpha, beta, gamma)`` of
    Eq. 10 in ``compile(loss_weights=...)`` (see :func:`apnet.training.compile_apnet`).

    Every layer is named, so explanation sub-models come from ``get_layer``:
    :meth:`encoder`, :meth:`decoder` and :meth:`classifier`.

    Args:
        input_shape: pair ``(T, F)``, time frames and mel bands of the input.
        n_classes: int, ``K``.
        n_prototypes: int, ``M`` (Table 2).
        n_filters: int, ``C``, channels of every convolutional layer (Table 2).
        kernel_size: int, side of the square convolution kernels (5 in the paper).
        pool_size: int, side of the max-pooling windows (2 in the paper).
        negative_slope: float, slope of the leaky ReLU for negative inputs (0.3, the
            Keras default the reference implementation used).
        prototypes_initializer: initializer of the prototypes; ``None`` means
            ``U(-0.05, 0.05)`` (:func:`apnet.initializers.reference_prototypes_initializer`;
            wider ranges make ``exp(-D)`` underflow to 0 at the start).
        dense_kernel_initializer: initializer of the ``(M, K)`` kernel ``W`` of Eq. 8;
            ``None`` means :class:`apnet.initializers.PrototypeClassKernel` with
            ``noise=0.1`` (Section 3.5 trick, see
            :func:`apnet.initializers.prototype_class_kernel`).
        unit_norm_weighted_sum: bool, keep each frequency column of the weighted-sum
            kernel ``H`` at unit norm over the prototypes, as the reference implementation
            does (``UnitNorm(axis=0)``); the paper does not mention it.
        **kwargs: ``name``, ``trainable``, ``dtype`` of :class:`keras.Model`.

    Example:

    >>> import numpy as np
    >>> from apnet import APNet
    >>> model = APNet(input_shape=(64, 64), n_classes=10, n_prototypes=20, n_filters=8)
    >>> probs, reconstruction, distances = model(np.zeros((2, 64, 64), "float32"))
    >>> tuple(probs.shape), tuple(reconstruction.shape), tuple(distances.shape)
    ((2, 10), (2, 64, 64), (2, 20, 16))

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic Sound
          Classification", Electronics 2021, Section 3, Eqs. (1)-(10), Figures 1-2.
        - Li et al., "Deep Learning for Case-Based Reasoning through Prototypes", AAAI 2018.
    """

    def __init__(
        self,
        input_shape,
        n_classes,
        n_prototypes=50,
        n_filters=32,
        kernel_size=5,
        pool_size=2,
        negative_slope=0.3,
        prototypes_initializer=None,
        dense_kernel_initializer=None,
        unit_norm_weighted_sum=True,
        **kwargs,
    ):
        # 1. Validate the arguments.
        shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else ()
        if len(shape) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise ValueError(f"`input_shape` must be a pair of positive ints (T, F); received input_shape={input_shape!r}")
        n_classes = require(positive_int, n_classes, "n_classes", strict=True)
        n_prototypes = require(positive_int, n_prototypes, "n_prototypes", strict=True)
        n_filters = require(positive_int, n_filters, "n_filters", strict=True)
        kernel_size = require(positive_int, kernel_size, "kernel_size", strict=True)
        pool_size = require(positive_int, pool_size, "pool_size", strict=True)
        if negative_slope < 0:
            raise ValueError(f"`negative_slope` must be >= 0; received negative_slope={negative_slope!r}")
        if prototypes_initializer is None:
            prototypes_initializer = reference_prototypes_initializer()
        if dense_kernel_initializer is None:
            dense_kernel_initializer = PrototypeClassKernel(noise=0.1)
        dense_kernel_initializer = keras.initializers.get(dense_kernel_initializer)
        n_frames, n_bands = shape

        # 2. Build the graph.
        def conv(name, filters=n_filters):
            return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name)

        def deconv(name, filters=n_filters):
            return keras.layers.Conv2DTranspose(filters, kernel_size, padding="same", name=name)

        def leaky(name):
            return LeakyReLU(negative_slope=negative_slope, name=name)

        inputs = keras.Input(shape=shape, name="input")
        x = keras.layers.Reshape((n_frames, n_bands, 1), name="add_channel")(inputs)
        x = leaky("encoder_act1")(conv("encoder_conv1")(x))
        x, mask1 = MaskedMaxPooling2D(pool_size, name="pool1")(x)
        x = leaky("encoder_act2")(conv("encoder_conv2")(x))
        x, mask2 = MaskedMaxPooling2D(pool_size, name="pool2")(x)
        latent = leaky("latent")(conv("encoder_conv3")(x))

        y = deconv("decoder_conv1")(latent)
        y = leaky("decoder_act1")(MaskedUpsampling(pool_size, name="unpool2")([y, mask2]))
        y = deconv("decoder_conv2")(y)
        y = leaky("decoder_act2")(MaskedUpsampling(pool_size, name="unpool1")([y, mask1]))
        y = deconv("decoder_conv3", filters=1)(y)
        y = keras.layers.Activation("tanh", name="decoder_tanh")(y)
        reconstruction = keras.layers.Reshape((n_frames, n_bands), name="reconstruction")(y)

        distances = PrototypeLayer(
            n_prototypes, prototypes_initializer=prototypes_initializer, name="prototypes"
        )(latent)
        similarity = Similarity(name="similarity")(distances)
        weighted = WeightedSum(kernel_constraint=_weighted_sum_constraint(unit_norm_weighted_sum),
                               name="weighted_sum")(similarity)
        logits = keras.layers.Dense(
            n_classes, use_bias=False, kernel_initializer=dense_kernel_initializer, name="dense"
        )(weighted)
        probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)

        # 3. Initialise the functional model.
        kwargs.setdefault("name", "apnet")
        super().__init__(inputs=inputs, outputs=[probabilities, reconstruction, distances], **kwargs)

        # 4. Store the configuration.
        self.spectrogram_shape = shape
        self.n_classes = n_classes
        self.n_prototypes = n_prototypes
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.negative_slope = negative_slope
        self.unit_norm_weighted_sum = bool(unit_norm_weighted_sum)
        self.prototypes_initializer = self.get_layer("prototypes").prototypes_initializer
        self.dense_kernel_initializer = dense_kernel_initializer

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.spectrogram_shape),
            "n_classes": self.n_classes,
            "n_prototypes": self.n_prototypes,
            "n_filters": self.n_filters,
            "kernel_size": self.kernel_size,
            "pool_size": self.pool_size,
            "negative_slope": self.negative_slope,
            "unit_norm_weighted_sum": self.unit_norm_weighted_sum,
            "prototypes_initializer": keras.initializers.serialize(self.prototypes_initializer),
            "dense_kernel_initializer": keras.initializers.serialize(self.dense_kernel_initializer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("prototypes_initializer", "dense_kernel_initializer"):
            config[key] = keras.initializers.deserialize(config[key])
        return cls(**config)

    # ------------------------------------------------------------------ sub-models
    @property
    def latent_shape(self):
        """``(T', F', C)``, the shape of the encoded input ``Z`` (Eq. 1)."""
        return tuple(self.get_layer("latent").output.shape[1:])

    def encoder(self):
        """The encoder ``f`` (Eq. 1): input ``X`` -> ``[Z, mask1, mask2]``.

        The masks are those of the two pooling layers; :meth:`decoder` needs them.
        """
        mask1 = self.get_layer("pool1").output[1]
        mask2 = self.get_layer("pool2").output[1]
        return keras.Model(self.inputs[0], [self.get_layer("latent").output, mask1, mask2], name="encoder")

    def decoder(self):
        """The decoder ``g`` (Eq. 2): ``[Z, mask1, mask2]`` -> reconstruction ``(batch, T, F)``.

        Shares its layers (and weights) with this model.
        """
        latent = keras.Input(shape=self.latent_shape, name="latent_input")
        mask1 = keras.Input(shape=tuple(self.get_layer("pool1").output[1].shape[1:]), name="mask1_input")
        mask2 = keras.Input(shape=tuple(self.get_layer("pool2").output[1].shape[1:]), name="mask2_input")
        y = self.get_layer("decoder_conv1")(latent)
        y = self.get_layer("decoder_act1")(self.get_layer("unpool2")([y, mask2]))
        y = self.get_layer("decoder_conv2")(y)
        y = self.get_layer("decoder_act2")(self.get_layer("unpool1")([y, mask1]))
        y = self.get_layer("decoder_tanh")(self.get_layer("decoder_conv3")(y))
        reconstruction = self.get_layer("reconstruction")(y)
        return keras.Model([latent, mask1, mask2], reconstruction, name="decoder")

    def classifier(self):
        """The classifier: latent ``Z`` -> ``[probabilities, S_hat, S]`` (Eqs. 6-8).

        ``S`` is the frequency-dependent similarity ``(batch, M, F')`` of Eq. 6 and
        ``S_hat`` its weighted sum ``(batch, M)`` of Eq. 7. Shares its layers (and
        weights) with this model.
        """
        latent = keras.Input(shape=self.latent_shape, name="latent_input")
        similarity = self.get_layer("similarity")(self.get_layer("prototypes")(latent))
        weighted = self.get_layer("weighted_sum")(similarity)
        probabilities = self.get_layer("probabilities")(self.get_layer("dense")(weighted))
        return keras.Model(latent, [probabilities, weighted, similarity], name="classifier")
