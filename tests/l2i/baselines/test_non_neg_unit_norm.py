"""Tests of l2i.baselines.NonNegUnitNorm: the projection of TDL-NMF's dictionary."""
import keras
import numpy as np
import pytest

from l2i.baselines import NonNegUnitNorm


def test_projection_values(rng):
    w = rng.normal(size=(20, 5)).astype("float32")
    out = keras.ops.convert_to_numpy(NonNegUnitNorm(floor=0.0)(w))
    expected = np.maximum(w, 0) / np.linalg.norm(np.maximum(w, 0), axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_floor_keeps_an_all_negative_column_alive():
    out = keras.ops.convert_to_numpy(NonNegUnitNorm(floor=1e-8)(-np.ones((4, 1), "float32")))
    np.testing.assert_allclose(out, 0.5, rtol=1e-6)


def test_optimizer_applies_it_after_each_step(rng):
    var = keras.Variable(rng.random((10, 3)).astype("float32"))
    var.constraint = NonNegUnitNorm()
    keras.optimizers.SGD(1.0).apply_gradients([(rng.normal(size=(10, 3)).astype("float32"), var)])
    w = keras.ops.convert_to_numpy(var)
    assert w.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-5)


def test_config_round_trip_and_validation():
    c = NonNegUnitNorm(floor=1e-6, axis=1)
    revived = keras.constraints.deserialize(keras.constraints.serialize(c))
    assert type(revived) is NonNegUnitNorm and revived.get_config() == {"floor": 1e-6, "axis": 1}
    with pytest.raises(ValueError, match="floor"):
        NonNegUnitNorm(floor=-1)
