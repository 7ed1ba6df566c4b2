"""Tests of apnet.layers.LeakyReLU: Keras' leaky ReLU, minus TensorFlow's remapper failure."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from apnet.layers import LeakyReLU
from tests.layer_testing import run_layer_test

ROOT = Path(__file__).resolve().parents[3]


def test_layer_contract(rng, tmp_path):
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    out = run_layer_test(LeakyReLU, {"negative_slope": 0.3}, x, expected_output_shape=(2, 3, 4),
                         expected_num_trainable_weights=0, tmp_path=tmp_path)
    np.testing.assert_array_equal(out, np.where(x > 0, x, x * np.float32(0.3)))


def test_values_and_gradient_are_those_of_keras_leaky_relu(rng):
    """Bit-identical forward pass and gradient, zeros and tiny values included."""
    x = np.concatenate([rng.normal(size=2000), [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30]]).astype("float32")
    ours, theirs = LeakyReLU(negative_slope=0.3), keras.layers.LeakyReLU(negative_slope=0.3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)))
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient comparison written with tf.GradientTape")
    import tensorflow as tf

    t = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(t)
        a, b = ours(t), theirs(t)
    np.testing.assert_array_equal(tape.gradient(a, t).numpy(), tape.gradient(b, t).numpy())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow grappler message")
def test_training_apnet_prints_no_remapper_failure(tmp_path):
    """With keras.layers.LeakyReLU this printed 'remapper failed: ... LeakyReluGrad ... BiasAdd'; nothing else instead."""
    script = textwrap.dedent("""
        import numpy as np, keras
        from apnet.model import APNet
        from apnet.training import compile_apnet
        model = APNet(input_shape=(32, 32), n_classes=3, n_prototypes=4, n_filters=4)
        compile_apnet(model, 10, 5, 5)
        x = np.random.default_rng(0).random((8, 32, 32)).astype("float32")
        y = {"probabilities": keras.utils.to_categorical(np.arange(8) % 3, 3), "reconstruction": x,
             "prototypes": np.zeros(8, "float32")}
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        model.predict(x, verbose=0)
        print("trained")
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained" in done.stdout
    assert "remapper failed" not in done.stderr, done.stderr[-2000:]
    # oneDNN's line about boolean tensors: MaskedMaxPooling2D's greater_equal printed it (now 1 - sign)
    assert "DT_BOOL" not in done.stderr, done.stderr[-2000:]
