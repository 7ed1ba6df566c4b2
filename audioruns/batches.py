"""Batches of cached features read by row number, in an order that depends only on ``(seed, epoch)``.

Both papers stream their features from the memory-mapped cache
(:class:`audiodata.features.FeatureArray`) through a subclass of :class:`EpochOrderedBatches`:
:class:`apnet.training.FeatureBatches` (scaled log-mel, APNet or classifier targets) and
:class:`l2i.training.L2IBatches` (log-mel input, log-magnitude NMF target). The base class
owns the order, the subclasses only say what one batch holds (:meth:`EpochOrderedBatches._batch`).
"""
import keras
import numpy as np

from audiodata.cli import positive_int, require

__all__ = ["EpochOrderedBatches"]


class EpochOrderedBatches(keras.utils.PyDataset):
    """Row-number batches whose order depends only on ``(seed, epoch)``.

    Batch ``i`` holds positions ``order[i * batch_size:(i + 1) * batch_size]`` of ``rows``,
    sorted by row number within the batch (sequential reads of a memory map). With
    ``shuffle`` the order of epoch ``e`` is the permutation drawn from ``(seed, e)``, so a
    resumed run sees the batches of an uninterrupted one when the epoch is set explicitly
    and ``fit`` does not reorder the batches: :func:`audioruns.fit.fit_resumable` passes
    ``shuffle=False`` (Keras' shuffling of a PyDataset uses Python's global ``random``, which
    a resume does not restore) and calls :meth:`set_epoch` at the start of each epoch
    (:class:`audioruns.checkpoints.EpochOrder`). Under a plain ``fit``, :meth:`on_epoch_end`
    advances the epoch (Keras calls it once before the first epoch too, so epoch ``e`` then
    uses the order of ``e + 1``). Subclasses read the batch in :meth:`_batch`, given the
    positions and their row numbers.

    Parameters
    ----------
    rows : array of int, shape (n,)
        Rows of the feature arrays served, not empty.
    batch_size : int
        Positive; the last batch may be smaller.
    shuffle : bool
        Draw a new order every epoch.
    seed : int
        Seed of the order.
    **kwargs
        :class:`keras.utils.PyDataset` arguments (``workers``, ...).

    Raises
    ------
    ValueError
        No rows, or a ``batch_size`` that is not a positive int.
    """

    def __init__(self, rows, batch_size, *, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if len(rows) == 0:
            raise ValueError(f"{type(self).__name__} got no rows")
        self.rows = np.asarray(rows)
        self.batch_size = require(positive_int, batch_size, "batch_size", strict=True)
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Use the order of ``epoch`` (0-based) from now on."""
        self.epoch = epoch
        n = len(self.rows)
        self._order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __len__(self):
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index):
        positions = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        positions = positions[np.argsort(self.rows[positions], kind="stable")]
        return self._batch(positions, self.rows[positions])

    def _batch(self, positions, rows):
        """One batch: ``positions`` index ``rows``-aligned arrays (labels), ``rows`` the feature arrays."""
        raise NotImplementedError

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)
