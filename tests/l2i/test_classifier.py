"""Tests of l2i.classifier: the Kumar et al. CNN (f) and loading weights by layer name."""
import keras
import numpy as np
import pytest

from l2i.classifier import KumarCNN, load_pretrained_weights
from tests.l2i._esc10 import TINY_CLASSIFIER


def test_paper_sizes_and_named_blocks():
    model = KumarCNN(n_classes=50, n_frames=431, n_mels=128)
    shapes = {name: tuple(model.get_layer(name).output.shape[1:]) for name in ("block4", "block5", "block6")}
    assert shapes == {"block4": (53, 16, 128), "block5": (26, 8, 256), "block6": (13, 4, 512)}
    assert tuple(model.output.shape) == (None, 50)
    # Two conv+BN+ReLU per block in B1-B5, one in B6, each followed by max pooling.
    convs = [l.name for l in model.layers if l.name.startswith("block") and "_conv" in l.name]
    assert len(convs) == 11 and "block6_conv2" not in convs
    assert [model.get_layer(f"block{i}_conv1").filters for i in range(1, 7)] == [16, 32, 64, 128, 256, 512]
    assert model.get_layer("head_conv").filters == 1024 and model.get_layer("class_conv").filters == 50


@pytest.mark.parametrize("multilabel", [False, True])
def test_outputs_are_probabilities(rng, multilabel):
    model = KumarCNN(n_classes=4, n_frames=128, multilabel=multilabel, **TINY_CLASSIFIER)
    p = keras.ops.convert_to_numpy(model(rng.normal(size=(3, 128, 128)).astype("float32")))
    assert p.shape == (3, 4) and np.all((p >= 0) & (p <= 1))
    if not multilabel:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_input_normalization_and_round_trip(rng, tmp_path):
    mean, std = rng.normal(size=128), rng.random(128) + 0.5
    model = KumarCNN(n_classes=3, n_frames=128, input_mean=mean, input_std=std, **TINY_CLASSIFIER)
    x = rng.normal(size=(2, 128, 128)).astype("float32")
    normed = keras.Model(model.input, model.get_layer("input_normalization").output)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(normed), (x - mean) / std, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "f.keras")
    reloaded = keras.models.load_model(tmp_path / "f.keras")
    assert isinstance(reloaded, KumarCNN)
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_classes": 0}, "n_classes"),
    ({"n_classes": 2, "n_frames": 64}, "n_frames"),
    ({"n_classes": 2, "pooling": "mean"}, "pooling"),
    ({"n_classes": 2, "filters": (1, 2)}, "filters"),
    ({"n_classes": 2, "input_mean": [0.0] * 128}, "input_std"),
    ({"n_classes": 2, "head": "mlp"}, "head"),
    ({"n_classes": 2, "head": "ftex", "head_units": 0}, "head_units"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KumarCNN(**kwargs)


def _randomised(model, rng):
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("fmt", ["npz", "keras", "weights.h5"])
def test_load_pretrained_weights_round_trip(rng, tmp_path, fmt):
    source = _randomised(KumarCNN(n_classes=3, n_frames=128, **TINY_CLASSIFIER), rng)
    path = tmp_path / f"w.{fmt}"
    if fmt == "npz":
        np.savez(path, **{f"{l.name}/{i}": w for l in source.layers for i, w in enumerate(l.get_weights())})
    elif fmt == "keras":
        source.save(path)
    else:
        source.save_weights(path)
    target = KumarCNN(n_classes=3, n_frames=128, **TINY_CLASSIFIER)
    loaded = load_pretrained_weights(target, path)
    assert {"block1_conv1", "block6_bn1", "head_conv", "class_conv"} <= set(loaded)
    x = rng.normal(size=(2, 128, 128)).astype("float32")
    np.testing.assert_allclose(source.predict(x, verbose=0), target.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_load_pretrained_weights_errors_name_the_layer(rng, tmp_path):
    source = KumarCNN(n_classes=5, n_frames=128, **TINY_CLASSIFIER)
    path = tmp_path / "w.npz"
    np.savez(path, **{f"{l.name}/{i}": w for l in source.layers for i, w in enumerate(l.get_weights())})
    target = KumarCNN(n_classes=3, n_frames=128, **TINY_CLASSIFIER)
    with pytest.raises(ValueError, match="class_conv"):
        load_pretrained_weights(target, path)
    # Fine-tuning to other classes: skip the mismatching class layer, load the rest.
    loaded = load_pretrained_weights(target, path, skip_mismatch=("class_conv",))
    assert "class_conv" not in loaded and "block3_conv2" in loaded
    np.savez(tmp_path / "bad.npz", **{"no_such_layer/0": np.zeros(3)})
    with pytest.raises(ValueError, match="no_such_layer"):
        load_pretrained_weights(target, tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_pretrained_weights(target, tmp_path / "missing.npz")


# ---------------------------------------------------------------- the authors' head (FtEx / FtEx_v2)
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_ftex_head_is_conv1x1_relu_global_pool_then_linear(rng, pooling):
    model = KumarCNN(n_classes=5, n_frames=128, head="ftex", head_units=12, pooling=pooling, dropout=0.2,
                     **TINY_CLASSIFIER)
    names = [layer.name for layer in model.layers]
    assert "class_conv" not in names and {"ftex_conv", "ftex_pool", "head_dropout", "logits"} <= set(names)
    conv = model.get_layer("ftex_conv")
    assert conv.filters == 12 and tuple(conv.kernel_size) == (1, 1)
    assert isinstance(model.get_layer("logits"), keras.layers.Dense)
    for layer in model.layers:  # random weights, so that the ReLU and the pooling matter
        if layer.get_weights() and not layer.name.endswith(("_bn1", "_bn2", "head_bn")):
            layer.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    x = rng.normal(size=(2, 128, 128)).astype("float32")
    maps = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer("head_relu").output)(x))
    kernel, bias = (np.asarray(w, np.float64) for w in conv.get_weights())
    hidden = np.maximum(np.einsum("btfc,cu->btfu", maps, kernel[0, 0]) + bias, 0.0)
    pooled = hidden.mean(axis=(1, 2)) if pooling == "avg" else hidden.max(axis=(1, 2))
    dense_kernel, dense_bias = model.get_layer("logits").get_weights()
    logits = pooled @ dense_kernel + dense_bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-3, atol=1e-5)


