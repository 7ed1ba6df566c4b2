"""Tests of l2i.nmf: sparse NMF with unit-norm dictionary columns (L2I, Eq. 6)."""
import json

import librosa
import numpy as np
import pytest
import soundfile as sf

from audiodata.errors import ParameterError
from l2i.nmf import learn_dictionary, load_dictionary, nmf_activations, nmf_objective, save_dictionary


def _toy_data(rng, n_features=30, n_frames=120, n_components=4):
    """Non-negative data with a sparse non-negative structure plus noise."""
    W = rng.random((n_features, n_components)) ** 3
    H = rng.random((n_components, n_frames)) * (rng.random((n_components, n_frames)) < 0.4)
    return W @ H + 0.05 * rng.random((n_features, n_frames))


def _reference_objective(X, W, H, l1):
    """Eq. 6 with the Euclidean cost, written independently of the package."""
    return float(((X - W @ H) ** 2).sum() + l1 * H.sum())


def test_nmf_objective_matches_plain_numpy(rng):
    X, W, H = rng.random((7, 11)), rng.random((7, 3)), rng.random((3, 11))
    assert nmf_objective(X, W, H, 0.3) == pytest.approx(_reference_objective(X, W, H, 0.3), rel=1e-12)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_learn_dictionary_objective_non_increasing_and_matches_reference(rng, dtype, rtol):
    X = _toy_data(rng)
    l1 = 0.5
    reference = []
    W, H, history = learn_dictionary(
        X, 5, l1=l1, n_iter=60, tol=0.0, seed=3, dtype=dtype,
        callback=lambda i, W, H: reference.append(_reference_objective(X, W.astype(float), H.astype(float), l1)),
    )
    objective = np.array(history["objective"])
    assert len(objective) == 61 and history["n_iter"] == 60
    # The history is the objective of Eq. 6 at each iterate ...
    np.testing.assert_allclose(objective[1:], reference, rtol=rtol)
    # ... and it never increases (majorisation-minimisation), up to rounding.
    assert np.all(np.diff(objective) <= rtol * objective[0])
    assert np.all(np.diff(reference) <= rtol * objective[0])
    assert objective[-1] < 0.5 * objective[0]


def test_learn_dictionary_constraints(rng):
    X = _toy_data(rng)
    W, H, _ = learn_dictionary(X, 6, l1=0.2, n_iter=40, seed=0)
    assert W.shape == (30, 6) and H.shape == (6, 120)
    assert W.dtype == np.float32 and H.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, atol=1e-5)
    assert W.min() >= 0 and H.min() >= 0
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(H))


def test_learn_dictionary_deterministic_with_seed(rng):
    X = _toy_data(rng)
    W1, H1, h1 = learn_dictionary(X, 4, l1=0.1, n_iter=20, seed=7)
    W2, H2, h2 = learn_dictionary(X, 4, l1=0.1, n_iter=20, seed=7)
    W3, _, _ = learn_dictionary(X, 4, l1=0.1, n_iter=20, seed=8)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(H1, H2)
    assert h1["objective"] == h2["objective"]
    assert not np.allclose(W1, W3)


def test_l1_weight_makes_activations_sparser(rng):
    X = _toy_data(rng)
    _, H0, _ = learn_dictionary(X, 6, l1=0.0, n_iter=100, seed=0, dtype="float64")
    _, H1, _ = learn_dictionary(X, 6, l1=2.0, n_iter=100, seed=0, dtype="float64")
    # Same unit-norm scale for W, so ||H||_1 is comparable.
    assert H1.sum() < 0.9 * H0.sum()


def test_fixed_block_is_held_constant(rng):
    X = _toy_data(rng)
    W_noise, _, _ = learn_dictionary(X[:, :60], 3, l1=0.1, n_iter=30, seed=0, dtype="float64")
    W, H, history = learn_dictionary(X, 4, l1=0.1, n_iter=30, tol=0.0, seed=1, W_fixed=W_noise, dtype="float64")
    assert W.shape == (30, 7) and H.shape == (7, 120)
    np.testing.assert_array_equal(W[:, :3], W_noise)
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, atol=1e-12)
    assert np.all(np.diff(history["objective"]) <= 1e-10 * history["objective"][0])
    assert history["objective"][-1] == pytest.approx(nmf_objective(X, W, H, 0.1), rel=1e-10)


