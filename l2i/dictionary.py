"""Dataset-specific constructions of X_train for pre-learning the dictionary W (L2I Sec. IV-A3).

* ESC-50 (and ESC-10): sparse NMF on the log-magnitude spectrograms of every
  training clip of the fold (:func:`learn_from_clips`).
* SONYC-UST: 10 noise components ``W_noise`` from the clips with no positive label,
  then, for each class, 10 components learned from (up to) 700 random positive
  clips with ``W_noise`` held fixed; the 8 x 10 class components are stacked
  (:func:`learn_sonyc_ust_dictionary`).
* OpenMIC-2018: for each class, 15 components from (up to) 500 random positive
  clips; the 20 x 15 are stacked (:func:`learn_per_class_dictionary`).

Spectrograms are read one clip at a time from the memory-mapped ``logmag`` cache
``(n, T, F)`` and passed to :func:`l2i.nmf.learn_dictionary` as a list of ``(F, T)``
views, never concatenated in memory.
"""
import numpy as np

from audiodata.errors import ParameterError
from l2i.nmf import l1_from_sparsity, learn_dictionary

__all__ = [
    "clip_spectrograms",
    "learn_from_clips",
    "learn_sonyc_ust_dictionary",
    "learn_per_class_dictionary",
    "learn_dataset_dictionary",
]


def clip_spectrograms(logmag, rows):
    """List of the ``(F, T)`` log-magnitude spectrograms of ``rows`` (transposed views of the cache).

    Parameters
    ----------
    logmag : FeatureArray or np.ndarray [shape=(n, T, F)]
    rows : sequence of int

    Returns
    -------
    list of np.ndarray [shape=(F, T)]
    """
    return [np.asarray(logmag[int(r)], dtype=np.float32).T for r in rows]


def learn_from_clips(logmag, rows, n_components, **nmf_kwargs):
    """Sparse NMF (Eq. 6) on the concatenated spectrograms of ``rows`` (ESC-50's X_train).

    Parameters
    ----------
    logmag : FeatureArray [shape=(n, T, F)]
    rows : sequence of int
        Training rows (ESC-50: every clip of the training folds).
    n_components : int
        ``K`` (100 for ESC-50, Table II).
    **nmf_kwargs
        :func:`l2i.nmf.learn_dictionary` arguments (``l1``, ``n_iter``, ``seed``, ...).

    Returns
    -------
    W : np.ndarray [shape=(F, K)]
    history : dict
    """
    if len(rows) == 0:
        raise ParameterError("no training clips to learn the dictionary from")
    W, _, history = learn_dictionary(clip_spectrograms(logmag, rows), n_components, **nmf_kwargs)
    return W, history


def _positive_rows(rows, targets, c, n_clips, rng):
    positive = np.asarray(rows)[np.nan_to_num(targets[:, c]) > 0.5]
    if len(positive) > n_clips:
        positive = np.sort(rng.choice(positive, size=n_clips, replace=False))
    return positive


def learn_sonyc_ust_dictionary(logmag, rows, targets, n_noise=10, n_per_class=10, n_clips_per_class=700,
                               include_noise=False, seed=0, **nmf_kwargs):
    """SONYC-UST's dictionary (Sec. IV-A3): noise components first, then per class with noise fixed.

    Parameters
    ----------
    logmag : FeatureArray [shape=(n, T, F)]
    rows : np.ndarray [shape=(N,)]
        Training rows.
    targets : np.ndarray [shape=(N, C)]
        Multi-hot targets of ``rows``.
    n_noise : int
        Noise components learned from the clips with no positive label (10).
    n_per_class : int
        Components per class (10; 8 classes give K = 80, Table II).
    n_clips_per_class : int
        Positive clips drawn at random per class (700).
    include_noise : bool
        Put ``W_noise`` in front of the class components (K = 90). The paper stacks
        only the 8 x 10 class components (K = 80), the default.
    seed : int
        Seeds the clip selection and every NMF (class ``c`` uses ``seed + 1 + c``).

    Returns
    -------
    W : np.ndarray [shape=(F, C * n_per_class (+ n_noise))]
    info : dict
        ``noise_rows`` and ``class_rows`` (number of clips used), ``histories``.
    """
    rows = np.asarray(rows)
    targets = np.asarray(targets, dtype=np.float32)
    rng = np.random.default_rng(seed)
    noise_rows = rows[np.nansum(targets, axis=1) == 0]
    if len(noise_rows) == 0:
        raise ParameterError("SONYC-UST: no training clip without a positive label to learn W_noise from")
    W_noise, history = learn_from_clips(logmag, noise_rows, n_noise, seed=seed, **nmf_kwargs)
    blocks = [W_noise] if include_noise else []
    histories, class_rows = {"noise": history}, {}
    for c in range(targets.shape[1]):
        positive = _positive_rows(rows, targets, c, n_clips_per_class, rng)
        class_rows[c] = int(len(positive))
        if len(positive) == 0:
            raise ParameterError(f"SONYC-UST: class {c} has no positive training clip")
        W_c, _, histories[c] = learn_dictionary(clip_spectrograms(logmag, positive), n_per_class,
                                                W_fixed=W_noise, seed=seed + 1 + c, **nmf_kwargs)
        blocks.append(W_c[:, n_noise:])
    return np.concatenate(blocks, axis=1), {"noise_rows": int(len(noise_rows)), "class_rows": class_rows,
                                            "histories": histories}


