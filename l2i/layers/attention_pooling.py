"""Attention pooling ``z = H a`` of L2I's Theta (Sec. III-D)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="l2i")
class AttentionPooling(keras.layers.Layer):
    """Pool activations over time with attention weights: ``z = H a``.

    Args:
        squeeze: bool; with a single attention head, return ``(batch, K)`` instead
            of ``(batch, 1, K)`` (default True).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: list ``[H, a]``: ``H`` of shape ``(batch, K, T)`` and attention
            weights ``a`` of shape ``(batch, T, n_heads)`` (e.g. from
            :class:`l2i.layers.GatedAttention`).

    Returns:
        ``z`` of shape ``(batch, n_heads, K)`` with ``z[b, c, k] = sum_t H[b, k, t] a[b, t, c]``,
        or ``(batch, K)`` for one head when ``squeeze``.

    Example:

    >>> import numpy as np
    >>> H = np.ones((2, 4, 6), "float32"); a = np.full((2, 6, 1), 1 / 6, "float32")
    >>> np.asarray(AttentionPooling()([H, a])).round(5).tolist()[0]
    [1.0, 1.0, 1.0, 1.0]

    References:
        Parekh et al., IEEE/ACM TASLP 2024, Sec. III-D "Design of Theta"
        (``z = sum_t H_I(x) a``) and Sec. III-E (``z`` enters the relevance
        ``r_{k,c,x}``).
    """

    def __init__(self, squeeze=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(squeeze, bool):
            raise ValueError(f"`squeeze` must be a bool; received squeeze={squeeze!r}")
        self.squeeze = squeeze

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"AttentionPooling expects [H, a], got input shapes {input_shape}")
        h_shape, a_shape = input_shape
        if len(h_shape) != 3 or len(a_shape) != 3:
            raise ValueError(f"AttentionPooling expects H (batch, K, T) and a (batch, T, heads); got {input_shape}")

    def call(self, inputs):
        activations, attention = inputs
        attention = ops.cast(attention, activations.dtype)
        pooled = ops.einsum("bkt,btc->bck", activations, attention)
        if self.squeeze and attention.shape[-1] == 1:
            pooled = ops.squeeze(pooled, axis=1)
        return pooled

    def compute_output_shape(self, input_shape):
        (batch, n_components, _), (_, _, n_heads) = input_shape
        if self.squeeze and n_heads == 1:
            return (batch, n_components)
        return (batch, n_heads, n_components)

    def get_config(self):
        config = super().get_config()
        config.update({"squeeze": self.squeeze})
        return config
