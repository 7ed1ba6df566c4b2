"""Sparse NMF with unit-norm dictionary columns, for pre-learning the L2I dictionary.

L2I (Parekh et al., 2024, Sec. III-D, "Pre-learning W") learns the dictionary
``W`` of spectral patterns once, before any network is trained, by solving Eq. 6
with the Euclidean cost::

    min_{W, H}  ||X - W H||_F^2 + l1 * ||H||_1
    subject to  W >= 0,  H >= 0,  ||w_k||_2 = 1 for every column k.

``X`` [shape=(F, T)] is the concatenation along time of the training clips'
log-magnitude spectrograms ``log(1 + |STFT|)``; ``W`` [shape=(F, K)] holds ``K``
spectral patterns and ``H`` [shape=(K, T)] their time activations.

Algorithm
---------
The unit-norm constraint matters: without it, ``l1 * ||H||_1`` can be driven
to zero by shrinking ``H`` and growing ``W`` without changing ``W H``, so the
penalty would mean nothing.  We use the scale-invariant form of the problem,

    g(W, H) = ||X - W H||_F^2 + l1 * sum_k ||w_k||_2 * ||h_k||_1,

which equals the objective of Eq. 6 whenever the columns of ``W`` have unit norm
and is unchanged by ``w_k -> w_k / c``, ``h_k -> c h_k``.  Each iteration is:

1. **H step** (``W`` unit-norm, fixed) -- the multiplicative update of sparse
   non-negative coding (Hoyer, 2002)::

       H <- H * (W^T X + eps) / (W^T W H + l1 / 2 + eps)

   It is a majorisation-minimisation step, so it never increases ``g``.
2. **W step** (``H`` fixed, free columns only) -- ``||w_k||`` is majorised at the
   current unit-norm ``w_k`` by ``(||w_k||^2 + 1) / 2``, which turns the
   penalty into a weighted ridge on ``W``; its Lee-Seung multiplicative update is::

       W <- W * (X H^T + eps) / (W H H^T + (l1 / 2) * W diag(||h_k||_1) + eps)

   Again a majorisation-minimisation step: ``g`` does not increase.
3. **Normalise** the free columns of ``W`` to unit norm and multiply the rows of
   ``H`` by the old norms, so ``W H`` *and* ``g`` are unchanged.

Hence the objective of Eq. 6 is non-increasing at every iteration (up to
floating-point rounding).  We prefer this to the two simpler alternatives:
plain Lee-Seung updates followed by normalisation with ``H`` rescaled can
*increase* ``l1 * ||H||_1`` whenever a column norm exceeds one, and the
heuristic sparse-NMF update of Le Roux et al. (2015, Eq. 19-20), which folds
the normalisation into the gradient, has no monotonicity guarantee.  The cost
per iteration is the same as Lee-Seung's: the extra term ``W diag(||h_k||_1)``
is ``O(F K)``.

Scale of the sparsity weight
----------------------------
Our ``l1`` weighs ``||H||_1`` against the *full* squared error ``||X - W H||_F^2``.
Le Roux et al.'s sparse NMF (their ``sparse_nmf.m`` and its Python ports), which
the L2I authors' dictionary files name ``sp<sparsity>`` (``initW_..._sp0.8_...``),
uses the H update ``H <- H * (W^T X) / (W^T W H + sparsity)`` for the Euclidean
cost.  The ratio ``[grad]_- / [grad]_+`` of that update is the gradient of
``1/2 ||X - W H||^2 + sparsity * ||H||_1`` (gradient ``W^T (W H - X) + sparsity``);
for ``||X - W H||^2 + l1 ||H||_1`` it is ``2 W^T (W H - X) + l1``, i.e. our
``l1 / 2`` above.  The two updates coincide, and have the same fixed points, when
``l1 = 2 * sparsity`` (:func:`l1_from_sparsity`).  Le Roux's code *reports*
``sum((X - WH)^2) + sparsity * sum(H)`` as its objective, but what it minimises is
set by the updates.  So the authors' ``sp0.8`` is our ``l1 = 1.6``; the L2I configs
give ``dictionary.sparsity: 0.8`` and :mod:`l2i.dictionary` converts it.

Streaming
---------
Every step touches ``X`` only through ``W^T X_c`` and ``X_c H_c^T`` for blocks
``X_c`` of columns, so ``X`` is read block by block (``chunk_size`` columns, or
one list element at a time): it may be a ``np.memmap`` or a list of per-clip
spectrograms that is never concatenated.  The objective is obtained from the
same block products (no ``F x T`` residual is ever formed), accumulated in
float64.

References
----------
- Parekh, Parekh, Essid, Richard, "Tackling Interpretability in Audio
  Classification Networks with Non-negative Matrix Factorization", IEEE/ACM
  TASLP 2024, Sec. III-D, Eq. 6 (dictionary), Sec. IV-A3 (how X_train is built,
  including the SONYC-UST noise block held fixed).
- Le Roux, Weninger, Hershey, "Sparse NMF -- half-baked or well done?",
  MERL TR2015-023, 2015.
- Hoyer, "Non-negative sparse coding", IEEE NNSP 2002.
- Lee, Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
"""
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from audiodata.cli import positive_int, require
from audiodata.errors import ParameterError

