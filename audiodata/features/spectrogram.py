"""Time-frequency representations of both papers and their inverses.

All arrays are laid out time first, ``(T, F)``, the APNet convention; L2I's
``X in R^{F x T}`` is the transpose.
"""
import librosa
import numpy as np

from ..errors import ParameterError

_LOG_MODES = ("db", "log", "log1p")


def _stft(y, n_fft, hop_length, win_length=None, window="hann", center=True):
    if y.ndim != 1:
        raise ParameterError(f"expected a mono signal of shape (n,), got shape {y.shape}")
    return librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                        window=window, center=center, pad_mode="constant")


def fix_frames(S, n_frames):
    """Zero-pad (at the end) or cut the time axis (axis 0) of ``S`` to ``n_frames`` frames."""
    if n_frames is None:
        return S
    if S.shape[0] >= n_frames:
        return S[:n_frames]
    return np.pad(S, [(0, n_frames - S.shape[0])] + [(0, 0)] * (S.ndim - 1), constant_values=S.min() if S.size else 0)


def log_mel_spectrogram(y, sr, n_fft, hop_length, n_mels, win_length=None, window="hann", center=True,
                        fmin=0.0, fmax=None, htk=False, power=2.0, log="db", top_db=80.0, amin=1e-10,
                        n_frames=None):
    """Log-scaled mel-spectrogram (APNet Section 3.1 / Table 1; L2I's 128-band classifier input).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal.
    sr, n_fft, hop_length, n_mels, win_length, window, center, fmin, fmax, htk, power
        As in ``librosa.feature.melspectrogram``.
    log : {'db', 'log', 'log1p'}
        ``'db'``: ``librosa.power_to_db`` (ref 1, ``amin``, ``top_db``); ``'log'``: ``log(S + amin)``;
        ``'log1p'``: ``log(1 + S)``.
    n_frames : int or None
        Zero-pad or cut to exactly this many frames (``T`` of the paper).

    Returns
    -------
    S : np.ndarray [shape=(T, n_mels)], float32
    """
    if log not in _LOG_MODES:
        raise ParameterError(f"log must be one of {_LOG_MODES}, got {log!r}")
    spec = np.abs(_stft(y, n_fft, hop_length, win_length, window, center)) ** power
    mel_basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    mel = mel_basis @ spec
    if log == "db":
        S = librosa.power_to_db(mel, ref=1.0, amin=amin, top_db=top_db)
    elif log == "log":
        S = np.log(mel + amin)
    else:
        S = np.log1p(mel)
    return fix_frames(S.T.astype(np.float32), n_frames)


def log_magnitude_spectrogram(y, n_fft=1024, hop_length=512, win_length=None, window="hann", center=True,
                              n_frames=None, return_phase=False):
    """L2I's log-magnitude spectrogram ``log(1 + |STFT|)`` and, optionally, the phase to invert it.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal (L2I: 44.1 kHz, 1024-point FFT, hop 512; Section IV-A).
    return_phase : bool
        Also return the STFT phase (radians), needed by :func:`logmag_to_audio`.

    Returns
    -------
    X : np.ndarray [shape=(T, 1 + n_fft // 2)], float32
    phase : np.ndarray [shape=(T, 1 + n_fft // 2)], float32, only if ``return_phase``
    """
    D = _stft(y, n_fft, hop_length, win_length, window, center)
    X = fix_frames(np.log1p(np.abs(D)).T.astype(np.float32), n_frames)
    if not return_phase:
        return X
    phase = fix_frames(np.angle(D).T.astype(np.float32), n_frames)
    return X, phase


def logmag_to_audio(X, phase, hop_length=512, n_fft=1024, win_length=None, window="hann", center=True, length=None):
    """Invert :func:`log_magnitude_spectrogram`: ``istft((exp(X) - 1) * exp(i * phase))``.

    Parameters
    ----------
    X, phase : np.ndarray [shape=(T, 1 + n_fft // 2)]
    length : int or None
        Number of output samples (pass the input length for an exact round trip).

    Returns
    -------
    y : np.ndarray [shape=(n,)], float32
    """
    X = np.asarray(X)
    if X.shape != np.shape(phase):
        raise ParameterError(f"magnitude {X.shape} and phase {np.shape(phase)} must have the same shape")
    D = (np.expm1(X) * np.exp(1j * np.asarray(phase))).T
    return librosa.istft(D, hop_length=hop_length, n_fft=n_fft, win_length=win_length, window=window,
                         center=center, length=length).astype(np.float32)


def mel_to_audio(S, sr, n_fft, hop_length, win_length=None, window="hann", center=True, fmin=0.0, fmax=None,
                 htk=False, power=2.0, log="db", amin=1e-10, n_iter=32, length=None, random_state=0, **_):
    """Back to audio from a log-mel-spectrogram: undo the log, mel inversion, Griffin-Lim.

    Takes the same parameters as :func:`log_mel_spectrogram` (extra keys such as ``n_mels``,
    ``top_db`` or ``n_frames`` are accepted and ignored, so a feature config can be passed whole).

    Parameters
    ----------
    S : np.ndarray [shape=(T, n_mels)]
        Output of :func:`log_mel_spectrogram` (or a decoded prototype, after undoing normalisation).

    Returns
    -------
    y : np.ndarray [shape=(n,)], float32
    """
    S = np.asarray(S, dtype=np.float32).T
    if log == "db":
        mel = librosa.db_to_power(S)
    elif log == "log":
        mel = np.maximum(np.exp(S) - amin, 0.0)
    elif log == "log1p":
        mel = np.expm1(S)
    else:
        raise ParameterError(f"log must be one of {_LOG_MODES}, got {log!r}")
    stft_mag = librosa.feature.inverse.mel_to_stft(mel, sr=sr, n_fft=n_fft, power=power, fmin=fmin, fmax=fmax,
                                                   htk=htk)
    y = librosa.griffinlim(stft_mag, n_iter=n_iter, hop_length=hop_length, win_length=win_length, n_fft=n_fft,
                           window=window, center=center, pad_mode="constant", random_state=random_state)
    # A padded spectrogram (``n_frames``) can be longer than ``length`` samples: cut or pad afterwards.
    return (y if length is None else librosa.util.fix_length(y, size=length)).astype(np.float32)
