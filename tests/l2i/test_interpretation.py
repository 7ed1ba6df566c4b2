"""Tests of l2i.interpretation: relevance, thresholding and Algorithm 1 of L2I (Sec. III-E)."""
import librosa
import numpy as np
import pytest
import soundfile as sf

from audiodata.errors import ParameterError
from audiodata.features import STFTParams, log_magnitude_spectrogram, logmag_to_audio
from audiodata.io import load_audio
from l2i.interpretation import (component_audio, interpret, interpretation_spectrogram, relevance,
                                relevant_components, removal_audio, remove_components, soft_mask,
                                write_interpretation)
from l2i.nmf import learn_dictionary, nmf_activations

N_FFT, HOP = 1024, 512  # L2I's log-magnitude STFT (Sec. IV-A)
STFT = STFTParams(n_fft=N_FFT, hop_length=HOP)
K = 8


@pytest.fixture(scope="module")
def esc10_clip(shared_data):
    """A real ESC-10 clip (dog), its log-magnitude spectrogram, phase, a small dictionary and activations."""
    y, sr = load_audio(shared_data / "ESC-50" / "audio" / "1-100032-A-0.flac", sr=44100)
    X, phase = log_magnitude_spectrogram(y, return_phase=True, **STFT.stft_kwargs())
    W, _, _ = learn_dictionary(X.T, K, l1=0.1, n_iter=30, seed=0)
    H, _ = nmf_activations(X.T, W, l1=0.1, n_iter=30)
    return {"y": y, "sr": sr, "X": X, "phase": phase, "W": W, "H": H}


def _components_numpy(W, H):
    """V_k = w_k h_k^T for every k, time first [shape=(K, T, F)], plain NumPy (the paper's formula, transposed)."""
    return np.einsum("fk,kt->ktf", W.astype(np.float64), H.astype(np.float64))


# --------------------------------------------------------------------------- relevance
def test_relevance_matches_numpy(rng):
    z, theta = rng.random(10), rng.standard_normal((10, 5))
    for c in range(5):
        contrib = np.array([z[k] * theta[k, c] for k in range(10)])
        expected = contrib / np.max(np.abs(contrib))
        r = relevance(z, theta, c)
        np.testing.assert_allclose(r, expected, rtol=1e-12)
        assert np.max(np.abs(r)) == pytest.approx(1.0)


def test_relevance_batched_equals_per_sample(rng):
    z, theta, c = rng.random((6, 10)), rng.standard_normal((10, 4)), rng.integers(0, 4, 6)
    r = relevance(z, theta, c)
    assert r.shape == (6, 10)
    for b in range(6):
        np.testing.assert_allclose(r[b], relevance(z[b], theta, int(c[b])), rtol=1e-12)
    np.testing.assert_allclose(relevance(z, theta, 2), relevance(z, theta, np.full(6, 2)))
    # Class-specific attention: one pooled vector per class, row c[b] is used.
    z_cs = rng.random((6, 4, 10))
    r_cs = relevance(z_cs, theta, c)
    for b in range(6):
        contrib = z_cs[b, c[b]] * theta[:, c[b]]
        np.testing.assert_allclose(r_cs[b], contrib / np.abs(contrib).max(), rtol=1e-12)


def test_relevance_zero_contributions_and_bad_input(rng):
    np.testing.assert_array_equal(relevance(np.zeros(4), rng.random((4, 3)), 1), np.zeros(4))
    with pytest.raises(ParameterError, match="outside"):
        relevance(rng.random(4), rng.random((4, 3)), 3)
    with pytest.raises(ParameterError, match="theta"):
        relevance(rng.random(4), rng.random((3, 4)), 0)


def test_relevant_components_threshold_is_strict():
    r = np.array([1.0, 0.2, -0.9, 0.5, 0.2000001, 0.1])
    np.testing.assert_array_equal(relevant_components(r, 0.2), [0, 3, 4])
    np.testing.assert_array_equal(relevant_components(r, 0.0), [0, 1, 3, 4, 5])
    batched = relevant_components(np.stack([r, -r]), 0.2)
    np.testing.assert_array_equal(batched[0], [0, 3, 4])
    np.testing.assert_array_equal(batched[1], [2])
    with pytest.raises(ParameterError, match="tau"):
        relevant_components(r, 1.0)


