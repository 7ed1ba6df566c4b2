"""Dictionary-size sweep of the NMF baselines (the paper reports the best of K = 64 ... 512)."""
import time

from audiodata.errors import ParameterError

__all__ = ["sweep_dictionary_sizes", "PAPER_SIZES"]

#: Dictionary sizes of Sec. IV-C ("We vary dictionary sizes from 64 to 512 components").
PAPER_SIZES = (64, 128, 256, 512)


def sweep_dictionary_sizes(estimator, X_train, y_train, X_eval, y_eval, sizes=PAPER_SIZES, n_classes=None):
    """Fit a copy of ``estimator`` for each dictionary size and score it; report the best.

    Parameters
    ----------
    estimator : NMFClassifier or TDLNMFClassifier
        A template: each run is ``type(estimator)(**{**estimator.get_params(), "n_components": K})``
        (so it must not hold a fixed ``dictionary``).
    X_train, X_eval : np.ndarray [shape=(N, T, F)] or list of np.ndarray [shape=(T_i, F)]
        Time-first non-negative spectrograms (log-magnitude, or sqrt power mel).
    y_train, y_eval : np.ndarray [shape=(N,) or (N, C)]
        Targets, as in :meth:`NMFClassifier.fit`.
    sizes : sequence of int
        Dictionary sizes ``K``.
    n_classes : int, optional
        Number of classes when ``y_train`` holds integer labels that miss some classes.

    Returns
    -------
    result : dict
        ``runs``: list of ``{"n_components", "score", "seconds", "model"}`` in the order of
        ``sizes``; ``best``: the run with the highest score (accuracy or macro-AUPRC on the
        evaluation set).

    Notes
    -----
    The paper picks the best size on the reported (test) results; to avoid selecting
    on the test set, pass a validation split as ``X_eval`` and score the chosen model
    on the test split separately.

    Examples
    --------
    >>> import numpy as np
    >>> from l2i.baselines import NMFClassifier
    >>> rng = np.random.default_rng(0); X = rng.random((12, 20, 30)).astype("float32"); y = np.arange(12) % 3
    >>> out = sweep_dictionary_sizes(NMFClassifier(n_iter_dictionary=10, n_iter_activations=10), X, y, X, y,
    ...                              sizes=(2, 4))
    >>> [run["n_components"] for run in out["runs"]], out["best"]["n_components"] in (2, 4)
    ([2, 4], True)

    References
    ----------
    Parekh et al., IEEE/ACM TASLP 2024, Sec. IV-C (by-design baselines) and Table VIII.
    """
    sizes = [int(k) for k in sizes]
    if not sizes or min(sizes) < 1:
        raise ParameterError(f"sizes must be a non-empty sequence of positive ints; got {sizes!r}")
    params = estimator.get_params()
    if params.get("dictionary") is not None:
        raise ParameterError("the template estimator holds a fixed `dictionary`; a size sweep must learn one")
    runs = []
    for k in sizes:
        start = time.perf_counter()
        model = type(estimator)(**{**params, "n_components": k}).fit(X_train, y_train, n_classes=n_classes)
        score = model.score(X_eval, y_eval)
        runs.append({"n_components": k, "score": score, "seconds": time.perf_counter() - start, "model": model})
    best = max(runs, key=lambda run: run["score"])
    return {"runs": runs, "best": best}
