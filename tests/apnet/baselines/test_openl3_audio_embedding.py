"""Tests of apnet.baselines.openl3_audio_embedding (L3-Net audio network, OpenL3 mel256 / 512-d)."""
import keras
import numpy as np
import pytest

from apnet.baselines import OPENL3_MEL256_INPUT_SHAPE, openl3_audio_embedding


def expected_params():
    """Convolutions 64-128-256-512 (two 3x3 each), 7 batch norms after them plus one on the input."""
    channels = [1, 64, 64, 128, 128, 256, 256, 512, 512]
    convs = sum(9 * c_in * c_out + c_out for c_in, c_out in zip(channels[:-1], channels[1:]))
    batch_norms = 4 * (1 + sum(channels[1:-1]))
    return convs + batch_norms


def test_default_input_is_openl3_mel256_and_gives_the_official_pooling_map():
    model = openl3_audio_embedding()
    assert OPENL3_MEL256_INPUT_SHAPE == (199, 256)  # 1 s at 48 kHz, hop 242; 256 mel bands
    assert model.input_shape == (None, 199, 256)
    assert model.output_shape == (None, 512)
    # openl3.models.AUDIO_POOLING_SIZES["mel256"][512] == (32, 24): the map pooled to the 512-d embedding.
    assert tuple(model.get_layer("audio_embedding_layer").output.shape) == (None, 32, 24, 512)
    assert model.count_params() == expected_params() == 4_689_860


def test_architecture_follows_openl3():
    model = openl3_audio_embedding((63, 64))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 8
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]) == 3
    # The last convolution is the embedding layer: no batch norm nor ReLU after it.
    assert model.layers[-2].name == "audio_embedding_layer"
    assert model.layers[-1].name == "embedding_pool"


def test_network_is_frequency_first_and_pools_globally(fsdd_batch):
    x, _ = fsdd_batch
    model = openl3_audio_embedding(x.shape[1:])
    probe = keras.Model(model.input, [model.get_layer("expand_channels").output,
                                      model.get_layer("audio_embedding_layer").output, model.output])
    spec, feature_map, embedding = probe.predict(x, verbose=0)
    np.testing.assert_array_equal(spec, x.transpose(0, 2, 1)[..., None])  # (F, T, 1) as in OpenL3
    assert feature_map.shape == (8, 8, 7, 512)
    np.testing.assert_allclose(embedding, feature_map.max(axis=(1, 2)), rtol=1e-6)
    assert np.all(np.isfinite(embedding)) and embedding.std() > 0


def test_keras_round_trip(fsdd_batch, assert_reloads):
    x, _ = fsdd_batch
    assert_reloads(openl3_audio_embedding(x.shape[1:]), x[:2])


@pytest.mark.parametrize("input_shape", [(7, 256), (199,), (199, 0)])
def test_rejects_bad_input_shapes(input_shape):
    with pytest.raises(ValueError, match="input_shape"):
        openl3_audio_embedding(input_shape)
