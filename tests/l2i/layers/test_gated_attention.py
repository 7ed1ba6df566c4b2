"""Tests of l2i.layers.GatedAttention."""
import keras
import numpy as np
import pytest

from l2i.layers import GatedAttention
from tests.layer_testing import run_layer_test


def test_standard_layer_checks(rng, tmp_path):
    H = rng.random((2, 5, 7)).astype("float32")
    out = run_layer_test(GatedAttention, {"units": 4, "n_heads": 3}, H, (2, 7, 3),
                         expected_num_trainable_weights=6, tmp_path=tmp_path)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(out >= 0)


def test_values_match_numpy(rng):
    H = rng.random((2, 5, 7)).astype("float32")
    layer = GatedAttention(units=4, n_heads=2, bias_initializer="random_normal")
    a = keras.ops.convert_to_numpy(layer(H))
    V, bV, U, bU, w, bw = [keras.ops.convert_to_numpy(v) for v in
                           (layer.tanh_kernel, layer.tanh_bias, layer.gate_kernel, layer.gate_bias,
                            layer.score_kernel, layer.score_bias)]
    frames = H.transpose(0, 2, 1).astype(np.float64)
    scores = (np.tanh(frames @ V + bV) * (1 / (1 + np.exp(-(frames @ U + bU))))) @ w + bw
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"units": 0}, {"n_heads": 1.5}, {"units": True}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        GatedAttention(**kwargs)
