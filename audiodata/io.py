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


def load_audio(path, sr=None, mono=True, duration=None):
    """Load an audio file as float32, optionally mixed down to mono and resampled.

    Parameters
    ----------
    path : str or Path
        Audio file (any format libsndfile reads: WAV of any sample format, FLAC, OGG).
    sr : int or None
        Target sample rate; None keeps the file's rate.
    mono : bool
        Mix all channels down to one by averaging them.
    duration : float or None
        If given, zero-pad or cut the signal to exactly this many seconds (at the output rate).

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
    y = data.mean(axis=1) if mono else data.T
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != file_sr:
        y = resample(y, file_sr, int(sr))
        file_sr = int(sr)
    if duration is not None:
        y = fix_duration(y, file_sr, duration)
    return y, file_sr


def resample(y, orig_sr, target_sr):
    """Resample the last axis of ``y`` from ``orig_sr`` to ``target_sr`` (librosa, soxr high quality)."""
    import librosa

    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def fix_duration(y, sr, duration):
    """Zero-pad (at the end) or cut the last axis of ``y`` to ``round(duration * sr)`` samples."""
    if duration <= 0:
        raise ParameterError(f"duration must be positive, got {duration}")
    n = int(round(duration * sr))
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
