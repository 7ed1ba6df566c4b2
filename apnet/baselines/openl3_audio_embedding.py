"""OpenL3 (L3-Net) audio embedding network, mel256 / 512-d flavour, on a precomputed log-mel input."""
import keras

from apnet.baselines._validation import check_input_shape

#: Input of the official mel256 model: 1 s at 48 kHz, hop 242 -> 199 frames, 256 mel bands.
OPENL3_MEL256_INPUT_SHAPE = (199, 256)


def openl3_audio_embedding(input_shape=OPENL3_MEL256_INPUT_SHAPE, weight_decay=1e-5, name="openl3_audio_embedding"):
    """The L3-Net audio sub-network of OpenL3 (mel256 input, 512-d embedding).

    Same layers, order, shapes and weight layout as the ``mel256`` audio
    model of the ``openl3`` package built with ``include_frontend=False``, so
    that :func:`~apnet.baselines.load_openl3_weights` can load the official
    weight files (``openl3_audio_mel256_music.h5``,
    ``openl3_audio_mel256_env.h5``). Graph (layer names in quotes), for an
    input ``(T, F)``:

    ``"to_freq_time"`` (F, T) → ``"expand_channels"`` (F, T, 1) (the official
    network is frequency first) → ``"input_batchnorm"`` → four blocks
    ``b = 1..4`` of ``"block{b}_conv{1,2}"`` 3x3 "same" convolutions (64, 128,
    256, 512 filters, He-normal, L2 ``weight_decay``) each followed by
    ``"block{b}_batchnorm{1,2}"`` and ``"block{b}_relu{1,2}"``, and, for
    blocks 1-3, ``"block{b}_maxpool"`` 2x2 stride 2 — except that the last
    convolution, ``"audio_embedding_layer"``, has no batch normalisation nor
    ReLU (as in OpenL3) — then ``"embedding_pool"``, a global max-pooling to
    the 512-d embedding.

    Differences with the ``openl3`` package:

    - **No Kapre front end.** OpenL3 computes the spectrogram inside the
      model (Kapre layers on 48 kHz audio: 2048-point FFT, hop 242, 256 mel
      bands, decibels relative to the clip's maximum, floored at -80 dB); this
      network takes the precomputed log-mel ``(T, F)`` instead (time first,
      like every model of the package). For the official weights to be
      meaningful the input must follow that recipe (1 s at 48 kHz →
      ``(199, 256)``), not another scaling.
    - **Final pooling.** OpenL3 max-pools the ``(32, 24, 512)`` map of a
      ``(256, 199)`` input with a ``(32, 24)`` window and flattens; a global
      max-pooling gives the same 512 values for that input and still a 512-d
      embedding for other input sizes.

    Args:
        input_shape: ``(T, F)``; both >= 8 (three 2x2 poolings). Default
            ``(199, 256)``, OpenL3's 1 s window.
        weight_decay: L2 factor on the convolution kernels (OpenL3: 1e-5;
            only matters when fine-tuning).
        name: model name.

    Returns:
        A functional ``keras.Model``: ``(batch, T, F)`` → ``(batch, 512)``.

    Example:

    >>> from apnet.baselines import openl3_audio_embedding
    >>> model = openl3_audio_embedding()
    >>> tuple(model.output_shape), model.count_params()
    ((None, 512), 4689860)

    References:
        - Cramer, Wu, Salamon, Bello, "Look, Listen and Learn More: Design
          Choices for Deep Audio Embeddings", ICASSP 2019, Section 3.
        - Arandjelović, Zisserman, "Look, Listen and Learn", ICCV 2017
          (audio sub-network).
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3,
          Table 1.
    """
    time, freq = check_input_shape(input_shape, "openl3_audio_embedding")
    if min(time, freq) < 8:
        raise ValueError(
            f"openl3_audio_embedding: T and F must be >= 8 (three 2x2 poolings); received input_shape={input_shape!r}"
        )
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None

    inputs = keras.Input(shape=(time, freq), name="input")
    x = keras.layers.Permute((2, 1), name="to_freq_time")(inputs)
    x = keras.layers.Reshape((freq, time, 1), name="expand_channels")(x)
    x = keras.layers.BatchNormalization(name="input_batchnorm")(x)
    for block, n_filters in enumerate((64, 128, 256, 512), start=1):
        for j in (1, 2):
            last = block == 4 and j == 2
            x = keras.layers.Conv2D(
                n_filters,
                (3, 3),
                padding="same",
                kernel_initializer="he_normal",
                kernel_regularizer=regularizer,
                name="audio_embedding_layer" if last else f"block{block}_conv{j}",
            )(x)
            if not last:
                x = keras.layers.BatchNormalization(name=f"block{block}_batchnorm{j}")(x)
                x = keras.layers.Activation("relu", name=f"block{block}_relu{j}")(x)
        if block < 4:
            x = keras.layers.MaxPooling2D(pool_size=(2, 2), strides=2, name=f"block{block}_maxpool")(x)
    outputs = keras.layers.GlobalMaxPooling2D(name="embedding_pool")(x)
    return keras.Model(inputs, outputs, name=name)
