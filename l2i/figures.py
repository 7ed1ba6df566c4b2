"""Figures of the L2I paper from our results (Parekh et al., IEEE/ACM TASLP 2024).

* :func:`plot_classwise_faithfulness` -- Figs. 2 and 3: ``FF_median`` per class, L2I beside the
  Random Baseline;
* :func:`relevance_tsne` and :func:`plot_relevance_embedding` -- Fig. 5: t-SNE of the relevance
  vectors ``r_{c,x}``, coloured by interpreted class;
* :func:`components_ablation` and :func:`plot_components_ablation` -- Fig. 6: test losses against
  the number of components ``K``.

Every plotting function draws on the ``ax`` (or ``axes``) it is given, or on a new figure, and
returns the figure.
"""
import matplotlib
import numpy as np
from sklearn.manifold import TSNE

from audiodata.errors import ParameterError

__all__ = [
    "components_ablation",
    "plot_classwise_faithfulness",
    "plot_components_ablation",
    "plot_relevance_embedding",
    "relevance_tsne",
]


def _axes(ax, n=1, figsize=(7, 3.5)):
    if ax is not None:
        axes = np.atleast_1d(ax)
        return axes[0].figure, axes
    import matplotlib.pyplot as plt  # here, not at the top: pyplot picks a GUI backend when it is imported

    fig, axes = plt.subplots(1, n, figsize=figsize, layout="constrained")
    return fig, np.atleast_1d(axes)


def plot_classwise_faithfulness(ff, ff_random, tau=0.1, ax=None, title=None):
    """Bar chart of ``FF_median`` per class for L2I and the Random Baseline (Figs. 2-3).

    Parameters
    ----------
    ff, ff_random : dict {class name: FF_median}
        E.g. ``results["ff_median_per_class"][str(tau)]`` of ``evaluate.py``'s results.json.
    tau : float
        For the title.
    ax : matplotlib Axes, optional

    Returns
    -------
    fig : matplotlib Figure
    """
    names = list(ff)
    if not names:
        raise ParameterError("no class has a faithfulness value (nothing to plot)")
    fig, (ax,) = _axes(ax, figsize=(max(5, 0.6 * len(names) + 2), 3.5))
    x = np.arange(len(names))
    ax.bar(x - 0.2, [ff[c] for c in names], width=0.4, label="L2I", color="tab:blue")
    ax.bar(x + 0.2, [ff_random.get(c, np.nan) for c in names], width=0.4, label="Random Baseline",
           color="tab:gray")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set(ylabel="FF_median (drop in probability)", title=title or f"Class-wise faithfulness, tau = {tau:g}")
    ax.legend()
    return fig


