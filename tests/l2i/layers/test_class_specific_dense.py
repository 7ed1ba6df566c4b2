"""Tests of l2i.layers.ClassSpecificDense."""
import keras
import numpy as np

from l2i.layers import ClassSpecificDense
from tests.layer_testing import run_layer_test


def test_standard_layer_checks(rng, tmp_path):
    z = rng.random((2, 3, 5)).astype("float32")
    run_layer_test(ClassSpecificDense, {"use_bias": True}, z, (2, 3), expected_num_trainable_weights=2,
                   tmp_path=tmp_path)


def test_values_match_numpy(rng):
    z = rng.random((4, 3, 5)).astype("float32")
    layer = ClassSpecificDense()
    logits = keras.ops.convert_to_numpy(layer(z))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    assert kernel.shape == (5, 3) and layer.bias is None
    np.testing.assert_allclose(logits, np.einsum("bck,kc->bc", z, kernel), rtol=1e-5)
