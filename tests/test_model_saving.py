"""Model files carry what they need: save / reload of every model family, the input scaler inside the model.

* :func:`run_model_saving_test` (as KerasHub's ``run_model_saving_test``): a tiny instance of each
  family -- APNet, SB-CNN, Att-CRNN, OpenL3-MLP, KumarCNN, the L2I interpreter, L2ITrainer, FLINT,
  VIBI, and a model with its :class:`audioruns.preprocessing.FeatureScaler` in front -- predicts, is
  saved to ``.keras``, reloaded with ``keras.models.load_model`` (no custom objects) and must give the
  same outputs, weights and config; on TensorFlow here and on JAX in one subprocess (this file run as
  a script) for all families.
* :class:`~audioruns.preprocessing.FeatureScaler` equals the numpy scalers (TensorFlow and JAX).
* A run folder written by :func:`apnet.training.train_fold`: its ``model.keras`` alone predicts from
  raw log-mel spectrograms what the bare model predicts on scaled ones; an older folder (bare model +
  ``scaler.json``) is still read; the export hook does not change training.

(OpenL3's audio embedding network is not among the families: it is only useful with the official
weights, and ``tests/apnet/baselines/test_load_openl3_weights.py`` round-trips it.)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- tiny instances
def _log_mel(shape, seed=0):
    """Unscaled 'log-mel spectrograms' (dB-like values, bands with different offsets)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 8, size=shape) + np.linspace(-70, -10, shape[-1])).astype("float32")


def _scaled(shape):
    """Scaled inputs, in [-1, 1]."""
    return np.random.default_rng(3).uniform(-1, 1, size=shape).astype("float32")


def _kumar_cnn(n_classes=3):
    from l2i.classifier import KumarCNN

    rng = np.random.default_rng(1)
    return KumarCNN(n_classes=n_classes, n_frames=128, n_mels=128, filters=(2, 2, 2, 4, 4, 4), head_filters=4,
                    input_mean=rng.normal(-40, 5, 128).tolist(), input_std=rng.uniform(5, 10, 128).tolist())


def _dictionary():
    return np.abs(np.random.default_rng(2).normal(size=(33, 3))).astype("float32")


def _minmax(x):
    from audiodata.features import MinMaxScaler

    return MinMaxScaler().fit(x)


def _standard(x):
    from audiodata.features import StandardScaler

    return StandardScaler().fit(x)


def _register_layers(*packages):
    """Import the packages that register the layers of the saved models (default: all of them)."""
    from importlib import import_module

    for package in packages or ("apnet", "apnet.baselines", "l2i", "l2i.baselines"):
        import_module(package)


def build_family(name):
    """``(model, x)``: a tiny instance of the model family ``name`` and an input batch for it."""
    import apnet
    from apnet.baselines import att_crnn, openl3_mlp, sb_cnn

    keras.utils.set_random_seed(0)
    scaled = _scaled((2, 32, 16))
    if name == "apnet":
        return apnet.APNet(input_shape=(32, 16), n_classes=3, n_prototypes=4, n_filters=4, kernel_size=3), scaled
    if name == "sb_cnn":
        return sb_cnn((64, 32), 3, filters=(4, 4, 4), dense_units=8), _scaled((2, 64, 32))
    if name == "att_crnn":
        return att_crnn((32, 16), 3, conv_filters=(2, 1), lstm_units=4, dense_units=(8, 4)), scaled
    if name == "openl3_mlp":
        return openl3_mlp(input_shape=(16,), n_classes=3, hidden_units=(8, 4)), scaled[:, 0, :]
    if name == "kumar_cnn":
        return _kumar_cnn(), _log_mel((2, 128, 128))
    if name == "l2i_interpreter":
        from l2i.interpreter import build_interpreter

        return (build_interpreter(_kumar_cnn(), _dictionary(), psi_channels=4, attention_units=4),
                _log_mel((2, 128, 128)))
    if name == "l2i_trainer":
        from l2i.trainer import L2ITrainer

        return (L2ITrainer(_kumar_cnn(), _dictionary(), mode="bydesign",
                           interpreter_kwargs={"psi_channels": 4, "attention_units": 4}), _log_mel((2, 128, 128)))
    if name == "flint":
        from l2i.baselines.flint import FLINT

        return FLINT(_kumar_cnn(), n_attributes=5, psi_channels=4, psi_units=8, decoder_channels=4), \
            _log_mel((2, 128, 128))
    if name == "vibi":
        from l2i.baselines.vibi import VIBI

        x = _log_mel((2, 32, 16))
        return VIBI(input_shape=(32, 16), n_classes=3, k=2, chunk_size=(8, 8), explainer_filters=4,
                    approximator_filters=4, input_mean=x.mean(axis=(0, 1)).tolist(),
                    input_std=x.std(axis=(0, 1)).tolist(), seed=0), x
    if name == "apnet_with_scaler":
        from audioruns.preprocessing import attach_scaler

        x = _log_mel((2, 32, 16))
        return attach_scaler(build_family("apnet")[0], _minmax(x)), x
    if name == "sb_cnn_with_scaler":
        from audioruns.preprocessing import attach_scaler

        x = _log_mel((2, 64, 32))
        return attach_scaler(build_family("sb_cnn")[0], _standard(x)), x
    raise ValueError(name)


