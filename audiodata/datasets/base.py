"""What every dataset loader shares: locating the folder, resolving audio files, splits, targets,
and how the clips found compare with the official release (:meth:`AudioDataset.size_warning`,
:func:`report_split`)."""
import os
import sys
import warnings

import numpy as np
import pandas as pd

from ..download import resolve_data_dir
from ..errors import DatasetNotFoundError, ParameterError
from ..io import AUDIO_EXTENSIONS


class MissingAudioWarning(UserWarning):
    """Metadata lists clips whose audio file is not in the dataset folder (they are skipped)."""


class SmallDatasetWarning(UserWarning):
    """The dataset folder holds far fewer clips than the official release (an excerpt, or an incomplete download)."""


#: A dataset with fewer than this fraction of its official clips gets a :class:`SmallDatasetWarning`.
SMALL_DATASET_FRACTION = 0.5


class AudioDataset:
    """Base class of the dataset loaders.

    A loader reads a dataset in its official folder layout from ``<data_dir>/<folder>/`` (or from
    ``data_dir`` itself when that is the dataset folder) and exposes:

    * ``clips``: a DataFrame, one row per clip whose audio is present, with at least ``clip_id``
      (unique), ``path`` (absolute) and either ``label`` (int, single-label) or nothing (multi-label,
      see :meth:`targets`), plus ``fold`` or ``split``;
    * ``classes``: the class names, index = label;
    * :meth:`split` and :meth:`targets`;
    * ``OFFICIAL_CLIPS`` / :attr:`official_clips`: how many clips the official release has
      (``OFFICIAL_SOURCE`` says where the number comes from), so that :meth:`size_warning`
      can tell an excerpt or an incomplete download from the real dataset.

    The same clip may be stored as ``.wav``, ``.flac`` or ``.ogg`` whatever the metadata says.
    Clips listed in the metadata but missing from the folder are skipped with a
    :class:`MissingAudioWarning` naming them, or raise :class:`DatasetNotFoundError` with
    ``strict=True``; a dataset with no audio at all always raises, saying how to download it.
    """

    name = None            # registry name, e.g. "urbansound8k"
    folder = None          # official folder name under the data folder
    alt_folders = ()       # other names the folder may have (tried after ``folder``)
    marker = None          # a file (relative to the folder) that identifies the dataset folder
    classes = ()
    multilabel = False
    layout = ""            # one line describing the expected layout, for error messages
    OFFICIAL_CLIPS = None  # number of clips of the official release
    OFFICIAL_SOURCE = ""   # where that number comes from

    def __init__(self, data_dir=None, strict=False):
        self.strict = strict
        self.root = self._locate(resolve_data_dir(data_dir))
        self._file_index = None
        clips = self._load_clips()
        self.clips = clips.reset_index(drop=True)

    # ----------------------------------------------------------------- naming used by features/cache
    @property
    def config_name(self):
        """Name of the feature config file (``audiodata/configs/<config_name>.yaml``)."""
        return self.name

    @property
    def cache_name(self):
        """Name of this dataset (variant) in the feature cache."""
        return self.name

    # ----------------------------------------------------------------- size of the official release
    @property
    def official_clips(self):
        """int or None: clips of the official release of this dataset (variant); see ``OFFICIAL_SOURCE``."""
        return self.OFFICIAL_CLIPS

    def size_warning(self, fraction=SMALL_DATASET_FRACTION):
        """A message when the folder holds fewer than ``fraction`` of the official clips, else None.

        Training on an excerpt (such as the few clips of a test-data folder) or on a partly
        downloaded dataset runs without error but gives meaningless results; the message says so.
        """
        official = self.official_clips
        n = len(self.clips)
        if not official or n >= fraction * official:
            return None
        hint = self.download_hint().replace("\n", " ")
        return (f"{self.cache_name}: {self.root} holds only {n:,} clip{'s' if n != 1 else ''}, {n / official:.1%} of the "
                f"{official:,} of the official release ({self.OFFICIAL_SOURCE}); results on it are not comparable "
                f"with the papers'. Is the dataset complete? {hint}")

    # ----------------------------------------------------------------- locating files
    def _locate(self, data_dir):
        for candidate in [data_dir / f for f in (self.folder, *self.alt_folders)] + [data_dir]:
            if (candidate / self.marker).exists():
                return candidate
        expected = data_dir / self.folder
        what = "does not exist" if not expected.exists() else f"lacks {self.marker}"
        raise DatasetNotFoundError(
            f"{self.name}: dataset folder {expected} {what}. Expected layout: {self.layout}. "
            f"{self.download_hint()}")

    def download_hint(self):
        from ..download import download_instructions  # here: audiodata.download imports audiodata.datasets

        return download_instructions(self.name)

    def _audio_index(self, subfolder=""):
        """``{relative path without extension: absolute path}`` of every audio file below ``subfolder``."""
        base = self.root / subfolder
        index = {}
        for dirpath, _, files in os.walk(base, followlinks=True):
            for f in files:
                stem, ext = os.path.splitext(f)
                if ext.lower() in AUDIO_EXTENSIONS:
                    rel = os.path.relpath(os.path.join(dirpath, stem), base)
                    index.setdefault(rel.replace(os.sep, "/"), os.path.join(dirpath, f))
        return index

    def _attach_paths(self, table, rel_column, subfolder, source):
        """Add the ``path`` column by matching ``table[rel_column]`` (extension ignored) to files on disk.

        Rows whose file is missing are dropped with a warning (or an error if ``strict``).
        ``source`` names the metadata file, for the messages.
        """
        index = self._audio_index(subfolder)
        stems = table[rel_column].map(lambda r: os.path.splitext(str(r))[0].replace("\\", "/"))
        paths = stems.map(index)
        missing = table.loc[paths.isna(), rel_column].tolist()
        if missing and len(missing) == len(table):
            raise DatasetNotFoundError(
                f"{self.name}: none of the {len(table)} clips listed in {source} was found under "
                f"{self.root / subfolder} (first: {missing[0]}). {self.download_hint()}")
        if missing:
            msg = (f"{self.name}: {len(missing)} of {len(table)} clips listed in {source} are missing from "
                   f"{self.root / subfolder} (first: {', '.join(map(str, missing[:3]))})")
            if self.strict:
                raise DatasetNotFoundError(msg + f". {self.download_hint()}")
            warnings.warn(msg + "; they are skipped (strict=True / --strict makes this an error)",
                          MissingAudioWarning, stacklevel=3)
        table = table.assign(path=paths)
        return table[table["path"].notna()].copy()

    def _read_csv(self, relpath, **kwargs):
        path = self.root / relpath
        if not path.is_file():
            raise DatasetNotFoundError(f"{self.name}: metadata file {path} is missing. {self.download_hint()}")
        try:
            return pd.read_csv(path, **kwargs)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise DatasetNotFoundError(f"{self.name}: cannot read metadata file {path}: {err}") from None

    def _require_columns(self, table, columns, source):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DatasetNotFoundError(f"{self.name}: {source} lacks the column(s) {missing}; "
                                       f"found {list(table.columns)}")

    # ----------------------------------------------------------------- to implement
    def _load_clips(self):
        raise NotImplementedError

    def split(self, fold=None):
        """``{'train': DataFrame, 'validation': DataFrame, 'test': DataFrame}`` of ``clips`` rows."""
        raise NotImplementedError

    # ----------------------------------------------------------------- targets
    @property
    def n_classes(self):
        return len(self.classes)

    def targets(self, clips=None):
        """Target matrix ``(n, n_classes)`` float32: one-hot (single-label) or multi-hot (multi-label)."""
        clips = self.clips if clips is None else clips
        y = np.zeros((len(clips), self.n_classes), dtype=np.float32)
        y[np.arange(len(clips)), clips["label"].to_numpy(dtype=int)] = 1.0
        return y

    def label_mask(self, clips=None):
        """Boolean ``(n, n_classes)``: which labels are annotated (all, except in weakly labelled data)."""
        clips = self.clips if clips is None else clips
        return np.ones((len(clips), self.n_classes), dtype=bool)

    def __len__(self):
        return len(self.clips)

    def __repr__(self):
        return f"{type(self).__name__}(root={str(self.root)!r}, clips={len(self.clips)}, classes={self.n_classes})"