def relevance_tsne(r, seed=0, perplexity=30.0):
    """2-D t-SNE of relevance vectors (Fig. 5), with scikit-learn.

    Parameters
    ----------
    r : np.ndarray [shape=(N, K)]
        Relevance vectors ``r_{c,x}`` (``relevances.npz`` of ``evaluate.py``), N >= 2.
    seed : int
    perplexity : float
        Capped at ``(N - 1) / 3`` so that small sets work.

    Returns
    -------
    embedding : np.ndarray [shape=(N, 2)]
    """
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ParameterError(f"r must have shape (N >= 2, K), got {r.shape}")
    perplexity = float(min(perplexity, max(1.0, (r.shape[0] - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(r)


def plot_relevance_embedding(embedding, labels, ax=None, max_per_class=None, seed=0, title=None):
    """Scatter of a 2-D embedding coloured by interpreted class (Fig. 5).

    Parameters
    ----------
    embedding : np.ndarray [shape=(N, 2)]
    labels : sequence of str [shape=(N,)]
    max_per_class : int, optional
        Show at most this many random points per class (the paper: 25 for OpenMIC).

    Returns
    -------
    fig : matplotlib Figure
    """
    embedding = np.asarray(embedding)
    labels = np.asarray(labels)
    if embedding.ndim != 2 or embedding.shape[1] != 2 or labels.shape != (embedding.shape[0],):
        raise ParameterError(f"embedding must be (N, 2) and labels (N,), got {embedding.shape}, {labels.shape}")
    fig, (ax,) = _axes(ax, figsize=(6, 5))
    rng = np.random.default_rng(seed)
    cmap = _cmap(len(np.unique(labels)))
    for i, name in enumerate(dict.fromkeys(labels.tolist())):
        idx = np.flatnonzero(labels == name)
        if max_per_class is not None and idx.size > max_per_class:
            idx = rng.choice(idx, max_per_class, replace=False)
        ax.scatter(embedding[idx, 0], embedding[idx, 1], s=18, color=cmap(i), label=name)
    ax.set(xticks=[], yticks=[], title=title or "t-SNE of relevance vectors")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _cmap(n):
    return matplotlib.colormaps["tab10" if n <= 10 else "tab20"]


def components_ablation(entries):
    """Test losses per number of components ``K`` (Fig. 6), from :func:`l2i.pipeline.find_results` entries.

    Uses evaluation results (``test_nmf_loss``, ``test_fidelity_loss`` and the fidelity)
    when present, else the training results (``test_nmf_loss`` and fidelity); several
    runs with the same ``(dataset, K)`` are averaged.

    Returns
    -------
    table : dict {dataset: list of dict(K, nmf_loss, fidelity_loss, fidelity, n_runs)}, sorted by K
    """
    grouped = {}
    for entry in entries:
        res = entry["results"]
        if entry["kind"] == "evaluation" and entry.get("corruption") == "none":
            fid = res.get("fidelity", {})
            fidelity = fid.get("top1", fid.get("macro_auprc", fid.get("weighted_f1")))
            values = (res.get("test_nmf_loss"), res.get("test_fidelity_loss"), fidelity)
        elif entry["kind"] == "interpreter" and "n_components" in res:
            values = (res.get("test_nmf_loss"), None, res.get("fidelity_top1", res.get("fidelity_macro_auprc")))
        else:
            continue
        K = res.get("n_components")
        key = (entry["dataset"], int(K), entry["system"], entry["fold"], entry["seed"])
        if key in grouped and grouped[key][3] == "evaluation":
            continue  # evaluation results win over the training ones of the same run
        grouped[key] = (*values, entry["kind"])
    table = {}
    for (dataset, K, *_), (nmf, fid_loss, fidelity, _) in grouped.items():
        table.setdefault(dataset, {}).setdefault(K, []).append((nmf, fid_loss, fidelity))

    def mean(values):
        values = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    return {dataset: [{"K": K, "nmf_loss": mean([v[0] for v in rows]), "fidelity_loss": mean([v[1] for v in rows]),
                       "fidelity": mean([v[2] for v in rows]), "n_runs": len(rows)}
                      for K, rows in sorted(by_k.items())]
            for dataset, by_k in sorted(table.items())}


def plot_components_ablation(rows, axes=None, title=None):
    """Test ``L_NMF`` and ``L_FID`` (or fidelity when ``L_FID`` is missing) against ``K`` (Fig. 6).

    Parameters
    ----------
    rows : list of dict
        One dataset's entries of :func:`components_ablation` (``K``, ``nmf_loss``, ``fidelity_loss``, ``fidelity``).
    axes : two matplotlib Axes, optional

    Returns
    -------
    fig : matplotlib Figure
    """
    if not rows:
        raise ParameterError("no run to plot (need results with n_components)")
    fig, axes = _axes(axes, n=2, figsize=(8, 3.2))
    K = [r["K"] for r in rows]
    axes[0].plot(K, [r["nmf_loss"] for r in rows], "o-")
    axes[0].set(xlabel="number of components K", ylabel="test L_NMF")
    fid_loss = [r["fidelity_loss"] for r in rows]
    if np.all(np.isnan(fid_loss)):
        axes[1].plot(K, [r["fidelity"] for r in rows], "o-", color="tab:orange")
        axes[1].set(xlabel="number of components K", ylabel="fidelity")
    else:
        axes[1].plot(K, fid_loss, "o-", color="tab:orange")
        axes[1].set(xlabel="number of components K", ylabel="test L_FID")
    if title:
        fig.suptitle(title)
    return fig
