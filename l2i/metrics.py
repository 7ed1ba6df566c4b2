"""Evaluation of L2I interpretations: fidelity and faithfulness (L2I, Sec. IV-C, V-A).

Fidelity (how well the interpreter's output ``Theta(H_I(x))`` agrees with the
classifier's output ``f(x)``) uses each dataset's classification metric with
the classifier's output as ground truth:

* ESC-50 (multi-class): :func:`top_k_fidelity`.
* SONYC-UST (multi-label, unbalanced): :func:`auprc` (macro and micro) and
  :func:`max_f1`, with class 'non-machinery-impact' left out via ``ignore``.
* OpenMIC-2018 (multi-label, partially annotated): :func:`weighted_f1`.

For the multi-label metrics, binarise the classifier's probabilities with
:func:`binarize` to get the targets.

Faithfulness (Sec. IV-C, Eq. 7) removes the relevant components from the input
and measures the drop of the classifier's probability for the interpreted class:
``FF_x = f(x)_c - f(x_2)_c`` with ``x_2 = INV(X - sum_{l in L} X_l, P_x)``.
:func:`faithfulness` computes it for one sample, :func:`faithfulness_sweep` for
several thresholds ``tau`` at once, :func:`random_baseline` for the Random
Baseline (as many components removed, drawn at random among the non-relevant
ones), and :func:`ff_median` gives ``FF_median`` over a set (per class if asked).

The classifier enters only as a plain callable ``classify(batch) -> probs``
taking audio [shape=(B, n)] and returning probabilities [shape=(B, n_classes)]
(softmax or sigmoid outputs).  A model on features is wrapped by the caller,
e.g. ``lambda ys: model.predict(np.stack([mel(y) for y in ys]))``.

References
----------
- Parekh et al., "Tackling Interpretability in Audio Classification Networks
  with Non-negative Matrix Factorization", IEEE/ACM TASLP 2024, Sec. IV-C
  (fidelity, faithfulness ``FF_x``, ``FF_median``, Random Baseline), Sec. V-A.
- Humphrey, Durand, McFee, "OpenMIC-2018: an open dataset for multiple
  instrument recognition", ISMIR 2018 (per-instrument F1 weighted over the
  positive and negative class, on annotated labels only).
- Cartwright et al., "SONYC Urban Sound Tagging", DCASE 2019/2020 Task 5 (AUPRC).
"""
import warnings

import numpy as np

from audiodata.errors import ParameterError

from .interpretation import _check_components, _check_spectrogram, relevant_components, removal_audio

__all__ = [
    "auprc",
    "binarize",
    "faithfulness",
    "faithfulness_sweep",
    "ff_median",
    "max_f1",
    "random_baseline",
    "random_components",
    "top_k_fidelity",
    "weighted_f1",
]


# --------------------------------------------------------------------------- helpers
def _as_matrix(a, name, n_rows=None, n_cols=None):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ParameterError(f"{name} must have shape (N, n_classes), got {a.shape}")
    if (n_rows is not None and a.shape[0] != n_rows) or (n_cols is not None and a.shape[1] != n_cols):
        raise ParameterError(f"{name} must have shape {(n_rows, n_cols)}, got {a.shape}")
    return a


def _kept_classes(n_classes, ignore):
    ignore = np.asarray(list(ignore) if ignore is not None else [], dtype=int)
    if ignore.size and (ignore.min() < 0 or ignore.max() >= n_classes):
        raise ParameterError(f"ignore holds class indices outside [0, {n_classes}): {ignore.tolist()}")
    return np.setdiff1d(np.arange(n_classes), ignore)


def _check_binary(y, name):
    if not np.all(np.isin(y, (0, 1))):
        raise ParameterError(f"{name} must hold only 0 and 1 (binarize probabilities first), got {np.unique(y)[:5]}")
    return y.astype(int)


def binarize(probs, threshold=0.5):
    """Binary decisions ``probs > threshold`` [shape=(N, n_classes)], int.

    Parameters
    ----------
    probs : np.ndarray [shape=(N, n_classes)]
        Sigmoid outputs (e.g. of the classifier, used as fidelity targets).
    threshold : float or np.ndarray [shape=(n_classes,)]
        One threshold, or one per class.

    Returns
    -------
    y : np.ndarray [shape=(N, n_classes)], int in {0, 1}
    """
    return (np.asarray(probs) > np.asarray(threshold)).astype(int)