class FoldDataset(AudioDataset):
    """A dataset evaluated by cross-validation over numbered folds (column ``fold``).

    :meth:`split` follows APNet Section 4.2.1: test fold ``k``, validation fold ``k + 1``
    (cyclically), train on the rest; ``validation=False`` trains on every other fold (L2I's ESC-50).
    """

    n_folds = None
    default_validation = True

    def folds(self):
        return list(range(1, self.n_folds + 1))

    def split(self, fold=1, validation=None):
        validation = self.default_validation if validation is None else validation
        if fold not in self.folds():
            raise ParameterError(f"{self.name}: fold must be one of {self.folds()}, got {fold!r}")
        present = set(self.clips["fold"].unique())
        if fold not in present:
            raise DatasetNotFoundError(f"{self.name}: test fold {fold} has no clips in {self.root}")
        val_fold = None
        if validation:
            val_fold = self._next_present_fold(fold, present)
        test = self.clips[self.clips["fold"] == fold]
        val = self.clips[self.clips["fold"] == val_fold] if val_fold else self.clips.iloc[0:0]
        train = self.clips[~self.clips["fold"].isin([fold, val_fold])]
        return {"train": train, "validation": val, "test": test}

    def _next_present_fold(self, fold, present):
        folds = self.folds()
        for step in range(1, len(folds)):
            candidate = folds[(folds.index(fold) + step) % len(folds)]
            if candidate in present:
                if step > 1:
                    warnings.warn(f"{self.name}: validation fold {folds[(folds.index(fold) + 1) % len(folds)]} has "
                                  f"no clips here; using fold {candidate}", MissingAudioWarning, stacklevel=3)
                return candidate
        raise DatasetNotFoundError(f"{self.name}: only fold {fold} has clips; cannot hold out a validation fold")


