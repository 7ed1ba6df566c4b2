"""Tests of l2i.baselines.TDLNMFClassifier on real ESC-10 log-magnitude features."""
import keras
import numpy as np
import pytest

from audiodata.errors import ParameterError
from l2i.baselines import NMFClassifier, TDLNMFClassifier


@pytest.fixture(scope="module")
def trained(esc10_logmag):
    X, y = esc10_logmag
    W0 = NMFClassifier(n_components=16, n_iter_dictionary=60, n_iter_activations=10).fit(X, y).dictionary_
    model = TDLNMFClassifier(n_components=16, n_iter=15, epochs=10, batch_size=10, learning_rate=1e-2,
                             dictionary=W0, seed=0).fit(X, y)
    return model, W0


def test_loss_decreases_and_accuracy_beats_chance(trained, esc10_logmag):
    model, _ = trained
    X, y = esc10_logmag
    loss = model.history_["loss"]
    assert loss[-1] < 0.7 * loss[0]
    assert model.score(X, y) > 0.5  # chance: 0.1 (training clips)
    assert model.predict_proba(X).shape == (40, 10)


def test_dictionary_is_updated_and_stays_non_negative_unit_norm(trained):
    model, W0 = trained
    np.testing.assert_allclose(model.initial_dictionary_, W0)
    W = model.dictionary_
    assert W.shape == (513, 16) and W.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, rtol=1e-5)
    assert np.abs(W - W0).max() > 1e-3, "the classification loss must move the dictionary"


def test_features_are_mean_encoder_activations(trained, esc10_logmag):
    model, _ = trained
    X, _ = esc10_logmag
    H = keras.ops.convert_to_numpy(model.model_.get_layer("nmf_activations")(X[:3]))
    np.testing.assert_allclose(model.transform(X[:3]), H.mean(axis=2), rtol=1e-4, atol=1e-6)


def test_keras_model_round_trip(trained, esc10_logmag, tmp_path):
    model, _ = trained
    X, _ = esc10_logmag
    path = tmp_path / "tdl.keras"
    model.model_.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(X[:5], verbose=0), model.predict_proba(X[:5]), rtol=1e-5,
                               atol=1e-6)


def test_multilabel_masked_training_runs(esc10_logmag):
    X, y = esc10_logmag
    Y = y.copy()
    Y[::2, 1] = np.nan
    model = TDLNMFClassifier(n_components=4, n_iter=5, n_iter_dictionary=20, epochs=2, batch_size=20,
                             multilabel=True).fit(X, Y)
    assert np.all(np.isfinite(model.history_["loss"]))
    assert np.all((model.predict_proba(X) > 0) & (model.predict_proba(X) < 1))


def test_rejects_clips_of_different_lengths():
    with pytest.raises(ParameterError, match="length"):
        TDLNMFClassifier(n_components=2).fit([np.ones((5, 6), "float32"), np.ones((4, 6), "float32")], [0, 1])
