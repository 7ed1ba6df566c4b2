"""Activations of the original Keras 2 models that Keras 3 does not have."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="apnet", name="hard_sigmoid_keras2")
def hard_sigmoid_keras2(x):
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``.

    The default recurrent activation of Keras 2's ``LSTM``, and so of the Att-CRNN models the
    APNet authors trained (Keras 2.2.4). Keras 3's ``hard_sigmoid`` is another function
    (``relu6(x + 3) / 6``, slope 1/6) and its LSTM default is the logistic sigmoid; with either,
    the authors' weights give other outputs (docs/reference_parity.md).

    >>> import numpy as np
    >>> np.round(keras.ops.convert_to_numpy(hard_sigmoid_keras2(np.array([-3.0, -1.0, 0.0, 1.0, 3.0]))), 3)
    array([0. , 0.3, 0.5, 0.7, 1. ])
    """
    x = ops.convert_to_tensor(x)
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)
