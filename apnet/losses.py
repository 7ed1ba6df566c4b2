"""Losses of APNet (Zinemanas et al., Electronics 2021)."""
from keras import ops


def prototype_loss(distances):
    """Prototype loss ``l_p`` of Eq. 5, from frequency-dependent distances.

    Sums the output of :class:`apnet.layers.PrototypeLayer` over frequency
    to get ``D_ij = ||Z_i - P_j||^2`` (Eq. 4), then

    ``l_p = mean_i min_j D_ij + mean_j min_i D_ij``

    The first term pulls every input towards its nearest prototype, the second
    every prototype towards its nearest input (Li et al., 2018). As in
    training, ``N`` is the batch: the minimum over ``i`` and the means are
    taken over the instances of the batch.

    Parameters
    ----------
    distances : tensor [shape=(batch, M, F')]
        Squared distances per latent frequency bin, ``D[i, j, f]``.

    Returns
    -------
    loss : scalar tensor
        ``l_p``, in the dtype of ``distances``.

    Examples
    --------
    >>> import numpy as np
    >>> from apnet.losses import prototype_loss
    >>> d = np.array([[[1.0, 1.0], [4.0, 0.0]], [[0.5, 0.5], [9.0, 9.0]]], dtype="float32")
    >>> float(prototype_loss(d))  # D = [[2, 4], [1, 18]]: (2 + 1) / 2 + (1 + 4) / 2
    4.0

    References
    ----------
    - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic
      Sound Classification", Electronics 2021, Section 3.3, Eqs. (4)-(5).
    - Li et al., "Deep Learning for Case-Based Reasoning through Prototypes",
      AAAI 2018.
    """
    distances = ops.convert_to_tensor(distances)
    if len(distances.shape) != 3:
        raise ValueError(
            f"prototype_loss expects distances of shape (batch, M, F'); received shape {tuple(distances.shape)}"
        )
    total = ops.sum(distances, axis=-1)  # D_ij, (batch, M)
    return ops.mean(ops.min(total, axis=1)) + ops.mean(ops.min(total, axis=0))
