"""Attention weights over time for the pooling of L2I's Theta (Sec. III-D)."""
import keras
from keras import ops

from audiodata.cli import positive_int, require


@keras.saving.register_keras_serializable(package="l2i")
class GatedAttention(keras.layers.Layer):
    """Gated attention weights over the frames of activations ``H`` (Ilse et al., 2018).

    For every frame ``t`` the column ``h_t`` of ``H`` [shape=(K, T)] gets a score
    ``s_t = w^T (tanh(V h_t + b_V) * sigm(U h_t + b_U)) + b_w`` and the weights are a
    softmax over time, ``a = softmax_t(s)``, so ``a >= 0`` and ``sum_t a_t = 1``.
    With ``n_heads = C`` (one head per class) the layer gives the class-specific
    attention vectors L2I uses for multi-label tasks.

    Args:
        units: int, size ``L`` of the hidden attention layer (256).
        n_heads: int, number of attention vectors (1, or the number of classes).
        gate_activation: activation of the gate branch (``"sigmoid"`` in Ilse et al.).
        kernel_initializer, bias_initializer: initializers of the three projections.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: tensor ``(batch, K, T)``, the activations ``H``.

    Returns:
        Tensor ``(batch, T, n_heads)``: attention weights, summing to 1 over ``T``.

    Example:

    >>> import numpy as np
    >>> a = GatedAttention(units=8, n_heads=2)(np.random.rand(3, 5, 7).astype("float32"))
    >>> tuple(a.shape), bool(np.allclose(np.sum(a, axis=1), 1.0, atol=1e-5))
    ((3, 7, 2), True)

    References:
        Parekh et al., IEEE/ACM TASLP 2024, Sec. III-D "Design of Theta" (attention
        pooling ``z = H a``, class-specific attention for multi-label tasks).
        Ilse, Tomczak, Welling, "Attention-based deep multiple instance learning",
        ICML 2018 (gated attention).
    """

    def __init__(self, units=256, n_heads=1, gate_activation="sigmoid", kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = require(positive_int, units, "units", strict=True)
        self.n_heads = require(positive_int, n_heads, "n_heads", strict=True)
        self.gate_activation = keras.activations.get(gate_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None:
            raise ValueError(f"GatedAttention expects (batch, K, T) with known K, got {input_shape}")
        n_components = input_shape[1]
        self.tanh_kernel = self.add_weight(name="tanh_kernel", shape=(n_components, self.units),
                                           initializer=self.kernel_initializer)
        self.tanh_bias = self.add_weight(name="tanh_bias", shape=(self.units,), initializer=self.bias_initializer)
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=(n_components, self.units),
                                           initializer=self.kernel_initializer)
        self.gate_bias = self.add_weight(name="gate_bias", shape=(self.units,), initializer=self.bias_initializer)
        self.score_kernel = self.add_weight(name="score_kernel", shape=(self.units, self.n_heads),
                                            initializer=self.kernel_initializer)
        self.score_bias = self.add_weight(name="score_bias", shape=(self.n_heads,), initializer=self.bias_initializer)

    def call(self, inputs):
        frames = ops.transpose(inputs, (0, 2, 1))  # (batch, T, K)
        hidden = ops.tanh(ops.matmul(frames, self.tanh_kernel) + self.tanh_bias)
        gate = self.gate_activation(ops.matmul(frames, self.gate_kernel) + self.gate_bias)
        scores = ops.matmul(hidden * gate, self.score_kernel) + self.score_bias  # (batch, T, heads)
        return ops.softmax(scores, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], self.n_heads)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "n_heads": self.n_heads,
            "gate_activation": keras.activations.serialize(self.gate_activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
