"""Execute every notebook of notebooks/l2i with nbclient against the tiny ESC-10 run and its evaluation."""
import os

import nbformat
import numpy as np
import pytest

from tests.l2i._esc10 import esc10_fold1, l2i_cache_dir  # noqa: F401
from tests.l2i.test_pipeline import tiny_evaluation, tiny_run  # noqa: F401
from tests.l2i.test_training import REPO

NOTEBOOKS = sorted((REPO / "notebooks" / "l2i").glob("*.ipynb"))


def test_notebooks_are_saved_without_outputs():
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert "L2I_RESULTS" in nb.cells[1].source and "parameters" in nb.cells[1].metadata.get("tags", [])
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tiny_evaluation, shared_data, l2i_cache_dir, monkeypatch, tmp_path):  # noqa: F811
    from nbclient import NotebookClient

    monkeypatch.setenv("L2I_RESULTS", str(tiny_evaluation.parents[5]))
    monkeypatch.setenv("AUDIO_DATA_DIR", str(shared_data))
    monkeypatch.setenv("AUDIO_CACHE_DIR", str(l2i_cache_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
    if path.stem == "listen_interpretation":
        assert sum("<audio" in o.get("data", {}).get("text/html", "") for o in outputs) >= 3


# --------------------------------------------------------------------------- l2i.figures (used by the notebooks)
def test_plot_classwise_faithfulness_bars():
    import matplotlib.pyplot as plt

    from l2i.figures import plot_classwise_faithfulness

    fig = plot_classwise_faithfulness({"dog": 0.2, "rain": -0.1}, {"dog": 0.01}, tau=0.1)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:2] == [0.2, -0.1] and heights[2] == 0.01 and heights[3] != heights[3]  # NaN: no random value
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dog", "rain"] and "0.1" in ax.get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="no class"):
        plot_classwise_faithfulness({}, {})


def test_relevance_tsne_and_embedding_plot(rng):
    import matplotlib.pyplot as plt

    from l2i.figures import plot_relevance_embedding, relevance_tsne

    r = np.concatenate([rng.normal(0, 0.05, (6, 5)) + 1, rng.normal(0, 0.05, (6, 5)) - 1])
    embedding = relevance_tsne(r, seed=0)  # 12 points: perplexity capped at 11 / 3
    assert embedding.shape == (12, 2)
    centre = embedding[:6].mean(0), embedding[6:].mean(0)
    spread = max(np.linalg.norm(embedding[:6] - centre[0], axis=1).max(),
                 np.linalg.norm(embedding[6:] - centre[1], axis=1).max())
    assert np.linalg.norm(centre[0] - centre[1]) > spread  # the two groups stay apart
    fig = plot_relevance_embedding(embedding, ["a"] * 6 + ["b"] * 6, max_per_class=4)
    assert [len(c.get_offsets()) for c in fig.axes[0].collections] == [4, 4]
    plt.close(fig)
    with pytest.raises(ValueError):
        relevance_tsne(r[:1])


def test_components_ablation_table_and_plot():
    import matplotlib.pyplot as plt

    from l2i.figures import components_ablation, plot_components_ablation

    def entry(kind, K, nmf, fold=1, lfid=None, top1=0.5, system="posthoc_att"):
        results = {"n_components": K, "test_nmf_loss": nmf}
        if kind == "evaluation":
            results.update(test_fidelity_loss=lfid, fidelity={"top1": top1})
        else:
            results.update(fidelity_top1=top1)
        return {"kind": kind, "corruption": "none" if kind == "evaluation" else None, "dataset": "esc50",
                "system": system, "fold": fold, "seed": 0, "results": results}

    entries = [entry("interpreter", 100, 0.2), entry("evaluation", 100, 0.1, lfid=1.0),
               entry("evaluation", 100, 0.3, fold=2, lfid=2.0), entry("interpreter", 50, 0.4, top1=0.3)]
    table = components_ablation(entries)
    assert [row["K"] for row in table["esc50"]] == [50, 100]
    k100 = table["esc50"][1]
    assert k100["nmf_loss"] == pytest.approx(0.2) and k100["fidelity_loss"] == 1.5 and k100["n_runs"] == 2
    assert np.isnan(table["esc50"][0]["fidelity_loss"]) and table["esc50"][0]["fidelity"] == 0.3
    fig = plot_components_ablation(table["esc50"])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [0.4, 0.2])
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_components_ablation([])
