"""The STFT settings of a spectrogram as one value, :class:`STFTParams`.

A log-magnitude spectrogram can only be inverted (L2I, Algorithm 1) with the STFT it was
computed with; :class:`STFTParams` carries those settings from the feature configuration
(``audiodata/configs/<dataset>.yaml``) to every function that needs them, instead of five
to seven loose arguments::

    stft = STFTParams.from_feature_params(load_feature_params("esc50", "logmag"))
    X, phase = log_magnitude_spectrogram(y, return_phase=True, **stft.stft_kwargs())
    y_back = stft.invert(X, phase, length=y.size)
"""
from dataclasses import dataclass

import numpy as np

from ..cli import positive_int, require
from ..errors import ParameterError
from .spectrogram import logmag_to_audio

__all__ = ["STFTParams"]


@dataclass(frozen=True)
class STFTParams:
    """The short-time Fourier transform of a spectrogram: what its inverse needs.

    Parameters
    ----------
    n_fft : int > 0
        FFT size; the spectrogram has ``1 + n_fft // 2`` frequency bins.
    hop_length : int > 0
        Samples between successive frames.
    win_length : int in [1, n_fft] or None
        Window length (None: ``n_fft``).
    window : str or tuple
        Window specification, as ``scipy.signal.get_window`` (and librosa) take it.
    center : bool
        Whether frames are centred on their sample (librosa's ``center``).
    sr : int > 0 or None
        Sample rate in Hz, when the spectrogram's time axis is drawn or its audio written
        (None: unknown; the STFT itself does not need it).

    Raises
    ------
    audiodata.errors.ParameterError
        A value of the wrong type or out of range, with the field's name.

    Examples
    --------
    >>> stft = STFTParams(n_fft=1024, hop_length=512, sr=44100)
    >>> stft.n_bins, stft.stft_kwargs()["win_length"] is None
    (513, True)
    >>> STFTParams(n_fft=512, hop_length=0)
    Traceback (most recent call last):
    ...
    audiodata.errors.ParameterError: hop_length must be a positive integer, got 0
    """

    n_fft: int
    hop_length: int
    win_length: int = None
    window: object = "hann"
    center: bool = True
    sr: int = None

    def __post_init__(self):
        # Normalised in place (np.int64 -> int) so that equal settings compare and hash equal.
        set_field = object.__setattr__
        set_field(self, "n_fft", require(positive_int, self.n_fft, "n_fft", strict=True))
        set_field(self, "hop_length", require(positive_int, self.hop_length, "hop_length", strict=True))
        if self.win_length is not None:
            win_length = require(positive_int, self.win_length, "win_length", strict=True)
            if win_length > self.n_fft:
                raise ParameterError(f"win_length must be at most n_fft={self.n_fft}, got {win_length}")
            set_field(self, "win_length", win_length)
        if not isinstance(self.window, (str, tuple)):
            raise ParameterError(f"window must be a window name or a (name, parameter) tuple, got {self.window!r}")
        if not isinstance(self.center, (bool, np.bool_)):
            raise ParameterError(f"center must be true or false, got {self.center!r}")
        set_field(self, "center", bool(self.center))
        if self.sr is not None:
            set_field(self, "sr", require(positive_int, self.sr, "sr", strict=True))

    @classmethod
    def from_feature_params(cls, params, *, window="hann"):
        """The STFT of a feature set: a dict of :func:`audiodata.features.load_feature_params`.

        Reads ``sr``, ``n_fft``, ``hop_length``, ``win_length`` (optional, default None) and
        ``center`` (optional, default True); the other keys (``n_mels``, ``n_frames``, ...)
        are ignored. The feature configurations name no window: ``window`` gives it.

        Parameters
        ----------
        params : dict
        window : str or tuple

        Returns
        -------
        STFTParams
        """
        missing = [key for key in ("n_fft", "hop_length") if key not in params]
        if missing:
            raise ParameterError(f"feature parameters lack {missing} (have {sorted(params)})")
        return cls(n_fft=params["n_fft"], hop_length=params["hop_length"], win_length=params.get("win_length"),
                   window=window, center=params.get("center", True), sr=params.get("sr"))

    @property
    def n_bins(self):
        """Frequency bins of the spectrogram, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    def stft_kwargs(self):
        """``n_fft``, ``hop_length``, ``win_length``, ``window``, ``center`` as keyword arguments (dict), for
        :func:`audiodata.features.log_magnitude_spectrogram` or ``librosa.stft``."""
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "win_length": self.win_length,
                "window": self.window, "center": self.center}

    def invert(self, X, phase, *, length=None):
        """:func:`audiodata.features.logmag_to_audio` with these settings.

        Parameters
        ----------
        X, phase : np.ndarray [shape=(T, 1 + n_fft // 2)]
            Log-magnitude ``log(1 + |STFT|)`` and phase (radians), time first.
        length : int or None
            Number of output samples (the input's length for an exact round trip).

        Returns
        -------
        y : np.ndarray [shape=(n,)], float32
        """
        return logmag_to_audio(X, phase, length=length, **self.stft_kwargs())
