"""Audio corruptions of the L2I interpretability illustration (Sec. V-B).

The ESC-50 fold-1 test clips are corrupted in two ways, with the trained
system left unchanged: (i) white noise at 0 dB SNR, (ii) a mixture with a clip
of a different class.  Energies are sums of squares over the whole clip;
ratios in dB are ``10 log10`` of energy ratios.  Nothing is clipped or
normalised: the result can exceed [-1, 1] (:func:`audiodata.io.write_audio`
clips when writing).

References
----------
Parekh et al., "Tackling Interpretability in Audio Classification Networks
with Non-negative Matrix Factorization", IEEE/ACM TASLP 2024, Sec. V-B
("Audio corruption experiment").
"""
import numpy as np

from audiodata.errors import ParameterError

__all__ = ["add_white_noise", "energy", "mix", "mixing_partner", "snr_db"]


def _signal(y, name):
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"{name} must be a non-empty mono signal of shape (n,), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ParameterError(f"{name} holds NaN or Inf values")
    return y


def energy(y):
    """Energy ``sum(y ** 2)`` of a signal, accumulated in float64.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    e : float
    """
    y = np.asarray(y, dtype=np.float64)
    return float(np.dot(y.ravel(), y.ravel()))


def snr_db(signal, noise):
    """Signal-to-noise ratio ``10 log10(energy(signal) / energy(noise))`` in dB.

    Parameters
    ----------
    signal, noise : np.ndarray [shape=(n,)]

    Returns
    -------
    snr : float
    """
    e_noise = energy(noise)
    if e_noise == 0:
        raise ParameterError("the noise has zero energy: SNR is infinite")
    return float(10 * np.log10(energy(signal) / e_noise))


def add_white_noise(y, snr=0.0, seed=None, return_noise=False):
    """Add Gaussian white noise at exactly ``snr`` dB (Sec. V-B uses 0 dB).

    The noise drawn is rescaled so that ``energy(y) / energy(noise)`` equals
    ``10 ** (snr / 10)`` for this very draw (not only in expectation).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Clean signal (not silent).
    snr : float
        Target signal-to-noise ratio in dB.
    seed : int, np.random.Generator or None
    return_noise : bool
        Also return the noise added.

    Returns
    -------
    noisy : np.ndarray [shape=(n,)], dtype of ``y`` (float32 for integer input)
    noise : np.ndarray [shape=(n,)], only if ``return_noise``

    Examples
    --------
    >>> y = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    >>> noisy, noise = add_white_noise(y, snr=0.0, seed=0, return_noise=True)
    >>> bool(abs(snr_db(y, noise)) < 1e-3)
    True
    """
    y = _signal(y, "y")
    e_y = energy(y)
    if e_y == 0:
        raise ParameterError("y is silent (zero energy): the SNR is undefined")
    noise = np.random.default_rng(seed).standard_normal(y.size)
    noise *= np.sqrt(e_y / (energy(noise) * 10 ** (snr / 10)))
    dtype = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32
    noisy = (y.astype(np.float64) + noise).astype(dtype)
    return (noisy, noise.astype(dtype)) if return_noise else noisy


def mix(y, other, ratio=0.0, return_interference=False):
    """Mix ``y`` with another clip at a target-to-interference ratio of ``ratio`` dB (Sec. V-B).

    ``other`` is zero-padded or cut to the length of ``y`` and scaled by ``g`` so
    that ``energy(y) / energy(g * other) = 10 ** (ratio / 10)``; the default 0 dB
    gives both equal energy.  The mixture is ``y + g * other``, hence
    ``energy(mixture) = energy(y) + energy(g other) + 2 <y, g other>``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        The clip to corrupt (not silent).
    other : np.ndarray [shape=(m,)]
        The interfering clip, e.g. of another class (:func:`mixing_partner`); not silent over the first ``n`` samples.
    ratio : float
        Energy ratio of ``y`` to the scaled ``other``, in dB.
    return_interference : bool
        Also return ``g * other`` (after padding or cutting).

    Returns
    -------
    mixture : np.ndarray [shape=(n,)], dtype of ``y`` (float32 for integer input)
    interference : np.ndarray [shape=(n,)], only if ``return_interference``
    """
    y = _signal(y, "y")
    other = _signal(other, "other").astype(np.float64)
    other = other[: y.size] if other.size >= y.size else np.pad(other, (0, y.size - other.size))
    e_y, e_o = energy(y), energy(other)
    if e_y == 0 or e_o == 0:
        raise ParameterError(f"cannot mix at a given ratio: energy(y)={e_y:g}, energy(other)={e_o:g} "
                             f"(over the first {y.size} samples)")
    interference = other * np.sqrt(e_y / (e_o * 10 ** (ratio / 10)))
    dtype = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32
    mixture = (y.astype(np.float64) + interference).astype(dtype)
    return (mixture, interference.astype(dtype)) if return_interference else mixture


def mixing_partner(labels, index, seed=None):
    """Index of a clip drawn at random among those whose label differs from ``labels[index]``.

    Parameters
    ----------
    labels : sequence [shape=(N,)]
        Class of every candidate clip (e.g. the fold-1 test set).
    index : int
        The clip to corrupt.
    seed : int, np.random.Generator or None

    Returns
    -------
    partner : int
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not 0 <= index < labels.size:
        raise ParameterError(f"index must lie in [0, {labels.size}) of a 1-D label array, got {index}")
    candidates = np.flatnonzero(labels != labels[index])
    if candidates.size == 0:
        raise ParameterError(f"no clip has a class other than {labels[index]!r}")
    return int(np.random.default_rng(seed).choice(candidates))
