"""Projection of a dictionary onto non-negative, unit-l2-norm columns (a Keras constraint)."""
import keras
from keras import ops

__all__ = ["NonNegUnitNorm"]


@keras.saving.register_keras_serializable(package="l2i")
class NonNegUnitNorm(keras.constraints.Constraint):
    """Clip a ``(F, K)`` dictionary to ``>= floor`` and rescale every column to unit l2 norm.

    The optimizer applies a variable's constraint after every update, so this is the
    projection step of projected (stochastic) gradient descent on the set of Eq. 6
    (``W >= 0``, ``||w_k||_2 = 1``). The small positive ``floor`` (instead of 0) keeps
    every entry alive for the multiplicative updates of
    :class:`l2i.baselines.UnrolledNMFEncoder` (a zero stays zero under them) and keeps
    a column from vanishing.

    Args:
        floor: float >= 0, smallest value of an entry before normalisation.
        axis: int, the axis holding the entries of one column (0 for ``(F, K)``).

    Example:

    >>> import numpy as np
    >>> W = NonNegUnitNorm()(np.array([[3.0, -1.0], [4.0, 2.0]], "float32"))
    >>> np.round(keras.ops.convert_to_numpy(W).astype(float), 3).tolist()
    [[0.6, 0.0], [0.8, 1.0]]

    References:
        Mairal, Bach, Ponce, "Task-driven dictionary learning", IEEE TPAMI 2012, Sec. 4
        (projected stochastic gradient onto the constraint set of the dictionary);
        Parekh et al., IEEE/ACM TASLP 2024, Eq. 6.
    """

    def __init__(self, floor=1e-8, axis=0):
        if not float(floor) >= 0:
            raise ValueError(f"`floor` must be >= 0; received floor={floor!r}")
        self.floor = float(floor)
        self.axis = int(axis)

    def __call__(self, w):
        w = ops.maximum(ops.convert_to_tensor(w), self.floor)
        norms = ops.sqrt(ops.sum(ops.square(w), axis=self.axis, keepdims=True))
        return w / ops.maximum(norms, 1e-12)

    def get_config(self):
        return {"floor": self.floor, "axis": self.axis}
