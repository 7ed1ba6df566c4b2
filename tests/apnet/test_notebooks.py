"""The figure notebooks of notebooks/apnet/ run end to end on a quick FSDD APNet.

``train.py`` trains a small FSDD APNet for one epoch once per module, and every notebook is
executed with nbclient against that run folder. The plotting helpers are tested in test_figures.py.
"""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks" / "apnet"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
FIGURES = ("fig4_reconstructions", "fig5_prototypes", "fig6_last_layer_weights", "fig7_weighted_sum_kernels",
           "fig8_closest_prototypes", "fig9_prototype_distances")


# ----------------------------------------------------------------------------- notebooks
def test_every_figure_has_one_saved_clean_notebook():
    assert [path.stem for path in NOTEBOOKS] == list(FIGURES)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(cell.outputs == [] and cell.execution_count is None for cell in code), f"{path.name} has outputs"
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert 'os.environ.get("APNET_RESULTS"' in code[0].source and "AUDIO_DATA_DIR" in code[0].source
        assert "figures." in "".join(cell.source for cell in code), path.name


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shared_data, feature_cache, fsdd_fold):
    """``train.py --dataset fsdd --fold 1 --epochs 1`` with M = 10, C = 8 (features already cached)."""
    tmp = tmp_path_factory.mktemp("notebook_run")
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8, epochs=1)
    config_path = tmp / "fsdd_small.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = kernel_env(tmp, shared_data, feature_cache)
    command = [sys.executable, str(REPO / "experiments" / "apnet" / "train.py"), "--dataset", "fsdd", "--fold", "1",
               "--config", str(config_path), "--data-dir", str(shared_data), "--cache-dir", str(feature_cache),
               "--output", str(tmp / "results"), "--verbose", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp / "results" / "apnet" / "fsdd" / "fold1" / "seed0"
    assert (run_dir / "model.keras").is_file()
    return run_dir, env


def kernel_env(tmp, shared_data, feature_cache):
    env = dict(os.environ)
    for var in ("KERAS_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        env[var] = str(tmp / var.lower())
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               AUDIO_DATA_DIR=str(shared_data), AUDIO_CACHE_DIR=str(feature_cache))
    env.pop("MPLBACKEND", None)  # the notebooks choose the inline backend
    return env


@pytest.mark.parametrize("name", FIGURES)
def test_notebook_runs_and_draws(name, trained_run):
    from nbclient import NotebookClient

    run_dir, env = trained_run
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute(env={**env, "APNET_RESULTS": str(run_dir)})  # raises CellExecutionError on any error
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert images, f"{name} drew no image"
    if name == "fig5_prototypes":
        assert any("text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"] for o in outputs)
