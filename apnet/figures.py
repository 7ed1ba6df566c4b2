"""Figures 4-9 of the APNet paper (Section 5): plotting helpers for ``notebooks/apnet/``.

Every ``plot_*`` function takes NumPy arrays (from :mod:`apnet.inspection`) and returns a
:class:`matplotlib.figure.Figure` built without pyplot, so nothing is left in a global figure
registry and the functions can be tested headless. In a notebook, ``display(fig)`` after
``%matplotlib inline`` shows it; ``fig.savefig(path)`` writes it.

* :func:`plot_reconstructions` -- inputs and autoencoder reconstructions (Figure 4);
* :func:`plot_prototypes` -- decoded prototypes ``g(P_j)`` (Figure 5);
* :func:`plot_last_layer_weights` -- ``W^T`` with the prototypes sorted by class (Figure 6);
* :func:`plot_weighted_sum_kernels` -- kernels ``H_j[f]`` beside their prototypes (Figure 7);
* :func:`plot_closest_prototypes` -- an input and its closest prototypes by mean and by
  weighted-sum similarity (Figure 8);
* :func:`plot_distance_matrix` -- the prototype distance matrix of Eq. 11 (Figure 9).

Spectrograms are ``(T, F)`` arrays and are drawn with time to the right and frequency upwards.
:func:`load_run_data`, :func:`one_per_class`, :func:`pick_instance` and :func:`prototype_audio`
are the glue the notebooks share.
"""
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from apnet.inspection import APNetRun, load_run
from apnet.training import load_fold
from audiodata.cli import positive_int, require
from audiodata.datasets import get_dataset
from audiodata.features import load_feature_params, mel_to_audio
from audiodata.features.extract import n_samples

#: Colour map of the spectrograms and of the weight/distance matrices.
SPECTROGRAM_CMAP = "magma"
MATRIX_CMAP = "viridis"


def _figure(figsize):
    return Figure(figsize=figsize, layout="constrained")


def _spectrograms(arrays, name):
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError(f"`{name}` is empty; give at least one (T, F) spectrogram")
    for a in arrays:
        if a.ndim != 2:
            raise ValueError(f"`{name}` must hold (T, F) spectrograms; received one of shape {a.shape}")
    return arrays


def _limits(*groups):
    values = [a for group in groups for a in group]
    return float(min(a.min() for a in values)), float(max(a.max() for a in values))


def _show(ax, S, vmin, vmax, title=None, cmap=SPECTROGRAM_CMAP):
    image = ax.imshow(S.T, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _titles(titles, n, name):
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"`{name}` must have {n} entries, one per spectrogram; received {len(titles)}")
    return titles


# ----------------------------------------------------------------------------- Figure 4
def plot_reconstructions(x, reconstructions, titles=None, label="scaled log-mel"):
    """Inputs ``X_i`` (top row) and their reconstructions ``X_hat_i`` (bottom row), Figure 4.

    Parameters
    ----------
    x, reconstructions : np.ndarray [shape=(n, T, F)]
        Inputs and :func:`apnet.inspection.reconstruct` of them, on the same scale.
    titles : sequence of n str, optional
        Title of each column (e.g. the class).
    label : str
        Colour-bar label.

    Returns
    -------
    matplotlib.figure.Figure
        ``2 n`` spectrogram axes (row-major: inputs, then reconstructions) and a colour bar;
        both rows share one colour scale.
    """
    x = _spectrograms(x, "x")
    reconstructions = _spectrograms(reconstructions, "reconstructions")
    if len(x) != len(reconstructions):
        raise ValueError(f"`x` has {len(x)} spectrograms and `reconstructions` {len(reconstructions)}")
    titles = _titles(titles, len(x), "titles")
    vmin, vmax = _limits(x, reconstructions)
    fig = _figure((2.0 * len(x) + 1.0, 4.0))
    axes = fig.subplots(2, len(x), squeeze=False)
    for i, (original, rebuilt) in enumerate(zip(x, reconstructions)):
        image = _show(axes[0, i], original, vmin, vmax, titles[i])
        _show(axes[1, i], rebuilt, vmin, vmax)
    axes[0, 0].set_ylabel(r"$X_i$")
    axes[1, 0].set_ylabel(r"$\hat{X}_i$")
    fig.colorbar(image, ax=axes, label=label)
    return fig


