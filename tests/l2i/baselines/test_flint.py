"""Tests of l2i.baselines.FLINT on real ESC-10 log-mel features, interpreting a small frozen classifier."""
import keras
import numpy as np
import pytest

from l2i.baselines import FLINT
from l2i.metrics import top_k_fidelity

SMALL = {"n_attributes": 16, "psi_channels": 16, "psi_units": 32, "decoder_channels": 8}


def small_classifier(x):
    """A small CNN f (no batch norm, so training and inference agree after a few steps) with named blocks."""
    inputs = keras.Input((128, 128), name="mel")
    z = keras.layers.Normalization(axis=-1, mean=x.mean(axis=(0, 1)).tolist(),
                                   variance=(x.var(axis=(0, 1)) + 1e-3).tolist(), name="input_normalization")(inputs)
    z = keras.layers.Reshape((128, 128, 1), name="add_channel")(z)
    z = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1")(z)
    z = keras.layers.MaxPooling2D(4, name="block1_pool")(z)
    z = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block2")(z)
    z = keras.layers.MaxPooling2D(4, name="block2_pool")(z)
    z = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="block3")(z)
    z = keras.layers.GlobalAveragePooling2D(name="global_pool")(z)
    outputs = keras.layers.Dense(10, activation="softmax", name="prediction")(z)
    return keras.Model(inputs, outputs, name="small_f")


@pytest.fixture(scope="module")
def classifier(esc10_mel):
    x, y = esc10_mel
    keras.utils.set_random_seed(0)
    f = small_classifier(x)
    f.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    f.fit(x, y, batch_size=8, epochs=30, verbose=0)
    return f


@pytest.fixture(scope="module")
def trained(classifier, esc10_mel):
    x, _ = esc10_mel
    f_weights = [w.copy() for w in classifier.get_weights()]
    keras.utils.set_random_seed(0)
    g = FLINT(classifier, hidden_layers=("block2", "block3"), **SMALL)
    g.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = g.fit(x, batch_size=8, epochs=10, verbose=0).history
    return g, history, f_weights


def test_posthoc_training_decreases_the_loss_and_leaves_f_frozen(trained, classifier):
    g, history, f_weights = trained
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["fidelity_loss"][-1] < history["fidelity_loss"][0]
    assert history["reconstruction_loss"][-1] < history["reconstruction_loss"][0]
    for before, after in zip(f_weights, classifier.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_fidelity_to_the_frozen_classifier(trained, classifier, esc10_mel):
    g, _, _ = trained
    x, _ = esc10_mel
    f_probs = classifier.predict(x, verbose=0)
    assert len(np.unique(f_probs.argmax(axis=1))) >= 3, "the classifier must not be constant for this test"
    out = g.predict(x, verbose=0)
    fidelity = top_k_fidelity(f_probs, out["interpreter"], k=1)
    assert fidelity > 0.3  # chance: 0.1
    assert top_k_fidelity(f_probs, out["interpreter"], k=5) >= fidelity
    np.testing.assert_allclose(out["classifier"], f_probs, rtol=1e-5, atol=1e-6)


def test_outputs_shapes_and_attribute_constraints(trained, esc10_mel):
    g, _, _ = trained
    x, _ = esc10_mel
    out = g.predict(x[:4], verbose=0)
    assert out["attributes"].shape == (4, 16) and out["attributes"].min() >= 0
    assert out["attributes"].max() > 0, "attributes died"
    assert out["reconstruction"].shape == (4, 128, 128)
    np.testing.assert_allclose(out["interpreter"].sum(axis=1), 1.0, rtol=1e-5)
    kernel = keras.ops.convert_to_numpy(g.get_layer("h_linear").kernel)
    logits = out["attributes"] @ kernel
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["interpreter"], expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_conciseness_diversity_term_matches_numpy(trained, esc10_mel):
    g, _, _ = trained
    x, _ = esc10_mel
    out = g(x[:6])
    terms, _ = g.loss_terms(None, out, x=x[:6])
    phi = keras.ops.convert_to_numpy(out["attributes"]).astype(np.float64)

    def entropy(v):
        p = np.exp(v - v.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return -(p * np.log(p)).sum(-1)

    expected = entropy(phi).mean() - entropy(phi.mean(0)) + g.eta * np.abs(phi).sum(1).mean()
    np.testing.assert_allclose(float(terms["conciseness_diversity"]), expected, rtol=1e-4, atol=1e-5)


def test_save_load_round_trip(trained, esc10_mel, tmp_path):
    g, _, _ = trained
    x, _ = esc10_mel
    g.save(tmp_path / "flint.keras")
    reloaded = keras.models.load_model(tmp_path / "flint.keras")
    assert isinstance(reloaded, FLINT) and reloaded.mode == "posthoc"
    before, after = g.predict(x[:4], verbose=0), reloaded.predict(x[:4], verbose=0)
    for key in ("interpreter", "attributes", "reconstruction"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-5)


def test_bydesign_mode_trains_f(esc10_mel):
    x, y = esc10_mel
    f = small_classifier(x)
    before = keras.ops.convert_to_numpy(f.get_layer("block1").kernel).copy()
    g = FLINT(f, mode="bydesign", hidden_layers=("block2", "block3"), **SMALL)
    g.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = g.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0).history
    assert history["classification_loss"][0] > 0
    assert not np.allclose(keras.ops.convert_to_numpy(f.get_layer("block1").kernel), before)


def test_rejects_bad_arguments(classifier):
    with pytest.raises(ValueError, match="mode"):
        FLINT(classifier, mode="joint", hidden_layers=("block2",))
    with pytest.raises(ValueError, match="hidden_layers"):
        FLINT(classifier, hidden_layers=("block9",))