class SubsetDataset(AudioDataset):
    """A dataset with an official train/validation/test partition (column ``split``)."""

    split_names = ("train", "validation", "test")

    def split(self, fold=None):
        if fold not in (None, 1):
            raise ParameterError(f"{self.name} has one official partition; fold must be None or 1, got {fold!r}")
        return {name: self.clips[self.clips["split"] == name] for name in self.split_names}


def split_summary(parts):
    """``"train 13, validation 3, test 3 clips"`` for the ``{'train', 'validation', 'test'}`` tables of ``split``."""
    return ", ".join(f"{name} {len(parts[name]):,}" for name in ("train", "validation", "test") if name in parts) \
        + " clips"


def report_split(ds, parts, fold=None, progress=False, file=None):
    """Tell the user how many clips each split has and whether the dataset is far smaller than the official one.

    With ``progress`` (the command lines), prints one line ``<dataset> fold <k>: train N, validation N,
    test N clips`` to ``file`` (default ``sys.stderr``), preceded, when :meth:`AudioDataset.size_warning`
    has something to say, by a line starting with ``warning:``. Without ``progress`` (library use)
    nothing is printed and the size warning is a :class:`SmallDatasetWarning`.

    Returns
    -------
    str or None
        The size warning, if any.
    """
    message = ds.size_warning()
    if not progress:
        if message:
            warnings.warn(message, SmallDatasetWarning, stacklevel=3)
        return message
    file = sys.stderr if file is None else file
    if message:
        print(f"warning: {message}", file=file, flush=True)
    where = f"{ds.cache_name} fold {fold}" if fold is not None else ds.cache_name
    print(f"{where}: {split_summary(parts)}", file=file, flush=True)
    return message