def test_ftex_head_round_trip_and_kumar_default(rng, tmp_path):
    assert KumarCNN(n_classes=3, n_frames=128, **TINY_CLASSIFIER).head == "kumar"
    model = KumarCNN(n_classes=3, n_frames=128, head="ftex", head_units=8, multilabel=True, **TINY_CLASSIFIER)
    x = rng.normal(size=(2, 128, 128)).astype("float32")
    model.save(tmp_path / "f.keras")
    reloaded = keras.models.load_model(tmp_path / "f.keras")
    assert reloaded.head == "ftex" and reloaded.head_units == 8
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_audioset_style_weights_load_into_the_ftex_head(rng, tmp_path):
    # The authors load the whole AudioSet network and put FtEx's head on its 1024-channel maps.
    source = _randomised(KumarCNN(n_classes=7, n_frames=128, **TINY_CLASSIFIER), rng)
    path = tmp_path / "audioset.npz"
    np.savez(path, **{f"{l.name}/{i}": w for l in source.layers for i, w in enumerate(l.get_weights())})
    target = KumarCNN(n_classes=3, n_frames=128, head="ftex", head_units=8, **TINY_CLASSIFIER)
    with pytest.raises(ValueError, match="class_conv"):
        load_pretrained_weights(target, path)
    loaded = load_pretrained_weights(target, path, skip_mismatch=("class_conv",))
    assert "head_conv" in loaded and "class_conv" not in loaded
    np.testing.assert_array_equal(target.get_layer("head_conv").get_weights()[0],
                                  source.get_layer("head_conv").get_weights()[0])


@pytest.mark.parametrize("dataset, units, pooling, dropout", [
    ("esc50", 256, "avg", 0.2),       # FtEx: 256, Dropout(0.2); avg_pool2d "for experiments on ESC"
    ("sonyc_ust", 512, "max", 0.15),  # FtEx_v2(mid_size=512): Dropout(0.15); max_pool2d
])
def test_configs_use_the_authors_head(tmp_path, dataset, units, pooling, dropout):
    from types import SimpleNamespace

    from l2i.training import _fresh_classifier, load_config

    config = load_config(dataset)
    section = config["classifier"]
    assert (section["head"], section["head_units"], section["pooling"], section["dropout"]) == (
        "ftex", units, pooling, dropout)
    reference = KumarCNN(n_classes=2, n_frames=128, input_mean=np.zeros(128), input_std=np.ones(128),
                         **TINY_CLASSIFIER)
    reference.save(tmp_path / "f.keras")
    data = SimpleNamespace(classes=("a", "b"), mel=np.zeros((1, 128, 128), np.float32), multilabel=False)
    model = _fresh_classifier({"classifier": dict(section, filters=TINY_CLASSIFIER["filters"],
                                                  head_filters=TINY_CLASSIFIER["head_filters"])},
                              data, classifier_path=tmp_path / "f.keras")
    assert model.head == "ftex" and model.get_layer("ftex_conv").filters == units and model.pooling == pooling
