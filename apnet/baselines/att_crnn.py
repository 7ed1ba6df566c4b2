"""Att-CRNN baseline (de Andrade et al., 2018) as a functional Keras model."""
import keras

from apnet.baselines._validation import check_input_shape, check_n_classes
from apnet.baselines.activations import hard_sigmoid_keras2
from apnet.baselines.attention_pooling import AttentionPooling


def att_crnn(
    input_shape,
    n_classes,
    conv_filters=(10, 1),
    conv_kernel_size=(5, 1),
    lstm_units=64,
    dense_units=(64, 32),
    query_position="last",
    batch_norm_momentum=0.99,
    recurrent_activation="hard_sigmoid_keras2",
    name="att_crnn",
):
    """Att-CRNN: time convolutions, two BiLSTMs, dot-product attention, three dense layers.

    Graph (layer names in quotes), for an input ``(T, F)``:

    ``"expand_channels"`` (T, F, 1) → ``"conv1"`` 10 filters (5, 1) "same" +
    ReLU → ``"batchnorm1"`` → ``"conv2"`` 1 filter (5, 1) + ReLU →
    ``"batchnorm2"`` → ``"squeeze_channels"`` (T, F) → ``"bilstm1"``
    Bidirectional(LSTM(64)) → ``"bilstm2"`` Bidirectional(LSTM(64)), both
    returning sequences (T, 128) → ``"attention"``
    (:class:`~apnet.baselines.AttentionPooling`: the query is the dense
    projection of the last vector, its dot product with the sequence is
    softmaxed over time, the output is the weighted sum (128,)) →
    ``"dense1"`` 64 ReLU → ``"dense2"`` 32 (linear, as in the authors' code)
    → ``"output"`` ``n_classes`` softmax.

    The attention weights over time are the second output of the
    ``"attention"`` layer: ``model.get_layer("attention").output[1]``.

    Args:
        input_shape: ``(T, F)``, frames x mel bands (time first); ``T`` may
            be ``None`` (variable length).
        n_classes: int >= 2, size of the softmax output.
        conv_filters: filters of the two convolutions (the last one must be
            1, so that the sequence fed to the LSTMs has ``F`` features).
        conv_kernel_size: kernel of both convolutions, ``(time, frequency)``.
        lstm_units: units of each direction of both LSTMs.
        dense_units: units of the two hidden dense layers.
        query_position: ``"last"`` or ``"middle"``, see
            :class:`~apnet.baselines.AttentionPooling`.
        batch_norm_momentum: momentum of the moving mean and variance of
            both batch normalisations (Keras' 0.99 by default; 0.9 for runs
            of only a few hundred optimizer steps).
        recurrent_activation: gate activation of the LSTMs. The default,
            ``"hard_sigmoid_keras2"`` (:func:`apnet.baselines.activations.hard_sigmoid_keras2`,
            ``clip(0.2 x + 0.5, 0, 1)``), is Keras 2's LSTM default, which the
            authors' models used; ``"sigmoid"`` is Keras 3's default (and the
            one cuDNN kernels need).
        name: model name.

    Returns:
        A functional ``keras.Model``: ``(batch, T, F)`` → ``(batch,
        n_classes)`` softmax probabilities.

    Raises:
        ValueError: bad ``input_shape``, ``n_classes`` or ``query_position``,
            or a last convolution with more than one filter.

    Example:

    >>> from apnet.baselines import att_crnn
    >>> model = att_crnn((63, 80), n_classes=35)   # Speech Commands, Table 1
    >>> model.count_params()
    201214

    References:
        - de Andrade, Leo, Da Silva Viana, Bernkopf, "A neural attention model
          for speech command recognition", arXiv:1808.08929, 2018, Section 3,
          Fig. 1.
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3,
          Tables 1 and 3.
    """
    time, freq = check_input_shape(input_shape, "att_crnn", allow_none_time=True)
    if recurrent_activation == "hard_sigmoid_keras2":
        recurrent_activation = hard_sigmoid_keras2
    n_classes = check_n_classes(n_classes, "att_crnn")
    conv_filters = tuple(int(f) for f in conv_filters)
    dense_units = tuple(int(u) for u in dense_units)
    if len(conv_filters) != 2 or conv_filters[-1] != 1:
        raise ValueError(
            f"att_crnn: conv_filters must be two ints, the last one 1; received conv_filters={conv_filters!r}"
        )
    if len(dense_units) != 2:
        raise ValueError(f"att_crnn: dense_units must be two ints; received dense_units={dense_units!r}")

    inputs = keras.Input(shape=(time, freq), name="input")
    x = keras.layers.Reshape((-1, freq, 1), name="expand_channels")(inputs)
    for i, n_filters in enumerate(conv_filters, start=1):
        x = keras.layers.Conv2D(n_filters, conv_kernel_size, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"batchnorm{i}")(x)
    x = keras.layers.Reshape((-1, freq), name="squeeze_channels")(x)
    for i in (1, 2):
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(lstm_units, return_sequences=True, recurrent_activation=recurrent_activation,
                              name=f"lstm{i}"),
            name=f"bilstm{i}",
        )(x)
    x, _ = AttentionPooling(query_position=query_position, return_attention_scores=True, name="attention")(x)
    x = keras.layers.Dense(dense_units[0], activation="relu", name="dense1")(x)
    x = keras.layers.Dense(dense_units[1], name="dense2")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)
