"""Tests of apnet.baselines.sb_cnn (SB-CNN, Salamon & Bello 2017; APNet Table 3)."""
import keras
import numpy as np
import pytest

from apnet.baselines import sb_cnn


def expected_params(time, freq, n_classes, pools=((2, 2), (4, 2)), batch_norm=True):
    """Parameter count of SB-CNN by hand: 5x5 valid convolutions, the poolings, the two dense layers."""
    t, f = time, freq
    for pool in pools + ((1, 1),):
        t, f = (t - 4) // pool[0], (f - 4) // pool[1]
    convs = (25 * 1 * 24 + 24) + (25 * 24 * 48 + 48) + (25 * 48 * 48 + 48)
    bn = 4 * (24 + 48 + 48) if batch_norm else 0
    return convs + bn + (t * f * 48 * 64 + 64) + (64 * n_classes + n_classes)


@pytest.mark.parametrize(
    "input_shape, n_classes, count, paper_millions",
    [
        ((130, 128), 10, 856_314, 0.86),  # UrbanSound8K, Table 1 -> Table 3
        ((130, 256), 8, 1_839_224, 1.8),  # Medley-solos-DB
        ((63, 80), 35, 169_811, 0.17),  # Speech Commands
        ((63, 64), 10, 143_610, None),  # FSDD, baselines' features
        ((64, 64), 10, 143_610, None),  # FSDD, APNet's features
    ],
)
def test_builds_for_table1_shapes_with_table3_parameter_counts(input_shape, n_classes, count, paper_millions):
    model = sb_cnn(input_shape, n_classes)
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, n_classes)
    assert model.count_params() == count == expected_params(*input_shape, n_classes)
    if paper_millions is not None:  # Table 3 gives 2 significant digits
        assert abs(count / 1e6 - paper_millions) / paper_millions < 0.025
    print(f"sb_cnn {input_shape} {n_classes} classes: {count} parameters (paper: {paper_millions} M)")


def test_layers_are_named_and_match_the_description():
    model = sb_cnn((130, 128), 10)
    names = [layer.name for layer in model.layers]
    assert names == [
        "input", "expand_channels", "conv1", "maxpool1", "batchnorm1", "conv2", "maxpool2", "batchnorm2",
        "conv3", "batchnorm3", "flatten", "dropout1", "dense1", "dropout2", "output",
    ]
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [24, 48, 48]
    assert model.get_layer("conv1").kernel_size == (5, 5)
    assert model.get_layer("maxpool2").pool_size == (4, 2)
    assert model.get_layer("dense1").units == 64
    assert model.get_layer("dropout1").rate == model.get_layer("dropout2").rate == 0.5
    assert float(model.get_layer("dense1").kernel_regularizer.l2) == pytest.approx(0.001)
    assert tuple(model.get_layer("conv3").output.shape) == (None, 10, 25, 48)


def test_original_salamon_bello_configuration():
    model = sb_cnn((128, 128), 10, pool_sizes=((4, 2), (4, 2)), batch_norm=False)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.count_params() == expected_params(128, 128, 10, ((4, 2), (4, 2)), batch_norm=False) == 241_434


def test_output_is_a_softmax(rng):
    model = sb_cnn((63, 64), 10)
    probs = model.predict(rng.uniform(size=(3, 63, 64)).astype("float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(probs > 0)


def test_overfits_real_fsdd_clips(fsdd_batch, assert_overfits):
    x, y = fsdd_batch
    keras.utils.set_random_seed(0)
    assert_overfits(sb_cnn(x.shape[1:], 10), x, y)


def test_keras_round_trip(fsdd_batch, assert_reloads):
    x, _ = fsdd_batch
    assert_reloads(sb_cnn(x.shape[1:], 10), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (20, 20), "n_classes": 10}, "too small"),
        ({"input_shape": (130,), "n_classes": 10}, "input_shape"),
        ({"input_shape": (130, 128), "n_classes": 1}, "n_classes"),
        ({"input_shape": (130, 128), "n_classes": 10, "dropout_rate": 1.5}, "dropout_rate"),
        ({"input_shape": (130, 128), "n_classes": 10, "filters": (24, 48)}, "filters"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sb_cnn(**kwargs)
