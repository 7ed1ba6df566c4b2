"""Tests of l2i.layers.NMFReconstruction and l2i.losses.nmf_reconstruction_loss."""
import keras
import numpy as np
import pytest

from l2i.layers import NMFReconstruction
from l2i.losses import nmf_reconstruction_loss
from tests.layer_testing import run_layer_test


def _dictionary(rng, n_frequencies=6, n_components=3):
    W = rng.random((n_frequencies, n_components)).astype("float32")
    return W / np.linalg.norm(W, axis=0)


def test_standard_layer_checks_and_values(rng, tmp_path):
    W = _dictionary(rng)
    H = rng.random((2, 3, 5)).astype("float32")
    out = run_layer_test(
        NMFReconstruction,
        init_kwargs={"dictionary": W.tolist()},
        input_data=H,
        expected_output_shape=(2, 6, 5),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=1,
        run_training_check=False,  # nothing to train: the dictionary is fixed
        tmp_path=tmp_path,
    )
    np.testing.assert_allclose(out, np.einsum("fk,bkt->bft", W, H), rtol=1e-6, atol=1e-7)


def test_values_match_numpy(rng):
    W = _dictionary(rng, 513, 8)
    H = np.maximum(rng.normal(size=(3, 8, 431)), 0).astype("float32")
    layer = NMFReconstruction(W, name="nmf")
    out = keras.ops.convert_to_numpy(layer(H))
    expected = np.stack([W.astype(np.float64) @ h for h in H.astype(np.float64)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    (weight,) = layer.weights
    assert weight.path.endswith("dictionary") and not weight.trainable
    np.testing.assert_array_equal(weight.numpy(), W)


def test_dictionary_stays_fixed_while_training_upstream(rng):
    W = _dictionary(rng)
    inputs = keras.Input((3, 5))
    H = keras.layers.Dense(5, activation="relu", name="psi")(inputs)
    model = keras.Model(inputs, NMFReconstruction(W, name="nmf")(H))
    model.compile(optimizer="adam", loss=nmf_reconstruction_loss)
    x = rng.random((4, 3, 5)).astype("float32")
    y = rng.random((4, 6, 5)).astype("float32")
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.get_layer("nmf").dictionary.numpy(), W)


def test_saved_model_and_clone_keep_the_dictionary(rng, tmp_path):
    W = _dictionary(rng, 12, 4)
    inputs = keras.Input((4, 7))
    model = keras.Model(inputs, NMFReconstruction(W, name="nmf")(inputs))
    H = rng.random((2, 4, 7)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    clone = keras.models.clone_model(model)  # rebuilt from the config alone
    for other in (reloaded, clone):
        np.testing.assert_array_equal(other.get_layer("nmf").dictionary.numpy(), W)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(other(H)), keras.ops.convert_to_numpy(model(H)))


@pytest.mark.parametrize("bad, match", [
    (np.ones(4), "2-D"),
    (-np.ones((4, 2)), "non-negative"),
    (np.full((4, 2), np.nan), "finite"),
])
def test_bad_dictionary_is_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        NMFReconstruction(bad)


def test_wrong_number_of_components_is_rejected(rng):
    layer = NMFReconstruction(_dictionary(rng, 6, 3))
    with pytest.raises(ValueError, match="K=3"):
        layer(np.ones((1, 4, 5), "float32"))


def test_nmf_reconstruction_loss_matches_numpy(rng):
    X = rng.random((3, 6, 5)).astype("float32")
    X_hat = rng.random((3, 6, 5)).astype("float32")
    expected = np.mean(np.sum((X.astype(np.float64) - X_hat) ** 2, axis=(1, 2)))
    value = float(keras.ops.convert_to_numpy(nmf_reconstruction_loss(X, X_hat)))
    assert value == pytest.approx(expected, rel=1e-6)
    assert float(keras.ops.convert_to_numpy(nmf_reconstruction_loss(X, X))) == 0.0
