"""Linear layer of Theta for class-specific pooled vectors (multi-label L2I)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="l2i")
class ClassSpecificDense(keras.layers.Layer):
    """Class scores from one pooled vector per class: ``logit_c = sum_k z[c, k] theta[k, c]``.

    With class-specific attention, Theta's pooling gives a vector ``z_c`` per class;
    the linear layer of Theta then scores class ``c`` from ``z_c`` only. The kernel
    has the same shape ``(K, C)`` as the kernel of the ``Dense`` layer used with a
    single attention head, so the relevance of Sec. III-E reads
    ``r_{k,c,x} = z[c, k] theta[k, c] / max_l |z[c, l] theta[l, c]|`` in both cases.

    Args:
        use_bias: bool, add a per-class bias (False in L2I: the relevance is the
            decomposition of the logit over components).
        kernel_initializer, bias_initializer: initializers.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor ``(batch, C, K)``, the class-specific pooled activations.

    Returns:
        Tensor ``(batch, C)`` of logits.

    Example:

    >>> import numpy as np
    >>> layer = ClassSpecificDense(kernel_initializer="ones")
    >>> np.asarray(layer(np.ones((1, 3, 4), "float32"))).tolist()
    [[4.0, 4.0, 4.0]]

    References:
        Parekh et al., IEEE/ACM TASLP 2024, Sec. III-D "Design of Theta"
        (class-specific attention, then a linear layer) and Sec. III-E (relevance).
    """

    def __init__(self, use_bias=False, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"ClassSpecificDense expects (batch, C, K) with known C and K, got {input_shape}")
        n_classes, n_components = input_shape[1], input_shape[2]
        self.kernel = self.add_weight(name="kernel", shape=(n_components, n_classes),
                                      initializer=self.kernel_initializer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(n_classes,), initializer=self.bias_initializer)

    def call(self, inputs):
        logits = ops.einsum("bck,kc->bc", inputs, ops.cast(self.kernel, inputs.dtype))
        if self.bias is not None:
            logits = logits + self.bias
        return logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
