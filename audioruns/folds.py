"""A dataset fold as both papers train on it: the split, the cached features, the targets.

* :func:`split_fold` -- the clips of each split of fold ``fold`` (the rule of both papers:
  cross-validated datasets test on ``fold``, the others have one official partition);
* :func:`fold_targets` -- one-hot / multi-hot float32 targets, NaN where a label is not annotated;
* :func:`load_fold` -- both, plus the features of every split read from (or written to) the
  memory-mapped cache: a :class:`Fold`.
"""
from dataclasses import dataclass, field

import numpy as np

from audiodata.datasets import FoldDataset, get_dataset, report_split
from audiodata.errors import DatasetNotFoundError
from audiodata.features import extract_features

__all__ = ["Fold", "split_fold", "fold_targets", "load_fold"]


@dataclass
class Fold:
    """One fold: the model's input features, rows and targets per split, and what else was extracted.

    Attributes
    ----------
    features : FeatureArray, shape (n, T, F)
        The input features of every clip (memory-mapped cache).
    rows : dict of str to array of int
        Rows of ``features`` per split (``train``, ``validation``, ``test``).
    targets : dict of str to array, shape (len(rows[split]), K)
        One-hot or multi-hot targets aligned with ``rows`` (NaN = not annotated, when asked).
    classes : tuple of str
    multilabel : bool
    dataset : str
    others : dict of str to FeatureArray
        Further feature sets of the same clips in the same row order (e.g. L2I's ``logmag``).
    """

    features: object
    rows: dict
    targets: dict
    classes: tuple
    multilabel: bool = False
    dataset: str = None
    others: dict = field(default_factory=dict)

    @property
    def input_shape(self):
        """``(T, F)`` of one clip's features."""
        return tuple(self.features.shape[1:])


def split_fold(ds, fold, *, validation):
    """The clips of each split of ``fold`` (DataFrames by split name).

    Cross-validated datasets (:class:`audiodata.datasets.FoldDataset`) test on ``fold`` and,
    with ``validation``, validate on the next fold (APNet, Section 4.2; L2I trains on all the
    other folds); the others have one official partition (``fold`` must be 1).

    Parameters
    ----------
    ds : audiodata.datasets.Dataset
    fold : int
    validation : bool
        Hold out a validation fold (cross-validated datasets).

    Returns
    -------
    dict
        Split name -> pandas.DataFrame of its clips.
    """
    return ds.split(fold, validation=validation) if isinstance(ds, FoldDataset) else ds.split(fold)


def fold_targets(ds, part, *, mask_unlabelled=True, dtype=np.float32):
    """Targets of the clips of ``part``: ``(len(part), K)``, NaN where ``ds.label_mask`` says not annotated.

    Parameters
    ----------
    ds : audiodata.datasets.Dataset
    part : pandas.DataFrame
        Clips of ``ds``.
    mask_unlabelled : bool
        Put NaN where a label is not annotated.
    dtype : np.dtype

    Returns
    -------
    targets : np.ndarray [shape=(len(part), K)]
    """
    targets = np.array(ds.targets(part), dtype=dtype)
    if mask_unlabelled:
        targets[~np.asarray(ds.label_mask(part), dtype=bool)] = np.nan
    return targets


def load_fold(dataset, fold, features="mel", *, others=(), validation=True, mask_unlabelled=False, data_dir=None,
              cache_dir=None, n_jobs=-1, progress=False):
    """Split ``dataset`` for ``fold`` and extract (or read from the cache) its features.

    Parameters
    ----------
    dataset : str
        A name of :data:`audiodata.datasets.DATASETS`.
    fold : int
        Test fold (1 for datasets with one official partition).
    features : str
        Feature set of the model input (``audiodata/configs/<dataset>.yaml``).
    others : sequence of str
        Further feature sets, in the same row order (checked), in :attr:`Fold.others`.
    validation : bool
        A validation split (see :func:`split_fold`); it must then hold clips.
    mask_unlabelled : bool
        NaN targets where a label is not annotated (:func:`fold_targets`).
    data_dir, cache_dir : str or Path, optional
        Data folder (default ``$AUDIO_DATA_DIR``) and feature cache.
    n_jobs : int
        Processes extracting features that are not cached yet.
    progress : bool
        For the command lines: print the clips of each split on one line of stderr (and a line
        starting with ``warning:`` when the folder holds far fewer clips than the official
        release), then draw a progress bar while features are extracted. Without it nothing
        is printed and a dataset far smaller than the official one gives a
        :class:`audiodata.datasets.SmallDatasetWarning`.

    Returns
    -------
    Fold

    Raises
    ------
    audiodata.errors.AudioDataError
        Unknown dataset, fold out of range, missing files, or an empty split.
    ValueError
        Two feature sets order the clips differently.
    """
    ds = get_dataset(dataset, data_dir=data_dir)
    parts = split_fold(ds, fold, validation=validation)
    report_split(ds, parts, fold, progress=progress)
    for name in ("train", "validation", "test") if validation else ("train", "test"):
        if len(parts[name]) == 0:
            raise DatasetNotFoundError(f"{dataset}: the {name} split of fold {fold} has no clips in {ds.root}")
    arrays = {name: extract_features(ds, name, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)
              for name in (features, *others)}
    rows, targets = {}, {}
    for split, part in parts.items():
        rows[split] = arrays[features].rows(part["clip_id"])
        for name in others:
            if not np.array_equal(rows[split], arrays[name].rows(part["clip_id"])):
                raise ValueError(f"{dataset}: the {features} and {name} caches order the clips differently")
        targets[split] = fold_targets(ds, part, mask_unlabelled=mask_unlabelled)
    return Fold(arrays[features], rows, targets, tuple(ds.classes), bool(getattr(ds, "multilabel", False)), dataset,
                {name: arrays[name] for name in others})
