"""Tests of apnet.training: Eq. 10, the first steps, streaming batches and resuming on real FSDD features;
early stopping, the per-model settings of the authors' configs and train_fold on tiny synthetic folds."""
import json
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from apnet import APNet, PrototypeLoss, prototype_loss
from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet, fit_resumable
from audioruns.preprocessing import detach_scaler

CONFIG_DIR = Path(__file__).resolve().parents[2] / "apnet" / "configs"


def small_apnet(seed=0):
    keras.utils.set_random_seed(seed)
    return APNet(input_shape=(64, 64), n_classes=10, n_prototypes=10, n_filters=8)


def apnet_targets(x, y):
    return {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x), "float32")}


def test_prototype_loss_class(rng):
    d = rng.uniform(0, 5, size=(6, 4, 3)).astype("float32")
    # Default: the reference implementation's mean over latent frequency, i.e. Eq. 5 on D / F'.
    mean_d = d.mean(axis=-1)
    expected = mean_d.min(axis=1).mean() + mean_d.min(axis=0).mean()
    np.testing.assert_allclose(float(PrototypeLoss()(np.zeros(6), d)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(PrototypeLoss("sum")(np.zeros(6), d)), float(prototype_loss(d, "sum")),
                               rtol=1e-6)
    np.testing.assert_allclose(float(prototype_loss(d, "mean")), expected, rtol=1e-6)
    revived = keras.losses.deserialize(keras.losses.serialize(PrototypeLoss("sum")))
    assert isinstance(revived, PrototypeLoss) and revived.name == "prototype_loss"
    assert revived.frequency_reduction == "sum"


def test_prototype_loss_function_and_class_share_the_default(rng):
    """prototype_loss and PrototypeLoss once defaulted to opposite reductions ('sum' / 'mean')."""
    import inspect

    from apnet.losses import DEFAULT_FREQUENCY_REDUCTION

    function_default = inspect.signature(prototype_loss).parameters["frequency_reduction"].default
    assert function_default == PrototypeLoss().frequency_reduction == DEFAULT_FREQUENCY_REDUCTION == "mean"
    d = rng.uniform(0, 5, size=(6, 4, 3)).astype("float32")
    np.testing.assert_allclose(float(prototype_loss(d)), float(PrototypeLoss()(np.zeros(6), d)), rtol=1e-6)


def test_total_loss_is_eq_10(fsdd_batch):
    x, y = fsdd_batch
    model = small_apnet()
    compile_apnet(model, alpha=10, beta=5, gamma=5)
    logs = model.evaluate(x, apnet_targets(x, y), batch_size=len(x), return_dict=True, verbose=0)
    probs, reconstruction, distances = model.predict(x, batch_size=len(x), verbose=0)
    l_c = -np.mean(np.sum(y * np.log(np.clip(probs, 1e-7, 1)), axis=1))
    l_r = np.mean((x - reconstruction) ** 2)
    l_p = float(prototype_loss(distances, "mean"))  # the reference reduction (PrototypeLoss default)
    np.testing.assert_allclose(logs["probabilities_loss"], l_c, rtol=1e-4)
    np.testing.assert_allclose(logs["reconstruction_loss"], l_r, rtol=1e-4)
    np.testing.assert_allclose(logs["prototypes_loss"], l_p, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 10 * l_c + 5 * l_p + 5 * l_r, rtol=1e-4)


def test_classification_loss_moves_from_ln_k_on_real_data(fsdd_batch):
    """The pitfall of Section 3.4: exp(-D) must not underflow, or l_c stays at ln(K) with no gradient."""
    x, y = fsdd_batch
    model = small_apnet()
    _, _, similarity = model.classifier()(model.encoder()(x)[0])
    similarity = keras.ops.convert_to_numpy(similarity)
    assert np.mean(similarity > 0) > 0.99, "exp(-D) underflowed to 0"
    assert similarity.max() > 1e-2
    compile_apnet(model, alpha=10, beta=5, gamma=5)
    losses = [model.train_on_batch(x, apnet_targets(x, y), return_dict=True)["probabilities_loss"]
              for _ in range(8)]
    assert abs(losses[0] - np.log(10)) < 0.05, losses
    assert losses[-1] < losses[0] - 0.03, losses


def test_feature_batches(fsdd_fold, fsdd_scaler):
    rows = fsdd_fold.rows["train"][:100]
    labels = fsdd_fold.targets["train"][:100]
    data = FeatureBatches(fsdd_fold.features, rows, labels, batch_size=32, scaler=fsdd_scaler, shuffle=True, seed=1)
    assert len(data) == 4
    seen = []
    for i in range(len(data)):
        x, targets = data[i]
        assert x.dtype == np.float32 and x.shape[1:] == (64, 64)
        assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-6
        np.testing.assert_array_equal(targets["reconstruction"], x)
        assert targets["prototypes"].shape == (len(x),)
        # Each clip comes with its own label: match the rows back through the features.
        for xi, yi in zip(x, targets["probabilities"]):
            match = np.flatnonzero([np.array_equal(xi, r) for r in fsdd_scaler.transform(fsdd_fold.features[rows])])
            assert len(match) >= 1 and any(np.array_equal(labels[m], yi) for m in match)
            seen.append(match[0])
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 100  # every row once per epoch
    first = data._order.copy()
    data.on_epoch_end()
    assert data.epoch == 1 and not np.array_equal(first, data._order)
    data.set_epoch(0)
    np.testing.assert_array_equal(first, data._order)  # the order depends on (seed, epoch) only
    x, y = FeatureBatches(fsdd_fold.features, rows, labels, 64, scaler=fsdd_scaler, targets="classifier")[1]
    assert x.shape == (36, 64, 64) and y.shape == (36, 10)
    with pytest.raises(ValueError, match="targets"):
        FeatureBatches(fsdd_fold.features, rows, labels, 8, targets="bogus")


def test_fit_resumes_from_last_epoch(fsdd_fold, fsdd_scaler, tmp_path):
    def data(split, n, shuffle):
        return FeatureBatches(fsdd_fold.features, fsdd_fold.rows[split][:n], fsdd_fold.targets[split][:n], 32,
                              scaler=fsdd_scaler, shuffle=shuffle, seed=0)

    def run(epochs):
        model = small_apnet()
        compile_apnet(model, 10, 5, 5)
        history, ran = fit_resumable(model, data("train", 96, True), data("validation", 64, False), tmp_path,
                                     epochs, APNET_MONITOR, verbose=0)
        return model, history, ran

    _, history, ran = run(2)
    assert ran == 2 and list(history["epoch"]) == [0, 1]
    assert (tmp_path / "model.keras").is_file()
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    # A row logged by an epoch the backup does not hold (killed in between) is dropped on resume.
    stale = pd.read_csv(tmp_path / "history.csv")
    pd.concat([stale, stale.tail(1).assign(epoch=2)]).to_csv(tmp_path / "history.csv", index=False)

    model, history, ran = run(3)
    assert ran == 1
    assert list(history["epoch"]) == [0, 1, 2] and len(pd.read_csv(tmp_path / "history.csv")) == 3
    assert {"loss", APNET_MONITOR, "seconds", "val_prototypes_loss"} <= set(history.columns)
    # Weights and optimizer state came back: Adam counted the steps of all 3 epochs (3 batches each).
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 9

    _, history, ran = run(3)  # nothing left to do
    assert ran == 0 and len(history) == 3
    best = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(detach_scaler(best)[0], APNet)


@pytest.mark.parametrize("name", ["sb_cnn", "att_crnn"])
def test_build_model_passes_baseline_options(name):
    from apnet.training import build_model

    config = {"baseline_options": {name: {"batch_norm_momentum": 0.9}}}
    model = build_model(name, (64, 64), 10, config)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
    default = build_model(name, (64, 64), 10, {})
    assert {layer.momentum for layer in default.layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    with pytest.raises(TypeError):
        build_model(name, (64, 64), 10, {"baseline_options": {name: {"no_such_option": 1}}})


# ----------------------------------------------------------------------------- early stopping
def test_early_stopping_state_replays_the_patience_counter():
    from apnet.training import early_stopping_state

    history = pd.DataFrame({"epoch": range(7), "m": [0.2, 0.5, 0.5, 0.4, 0.6, 0.6, np.nan]})
    state = early_stopping_state(history, "m", None)
    assert (state.best, state.wait, state.stopped_epoch) == (0.6, 2, None)  # equal is no improvement, NaN neither
    assert early_stopping_state(history, "m", 2).stopped_epoch == 3  # epochs 2 and 3 do not beat 0.5
    assert early_stopping_state(history, "m", 3).stopped_epoch is None
    state = early_stopping_state(history.iloc[::-1], "m", 3)  # row order does not matter, epochs do
    assert (state.best, state.wait) == (0.6, 2)
    assert early_stopping_state(history.head(0), "m", 3).best is None
    assert early_stopping_state(history.drop(columns="m"), "m", 2).stopped_epoch == 1
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="early_stopping"):
            early_stopping_state(history, "m", bad)


def tiny_apnet_data(n_train=24, n_val=12, seed=0):
    """Random (16, 16) 'spectrograms' in [-1, 1] with two classes, as FeatureBatches of APNet targets."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n_train + n_val, 16, 16)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, n_train + n_val)]
    train = FeatureBatches(x, np.arange(n_train), y[:n_train], 8, shuffle=True, seed=0)
    validation = FeatureBatches(x, np.arange(n_train, n_train + n_val), y[n_train:], 8)
    return train, validation


def frozen_apnet():
    """A small APNet compiled with a zero learning rate: its validation accuracy never changes, so
    every epoch after the first is one without improvement."""
    keras.utils.set_random_seed(0)
    model = APNet(input_shape=(16, 16), n_classes=2, n_prototypes=4, n_filters=4)
    return compile_apnet(model, 10, 5, 5, learning_rate=0.0)


def test_fit_stops_early(tmp_path):
    train, validation = tiny_apnet_data()
    history, ran = fit_resumable(frozen_apnet(), train, validation, tmp_path, 10, APNET_MONITOR, verbose=0,
                                 early_stopping=2)
    # Epoch 0 sets the best; epochs 1 and 2 do not improve on it: patience 2 runs out after epoch 2.
    assert ran == 3 and list(history["epoch"]) == [0, 1, 2]
    assert history[APNET_MONITOR].nunique() == 1
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    # Asked again, even for more epochs: the run stopped early, nothing more runs.
    history, ran = fit_resumable(frozen_apnet(), train, validation, tmp_path, 20, APNET_MONITOR, verbose=0,
                                 early_stopping=2)
    assert ran == 0 and list(history["epoch"]) == [0, 1, 2]
    # Without early stopping every epoch runs.
    history, ran = fit_resumable(frozen_apnet(), train, validation, tmp_path / "off", 4, APNET_MONITOR, verbose=0)
    assert ran == 4 and len(history) == 4


def test_early_stopping_counter_survives_a_resume(tmp_path):
    train, validation = tiny_apnet_data()
    # Interrupted after 2 epochs (one without improvement), then resumed with patience 3.
    _, ran = fit_resumable(frozen_apnet(), train, validation, tmp_path, 2, APNET_MONITOR, verbose=0,
                           early_stopping=3)
    assert ran == 2
    history, ran = fit_resumable(frozen_apnet(), train, validation, tmp_path, 10, APNET_MONITOR, verbose=0,
                                 early_stopping=3)
    # The counter went on from 1 (epoch 1), so epochs 2 and 3 end it: a counter restarted at 0 would
    # have run epoch 4 too. The same as the uninterrupted run:
    assert ran == 2 and list(history["epoch"]) == [0, 1, 2, 3]
    straight, _ = fit_resumable(frozen_apnet(), train, validation, tmp_path / "straight", 10, APNET_MONITOR,
                                verbose=0, early_stopping=3)
    assert list(straight["epoch"]) == list(history["epoch"])


# ----------------------------------------------------------------------------- the authors' per-model settings
def config_of(dataset):
    import yaml

    return yaml.safe_load((CONFIG_DIR / f"{dataset}.yaml").read_text())


@pytest.mark.parametrize("dataset, model, batch_size, normalizer, init_last_layer", [
    # The authors' experiments/<Dataset>/<Model>/config.json
    ("urbansound8k", "apnet", 256, "minmax", True),
    ("urbansound8k", "sb_cnn", 128, "standard", None),
    ("urbansound8k", "att_crnn", 128, "minmax", None),
    ("urbansound8k", "openl3_mlp", 32, "standard", None),
    ("speech_commands", "apnet", 128, "minmax", False),
    ("speech_commands", "sb_cnn", 128, "minmax", None),
    ("speech_commands", "att_crnn", 128, "standard", None),
    ("medley_solos_db", "apnet", 96, "minmax", False),
    ("medley_solos_db", "sb_cnn", 128, "minmax", None),
    ("medley_solos_db", "att_crnn", 128, "standard", None),
    ("medley_solos_db", "openl3_mlp", 32, "standard", None),
    # Our datasets keep the settings of the runs in docs/apnet_results.md.
    ("fsdd", "apnet", 64, "minmax", True),
    ("fsdd", "sb_cnn", 64, "minmax", None),
    ("fsdd", "att_crnn", 64, "minmax", None),
    ("esc10", "apnet", 32, "minmax", True),
    ("esc10", "sb_cnn", 32, "minmax", None),
    ("esc10", "att_crnn", 32, "minmax", None),
])
def test_training_settings_follow_the_authors_configs(dataset, model, batch_size, normalizer, init_last_layer):
    from apnet.training import training_settings

    assert training_settings(model, config_of(dataset)) == {
        "batch_size": batch_size, "normalizer": normalizer, "init_last_layer": init_last_layer, "early_stopping": 100}


def test_training_settings_defaults_and_errors():
    from apnet.training import training_settings

    # A config without the per-model keys trains as before they existed.
    legacy = {"batch_size": 16}
    assert training_settings("sb_cnn", legacy) == {"batch_size": 16, "normalizer": "minmax",
                                                   "init_last_layer": None, "early_stopping": None}
    assert training_settings("apnet", legacy)["init_last_layer"] is True
    with pytest.raises(ValueError, match="apnet: `normalizer` must be 'minmax'"):
        training_settings("apnet", {**legacy, "normalizer": {"apnet": "standard"}})
    with pytest.raises(ValueError, match="normalizer"):
        training_settings("sb_cnn", {**legacy, "normalizer": {"sb_cnn": "zscore"}})
    with pytest.raises(ValueError, match="batch size"):
        training_settings("att_crnn", {**legacy, "baseline_batch_size": {"att_crnn": 0}})
    with pytest.raises(ValueError, match="init_last_layer"):
        training_settings("apnet", {**legacy, "init_last_layer": 1})
    with pytest.raises(ValueError, match="early_stopping"):
        training_settings("apnet", {**legacy, "early_stopping": 0})
    with pytest.raises(ValueError, match="unknown model"):
        training_settings("resnet", legacy)


def test_build_model_init_last_layer():
    from apnet.initializers import prototype_class_kernel
    from apnet.training import build_model

    config = {"n_prototypes": 10, "n_filters": 4}
    blocks = prototype_class_kernel(10, 5, noise=0.0)

    def kernel(init):
        keras.utils.set_random_seed(0)
        options = {} if init is None else {"init_last_layer": init}
        model = build_model("apnet", (16, 16), 5, {**config, **options})
        return keras.ops.convert_to_numpy(model.get_layer("dense").kernel)

    assert np.abs(kernel(True) - blocks).max() <= 0.05 + 1e-6  # class blocks + U(-0.05, 0.05)
    assert np.abs(kernel(None) - blocks).max() <= 0.05 + 1e-6  # the default: as before the key existed
    glorot = kernel(False)
    limit = math.sqrt(6 / (10 + 5))
    assert np.abs(glorot).max() <= limit and np.abs(glorot - blocks).max() > 0.2
    assert not np.array_equal(np.sign(glorot), np.sign(blocks))


# ----------------------------------------------------------------------------- train_fold on a synthetic fold
@pytest.fixture
def synthetic_fold(monkeypatch):
    """train_fold's load_fold replaced by 40 / 16 / 16 random (64, 32) 'spectrograms' of 2 classes whose
    mel bands have different offsets and scales (so a per-band standardisation differs from min-max)."""
    import apnet.training
    from apnet.training import FoldData

    rng = np.random.default_rng(1)
    n = {"train": 40, "validation": 16, "test": 16}
    offsets, scales = np.linspace(-60, 0, 32), np.linspace(1, 10, 32)
    x = (rng.standard_normal((sum(n.values()), 64, 32)) * scales + offsets).astype("float32")
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, len(x))]
    bounds = np.cumsum([0, n["train"], n["validation"], n["test"]])
    rows = {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(n)}
    fold = FoldData(x, rows, {name: labels[r] for name, r in rows.items()}, ("a", "b"))
    calls = []

    def fake_load_fold(dataset, fold_number, features="mel", **kwargs):
        calls.append((dataset, fold_number, features))
        return fold

    monkeypatch.setattr(apnet.training, "load_fold", fake_load_fold)
    return fold, calls


SYNTHETIC_CONFIG = {"seed": 0, "features": "mel", "n_prototypes": 4, "n_filters": 4, "kernel_size": 3, "alpha": 10,
                    "beta": 5, "gamma": 5, "batch_size": 32, "learning_rate": 0.001, "epochs": 1}


def test_train_fold_baseline_uses_its_batch_size_and_normalizer(synthetic_fold, tmp_path):
    from audiodata.features import StandardScaler

    from apnet.training import load_scaler, train_fold

    fold, calls = synthetic_fold
    config = {**SYNTHETIC_CONFIG, "baseline_batch_size": {"sb_cnn": 8}, "normalizer": {"sb_cnn": "standard"}}
    results = train_fold(config, "fsdd", 1, tmp_path, model_name="sb_cnn", verbose=0)
    assert calls == [("fsdd", 1, "mel_sb_cnn")]
    assert (results["batch_size"], results["normalizer"], results["init_last_layer"]) == (8, "standard", None)
    scaler = load_scaler(tmp_path / "scaler.json")
    assert isinstance(scaler, StandardScaler)  # per band, fitted on the training rows only
    train = fold.features[fold.rows["train"]]
    np.testing.assert_allclose(scaler.mean, train.mean(axis=(0, 1)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(scaler.std, train.std(axis=(0, 1)), rtol=1e-4)
    # 40 training clips in batches of 8 (not APNet's 32): 5 Adam steps in the one epoch.
    best = keras.models.load_model(tmp_path / "model.keras")
    assert int(keras.ops.convert_to_numpy(best.optimizer.iterations)) == 5
    # The saved model's test accuracy is the reported one; the file standardises its inputs itself.
    probs = best.predict(fold.features[fold.rows["test"]], verbose=0)
    accuracy = np.mean(probs.argmax(1) == fold.targets["test"].argmax(1))
    assert accuracy == pytest.approx(results["test_accuracy"])


def test_train_fold_apnet_minmax_and_early_stopping(synthetic_fold, tmp_path):
    from audiodata.features import MinMaxScaler

    from apnet.training import load_scaler, train_fold

    fold, _ = synthetic_fold
    # Zero learning rate: the validation accuracy never improves after epoch 1, patience 2 ends at epoch 3.
    config = {**SYNTHETIC_CONFIG, "learning_rate": 0.0, "epochs": 6, "early_stopping": 2, "init_last_layer": False,
              "normalizer": {"apnet": "minmax", "sb_cnn": "standard"}, "baseline_batch_size": {"sb_cnn": 8}}
    results = train_fold(config, "fsdd", 1, tmp_path, verbose=0)
    assert (results["batch_size"], results["normalizer"], results["init_last_layer"]) == (32, "minmax", False)
    assert results["early_stopping"] == 2 and results["stopped_early"] is True and results["stopped_epoch"] == 3
    assert results["epochs"] == 3 and results["epochs_this_run"] == 3 and results["best_epoch"] == 1
    scaler = load_scaler(tmp_path / "scaler.json")
    assert isinstance(scaler, MinMaxScaler) and scaler.data_min == fold.features[fold.rows["train"]].min()
    # Resumed with more epochs: still stopped, still reported as such.
    again = train_fold({**config, "epochs": 10}, "fsdd", 1, tmp_path, verbose=0)
    assert again["epochs_this_run"] == 0 and again["stopped_early"] is True and again["stopped_epoch"] == 3
    # No early stopping configured: every epoch runs and nothing is reported as stopped.
    config.pop("early_stopping")
    results = train_fold({**config, "epochs": 3}, "fsdd", 1, tmp_path / "off", verbose=0)
    assert results["epochs"] == 3 and results["stopped_early"] is False and results["stopped_epoch"] is None


def test_train_fold_rejects_a_bad_setting(synthetic_fold, tmp_path):
    from audiodata.errors import ParameterError

    from apnet.training import train_fold

    with pytest.raises(ParameterError, match="normalizer"):
        train_fold({**SYNTHETIC_CONFIG, "normalizer": {"apnet": "standard"}}, "fsdd", 1, tmp_path, verbose=0)
    assert not (tmp_path / "scaler.json").exists()
