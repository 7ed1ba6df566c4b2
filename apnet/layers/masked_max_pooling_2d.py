"""Max-pooling that also returns the SegNet mask of the selected positions."""
import keras
from keras import ops


def _normalize_pool_size(value, arg_name):
    """Return ``value`` as a pair of positive ints, or raise a ValueError naming it."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, (list, tuple)):
        pair = tuple(value)
    else:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise ValueError(f"`{arg_name}` must be a positive int or a pair of positive ints; received {value!r}")
    return pair


def _pad_edge(x, axis, size):
    """Replicate the last slice along ``axis`` until its length is a multiple of ``size``."""
    if size == 1:
        return x
    length = ops.shape(x)[axis]
    index = [slice(None)] * 4
    index[axis] = slice(-1, None)
    last = x[tuple(index)]
    if isinstance(length, int):
        n_pad = (-length) % size
        if n_pad == 0:
            return x
        return ops.concatenate([x, ops.repeat(last, n_pad, axis=axis)], axis=axis)
    # Dynamic length (TensorFlow graph with unknown spatial size): pad the
    # most that could be needed, then cut to the next multiple of ``size``.
    padded = ops.concatenate([x, ops.repeat(last, size - 1, axis=axis)], axis=axis)
    index[axis] = slice(None, (length + size - 1) // size * size)
    return padded[tuple(index)]


#: Tie rules of :class:`MaskedMaxPooling2D`.
TIE_RULES = ("all", "first")


@keras.saving.register_keras_serializable(package="apnet")
class MaskedMaxPooling2D(keras.layers.Layer):
    """Non-overlapping 2D max-pooling that also returns where each max was taken.

    This is the encoder half of the SegNet "pooling indices" trick used by the
    APNet autoencoder (Section 3.2): besides the pooled tensor the layer
    returns a mask with the shape of its input, set to 1 at the position that
    gave the maximum of each pooling window and to 0 elsewhere. The decoder
    multiplies its upsampled features by this mask
    (:class:`apnet.layers.MaskedUpsampling`).

    Tie rule (``ties``): with ``"all"`` (the default, as the authors' code, which builds
    the mask as ``greater_equal(x, upsample(maxpool(x)))``) every position of a
    window that equals its maximum is set in the mask; this matters where a window
    is constant, e.g. the zero-padded tail of a short clip, whose decoded
    reconstruction then spreads over the whole window. With ``"first"`` each window
    has exactly one 1 in the mask: the first maximum in row-major order (smallest
    row, then smallest column; rows are axis 1, columns axis 2), as in SegNet's
    pooling indices. The pooled value is the window maximum either way.

    Sizes not divisible by the pool size: the input is padded at the bottom
    (end of axis 1) and on the right (end of axis 2) by repeating its last
    row/column, i.e. the output size is ``ceil(size / pool)`` (Keras
    ``padding="same"`` convention). A repeated value equals the real value it
    copies, so the window maximum is that of the real elements only; the mask
    is cropped back to the input shape, so padded positions never appear in it.
    (The authors' network pools with ``padding="valid"`` and only takes sizes
    divisible by the pool size, where both conventions agree.)

    Args:
        pool_size: int or pair of ints, pooling window (and stride) along
            axes 1 and 2. Defaults to ``(2, 2)`` as in the paper.
        ties: ``"all"`` or ``"first"``, which maxima of a window the mask marks
            (see the tie rule above).
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of shape ``(batch, H, W, C)`` (channels last).

    Returns:
        List ``[pooled, mask]``: ``pooled`` of shape
        ``(batch, ceil(H / ph), ceil(W / pw), C)`` and ``mask`` of shape
        ``(batch, H, W, C)``, in the input's float dtype, with values 0/1.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from apnet.layers import MaskedMaxPooling2D
    >>> x = np.array([[1.0, 3.0], [3.0, 2.0]], dtype="float32").reshape(1, 2, 2, 1)
    >>> pooled, mask = MaskedMaxPooling2D()(x)
    >>> keras.ops.convert_to_numpy(pooled).ravel()
    array([3.], dtype=float32)
    >>> keras.ops.convert_to_numpy(mask)[0, :, :, 0]
    array([[0., 1.],
           [1., 0.]], dtype=float32)
    >>> _, mask = MaskedMaxPooling2D(ties="first")(x)
    >>> keras.ops.convert_to_numpy(mask)[0, :, :, 0]
    array([[0., 1.],
           [0., 0.]], dtype=float32)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 3.2.
        - Badrinarayanan et al., "SegNet: A Deep Convolutional
          Encoder-Decoder Architecture for Image Segmentation", IEEE TPAMI
          2017.
    """

    def __init__(self, pool_size=(2, 2), ties="all", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _normalize_pool_size(pool_size, "pool_size")
        if ties not in TIE_RULES:
            raise ValueError(f"`ties` must be one of {TIE_RULES}; received ties={ties!r}")
        self.ties = ties

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "MaskedMaxPooling2D expects inputs of shape (batch, H, W, C); "
                f"received input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        x = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        ph, pw = self.pool_size
        height, width = ops.shape(x)[1], ops.shape(x)[2]
        padded = _pad_edge(_pad_edge(x, 1, ph), 2, pw)
        _, padded_h, padded_w, channels = ops.shape(padded)
        out_h, out_w = padded_h // ph, padded_w // pw

        # (batch, out_h, ph, out_w, pw, C) -> (batch, out_h, out_w, C, ph * pw):
        # the last axis lists each window in row-major order.
        windows = ops.reshape(padded, (-1, out_h, ph, out_w, pw, channels))
        windows = ops.reshape(ops.transpose(windows, (0, 1, 3, 5, 2, 4)), (-1, out_h, out_w, channels, ph * pw))
        window_max = ops.max(windows, axis=-1, keepdims=True)
        if self.ties == "first":  # keep only the first maximum of each window
            selected = ops.greater_equal(windows, window_max)
            n_max_so_far = ops.cumsum(ops.cast(selected, "int32"), axis=-1)
            selected = ops.logical_and(selected, ops.equal(n_max_so_far, 1))
            pooled = ops.sum(ops.where(selected, windows, ops.zeros_like(windows)), axis=-1)
            mask = ops.cast(selected, x.dtype)
        else:
            pooled = ops.squeeze(window_max, axis=-1)
            # greater_equal(windows, window_max) without a boolean tensor: window_max - windows is 0 at
            # every maximum and > 0 elsewhere (finite inputs), so 1 - sign(.) is 1 exactly at the maxima.
            # (A bool op makes TensorFlow's oneDNN print "oneDNN supports DT_BOOL only on platforms with
            # AVX-512" on every APNet run; sign has a zero gradient, as the cast of a bool.)
            mask = 1.0 - ops.sign(window_max - windows)
        mask = ops.reshape(mask, (-1, out_h, out_w, channels, ph, pw))
        mask = ops.reshape(ops.transpose(mask, (0, 1, 4, 2, 5, 3)), (-1, padded_h, padded_w, channels))
        mask = mask[:, :height, :width, :]
        return [pooled, mask]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        ph, pw = self.pool_size
        out_h = None if height is None else -(-height // ph)
        out_w = None if width is None else -(-width // pw)
        return [(batch, out_h, out_w, channels), (batch, height, width, channels)]

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "ties": self.ties})
        return config