__all__ = [
    "l1_from_sparsity",
    "learn_dictionary",
    "nmf_activations",
    "nmf_objective",
    "save_dictionary",
    "load_dictionary",
]

#: Tolerance on ``| ||w_k|| - 1 |`` for a fixed block to count as unit-norm.
_UNIT_NORM_ATOL = 1e-3
_DTYPES = ("float32", "float64")


def l1_from_sparsity(sparsity):
    """Our ``l1`` (on ``||X - WH||^2``) for Le Roux et al.'s ``sparsity`` (on ``1/2 ||X - WH||^2``).

    ``l1 = 2 * sparsity``: see "Scale of the sparsity weight" in the module docstring.
    The L2I authors' dictionaries ``..._sp0.8_...`` correspond to ``l1 = 1.6``.

    Parameters
    ----------
    sparsity : float
        Le Roux et al.'s sparsity weight, >= 0.

    Returns
    -------
    l1 : float

    Raises
    ------
    audiodata.errors.ParameterError
        ``sparsity`` is not a finite number >= 0.

    Examples
    --------
    >>> l1_from_sparsity(0.8)
    1.6
    """
    sparsity = float(sparsity)
    if not (np.isfinite(sparsity) and sparsity >= 0):
        raise ParameterError(f"sparsity must be a finite number >= 0, got {sparsity!r}")
    return 2.0 * sparsity


