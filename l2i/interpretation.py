"""Listenable interpretations: component relevance and Algorithm 1 of L2I.

L2I (Parekh et al., 2024, Sec. III-E) interprets the decision of a classifier
for a class ``c`` in two steps:

1. **Relevance.** With the interpreter's pooled activations ``z`` [shape=(K,)]
   and the weights ``theta`` [shape=(K, n_classes)] of the linear layer of
   ``Theta``, the relevance of component ``k`` is its normalised contribution to
   the logit of class ``c``::

       r_{k,c,x} = z_k theta_{k,c} / max_l |z_l theta_{l,c}|,

   and the relevant components are ``L_{c,x} = {k : r_{k,c,x} > tau}``.
2. **Audio (Algorithm 1).** Each component's share of the input is obtained by
   soft masking the input log-magnitude spectrogram ``X`` with the ratio of that
   component's NMF reconstruction ``w_k h_k^T`` to the full reconstruction
   ``W H``; the masked spectrograms are inverted with the input phase.

Conventions
-----------
* **Layout.** Spectrograms are time first, ``X`` [shape=(T, F)], exactly as
  :func:`audiodata.features.log_magnitude_spectrogram` returns them and
  :func:`audiodata.features.logmag_to_audio` takes them.  The dictionary and
  the activations keep the paper's (and :mod:`l2i.nmf`'s) layout, ``W``
  [shape=(F, K)] and ``H`` [shape=(K, T)]; the component spectrogram ``k`` is
  therefore ``np.outer(H[k], W[:, k])`` [shape=(T, F)], the transpose of the
  paper's ``w_k h_k^T``.  The conversion happens here, once; a spectrogram
  given frequency first is rejected with a message saying so.
* **Mask domain.** Algorithm 1, line 3 multiplies the mask with ``X`` itself,
  the *log-magnitude* ``log(1 + |STFT|)``, and ``INV`` undoes the log before
  the inverse STFT: ``x_k = ISTFT((exp(M_k * X) - 1) * exp(i P_x))``.  That is
  the default (``mask_domain="logmag"``).  A consequence worth knowing: the
  component signals ``x_k`` do not add up to the input (``exp`` is not
  linear), although the masked *spectrograms* do.  ``mask_domain="magnitude"``
  applies the same masks to ``|STFT| = exp(X) - 1`` instead (classical NMF
  Wiener-style filtering), for which the ``x_k`` of all components add up to
  the input.
* **Masks.** ``M_k = (V_k + eps / K) / (sum_l V_l + eps)`` with
  ``V_k = w_k h_k^T``.  For ``eps -> 0`` this is the paper's ratio; the
  ``eps / K`` in the numerator makes the masks a partition of unity *exactly*
  (``sum_k M_k = 1`` in every bin, also where ``W H`` is zero, e.g. frames in
  which a ReLU interpreter outputs no activation), so selecting every
  component gives back the input.

References
----------
Parekh, Parekh, Essid, Richard, "Tackling Interpretability in Audio
Classification Networks with Non-negative Matrix Factorization", IEEE/ACM
TASLP 2024: Sec. III-E (relevance, threshold ``tau``), Algorithm 1 (soft
masking and inverse STFT), Sec. IV-C (feature removal, ``X_2``).
"""
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from audiodata.errors import ParameterError
from audiodata.features import STFTParams
from audiodata.io import write_audio

__all__ = [
    "component_audio",
    "interpret",
    "interpretation_spectrogram",
    "relevance",
    "relevant_components",
    "remove_components",
    "removal_audio",
    "soft_mask",
    "write_interpretation",
]

MASK_DOMAINS = ("logmag", "magnitude")


