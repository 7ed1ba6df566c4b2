"""Tests of apnet.layers.PrototypeLayer and apnet.losses.prototype_loss (Eqs. 4-6)."""
import keras
import numpy as np
import pytest

from apnet.layers import PrototypeLayer
from apnet.losses import prototype_loss
from tests.layer_testing import run_layer_test


def numpy_distances(z, p):
    """Broadcast reference of D[i, j, f] = sum_{t, c} (z[i, t, f, c] - p[j, t, f, c]) ** 2, in float64."""
    diff = z.astype("float64")[:, None] - p.astype("float64")[None]
    return np.sum(diff**2, axis=(2, 4))


def numpy_prototype_loss(d):
    """Eq. 5 from (batch, M, F') distances, in float64."""
    total = d.astype("float64").sum(axis=-1)
    return total.min(axis=1).mean() + total.min(axis=0).mean()


def test_layer_contract(rng, tmp_path):
    z = rng.uniform(size=(2, 5, 4, 3)).astype("float32")
    out = run_layer_test(
        PrototypeLayer,
        {"n_prototypes": 3, "prototypes_initializer": "glorot_uniform"},
        z,
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=1,
        tmp_path=tmp_path,
    )
    assert np.all(out >= 0)


def test_distances_match_numpy_broadcast(rng):
    z = rng.normal(size=(6, 7, 5, 4)).astype("float32")
    p = rng.normal(size=(3, 7, 5, 4)).astype("float32")
    layer = PrototypeLayer(n_prototypes=3)
    layer.build(z.shape)
    layer.prototypes.assign(p)
    got = keras.ops.convert_to_numpy(layer(z))
    assert got.shape == (6, 3, 5)
    np.testing.assert_allclose(got, numpy_distances(z, p), rtol=1e-5)


def test_distance_to_itself_is_clamped_zero(rng):
    # The expansion ||z||^2 - 2<z,p> + ||p||^2 rounds to tiny (possibly negative)
    # values when z == p; the layer must return ~0 and never a negative value.
    p = (10.0 * rng.normal(size=(2, 6, 3, 5))).astype("float32")
    layer = PrototypeLayer(n_prototypes=2)
    layer.build(p.shape)
    layer.prototypes.assign(p)
    got = keras.ops.convert_to_numpy(layer(p))
    assert np.all(got >= 0)
    diagonal = got[[0, 1], [0, 1]]
    scale = np.sum(p**2, axis=(1, 3))  # ||p||^2 per bin
    assert np.all(diagonal <= 1e-5 * scale)
    np.testing.assert_allclose(got[0, 1], numpy_distances(p, p)[0, 1], rtol=1e-5)


def test_default_initializer_is_the_reference_uniform():
    layer = PrototypeLayer(n_prototypes=50)
    layer.build((None, 21, 8, 4))
    protos = layer.prototypes.numpy()
    assert protos.shape == (50, 21, 8, 4)
    assert layer.prototypes.name == "prototypes"
    assert protos.min() >= -0.05 and protos.max() <= 0.05
    assert abs(protos.mean()) < 0.005 and protos.std() > 0.025  # U(-0.05, 0.05): std 0.0289


def test_configurable_initializer(rng):
    z = rng.normal(size=(3, 4, 2, 3)).astype("float32")
    layer = PrototypeLayer(n_prototypes=2, prototypes_initializer="zeros")
    got = keras.ops.convert_to_numpy(layer(z))
    # Zero prototypes: D[i, j, f] = ||z_i[:, f, :]||^2 for every j.
    expected = np.broadcast_to(np.sum(z.astype("float64") ** 2, axis=(1, 3))[:, None], (3, 2, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_rejects_bad_n_prototypes(bad):
    with pytest.raises(ValueError, match="n_prototypes"):
        PrototypeLayer(n_prototypes=bad)


def test_rejects_bad_input_rank():
    with pytest.raises(ValueError, match=r"\(batch, T', F', C\)"):
        PrototypeLayer(n_prototypes=2).build((None, 4, 3))


def test_prototype_loss_matches_numpy(rng):
    d = rng.uniform(0.0, 10.0, size=(7, 4, 5)).astype("float32")
    got = float(keras.ops.convert_to_numpy(prototype_loss(d, "sum")))
    np.testing.assert_allclose(got, numpy_prototype_loss(d), rtol=1e-6)


def test_prototype_loss_hand_example():
    # D_ij = [[2, 4], [1, 18]]: mean_i min_j = (2 + 1) / 2, mean_j min_i = (1 + 4) / 2.
    d = np.array([[[1.0, 1.0], [4.0, 0.0]], [[0.5, 0.5], [9.0, 9.0]]], dtype="float32")
    assert float(keras.ops.convert_to_numpy(prototype_loss(d, "sum"))) == pytest.approx(4.0)
    assert float(keras.ops.convert_to_numpy(prototype_loss(d))) == pytest.approx(2.0)  # default: mean over F' = 2


def test_prototype_loss_end_to_end_eq_4_5(rng):
    # Eq. 4 on flattened latents, then Eq. 5, against the layer output + prototype_loss.
    z = rng.normal(size=(5, 4, 3, 2)).astype("float32")
    p = rng.normal(size=(3, 4, 3, 2)).astype("float32")
    layer = PrototypeLayer(n_prototypes=3)
    layer.build(z.shape)
    layer.prototypes.assign(p)
    got = float(keras.ops.convert_to_numpy(prototype_loss(layer(z), "sum")))
    d_ij = ((z.reshape(5, 1, -1).astype("float64") - p.reshape(1, 3, -1)) ** 2).sum(-1)
    expected = d_ij.min(axis=1).mean() + d_ij.min(axis=0).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_prototype_loss_rejects_bad_rank():
    with pytest.raises(ValueError, match="batch, M, F'"):
        prototype_loss(np.zeros((3, 4), dtype="float32"))