FAMILIES = ("apnet", "sb_cnn", "att_crnn", "openl3_mlp", "kumar_cnn", "l2i_interpreter", "l2i_trainer", "flint",
            "vibi", "apnet_with_scaler", "sb_cnn_with_scaler")


def _as_json(config):
    """A config as saved in the ``.keras`` file (tuples become lists)."""
    return json.loads(json.dumps(config))


def run_model_saving_test(model, x, path, atol=1e-6, rtol=1e-6):
    """Save ``model`` to ``path`` (.keras), reload it, and check type, config, weights and outputs on ``x``.

    Returns the reloaded model.
    """
    before = model.predict(x, verbose=0)
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert _as_json(restored.get_config()) == _as_json(model.get_config())
    weights, reloaded_weights = model.get_weights(), restored.get_weights()
    assert len(weights) == len(reloaded_weights)
    for a, b in zip(weights, reloaded_weights):
        np.testing.assert_array_equal(a, b)
    after = restored.predict(x, verbose=0)
    keras.tree.assert_same_structure(before, after)
    for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=atol, rtol=rtol)
    return restored


@pytest.mark.parametrize("family", FAMILIES)
def test_every_model_family_saves_and_reloads(family, tmp_path):
    _register_layers()
    model, x = build_family(family)
    restored = run_model_saving_test(model, x, tmp_path / f"{family}.keras")
    if family.endswith("_with_scaler"):
        assert [layer.name for layer in restored.layers][:2] == ["log_mel", "feature_scaler"]


# ----------------------------------------------------------------------------- the scaler layer
def _scalers(x):
    from audiodata.features import MinMaxScaler

    return [_minmax(x), MinMaxScaler(feature_range=(0, 1)).fit(x), _standard(x)]


def check_feature_scaler(x):
    """The layer equals each numpy scaler (transform, inverse, conversions) to float32 rounding."""
    from audioruns.preprocessing import FeatureScaler

    for scaler in _scalers(x):
        layer = FeatureScaler.from_scaler(scaler)
        scaled = keras.ops.convert_to_numpy(layer(x))
        np.testing.assert_allclose(scaled, scaler.transform(x), rtol=1e-6, atol=1e-6)
        inverse = keras.ops.convert_to_numpy(layer.inverse(scaled))
        np.testing.assert_allclose(inverse, scaler.inverse_transform(scaled), rtol=1e-6, atol=1e-4)
        back = layer.to_scaler()
        assert type(back) is type(scaler) and back.get_config() == scaler.get_config()
        np.testing.assert_array_equal(back.transform(x), scaler.transform(x))
        again = FeatureScaler.from_config(layer.get_config())
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(x)), scaled)


def test_feature_scaler_equals_the_numpy_scalers():
    check_feature_scaler(_log_mel((3, 20, 12)))


def test_feature_scaler_refuses_bad_arguments():
    from audiodata.features import MinMaxScaler

    from audioruns.preprocessing import FeatureScaler, attach_scaler

    with pytest.raises(ValueError, match="method"):
        FeatureScaler("robust")
    with pytest.raises(ValueError, match="data_min"):
        FeatureScaler("minmax", data_max=1.0)
    with pytest.raises(ValueError, match="not fitted"):
        FeatureScaler.from_scaler(MinMaxScaler())
    model, x = build_family("apnet_with_scaler")
    with pytest.raises(ValueError, match="already has its input scaler"):
        attach_scaler(model, _minmax(x))