# --------------------------------------------------------------------------- fidelity
def top_k_fidelity(classifier_probs, interpreter_probs, k=1):
    """Fraction of samples whose class predicted by ``f`` is among the interpreter's top ``k`` (Sec. IV-C).

    Parameters
    ----------
    classifier_probs : np.ndarray [shape=(N, n_classes)]
        Output of ``f`` (scores or probabilities; only the argmax is used).
    interpreter_probs : np.ndarray [shape=(N, n_classes)]
        Output of ``Theta(H_I(x))``.
    k : int >= 1

    Returns
    -------
    fidelity : float in [0, 1]
        Ties in the interpreter's scores count in favour: the class of ``f``
        is in the top ``k`` when fewer than ``k`` classes score strictly higher.
    """
    interpreter_probs = _as_matrix(interpreter_probs, "interpreter_probs")
    classifier_probs = _as_matrix(classifier_probs, "classifier_probs", *interpreter_probs.shape)
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= interpreter_probs.shape[1]):
        raise ParameterError(f"k must be an integer in [1, {interpreter_probs.shape[1]}], got {k!r}")
    pred = np.argmax(classifier_probs, axis=1)
    score = interpreter_probs[np.arange(len(pred)), pred]
    rank = (interpreter_probs > score[:, None]).sum(axis=1)
    return float(np.mean(rank < k))


def auprc(y_true, y_score, average="macro", ignore=()):
    """Area under the precision-recall curve (average precision, scikit-learn).

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
        Targets (for fidelity: the classifier's binarised output, :func:`binarize`).
    y_score : np.ndarray [shape=(N, n_classes)]
        Scores (for fidelity: the interpreter's probabilities).
    average : {'macro', 'micro'}
        'macro': mean of the per-class AP; 'micro': AP of all (sample, class) pairs pooled.
    ignore : sequence of int
        Classes left out entirely (SONYC-UST: 'non-machinery-impact', Sec. V-A).

    Returns
    -------
    auprc : float
        For 'macro', classes without a positive sample (AP undefined) are left
        out with a warning naming them.
    """
    from sklearn.metrics import average_precision_score

    if average not in ("macro", "micro"):
        raise ParameterError(f"average must be 'macro' or 'micro', got {average!r}")
    y_score = _as_matrix(y_score, "y_score")
    y_true = _check_binary(_as_matrix(y_true, "y_true", *y_score.shape), "y_true")
    keep = _kept_classes(y_true.shape[1], ignore)
    y_true, y_score = y_true[:, keep], y_score[:, keep]
    if average == "micro":
        if not y_true.any():
            raise ParameterError("micro-AUPRC is undefined: no positive label in y_true")
        return float(average_precision_score(y_true.ravel(), y_score.ravel()))
    has_pos = y_true.any(axis=0)
    if not has_pos.any():
        raise ParameterError("macro-AUPRC is undefined: no class has a positive label in y_true")
    if not has_pos.all():
        warnings.warn(f"classes {keep[~has_pos].tolist()} have no positive sample; left out of macro-AUPRC",
                      stacklevel=2)
    return float(np.mean([average_precision_score(y_true[:, j], y_score[:, j]) for j in np.flatnonzero(has_pos)]))


