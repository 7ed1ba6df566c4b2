"""Tests of l2i.baselines.VIBI on real ESC-10 log-mel features, explaining a small frozen classifier."""
import keras
import numpy as np
import pytest

from l2i.baselines import VIBI
from l2i.metrics import top_k_fidelity

K = 8


@pytest.fixture(scope="module")
def teacher(esc10_mel):
    """Probabilities of a small CNN f trained on the clips (VIBI only sees f's outputs: a black box)."""
    x, y = esc10_mel
    keras.utils.set_random_seed(0)
    f = keras.Sequential([
        keras.Input((128, 128)),
        keras.layers.Normalization(axis=-1, mean=x.mean(axis=(0, 1)).tolist(),
                                   variance=(x.var(axis=(0, 1)) + 1e-3).tolist()),
        keras.layers.Reshape((128, 128, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(4),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ], name="small_f")
    f.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    f.fit(x, y, batch_size=8, epochs=30, verbose=0)
    probs = f.predict(x, verbose=0)
    assert len(np.unique(probs.argmax(axis=1))) >= 3, "the classifier must not be constant for this test"
    return probs


@pytest.fixture(scope="module")
def trained(esc10_mel, teacher):
    x, _ = esc10_mel
    keras.utils.set_random_seed(0)
    model = VIBI((128, 128), n_classes=10, k=K, chunk_size=(16, 16), explainer_filters=8, approximator_filters=16,
                 input_mean=x.mean(axis=(0, 1)), input_std=x.std(axis=(0, 1)) + 1e-3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, teacher, batch_size=8, epochs=20, verbose=0).history
    return model, history


def test_training_decreases_the_fidelity_loss(trained):
    _, history = trained
    assert history["fidelity_loss"][-1] < 0.8 * history["fidelity_loss"][0]
    assert np.all(np.isfinite(history["kl_loss"])) and min(history["kl_loss"]) >= -1e-6


def test_inference_mask_has_exactly_k_chunks(trained, esc10_mel):
    model, _ = trained
    x, _ = esc10_mel
    out = model.predict(x, verbose=0)
    assert out["mask"].shape == (40, 8, 8)
    assert set(np.unique(out["mask"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(out["mask"].sum(axis=(1, 2)), K)
    # The kept chunks are the k most probable ones under p(z | x): none of the dropped chunks is more probable
    # than a kept one. (Compared as probabilities, not by argsort positions: distinct logits can round to equal
    # float32 probabilities, and a tie may be broken either way.)
    mask = out["mask"].reshape(40, -1).astype(bool)
    p = out["selection"].reshape(40, -1)
    kept_min = np.where(mask, p, np.inf).min(axis=1)
    dropped_max = np.where(mask, -np.inf, p).max(axis=1)
    assert np.all(kept_min >= dropped_max)


def test_masked_input_keeps_only_the_selected_chunks(trained, esc10_mel):
    model, _ = trained
    x, _ = esc10_mel
    sub = keras.Model(model.inputs[0], [model.get_layer("masked_input").output, model.get_layer("mask").output])
    masked, mask = (keras.ops.convert_to_numpy(o) for o in sub(x[:2]))
    standardised = keras.ops.convert_to_numpy(model.get_layer("input_normalization")(x[:2]))
    full = np.repeat(np.repeat(mask, 16, axis=1), 16, axis=2)
    np.testing.assert_allclose(masked[..., 0], standardised * full, rtol=1e-5, atol=1e-6)


def test_fidelity_and_kl_term(trained, esc10_mel, teacher):
    model, _ = trained
    x, _ = esc10_mel
    out = model.predict(x, verbose=0)
    fidelity = top_k_fidelity(teacher, out["approximation"], k=1)
    assert fidelity > 0.2  # chance: 0.1
    terms, _ = model.loss_terms(teacher, out)
    p = out["selection"].astype(np.float64)
    np.testing.assert_allclose(float(terms["kl"]), np.mean(np.sum(p * np.log(p), axis=1)) + np.log(64), rtol=1e-4,
                               atol=1e-6)


def test_save_load_round_trip(trained, esc10_mel, tmp_path):
    model, _ = trained
    x, _ = esc10_mel
    model.save(tmp_path / "vibi.keras")
    reloaded = keras.models.load_model(tmp_path / "vibi.keras")
    assert isinstance(reloaded, VIBI) and reloaded.k == K
    before, after = model.predict(x[:4], verbose=0), reloaded.predict(x[:4], verbose=0)
    for key in ("approximation", "selection", "mask"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-6)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exceeds"):
        VIBI((32, 32), n_classes=2, k=5, chunk_size=(16, 16))
    with pytest.raises(ValueError, match="chunk_size"):
        VIBI((32, 32), n_classes=2, chunk_size=(16,))
