"""Evaluation of L2I interpretations: fidelity and faithfulness (L2I, Sec. IV-C, V-A).

Fidelity (how well the interpreter's output ``Theta(H_I(x))`` agrees with the
classifier's output ``f(x)``) uses each dataset's classification metric with
the classifier's output as ground truth:

* ESC-50 (multi-class): :func:`top_k_fidelity`.
* SONYC-UST (multi-label, unbalanced): the authors' AUPRC, :func:`threshold_auprc`
  (macro and micro) and :func:`threshold_max_f1`: a precision-recall curve over the 11
  thresholds :data:`PRC_THRESHOLDS` of the interpreter's output, targets ``f(x)``
  binarised with the per-class thresholds :data:`SONYC_UST_TARGET_THRESHOLDS`, class
  'non-machinery-impact' left out of the macro average. Also reported (keys ``*_ap``):
  scikit-learn's average precision :func:`auprc` and :func:`max_f1` with ``f``
  binarised at 0.5 and 'non-machinery-impact' left out of all three.
* OpenMIC-2018 (multi-label, partially annotated): :func:`weighted_f1`.

:func:`fidelity_scores` and :func:`task_scores` pick each dataset's metrics; training
(``l2i.training``), evaluation (``l2i.pipeline.evaluate_run``) and the baselines all
call them, so every table reads one definition.

For the multi-label metrics, binarise the classifier's probabilities with
:func:`binarize` to get the targets.

Faithfulness (Sec. IV-C, Eq. 7) removes the relevant components from the input
and measures the drop of the classifier's probability for the interpreted class:
``FF_x = f(x)_c - f(x_2)_c`` with ``x_2 = INV(X - sum_{l in L} X_l, P_x)``.
:func:`removal_drops` computes it for several (class, component set) pairs of one
input with one call of the classifier; :func:`faithfulness` (one sample),
:func:`faithfulness_sweep` (several thresholds ``tau``) and :func:`random_baseline`
are built on it. The Random Baseline removes :func:`random_baseline_size` components
(the mean ``|L_{c,x}|``, rounded, per class for multi-label data) drawn by
:func:`random_baseline_components` among the non-relevant ones, and :func:`ff_median`
gives ``FF_median`` over a set (per class if asked).

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
- The authors' code, github.com/jayneelparekh/L2I-code, ``audint_posthoc.py``: ``test()``
  (l. 680-764: 11 thresholds l. 689-691, f binarised with ``class_thresh`` l. 719) and
  ``calc_PRC_metrics`` (l. 983-999); ``class_thresh`` for SONYC-UST at l. 119.
"""
import warnings

import numpy as np
from sklearn.metrics import precision_recall_curve

from audiodata.errors import ParameterError
from audioruns.metrics import _as_matrix, _check_binary, _kept_classes, accuracy, average_precision, top_k_agreement

from .interpretation import (_check_components, _check_spectrogram, _check_stft, relevant_components,
                             removal_audio)

__all__ = [
    "IGNORED_CLASSES",
    "PRC_THRESHOLDS",
    "SONYC_UST_TARGET_THRESHOLDS",
    "auprc",
    "binarize",
    "faithfulness",
    "faithfulness_sweep",
    "ff_median",
    "fidelity_scores",
    "ignored_classes",
    "max_f1",
    "random_baseline",
    "random_baseline_components",
    "random_baseline_size",
    "random_components",
    "removal_drops",
    "target_thresholds",
    "task_scores",
    "threshold_auprc",
    "threshold_max_f1",
    "top_k_fidelity",
    "weighted_f1",
]

