"""Tests of apnet.baselines.build_baseline."""
import numpy as np
import pytest

from apnet.baselines import BASELINES, att_crnn, build_baseline, openl3_mlp, sb_cnn

#: Speech Commands' Table 1 input (T, F) and its 35 classes; every Table 1 shape is built in each model's tests.
SPEECH_COMMANDS = ((63, 80), 35)


def test_registry_lists_the_three_baselines_of_table3():
    assert BASELINES == {"sb_cnn": sb_cnn, "att_crnn": att_crnn, "openl3_mlp": openl3_mlp}


@pytest.mark.parametrize("name", ["sb_cnn", "att_crnn", "openl3_mlp"])
def test_builds_every_baseline_by_name(name, rng):
    input_shape, n_classes = SPEECH_COMMANDS
    if name == "openl3_mlp":
        input_shape = (512,)
    model = build_baseline(name, input_shape=input_shape, n_classes=n_classes)
    assert model.name == name
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, n_classes)
    probs = model.predict(rng.uniform(size=(2, *input_shape)).astype("float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_passes_keyword_arguments():
    model = build_baseline("sb_cnn", (128, 128), 10, pool_sizes=((4, 2), (4, 2)), batch_norm=False, name="sb")
    assert model.name == "sb"
    assert model.get_layer("maxpool1").pool_size == (4, 2)


def test_unknown_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"'sb_cnn', 'att_crnn', 'openl3_mlp'.*'apnet'"):
        build_baseline("apnet", (64, 64), 10)
