"""The app saves self-contained model files: the version with the run's scaler in front (docs/run_folders.md)."""
import shutil
from pathlib import Path

import keras
import numpy as np

import apnet  # registers the layers, the scaler layer included, for loading
from audioapp.saving import RunSource, save_version
from audioapp.versions import VersionStack
from audiodata.features.normalization import load_scaler
from audioruns.preprocessing import ScaledModel, attach_scaler, load_scaled_model


def _probabilities(model, x):
    return model.predict(x, verbose=0)[0]


def test_saved_file_predicts_from_raw_features(workspace, tmp_path):
    saved = workspace.save(tmp_path / "edited")
    path = Path(saved["path"])
    raw = np.asarray(workspace.data.features[workspace.data.rows["test"][:16]], dtype=np.float32)

    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ScaledModel) and isinstance(loaded.get_layer("prototypes"), apnet.layers.PrototypeLayer)
    expected = _probabilities(workspace.current.model, workspace.scaler.transform(raw))
    np.testing.assert_allclose(_probabilities(loaded, raw), expected, rtol=1e-5, atol=1e-6)

    # The run's readers get the version on scaled inputs and the run's scaler back, from the file alone.
    model, scaler = load_scaled_model(path)
    np.testing.assert_allclose(_probabilities(model, workspace.scaler.transform(raw)), expected, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(scaler.data_min, workspace.scaler.data_min)
    np.testing.assert_array_equal(load_scaler(path.parent / "scaler.json").data_max, workspace.scaler.data_max)


def test_save_from_a_run_folder_without_scaler_json(workspace, tmp_path):
    """A new-layout source folder (scaler only inside model.keras): the scaler is read from the model file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    source_model = run_dir / "model.keras"
    attach_scaler(workspace.current.model, workspace.scaler).save(source_model)
    shutil.copyfile(workspace.run_dir / "config.yaml", run_dir / "config.yaml")
    source = RunSource(source_model, run_dir, "fsdd", 1)  # no scaler given, no scaler.json beside the model

    folder = tmp_path / "out"
    saved = {}
    result = save_version(VersionStack(workspace.current.model, "loaded"), folder, source, saved, max_saves=5)
    assert {p.name for p in folder.iterdir()} >= {"model_edited_1.keras", "config.yaml", "scaler.json",
                                                   "results.json"}
    assert load_scaler(folder / "scaler.json").get_config() == workspace.scaler.get_config()
    model, scaler = load_scaled_model(result["path"])
    assert scaler.get_config() == workspace.scaler.get_config()
    np.testing.assert_array_equal(model.get_layer("prototypes").get_weights()[0],
                                  workspace.current.model.get_layer("prototypes").get_weights()[0])