#: Classes left out of the class-wise fidelity metrics (macro-AUPRC) and of faithfulness (Sec. V-A).
IGNORED_CLASSES = {"sonyc_ust": ("non-machinery-impact",)}
#: Thresholds on the interpreter's probabilities along the authors' precision-recall curve, in decreasing
#: order (audint_posthoc.py, ``test()``, l. 689-691).
PRC_THRESHOLDS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
#: Per-class thresholds turning f's probabilities into the SONYC-UST fidelity targets (``f(x)_c > t_c``):
#: the authors' ``class_thresh`` of audint_posthoc.py l. 119, used by ``test()`` (l. 719), which prints the
#: fidelity AUPRCs. (l. 1311 sets the last one, 'dog', to 0.5 for the faithfulness evaluation only.)
SONYC_UST_TARGET_THRESHOLDS = {"engine": 0.6, "machinery-impact": 0.6, "non-machinery-impact": 0.5,
                               "powered-saw": 0.6, "alert-signal": 0.5, "music": 0.6, "human-voice": 0.6,
                               "dog": 0.6}
_TARGET_THRESHOLDS = {"sonyc_ust": SONYC_UST_TARGET_THRESHOLDS}


# --------------------------------------------------------------------------- helpers
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
        is in the top ``k`` when fewer than ``k`` classes score strictly higher
        (:func:`audioruns.metrics.top_k_agreement`).
    """
    return top_k_agreement(classifier_probs, interpreter_probs, k=k)


def auprc(y_true, y_score, average="macro", ignore=(), mask=None):
    """Area under the precision-recall curve (average precision, scikit-learn).

    :func:`audioruns.metrics.average_precision`, with ``average`` and ``ignore`` also positional.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
        Targets (for fidelity: the classifier's binarised output, :func:`binarize`).
    y_score : np.ndarray [shape=(N, n_classes)]
        Scores (for fidelity: the interpreter's probabilities).
    average : {'macro', 'micro'}
    ignore : sequence of int
        Classes left out entirely (SONYC-UST: 'non-machinery-impact', Sec. V-A).
    mask : np.ndarray [shape=(N, n_classes)] of bool, optional
        The annotated labels (OpenMIC-2018); all by default.

    Returns
    -------
    auprc : float
        As :func:`audioruns.metrics.average_precision` (which says what each option does).
    """
    return average_precision(y_true, y_score, average=average, ignore=ignore, mask=mask)


def _threshold_counts(y_true, y_score, thresholds):
    """tp, fp, fn [shape=(n_thresholds, n_classes)] of the decisions ``y_score > t`` against ``y_true``."""
    pred = y_score[None, :, :] > np.asarray(thresholds, dtype=np.float64)[:, None, None]
    pos = y_true.astype(bool)[None, :, :]
    return (pred & pos).sum(axis=1), (pred & ~pos).sum(axis=1), (~pred & pos).sum(axis=1)


def _area(recall, precision):
    """Trapezoidal area under the curve through (0, 1), the points, (1, 0) (the authors' ``auc`` call)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


def _check_thresholds(thresholds):
    t = np.sort(np.asarray(thresholds, dtype=np.float64).ravel())[::-1]
    if t.size == 0 or not np.all((t >= 0) & (t <= 1)):
        raise ParameterError(f"thresholds must be numbers in [0, 1], got {thresholds!r}")
    return t


def threshold_auprc(y_true, y_score, average="macro", thresholds=PRC_THRESHOLDS, ignore=()):
    """The authors' AUPRC: a precision-recall curve through a few thresholds, trapezoidal area (SONYC-UST fidelity).

    As ``calc_PRC_metrics`` of the authors' ``audint_posthoc.py`` (l. 983-999) on the counts of
    ``test()`` (l. 719-729): for each threshold ``t`` (decreasing), the decisions ``y_score > t``
    give true/false positives and false negatives against ``y_true``; precision
    ``(tp + 1e-9) / (tp + fp + 1e-9)`` (1 when nothing is predicted), recall ``tp / (tp + fn)``;
    the points are framed by (recall 0, precision 1) and (recall 1, precision 0) and the area
    is taken with the trapezoidal rule. 'micro' pools the counts over the classes (with
    ``1e-9`` added to the numerator and denominators of both precision and recall, as the
    authors do); 'macro' averages the per-class areas.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N, n_classes)], {0, 1}
        Targets (for fidelity: f's output binarised per class, :func:`target_thresholds`).
    y_score : np.ndarray [shape=(N, n_classes)]
        The interpreter's probabilities.
    average : {'macro', 'micro'}
    thresholds : sequence of float in [0, 1]
        Default: the authors' 11, :data:`PRC_THRESHOLDS`.
    ignore : sequence of int
        Classes left out (the authors' code keeps them all; the paper drops SONYC-UST's
        'non-machinery-impact' from the macro average).

    Returns
    -------
    auprc : float in [0, 1]
        For 'macro', classes without a positive target are left out with a warning (the
        authors' recall is 0/0 = NaN there, which makes their mean NaN);
        :class:`ParameterError` when no (kept) class has one.

    Raises
    ------
    audiodata.errors.ParameterError
        ``average`` is not ``'macro'`` or ``'micro'``, ``thresholds`` are not numbers in
        ``[0, 1]``, or ``y_true`` has no positive label.
    """
    if average not in ("macro", "micro"):
        raise ParameterError(f"average must be 'macro' or 'micro', got {average!r}")
    y_score = _as_matrix(y_score, "y_score")
    y_true = _check_binary(_as_matrix(y_true, "y_true", *y_score.shape), "y_true")
    keep = _kept_classes(y_true.shape[1], ignore)
    tp, fp, fn = _threshold_counts(y_true[:, keep], y_score[:, keep], _check_thresholds(thresholds))
    has_pos = (tp + fn)[0] > 0
    if not has_pos.any():
        raise ParameterError(f"{average}-AUPRC is undefined: no positive label in y_true")
    if average == "micro":
        tp, fp, fn = tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)
        return _area((tp + 1e-9) / (tp + fn + 1e-9), (tp + 1e-9) / (tp + fp + 1e-9))
    if not has_pos.all():
        warnings.warn(f"classes {keep[~has_pos].tolist()} have no positive sample; left out of macro-AUPRC",
                      stacklevel=2)
    precision = (tp + 1e-9) / (tp + fp + 1e-9)
    recall = tp[:, has_pos] / (tp[:, has_pos] + fn[:, has_pos])
    return float(np.mean([_area(recall[:, i], precision[:, has_pos][:, i]) for i in range(recall.shape[1])]))


def threshold_max_f1(y_true, y_score, *, thresholds=PRC_THRESHOLDS, ignore=()):
    """The authors' max-F1: the largest micro F1 over the points of :func:`threshold_auprc`'s micro curve.

    ``calc_PRC_metrics`` (l. 994-999): ``F1 = 2 P R / (P + R)`` on the pooled precision and
    recall of each threshold (the framing points give 0), maximum over thresholds.

    Parameters
    ----------
    y_true, y_score, thresholds, ignore
        As in :func:`threshold_auprc`.

    Returns
    -------
    f1 : float in [0, 1]

    Raises
    ------
    audiodata.errors.ParameterError
        ``thresholds`` are not numbers in ``[0, 1]``, or ``y_true`` has no positive label.
    """
    y_score = _as_matrix(y_score, "y_score")
    y_true = _check_binary(_as_matrix(y_true, "y_true", *y_score.shape), "y_true")
    keep = _kept_classes(y_true.shape[1], ignore)
    tp, fp, fn = (c.sum(axis=1) for c in _threshold_counts(y_true[:, keep], y_score[:, keep],
                                                          _check_thresholds(thresholds)))
    if not (tp + fn)[0] > 0:
        raise ParameterError("max-F1 is undefined: no positive label in y_true")
    p = (tp + 1e-9) / (tp + fp + 1e-9)
    r = (tp + 1e-9) / (tp + fn + 1e-9)
    return float(np.max(2 * p * r / (p + r)))


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

    Raises
    ------
    audiodata.errors.ParameterError
        ``average`` is not ``'macro'`` or ``'micro'``.
    """
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

    Raises
    ------
    audiodata.errors.ParameterError
        ``mask`` leaves no annotated label.
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


# --------------------------------------------------------------------------- each dataset's scores
def ignored_classes(dataset, classes):
    """Indices of ``classes`` left out of the class-wise fidelity metrics and of faithfulness (Sec. V-A).

    Parameters
    ----------
    dataset : str
    classes : sequence of str
        Class names, index = label.

    Returns
    -------
    tuple of int
    """
    names = IGNORED_CLASSES.get(dataset, ())
    return tuple(i for i, c in enumerate(classes) if c in names)


def target_thresholds(dataset, classes):
    """Per-class thresholds [shape=(n_classes,)] binarising ``f``'s output into fidelity targets.

    SONYC-UST: :data:`SONYC_UST_TARGET_THRESHOLDS` (the authors'); other datasets, or
    class names not in it: 0.5.

    Parameters
    ----------
    dataset : str
    classes : sequence of str
        Class names, index = label.

    Returns
    -------
    thresholds : np.ndarray [shape=(n_classes,)]
    """
    table = _TARGET_THRESHOLDS.get(dataset, {})
    return np.array([table.get(c, 0.5) for c in classes], dtype=np.float64)


def _safe(function, *args, **kwargs):
    """A metric, or NaN when it is undefined on this (small) set."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(function(*args, **kwargs))
    except (ParameterError, ValueError):
        return float("nan")


def task_scores(dataset, classes, multilabel, labels, probabilities, prefix=""):
    """The dataset's classification metric of ``probabilities`` against ``labels`` (Tables I, VIII).

    * multi-class: ``accuracy`` (argmax against argmax);
    * OpenMIC-2018: ``weighted_f1`` on the annotated labels, probabilities > 0.5;
    * SONYC-UST and other multi-label data: ``macro_auprc``, ``micro_auprc`` (:func:`auprc`,
      every class, annotated labels only).

    Parameters
    ----------
    dataset : str
    classes : sequence of str
    multilabel : bool
    labels : np.ndarray [shape=(N, n_classes)]
        0/1 (or one-hot) targets, NaN = not annotated.
    probabilities : np.ndarray [shape=(N, n_classes)]
    prefix : str
        Prepended to every key.

    Returns
    -------
    dict of float
        NaN where a metric is undefined on this set.
    """
    labels = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if not multilabel:
        return {f"{prefix}accuracy": accuracy(p, labels)}
    known = ~np.isnan(labels)
    y = np.nan_to_num(labels).astype(int)
    if dataset == "openmic":
        return {f"{prefix}weighted_f1": _safe(weighted_f1, y, binarize(p), mask=known)}
    return {f"{prefix}macro_auprc": _safe(auprc, y, p, "macro", mask=known),
            f"{prefix}micro_auprc": _safe(auprc, y, p, "micro", mask=known)}


def fidelity_scores(dataset, classes, multilabel, f, g, ks=(1, 5)):
    """Fidelity of the interpreter's output ``g`` to the classifier's ``f`` (Sec. IV-C, Table IV).

    * multi-class: ``top<k>`` for each ``k`` of ``ks`` (:func:`top_k_fidelity`, fraction in [0, 1]);
    * OpenMIC-2018: ``weighted_f1`` of ``g > 0.5`` against ``f > 0.5`` (all labels);
    * SONYC-UST (and other multi-label data), the authors' metric: ``macro_auprc``,
      ``micro_auprc`` (:func:`threshold_auprc`) and ``max_f1`` (:func:`threshold_max_f1`)
      with targets ``f > t_c`` (:func:`target_thresholds`), the ignored classes
      (:func:`ignored_classes`) left out of the macro average only; and ours, with the
      suffix ``_ap``: ``macro_auprc_ap``, ``micro_auprc_ap`` (:func:`auprc`, average
      precision) and ``max_f1_ap`` (:func:`max_f1`, micro) with targets ``f > 0.5`` and the
      ignored classes left out of all three.

    Parameters
    ----------
    dataset, classes, multilabel
        As in :func:`task_scores`.
    f, g : np.ndarray [shape=(N, n_classes)]
        Probabilities of the classifier and of the interpreter.
    ks : sequence of int
        The ``k`` of top-k fidelity (those larger than ``n_classes`` are skipped).

    Returns
    -------
    dict of float
        NaN where a metric is undefined on this set.
    """
    f = np.asarray(f, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if not multilabel:
        return {f"top{k}": top_k_fidelity(f, g, k) for k in ks if k <= f.shape[1]}
    if dataset == "openmic":
        return {"weighted_f1": _safe(weighted_f1, binarize(f), binarize(g))}
    ignore = ignored_classes(dataset, classes)
    target = binarize(f, target_thresholds(dataset, classes))
    ours = binarize(f)
    return {"macro_auprc": _safe(threshold_auprc, target, g, "macro", ignore=ignore),
            "micro_auprc": _safe(threshold_auprc, target, g, "micro"),
            "max_f1": _safe(threshold_max_f1, target, g),
            "macro_auprc_ap": _safe(auprc, ours, g, "macro", ignore=ignore),
            "micro_auprc_ap": _safe(auprc, ours, g, "micro", ignore=ignore),
            "max_f1_ap": _safe(max_f1, ours, g, "micro", ignore=ignore)}


# --------------------------------------------------------------------------- faithfulness
def _probabilities(classify, signals):
    probs = np.asarray(classify(np.stack(signals).astype(np.float32)))
    if probs.ndim != 2 or probs.shape[0] != len(signals):
        raise ParameterError(f"classify must return probabilities of shape ({len(signals)}, n_classes), "
                             f"got {probs.shape}")
    return probs.astype(np.float64)


def _reference_audio(x, X, phase, stft, length):
    """The input audio for ``f(x)`` and the length of the removal signals: ``x`` and its size, or ``INV(X, P_x)``."""
    if x is None:
        return stft.invert(np.asarray(X, dtype=np.float64), phase, length=length), length
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ParameterError(f"x must be a mono signal of shape (n,), got {x.shape}")
    return x, x.size if length is None else length


def removal_drops(classify, X, phase, W, H, requests, *, stft, x=None, length=None, mask_domain="logmag",
                  eps=1e-10):
    """``FF_x = f(x)_c - f(x_2)_c`` (Eq. 7) for several ``(c, components)`` pairs of one input, one ``classify`` call.

    ``x_2 = INV(X - sum_{l in L} X_l, P_x)`` (:func:`l2i.interpretation.removal_audio`) is
    synthesised once per distinct component set, in the order the sets first appear; the
    batch ``[x] + [x_2 ...]`` is classified at once.

    Parameters
    ----------
    classify : callable
        ``classify(audio [shape=(B, n)]) -> probabilities [shape=(B, n_classes)]``.
    X, phase : np.ndarray [shape=(T, F)]
        Input log-magnitude spectrogram and phase, time first.
    W : np.ndarray [shape=(F, K)]
    H : np.ndarray [shape=(K, T)]
    requests : sequence of (int, sequence of int)
        ``(c, L)``: the class whose probability drop is measured and the components removed.
    stft : audiodata.features.STFTParams
        The STFT ``X`` was computed with.
    x : np.ndarray [shape=(n,)], optional
        The input audio for ``f(x)``; by default ``INV(X, P_x)`` (see :func:`faithfulness`).
    length, mask_domain, eps
        As in :func:`l2i.interpretation.interpret` (``length`` defaults to ``x.size`` when ``x`` is given).

    Returns
    -------
    ff : np.ndarray [shape=(len(requests),)], float64

    Raises
    ------
    audiodata.errors.ParameterError
        ``classify`` does not return probabilities of shape ``(n_signals, n_classes)``, ``x`` is
        not mono, or a class ``c`` outside ``[0, n_classes)``.
    """
    X = _check_spectrogram(X, W, phase)
    _check_stft(stft, X)
    x_ref, length = _reference_audio(x, X, phase, stft, length)
    requests = [(int(c), tuple(int(k) for k in np.asarray(comps, dtype=int).ravel())) for c, comps in requests]
    unique = list(dict.fromkeys(s for _, s in requests))
    signals = [x_ref] + [removal_audio(X, phase, W, H, list(s), stft=stft, length=length, mask_domain=mask_domain,
                                       eps=eps) for s in unique]
    probs = _probabilities(classify, signals)
    position = {s: i + 1 for i, s in enumerate(unique)}
    for c, _ in requests:
        if not 0 <= c < probs.shape[1]:
            raise ParameterError(f"class c={c} outside [0, {probs.shape[1]})")
    return np.array([probs[0, c] - probs[position[s], c] for c, s in requests], dtype=np.float64)


def faithfulness(classify, X, phase, W, H, components, c, *, stft, x=None, length=None, mask_domain="logmag",
                 eps=1e-10):
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
    stft : audiodata.features.STFTParams
        The STFT ``X`` was computed with.
    x : np.ndarray [shape=(n,)], optional
        The input audio for ``f(x)``.  By default ``INV(X, P_x)``, the input
        resynthesised from its STFT, so that removal is the only difference
        between the two signals (an empty ``L`` then gives exactly 0).
    length, mask_domain, eps
        As in :func:`l2i.interpretation.interpret` (``length`` defaults to ``x.size`` when ``x`` is given).

    Returns
    -------
    ff : float in [-1, 1]
    """
    components = _check_components(list(components), np.shape(W)[1])
    return float(removal_drops(classify, X, phase, W, H, [(c, components)], stft=stft, x=x, length=length,
                               mask_domain=mask_domain, eps=eps)[0])


def faithfulness_sweep(classify, X, phase, W, H, r, c, taus, *, stft, x=None, length=None, mask_domain="logmag",
                       eps=1e-10):
    """``FF_x`` for several thresholds ``tau`` (Table V), with one call of ``classify``.

    For each ``tau``, ``L = {k : r_k > tau}`` is removed as in :func:`faithfulness`;
    identical sets are synthesised and classified once.

    Parameters
    ----------
    classify, X, phase, W, H, c, stft, x
        As in :func:`faithfulness`.
    r : np.ndarray [shape=(K,)]
        Relevances of the components for class ``c`` (:func:`l2i.interpretation.relevance`).
    taus : sequence of float in [0, 1)
    length, mask_domain, eps
        As in :func:`faithfulness`.

    Returns
    -------
    ff : np.ndarray [shape=(len(taus),)], float64
    n_removed : np.ndarray [shape=(len(taus),)], int
        ``|L_{c,x}|`` at each threshold (its mean sets the Random Baseline's size).

    Raises
    ------
    audiodata.errors.ParameterError
        ``r`` is not of shape ``(K,)``; or what :func:`removal_drops` refuses.
    """
    r = np.asarray(r)
    if r.shape != (np.shape(W)[1],):
        raise ParameterError(f"r must have shape (K={np.shape(W)[1]},), got {r.shape}")
    sets = [relevant_components(r, tau) for tau in np.atleast_1d(taus)]
    ff = removal_drops(classify, X, phase, W, H, [(c, s) for s in sets], stft=stft, x=x, length=length,
                       mask_domain=mask_domain, eps=eps)
    return ff, np.array([len(s) for s in sets])


def random_components(n_components, size, *, exclude=(), seed=None):
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

    Raises
    ------
    audiodata.errors.ParameterError
        ``size`` is not an integer in ``[0, n_components - len(exclude)]``.
    """
    exclude = _check_components(list(exclude), n_components)
    pool = np.setdiff1d(np.arange(n_components), exclude)
    if not (isinstance(size, (int, np.integer)) and 0 <= size <= pool.size):
        raise ParameterError(f"size must be an integer in [0, {pool.size}] (K={n_components} minus "
                             f"{exclude.size} excluded), got {size!r}")
    return np.sort(np.random.default_rng(seed).choice(pool, size=int(size), replace=False))


def random_baseline_size(n_removed, classes=None):
    """How many components the Random Baseline removes: the mean ``|L_{c,x}|``, rounded (Sec. IV-C).

    Parameters
    ----------
    n_removed : np.ndarray [shape=(N,)] of int
        ``|L_{c,x}|`` of every interpretation (one threshold ``tau``).
    classes : np.ndarray [shape=(N,)] of int, optional
        The interpreted class of each; if given (multi-label data), one size per class,
        the mean over that class's interpretations.

    Returns
    -------
    size : int, or dict {class: int} if ``classes`` is given
        ``int(round(mean))`` (Python's rounding: halves to even); 0 for an empty set.

    Raises
    ------
    audiodata.errors.ParameterError
        ``classes`` is not of the shape of ``n_removed``.
    """
    n_removed = np.asarray(n_removed, dtype=np.float64).ravel()
    if classes is None:
        return int(round(n_removed.mean())) if n_removed.size else 0
    classes = np.asarray(classes).ravel()
    if classes.shape != n_removed.shape:
        raise ParameterError(f"classes must have shape {n_removed.shape}, got {classes.shape}")
    return {int(c): int(round(n_removed[classes == c].mean())) for c in np.unique(classes)}


def random_baseline_components(n_components, n_remove, relevant, *, seed=None):
    """The components the Random Baseline removes: ``n_remove`` drawn among the non-relevant ones (Sec. IV-C).

    Fewer when fewer than ``n_remove`` components are not in ``relevant`` (then all of them).

    Parameters
    ----------
    n_components : int
        ``K``.
    n_remove : int >= 0
        :func:`random_baseline_size`.
    relevant : sequence of int
        ``L_{c,x}``, never drawn.
    seed : int, np.random.Generator or None
        A Generator is advanced (successive calls draw differently).

    Returns
    -------
    components : np.ndarray [shape=(min(n_remove, K - |relevant|),)] of int, sorted
    """
    relevant = _check_components(list(relevant), n_components)
    size = min(int(n_remove), n_components - relevant.size)
    return random_components(n_components, size, exclude=relevant, seed=seed)


def random_baseline(classify, X, phase, W, H, c, relevant, n_remove=None, *, stft, seed=None, x=None, length=None,
                    mask_domain="logmag", eps=1e-10):
    """``FF_x`` of the Random Baseline: remove ``n_remove`` random non-relevant components (Sec. IV-C).

    Parameters
    ----------
    classify, X, phase, W, H, c, stft, x
        As in :func:`faithfulness`.
    relevant : sequence of int
        ``L_{c,x}``; these are never removed.
    n_remove : int, optional
        How many components to remove; the paper uses the mean ``|L_{c,x}|`` over
        the test set (per class for multi-label data, :func:`random_baseline_size`).
        Default ``len(relevant)``. Capped at the number of non-relevant components.
    seed : int, np.random.Generator or None
    length, mask_domain, eps
        As in :func:`faithfulness`.

    Returns
    -------
    ff : float
    removed : np.ndarray [shape=(n_remove,)] of int
        The components drawn.
    """
    n_remove = len(relevant) if n_remove is None else n_remove
    removed = random_baseline_components(np.shape(W)[1], n_remove, relevant, seed=seed)
    ff = faithfulness(classify, X, phase, W, H, removed, c, stft=stft, x=x, length=length, mask_domain=mask_domain,
                      eps=eps)
    return ff, removed


def ff_median(ff, classes=None, *, ignore=()):
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
        NaN for an empty set (or only NaN values).

    Raises
    ------
    audiodata.errors.ParameterError
        ``ff`` is not of shape ``(N,)`` or ``(N, n_taus)``, or ``classes`` is not of shape ``(N,)``.
    """
    ff = np.asarray(ff, dtype=np.float64)
    if ff.ndim not in (1, 2):
        raise ParameterError(f"ff must have shape (N,) or (N, n_taus), got {ff.shape}")
    if classes is None:
        if ff.shape[0] == 0:
            median = np.full(ff.shape[1:], np.nan)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
                median = np.nanmedian(ff, axis=0)
        return float(median) if ff.ndim == 1 else median
    classes = np.asarray(classes)
    if classes.shape != (ff.shape[0],):
        raise ParameterError(f"classes must have shape ({ff.shape[0]},), got {classes.shape}")
    ignored = set(int(j) for j in ignore)
    return {int(j): ff_median(ff[classes == j]) for j in np.unique(classes) if int(j) not in ignored}
