"""Tests of apnet.baselines.load_openl3_weights on HDF5 files written in the official OpenL3 layout.

The official files (openl3_audio_mel256_{music,env}.h5) are not available offline, so each test writes a
Keras 2 HDF5 weight file the way OpenL3's were written: the layers of openl3.models'
``_construct_mel256_audio_network`` in their order, with Keras 2 default names (``batch_normalization_k``,
``conv2d_k``, ``activation_k``, ``max_pooling2d_k``, the last convolution ``audio_embedding_layer``), a Kapre
``melspectrogram_1`` layer with weights in front (older files; the openl3 >= 0.4 files dropped it) and, per
layer, a group with a ``weight_names`` attribute and datasets ``<layer>/<weight>:0``.
"""
import h5py
import keras
import numpy as np
import pytest

from apnet.baselines import load_openl3_weights, openl3_audio_embedding

BN = ("gamma", "beta", "moving_mean", "moving_variance")


def official_layout(first_filters=64):
    """``[(layer_name, [(weight_name, shape), ...]), ...]`` of OpenL3's mel256 audio model, Kapre included."""
    layers = [("input_1", []),
              ("melspectrogram_1", [("real_kernels", (64, 1, 1, 33)), ("imag_kernels", (64, 1, 1, 33)),
                                    ("freq2mel", (33, 256))])]  # small stand-ins: they are skipped
    counters = {"batch_normalization": 0, "conv2d": 0, "activation": 0, "max_pooling2d": 0}

    def add(kind, weights, name=None):
        counters[kind] += 1
        layers.append((name or f"{kind}_{counters[kind]}", weights))

    add("batch_normalization", [(w, (1,)) for w in BN])
    c_in = 1
    for block, c_out in enumerate((first_filters, 128, 256, 512), start=1):
        for j in (1, 2):
            last = block == 4 and j == 2
            add("conv2d", [("kernel", (3, 3, c_in, c_out)), ("bias", (c_out,))],
                name="audio_embedding_layer" if last else None)
            c_in = c_out
            if not last:
                add("batch_normalization", [(w, (c_out,)) for w in BN])
                add("activation", [])
        if block < 4:
            add("max_pooling2d", [])
    return layers


def write_official_h5(path, arrays, layout=None, kapre=True, full_model=False):
    """Write ``arrays`` (one list per layer with weights, in order) as a Keras 2 HDF5 file in OpenL3's layout."""
    layout = official_layout() if layout is None else layout
    if not kapre:
        layout = [entry for entry in layout if entry[0] != "melspectrogram_1"]
    rng = np.random.default_rng(1)
    weighted = iter(arrays)
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        root.attrs["layer_names"] = np.array([name.encode() for name, _ in layout])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.1.6"
        for name, weights in layout:
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{w}:0".encode() for w, _ in weights], dtype="S")
            if not weights:
                continue
            values = (rng.normal(size=s).astype("float32") for _, s in weights) if "spectrogram" in name \
                else next(weighted)
            for (weight, shape), value in zip(weights, values):
                assert value.shape == shape, (name, weight, value.shape, shape)
                group.create_dataset(f"{name}/{weight}:0", data=value)
    return path


@pytest.fixture
def source_model(rng):
    """An embedding network with random weights everywhere, batch-norm statistics included."""
    model = openl3_audio_embedding((63, 64))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([
                (rng.uniform(0.5, 1.5, size=w.shape) if "variance" in w.name or w.name == "gamma"
                 else rng.normal(scale=0.1, size=w.shape)).astype("float32")
                for w in layer.weights])
    return model


def weights_of(model):
    return [[np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights]


@pytest.mark.parametrize("kapre, full_model", [(True, False), (False, False), (True, True)])
def test_round_trip_through_the_official_layout(tmp_path, source_model, fsdd_batch, kapre, full_model):
    x, _ = fsdd_batch
    path = write_official_h5(tmp_path / "openl3_audio_mel256_music.h5", weights_of(source_model),
                             kapre=kapre, full_model=full_model)
    target = openl3_audio_embedding((63, 64))
    assert load_openl3_weights(target, path) is target
    np.testing.assert_allclose(target.predict(x, verbose=0), source_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # The mapping is the official one: conv2d_3 is the first convolution of block 2, and so on.
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if full_model else f
        pairs = {"conv2d_3": "block2_conv1", "batch_normalization_1": "input_batchnorm",
                 "batch_normalization_8": "block4_batchnorm1", "audio_embedding_layer": "audio_embedding_layer"}
        for file_name, our_name in pairs.items():
            group = root[file_name]
            for weight_name, variable in zip(group.attrs["weight_names"], target.get_layer(our_name).weights):
                np.testing.assert_array_equal(np.asarray(variable), group[weight_name.decode()][()])


def test_weights_load_for_any_input_size(tmp_path, source_model):
    path = write_official_h5(tmp_path / "w.h5", weights_of(source_model))
    target = load_openl3_weights(openl3_audio_embedding(), path)  # the (199, 256) OpenL3 input
    np.testing.assert_array_equal(np.asarray(target.get_layer("block3_conv2").kernel),
                                  np.asarray(source_model.get_layer("block3_conv2").kernel))


def test_mismatched_shapes_name_the_file_and_the_layers(tmp_path, rng):
    layout = official_layout(first_filters=32)  # e.g. a file from another architecture
    arrays = [[rng.normal(size=s).astype("float32") for _, s in weights]
              for name, weights in layout if weights and "spectrogram" not in name]
    path = write_official_h5(tmp_path / "other_model.h5", arrays, layout=layout)
    target = openl3_audio_embedding((63, 64))
    before = weights_of(target)
    expected = r"other_model\.h5.*'conv2d_1'.*\(3, 3, 1, 32\).*'block1_conv1'.*\(3, 3, 1, 64\)"
    with pytest.raises(ValueError, match=expected):
        load_openl3_weights(target, path)
    for old, new in zip(before, weights_of(target)):  # nothing was assigned
        for a, b in zip(old, new):
            np.testing.assert_array_equal(a, b)


def test_missing_layers_are_reported(tmp_path, source_model):
    layout = official_layout()[:-1]  # no audio_embedding_layer
    path = write_official_h5(tmp_path / "truncated.h5", weights_of(source_model)[:-1], layout=layout)
    with pytest.raises(ValueError, match=r"truncated\.h5.*15 layers with weights.*has 16"):
        load_openl3_weights(openl3_audio_embedding((63, 64)), path)


def test_not_a_keras2_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers")
    with pytest.raises(ValueError, match=r"model\.weights\.h5 is not a Keras 2 HDF5 weight file"):
        load_openl3_weights(openl3_audio_embedding((63, 64)), path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="openl3_audio_mel256_env.h5"):
        load_openl3_weights(openl3_audio_embedding((63, 64)), tmp_path / "openl3_audio_mel256_env.h5")


def test_loaded_weights_survive_a_keras_round_trip(tmp_path, source_model):
    """Weights loaded from the file survive a .keras save of the loaded model (no custom objects)."""
    path = write_official_h5(tmp_path / "w.h5", weights_of(source_model), kapre=False)
    target = load_openl3_weights(openl3_audio_embedding((63, 64)), path)
    target.save(tmp_path / "embedding.keras")
    reloaded = keras.models.load_model(tmp_path / "embedding.keras")
    np.testing.assert_array_equal(np.asarray(reloaded.get_layer("audio_embedding_layer").kernel),
                                  np.asarray(source_model.get_layer("audio_embedding_layer").kernel))
