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


#: Values of the optional ``peak_normalize`` key of a feature set (see :func:`peak_normalize`).
PEAK_MODES = (False, True, "abs", "max")


def peak_normalize(y, mode=True):
    """Divide a clip by its peak, as the L2I authors do before the STFT (``mode`` falsy: unchanged).

    ``log(1 + |X|)`` (the NMF data of L2I) and the log-mel depend on the level of the
    clip, so the L2I feature sets set ``peak_normalize`` in ``audiodata/configs``.

    Parameters
    ----------
    y : np.ndarray
        The clip (mono).
    mode : {False, None, True, 'abs', 'max'}
        ``True``/``'abs'``: divide by ``max |y|`` (peak at 1). ``'max'``: divide by the
        largest *sample value* ``max y``, literally what the authors' data loader does
        (``inp_audio / inp_audio.max()``); when ``max y <= 0`` it falls back to
        ``max |y|``. ``False``/``None``: return ``y`` unchanged.

    Returns
    -------
    np.ndarray, same dtype as ``y``. A silent clip is returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> peak_normalize(np.array([0.1, -0.4, 0.2], dtype=np.float32)).tolist()
    [0.25, -1.0, 0.5]
    >>> peak_normalize(np.array([0.1, -0.4, 0.2]), "max").tolist()
    [0.5, -2.0, 1.0]
    """
    if mode is None or mode is False:
        return y
    if mode not in PEAK_MODES:
        raise ValueError(f"peak_normalize must be one of {list(PEAK_MODES)}, got {mode!r}")
    y = np.asarray(y)
    if y.size == 0:
        return y
    peak = float(np.max(y)) if mode == "max" else 0.0
    if not peak > 0:
        peak = float(np.max(np.abs(y)))
    if not peak > 0 or not np.isfinite(peak):
        return y
    return (y / peak).astype(y.dtype, copy=False)


def load_signal(path, params):
    """The clip the features of ``path`` are computed from: mono, at ``params['sr']``,
    padded or cut to the configured length, then divided by its peak when the feature set
    sets ``peak_normalize`` (:func:`peak_normalize`).

    Signals *derived* from such a clip (Algorithm 1's residuals, added noise, mixtures)
    go to :func:`features_from_signal` as they are, never re-normalised: the authors'
    faithfulness and noise experiments keep their level relative to the clip.
    """
    y, _ = load_audio(path, sr=params["sr"], mono=params.get("mono", "mean"),
                      res_type=params.get("res_type", "soxr_hq"))
    return peak_normalize(fix_length(y, n_samples(params)), params.get("peak_normalize", False))


def features_from_signal(y, params):
    """Features of a mono signal already at ``params['sr']`` and cut to ``params['duration']``.

    The signal is used as given: ``params['peak_normalize']`` is applied when the clip
    is loaded (:func:`load_signal`, :func:`compute_features`), not here, so that signals
    derived from a clip keep their level (see :func:`load_signal`).

    Returns
    -------
    np.ndarray [shape=(T, F)], float32
    """
    if params["type"] == "mel":
        return log_mel_spectrogram(y, sr=params["sr"], **{k: params[k] for k in _MEL_KEYS if k in params})
    return log_magnitude_spectrogram(y, **{k: params[k] for k in _LOGMAG_KEYS if k in params})


def compute_features(path, params):
    """Load ``path`` (:func:`load_signal`: mono, resampled, padded/cut, peak-normalised if configured)
    and compute its features.

    Raises :class:`audiodata.errors.AudioFileError` naming the file for any unusable audio.
    """
    return features_from_signal(load_signal(path, params), params)


def feature_shape(params):
    """Shape ``(T, F)`` every clip gets with these parameters (computed on a silent clip)."""
    return features_from_signal(np.zeros(n_samples(params), dtype=np.float32), params).shape