def max_f1(y_true, y_score, average="micro", ignore=()):
    """Largest F1-score over all decision thresholds (the "max-F1" reported for SONYC-UST, Sec. V-A).

    Our reading of the paper's "max-F1": the maximum over thresholds of
    ``F1 = 2 P R / (P + R)`` along the precision-recall curve; with
    ``average='micro'`` the curve pools every (sample, class) pair, with
    'macro' the per-class maxima are averaged.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
    y_score : np.ndarray [shape=(N, n_classes)]
    average : {'micro', 'macro'}
    ignore : sequence of int
        Classes left out.

    Returns
    -------
    f1 : float in [0, 1]
    """
    from sklearn.metrics import precision_recall_curve

    if average not in ("macro", "micro"):
        raise ParameterError(f"average must be 'macro' or 'micro', got {average!r}")
    y_score = _as_matrix(y_score, "y_score")
    y_true = _check_binary(_as_matrix(y_true, "y_true", *y_score.shape), "y_true")
    keep = _kept_classes(y_true.shape[1], ignore)
    y_true, y_score = y_true[:, keep], y_score[:, keep]

    def best(t, s):
        if not t.any():
            return np.nan
        p, r, _ = precision_recall_curve(t, s)
        f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
        return float(f1.max())

    if average == "micro":
        return best(y_true.ravel(), y_score.ravel())
    values = np.array([best(y_true[:, j], y_score[:, j]) for j in range(y_true.shape[1])])
    if np.isnan(values).any():
        warnings.warn(f"classes {keep[np.isnan(values)].tolist()} have no positive sample; left out of max-F1",
                      stacklevel=2)
    return float(np.nanmean(values))


def weighted_f1(y_true, y_pred, mask=None, ignore=(), return_per_class=False):
    """OpenMIC-2018's score: per class, F1 averaged over the positive and negative class weighted by support.

    For each class ``j``, on the samples where ``mask[:, j]`` is true (the
    annotated labels), ``F1_j = (n_pos F1(positive) + n_neg F1(negative)) /
    (n_pos + n_neg)`` (scikit-learn's ``average='weighted'`` on the two labels,
    as in the OpenMIC baseline's classification report); the score is the mean
    of ``F1_j`` over classes.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
        Targets (for fidelity: the classifier's binarised output).
    y_pred : np.ndarray [shape=(N, n_classes)], {0, 1}
        Decisions (for fidelity: the interpreter's binarised output).
    mask : np.ndarray [shape=(N, n_classes)] of bool, optional
        Which (sample, class) labels count; all by default.
    ignore : sequence of int
        Classes left out.
    return_per_class : bool
        Also return ``F1_j`` [shape=(n_kept,)] (NaN for a class without any annotated sample).

    Returns
    -------
    score : float
        Mean over classes with at least one annotated sample.
    per_class : np.ndarray [shape=(n_kept,)], only if ``return_per_class``
    """
    y_true = _check_binary(_as_matrix(y_true, "y_true"), "y_true")
    y_pred = _check_binary(_as_matrix(y_pred, "y_pred", *y_true.shape), "y_pred")
    mask = np.ones(y_true.shape, dtype=bool) if mask is None else _as_matrix(mask, "mask", *y_true.shape)
    mask = mask.astype(bool)
    keep = _kept_classes(y_true.shape[1], ignore)
    per_class = np.full(keep.size, np.nan)
    for i, j in enumerate(keep):
        t, p = y_true[mask[:, j], j], y_pred[mask[:, j], j]
        if t.size == 0:
            continue
        score = 0.0
        for label in (0, 1):
            tp = np.sum((t == label) & (p == label))
            denom = np.sum(t == label) + np.sum(p == label)
            score += np.sum(t == label) * (2 * tp / denom if denom else 0.0)
        per_class[i] = score / t.size
    if np.isnan(per_class).all():
        raise ParameterError("weighted F1 is undefined: no annotated label in mask")
    result = float(np.nanmean(per_class))
    return (result, per_class) if return_per_class else result


# --------------------------------------------------------------------------- faithfulness
def _class_probability(classify, signals, c):
    probs = np.asarray(classify(np.stack(signals).astype(np.float32)))
    if probs.ndim != 2 or probs.shape[0] != len(signals):
        raise ParameterError(f"classify must return probabilities of shape ({len(signals)}, n_classes), "
                             f"got {probs.shape}")
    if not 0 <= c < probs.shape[1]:
        raise ParameterError(f"class c={c} outside [0, {probs.shape[1]})")
    return probs[:, c].astype(np.float64)