def nmf_objective(X, W, H, l1=0.0):
    """Sparse-NMF objective of Eq. 6 with the Euclidean cost (plain NumPy reference).

    Parameters
    ----------
    X : np.ndarray [shape=(F, T)]
        Non-negative data, e.g. a log-magnitude spectrogram.
    W : np.ndarray [shape=(F, K)]
        Dictionary.  The objective of Eq. 6 assumes unit-norm columns; it is
        evaluated here as given.
    H : np.ndarray [shape=(K, T)]
        Activations.
    l1 : float >= 0
        Weight ``mu`` of the ``||H||_1`` term in Eq. 6.

    Returns
    -------
    objective : float
        ``||X - W H||_F^2 + l1 * sum(|H|)``, computed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((3, 2)); W = np.ones((3, 1)) / np.sqrt(3); H = np.full((1, 2), np.sqrt(3))
    >>> round(nmf_objective(X, W, H, l1=0.5), 6)
    1.732051
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    residual = X - W @ H
    return float(np.sum(residual * residual) + l1 * np.sum(np.abs(H)))


def learn_dictionary(
    X,
    n_components,
    *,
    l1=0.1,
    n_iter=200,
    seed=0,
    W_fixed=None,
    tol=1e-4,
    eps=1e-10,
    chunk_size=8192,
    dtype="float32",
    verbose=False,
    callback=None,
    W_init=None,
    H_init=None,
):
    """Learn a unit-norm non-negative dictionary by sparse NMF (Eq. 6).

    Parameters
    ----------
    X : np.ndarray [shape=(F, T)] or sequence of np.ndarray [shape=(F, T_i)]
        Non-negative training data ``X_train``: the log-magnitude spectrograms
        of the training clips, concatenated along time, or given as a list
        (never concatenated; read one element at a time).
    n_components : int > 0
        Number ``K`` of new components to learn.
    l1 : float >= 0
        Weight ``mu`` of ``||H||_1`` in Eq. 6 (the paper does not report its
        value).  It is relative to the scale of ``X``.
    n_iter : int > 0
        Maximum number of iterations.
    seed : int
        Seed of the random initialisation; the result is a deterministic
        function of the inputs and the seed.
    W_fixed : np.ndarray [shape=(F, K_0)], optional
        Columns held constant while the ``n_components`` new ones are learned
        (L2I Sec. IV-A3: SONYC-UST's 10 noise components, fixed while learning
        10 components per class).  Must be non-negative with unit-norm columns
        (a dictionary returned by this function is).  Their activations are
        learned too.
    tol : float >= 0
        Stop when the relative decrease of the objective over one iteration
        falls below ``tol``; 0 runs all ``n_iter`` iterations.
    eps : float > 0
        Floor added to numerators and denominators of the multiplicative
        updates, and to column norms, to avoid division by zero.
    chunk_size : int > 0
        Columns of ``X`` processed at a time (bounds the temporaries).
    dtype : {"float32", "float64"}
        Working precision of ``W``, ``H`` and the block products; the objective
        is always accumulated in float64.
    verbose : bool
        Print the objective at every iteration.
    callback : callable, optional
        Called after every iteration as ``callback(iteration, W, H)`` with the
        current (normalised) factors; it must not modify them.
    W_init : np.ndarray [shape=(F, n_components)], optional
        Non-negative starting point for the new columns (normalised to unit
        norm; ``H_init`` rows, when given, are rescaled so ``W H`` is kept).
        Default: uniform random from ``seed``.
    H_init : np.ndarray [shape=(K_0 + n_components, T)], optional
        Non-negative starting activations.  Default: uniform random from
        ``seed``, scaled so that ``mean(W H)`` is about ``mean(X)``.

    Returns
    -------
    W : np.ndarray [shape=(F, K_0 + n_components)]
        The dictionary: ``W_fixed`` first (unchanged), then the new columns,
        all non-negative with unit l2 norm.
    H : np.ndarray [shape=(K_0 + n_components, T)]
        The activations.
    history : dict
        ``objective`` (list of float: the objective of Eq. 6 before the first
        iteration, then after each one; non-increasing), ``n_iter`` (iterations
        run), ``converged`` (bool: stopped by ``tol``), ``seconds`` (float).

    Raises
    ------
    ParameterError
        If an argument is out of range, ``X`` has negative or non-finite
        values, or ``W_fixed`` is not non-negative with unit-norm columns.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((20, 50))
    >>> W, H, history = learn_dictionary(X, n_components=4, l1=0.1, n_iter=50, seed=0)
    >>> W.shape, H.shape, bool(np.allclose(np.linalg.norm(W, axis=0), 1, atol=1e-5))
    ((20, 4), (4, 50), True)
    >>> history["objective"][-1] < history["objective"][0]
    True

    References
    ----------
    L2I (Parekh et al., 2024), Sec. III-D, Eq. 6 and Sec. IV-A3; the algorithm
    is described in the module docstring of :mod:`l2i.nmf`.
    """
    dtype = _check_dtype(dtype)
    require(positive_int, n_components, "n_components", strict=True)
    chunks, n_features, n_frames = _as_chunks(X, chunk_size, dtype)
    if W_fixed is None:
        W_fixed = np.zeros((n_features, 0), dtype=dtype)
    else:
        W_fixed = _check_dictionary("W_fixed", W_fixed, n_features, dtype)
        norms = np.linalg.norm(W_fixed.astype(np.float64), axis=0)
        if not np.all(np.abs(norms - 1.0) <= _UNIT_NORM_ATOL):
            raise ParameterError(
                f"W_fixed must have unit-norm columns (Eq. 6); got column norms in "
                f"[{norms.min():.6g}, {norms.max():.6g}]"
            )
    rng = np.random.default_rng(seed)
    n_fixed = W_fixed.shape[1]
    n_total = n_fixed + n_components
    if W_init is None:
        W_new = rng.random((n_features, n_components)).astype(dtype) + dtype.type(eps)
    else:
        W_new = _check_dictionary("W_init", W_init, n_features, dtype)
        if W_new.shape[1] != n_components:
            raise ParameterError(f"W_init must have n_components={n_components} columns, got {W_new.shape[1]}")
    norms = np.maximum(np.linalg.norm(W_new, axis=0), dtype.type(eps))
    W_new /= norms
    W = np.ascontiguousarray(np.concatenate([W_fixed, W_new], axis=1), dtype=dtype)
    if H_init is None:
        sum_x, _ = _data_stats(chunks)
        H = _initial_activations(rng, W, n_frames, sum_x / (n_features * n_frames), dtype)
    else:
        H = np.array(H_init, dtype=dtype, copy=True)
        if H.shape != (n_total, n_frames):
            raise ParameterError(f"H_init must have shape {(n_total, n_frames)}, got {H.shape}")
        if not np.all(np.isfinite(H)) or np.any(H < 0):
            raise ParameterError("H_init must be finite and non-negative")
        H[n_fixed:] *= norms[:, None]
    return _sparse_nmf(chunks, W, H, n_fixed, l1, n_iter, tol, eps, verbose, callback)


def nmf_activations(
    X,
    W,
    *,
    l1=0.1,
    n_iter=200,
    seed=0,
    tol=1e-4,
    eps=1e-10,
    chunk_size=8192,
    dtype="float32",
    H_init=None,
    verbose=False,
    callback=None,
):
    """Activations ``H`` of data ``X`` for a fixed dictionary ``W`` (sparse NMF transform).

    Solves ``min_{H >= 0} ||X - W H||_F^2 + l1 * ||H||_1`` by the multiplicative
    update of the H step of :func:`learn_dictionary`; ``W`` is used as given.

    Parameters
    ----------
    X : np.ndarray [shape=(F, T)] or sequence of np.ndarray [shape=(F, T_i)]
        Non-negative data.
    W : np.ndarray [shape=(F, K)]
        Non-negative dictionary, e.g. from :func:`learn_dictionary` or
        :func:`load_dictionary`.
    l1, n_iter, seed, tol, eps, chunk_size, dtype, verbose, callback
        As in :func:`learn_dictionary` (``seed`` drives the random
        initialisation of ``H`` when ``H_init`` is None).
    H_init : np.ndarray [shape=(K, T)], optional
        Non-negative starting point (zeros stay zero under multiplicative
        updates).

    Returns
    -------
    H : np.ndarray [shape=(K, T)]
        The activations.
    history : dict
        As in :func:`learn_dictionary`.

    Raises
    ------
    audiodata.errors.ParameterError
        An ``H_init`` of the wrong shape, not finite or negative; ``X`` empty, not finite or
        negative; ``W`` of the wrong shape; a bad ``l1``, ``tol``, ``eps``, ``dtype`` or ``callback``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W = rng.random((20, 3)); W /= np.linalg.norm(W, axis=0)
    >>> X = W @ rng.random((3, 40))
    >>> H, history = nmf_activations(X, W, l1=0.0, n_iter=500, tol=0, dtype="float64")
    >>> bool(history["objective"][-1] < 1e-3 * history["objective"][0])
    True

    References
    ----------
    L2I (Parekh et al., 2024), Eq. 3-4 (reconstruction and sparsity of H for a
    fixed W); Hoyer (2002) for the update.
    """
    dtype = _check_dtype(dtype)
    chunks, n_features, n_frames = _as_chunks(X, chunk_size, dtype)
    W = _check_dictionary("W", W, n_features, dtype)
    if H_init is None:
        sum_x, _ = _data_stats(chunks)
        H = _initial_activations(
            np.random.default_rng(seed), W, n_frames, sum_x / (n_features * n_frames), dtype
        )
    else:
        H = np.array(H_init, dtype=dtype, copy=True)
        if H.shape != (W.shape[1], n_frames):
            raise ParameterError(f"H_init must have shape {(W.shape[1], n_frames)}, got {H.shape}")
        if not np.all(np.isfinite(H)) or np.any(H < 0):
            raise ParameterError("H_init must be finite and non-negative")
    _, H, history = _sparse_nmf(chunks, W, H, W.shape[1], l1, n_iter, tol, eps, verbose, callback)
    return H, history


def save_dictionary(path, W, params=None):
    """Write a dictionary as ``<path>.npy`` and its parameters as ``<path>.json``.

    Both files are written atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or pathlib.Path
        Target; a ``.npy`` or ``.json`` suffix is replaced, so ``"w.npy"`` and
        ``"w"`` both give ``w.npy`` and ``w.json``.
    W : np.ndarray [shape=(F, K)]
        The dictionary.
    params : dict, optional
        JSON-serialisable parameters that produced it (e.g. ``n_components``,
        ``l1``, ``seed``, the STFT settings, the training fold).  NumPy scalars
        are converted.  ``shape`` and ``dtype`` of ``W`` are added.

    Returns
    -------
    npy_path, json_path : pathlib.Path
        The two files written.

    Raises
    ------
    audiodata.errors.ParameterError
        ``W`` is not 2-D, or ``params`` is not JSON-serialisable.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = save_dictionary(d / "w", np.eye(3), {"l1": 0.1})
    >>> W, params = load_dictionary(d / "w.npy")
    >>> W.shape, params["l1"]
    ((3, 3), 0.1)
    """
    W = np.asarray(W)
    if W.ndim != 2:
        raise ParameterError(f"W must be a 2-D array (F, K), got shape {W.shape}")
    npy_path, json_path = _dictionary_paths(path)
    meta = {"params": _jsonable(dict(params or {}), "params"), "shape": list(W.shape), "dtype": str(W.dtype)}
    text = json.dumps(meta, indent=2, sort_keys=True)
    npy_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(npy_path, lambda f: np.save(f, W, allow_pickle=False))
    _atomic_write(json_path, lambda f: f.write(text.encode("utf-8")))
    return npy_path, json_path


def load_dictionary(path):
    """Read a dictionary written by :func:`save_dictionary`.

    Parameters
    ----------
    path : str or pathlib.Path
        ``<path>.npy``, ``<path>.json`` or ``<path>``.

    Returns
    -------
    W : np.ndarray [shape=(F, K)]
    params : dict
        The parameters stored beside it.

    Raises
    ------
    FileNotFoundError
        If either file is missing (the message names it).
    ParameterError
        If the stored shape or dtype does not match the array (stale JSON).
    """
    npy_path, json_path = _dictionary_paths(path)
    for p in (npy_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"dictionary file {p} is missing")
    W = np.load(npy_path, allow_pickle=False)
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if list(W.shape) != meta.get("shape") or str(W.dtype) != meta.get("dtype"):
        raise ParameterError(
            f"{json_path} describes shape {meta.get('shape')} dtype {meta.get('dtype')}, "
            f"but {npy_path} holds shape {list(W.shape)} dtype {W.dtype}"
        )
    return W, meta["params"]


# --------------------------------------------------------------------------- core


def _sparse_nmf(chunks, W, H, n_fixed, l1, n_iter, tol, eps, verbose, callback):
    """Run the iterations described in the module docstring; columns ``< n_fixed`` of W stay fixed.

    ``history["objective"][i]`` is the objective of Eq. 6 after ``i`` iterations.
    When W is learned it comes from the accumulated block statistics at no extra
    cost; when all of W is fixed, the objective of the current state is computed
    in the next iteration's pass over X (so the stopping test lags by one
    iteration) and once more after the last iteration.
    """
    if not (np.isfinite(l1) and l1 >= 0):
        raise ParameterError(f"l1 must be a finite number >= 0, got {l1!r}")
    require(positive_int, n_iter, "n_iter", strict=True)
    if not (tol >= 0):
        raise ParameterError(f"tol must be >= 0, got {tol!r}")
    if not (eps > 0):
        raise ParameterError(f"eps must be > 0, got {eps!r}")
    if callback is not None and not callable(callback):
        raise ParameterError(f"callback must be callable or None, got {callback!r}")
    dtype = W.dtype
    eps_t = dtype.type(eps)
    half_l1 = dtype.type(l1 / 2.0)
    n_features, n_total = W.shape
    fixed, free = slice(0, n_fixed), slice(n_fixed, n_total)
    learn_w = n_fixed < n_total

    def report(i):
        if verbose:
            print(f"sparse NMF: iteration {i}, objective {objective[-1]:.6g}")

    def stop():
        previous, current = objective[-2], objective[-1]
        return tol > 0 and previous - current <= tol * max(abs(previous), np.finfo(float).tiny)

    start = time.perf_counter()
    objective = []
    converged = False
    sq_x = 0.0
    iteration = 0
    for iteration in range(1, n_iter + 1):
        # H step, block by block; the objective of the current state comes almost for free.
        WtW = W.T @ W
        if learn_w:
            XHt = np.zeros((n_features, n_total), dtype=np.float64)
            HHt = np.zeros((n_total, n_total), dtype=np.float64)
        h_sum = np.zeros(n_total, dtype=np.float64)
        cross = quad = h_l1 = 0.0
        state_needed = iteration == 1 or not learn_w
        for start_col, X_c in chunks:
            X_c = np.asarray(X_c, dtype=dtype)
            H_c = H[:, start_col:start_col + X_c.shape[1]]
            num = W.T @ X_c
            den = WtW @ H_c
            if state_needed:
                if iteration == 1:
                    sq_x += float(np.einsum("ij,ij->", X_c, X_c, dtype=np.float64))
                cross += float(np.einsum("ij,ij->", H_c, num, dtype=np.float64))
                quad += float(np.einsum("ij,ij->", H_c, den, dtype=np.float64))
                h_l1 += float(H_c.sum(dtype=np.float64))
            num += eps_t
            den += half_l1 + eps_t
            H_c *= num
            H_c /= den
            if learn_w:
                XHt += X_c @ H_c.T
                HHt += H_c @ H_c.T
                h_sum += H_c.sum(axis=1, dtype=np.float64)
        if state_needed:
            objective.append(max(sq_x - 2.0 * cross + quad + l1 * h_l1, 0.0))
            report(iteration - 1)

        if learn_w:
            # W step on the free columns (majorised penalty), from the accumulated statistics.
            W_free = W[:, free]
            num_w = XHt[:, free].astype(dtype) + eps_t
            den_w = (W.astype(np.float64) @ HHt[:, free]).astype(dtype)
            den_w += W_free * (half_l1 * h_sum[free].astype(dtype))
            den_w += eps_t
            W_free *= num_w
            W_free /= den_w
            # Objective of Eq. 6 after normalisation, i.e. g(W, H) before it.
            W64 = W.astype(np.float64)
            norms = np.linalg.norm(W64, axis=0)
            rec = sq_x - 2.0 * np.sum(W64 * XHt) + np.sum((W64.T @ W64) * HHt)
            penalty = l1 * float(norms[free] @ h_sum[free] + h_sum[fixed].sum())
            objective.append(max(rec + penalty, 0.0))
            report(iteration)
            # Normalise the free columns, rescale H so that W H and the objective are unchanged.
            scale = np.maximum(norms[free], eps).astype(dtype)
            W_free /= scale
            H[free] *= scale[:, None]
        if callback is not None:
            callback(iteration, W, H)
        if len(objective) >= 2 and stop():
            converged = True
            break
    if not learn_w:
        objective.append(max(_objective_from_chunks(chunks, W, H, l1, sq_x), 0.0))
        report(iteration)
        converged = converged or stop()
    history = {
        "objective": [float(v) for v in objective],
        "n_iter": iteration,
        "converged": bool(converged),
        "seconds": time.perf_counter() - start,
    }
    return W, H, history


def _objective_from_chunks(chunks, W, H, l1, sq_x):
    """Objective of Eq. 6 for fixed W, accumulated over column blocks in float64."""
    WtW = W.T @ W
    cross = quad = 0.0
    for start_col, X_c in chunks:
        X_c = np.asarray(X_c, dtype=W.dtype)
        H_c = H[:, start_col:start_col + X_c.shape[1]]
        cross += float(np.einsum("ij,ij->", H_c, W.T @ X_c, dtype=np.float64))
        quad += float(np.einsum("ij,ij->", H_c, WtW @ H_c, dtype=np.float64))
    return sq_x - 2.0 * cross + quad + l1 * float(H.sum(dtype=np.float64))


def _initial_activations(rng, W, n_frames, mean_x, dtype):
    """Uniform random H scaled so that mean(W H) is about mean(X)."""
    H = rng.random((W.shape[1], n_frames)).astype(dtype)
    mean_wh = float(W.mean(dtype=np.float64)) * W.shape[1] * 0.5
    H *= dtype.type(max(mean_x, 1e-12) / max(mean_wh, 1e-12))
    return H


def _data_stats(chunks):
    """Sum and sum of squares of the data (float64)."""
    total = sq = 0.0
    for _, X_c in chunks:
        X_c = np.asarray(X_c)
        total += float(X_c.sum(dtype=np.float64))
        sq += float(np.einsum("ij,ij->", X_c, X_c, dtype=np.float64))
    return total, sq


# --------------------------------------------------------------------------- validation


def _check_dtype(dtype):
    name = np.dtype(dtype).name if dtype is not None else None
    if name not in _DTYPES:
        raise ParameterError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return np.dtype(name)


def check_matrix(part, where, size, *, axis, layout, what, first):
    """Check one of several matrices that must agree along ``axis``; return its size there.

    Parameters
    ----------
    part : np.ndarray
        Must be 2-D.
    where : str
        Its name in the messages (``"X[3]"``).
    size : int or None
        The size along ``axis`` of the first matrix (None: ``part`` is the first).
    axis : {0, 1}
    layout : str
        What a 2-D ``part`` is, for the message (``"2-D array (F, T)"``).
    what : str
        What the entries along ``axis`` are (``"rows"``, ``"frequency bins"``).
    first : str
        The first matrix's name (``"X[0]"``).

    Returns
    -------
    int
        ``part.shape[axis]``.

    Raises
    ------
    audiodata.errors.ParameterError
        ``part`` is not 2-D (``layout``) or its size along ``axis`` differs from ``size``.
    """
    if part.ndim != 2:
        raise ParameterError(f"{where} must be a {layout}, got shape {part.shape}")
    if size is not None and part.shape[axis] != size:
        raise ParameterError(f"{where} has {part.shape[axis]} {what}, {first} has {size}")
    return part.shape[axis]


def _as_chunks(X, chunk_size, dtype):
    """Validate X and return ``([(start_column, block), ...], F, T)`` of views (no copy)."""
    require(positive_int, chunk_size, "chunk_size", strict=True)
    parts = list(X) if isinstance(X, (list, tuple)) else [X]
    if not parts:
        raise ParameterError("X is an empty list; give at least one (F, T) array")
    chunks = []
    n_features = None
    offset = 0
    for i, part in enumerate(parts):
        part = part if isinstance(part, np.ndarray) else np.asarray(part, dtype=dtype)
        where = "X" if len(parts) == 1 else f"X[{i}]"
        n_features = check_matrix(part, where, n_features, axis=0, layout="2-D array (F, T)", what="rows",
                                  first="X[0]")
        for s in range(0, part.shape[1], chunk_size):
            block = part[:, s:s + chunk_size]
            finite_min = np.min(block) if block.size else 0.0
            if not np.isfinite(finite_min) or not np.all(np.isfinite(block)):
                raise ParameterError(f"{where} has NaN or infinite values")
            if finite_min < 0:
                raise ParameterError(f"{where} has negative values (min {finite_min:.6g}); NMF needs X >= 0")
            chunks.append((offset + s, block))
        offset += part.shape[1]
    if n_features == 0 or offset == 0:
        raise ParameterError(f"X must have at least one row and one column, got ({n_features}, {offset})")
    return chunks, n_features, offset


def _check_dictionary(name, W, n_features, dtype):
    W = np.array(W, dtype=dtype, copy=True)
    if W.ndim != 2 or W.shape[0] != n_features:
        raise ParameterError(f"{name} must have shape ({n_features}, K) to match X, got {W.shape}")
    if not np.all(np.isfinite(W)) or np.any(W < 0):
        raise ParameterError(f"{name} must be finite and non-negative")
    return W


# --------------------------------------------------------------------------- files


def _dictionary_paths(path):
    path = Path(path)
    if path.suffix in (".npy", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".npy"), path.with_name(path.name + ".json")


def _atomic_write(path, write):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value, where):
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ParameterError(f"{where} = {value!r} is not JSON-serialisable")
