"""Tests of apnet.baselines.AttentionPooling (de Andrade et al., 2018, attention of Att-CRNN)."""
import keras
import numpy as np
import pytest

from apnet.baselines import AttentionPooling
from tests.layer_testing import run_layer_test


def numpy_attention(h, kernel, bias, query_index):
    """float64 reference: q = W h_q + b, a = softmax_t <h_t, q>, c = sum_t a_t h_t."""
    h = h.astype("float64")
    query = h[:, query_index] @ kernel + bias
    scores = np.einsum("btd,bd->bt", h, query)
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    return np.einsum("bt,btd->bd", weights, h), weights


@pytest.mark.parametrize("return_attention_scores", [False, True])
def test_layer_contract(rng, tmp_path, return_attention_scores):
    h = rng.normal(size=(2, 7, 6)).astype("float32")
    expected = [(2, 6), (2, 7)] if return_attention_scores else (2, 6)
    out = run_layer_test(
        AttentionPooling,
        {"query_position": "middle", "return_attention_scores": return_attention_scores,
         "kernel_regularizer": "l2"},
        h,
        expected_output_shape=expected,
        expected_num_trainable_weights=2,
        tmp_path=tmp_path,
    )
    if return_attention_scores:
        np.testing.assert_allclose(out[1].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("query_position, query_index", [("last", -1), ("middle", 4)])
def test_matches_numpy(rng, query_position, query_index):
    h = rng.normal(size=(3, 9, 5)).astype("float32")  # T = 9: middle index 9 // 2 = 4
    kernel = rng.normal(size=(5, 5)).astype("float32") * 0.5
    bias = rng.normal(size=(5,)).astype("float32")
    layer = AttentionPooling(query_position=query_position, return_attention_scores=True)
    layer.build(h.shape)
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    context, weights = (keras.ops.convert_to_numpy(o) for o in layer(h))
    ref_context, ref_weights = numpy_attention(h, kernel, bias, query_index)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(context, ref_context, rtol=1e-5, atol=1e-6)


def test_variable_length_sequences(rng):
    inputs = keras.Input(shape=(None, 4))
    model = keras.Model(inputs, AttentionPooling(query_position="middle")(inputs))
    for length in (3, 8):
        h = rng.normal(size=(2, length, 4)).astype("float32")
        assert model.predict(h, verbose=0).shape == (2, 4)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="query_position"):
        AttentionPooling(query_position="first")
    with pytest.raises(ValueError, match=r"\(batch, T, D\)"):
        AttentionPooling()(np.zeros((2, 3), dtype="float32"))
