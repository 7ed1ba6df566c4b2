"""Losses of APNet (Zinemanas et al., Electronics 2021)."""
import keras
from keras import ops

from audioruns.distribute import gather_replicas


#: Default reduction over latent frequency of :func:`prototype_loss` and :class:`PrototypeLoss`:
#: the reference implementation's mean, which :func:`apnet.training.compile_apnet` trains with.
DEFAULT_FREQUENCY_REDUCTION = "mean"


def prototype_loss(distances, frequency_reduction=DEFAULT_FREQUENCY_REDUCTION):
    """Prototype loss ``l_p`` of Eq. 5, from frequency-dependent distances.

    Reduces the output of :class:`apnet.layers.PrototypeLayer` over frequency: the sum
    is ``D_ij = ||Z_i - P_j||^2`` of Eq. 4, the mean (the default) ``D_ij / F'``; then

    ``l_p = mean_i min_j D_ij + mean_j min_i D_ij``

    The first term pulls every input towards its nearest prototype, the second
    every prototype towards its nearest input (Li et al., 2018). As in
    training, ``N`` is the batch: the minimum over ``i`` and the means are
    taken over the instances of the batch -- the global batch also when it is split over
    devices (``--distribute``; under TensorFlow's MirroredStrategy the minimum over ``i`` runs
    over the rows of every replica, :func:`audioruns.distribute.gather_replicas`).

    Parameters
    ----------
    distances : tensor [shape=(batch, M, F')]
        Squared distances per latent frequency bin, ``D[i, j, f]``.
    frequency_reduction : {'mean', 'sum'}
        ``'mean'`` (default, as :class:`PrototypeLoss` and hence training) divides ``D_ij``
        by ``F'``, as the reference implementation does (its Table 2 weights were tuned
        with the mean); ``'sum'`` gives ``D_ij`` of Eq. 4 literally, ``F'`` times larger.

    Returns
    -------
    loss : scalar tensor
        ``l_p``, in the dtype of ``distances``.

    Examples
    --------
    >>> import numpy as np
    >>> from apnet.losses import prototype_loss
    >>> d = np.array([[[1.0, 1.0], [4.0, 0.0]], [[0.5, 0.5], [9.0, 9.0]]], dtype="float32")
    >>> float(prototype_loss(d, "sum"))  # D = [[2, 4], [1, 18]]: (2 + 1) / 2 + (1 + 4) / 2
    4.0
    >>> float(prototype_loss(d))  # the mean over F' = 2 halves D here
    2.0

    References
    ----------
    - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic
      Sound Classification", Electronics 2021, Section 3.3, Eqs. (4)-(5).
    - Li et al., "Deep Learning for Case-Based Reasoning through Prototypes",
      AAAI 2018.
    """
    total = _pair_distances(distances, frequency_reduction)
    # first term: this replica's rows (Keras averages the replicas' losses); second: the global batch
    return ops.mean(ops.min(total, axis=1)) + ops.mean(ops.min(gather_replicas(total), axis=0))


def _pair_distances(distances, frequency_reduction):
    """``D_ij`` (or ``D_ij / F'``) [shape=(batch, M)] from the distances per frequency bin, checked."""
    distances = ops.convert_to_tensor(distances)
    if len(distances.shape) != 3:
        raise ValueError(
            f"prototype_loss expects distances of shape (batch, M, F'); received shape {tuple(distances.shape)}"
        )
    if frequency_reduction not in ("sum", "mean"):
        raise ValueError(f"frequency_reduction must be 'sum' or 'mean'; received {frequency_reduction!r}")
    reduce = ops.sum if frequency_reduction == "sum" else ops.mean
    return reduce(distances, axis=-1)


@keras.saving.register_keras_serializable(package="apnet")
class PrototypeLoss(keras.losses.Loss):
    """:func:`prototype_loss` (Eq. 5) as a Keras loss for APNet's ``prototypes`` output.

    The prototype loss needs no target: ``y_true`` is ignored (feed any array with a
    batch axis, e.g. zeros). The loss is a property of the whole batch (minima over the
    instances of the batch), so it is returned as a scalar and sample weights scale it
    as a whole.

    The reference implementation averages the distances over latent frequency before
    Eq. 5 (``frequency_reduction='mean'``, the default here as in :func:`prototype_loss`): with Table 2's
    (alpha, beta, gamma) the literal sum makes ``l_p`` ``F'`` times stronger, and on FSDD
    it then pulled every encoding onto the prototypes so that ``exp(-D)`` was 1 for all of
    them and the classifier stayed at chance (see experiments/apnet/README.md).

    Args:
        frequency_reduction: ``'mean'`` (default; reference implementation) or ``'sum'`` (Eq. 4 literally).
        name: str, name of the loss.
        **kwargs: other :class:`keras.losses.Loss` arguments (``reduction``, ``dtype``).

    Example:

    >>> import numpy as np
    >>> from apnet.losses import PrototypeLoss
    >>> d = np.array([[[1.0, 1.0], [4.0, 0.0]], [[0.5, 0.5], [9.0, 9.0]]], dtype="float32")
    >>> float(PrototypeLoss()(np.zeros(2), d))  # mean over F': D / 2 = [[1, 2], [0.5, 9]]
    2.0
    >>> float(PrototypeLoss("sum")(np.zeros(2), d))
    4.0

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic Sound
          Classification", Electronics 2021, Section 3.3, Eq. (5), and Section 4.4, Eq. (10).
    """

    def __init__(self, frequency_reduction=DEFAULT_FREQUENCY_REDUCTION, name="prototype_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if frequency_reduction not in ("sum", "mean"):
            raise ValueError(f"frequency_reduction must be 'sum' or 'mean'; received {frequency_reduction!r}")
        self.frequency_reduction = frequency_reduction

    def call(self, y_true, y_pred):
        """One value per instance, whose mean over the batch is :func:`prototype_loss`.

        ``min_j D_ij + mean_j min_i D_ij``: per instance, so that Keras' reduction averages over the batch
        and, under TensorFlow's MirroredStrategy, divides by the number of replicas (a scalar returned here
        would be left unscaled, and each replica's gradient would count the loss once more); the second
        term is the same for every instance, over the global batch (:func:`audioruns.distribute.gather_replicas`).
        """
        total = _pair_distances(y_pred, self.frequency_reduction)
        return ops.min(total, axis=1) + ops.mean(ops.min(gather_replicas(total), axis=0))

    def get_config(self):
        return {**super().get_config(), "frequency_reduction": self.frequency_reduction}
