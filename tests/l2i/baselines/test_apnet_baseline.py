"""Tests of l2i.baselines.apnet_baseline on real ESC-10 log-mel features."""
import keras
import numpy as np
import pytest

from apnet import APNet
from apnet.training import compile_apnet
from l2i.baselines import apnet_baseline


@pytest.fixture(scope="module")
def apnet_mel(esc10_mel):
    """The shared 40-clip log-mel, first 64 frames, min-max scaled to [-1, 1] -> (40, 64, 128)."""
    x, y = esc10_mel
    x = x[:, :64]
    return (2 * (x - x.min()) / (x.max() - x.min()) - 1).astype("float32"), y


def test_prototypes_equal_components_and_training_decreases_the_loss(apnet_mel, tmp_path):
    x, y = apnet_mel
    keras.utils.set_random_seed(0)
    model = apnet_baseline((64, 128), n_classes=10, n_components=16, n_filters=8)
    assert isinstance(model, APNet) and model.n_prototypes == 16 and model.name == "apnet_baseline"
    compile_apnet(model, alpha=10, beta=5, gamma=5)
    targets = {"probabilities": y, "reconstruction": x, "prototypes": np.zeros((len(x), 1), "float32")}
    history = model.fit(x, targets, batch_size=20, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    probs, reconstruction, distances = model.predict(x[:3], verbose=0)
    assert probs.shape == (3, 10) and reconstruction.shape == (3, 64, 128) and distances.shape == (3, 16, 32)
    model.save(tmp_path / "apnet.keras")
    reloaded = keras.models.load_model(tmp_path / "apnet.keras")
    np.testing.assert_allclose(reloaded.predict(x[:3], verbose=0)[0], probs, rtol=1e-5, atol=1e-6)


def test_rejects_bad_component_count():
    with pytest.raises(ValueError, match="n_components"):
        apnet_baseline((64, 64), n_classes=10, n_components=0)