# --------------------------------------------------------------------------- masks
def test_soft_mask_matches_paper_ratio_and_is_partition_of_unity(rng):
    W, H = rng.random((20, 5)), rng.random((5, 9))
    V = _components_numpy(W, H)
    for L in ([0], [1, 3], [4, 2, 0]):
        # The paper's ratio, up to the regulariser eps = 1e-10 (values of V are O(1) here) ...
        np.testing.assert_allclose(soft_mask(W, H, L), V[L].sum(0) / V.sum(0), atol=1e-9)
        # ... and exactly the documented regularised form.
        np.testing.assert_allclose(soft_mask(W, H, L, eps=1e-3), (V[L].sum(0) + 1e-3 * len(L) / 5) / (V.sum(0) + 1e-3),
                                   rtol=1e-12)
    total = sum(soft_mask(W, H, [k]) for k in range(5))
    np.testing.assert_allclose(total, 1.0, rtol=1e-14)
    # Bins where W H is zero (a frame without activation) are split evenly, so the masks still sum to 1.
    H[:, 3] = 0
    np.testing.assert_allclose(soft_mask(W, H, [1])[3], 1 / 5)
    np.testing.assert_allclose(soft_mask(W, H, None), 1.0)


@pytest.mark.parametrize("mask_domain", ["logmag", "magnitude"])
def test_interpretation_spectrogram_matches_numpy(rng, mask_domain):
    W, H, X = rng.random((20, 5)), rng.random((5, 9)), 3 * rng.random((9, 20))
    V = _components_numpy(W, H)
    L = [1, 4]
    mask = V[L].sum(0) / V.sum(0)
    expected = mask * X if mask_domain == "logmag" else np.log(1 + mask * (np.exp(X) - 1))
    X_int = interpretation_spectrogram(X, W, H, L, mask_domain=mask_domain)
    np.testing.assert_allclose(X_int, expected, rtol=1e-8, atol=1e-9)
    X_2 = remove_components(X, W, H, L, mask_domain=mask_domain)
    rest = V[[0, 2, 3]].sum(0) / V.sum(0)
    expected_2 = X - mask * X if mask_domain == "logmag" else np.log(1 + rest * (np.exp(X) - 1))
    np.testing.assert_allclose(X_2, expected_2, rtol=1e-8, atol=1e-9)


def test_bad_shapes_are_rejected(rng):
    W, H, X = rng.random((20, 5)), rng.random((5, 9)), rng.random((9, 20))
    with pytest.raises(ParameterError, match="frequency first"):
        interpretation_spectrogram(X.T, W, H, [0])
    with pytest.raises(ParameterError, match="frames"):
        interpretation_spectrogram(X[:8], W, H, [0])
    with pytest.raises(ParameterError, match="non-negative"):
        interpretation_spectrogram(X, W, -H, [0])
    with pytest.raises(ParameterError, match=r"\[0, 5\)"):
        interpretation_spectrogram(X, W, H, [5])
    with pytest.raises(ParameterError, match="distinct"):
        interpretation_spectrogram(X, W, H, [1, 1])
    with pytest.raises(ParameterError, match="mask_domain"):
        interpretation_spectrogram(X, W, H, [0], mask_domain="power")
    with pytest.raises(ParameterError, match="phase"):
        interpret(X, rng.random((9, 21)), W, H, [0], stft=STFTParams(n_fft=38, hop_length=19))


# --------------------------------------------------------------------------- audio, real clip
@pytest.mark.parametrize("mask_domain", ["logmag", "magnitude"])
def test_all_components_give_back_the_input(esc10_clip, mask_domain):
    """Round trip of Algorithm 1 on a real ESC-10 clip with every component selected.

    The masks sum to 1 in every bin (up to ~1e-16 in float64), so X_int = X and
    the only errors left are those of the plain STFT -> ISTFT round trip with X
    and the phase stored in float32 (relative rounding 6e-8, times
    X <= 4.5 after exp: ~3e-7 of each bin's magnitude) plus the float32 output.
    The measured error is ~1e-7 of full scale; we require the result to equal
    the plain inversion of (X, phase) to 1e-6 and the input audio to 1e-5
    absolute (clip peak ~1), i.e. a reconstruction SNR above 80 dB.
    """
    d = esc10_clip
    y = d["y"]
    assert np.mean(d["H"].T @ d["W"].T == 0) > 0.1  # the eps rule is exercised: many bins have W H = 0
    x_int = interpret(d["X"], d["phase"], d["W"], d["H"], list(range(K)), stft=STFT,
                      length=y.size, mask_domain=mask_domain)
    assert x_int.shape == y.shape and x_int.dtype == np.float32
    np.testing.assert_allclose(x_int, logmag_to_audio(d["X"], d["phase"], HOP, N_FFT, length=y.size), atol=1e-6)
    np.testing.assert_allclose(x_int, y, atol=1e-5)
    assert 10 * np.log10(np.sum(y.astype(float) ** 2) / np.sum((x_int - y).astype(float) ** 2)) > 80


