"""Tests of apnet.baselines.openl3_mlp (MLP on OpenL3 embeddings; APNet Table 3)."""
import keras
import numpy as np
import pytest

from apnet.baselines import openl3_audio_embedding, openl3_mlp

#: Parameters of OpenL3's Kapre mel256 front end, which Table 3 counts and this package leaves out of the
#: model: real and imaginary DFT kernels (n_dft = 2048 -> 1025 bins) and the 1025 x 256 mel filterbank.
KAPRE_MEL256_PARAMS = 2 * 2048 * 1025 + 1025 * 256


@pytest.mark.parametrize("n_classes, count", [(10, 329_610), (8, 329_352), (35, 332_835)])
def test_parameter_counts_and_table3(n_classes, count):
    model = openl3_mlp((512,), n_classes)
    assert model.output_shape == (None, n_classes)
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [512, 128, n_classes]
    assert model.count_params() == count == (512 * 512 + 512) + (512 * 128 + 128) + (128 * n_classes + n_classes)
    total = count + openl3_audio_embedding().count_params() + KAPRE_MEL256_PARAMS
    assert abs(total / 1e6 - 9.5) / 9.5 < 0.01  # Table 3: 9.5 M for OpenL3 on every dataset
    print(f"openl3_mlp {n_classes} classes: {count}; with the embedding network and Kapre: {total} (paper: 9.5 M)")


def test_layers_are_named():
    model = openl3_mlp((512,), 10)
    assert [layer.name for layer in model.layers] == [
        "input", "dense1", "dropout1", "dense2", "dropout2", "output"]
    assert model.get_layer("dropout1").rate == 0.5


def test_overfits_embeddings_of_real_fsdd_clips(fsdd_batch, assert_overfits, assert_reloads):
    x, y = fsdd_batch
    keras.utils.set_random_seed(0)
    embeddings = openl3_audio_embedding(x.shape[1:]).predict(x, verbose=0)
    embeddings = (embeddings - embeddings.mean(axis=0)) / (embeddings.std(axis=0) + 1e-6)
    model = openl3_mlp((512,), 10)
    assert_overfits(model, embeddings, y)
    assert_reloads(model, embeddings)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (199, 256)}, "input_shape"),
        ({"n_classes": 1}, "n_classes"),
        ({"dropout_rate": -0.1}, "dropout_rate"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        openl3_mlp(**kwargs)
