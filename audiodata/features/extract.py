"""Features of one audio file, from a feature-set parameter dict (see ``config.py``)."""
import numpy as np

from ..io import load_audio
from .spectrogram import log_magnitude_spectrogram, log_mel_spectrogram

_MEL_KEYS = ("n_fft", "hop_length", "n_mels", "win_length", "fmin", "fmax", "htk", "log", "top_db", "n_frames")
_LOGMAG_KEYS = ("n_fft", "hop_length", "win_length", "n_frames")


def features_from_signal(y, params):
    """Features of a mono signal already at ``params['sr']`` and cut to ``params['duration']``.

    Returns
    -------
    np.ndarray [shape=(T, F)], float32
    """
    if params["type"] == "mel":
        return log_mel_spectrogram(y, sr=params["sr"], **{k: params[k] for k in _MEL_KEYS if k in params})
    return log_magnitude_spectrogram(y, **{k: params[k] for k in _LOGMAG_KEYS if k in params})


def compute_features(path, params):
    """Load ``path`` (mono, resampled, padded/cut to the configured duration) and compute its features.

    Raises :class:`audiodata.errors.AudioFileError` naming the file for any unusable audio.
    """
    y, _ = load_audio(path, sr=params["sr"], mono=True, duration=params["duration"])
    return features_from_signal(y, params)


def feature_shape(params):
    """Shape ``(T, F)`` every clip gets with these parameters (computed on a silent clip)."""
    n = int(round(params["duration"] * params["sr"]))
    return features_from_signal(np.zeros(n, dtype=np.float32), params).shape
