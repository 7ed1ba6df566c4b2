"""Tests of l2i.interpreter: Psi, Theta (att / max / class-specific) and the NMF decoder, wired."""
import keras
import numpy as np
import pytest

from l2i.classifier import KumarCNN
from l2i.interpreter import L2IInterpreter, build_interpreter
from tests.l2i._esc10 import TINY_CLASSIFIER, TINY_INTERPRETER, unit_dictionary

N_FRAMES, N_CLASSES, K = 128, 4, 6


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    return KumarCNN(n_classes=N_CLASSES, n_frames=N_FRAMES, **TINY_CLASSIFIER)


@pytest.fixture
def x(rng):
    return rng.normal(size=(3, N_FRAMES, 128)).astype("float32")


@pytest.mark.parametrize("theta, multilabel", [("att", False), ("max", False), ("att", True), ("max", True)])
def test_outputs_shapes_and_ranges(classifier, x, rng, theta, multilabel):
    W = unit_dictionary(rng, n_components=K)
    g = build_interpreter(classifier, W, theta=theta, multilabel=multilabel, **TINY_INTERPRETER)
    prediction, X_hat, H = [keras.ops.convert_to_numpy(o) for o in g(x)]
    assert prediction.shape == (3, N_CLASSES) and X_hat.shape == (3, 513, N_FRAMES) and H.shape == (3, K, N_FRAMES)
    assert np.all(H >= 0), "Psi must give non-negative activations (ReLU output)"
    assert np.all((prediction >= 0) & (prediction <= 1))
    if not multilabel:
        np.testing.assert_allclose(prediction.sum(axis=1), 1.0, rtol=1e-5)
    # Decoder wiring: X_hat is exactly W @ H of the model's own H output.
    np.testing.assert_allclose(X_hat, np.einsum("fk,bkt->bft", W.astype(np.float64), H), rtol=1e-4, atol=1e-5)
    # Theta's pooled vector and linear weights, as the relevance of Sec. III-E needs them.
    kernel = g.get_layer("theta_linear").kernel
    assert tuple(kernel.shape) == (K, N_CLASSES)
    z_shape = tuple(g.get_layer("theta_pool").output.shape[1:])
    assert z_shape == ((N_CLASSES, K) if (theta == "att" and multilabel) else (K,))


def test_theta_max_pools_h_over_time_and_logits_are_z_theta(classifier, x, rng):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="max", **TINY_INTERPRETER)
    out = g.explanation_model()(x)
    H, z, logits = (keras.ops.convert_to_numpy(out[k]) for k in ("H", "z", "logits"))
    np.testing.assert_allclose(z, H.max(axis=2), rtol=1e-6)
    np.testing.assert_allclose(logits, z @ g.theta_weights, rtol=1e-4, atol=1e-5)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["prediction"]), probs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("multilabel, heads", [(False, 1), (True, N_CLASSES)])
def test_attention_sums_to_one_over_time_and_z_is_h_a(classifier, x, rng, multilabel, heads):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=multilabel,
                          **TINY_INTERPRETER)
    out = g.explanation_model()(x)
    a, H, z, logits = (keras.ops.convert_to_numpy(out[k]) for k in ("attention", "H", "z", "logits"))
    assert a.shape == (3, N_FRAMES, heads) and np.all(a >= 0)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)
    zc = np.einsum("bkt,btc->bck", H, a)
    kernel = g.theta_weights
    if heads == 1:
        np.testing.assert_allclose(z, zc[:, 0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(logits, z @ kernel, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(z, zc, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(logits, np.einsum("bck,kc->bc", z, kernel), rtol=1e-4, atol=1e-5)


def test_shares_the_classifier_layers(classifier, rng):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), **TINY_INTERPRETER)
    assert g.get_layer("block4") is classifier.get_layer("block4")
    assert g.get_layer("nmf_reconstruction").dictionary.trainable is False


def test_keras_round_trip_without_custom_objects(classifier, x, rng, tmp_path):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=True,
                          **TINY_INTERPRETER)
    g.save(tmp_path / "g.keras")
    reloaded = keras.models.load_model(tmp_path / "g.keras")
    assert isinstance(reloaded, L2IInterpreter) and reloaded.class_specific_attention
    for before, after in zip(g.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)


def test_full_size_paper_shapes(rng):
    f = KumarCNN(n_classes=50, n_frames=431)
    g = build_interpreter(f, unit_dictionary(rng, n_components=100))
    assert [tuple(o.shape) for o in g.outputs] == [(None, 50), (None, 513, 431), (None, 100, 431)]


@pytest.mark.parametrize("kwargs, message", [
    ({"theta": "mean"}, "theta"),
    ({"hidden_layers": ("block9",)}, "block9"),
    ({"theta": "max", "class_specific_attention": True}, "class_specific"),
    ({"psi_channels": 0}, "psi_channels"),
])
def test_bad_arguments(classifier, rng, kwargs, message):
    with pytest.raises(ValueError, match=message):
        L2IInterpreter(classifier, unit_dictionary(rng, n_components=K), **kwargs)
