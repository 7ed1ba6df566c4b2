"""Features of one audio file, from a feature-set parameter dict (see ``config.py``)."""
import numpy as np

from ..io import fix_length, load_audio
from .spectrogram import log_magnitude_spectrogram, log_mel_spectrogram

_MEL_KEYS = ("n_fft", "hop_length", "n_mels", "win_length", "fmin", "fmax", "htk", "log", "top_db", "n_frames",
             "center")
_LOGMAG_KEYS = ("n_fft", "hop_length", "win_length", "n_frames", "center")


def n_samples(params):
    """Length in samples every clip is padded or cut to before the STFT.

    ``params['n_samples']`` when the feature set gives it (the APNet authors' DCASE-models
    framing: ``sequence_frames * hop + n_fft // 2`` samples, see ``docs/reference_parity.md``),
    else ``round(duration * sr)``.
    """
    if params.get("n_samples") is not None:
        return int(params["n_samples"])
    return int(round(params["duration"] * params["sr"]))


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
    y, _ = load_audio(path, sr=params["sr"], mono=params.get("mono", "mean"),
                      res_type=params.get("res_type", "soxr_hq"))
    return features_from_signal(fix_length(y, n_samples(params)), params)


def feature_shape(params):
    """Shape ``(T, F)`` every clip gets with these parameters (computed on a silent clip)."""
    return features_from_signal(np.zeros(n_samples(params), dtype=np.float32), params).shape
