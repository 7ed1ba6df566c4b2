"""Loaders for every dataset of both papers, in their official layouts and splits.

>>> from audiodata.datasets import get_dataset
>>> ds = get_dataset("urbansound8k", data_dir="/data")          # doctest: +SKIP
>>> parts = ds.split(fold=1)                                     # doctest: +SKIP
>>> y = ds.targets(parts["train"])                               # doctest: +SKIP
"""
from ..errors import ParameterError
from .base import (SMALL_DATASET_FRACTION, AudioDataset, FoldDataset, MissingAudioWarning, SmallDatasetWarning,
                   SubsetDataset, report_split, resolve_data_dir, split_summary)
from .esc50 import ESC50
from .fsdd import FSDD
from .medley_solos_db import MedleySolosDB
from .openmic import OpenMIC2018
from .sonyc_ust import SONYCUST, coarse_targets
from .speech_commands import SpeechCommands
from .urbansound8k import UrbanSound8K

#: Registry: name -> (class, fixed keyword arguments).
DATASETS = {
    "urbansound8k": (UrbanSound8K, {}),
    "medley_solos_db": (MedleySolosDB, {}),
    "speech_commands": (SpeechCommands, {"version": "auto"}),
    "speech_commands_v1": (SpeechCommands, {"version": 1}),
    "esc50": (ESC50, {}),
    "esc10": (ESC50, {"esc10": True}),
    "sonyc_ust": (SONYCUST, {}),
    "openmic": (OpenMIC2018, {}),
    "fsdd": (FSDD, {}),
}


def get_dataset(name, data_dir=None, strict=False, **kwargs):
    """Load dataset ``name`` (one of :data:`DATASETS`) from ``data_dir`` or ``$AUDIO_DATA_DIR``.

    ``speech_commands`` reads v0.02 (35 words) or, when the folder holds v0.01, its 30 words
    (``speech_commands_v1`` forces v0.01); ``esc10`` is ESC-50 restricted to its ESC-10 subset.
    """
    if name not in DATASETS:
        raise ParameterError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    cls, fixed = DATASETS[name]
    return cls(data_dir=data_dir, strict=strict, **{**fixed, **kwargs})


__all__ = ["DATASETS", "ESC50", "FSDD", "SMALL_DATASET_FRACTION", "AudioDataset", "FoldDataset", "MedleySolosDB",
           "MissingAudioWarning", "OpenMIC2018", "SONYCUST", "SmallDatasetWarning", "SpeechCommands",
           "SubsetDataset", "UrbanSound8K", "coarse_targets", "get_dataset", "report_split", "resolve_data_dir",
           "split_summary"]
