"""Fixtures of the baseline tests: a tiny batch of real FSDD clips, an overfitting check, a .keras round trip."""
import keras
import numpy as np
import pytest

from audiodata.features import compute_features, load_feature_params


@pytest.fixture(scope="session")
def fsdd_batch(shared_data):
    """Eight real FSDD clips (digits 0-7, speaker george, training index 5): min-max scaled log-mels and labels.

    Returns ``(x, y)``: ``x`` float32 ``(8, 63, 64)`` in [0, 1], ``y`` int ``(8,)``.
    """
    params = load_feature_params("fsdd", "mel_sb_cnn")
    folder = shared_data / "fsdd" / "recordings"
    x = np.stack([compute_features(folder / f"{digit}_george_5.wav", params) for digit in range(8)])
    x = x.astype("float32")
    x = (x - x.min()) / (x.max() - x.min())
    return x, np.arange(8)


@pytest.fixture
def assert_overfits():
    """A check that a model's training loss is finite and goes down over a few Adam steps on one batch."""

    def check(model, x, y, steps=12, learning_rate=1e-3):
        keras.utils.set_random_seed(0)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
        losses = model.fit(x, y, batch_size=len(x), epochs=steps, shuffle=False, verbose=0).history["loss"]
        assert np.all(np.isfinite(losses)), losses
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
        return losses

    return check


@pytest.fixture
def assert_reloads(tmp_path):
    """A check that a model saved to .keras reloads without custom_objects and predicts the same."""

    def check(model, x):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        reloaded = keras.models.load_model(path)
        np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        return reloaded

    return check
