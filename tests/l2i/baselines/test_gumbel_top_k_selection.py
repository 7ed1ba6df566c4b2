"""Tests of l2i.baselines.GumbelTopKSelection: relaxed top-k while training, exact top-k at inference."""
import keras
import numpy as np
import pytest

from l2i.baselines import GumbelTopKSelection
from tests.layer_testing import run_layer_test


def test_standard_layer_checks(rng, tmp_path):
    logits = rng.normal(size=(3, 10)).astype("float32")
    out = run_layer_test(GumbelTopKSelection, {"k": 3, "temperature": 0.5, "seed": 1}, logits, (3, 10),
                         expected_num_trainable_weights=0, run_training_check=False, tmp_path=tmp_path)
    np.testing.assert_array_equal(out.sum(axis=1), 3.0)


def test_inference_mask_is_exactly_the_top_k(rng):
    logits = rng.normal(size=(50, 12)).astype("float32")
    mask = keras.ops.convert_to_numpy(GumbelTopKSelection(k=4)(logits, training=False))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=1), 4)
    top = np.argsort(-logits, axis=1)[:, :4]
    np.testing.assert_array_equal(np.take_along_axis(mask, top, axis=1), 1.0)
    # Ties still select k distinct chunks.
    tied = keras.ops.convert_to_numpy(GumbelTopKSelection(k=3)(np.zeros((2, 8), "float32")))
    np.testing.assert_array_equal(tied.sum(axis=1), 3)


def test_training_relaxation_is_continuous_and_concentrates_on_peaked_logits():
    layer = GumbelTopKSelection(k=2, temperature=0.1, seed=0)
    soft = keras.ops.convert_to_numpy(layer(np.zeros((200, 6), "float32"), training=True))
    assert np.all((soft >= 0) & (soft <= 1)) and np.all(soft.sum(axis=1) <= 2 + 1e-5)
    assert soft.std() > 0.1  # random draws, not a fixed mask
    # k draws of one categorical (with replacement, as in L2X): a dominant chunk is always kept.
    peaked = np.array([[20.0, -20.0, -20.0, -20.0, -20.0, -20.0]] * 50, "float32")
    soft = keras.ops.convert_to_numpy(layer(peaked, training=True))
    np.testing.assert_allclose(soft[:, 0], 1.0, atol=1e-3)
    np.testing.assert_allclose(soft[:, 1:], 0.0, atol=1e-3)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        GumbelTopKSelection(k=2, temperature=0.0)
    with pytest.raises(ValueError, match="cannot select"):
        GumbelTopKSelection(k=5)(np.zeros((1, 4), "float32"))