def test_scaled_model_shares_the_trained_model_and_its_layer_names():
    from audioruns.preprocessing import attach_scaler, detach_scaler

    model, _ = build_family("apnet")
    x = _log_mel((2, 32, 16))
    scaler = _minmax(x)
    full = attach_scaler(model, scaler)
    assert full.get_layer("prototypes") is model.get_layer("prototypes")  # found in the trained model
    assert full.output_names == model.output_names and full.count_params() == model.count_params()
    for a, b in zip(full.predict(x, verbose=0), model.predict(scaler.transform(x), verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    inner, restored = detach_scaler(full)
    assert inner is model and restored.get_config() == scaler.get_config()
    assert detach_scaler(model) == (model, None)


# ----------------------------------------------------------------------------- run folders
SYNTHETIC_CONFIG = {"seed": 0, "features": "mel", "n_prototypes": 4, "n_filters": 4, "kernel_size": 3, "alpha": 10,
                    "beta": 5, "gamma": 5, "batch_size": 16, "learning_rate": 0.001, "epochs": 2}


@pytest.fixture(scope="module")
def apnet_run(tmp_path_factory):
    """A run folder of :func:`apnet.training.train_fold` on a synthetic fold (2 classes, (32, 16) inputs)."""
    import apnet.training
    from apnet.training import FoldData, train_fold

    rng = np.random.default_rng(1)
    n = {"train": 32, "validation": 16, "test": 16}
    x = _log_mel((sum(n.values()), 32, 16), seed=4)
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, len(x))]
    bounds = np.cumsum([0, n["train"], n["validation"], n["test"]])
    rows = {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(n)}
    fold = FoldData(x, rows, {name: labels[r] for name, r in rows.items()}, ("a", "b"))
    run_dir = tmp_path_factory.mktemp("apnet_run") / "apnet" / "fsdd" / "fold1" / "seed0"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(apnet.training, "load_fold", lambda *args, **kwargs: fold)
        results = train_fold(SYNTHETIC_CONFIG, "fsdd", 1, run_dir, verbose=0)
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(SYNTHETIC_CONFIG))
    (run_dir / "results.json").write_text(json.dumps({**results, "dataset": "fsdd", "fold": 1}))
    return run_dir, fold, results


def test_a_new_run_folder_model_predicts_from_log_mel(apnet_run):
    _register_layers("apnet")  # APNet and the scaler
    from apnet.inspection import load_run
    from apnet.training import load_scaler
    from audioruns.preprocessing import ScaledModel, detach_scaler

    run_dir, fold, results = apnet_run
    full = keras.models.load_model(run_dir / "model.keras")
    assert isinstance(full, ScaledModel) and [layer.name for layer in full.layers] == ["log_mel", "feature_scaler",
                                                                                        "apnet"]
    inner, scaler = detach_scaler(full)
    assert scaler.get_config() == load_scaler(run_dir / "scaler.json").get_config()  # scaler.json still written
    raw = fold.features[fold.rows["test"]]
    from_raw = full.predict(raw, verbose=0)
    from_scaled = inner.predict(scaler.transform(raw), verbose=0)
    for a, b in zip(from_raw, from_scaled):
        np.testing.assert_allclose(a, b, atol=1e-6)
    accuracy = np.mean(from_raw[0].argmax(1) == fold.targets["test"].argmax(1))
    assert accuracy == pytest.approx(results["test_accuracy"])
    assert results["n_params"] == inner.count_params()
    run = load_run(run_dir / "model.keras")  # readers get the trained model on scaled inputs, and its scaler
    assert type(run.model).__name__ == "APNet" and run.scaler.get_config() == scaler.get_config()
    (run_dir / "scaler.json").rename(run_dir / "scaler.json.away")  # the model file alone is enough
    try:
        assert load_run(run_dir / "model.keras").scaler.get_config() == scaler.get_config()
    finally:
        (run_dir / "scaler.json.away").rename(run_dir / "scaler.json")


