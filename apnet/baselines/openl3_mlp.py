"""The MLP classifier trained on OpenL3 embeddings (APNet's third baseline)."""
import numbers

import keras

from apnet.baselines._validation import check_n_classes, check_rate


def openl3_mlp(input_shape=(512,), n_classes=10, hidden_units=(512, 128), dropout_rate=0.5, name="openl3_mlp"):
    """Two-hidden-layer perceptron on fixed 512-d OpenL3 embeddings.

    Graph (layer names in quotes): ``"dense1"`` 512 ReLU → ``"dropout1"``
    (0.5) → ``"dense2"`` 128 ReLU → ``"dropout2"`` (0.5) → ``"output"``
    ``n_classes`` softmax. The embeddings come from
    :func:`~apnet.baselines.openl3_audio_embedding` with the official weights
    (:func:`~apnet.baselines.load_openl3_weights`), kept frozen as in the
    paper: only this MLP is trained.

    Args:
        input_shape: ``(D,)``, the embedding size (512 for APNet's OpenL3
            flavour).
        n_classes: int >= 2, size of the softmax output.
        hidden_units: units of the two hidden layers.
        dropout_rate: rate of both dropout layers, in [0, 1).
        name: model name.

    Returns:
        A functional ``keras.Model``: ``(batch, D)`` → ``(batch,
        n_classes)`` softmax probabilities.

    Example:

    >>> from apnet.baselines import openl3_mlp
    >>> model = openl3_mlp((512,), n_classes=10)   # UrbanSound8K
    >>> model.count_params()
    329610

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3.
        - Cramer, Wu, Salamon, Bello, "Look, Listen and Learn More: Design
          Choices for Deep Audio Embeddings", ICASSP 2019.
    """
    try:
        (dim,) = tuple(input_shape)
    except (TypeError, ValueError):
        dim = None
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"openl3_mlp: input_shape must be (D,) with D a positive int; received {input_shape!r}")
    n_classes = check_n_classes(n_classes, "openl3_mlp")
    dropout_rate = check_rate(dropout_rate, "dropout_rate", "openl3_mlp")
    hidden_units = tuple(int(u) for u in hidden_units)

    inputs = keras.Input(shape=(int(dim),), name="input")
    x = inputs
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = keras.layers.Dropout(dropout_rate, name=f"dropout{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name)
