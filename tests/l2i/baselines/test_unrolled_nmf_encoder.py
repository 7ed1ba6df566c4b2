"""Tests of l2i.baselines.UnrolledNMFEncoder: unrolled multiplicative sparse-NMF updates as a layer."""
import keras
import numpy as np
import pytest

from l2i.baselines import UnrolledNMFEncoder
from l2i.nmf import nmf_activations
from tests.layer_testing import run_layer_test


def test_standard_layer_checks(rng, tmp_path):
    x = rng.random((2, 7, 16)).astype("float32")
    out = run_layer_test(UnrolledNMFEncoder, {"n_components": 4, "n_iter": 5, "l1": 0.1}, x, (2, 4, 7),
                         expected_num_trainable_weights=1, tmp_path=tmp_path)
    assert np.all(out >= 0)


def test_matches_numpy_multiplicative_updates(rng):
    W = rng.random((16, 4)).astype("float32") + 0.01
    W /= np.linalg.norm(W, axis=0)
    X = rng.random((3, 9, 16)).astype("float32")
    layer = UnrolledNMFEncoder(4, n_iter=12, l1=0.2, eps=1e-8)
    layer.build(X.shape)
    layer.set_weights([W])
    H = keras.ops.convert_to_numpy(layer(X))
    W64 = W.astype(np.float64)
    for b in range(3):
        h = np.ones((4, 9))
        for _ in range(12):
            h = h * (W64.T @ X[b].T) / (W64.T @ W64 @ h + 0.1 + 1e-8)
        np.testing.assert_allclose(H[b], h, rtol=2e-4, atol=1e-6)


def test_many_iterations_reach_the_nmf_solution(rng):
    """With enough iterations the encoder solves the same problem as l2i.nmf.nmf_activations."""
    W = rng.random((16, 3)).astype("float64") + 0.01
    W /= np.linalg.norm(W, axis=0)
    X = (W @ rng.random((3, 20))).T.astype("float32")  # exactly representable, time first
    layer = UnrolledNMFEncoder(3, n_iter=500, l1=0.0, dtype="float64")
    layer.build((None, 20, 16))
    layer.set_weights([W])
    H = keras.ops.convert_to_numpy(layer(X[None].astype("float64")))[0]
    H_ref, _ = nmf_activations(X.T, W, l1=0.0, n_iter=500, tol=0, dtype="float64")
    np.testing.assert_allclose(W @ H, X.T, atol=1e-2)
    np.testing.assert_allclose(W @ H, W @ H_ref, atol=1e-2)


def test_gradient_reaches_the_dictionary(rng):
    import tensorflow as tf

    layer = UnrolledNMFEncoder(4, n_iter=5)
    x = rng.random((2, 6, 8)).astype("float32")
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * rng.normal(size=(2, 4, 6)).astype("float32"))
    grad = tape.gradient(loss, layer.dictionary.value)
    assert grad is not None and np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_iter"):
        UnrolledNMFEncoder(4, n_iter=0)
    with pytest.raises(ValueError, match="l1"):
        UnrolledNMFEncoder(4, l1=-1.0)