def test_component_audio_matches_librosa_and_sums_in_magnitude_domain(esc10_clip):
    d = esc10_clip
    y, X, P, W, H = d["y"], d["X"], d["phase"], d["W"], d["H"]
    V = _components_numpy(W, H)
    denominator = V.sum(0) + 1e-10
    # Algorithm 1 lines 3-4, written out with librosa: mask the log-magnitude, undo the log, ISTFT.
    for k in (0, 5):
        X_k = (V[k] + 1e-10 / K) / denominator * X
        expected = librosa.istft((np.expm1(X_k) * np.exp(1j * P)).T, hop_length=HOP, n_fft=N_FFT, length=y.size)
        x_k = component_audio(X, P, W, H, [k], stft=STFT, length=y.size)
        assert x_k.shape == (1, y.size)
        np.testing.assert_allclose(x_k[0], expected, atol=1e-6)
    # With masks on |STFT| the ISTFT is linear in the masked spectra, so the components add up to the input.
    x_all = component_audio(X, P, W, H, range(K), stft=STFT, length=y.size,
                            mask_domain="magnitude")
    np.testing.assert_allclose(x_all.sum(axis=0), y, atol=1e-5)
    # Removing a set leaves the interpretation of its complement.
    np.testing.assert_allclose(removal_audio(X, P, W, H, [0, 1, 2], stft=STFT, length=y.size),
                               interpret(X, P, W, H, [3, 4, 5, 6, 7], stft=STFT, length=y.size),
                               atol=1e-6)
    np.testing.assert_array_equal(removal_audio(X, P, W, H, range(K), stft=STFT, length=y.size),
                                  0.0)


def test_write_interpretation(esc10_clip, tmp_path, rng):
    d = esc10_clip
    y, X, P, W, H = d["y"], d["X"], d["phase"], d["W"], d["H"]
    r = relevance(H.mean(axis=1), rng.standard_normal((K, 3)), 1)
    L = relevant_components(r, 0.05)
    assert L.size >= 2
    paths = write_interpretation(tmp_path / "out", X, P, W, H, L, stft=STFTParams(N_FFT, HOP, sr=d["sr"]),
                                 relevance=r, tau=0.05, title="dog", length=y.size)
    x_int = interpret(X, P, W, H, L, stft=STFT, length=y.size)
    written, sr = sf.read(paths["interpretation"], dtype="float32")
    assert sr == d["sr"]
    np.testing.assert_allclose(written, np.clip(x_int, -1, 1), atol=1.5 / 2 ** 15)  # 16-bit PCM
    assert sorted(paths["components"]) == L.tolist()
    for k, path in paths["components"].items():
        assert path.name == f"component_{k}.wav"
        np.testing.assert_allclose(sf.read(path, dtype="float32")[0],
                                   np.clip(component_audio(X, P, W, H, [k], stft=STFT,
                                                           length=y.size)[0], -1, 1), atol=1.5 / 2 ** 15)
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- STFT parameters
def test_stft_params_from_config_and_validation():
    """One value for the STFT of the log-magnitude features, from the dataset's configuration, checked."""
    from audiodata.features import load_feature_params

    params = load_feature_params("esc50", "logmag")
    stft = STFTParams.from_feature_params(params)
    assert (stft.n_fft, stft.hop_length, stft.win_length, stft.sr) == (params["n_fft"], params["hop_length"],
                                                                        params["win_length"], params["sr"])
    assert stft.center is True and stft.window == "hann" and stft.n_bins == 1 + params["n_fft"] // 2
    assert stft == STFTParams(np.int64(params["n_fft"]), params["hop_length"], win_length=params["win_length"],
                              sr=params["sr"])
    with pytest.raises(ParameterError, match="hop_length must be a positive integer"):
        STFTParams(n_fft=512, hop_length=0)
    with pytest.raises(ParameterError, match="n_fft"):
        STFTParams(n_fft=512.0, hop_length=128)
    with pytest.raises(ParameterError, match="win_length must be at most n_fft=512"):
        STFTParams(n_fft=512, hop_length=128, win_length=1024)
    with pytest.raises(ParameterError, match="center"):
        STFTParams(n_fft=512, hop_length=128, center="yes")
    with pytest.raises(ParameterError, match="lack"):
        STFTParams.from_feature_params({"n_fft": 512})
    X = np.zeros((4, 257))
    with pytest.raises(ParameterError, match="n_fft=1024 gives 513"):
        interpret(X, X, np.ones((257, 2)), np.ones((2, 4)), [0], stft=STFT)
    with pytest.raises(ParameterError, match="STFTParams"):
        interpret(X, X, np.ones((257, 2)), np.ones((2, 4)), [0], stft={"n_fft": 512, "hop_length": 256})