def learn_per_class_dictionary(logmag, rows, targets, n_per_class=15, n_clips_per_class=500, seed=0, **nmf_kwargs):
    """OpenMIC-2018's dictionary (Sec. IV-A3): ``n_per_class`` components per class, stacked.

    For each class, ``n_clips_per_class`` random clips annotated positive (NaN
    targets, i.e. not annotated, count as not positive); 20 x 15 = 300 components.

    Returns
    -------
    W : np.ndarray [shape=(F, C * n_per_class)]
    info : dict
        ``class_rows`` and ``histories``.
    """
    rows = np.asarray(rows)
    targets = np.asarray(targets, dtype=np.float32)
    rng = np.random.default_rng(seed)
    blocks, histories, class_rows = [], {}, {}
    for c in range(targets.shape[1]):
        positive = _positive_rows(rows, targets, c, n_clips_per_class, rng)
        class_rows[c] = int(len(positive))
        if len(positive) == 0:
            raise ParameterError(f"class {c} has no positive training clip")
        W_c, histories[c] = learn_from_clips(logmag, positive, n_per_class, seed=seed + 1 + c, **nmf_kwargs)
        blocks.append(W_c)
    return np.concatenate(blocks, axis=1), {"class_rows": class_rows, "histories": histories}


def learn_dataset_dictionary(dataset, logmag, rows, targets, config, seed=0):
    """The construction of Sec. IV-A3 for ``dataset``, with the ``dictionary`` section of its config.

    Parameters
    ----------
    dataset : {"esc50", "esc10", "sonyc_ust", "openmic"}
    logmag : FeatureArray [shape=(n, T, F)]
    rows, targets : training rows and their targets
    config : dict
        ``n_components`` (ESC), ``n_noise``/``n_per_class``/``n_clips_per_class``
        (SONYC-UST, OpenMIC), and NMF settings ``n_iter``, ``tol`` and the sparsity
        weight: either ``sparsity`` (Le Roux et al.'s weight on ``1/2 ||X - WH||^2``,
        the authors' ``sp0.8``; converted by :func:`l2i.nmf.l1_from_sparsity`) or
        ``l1`` (ours, on ``||X - WH||^2``), not both.
    seed : int

    Returns
    -------
    W : np.ndarray [shape=(F, K)]
    info : dict
    """
    nmf = {k: config[k] for k in ("l1", "n_iter", "tol") if k in config}
    if "sparsity" in config:
        if "l1" in config:
            raise ParameterError("give the dictionary's `sparsity` (Le Roux et al.'s scale) or `l1` (ours), not both")
        nmf["l1"] = l1_from_sparsity(config["sparsity"])
    if dataset in ("esc50", "esc10"):
        W, history = learn_from_clips(logmag, rows, int(config["n_components"]), seed=seed, **nmf)
        return W, {"histories": {"all": history}, "n_clips": int(len(rows))}
    if dataset == "sonyc_ust":
        return learn_sonyc_ust_dictionary(logmag, rows, targets, n_noise=int(config["n_noise"]),
                                          n_per_class=int(config["n_per_class"]),
                                          n_clips_per_class=int(config["n_clips_per_class"]),
                                          include_noise=bool(config.get("include_noise", False)), seed=seed, **nmf)
    if dataset == "openmic":
        return learn_per_class_dictionary(logmag, rows, targets, n_per_class=int(config["n_per_class"]),
                                          n_clips_per_class=int(config["n_clips_per_class"]), seed=seed, **nmf)
    raise ParameterError(f"dataset must be one of ('esc50', 'esc10', 'sonyc_ust', 'openmic'), got {dataset!r}")
