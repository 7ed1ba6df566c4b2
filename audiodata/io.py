"""Audio input/output: load any supported file as float32 mono at a chosen rate, write WAV.

Every problem with a file (missing, empty, truncated, not audio, NaN/Inf samples) is
raised as :class:`audiodata.errors.AudioFileError` naming the file.
"""
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioFileError, ParameterError

#: File endings the loaders accept for the same clip (official datasets ship WAV; FLAC/OGG copies are common).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


#: Ways to make a mono signal: average the channels, or keep the first (left) one as DCASE-models,
#: the library the APNet authors extracted their features with, does (``audio[:, 0]``).
MONO_MODES = ("mean", "first")

#: Resamplers: soxr (librosa's default since 0.10) and resampy's ``kaiser_best``, librosa's default up
#: to 0.9 and so the resampler of the APNet authors' features (librosa 0.7.1 through DCASE-models).
RESAMPLERS = ("soxr_hq", "kaiser_best")


def load_audio(path, sr=None, mono=True, duration=None, res_type="soxr_hq"):
    """Load an audio file as float32, optionally mixed down to mono and resampled.

    Parameters
    ----------
    path : str or Path
        Audio file (any format libsndfile reads: WAV of any sample format, FLAC, OGG).
    sr : int or None
        Target sample rate; None keeps the file's rate.
    mono : bool or {'mean', 'first'}
        ``True`` or ``'mean'``: mix all channels down to one by averaging them; ``'first'``: keep
        the first (left) channel only (DCASE-models); ``False``: keep every channel.
    duration : float or None
        If given, zero-pad or cut the signal to exactly this many seconds (at the output rate).
    res_type : {'soxr_hq', 'kaiser_best'}
        Resampler used when ``sr`` differs from the file's rate (see :data:`RESAMPLERS`).

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32
    sr : int

    Raises
    ------
    AudioFileError
        The file is missing, empty, not decodable, has no samples, or holds NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "file is empty (0 bytes)")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(path, f"cannot be decoded as audio (truncated, corrupt or not audio: {err})") from None
    if data.shape[0] == 0:
        raise AudioFileError(path, "contains no audio samples")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioFileError(path, f"contains {int(bad.sum())} NaN or Inf samples")
    if mono not in (True, False) + MONO_MODES:
        raise ParameterError(f"mono must be True, False or one of {MONO_MODES}, got {mono!r}")
    if mono is False:
        y = data.T
    else:
        y = data[:, 0] if mono == "first" else data.mean(axis=1)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != file_sr:
        y = resample(y, file_sr, int(sr), res_type=res_type)
        file_sr = int(sr)
    if duration is not None:
        y = fix_duration(y, file_sr, duration)
    return y, file_sr


def resample(y, orig_sr, target_sr, res_type="soxr_hq"):
    """Resample the last axis of ``y`` from ``orig_sr`` to ``target_sr`` with librosa.

    ``res_type`` is one of :data:`RESAMPLERS`: ``'soxr_hq'`` (soxr, high quality) or
    ``'kaiser_best'`` (resampy, the resampler of librosa <= 0.9 and of the APNet authors' features).
    """
    import librosa

    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if res_type not in RESAMPLERS:
        raise ParameterError(f"res_type must be one of {RESAMPLERS}, got {res_type!r}")
    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type).astype(np.float32)


def fix_duration(y, sr, duration):
    """Zero-pad (at the end) or cut the last axis of ``y`` to ``round(duration * sr)`` samples."""
    if duration <= 0:
        raise ParameterError(f"duration must be positive, got {duration}")
    return fix_length(y, int(round(duration * sr)))


def fix_length(y, n):
    """Zero-pad (at the end) or cut the last axis of ``y`` to exactly ``n`` samples."""
    if n <= 0:
        raise ParameterError(f"length must be a positive number of samples, got {n}")
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def write_audio(path, y, sr, subtype="PCM_16"):
    """Write a (n,) or (channels, n) float signal to a WAV file, clipping to [-1, 1].

    The folder is created if needed. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ParameterError(f"refusing to write {path}: the signal holds NaN or Inf values")
    data = np.clip(y.T if y.ndim == 2 else y, -1.0, 1.0)
    sf.write(str(path), data, int(sr), subtype=subtype)
    return path
