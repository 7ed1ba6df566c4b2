"""Upsampling through the SegNet mask of a MaskedMaxPooling2D layer."""
import keras
from keras import ops

from apnet.layers.masked_max_pooling_2d import _normalize_pool_size


@keras.saving.register_keras_serializable(package="apnet")
class MaskedUpsampling(keras.layers.Layer):
    """Nearest-neighbour upsampling followed by the max-pooling mask.

    The decoder half of the SegNet "pooling indices" trick used by the APNet
    autoencoder (Section 3.2): ``x`` is upsampled by repeating each element
    ``size`` times along axes 1 and 2, cropped at the bottom/right to the
    shape of ``mask`` (needed when :class:`apnet.layers.MaskedMaxPooling2D`
    padded an odd size), and multiplied by ``mask``. Each value thus goes back
    to the position its window's maximum came from, and every other position
    is 0.

    Args:
        size: int or pair of ints, upsampling factors along axes 1 and 2; use
            the ``pool_size`` of the matching pooling layer. Defaults to
            ``(2, 2)``.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: list ``[x, mask]``: ``x`` of shape ``(batch, H', W', C)`` and
            ``mask`` of shape ``(batch, H, W, C)`` with
            ``H' = ceil(H / size[0])`` and ``W' = ceil(W / size[1])``, e.g. the
            second output of :class:`apnet.layers.MaskedMaxPooling2D`. A
            boolean mask is accepted (it is cast to ``x``'s dtype).

    Returns:
        Tensor of shape ``(batch, H, W, C)``.

    Example:

    >>> import numpy as np
    >>> from apnet.layers import MaskedMaxPooling2D, MaskedUpsampling
    >>> x = np.random.rand(1, 5, 5, 3).astype("float32")
    >>> pooled, mask = MaskedMaxPooling2D()(x)
    >>> tuple(MaskedUpsampling()([pooled, mask]).shape)
    (1, 5, 5, 3)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 3.2.
        - Badrinarayanan et al., "SegNet: A Deep Convolutional
          Encoder-Decoder Architecture for Image Segmentation", IEEE TPAMI
          2017.
    """

    def __init__(self, size=(2, 2), **kwargs):
        super().__init__(**kwargs)
        self.size = _normalize_pool_size(size, "size")

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                f"MaskedUpsampling expects two inputs [x, mask]; received input_shape={input_shape}"
            )
        x_shape, mask_shape = (tuple(s) for s in input_shape)
        if len(x_shape) != 4 or len(mask_shape) != 4:
            raise ValueError(
                "MaskedUpsampling expects x and mask of rank 4 (batch, H, W, C); "
                f"received x shape {x_shape} and mask shape {mask_shape}"
            )
        for axis, factor in ((1, self.size[0]), (2, self.size[1])):
            small, large = x_shape[axis], mask_shape[axis]
            if small is not None and large is not None and small != -(-large // factor):
                raise ValueError(
                    f"MaskedUpsampling with size={self.size}: x shape {x_shape} does not match mask "
                    f"shape {mask_shape} on axis {axis} (expected ceil({large} / {factor}) = "
                    f"{-(-large // factor)}, got {small})"
                )
        if x_shape[3] is not None and mask_shape[3] is not None and x_shape[3] != mask_shape[3]:
            raise ValueError(
                f"MaskedUpsampling: x shape {x_shape} and mask shape {mask_shape} differ in channels"
            )

    def call(self, inputs):
        x, mask = inputs
        x = ops.convert_to_tensor(x, dtype=self.compute_dtype)
        mask = ops.cast(mask, x.dtype)
        upsampled = ops.repeat(ops.repeat(x, self.size[0], axis=1), self.size[1], axis=2)
        height, width = ops.shape(mask)[1], ops.shape(mask)[2]
        return upsampled[:, :height, :width, :] * mask

    def compute_output_shape(self, input_shape):
        x_shape, mask_shape = input_shape
        return (x_shape[0], mask_shape[1], mask_shape[2], x_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size})
        return config