def test_an_old_run_folder_is_still_read(apnet_run, tmp_path):
    import shutil

    from apnet.inspection import load_run
    from audioruns.errors import ModelFileError
    from audioruns.preprocessing import detach_scaler, load_scaled_model

    run_dir, fold, _ = apnet_run
    old = tmp_path / "apnet" / "fsdd" / "fold1" / "seed0"
    old.mkdir(parents=True)
    inner, scaler = detach_scaler(keras.models.load_model(run_dir / "model.keras"))
    inner.save(old / "model.keras")  # the layout before: the bare model, scaler.json beside it
    for name in ("scaler.json", "config.yaml", "results.json"):
        shutil.copy(run_dir / name, old / name)
    model, read = load_scaled_model(old / "model.keras")
    assert type(model).__name__ == "APNet" and read.get_config() == scaler.get_config()
    x = scaler.transform(fold.features[fold.rows["test"]])
    for a, b in zip(model.predict(x, verbose=0), inner.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert load_run(old / "model.keras").scaler.get_config() == scaler.get_config()
    (old / "scaler.json").unlink()
    with pytest.raises(ModelFileError, match=r"scaler\.json does not exist.*model\.keras holds no input scaler"):
        load_scaled_model(old / "model.keras")
    assert load_scaled_model(old / "model.keras", require_scaler=False)[1] is None
    with pytest.raises(ModelFileError, match="not found"):
        load_scaled_model(tmp_path / "nowhere" / "model.keras")


def test_the_export_hook_does_not_change_training(tmp_path):
    """fit_resumable with the scaler attached on save trains bit for bit as without; only model.keras differs."""
    from apnet.training import CLASSIFIER_MONITOR, FeatureBatches, fit_resumable
    from audioruns.preprocessing import ScaledModel, attach_scaler, detach_scaler

    x = _log_mel((24, 64, 32), seed=5)
    y = np.eye(3, dtype="float32")[np.arange(24) % 3]
    scaler = _minmax(x)
    trained = {}
    for name, export in (("plain", None), ("export", lambda model: attach_scaler(model, scaler))):
        model, _ = build_family("sb_cnn")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        keras.utils.set_random_seed(0)
        train = FeatureBatches(x, np.arange(16), y[:16], 8, scaler=scaler, targets="classifier", shuffle=True)
        validation = FeatureBatches(x, np.arange(16, 24), y[16:], 8, scaler=scaler, targets="classifier")
        fit_resumable(model, train, validation, tmp_path / name, 2, CLASSIFIER_MONITOR, verbose=0, export=export)
        trained[name] = model
    assert not isinstance(keras.models.load_model(tmp_path / "plain" / "model.keras"), ScaledModel)
    saved, saved_scaler = detach_scaler(keras.models.load_model(tmp_path / "export" / "model.keras"))
    assert saved_scaler.get_config() == scaler.get_config()
    plain = keras.models.load_model(tmp_path / "plain" / "model.keras")
    for a, b, c, d in zip(trained["plain"].get_weights(), trained["export"].get_weights(), plain.get_weights(),
                          saved.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)


# ----------------------------------------------------------------------------- JAX
def test_every_family_and_the_scaler_on_jax(apnet_run, tmp_path):
    """This file as a script under KERAS_BACKEND=jax: every family round-trips, the scaler layer equals
    numpy, and the run folder's TensorFlow-written model.keras, loaded after `import apnet` alone,
    predicts from log-mel what the bare model predicts here on scaled inputs."""
    from audioruns.preprocessing import detach_scaler

    run_dir, fold, _ = apnet_run
    raw = fold.features[fold.rows["test"]]
    np.save(tmp_path / "raw.npy", raw)
    inner, scaler = detach_scaler(keras.models.load_model(run_dir / "model.keras"))
    expected = inner.predict(scaler.transform(raw), verbose=0)[0]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(Path(__file__)), str(run_dir / "model.keras"), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "jax_report.json").read_text())
    assert report["backend"] == "jax"
    assert report["families"] == {name: "ok" for name in FAMILIES}, report["families"]
    assert report["feature_scaler"] == "ok", report["feature_scaler"]
    np.testing.assert_allclose(np.load(tmp_path / "jax_probabilities.npy"), expected, atol=1e-5)


def _jax_main(model_path, out):
    """Run as a script (the JAX subprocess): write ``jax_report.json`` and ``jax_probabilities.npy`` in ``out``."""
    import traceback

    out = Path(out)
    _register_layers("apnet")  # nothing else: the model file must be enough
    full = keras.models.load_model(model_path)
    np.save(out / "jax_probabilities.npy", full.predict(np.load(out / "raw.npy"), verbose=0)[0])
    _register_layers()

    report = {"backend": keras.backend.backend(), "families": {}}
    for name in FAMILIES:
        try:
            model, x = build_family(name)
            run_model_saving_test(model, x, out / f"{name}.keras")
            report["families"][name] = "ok"
        except Exception:  # report every family, not just the first failure
            report["families"][name] = traceback.format_exc()[-2000:]
    try:
        check_feature_scaler(_log_mel((3, 20, 12)))
        report["feature_scaler"] = "ok"
    except Exception:
        report["feature_scaler"] = traceback.format_exc()[-2000:]
    (out / "jax_report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path, where tests/apnet would hide the package.
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
    _jax_main(sys.argv[1], sys.argv[2])