def test_fixed_block_must_be_unit_norm(rng):
    X = _toy_data(rng)
    with pytest.raises(ParameterError, match="unit-norm"):
        learn_dictionary(X, 2, W_fixed=2.0 * np.ones((30, 1)) / np.sqrt(30), n_iter=2)


def test_streaming_list_and_chunks_equal_concatenated(rng):
    X = _toy_data(rng)
    parts = [X[:, :50], X[:, 50:]]
    kwargs = dict(n_components=3, l1=0.3, n_iter=15, tol=0.0, seed=2, dtype="float64")
    W_a, H_a, h_a = learn_dictionary(X, **kwargs)
    W_b, H_b, h_b = learn_dictionary(parts, chunk_size=17, **kwargs)
    np.testing.assert_allclose(W_a, W_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(H_a, H_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_a["objective"], h_b["objective"], rtol=1e-9)


def test_nmf_activations_for_fixed_dictionary(rng):
    W = rng.random((20, 3))
    W /= np.linalg.norm(W, axis=0)
    H_true = rng.random((3, 40))
    X = W @ H_true
    W_before = W.copy()
    H, history = nmf_activations(X, W, l1=0.0, n_iter=400, tol=0.0, dtype="float64")
    np.testing.assert_array_equal(W, W_before)
    objective = np.array(history["objective"])
    assert len(objective) == 401
    assert np.all(np.diff(objective) <= 1e-10 * objective[0])
    assert objective[-1] == pytest.approx(nmf_objective(X, W, H), rel=1e-8)
    assert np.linalg.norm(X - W @ H) < 1e-2 * np.linalg.norm(X)
    # With a penalty: still monotone, and the penalised H is smaller.
    H_l1, history_l1 = nmf_activations(X, W, l1=1.0, n_iter=100, tol=0.0, dtype="float64")
    assert np.all(np.diff(history_l1["objective"]) <= 1e-10 * history_l1["objective"][0])
    assert H_l1.min() >= 0 and H_l1.sum() < H.sum()


def test_tol_stops_early(rng):
    X = _toy_data(rng)
    _, _, history = learn_dictionary(X, 4, l1=0.1, n_iter=5000, tol=1e-3, seed=0)
    assert history["converged"] and history["n_iter"] < 5000
    assert len(history["objective"]) == history["n_iter"] + 1


@pytest.mark.parametrize("bad, match", [
    (dict(n_components=0), "n_components"),
    (dict(l1=-1.0), "l1"),
    (dict(dtype="float16"), "dtype"),
    (dict(n_iter=0), "n_iter"),
])
def test_bad_parameters_are_rejected(rng, bad, match):
    kwargs = dict(X=rng.random((5, 8)), n_components=2)
    kwargs.update(bad)
    with pytest.raises(ParameterError, match=match):
        learn_dictionary(**kwargs)


def test_negative_or_nan_data_is_rejected(rng):
    X = rng.random((5, 8))
    X[1, 2] = -0.1
    with pytest.raises(ParameterError, match="negative"):
        learn_dictionary(X, 2)
    X[1, 2] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        learn_dictionary(X, 2)


def test_save_and_load_dictionary(tmp_path, rng):
    W = rng.random((10, 4)).astype(np.float32)
    npy, js = save_dictionary(tmp_path / "esc50" / "fold1.npy", W, {"l1": np.float32(0.5), "n_components": 4})
    assert npy.name == "fold1.npy" and js.name == "fold1.json"
    W2, params = load_dictionary(tmp_path / "esc50" / "fold1")
    np.testing.assert_array_equal(W, W2)
    assert W2.dtype == np.float32
    assert params == {"l1": 0.5, "n_components": 4}
    # A JSON that does not describe the array is refused.
    meta = json.loads(js.read_text())
    meta["shape"] = [10, 5]
    js.write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match="shape"):
        load_dictionary(npy)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dictionary(tmp_path / "nothing")
    with pytest.raises(ParameterError, match="JSON"):
        save_dictionary(tmp_path / "w", W, {"bad": object()})


#: Four ESC-10 clips of four classes (dog, rooster, rain, sneezing... by file name).
ESC10_CLIPS = ("1-100032-A-0.flac", "1-32318-A-0.flac", "2-100786-A-1.flac", "2-188822-D-40.flac")


