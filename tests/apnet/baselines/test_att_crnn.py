"""Tests of apnet.baselines.att_crnn (Att-CRNN, de Andrade et al. 2018; APNet Table 3)."""
import keras
import numpy as np
import pytest

from apnet.baselines import att_crnn


def expected_params(freq, n_classes, units=64):
    """Parameter count of Att-CRNN by hand."""
    convs = (5 * 10 + 10) + 4 * 10 + (5 * 10 + 1) + 4 * 1
    lstm1 = 2 * 4 * (units * (freq + units) + units)
    lstm2 = 2 * 4 * (units * (2 * units + units) + units)
    attention = (2 * units) ** 2 + 2 * units
    dense = (2 * units * 64 + 64) + (64 * 32 + 32) + (32 * n_classes + n_classes)
    return convs + lstm1 + lstm2 + attention + dense


@pytest.mark.parametrize(
    "input_shape, n_classes, count, paper_millions",
    [
        ((130, 128), 10, 224_965, 0.23),  # UrbanSound8K, Table 1 -> Table 3 (ours 0.225 M)
        ((130, 256), 8, 290_435, 0.29),  # Medley-solos-DB
        ((63, 80), 35, 201_214, 0.20),  # Speech Commands
        ((63, 64), 10, 192_197, None),  # FSDD, baselines' features
        ((64, 64), 10, 192_197, None),  # FSDD, APNet's features
    ],
)
def test_builds_for_table1_shapes_with_table3_parameter_counts(input_shape, n_classes, count, paper_millions):
    model = att_crnn(input_shape, n_classes)
    assert model.output_shape == (None, n_classes)
    assert model.count_params() == count == expected_params(input_shape[1], n_classes)
    if paper_millions is not None:
        assert abs(count / 1e6 - paper_millions) / paper_millions < 0.025
    print(f"att_crnn {input_shape} {n_classes} classes: {count} parameters (paper: {paper_millions} M)")


def test_layers_are_named_and_attention_weights_are_reachable(fsdd_batch):
    x, _ = fsdd_batch
    model = att_crnn(x.shape[1:], 10)
    names = [layer.name for layer in model.layers]
    assert names == [
        "input", "expand_channels", "conv1", "batchnorm1", "conv2", "batchnorm2", "squeeze_channels",
        "bilstm1", "bilstm2", "attention", "dense1", "dense2", "output",
    ]
    assert model.get_layer("conv1").kernel_size == (5, 1)
    assert model.get_layer("bilstm2").forward_layer.units == 64
    assert tuple(model.get_layer("bilstm2").output.shape) == (None, 63, 128)
    explainer = keras.Model(model.input, [model.output, model.get_layer("attention").output[1]])
    probs, weights = explainer.predict(x, verbose=0)
    assert weights.shape == (8, 63)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_variable_length_input(rng):
    model = att_crnn((None, 40), 5, query_position="middle")
    for length in (20, 33):
        assert model.predict(rng.uniform(size=(2, length, 40)).astype("float32"), verbose=0).shape == (2, 5)


def test_overfits_real_fsdd_clips(fsdd_batch, assert_overfits):
    x, y = fsdd_batch
    keras.utils.set_random_seed(0)
    assert_overfits(att_crnn(x.shape[1:], 10), x, y)


def test_keras_round_trip(fsdd_batch, assert_reloads):
    x, _ = fsdd_batch
    assert_reloads(att_crnn(x.shape[1:], 10), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (63, None), "n_classes": 10}, "input_shape"),
        ({"input_shape": (63, 64), "n_classes": 0}, "n_classes"),
        ({"input_shape": (63, 64), "n_classes": 10, "conv_filters": (10, 2)}, "conv_filters"),
        ({"input_shape": (63, 64), "n_classes": 10, "query_position": "first"}, "query_position"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        att_crnn(**kwargs)
