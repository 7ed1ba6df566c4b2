"""Tests of apnet.APNet: graph, sub-models, odd shapes, config and .keras round trips (TF, tf.keras, JAX)."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import apnet
from apnet import APNet
from apnet.initializers import prototype_class_kernel

LAYER_NAMES = [
    "input", "add_channel", "encoder_conv1", "encoder_act1", "pool1", "encoder_conv2", "encoder_act2", "pool2",
    "encoder_conv3", "latent", "decoder_conv1", "unpool2", "decoder_act1", "decoder_conv2", "unpool1",
    "decoder_act2", "decoder_conv3", "decoder_tanh", "reconstruction", "prototypes", "similarity", "weighted_sum",
    "dense", "probabilities",
]


def small_model(input_shape=(64, 64), **kwargs):
    keras.utils.set_random_seed(0)
    return APNet(input_shape=input_shape, n_classes=10, **{"n_prototypes": 10, "n_filters": 8, **kwargs})


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("input_shape, latent", [((64, 64), (16, 16)), ((37, 50), (10, 13))])
def test_shapes_and_names(input_shape, latent, rng):
    model = small_model(input_shape)
    assert sorted(layer.name for layer in model.layers) == sorted(LAYER_NAMES)
    assert [name.split("/")[0] for name in model.output_names] == list(apnet.OUTPUT_NAMES)
    assert model.latent_shape == latent + (8,)
    x = rng.uniform(-1, 1, size=(3,) + input_shape).astype("float32")
    probs, reconstruction, distances = (numpy(o) for o in model(x))
    assert probs.shape == (3, 10) and reconstruction.shape == (3,) + input_shape
    assert distances.shape == (3, 10, latent[1])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(np.abs(reconstruction) <= 1.0) and np.all(distances >= 0)


def test_paper_parameter_count():
    # UrbanSound8K (Table 1: T = 84, F = 128; Table 2: M = 50, C = 32): 1.2 M parameters in Table 3.
    model = APNet(input_shape=(84, 128), n_classes=10, n_prototypes=50, n_filters=32)
    convs = 4 * (25 * 32 * 32 + 32) + (25 * 32 + 32) + (25 * 32 + 1)
    expected = convs + 50 * 21 * 32 * 32 + 50 * 32 + 50 * 10
    assert model.count_params() == expected
    assert round(expected / 1e6, 1) == 1.2


@pytest.mark.parametrize("input_shape", [(64, 64), (37, 50)])
def test_sub_models_match_the_full_model(input_shape, rng):
    model = small_model(input_shape)
    x = rng.uniform(-1, 1, size=(2,) + input_shape).astype("float32")
    probs, reconstruction, distances = (numpy(o) for o in model(x))
    latent, mask1, mask2 = (numpy(o) for o in model.encoder()(x))
    assert mask1.shape == (2,) + input_shape + (8,)
    assert set(np.unique(mask1)) <= {0.0, 1.0}
    np.testing.assert_allclose(numpy(model.decoder()([latent, mask1, mask2])), reconstruction, rtol=1e-5, atol=1e-6)
    sub_probs, weighted, similarity = (numpy(o) for o in model.classifier()(latent))
    np.testing.assert_allclose(sub_probs, probs, rtol=1e-5, atol=1e-7)
    # The maths of Eqs. 6-8 in NumPy, from the latent and the weights.
    prototypes = numpy(model.get_layer("prototypes").prototypes).astype("float64")
    d = ((latent[:, None].astype("float64") - prototypes[None]) ** 2).sum(axis=(2, 4))
    np.testing.assert_allclose(distances, d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(similarity, np.exp(-d), rtol=1e-3, atol=1e-6)
    s_hat = (np.exp(-d) * numpy(model.get_layer("weighted_sum").kernel)[None]).sum(-1)
    np.testing.assert_allclose(weighted, s_hat, rtol=1e-3, atol=1e-6)
    logits = s_hat @ numpy(model.get_layer("dense").kernel)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-3, atol=1e-6)


def test_default_initialisation(rng):
    model = APNet(input_shape=(64, 64), n_classes=10, n_prototypes=20, n_filters=8)
    kernel = numpy(model.get_layer("dense").kernel)
    np.testing.assert_allclose(kernel, prototype_class_kernel(20, 10, noise=0.0), atol=0.05 + 1e-6)
    assert not np.allclose(kernel, prototype_class_kernel(20, 10, noise=0.0))  # the noise is there
    prototypes = numpy(model.get_layer("prototypes").prototypes)
    assert prototypes.min() >= -0.05 and prototypes.max() <= 0.05
    np.testing.assert_allclose(numpy(model.get_layer("weighted_sum").kernel), 1 / 16)  # H = 1 / F' (Section 3.4)
    assert model.get_layer("dense").bias is None


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (64,)}, "input_shape"),
    ({"input_shape": (64, 0)}, "input_shape"),
    ({"n_classes": 0}, "n_classes"),
    ({"n_prototypes": 2.5}, "n_prototypes"),
    ({"n_filters": -1}, "n_filters"),
    ({"negative_slope": -0.1}, "negative_slope"),
    ({"n_prototypes": 5}, "at least one prototype per class"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        APNet(**{"input_shape": (64, 64), "n_classes": 10, "n_prototypes": 10, "n_filters": 4, **kwargs})


def test_config_round_trip():
    model = small_model((37, 50), kernel_size=3, negative_slope=0.2, dense_kernel_initializer="glorot_uniform")
    config = model.get_config()
    assert config["input_shape"] == [37, 50] and config["kernel_size"] == 3 and config["negative_slope"] == 0.2
    clone = APNet.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, fsdd_batch):
    """A small APNet after a few steps on real FSDD clips, saved to .keras."""
    x, y = fsdd_batch
    model = small_model()
    apnet.training.compile_apnet(model, alpha=10, beta=5, gamma=5)
    model.fit(x, {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x))}, batch_size=32,
              epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("apnet_model") / "apnet.keras"
    model.save(path)
    return model, path, x


def test_keras_load_model_without_custom_objects(trained_model):
    model, path, x = trained_model
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is APNet and reloaded.get_config() == model.get_config()
    for before, after in zip(model.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    # The compiled loss (incl. PrototypeLoss) comes back too: training can go on.
    assert reloaded.optimizer is not None
    reloaded.train_on_batch(x[:8], {"probabilities": np.eye(10)[:8], "reconstruction": x[:8],
                                    "prototypes": np.zeros(8)})


def test_tf_keras_load_model(trained_model):
    tf = pytest.importorskip("tensorflow", reason="tf.keras needs TensorFlow")
    model, path, x = trained_model
    reloaded = tf.keras.models.load_model(path)
    assert isinstance(reloaded, APNet)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0)[0], model.predict(x, verbose=0)[0], rtol=1e-5,
                               atol=1e-6)


def test_jax_backend_loads_and_trains(trained_model, tmp_path):
    """The library uses keras.ops only: the TF-saved model loads and trains on JAX (in a subprocess)."""
    check = subprocess.run([sys.executable, "-c", "import jax"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("JAX backend not tested: `import jax` fails in this environment (pip install jax to run it)")
    model, path, x = trained_model
    np.save(tmp_path / "x.npy", x[:8])
    np.save(tmp_path / "probs.npy", model.predict(x[:8], verbose=0)[0])
    script = textwrap.dedent(f"""
        import numpy as np, keras, apnet
        assert keras.backend.backend() == "jax"
        x = np.load({str(tmp_path / "x.npy")!r})
        model = keras.models.load_model({str(path)!r})
        np.testing.assert_allclose(model.predict(x, verbose=0)[0], np.load({str(tmp_path / "probs.npy")!r}),
                                   rtol=1e-4, atol=1e-5)
        fresh = apnet.APNet(input_shape=(37, 50), n_classes=10, n_prototypes=10, n_filters=4)
        apnet.training.compile_apnet(fresh, 10, 5, 5)
        xo = np.random.default_rng(0).uniform(-1, 1, (4, 37, 50)).astype("float32")
        logs = fresh.train_on_batch(xo, {{"probabilities": np.eye(10)[:4], "reconstruction": xo,
                                          "prototypes": np.zeros(4)}}, return_dict=True)
        assert np.isfinite(logs["loss"])
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