def _reference_audio(x, X, phase, stft):
    if x is not None:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ParameterError(f"x must be a mono signal of shape (n,), got {x.shape}")
        if stft.get("length") is None:
            stft = dict(stft, length=x.size)
        return x, stft
    from .interpretation import _invert

    keys = ("n_fft", "hop_length", "win_length", "window", "center", "length")
    return _invert(np.asarray(X, dtype=np.float64), phase, *(stft[k] for k in keys)), stft


def _stft_kwargs(n_fft, hop_length, win_length, window, center, length, mask_domain, eps):
    return dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center,
                length=length, mask_domain=mask_domain, eps=eps)


def faithfulness(classify, X, phase, W, H, components, c, *, x=None, n_fft=1024, hop_length=512,
                 win_length=None, window="hann", center=True, length=None, mask_domain="logmag", eps=1e-10):
    """``FF_x = f(x)_c - f(x_2)_c``, the drop in probability when ``components`` are removed (Eq. 7).

    ``x_2 = INV(X - sum_{l in L} X_l, P_x)`` (:func:`l2i.interpretation.removal_audio`).
    Positive values mean the removed components mattered for class ``c``.

    Parameters
    ----------
    classify : callable
        ``classify(audio [shape=(B, n)]) -> probabilities [shape=(B, n_classes)]``.
    X : np.ndarray [shape=(T, F)]
        Input log-magnitude spectrogram, time first.
    phase : np.ndarray [shape=(T, F)]
        Input phase.
    W : np.ndarray [shape=(F, K)]
    H : np.ndarray [shape=(K, T)]
    components : sequence of int
        The set ``L_{c,x}`` to remove.
    c : int
        The interpreted class (the one predicted by ``f``).
    x : np.ndarray [shape=(n,)], optional
        The input audio for ``f(x)``.  By default ``INV(X, P_x)``, the input
        resynthesised from its STFT, so that removal is the only difference
        between the two signals (an empty ``L`` then gives exactly 0).
    n_fft, hop_length, win_length, window, center, length, mask_domain, eps
        As in :func:`l2i.interpretation.interpret` (``length`` defaults to ``x.size`` when ``x`` is given).

    Returns
    -------
    ff : float in [-1, 1]
    """
    stft = _stft_kwargs(n_fft, hop_length, win_length, window, center, length, mask_domain, eps)
    X = _check_spectrogram(X, W, phase)
    x_ref, stft = _reference_audio(x, X, phase, stft)
    x_2 = removal_audio(X, phase, W, H, components, **stft)
    p = _class_probability(classify, [x_ref, x_2], int(c))
    return float(p[0] - p[1])


def faithfulness_sweep(classify, X, phase, W, H, r, c, taus, *, x=None, n_fft=1024, hop_length=512,
                       win_length=None, window="hann", center=True, length=None, mask_domain="logmag",
                       eps=1e-10):
    """``FF_x`` for several thresholds ``tau`` (Table V), with one call of ``classify``.

    For each ``tau``, ``L = {k : r_k > tau}`` is removed as in :func:`faithfulness`;
    identical sets are synthesised and classified once.

    Parameters
    ----------
    classify, X, phase, W, H, c, x
        As in :func:`faithfulness`.
    r : np.ndarray [shape=(K,)]
        Relevances of the components for class ``c`` (:func:`l2i.interpretation.relevance`).
    taus : sequence of float in [0, 1)
    n_fft, hop_length, win_length, window, center, length, mask_domain, eps
        As in :func:`faithfulness`.

    Returns
    -------
    ff : np.ndarray [shape=(len(taus),)], float64
    n_removed : np.ndarray [shape=(len(taus),)], int
        ``|L_{c,x}|`` at each threshold (its mean sets the Random Baseline's size).
    """
    stft = _stft_kwargs(n_fft, hop_length, win_length, window, center, length, mask_domain, eps)
    X = _check_spectrogram(X, W, phase)
    r = np.asarray(r)
    if r.shape != (np.shape(W)[1],):
        raise ParameterError(f"r must have shape (K={np.shape(W)[1]},), got {r.shape}")
    x_ref, stft = _reference_audio(x, X, phase, stft)
    sets = [tuple(relevant_components(r, tau).tolist()) for tau in np.atleast_1d(taus)]
    unique = list(dict.fromkeys(sets))
    signals = [x_ref] + [removal_audio(X, phase, W, H, list(s), **stft) for s in unique]
    p = _class_probability(classify, signals, int(c))
    drop = {s: p[0] - p[i + 1] for i, s in enumerate(unique)}
    return np.array([drop[s] for s in sets]), np.array([len(s) for s in sets])


