"""SB-CNN baseline (Salamon & Bello, 2017) as a functional Keras model."""
import keras

from apnet.baselines._validation import check_input_shape, check_n_classes, check_rate


def sb_cnn(
    input_shape,
    n_classes,
    filters=(24, 48, 48),
    kernel_size=(5, 5),
    pool_sizes=((2, 2), (4, 2)),
    dense_units=64,
    dropout_rate=0.5,
    l2=0.001,
    batch_norm=True,
    batch_norm_momentum=0.99,
    name="sb_cnn",
):
    """SB-CNN: three 5x5 convolutions and two dense layers on a log-mel patch.

    Graph (layer names in quotes), for an input ``(T, F)``:

    ``"expand_channels"`` (T, F, 1) → ``"conv1"`` 24 filters 5x5 valid + ReLU →
    ``"maxpool1"`` → ``"batchnorm1"`` → ``"conv2"`` 48 filters 5x5 + ReLU →
    ``"maxpool2"`` → ``"batchnorm2"`` → ``"conv3"`` 48 filters 5x5 + ReLU →
    ``"batchnorm3"`` → ``"flatten"`` → ``"dropout1"`` (0.5) → ``"dense1"`` 64
    ReLU (L2 0.001 on kernel and bias) → ``"dropout2"`` (0.5) → ``"output"``
    ``n_classes`` softmax (L2 0.001).

    The defaults are the configuration APNet's authors trained through the
    DCASE-models library (pooling (2, 2) then (4, 2) over (time, frequency),
    batch normalisation after each block): it reproduces the parameter counts
    of Table 3 of Zinemanas et al. (0.86 M / 1.8 M / 0.17 M on
    UrbanSound8K / Medley-solos-DB / Speech Commands). Salamon & Bello's
    original network pools (4, 2) after both first convolutions and has no
    batch normalisation: ``pool_sizes=((4, 2), (4, 2)), batch_norm=False``.

    Args:
        input_shape: ``(T, F)``, frames x mel bands (time first); both known.
        n_classes: int >= 2, size of the softmax output.
        filters: three ints, filters of the three convolutions.
        kernel_size: kernel of the three convolutions (``"valid"`` padding).
        pool_sizes: two ``(time, frequency)`` max-pooling sizes, after the
            first and the second convolution.
        dense_units: units of the hidden dense layer.
        dropout_rate: rate of both dropout layers, in [0, 1).
        l2: L2 factor on the kernel and bias of both dense layers (0: none).
        batch_norm: whether to add batch normalisation after each block.
        batch_norm_momentum: momentum of the moving mean and variance of
            the batch normalisations (Keras' 0.99, as the authors trained;
            use 0.9 when a run has only a few hundred optimizer steps, or
            the inference-mode statistics stay near their initial values).
        name: model name.

    Returns:
        A functional ``keras.Model``: ``(batch, T, F)`` → ``(batch,
        n_classes)`` softmax probabilities.

    Raises:
        ValueError: bad ``input_shape``/``n_classes``/rates, or an input too
            small for three valid 5x5 convolutions and the two poolings.

    Example:

    >>> from apnet.baselines import sb_cnn
    >>> model = sb_cnn((130, 128), n_classes=10)   # UrbanSound8K, Table 1
    >>> model.count_params()
    856314

    References:
        - Salamon, Bello, "Deep Convolutional Neural Networks and Data
          Augmentation for Environmental Sound Classification", IEEE Signal
          Processing Letters 24(3), 2017, Section III-A.
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3,
          Tables 1 and 3.
    """
    time, freq = check_input_shape(input_shape, "sb_cnn")
    n_classes = check_n_classes(n_classes, "sb_cnn")
    dropout_rate = check_rate(dropout_rate, "dropout_rate", "sb_cnn")
    filters = tuple(int(f) for f in filters)
    kernel_size = tuple(int(k) for k in kernel_size)
    pool_sizes = tuple(tuple(int(p) for p in size) for size in pool_sizes)
    if len(filters) != 3 or len(kernel_size) != 2 or len(pool_sizes) != 2 or any(len(p) != 2 for p in pool_sizes):
        raise ValueError(
            "sb_cnn: expected 3 filters, a 2-d kernel_size and two 2-d pool_sizes; received "
            f"filters={filters!r}, kernel_size={kernel_size!r}, pool_sizes={pool_sizes!r}"
        )
    size = [time, freq]
    for pool in pool_sizes + ((1, 1),):
        size = [(s - k + 1) // p for s, k, p in zip(size, kernel_size, pool)]
        if min(size) < 1:
            raise ValueError(
                f"sb_cnn: input_shape={tuple(input_shape)!r} is too small for three {kernel_size} valid "
                f"convolutions with pool_sizes={pool_sizes!r}"
            )
    regularizer = keras.regularizers.L2(l2) if l2 else None

    inputs = keras.Input(shape=(time, freq), name="input")
    x = keras.layers.Reshape((time, freq, 1), name="expand_channels")(inputs)
    for i, n_filters in enumerate(filters, start=1):
        x = keras.layers.Conv2D(n_filters, kernel_size, padding="valid", activation="relu", name=f"conv{i}")(x)
        if i <= len(pool_sizes):
            x = keras.layers.MaxPooling2D(pool_size=pool_sizes[i - 1], name=f"maxpool{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"batchnorm{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout1")(x)
    x = keras.layers.Dense(
        dense_units, activation="relu", kernel_regularizer=regularizer, bias_regularizer=regularizer, name="dense1"
    )(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout2")(x)
    outputs = keras.layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=regularizer, bias_regularizer=regularizer, name="output"
    )(x)
    return keras.Model(inputs, outputs, name=name)
