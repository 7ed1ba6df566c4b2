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
    g = build_interpreter(classifier, W, theta=theta, multilabel=multilabel,
                          class_specific_attention=(theta == "att" and multilabel), **TINY_INTERPRETER)
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


@pytest.mark.parametrize("multilabel, heads", [(False, 1), (True, 1), (True, N_CLASSES)])
def test_attention_sums_to_one_over_time_and_z_is_h_a(classifier, x, rng, multilabel, heads):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=multilabel,
                          class_specific_attention=heads > 1, **TINY_INTERPRETER)
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
                          class_specific_attention=True, attention_dropout=0.4, **TINY_INTERPRETER)
    g.save(tmp_path / "g.keras")
    reloaded = keras.models.load_model(tmp_path / "g.keras")
    assert isinstance(reloaded, L2IInterpreter) and reloaded.class_specific_attention
    assert reloaded.gate_activation == "relu" and reloaded.attention_dropout == 0.4
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
    ({"gate_activation": "tanh"}, "gate_activation"),
    ({"attention_dropout": 1.0}, "attention_dropout"),
])
def test_bad_arguments(classifier, rng, kwargs, message):
    with pytest.raises(ValueError, match=message):
        L2IInterpreter(classifier, unit_dictionary(rng, n_components=K), **kwargs)


# ---------------------------------------------------------------- the authors' Theta (explainer_v4)
def _gated_attention_numpy(layer, H, gate):
    """Scores ``w^T (tanh(V h_t) * gate(U h_t))`` and their softmax over time, from the layer's weights."""
    V, bV, U, bU, w, bw = (keras.ops.convert_to_numpy(v) for v in (
        layer.tanh_kernel, layer.tanh_bias, layer.gate_kernel, layer.gate_bias, layer.score_kernel,
        layer.score_bias))
    frames = np.transpose(H, (0, 2, 1)).astype(np.float64)
    scores = (np.tanh(frames @ V + bV) * gate(frames @ U + bU)) @ w + bw
    scores -= scores.max(axis=1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("gate_activation, gate", [
    (None, lambda u: np.maximum(u, 0.0)),  # default: the authors' ReLU gate
    ("sigmoid", lambda u: 1.0 / (1.0 + np.exp(-u))),
])
def test_gate_activation_of_the_attention(classifier, x, rng, gate_activation, gate):
    kwargs = {} if gate_activation is None else {"gate_activation": gate_activation}
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", **kwargs,
                          **TINY_INTERPRETER)
    layer = g.get_layer("theta_attention")
    # Random biases so that the ReLU and sigmoid gates cannot agree by accident.
    layer.gate_bias.assign(rng.normal(size=layer.gate_bias.shape).astype("float32"))
    out = g.explanation_model()(x)
    a, H = (keras.ops.convert_to_numpy(out[k]) for k in ("attention", "H"))
    np.testing.assert_allclose(a, _gated_attention_numpy(layer, H, gate), rtol=1e-3, atol=1e-6)


def test_attention_dropout_reads_dropped_h_only_in_training(classifier, x, rng):
    W = unit_dictionary(rng, n_components=K)
    g = build_interpreter(classifier, W, theta="att", attention_dropout=0.4, **TINY_INTERPRETER)
    dropout = g.get_layer("theta_dropout")
    assert dropout.rate == 0.4
    # The dropout feeds the attention branch only; z = H a pools the un-dropped H (explainer_v4).
    assert dropout.input is g.get_layer("nmf_activations").output
    assert g.get_layer("theta_attention").input is dropout.output
    assert g.get_layer("theta_pool").input[0] is g.get_layer("nmf_activations").output
    plain = build_interpreter(classifier, W, theta="att", **TINY_INTERPRETER)
    assert "theta_dropout" not in [layer.name for layer in plain.layers]
    plain.set_weights(g.get_weights())
    # Inference: dropout is off, the two models agree.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(g(x)[0]), keras.ops.convert_to_numpy(plain(x)[0]),
                               rtol=1e-5, atol=1e-6)
    # Training: the attention sees a dropped H, so the prediction changes.
    model = g.explanation_model()
    a_train = keras.ops.convert_to_numpy(model(x, training=True)["attention"])
    a_test = keras.ops.convert_to_numpy(model(x, training=False)["attention"])
    assert not np.allclose(a_train, a_test)


def test_single_attention_vector_by_default_even_multilabel(classifier, x, rng):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=True,
                          **TINY_INTERPRETER)
    assert not g.class_specific_attention
    assert g.get_layer("theta_attention").n_heads == 1
    assert tuple(g.get_layer("theta_pool").output.shape[1:]) == (K,)


@pytest.mark.parametrize("dataset, multilabel, heads, dropout", [
    ("esc50", False, 1, 0.4),          # authors: explainer_v4(dropout=True), one attention vector
    ("sonyc_ust", True, 1, 0.0),       # authors: explainer_v4 without dropout, one vector (paper Sec. V-C)
    ("openmic", True, N_CLASSES, 0.0),  # the paper's OpenMIC modification: one vector per class
])
def test_dataset_configs_give_the_authors_theta(classifier, rng, dataset, multilabel, heads, dropout):
    from l2i.training import load_config

    section = dict(load_config(dataset)["interpreter"])
    section.update(TINY_INTERPRETER)
    section["hidden_layers"] = list(section["hidden_layers"])
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=multilabel,
                          **section)
    assert g.get_layer("theta_attention").n_heads == heads
    assert g.gate_activation == "relu"
    assert g.attention_dropout == dropout
    assert ("theta_dropout" in [layer.name for layer in g.layers]) == (dropout > 0)


def test_interpreters_saved_before_the_gate_option_keep_their_sigmoid_gate(classifier, rng):
    g = build_interpreter(classifier, unit_dictionary(rng, n_components=K), theta="att", multilabel=True,
                          class_specific_attention=True, **TINY_INTERPRETER)
    config = g.get_config()
    config["classifier"] = keras.saving.serialize_keras_object(classifier)
    for key in ("gate_activation", "attention_dropout"):
        config.pop(key)
    old = L2IInterpreter.from_config(config)
    assert old.gate_activation == "sigmoid" and old.attention_dropout == 0.0 and old.class_specific_attention
