"""Tests of apnet.layers.WeightedSum (Eq. 7)."""
import keras
import numpy as np
import pytest

from apnet.layers import WeightedSum
from tests.layer_testing import run_layer_test


def test_layer_contract(rng, tmp_path):
    s = rng.uniform(size=(2, 3, 4)).astype("float32")
    out = run_layer_test(
        WeightedSum,
        {"kernel_constraint": "non_neg"},
        s,
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=1,
        tmp_path=tmp_path,
    )
    # Fresh layer: H = 1/F', i.e. the mean over frequency.
    np.testing.assert_allclose(out, s.mean(axis=-1), rtol=1e-6)


def test_initial_kernel_is_one_over_f(rng):
    s = rng.uniform(size=(4, 5, 8)).astype("float32")
    layer = WeightedSum()
    out = keras.ops.convert_to_numpy(layer(s))
    kernel = layer.kernel.numpy()
    assert layer.kernel.name == "kernel"
    assert kernel.shape == (5, 8)
    np.testing.assert_array_equal(kernel, np.float32(1.0 / 8))
    np.testing.assert_allclose(out, s.mean(axis=-1), rtol=1e-6)


def test_matches_numpy(rng):
    s = rng.uniform(size=(6, 5, 8)).astype("float32")
    h = rng.normal(size=(5, 8)).astype("float32")
    layer = WeightedSum()
    layer.build(s.shape)
    layer.kernel.assign(h)
    got = keras.ops.convert_to_numpy(layer(s))
    expected = np.einsum("jf,ijf->ij", h.astype("float64"), s.astype("float64"))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_custom_initializer_round_trips():
    layer = WeightedSum(kernel_initializer="ones")
    layer.build((None, 3, 4))
    np.testing.assert_array_equal(layer.kernel.numpy(), 1.0)
    restored = WeightedSum.from_config(layer.get_config())
    restored.build((None, 3, 4))
    np.testing.assert_array_equal(restored.kernel.numpy(), 1.0)


def test_rejects_bad_input_rank():
    with pytest.raises(ValueError, match=r"\(batch, M, F'\)"):
        WeightedSum().build((None, 4))
