"""Tests of apnet.initializers: the last-layer kernel from prototype classes (Section 3.5)."""
import keras
import numpy as np
import pytest

from apnet.initializers import (PrototypeClassKernel, prototype_class_kernel, prototype_classes,
                                reference_prototypes_initializer)


def test_blocks_of_prototypes_per_class():
    np.testing.assert_array_equal(prototype_classes(50, 10), np.repeat(np.arange(10), 5))
    # K does not divide M: blocks differ by at most one prototype.
    classes = prototype_classes(7, 3)
    np.testing.assert_array_equal(classes, [0, 0, 0, 1, 1, 2, 2])


def test_kernel_values_without_noise():
    w = prototype_class_kernel(7, 3, noise=0.0)
    assert w.shape == (7, 3) and w.dtype == np.float32
    expected = np.array([
        [1 / 3, -1 / 2, -1 / 2],
        [1 / 3, -1 / 2, -1 / 2],
        [1 / 3, -1 / 2, -1 / 2],
        [-1 / 3, 1 / 2, -1 / 2],
        [-1 / 3, 1 / 2, -1 / 2],
        [-1 / 3, -1 / 2, 1 / 2],
        [-1 / 3, -1 / 2, 1 / 2],
    ])
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    # M = K: +1 on the diagonal, -1 elsewhere; each class's own votes sum to +1.
    np.testing.assert_allclose(prototype_class_kernel(4, 4, noise=0.0), 2 * np.eye(4) - 1)
    w = prototype_class_kernel(50, 10, noise=0.0)
    np.testing.assert_allclose(w[prototype_classes(50, 10) == 3, 3].sum(), 1.0, rtol=1e-6)


def test_noise_is_bounded_and_seeded():
    clean = prototype_class_kernel(50, 10, noise=0.0)
    noisy = prototype_class_kernel(50, 10, noise=0.1, seed=3)
    delta = noisy - clean
    assert np.abs(delta).max() <= 0.05 + 1e-7 and np.abs(delta).max() > 0.01
    np.testing.assert_array_equal(noisy, prototype_class_kernel(50, 10, noise=0.1, seed=3))
    assert not np.array_equal(noisy, prototype_class_kernel(50, 10, noise=0.1, seed=4))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_prototypes": 3, "n_classes": 5}, "at least one prototype per class"),
    ({"n_prototypes": 0, "n_classes": 5}, "n_prototypes"),
    ({"n_prototypes": 10, "n_classes": 2, "noise": -1.0}, "noise"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prototype_class_kernel(**kwargs)


def test_keras_initializer_in_dense_and_serialization():
    init = PrototypeClassKernel(noise=0.0)
    layer = keras.layers.Dense(2, use_bias=False, kernel_initializer=init)
    layer.build((None, 6))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel), prototype_class_kernel(6, 2, noise=0.0))
    revived = keras.initializers.deserialize(keras.initializers.serialize(PrototypeClassKernel(noise=0.2, seed=1)))
    assert isinstance(revived, PrototypeClassKernel) and revived.get_config() == {"noise": 0.2, "seed": 1}
    with pytest.raises(ValueError, match="shape"):
        init((2, 3, 4))


def test_reference_prototypes_initializer_range():
    values = keras.ops.convert_to_numpy(reference_prototypes_initializer(seed=0)((1000,)))
    assert values.min() >= -0.05 and values.max() <= 0.05 and values.std() > 0.02
