"""Tests of apnet.layers.MaskedUpsampling (Section 3.2, SegNet mask)."""
import keras
import numpy as np
import pytest

from apnet.layers import MaskedMaxPooling2D, MaskedUpsampling
from tests.layer_testing import run_layer_test


def numpy_masked_upsampling(x, mask, size=(2, 2)):
    """Reference: repeat, crop at the bottom/right to the mask, multiply."""
    up = np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2)
    return up[:, : mask.shape[1], : mask.shape[2]] * mask


def test_layer_contract(rng, tmp_path):
    x = rng.normal(size=(2, 3, 4, 2)).astype("float32")
    mask = rng.integers(0, 2, size=(2, 5, 7, 2)).astype("float32")
    # With several inputs the helper returns a list of outputs, here just one.
    (out,) = run_layer_test(
        MaskedUpsampling,
        {"size": (2, 2)},
        [x, mask],
        expected_output_shape=(2, 5, 7, 2),
        expected_num_trainable_weights=0,
        tmp_path=tmp_path,
    )
    np.testing.assert_array_equal(out, numpy_masked_upsampling(x, mask))


@pytest.mark.parametrize("mask_shape", [(3, 6, 8, 2), (3, 5, 7, 2), (3, 6, 7, 2)])
def test_matches_numpy(rng, mask_shape):
    x = rng.normal(size=(3, 3, 4, 2)).astype("float32")
    mask = rng.integers(0, 2, size=mask_shape).astype("float32")
    got = keras.ops.convert_to_numpy(MaskedUpsampling()([x, mask]))
    np.testing.assert_array_equal(got, numpy_masked_upsampling(x, mask))


def test_boolean_mask_is_cast(rng):
    x = rng.normal(size=(2, 2, 3, 2)).astype("float32")
    mask = rng.integers(0, 2, size=(2, 4, 5, 2)).astype(bool)
    got = keras.ops.convert_to_numpy(MaskedUpsampling()([x, mask]))
    np.testing.assert_array_equal(got, numpy_masked_upsampling(x, mask.astype("float32")))


@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (2, 5, 7, 3), (1, 3, 1, 2)])
@pytest.mark.parametrize("kind", ["float", "ties"])
def test_round_trip_keeps_x_at_argmax_and_zero_elsewhere(rng, shape, kind):
    if kind == "float":
        x = rng.normal(size=shape).astype("float32")
    else:
        x = rng.integers(-1, 2, size=shape).astype("float32")
    pooled, mask = MaskedMaxPooling2D()(x)
    got = keras.ops.convert_to_numpy(MaskedUpsampling()([pooled, mask]))
    mask = keras.ops.convert_to_numpy(mask)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, np.where(mask == 1, x, 0.0))
    # The kept position of every window holds that window's maximum.
    for b in range(shape[0]):
        for c in range(shape[3]):
            for i in range(0, shape[1], 2):
                for j in range(0, shape[2], 2):
                    window_mask = mask[b, i:i + 2, j:j + 2, c]
                    window = x[b, i:i + 2, j:j + 2, c]
                    # Every kept position holds the window's maximum, and every maximum is kept
                    # (the default tie rule, "all", as the authors' greater_equal mask).
                    assert window_mask.sum() >= 1
                    np.testing.assert_array_equal(window_mask == 1, window == window.max())


def test_round_trip_in_a_saved_model(rng, tmp_path):
    # Encoder pooling -> decoder upsampling through the mask, saved and reloaded.
    inputs = keras.Input(shape=(5, 7, 3))
    pooled, mask = MaskedMaxPooling2D(name="pool")(inputs)
    outputs = MaskedUpsampling(name="unpool")([pooled, mask])
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(2, 5, 7, 3)).astype("float32")
    path = tmp_path / "round_trip.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(None, 3, 4, 2\).*\(None, 8, 8, 2\)"):
        MaskedUpsampling().build([(None, 3, 4, 2), (None, 8, 8, 2)])
    with pytest.raises(ValueError, match="channels"):
        MaskedUpsampling().build([(None, 4, 4, 3), (None, 8, 8, 2)])
    with pytest.raises(ValueError, match=r"\[x, mask\]"):
        MaskedUpsampling().build((None, 4, 4, 3))


def test_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        MaskedUpsampling(size=0)