# ----------------------------------------------------------------------------- Figure 5
def plot_prototypes(mel, titles=None, n_cols=5, label="scaled log-mel"):
    """Decoded prototypes ``g(P_j)`` in a grid, Figure 5.

    Parameters
    ----------
    mel : np.ndarray [shape=(n, T, F)]
        Decoded prototypes (``apnet.inspection.decode_prototypes(...)["mel"]``, or a selection).
    titles : sequence of n str, optional
    n_cols : int
        Columns of the grid; empty cells of the last row are removed.

    Returns
    -------
    matplotlib.figure.Figure
        ``n`` spectrogram axes and a colour bar, one colour scale.
    """
    mel = _spectrograms(mel, "mel")
    titles = _titles(titles, len(mel), "titles")
    n_cols = require(positive_int, n_cols, "n_cols", strict=True)
    n_cols = min(n_cols, len(mel))
    n_rows = -(-len(mel) // n_cols)
    vmin, vmax = _limits(mel)
    fig = _figure((2.0 * n_cols + 1.0, 2.0 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(mel):]:
        ax.remove()
    for ax, S, title in zip(axes, mel, titles):
        image = _show(ax, S, vmin, vmax, title)
    fig.colorbar(image, ax=list(axes[:len(mel)]), label=label)
    return fig


# ----------------------------------------------------------------------------- Figure 6
def plot_last_layer_weights(w_t, order=None, class_names=None, prototype_labels=None):
    """The transposed last-layer kernel ``W^T`` ``(K, M)``, prototypes sorted by class, Figure 6.

    Parameters
    ----------
    w_t : np.ndarray [shape=(K, M)]
        :func:`apnet.inspection.fully_connected_weights`.
    order : np.ndarray [shape=(M,)], optional
        Column order (:func:`apnet.inspection.class_order` of the prototypes' classes).
    class_names : sequence of K str, optional
        Row labels (the outputs).
    prototype_labels : sequence of M str, optional
        Label of each prototype in the original order (e.g. its class); drawn under the columns.

    Returns
    -------
    matplotlib.figure.Figure
        One image axes holding ``w_t[:, order]`` and a colour bar.
    """
    w_t = np.asarray(w_t)
    if w_t.ndim != 2:
        raise ValueError(f"`w_t` must be a (K, M) matrix; received shape {w_t.shape}")
    order = _order(order, w_t.shape[1])
    fig = _figure((max(4.0, 0.25 * w_t.shape[1] + 2.0), max(2.5, 0.35 * w_t.shape[0] + 1.0)))
    ax = fig.add_subplot()
    image = ax.imshow(w_t[:, order], aspect="auto", cmap=MATRIX_CMAP, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="weight")
    ax.set_xlabel("prototype $j$ (sorted by class)")
    ax.set_ylabel("output class $k$")
    if class_names is not None:
        ax.set_yticks(np.arange(w_t.shape[0]), [str(c) for c in class_names], fontsize=8)
    if prototype_labels is not None:
        labels = [str(prototype_labels[j]) for j in order]
        ax.set_xticks(np.arange(w_t.shape[1]), labels, rotation=90, fontsize=7)
    ax.set_title(r"$W^T$", fontsize=10)
    return fig


def _order(order, n):
    if order is None:
        return np.arange(n)
    order = np.asarray(order, dtype=int)
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"`order` must be a permutation of range({n}); received {order.tolist()}")
    return order


# ----------------------------------------------------------------------------- Figure 7
def plot_weighted_sum_kernels(kernels, mel=None, titles=None):
    """Weighted-sum kernels ``H_j[f]`` (upsampled to the input's bands), Figure 7.

    Each kernel is drawn as a curve with frequency upwards; with ``mel``, the prototype's
    decoded spectrogram is drawn to its left on the same frequency axis, so that the weights
    can be compared with where the prototype's energy is.

    Parameters
    ----------
    kernels : np.ndarray [shape=(n, F)]
        Rows of ``apnet.inspection.weighted_sum_weights(model, upsample=True)``.
    mel : np.ndarray [shape=(n, T, F)], optional
        The decoded prototypes of the same rows.
    titles : sequence of n str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Per kernel, one axes with the curve (``line.get_xdata()`` is ``H_j``), preceded by a
        spectrogram axes when ``mel`` is given: ``n`` or ``2 n`` axes, row ``j`` of the grid
        for kernel ``j``.
    """
    kernels = np.asarray(kernels)
    if kernels.ndim != 2:
        raise ValueError(f"`kernels` must be an (n, F) array; received shape {kernels.shape}")
    titles = _titles(titles, len(kernels), "titles")
    if mel is not None:
        mel = _spectrograms(mel, "mel")
        if len(mel) != len(kernels) or any(S.shape[1] != kernels.shape[1] for S in mel):
            raise ValueError(f"`mel` must hold {len(kernels)} spectrograms with {kernels.shape[1]} bands, one "
                             f"per kernel; received shapes {[S.shape for S in mel]}")
    n_cols = 1 if mel is None else 2
    fig = _figure((3.0 * n_cols, 2.2 * len(kernels)))
    axes = fig.subplots(len(kernels), n_cols, squeeze=False,
                        gridspec_kw={"width_ratios": [2, 1]} if mel is not None else None)
    bands = np.arange(kernels.shape[1])
    vmin, vmax = _limits(mel) if mel is not None else (None, None)
    for j, kernel in enumerate(kernels):
        ax = axes[j, -1]
        if mel is not None:
            _show(axes[j, 0], mel[j], vmin, vmax, titles[j])
            axes[j, 0].set_ylabel("mel band")
            ax.sharey(axes[j, 0])
        elif titles[j] is not None:
            ax.set_title(titles[j], fontsize=9)
        ax.plot(kernel, bands, color="C0")
        ax.set_ylim(-0.5, kernels.shape[1] - 0.5)
        ax.set_xlabel(r"$H_j[f]$")
    return fig


# ----------------------------------------------------------------------------- Figure 8
def plot_closest_prototypes(x, mean_mel, weighted_mel, title=None, mean_titles=None, weighted_titles=None):
    """An input and its closest prototypes by mean (top) and by weighted-sum similarity (bottom), Figure 8.

    Parameters
    ----------
    x : np.ndarray [shape=(T, F)]
        The input ``X_i``.
    mean_mel, weighted_mel : np.ndarray [shape=(k, T, F)]
        Decoded prototypes closest to ``x`` with ``H_j[f] = 1/F'`` and with the learned ``H``
        (:func:`apnet.inspection.closest_prototypes`), most similar first.
    title : str, optional
        Title of the input.
    mean_titles, weighted_titles : sequence of k str, optional

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + 2 k`` spectrogram axes: the input, then the mean row, then the weighted row.
    """
    (x,) = _spectrograms([x], "x")
    mean_mel = _spectrograms(mean_mel, "mean_mel")
    weighted_mel = _spectrograms(weighted_mel, "weighted_mel")
    k = len(mean_mel)
    if len(weighted_mel) != k:
        raise ValueError(f"`mean_mel` has {k} prototypes and `weighted_mel` {len(weighted_mel)}")
    mean_titles = _titles(mean_titles, k, "mean_titles")
    weighted_titles = _titles(weighted_titles, k, "weighted_titles")
    vmin, vmax = _limits([x], mean_mel, weighted_mel)
    fig = _figure((2.0 * (k + 2), 4.0))
    grid = fig.add_gridspec(2, k + 2)
    ax_x = fig.add_subplot(grid[:, :2])
    _show(ax_x, x, vmin, vmax, title if title is not None else r"$X_i$")
    for row, (mels, names, label) in enumerate(((mean_mel, mean_titles, "mean"),
                                                (weighted_mel, weighted_titles, "weighted sum"))):
        for i, (S, name) in enumerate(zip(mels, names)):
            ax = fig.add_subplot(grid[row, 2 + i])
            _show(ax, S, vmin, vmax, name)
            if i == 0:
                ax.set_ylabel(label)
    return fig


# ----------------------------------------------------------------------------- Figure 9
def plot_distance_matrix(distances, order=None, labels=None):
    """The prototype distance matrix ``D_jl = ||P_j - P_l||^2`` (Eq. 11) sorted by class, Figure 9.

    Parameters
    ----------
    distances : np.ndarray [shape=(M, M)]
        :func:`apnet.inspection.prototype_distance_matrix`.
    order : np.ndarray [shape=(M,)], optional
        :func:`apnet.inspection.class_order` of the prototypes' classes.
    labels : sequence of M str, optional
        Class name of each prototype (original order). Runs of equal labels in the sorted
        order get one tick at their centre and are separated by white lines.

    Returns
    -------
    matplotlib.figure.Figure
        One image axes holding ``distances[order][:, order]`` and a colour bar.
    """
    distances = np.asarray(distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(f"`distances` must be a square matrix; received shape {distances.shape}")
    order = _order(order, len(distances))
    fig = _figure((5.5, 4.5))
    ax = fig.add_subplot()
    image = ax.imshow(distances[np.ix_(order, order)], cmap=MATRIX_CMAP, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=r"$\|P_j - P_l\|_2^2$")
    ax.set_xlabel("prototype $l$")
    ax.set_ylabel("prototype $j$")
    if labels is not None:
        sorted_labels = [str(labels[j]) for j in order]
        starts = [0] + [i for i in range(1, len(order)) if sorted_labels[i] != sorted_labels[i - 1]]
        ends = starts[1:] + [len(order)]
        centres = [(s + e - 1) / 2.0 for s, e in zip(starts, ends)]
        names = [sorted_labels[s] for s in starts]
        ax.set_xticks(centres, names, rotation=90, fontsize=8)
        ax.set_yticks(centres, names, fontsize=8)
        for boundary in starts[1:]:
            ax.axhline(boundary - 0.5, color="white", linewidth=0.8)
            ax.axvline(boundary - 0.5, color="white", linewidth=0.8)
    return fig


# ----------------------------------------------------------------------------- notebook glue
def one_per_class(classes):
    """Index of the first prototype of each class present, by increasing class (Figures 5 and 7)."""
    classes = np.asarray(classes)
    return np.array([int(np.flatnonzero(classes == c)[0]) for c in np.unique(classes)], dtype=int)


def pick_instance(closest, prototype_classes, labels):
    """An input where the weighted sum helps, for Figure 8.

    The first input whose most similar prototype by weighted sum has its true class while the
    one by mean does not; else the first where the two disagree; else 0.

    Parameters
    ----------
    closest : dict
        :func:`apnet.inspection.closest_prototypes` (``weighted`` and ``mean``, ``(N, k)``).
    prototype_classes : np.ndarray [shape=(M,)]
    labels : np.ndarray [shape=(N,)]
        True class of each input.
    """
    prototype_classes, labels = np.asarray(prototype_classes), np.asarray(labels)
    weighted = prototype_classes[closest["weighted"][:, 0]]
    mean = prototype_classes[closest["mean"][:, 0]]
    for candidates in ((weighted == labels) & (mean != labels), weighted != mean):
        if candidates.any():
            return int(np.flatnonzero(candidates)[0])
    return 0


def prototype_audio(mel, scaler, feature_params, peak=0.9):
    """Audio of a (scaled) spectrogram: unscale, mel inversion + Griffin-Lim, peak-normalise.

    The same steps as :func:`apnet.inspection.write_prototypes`, for ``IPython.display.Audio``.

    Returns
    -------
    y : np.ndarray [shape=(n,)], float32
    sr : int
    """
    S = scaler.inverse_transform(np.asarray(mel)) if scaler is not None else np.asarray(mel)
    sr = int(feature_params["sr"])
    length = n_samples(feature_params) if feature_params.get("duration") or feature_params.get("n_samples") else None
    y = mel_to_audio(S, **{**feature_params, "length": length})
    top = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (peak / top) if top > 0 else y).astype(np.float32), sr


@dataclass(kw_only=True)
class RunData(APNetRun):
    """An :class:`apnet.inspection.APNetRun` with its fold's data, as :func:`load_run_data` returns it.

    Attributes
    ----------
    data : apnet.training.FoldData
    feature_params : dict
    class_names : tuple of str
    """

    data: object = None
    feature_params: dict = field(default_factory=dict)
    class_names: tuple = ()

    #: ``run["data"]`` and the keys of :class:`~apnet.inspection.APNetRun`: kept for one release for old notebooks.
    _OLD_KEYS = APNetRun._OLD_KEYS + ("data", "feature_params", "class_names")


def load_run_data(results, data_dir=None, cache_dir=None):
    """A training (or refinement) run folder and its fold's data, for the notebooks.

    Parameters
    ----------
    results : str or Path
        A run folder of ``experiments/apnet/train.py`` or ``refine.py`` (or its ``model.keras``).
    data_dir, cache_dir : str or Path, optional
        Dataset folder (default ``$AUDIO_DATA_DIR``) and feature cache.

    Returns
    -------
    RunData
        The attributes of :func:`apnet.inspection.load_run`'s :class:`~apnet.inspection.APNetRun`
        (``model``, ``config``, ``scaler``, ``dataset``, ``fold``, ``results``, ``run_dir``) plus
        ``data`` (:class:`apnet.training.FoldData`), ``feature_params`` (dict) and ``class_names``
        (tuple of str).
    """
    path = Path(results)
    run = load_run(path if path.suffix == ".keras" else path / "model.keras")
    features = run.config["features"]
    data = load_fold(run.dataset, run.fold, features, data_dir=data_dir, cache_dir=cache_dir)
    params = load_feature_params(get_dataset(run.dataset, data_dir=data_dir).config_name, features)
    return RunData(**{f.name: getattr(run, f.name) for f in fields(run)}, data=data, feature_params=params,
                   class_names=tuple(str(c) for c in data.classes))
