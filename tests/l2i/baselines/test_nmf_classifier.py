"""Tests of l2i.baselines.NMFClassifier and sweep_dictionary_sizes on real ESC-10 log-magnitude features."""
import numpy as np
import pytest

from audiodata.errors import ParameterError
from l2i.baselines import NMFClassifier, sweep_dictionary_sizes

FAST = {"n_iter_dictionary": 60, "n_iter_activations": 60}


def test_fit_learns_a_unit_norm_dictionary_and_beats_chance(esc10_logmag):
    X, y = esc10_logmag
    model = NMFClassifier(n_components=16, **FAST).fit(X, y)
    W = model.dictionary_
    assert W.shape == (513, 16) and W.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, rtol=1e-4)
    probabilities = model.predict_proba(X)
    assert probabilities.shape == (40, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.score(X, y) > 0.5  # chance: 0.1 (training clips)
    assert model.score(X, np.argmax(y, axis=1)) == model.score(X, y)  # integer labels work too


def test_features_are_time_averaged_activations_and_the_readout_is_logistic_regression(esc10_logmag):
    from sklearn.linear_model import LogisticRegression

    X, y = esc10_logmag
    model = NMFClassifier(n_components=8, **FAST).fit(X, y)
    Z = model.transform(X)
    assert Z.shape == (40, 8) and Z.min() >= 0
    # z of a clip reconstructs its mean spectrum: W z ~ mean_t X (NMF fit, averaged over time).
    relative = np.linalg.norm(Z @ model.dictionary_.T - X.mean(axis=1)) / np.linalg.norm(X.mean(axis=1))
    assert relative < 0.5
    reference = LogisticRegression(max_iter=1000, random_state=0).fit((Z - Z.mean(0)) / Z.std(0), y.argmax(1))
    agreement = np.mean(reference.predict((Z - Z.mean(0)) / Z.std(0)) == model.predict(X))
    assert agreement > 0.95


def test_multilabel_targets_with_unannotated_labels(esc10_logmag):
    X, y = esc10_logmag
    Y = y.copy()
    Y[::3, 0] = np.nan  # not annotated
    model = NMFClassifier(n_components=8, multilabel=True, **FAST).fit(X, Y)
    probabilities = model.predict_proba(X)
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert 0.3 < model.score(X, Y) <= 1.0  # macro-AUPRC over annotated labels


def test_sweep_returns_every_size_and_the_best(esc10_logmag):
    X, y = esc10_logmag
    out = sweep_dictionary_sizes(NMFClassifier(**FAST), X[::2], y[::2], X[1::2], y[1::2], sizes=(4, 12))
    assert [run["n_components"] for run in out["runs"]] == [4, 12]
    assert out["best"]["score"] == max(run["score"] for run in out["runs"])
    assert out["best"]["model"].dictionary_.shape[1] == out["best"]["n_components"]
    with pytest.raises(ParameterError, match="dictionary"):
        sweep_dictionary_sizes(NMFClassifier(dictionary=np.ones((513, 4))), X, y, X, y, sizes=(4,))


def test_rejects_bad_input():
    with pytest.raises(ParameterError, match="non-negative"):
        NMFClassifier(n_components=2).fit(-np.ones((2, 5, 6), "float32"), [0, 1])
    with pytest.raises(ValueError, match="n_components"):
        NMFClassifier(n_components=0)
    with pytest.raises(ParameterError, match="not fitted"):
        NMFClassifier().predict(np.ones((1, 5, 6), "float32"))
