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
