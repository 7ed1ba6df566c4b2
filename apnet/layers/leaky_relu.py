"""Leaky ReLU computed as ``relu(x) + slope * min(x, 0)``, so that TensorFlow's grappler leaves ``Conv2D`` training graphs alone."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="apnet")
class LeakyReLU(keras.layers.LeakyReLU):
    """``x if x > 0 else negative_slope * x``, bit-identical to :class:`keras.layers.LeakyReLU` on TensorFlow.

    Same arguments, forward values and gradient as Keras' layer (on TensorFlow the gradient
    is ``negative_slope`` wherever ``x <= 0``, as ``LeakyReluGrad``: ``relu`` gives 0 there
    and ``minimum``'s gradient goes to ``x`` on ties), but computed as
    ``relu(x) + negative_slope * minimum(x, 0)`` instead of the fused ``LeakyRelu`` kernel.
    Both terms are exact (one of them is 0), so the values are those of ``LeakyRelu`` bit for bit.

    Why: on the TensorFlow backend, when a ``Conv2D`` (with bias) is followed by a
    ``LeakyRelu`` op in a *training* graph, grappler's remapper tries to fuse
    ``Conv2D + BiasAdd + LeakyRelu`` although the gradient ``LeakyReluGrad`` still
    reads the ``BiasAdd`` output, and aborts the whole pass with::

        remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout
        '.../LeakyRelu/LeakyReluGrad' exist for missing node '.../BiasAdd'

    printed once per compiled training function (every APNet run) and costing every other
    remapper fusion of that graph. This form is no fusion candidate, so the pass succeeds.
    (A select, ``where(x > 0, ...)``, avoids the fusion too but makes oneDNN print
    ``oneDNN supports DT_BOOL only on platforms with AVX-512`` instead.) Inference graphs
    (no gradient) were never affected.

    Args:
        negative_slope: float >= 0, slope for ``x <= 0`` (APNet: 0.3, Keras 2's default).
        **kwargs: standard layer arguments.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from apnet.layers import LeakyReLU
    >>> keras.ops.convert_to_numpy(LeakyReLU(negative_slope=0.3)(np.array([-2.0, 0.0, 1.5], "float32")))
    array([-0.6,  0. ,  1.5], dtype=float32)
    """

    def call(self, inputs):
        slope = ops.cast(self.negative_slope, inputs.dtype)
        return ops.relu(inputs) + slope * ops.minimum(inputs, ops.zeros((), inputs.dtype))