# --------------------------------------------------------------------------- relevance
def relevance(z, theta, c):
    """Relevance of every component for class ``c`` (L2I, Sec. III-E).

    ``r_k = z_k theta[k, c] / max_l |z_l theta[l, c]|``: the contribution of
    component ``k`` to the logit of class ``c``, divided by the largest
    contribution in absolute value, so ``r`` lies in ``[-1, 1]`` and its largest
    absolute value is 1.  The bias of the linear layer plays no part.

    Parameters
    ----------
    z : np.ndarray [shape=(K,), (B, K) or (B, n_classes, K)]
        Pooled time activations of the interpreter.  With class-specific
        attention (multi-label tasks, one pooled vector per class), pass the
        batch ``(B, n_classes, K)`` (row ``c[b]`` of sample ``b`` is used) or,
        for one sample, the vector pooled for class ``c``.
    theta : np.ndarray [shape=(K, n_classes)]
        Weights of the linear layer of ``Theta`` (Keras ``Dense`` kernel layout).
    c : int or np.ndarray [shape=(B,)] of int
        Class (the one predicted by ``f``); one per row when ``z`` is a batch.

    Returns
    -------
    r : np.ndarray [shape=(K,) or (B, K)], float64
        All zeros for a row whose contributions are all zero.
        Keras layout: ``theta`` is the ``(K, n_classes)`` kernel; transpose a PyTorch ``(n_classes, K)`` weight.

    Raises
    ------
    audiodata.errors.ParameterError
        ``z``, ``theta`` or ``c`` of the wrong shape, or a class index outside ``[0, n_classes)``.

    Examples
    --------
    >>> relevance(np.array([1.0, 2.0, 0.5]), np.array([[1.0], [-1.0], [2.0]]), 0)
    array([ 0.5, -1. ,  0.5])
    """
    z = np.asarray(z, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if z.ndim not in (1, 2, 3):
        raise ParameterError(f"z must have shape (K,), (B, K) or (B, n_classes, K), got {z.shape}")
    if theta.ndim != 2 or theta.shape[0] != z.shape[-1]:
        raise ParameterError(f"theta must have shape (K, n_classes) with K={z.shape[-1]}, got {theta.shape}")
    c = np.asarray(c)
    if not np.issubdtype(c.dtype, np.integer):
        raise ParameterError(f"c must be an integer class index (or array of them), got {c!r}")
    if np.any((c < 0) | (c >= theta.shape[1])):
        raise ParameterError(f"class index c={c} outside [0, {theta.shape[1]}) (n_classes={theta.shape[1]})")
    if z.ndim == 1:
        if c.ndim != 0:
            raise ParameterError(f"c must be a single index for z of shape {z.shape}, got shape {c.shape}")
        contrib = z * theta[:, int(c)]
    else:
        c = np.broadcast_to(c, (z.shape[0],)) if c.ndim == 0 else c
        if c.shape != (z.shape[0],):
            raise ParameterError(f"c must have shape ({z.shape[0]},) for z of shape {z.shape}, got {c.shape}")
        if z.ndim == 3:
            if z.shape[1] != theta.shape[1]:
                raise ParameterError(f"class-specific z {z.shape} must have n_classes={theta.shape[1]} rows per sample")
            z = z[np.arange(z.shape[0]), c]
        contrib = z * theta[:, c].T
    scale = np.max(np.abs(contrib), axis=-1, keepdims=True)
    return np.divide(contrib, scale, out=np.zeros_like(contrib), where=scale > 0)


def relevant_components(r, tau):
    """The relevant components ``L_{c,x} = {k : r_k > tau}`` (L2I, Sec. III-E).

    Parameters
    ----------
    r : np.ndarray [shape=(K,) or (B, K)]
        Relevances from :func:`relevance`.
    tau : float in [0, 1)
        Threshold (the paper uses ``tau`` in ``(0, 1)``; 0 keeps every
        positively contributing component).

    Returns
    -------
    components : np.ndarray [shape=(|L|,)] of int, sorted, or a list of them (one per row)

    Raises
    ------
    audiodata.errors.ParameterError
        ``tau`` outside ``[0, 1)`` or ``r`` not of shape ``(K,)`` or ``(B, K)``.
    """
    tau = float(tau)
    if not 0.0 <= tau < 1.0:
        raise ParameterError(f"tau must lie in [0, 1), got {tau}")
    r = np.asarray(r)
    if r.ndim == 1:
        return np.flatnonzero(r > tau)
    if r.ndim == 2:
        return [np.flatnonzero(row > tau) for row in r]
    raise ParameterError(f"r must have shape (K,) or (B, K), got {r.shape}")


# --------------------------------------------------------------------------- masks
def _check_domain(mask_domain):
    if mask_domain not in MASK_DOMAINS:
        raise ParameterError(f"mask_domain must be one of {MASK_DOMAINS}, got {mask_domain!r}")


def _check_dictionary(W, H, n_frames=None, n_bins=None):
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    if W.ndim != 2:
        raise ParameterError(f"W must have shape (F, K), got {W.shape}")
    if H.ndim != 2 or H.shape[0] != W.shape[1]:
        raise ParameterError(f"H must have shape (K, T) with K={W.shape[1]} (columns of W), got {H.shape}")
    if n_bins is not None and W.shape[0] != n_bins:
        raise ParameterError(f"W has {W.shape[0]} frequency bins but the spectrogram has {n_bins}")
    if n_frames is not None and H.shape[1] != n_frames:
        raise ParameterError(f"H has {H.shape[1]} frames but the spectrogram has {n_frames}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(H))):
        raise ParameterError("W and H must be finite (found NaN or Inf)")
    if W.min() < 0 or H.min() < 0:
        raise ParameterError(f"W and H must be non-negative, got min(W)={W.min():.3g}, min(H)={H.min():.3g}")
    return W, H


def _check_spectrogram(X, W, phase=None):
    X = np.asarray(X, dtype=np.float64)
    n_bins = np.shape(W)[0]
    if X.ndim != 2:
        raise ParameterError(f"X must be a 2-D log-magnitude spectrogram of shape (T, F), got {X.shape}")
    if X.shape[1] != n_bins:
        hint = " (it looks frequency first: pass X.T)" if X.shape[0] == n_bins else ""
        raise ParameterError(f"X must be time first, shape (T, F={n_bins}), got {X.shape}{hint}")
    if phase is not None and np.shape(phase) != X.shape:
        raise ParameterError(f"phase must have the shape of X {X.shape}, got {np.shape(phase)}")
    if not np.all(np.isfinite(X)):
        raise ParameterError("X must be finite (found NaN or Inf)")
    return X


def _check_components(components, n_components):
    if components is None:
        components = np.arange(n_components)
    elif isinstance(components, (set, frozenset)):
        components = sorted(components)
    comps = np.atleast_1d(np.asarray(components))
    if comps.size == 0:
        return comps.astype(int)
    if not np.issubdtype(comps.dtype, np.integer) or comps.ndim != 1:
        raise ParameterError(f"components must be a 1-D sequence of integer indices, got {components!r}")
    if comps.min() < 0 or comps.max() >= n_components:
        raise ParameterError(f"component indices must lie in [0, {n_components}), got {comps.tolist()}")
    if np.unique(comps).size != comps.size:
        raise ParameterError(f"component indices must be distinct, got {comps.tolist()}")
    return comps


def soft_mask(W, H, components=None, *, eps=1e-10):
    """Sum of the soft masks of ``components`` (Algorithm 1, line 3).

    ``M_L = sum_{k in L} M_k = (sum_{k in L} V_k + eps |L| / K) / (sum_l V_l + eps)``
    with ``V_k = outer(H[k], W[:, k])``.  Never forms the ``(K, T, F)`` tensor.

    Parameters
    ----------
    W : np.ndarray [shape=(F, K)], non-negative
        NMF dictionary.
    H : np.ndarray [shape=(K, T)], non-negative
        Time activations (the interpreter's ``H_I(x)``, or :func:`l2i.nmf.nmf_activations`).
    components : sequence of int or None
        The set ``L``; None selects every component (the mask is then all ones).
    eps : float > 0
        Regulariser; see the module notes (the masks of all components sum to 1 exactly).

    Returns
    -------
    M : np.ndarray [shape=(T, F)], float64, values in [0, 1]

    Raises
    ------
    audiodata.errors.ParameterError
        ``eps`` <= 0, ``W``/``H`` of the wrong shape, not finite or negative, or ``components``
        that are not distinct indices in ``[0, K)``.
    """
    if not eps > 0:
        raise ParameterError(f"eps must be positive, got {eps}")
    W, H = _check_dictionary(W, H)
    comps = _check_components(components, W.shape[1])
    total = H.T @ W.T
    part = H[comps].T @ W[:, comps].T
    return (part + eps * comps.size / W.shape[1]) / (total + eps)


def _masked_logmag(X, mask, mask_domain):
    """Apply ``mask`` [shape=(T, F)] to ``X`` in the chosen domain; the result is a log-magnitude."""
    if mask_domain == "logmag":
        return mask * X
    return np.log1p(mask * np.expm1(X))


def interpretation_spectrogram(X, W, H, components, *, mask_domain="logmag", eps=1e-10):
    """``X_int = sum_{k in L} X_k``, the masked spectrogram of ``components`` (Algorithm 1, lines 3 and 6).

    Parameters
    ----------
    X : np.ndarray [shape=(T, F)]
        Input log-magnitude spectrogram ``log(1 + |STFT|)``, time first.
    W : np.ndarray [shape=(F, K)]
    H : np.ndarray [shape=(K, T)]
    components : sequence of int
        The set ``L`` (e.g. from :func:`relevant_components`).
    mask_domain : {'logmag', 'magnitude'}
        Where the mask is applied: to ``X`` (the paper) or to ``|STFT| = exp(X) - 1``.
    eps : float > 0

    Returns
    -------
    X_int : np.ndarray [shape=(T, F)], float64
        A log-magnitude spectrogram in both cases, ready for :func:`audiodata.features.logmag_to_audio`.
    """
    _check_domain(mask_domain)
    X = _check_spectrogram(X, W)
    W, H = _check_dictionary(W, H, n_frames=X.shape[0], n_bins=X.shape[1])
    return _masked_logmag(X, soft_mask(W, H, components, eps=eps), mask_domain)


def remove_components(X, W, H, components, *, mask_domain="logmag", eps=1e-10):
    """``X_2 = X - sum_{l in L} X_l``: the input with ``components`` removed (L2I, Sec. IV-C).

    Equal to ``(1 - M_L) * X`` in the mask domain, i.e. the interpretation
    spectrogram of the complement of ``L``.

    Parameters
    ----------
    X : np.ndarray [shape=(T, F)]
    W : np.ndarray [shape=(F, K)]
    H : np.ndarray [shape=(K, T)]
    components : sequence of int
    mask_domain : {'logmag', 'magnitude'}
    eps : float > 0

    Returns
    -------
    X_2 : np.ndarray [shape=(T, F)], float64, log-magnitude
    """
    _check_domain(mask_domain)
    X = _check_spectrogram(X, W)
    W, H = _check_dictionary(W, H, n_frames=X.shape[0], n_bins=X.shape[1])
    keep = 1.0 - soft_mask(W, H, components, eps=eps)
    return _masked_logmag(X, np.clip(keep, 0.0, 1.0), mask_domain)


# --------------------------------------------------------------------------- audio
def _check_stft(stft, X=None):
    """``stft`` as :class:`audiodata.features.STFTParams`, checked against the bins of ``X`` [shape=(T, F)]."""
    if not isinstance(stft, STFTParams):
        raise ParameterError(f"stft must be an audiodata.features.STFTParams, got {type(stft).__name__}")
    if X is not None and np.shape(X)[1] != stft.n_bins:
        raise ParameterError(f"X has {np.shape(X)[1]} frequency bins but n_fft={stft.n_fft} gives {stft.n_bins}")
    return stft


def interpret(X, phase, W, H, components, *, stft, length=None, mask_domain="logmag", eps=1e-10):
    """The interpretation audio ``x_int = INV(X_int, P_x)`` (Algorithm 1, lines 6-7).

    Parameters
    ----------
    X : np.ndarray [shape=(T, F)]
        Input log-magnitude spectrogram, time first (``log_magnitude_spectrogram(y, return_phase=True)[0]``).
    phase : np.ndarray [shape=(T, F)]
        Input phase ``P_x`` in radians.
    W : np.ndarray [shape=(F, K)]
    H : np.ndarray [shape=(K, T)]
    components : sequence of int
        The relevant components ``L_{c,x}``.
    stft : audiodata.features.STFTParams
        The STFT ``X`` was computed with (``F = 1 + n_fft // 2``).
    length : int or None
        Number of output samples (pass the input's length).
    mask_domain : {'logmag', 'magnitude'}
        See the module notes; 'logmag' is Algorithm 1.
    eps : float > 0

    Returns
    -------
    x_int : np.ndarray [shape=(n,)], float32

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from audiodata.features import log_magnitude_spectrogram
    >>> y = rng.standard_normal(8192).astype(np.float32)
    >>> stft = STFTParams(n_fft=512, hop_length=256)
    >>> X, phase = log_magnitude_spectrogram(y, return_phase=True, **stft.stft_kwargs())
    >>> W, H = rng.random((257, 4)), rng.random((4, X.shape[0]))
    >>> x_all = interpret(X, phase, W, H, [0, 1, 2, 3], stft=stft, length=y.size)
    >>> bool(np.allclose(x_all, y, atol=1e-4))
    True
    """
    X = _check_spectrogram(X, W, phase)
    _check_stft(stft, X)
    X_int = interpretation_spectrogram(X, W, H, components, mask_domain=mask_domain, eps=eps)
    return stft.invert(X_int, phase, length=length)


def component_audio(X, phase, W, H, components, *, stft, length=None, mask_domain="logmag", eps=1e-10):
    """The signal ``x_k = INV(X_k, P_x)`` of each component in ``components`` (Algorithm 1, lines 2-5).

    Parameters
    ----------
    X, phase, W, H, stft, length, mask_domain, eps
        As in :func:`interpret`.
    components : sequence of int
        Components to synthesise, in the order wanted.

    Returns
    -------
    x_k : np.ndarray [shape=(len(components), n)], float32
        Row ``i`` is the signal of component ``components[i]``.
    """
    X = _check_spectrogram(X, W, phase)
    comps = _check_components(components, np.shape(W)[1])
    signals = [interpret(X, phase, W, H, [k], stft=stft, length=length, mask_domain=mask_domain, eps=eps)
               for k in comps]
    if not signals:
        n = length if length is not None else 0
        return np.zeros((0, n), dtype=np.float32)
    return np.stack(signals)


def removal_audio(X, phase, W, H, components, *, stft, length=None, mask_domain="logmag", eps=1e-10):
    """``x_2 = INV(X_2, P_x)``: the input with ``components`` removed (L2I, Sec. IV-C).

    Parameters
    ----------
    X, phase, W, H, components, stft, length, mask_domain, eps
        As in :func:`interpret`.

    Returns
    -------
    x_2 : np.ndarray [shape=(n,)], float32
    """
    X = _check_spectrogram(X, W, phase)
    _check_stft(stft, X)
    X_2 = remove_components(X, W, H, components, mask_domain=mask_domain, eps=eps)
    return stft.invert(X_2, phase, length=length)


# --------------------------------------------------------------------------- files
def write_interpretation(folder, X, phase, W, H, components, *, stft, relevance=None, tau=None, title=None,
                         length=None, mask_domain="logmag", eps=1e-10):
    """Write an interpretation to ``folder``: audio of ``L`` and of each component, and a figure.

    Files written: ``interpretation.wav`` (``x_int``), ``component_<k>.wav`` for
    each ``k`` in ``components``, and ``interpretation.png`` showing the input
    spectrogram, the interpretation spectrogram and, when ``relevance`` is
    given, the bar chart of the relevances with the selected components
    highlighted and the threshold ``tau`` drawn.  WAV files are 16-bit PCM,
    clipped to [-1, 1] (:func:`audiodata.io.write_audio`).

    Parameters
    ----------
    folder : str or pathlib.Path
        Created if needed.
    X, phase, W, H, components
        As in :func:`interpret`.
    stft : audiodata.features.STFTParams
        As in :func:`interpret`, with the sample rate ``sr`` of the input (for the WAV files
        and the time axis of the figure).
    relevance : np.ndarray [shape=(K,)], optional
        Relevances from :func:`relevance`, for the bar chart.
    tau : float, optional
        Threshold drawn on the bar chart.
    title : str, optional
        Figure title (e.g. the class name and the file).
    length, mask_domain, eps
        As in :func:`interpret`.

    Returns
    -------
    paths : dict
        ``{"interpretation": Path, "components": {k: Path}, "figure": Path}``.

    Raises
    ------
    audiodata.errors.ParameterError
        An input refused by :func:`interpret`, or an ``stft`` without a sample rate.
    """
    folder = Path(folder)
    X = _check_spectrogram(X, W, phase)
    _check_stft(stft, X)
    if stft.sr is None:
        raise ParameterError("write_interpretation needs the sample rate: give stft an sr")
    comps = _check_components(components, np.shape(W)[1])
    X_int = interpretation_spectrogram(X, W, H, comps, mask_domain=mask_domain, eps=eps)
    x_int = stft.invert(X_int, phase, length=length)
    paths = {"interpretation": write_audio(folder / "interpretation.wav", x_int, stft.sr), "components": {}}
    for k, x_k in zip(comps, component_audio(X, phase, W, H, comps, stft=stft, length=length,
                                             mask_domain=mask_domain, eps=eps)):
        paths["components"][int(k)] = write_audio(folder / f"component_{int(k)}.wav", x_k, stft.sr)
    paths["figure"] = _plot_interpretation(folder / "interpretation.png", X, X_int, stft.sr, stft.hop_length, comps,
                                           relevance, tau, title)
    return paths


def _plot_interpretation(path, X, X_int, sr, hop_length, comps, relevance, tau, title):
    """Spectrograms of the input and the interpretation (and relevance bars) to a PNG, with the Agg canvas."""
    n_rows = 3 if relevance is not None else 2
    fig = Figure(figsize=(8, 2.6 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 1)
    T, F = X.shape
    extent = (0, T * hop_length / sr, 0, sr / 2 / 1000)
    vmax = float(X.max()) if X.size else 1.0
    for ax, S, name in ((axes[0], X, "input"), (axes[1], X_int, f"interpretation, components {comps.tolist()}")):
        im = ax.imshow(S.T, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=vmax, cmap="magma")
        ax.set(title=name, xlabel="time (s)", ylabel="frequency (kHz)")
        fig.colorbar(im, ax=ax, label="log(1 + |STFT|)")
    if relevance is not None:
        r = np.asarray(relevance, dtype=np.float64)
        colors = np.where(np.isin(np.arange(r.size), comps), "tab:red", "tab:gray")
        axes[2].bar(np.arange(r.size), r, color=colors)
        if tau is not None:
            axes[2].axhline(tau, color="k", linestyle="--", linewidth=1, label=f"tau = {tau:g}")
            axes[2].legend(loc="upper right")
        axes[2].set(title="relevance (selected in red)", xlabel="component k", ylabel="r_k", ylim=(-1.05, 1.05))
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
