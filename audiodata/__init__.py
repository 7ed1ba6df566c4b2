"""Shared audio I/O, dataset loaders and cached features for the ``apnet`` and ``l2i`` packages.

* :mod:`audiodata.io` -- load (resample, mono mix-down, pad/cut) and write audio;
* :mod:`audiodata.datasets` -- UrbanSound8K, Medley-solos-DB, Speech Commands, ESC-50/ESC-10,
  SONYC-UST, OpenMIC-2018 and FSDD in their official layouts and splits;
* :mod:`audiodata.features` -- log-mel and log-magnitude spectrograms with per-dataset
  parameters from config files, their inverses, a memory-mapped cache and normalisation;
* :mod:`audiodata.download` -- resumable, checksummed downloads from the official sources.
"""
from .errors import AudioDataError, AudioFileError, DatasetNotFoundError, DownloadError, ParameterError
from .io import load_audio, write_audio

__version__ = "0.1.0"
__all__ = ["AudioDataError", "AudioFileError", "DatasetNotFoundError", "DownloadError", "ParameterError",
           "load_audio", "write_audio"]