def test_real_esc10_spectrograms(shared_data):
    """K=8 on log(1 + |STFT|) of 4 real clips: objective decreases, reconstruction is good."""
    specs = []
    for name in ESC10_CLIPS:
        y, sr = sf.read(shared_data / "ESC-50" / "audio" / name, dtype="float32", always_2d=True)
        assert sr == 44100
        specs.append(np.log1p(np.abs(librosa.stft(y.mean(axis=1), n_fft=1024, hop_length=512))))
    X = np.concatenate(specs, axis=1)
    assert X.shape == (513, 4 * 431)
    W, H, history = learn_dictionary(specs, 8, l1=0.1, n_iter=150, tol=0.0, seed=0)
    objective = np.array(history["objective"])
    assert objective[-1] < 0.15 * objective[0]
    assert np.all(np.diff(objective) <= 1e-5 * objective[0])
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, atol=1e-5)
    assert objective[-1] == pytest.approx(nmf_objective(X, W, H, 0.1), rel=1e-4)
    # Measured: 0.305 (200 iterations, seeds 0 and 1); bound with margin.
    rel_error = np.linalg.norm(X - W @ H) / np.linalg.norm(X)
    assert rel_error < 0.33


# ---------------------------------------------------------------- scale of the sparsity weight
def _le_roux_activations(X, W, sparsity, H, n_iter):
    """Le Roux et al.'s Euclidean sparse-NMF H update, ``H <- H * W^T X / (W^T W H + sparsity)``."""
    for _ in range(n_iter):
        H = H * (W.T @ X) / np.maximum(W.T @ (W @ H) + sparsity, 1e-9)
    return H


def test_l1_is_twice_le_roux_sparsity():
    from l2i.nmf import l1_from_sparsity

    assert l1_from_sparsity(0.8) == pytest.approx(1.6)
    with pytest.raises(ParameterError, match="sparsity"):
        l1_from_sparsity(-0.1)


def test_our_l1_equals_twice_le_roux_sparsity_at_the_solution(rng):
    # The authors' "sp0.8" dictionaries come from Le Roux's update; ours matches it with l1 = 2 * sparsity.
    from l2i.nmf import l1_from_sparsity

    X = _toy_data(rng)
    W = rng.random((X.shape[0], 4)) + 0.05
    W /= np.linalg.norm(W, axis=0)
    H0 = rng.random((4, X.shape[1])) + 0.1
    sparsity = 0.3
    reference = _le_roux_activations(X, W, sparsity, H0.copy(), 3000)
    ours, _ = nmf_activations(X, W, l1=l1_from_sparsity(sparsity), n_iter=3000, tol=0, dtype="float64",
                              H_init=H0.copy())
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    # Taking the authors' number as our l1 gives a different (half as sparse) solution.
    half, _ = nmf_activations(X, W, l1=sparsity, n_iter=3000, tol=0, dtype="float64", H_init=H0.copy())
    assert np.abs(half - reference).max() > 1e-2 and half.sum() > reference.sum()


def test_dictionary_config_sparsity_is_le_roux_scale(rng):
    from l2i.dictionary import learn_dataset_dictionary

    logmag = rng.random((6, 20, 12)).astype("float32")
    rows, targets = np.arange(6), np.zeros((6, 2), np.float32)
    kw = {"n_components": 3, "n_iter": 15, "tol": 0}
    W_s, _ = learn_dataset_dictionary("esc50", logmag, rows, targets, dict(kw, sparsity=0.4), seed=1)
    W_l1, _ = learn_dataset_dictionary("esc50", logmag, rows, targets, dict(kw, l1=0.8), seed=1)
    W_same, _ = learn_dataset_dictionary("esc50", logmag, rows, targets, dict(kw, l1=0.4), seed=1)
    np.testing.assert_allclose(W_s, W_l1, rtol=1e-6)
    assert not np.allclose(W_s, W_same)
    with pytest.raises(ParameterError, match="not both"):
        learn_dataset_dictionary("esc50", logmag, rows, targets, dict(kw, sparsity=0.4, l1=0.8))


@pytest.mark.parametrize("dataset", ["esc50", "sonyc_ust", "openmic"])
def test_l2i_configs_give_the_authors_sparsity(dataset):
    from l2i.training import load_config

    section = load_config(dataset)["dictionary"]
    assert section["sparsity"] == 0.8 and "l1" not in section
