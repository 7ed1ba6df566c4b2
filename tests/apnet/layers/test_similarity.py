"""Tests of apnet.layers.Similarity (Eq. 6)."""
import keras
import numpy as np

from apnet.layers import Similarity
from tests.layer_testing import run_layer_test


def test_layer_contract(rng, tmp_path):
    d = rng.uniform(0.0, 3.0, size=(2, 3, 4)).astype("float32")
    out = run_layer_test(
        Similarity,
        {},
        d,
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=0,
        tmp_path=tmp_path,
    )
    np.testing.assert_allclose(out, np.exp(-d.astype("float64")), rtol=1e-6)


def test_matches_numpy(rng):
    d = rng.uniform(0.0, 50.0, size=(5, 6, 7)).astype("float32")
    got = keras.ops.convert_to_numpy(Similarity()(d))
    np.testing.assert_allclose(got, np.exp(-d.astype("float64")), rtol=1e-6, atol=1e-30)
    assert np.all(got > 0) and np.all(got <= 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Similarity()(np.zeros((1, 2, 3), "float32"))), 1.0)
