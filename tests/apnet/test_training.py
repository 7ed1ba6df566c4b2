"""Tests of apnet.training on real FSDD features: Eq. 10, the first steps, streaming batches, resuming."""
import json

import keras
import numpy as np
import pandas as pd
import pytest

from apnet import APNet, PrototypeLoss, prototype_loss
from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet, fit_resumable


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
    np.testing.assert_allclose(float(PrototypeLoss("sum")(np.zeros(6), d)), float(prototype_loss(d)), rtol=1e-6)
    np.testing.assert_allclose(float(prototype_loss(d, "mean")), expected, rtol=1e-6)
    revived = keras.losses.deserialize(keras.losses.serialize(PrototypeLoss("sum")))
    assert isinstance(revived, PrototypeLoss) and revived.name == "prototype_loss"
    assert revived.frequency_reduction == "sum"


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
    assert isinstance(best, APNet)


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
