"""Dot-product attention pooling over time of the Att-CRNN baseline (de Andrade et al., 2018)."""
import keras
from keras import ops

_QUERY_POSITIONS = ("last", "middle")


@keras.saving.register_keras_serializable(package="apnet")
class AttentionPooling(keras.layers.Layer):
    """Integrates a sequence over time with one dot-product attention query.

    One output vector of the sequence, ``h_q`` (the last one, or the middle
    one), is projected by a dense layer to a query ``q = W h_q + b``; its dot
    product with every vector of the sequence gives one score per time step,
    a softmax over time turns the scores into weights ``a``, and the output is
    the weighted sum of the sequence:

    ``q = W h_q + b``, ``a = softmax_t(<h_t, q>)``, ``c = sum_t a_t h_t``.

    This is the attention of the Att-CRNN baseline; the weights ``a`` are what
    de Andrade et al. plot to show where the network listens.

    Args:
        query_position: ``"last"`` (default, as in the authors' Keras code)
            or ``"middle"`` (index ``T // 2``, as in the paper's description):
            the time step whose vector is projected to the query.
        return_attention_scores: bool, default ``False``. When ``True`` the
            layer returns ``[c, a]`` instead of ``c``.
        kernel_initializer: initializer of ``W`` (default
            ``"glorot_uniform"``).
        bias_initializer: initializer of ``b`` (default ``"zeros"``).
        kernel_regularizer: optional regularizer of ``W``.
        bias_regularizer: optional regularizer of ``b``.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of shape ``(batch, T, D)``, e.g. the output
            sequence of a bidirectional LSTM.

    Returns:
        ``c`` of shape ``(batch, D)``; with ``return_attention_scores=True``
        the list ``[c, a]``, ``a`` of shape ``(batch, T)`` (sums to 1 over
        ``T``).

    Example:

    >>> import numpy as np
    >>> from apnet.baselines import AttentionPooling
    >>> h = np.random.rand(2, 63, 128).astype("float32")
    >>> context, weights = AttentionPooling(return_attention_scores=True)(h)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 128), (2, 63))

    References:
        - de Andrade, Leo, Da Silva Viana, Bernkopf, "A neural attention model
          for speech command recognition", arXiv:1808.08929, 2018,
          Section 3 (attention mechanism, Fig. 1).
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3
          (Att-CRNN baseline).
    """

    def __init__(
        self,
        query_position="last",
        return_attention_scores=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if query_position not in _QUERY_POSITIONS:
            raise ValueError(
                f"query_position must be one of {_QUERY_POSITIONS}; received query_position={query_position!r}"
            )
        self.query_position = query_position
        self.return_attention_scores = bool(return_attention_scores)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "AttentionPooling expects inputs of shape (batch, T, D) with a known D; "
                f"received input_shape={tuple(input_shape)}"
            )
        dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, dim),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            trainable=True,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(dim,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            trainable=True,
        )

    def call(self, inputs):
        h = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if self.query_position == "last":
            h_query = h[:, -1, :]
        else:
            h_query = ops.take(h, ops.shape(h)[1] // 2, axis=1)
        query = ops.matmul(h_query, ops.cast(self.kernel, h.dtype)) + ops.cast(self.bias, h.dtype)
        scores = ops.einsum("btd,bd->bt", h, query)
        weights = ops.softmax(scores, axis=-1)
        context = ops.einsum("bt,btd->bd", weights, h)
        if self.return_attention_scores:
            return [context, weights]
        return context

    def compute_output_shape(self, input_shape):
        context_shape = (input_shape[0], input_shape[2])
        if self.return_attention_scores:
            return [context_shape, (input_shape[0], input_shape[1])]
        return context_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "query_position": self.query_position,
                "return_attention_scores": self.return_attention_scores,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            }
        )
        return config
