"""Tests of l2i.layers.AttentionPooling."""
import keras
import numpy as np
import pytest

from l2i.layers import AttentionPooling
from tests.layer_testing import run_layer_test


def _weights(rng, batch, frames, heads):
    a = rng.random((batch, frames, heads)).astype("float32")
    return a / a.sum(axis=1, keepdims=True)


def test_standard_layer_checks_and_values(rng, tmp_path):
    H, a = rng.random((2, 4, 6)).astype("float32"), _weights(rng, 2, 6, 3)
    out = run_layer_test(AttentionPooling, {"squeeze": True}, [H, a], (2, 3, 4),
                         expected_num_trainable_weights=0, run_training_check=False, tmp_path=tmp_path)
    np.testing.assert_allclose(out[0], np.einsum("bkt,btc->bck", H, a), rtol=1e-5)


def test_single_head_is_squeezed(rng):
    H, a = rng.random((2, 4, 6)).astype("float32"), _weights(rng, 2, 6, 1)
    z = keras.ops.convert_to_numpy(AttentionPooling()([H, a]))
    np.testing.assert_allclose(z, (H @ a)[..., 0], rtol=1e-5)
    assert keras.ops.convert_to_numpy(AttentionPooling(squeeze=False)([H, a])).shape == (2, 1, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="squeeze"):
        AttentionPooling(squeeze="yes")