def random_components(n_components, size, exclude=(), seed=None):
    """``size`` distinct components drawn uniformly among those not in ``exclude`` (Random Baseline, Sec. IV-C).

    Parameters
    ----------
    n_components : int
        ``K``.
    size : int >= 0
        How many to draw (the paper: the mean ``|L_{c,x}|``, rounded).
    exclude : sequence of int
        Components never drawn (the relevant ones, ``L_{c,x}``).
    seed : int, np.random.Generator or None

    Returns
    -------
    components : np.ndarray [shape=(size,)] of int, sorted
    """
    exclude = _check_components(list(exclude), n_components)
    pool = np.setdiff1d(np.arange(n_components), exclude)
    if not (isinstance(size, (int, np.integer)) and 0 <= size <= pool.size):
        raise ParameterError(f"size must be an integer in [0, {pool.size}] (K={n_components} minus "
                             f"{exclude.size} excluded), got {size!r}")
    return np.sort(np.random.default_rng(seed).choice(pool, size=int(size), replace=False))


def random_baseline(classify, X, phase, W, H, c, relevant, n_remove=None, *, seed=None, x=None, n_fft=1024,
                    hop_length=512, win_length=None, window="hann", center=True, length=None,
                    mask_domain="logmag", eps=1e-10):
    """``FF_x`` of the Random Baseline: remove ``n_remove`` random non-relevant components (Sec. IV-C).

    Parameters
    ----------
    classify, X, phase, W, H, c, x
        As in :func:`faithfulness`.
    relevant : sequence of int
        ``L_{c,x}``; these are never removed.
    n_remove : int, optional
        How many components to remove; the paper uses the mean ``|L_{c,x}|`` over
        the test set (per class for multi-label data).  Default ``len(relevant)``.
    seed : int, np.random.Generator or None
    n_fft, hop_length, win_length, window, center, length, mask_domain, eps
        As in :func:`faithfulness`.

    Returns
    -------
    ff : float
    removed : np.ndarray [shape=(n_remove,)] of int
        The components drawn.
    """
    n_remove = len(relevant) if n_remove is None else n_remove
    removed = random_components(np.shape(W)[1], n_remove, exclude=relevant, seed=seed)
    ff = faithfulness(classify, X, phase, W, H, removed, c, x=x, n_fft=n_fft, hop_length=hop_length,
                      win_length=win_length, window=window, center=center, length=length,
                      mask_domain=mask_domain, eps=eps)
    return ff, removed


def ff_median(ff, classes=None, ignore=()):
    """``FF_median``: the median of ``FF_x`` over a set, NaN values left out (Sec. IV-C).

    Parameters
    ----------
    ff : np.ndarray [shape=(N,) or (N, n_taus)]
        ``FF_x`` per sample (per threshold in columns, e.g. from :func:`faithfulness_sweep`).
    classes : np.ndarray [shape=(N,)] of int, optional
        The interpreted class of each value; if given, the medians are per class
        (Fig. 2 and 3).
    ignore : sequence of int
        Classes left out (with ``classes``).

    Returns
    -------
    median : float or np.ndarray [shape=(n_taus,)], or dict {class: median} if ``classes`` is given
    """
    ff = np.asarray(ff, dtype=np.float64)
    if ff.ndim not in (1, 2):
        raise ParameterError(f"ff must have shape (N,) or (N, n_taus), got {ff.shape}")
    if classes is None:
        median = np.nanmedian(ff, axis=0)
        return float(median) if ff.ndim == 1 else median
    classes = np.asarray(classes)
    if classes.shape != (ff.shape[0],):
        raise ParameterError(f"classes must have shape ({ff.shape[0]},), got {classes.shape}")
    ignored = set(int(j) for j in ignore)
    return {int(j): ff_median(ff[classes == j]) for j in np.unique(classes) if int(j) not in ignored}
