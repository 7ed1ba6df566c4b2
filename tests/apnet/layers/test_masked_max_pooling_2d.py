"""Tests of apnet.layers.MaskedMaxPooling2D (Section 3.2, SegNet mask)."""
import keras
import numpy as np
import pytest

from apnet.layers import MaskedMaxPooling2D
from tests.layer_testing import run_layer_test


def numpy_masked_max_pool(x, pool=(2, 2), ties="all"):
    """Loop reference: windows of the real elements (bottom/right windows truncated
    for sizes that are not multiples of the pool); the mask marks every maximum
    (``ties="all"``, the authors' ``greater_equal``) or the first one in row-major order."""
    batch, height, width, channels = x.shape
    ph, pw = pool
    out_h, out_w = -(-height // ph), -(-width // pw)
    pooled = np.zeros((batch, out_h, out_w, channels), x.dtype)
    mask = np.zeros_like(x)
    for b in range(batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    window = x[b, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw, c]
                    pooled[b, i, j, c] = window.max()
                    if ties == "all":
                        mask[b, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw, c] = window == window.max()
                    else:
                        r, s = np.unravel_index(np.argmax(window), window.shape)  # first max, row-major
                        mask[b, i * ph + r, j * pw + s, c] = 1
    return pooled, mask


def test_layer_contract(rng, tmp_path):
    x = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    pooled, mask = run_layer_test(
        MaskedMaxPooling2D,
        {"pool_size": (2, 2)},
        x,
        expected_output_shape=[(2, 3, 3, 3), (2, 5, 6, 3)],
        expected_num_trainable_weights=0,
        tmp_path=tmp_path,
    )
    ref_pooled, ref_mask = numpy_masked_max_pool(x)
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(mask, ref_mask)


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (2, 5, 7, 3), (1, 1, 3, 2), (3, 6, 5, 1)])
@pytest.mark.parametrize("kind", ["float", "ties"])
@pytest.mark.parametrize("ties", ["all", "first"])
def test_matches_numpy(rng, shape, kind, ties):
    if kind == "float":
        x = rng.normal(size=shape).astype("float32")
    else:  # values in {0, 1, 2}: most windows hold ties
        x = rng.integers(0, 3, size=shape).astype("float32")
    pooled, mask = (keras.ops.convert_to_numpy(o) for o in MaskedMaxPooling2D(ties=ties)(x))
    ref_pooled, ref_mask = numpy_masked_max_pool(x, ties=ties)
    assert mask.shape == x.shape and mask.dtype == x.dtype
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(mask, ref_mask)
    # 0/1 values only; exactly one 1 per (possibly truncated) window with "first", at least one with "all".
    assert set(np.unique(mask)) <= {0.0, 1.0}
    padded = np.pad(mask, ((0, 0), (0, -shape[1] % 2), (0, -shape[2] % 2), (0, 0)))
    per_window = padded.reshape(shape[0], padded.shape[1] // 2, 2, padded.shape[2] // 2, 2, shape[3]).sum(axis=(2, 4))
    if ties == "first":
        np.testing.assert_array_equal(per_window, 1.0)
    else:
        assert per_window.min() >= 1.0
        if kind == "ties" and min(shape[1:3]) >= 4:
            assert per_window.max() > 1.0  # the rule is exercised


def test_tie_rule_first_in_row_major_order():
    # Constant input of odd size: every window is a tie; the top-left element wins.
    x = np.full((1, 3, 5, 1), 7.0, dtype="float32")
    pooled, mask = (keras.ops.convert_to_numpy(o) for o in MaskedMaxPooling2D(ties="first")(x))
    np.testing.assert_array_equal(pooled, 7.0)
    expected = np.zeros((3, 5), "float32")
    expected[::2, ::2] = 1.0
    np.testing.assert_array_equal(mask[0, :, :, 0], expected)
    # A tie between the top-right and the bottom-left: the top-right (earlier row) wins.
    x = np.array([[0.0, 5.0], [5.0, 1.0]], "float32").reshape(1, 2, 2, 1)
    mask = keras.ops.convert_to_numpy(MaskedMaxPooling2D(ties="first")(x)[1])
    np.testing.assert_array_equal(mask[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_tie_rule_all_marks_every_maximum_as_the_authors_greater_equal():
    # A zero-padded tail (constant windows) is wholly marked, as greater_equal(x, upsample(maxpool(x))) does.
    x = np.zeros((1, 4, 4, 1), "float32")
    x[0, 0, 0, 0] = 3.0
    pooled, mask = (keras.ops.convert_to_numpy(o) for o in MaskedMaxPooling2D()(x))
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])
    expected = np.ones((4, 4), "float32")
    expected[0, 1] = expected[1, 0] = expected[1, 1] = 0.0
    np.testing.assert_array_equal(mask[0, :, :, 0], expected)
    with pytest.raises(ValueError, match="ties"):
        MaskedMaxPooling2D(ties="last")


def test_padding_never_selected_with_negative_values():
    # Bottom/right padding repeats the last row/column, so an all-negative odd
    # input still pools to the max of its real elements and never marks padding.
    x = -np.arange(1.0, 10.0, dtype="float32").reshape(1, 3, 3, 1)
    pooled, mask = (keras.ops.convert_to_numpy(o) for o in MaskedMaxPooling2D(ties="first")(x))
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])
    np.testing.assert_array_equal(mask[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])


def test_non_square_pool_size(rng):
    x = rng.integers(0, 4, size=(2, 7, 5, 2)).astype("float32")
    pooled, mask = (keras.ops.convert_to_numpy(o) for o in MaskedMaxPooling2D(pool_size=(3, 2))(x))
    ref_pooled, ref_mask = numpy_masked_max_pool(x, pool=(3, 2))
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(mask, ref_mask)


def test_unknown_spatial_size_in_a_model(rng):
    # Inputs with unknown H, W: the graph pads at run time (odd and even sizes).
    inputs = keras.Input(shape=(None, None, 2))
    model = keras.Model(inputs, MaskedMaxPooling2D()(inputs))
    for shape in [(2, 5, 3, 2), (2, 4, 6, 2)]:
        x = rng.normal(size=shape).astype("float32")
        pooled, mask = model.predict(x, verbose=0)
        ref_pooled, ref_mask = numpy_masked_max_pool(x)
        np.testing.assert_array_equal(pooled, ref_pooled)
        np.testing.assert_array_equal(mask, ref_mask)


def test_gradient_goes_to_the_selected_position(rng):
    # One fit-free check: d(sum pooled)/dx equals the mask (ties included).
    x = rng.integers(0, 2, size=(1, 4, 4, 1)).astype("float32")
    variable = keras.Variable(x)
    layer = MaskedMaxPooling2D(ties="first")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient check written with tf.GradientTape")
    import tensorflow as tf

    with tf.GradientTape() as tape:
        pooled, mask = layer(variable)
        total = keras.ops.sum(pooled)
    grad = tape.gradient(total, variable.value)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(grad), keras.ops.convert_to_numpy(mask))


@pytest.mark.parametrize("bad", [0, (2,), (2, 0), 1.5, (2, 2, 2)])
def test_rejects_bad_pool_size(bad):
    with pytest.raises(ValueError, match="pool_size"):
        MaskedMaxPooling2D(pool_size=bad)


def test_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        MaskedMaxPooling2D().build((None, 4, 4))
