"""Tests of l2i.metrics: fidelity metrics and faithfulness (L2I, Sec. IV-C)."""
import numpy as np
import pytest
from sklearn.metrics import f1_score

from audiodata.errors import ParameterError
from audiodata.features import STFTParams, log_magnitude_spectrogram
from l2i.interpretation import relevant_components, removal_audio
from l2i.metrics import (PRC_THRESHOLDS, auprc, binarize, faithfulness, faithfulness_sweep, ff_median, fidelity_scores,
                         ignored_classes, max_f1, random_baseline, random_baseline_components, random_baseline_size,
                         random_components, removal_drops, target_thresholds, task_scores, threshold_auprc,
                         threshold_max_f1, top_k_fidelity, weighted_f1)
from l2i.nmf import nmf_activations


# --------------------------------------------------------------------------- NumPy references
def _average_precision_numpy(t, s):
    """AP = mean over positives of the precision at their rank (continuous scores, no ties)."""
    order = np.argsort(-s)
    hits = t[order] == 1
    precision_at_rank = np.cumsum(hits) / np.arange(1, t.size + 1)
    return precision_at_rank[hits].mean()


def _max_f1_numpy(t, s):
    best = 0.0
    for threshold in np.unique(s):
        p = s >= threshold
        tp = np.sum(p & (t == 1))
        best = max(best, 2 * tp / (p.sum() + t.sum()))
    return best


# --------------------------------------------------------------------------- fidelity
def test_top_k_fidelity_matches_argsort(rng):
    f_probs, interp = rng.random((200, 10)), rng.random((200, 10))
    pred = f_probs.argmax(1)
    for k in (1, 3, 5):
        expected = np.mean([pred[i] in np.argsort(-interp[i])[:k] for i in range(200)])
        assert top_k_fidelity(f_probs, interp, k) == pytest.approx(expected)
    assert top_k_fidelity(f_probs, f_probs, 1) == 1.0
    # Ties count in favour: class 0 shares the top score with class 1.
    assert top_k_fidelity(np.array([[1.0, 0.0, 0.0]]), np.array([[0.4, 0.4, 0.2]]), 1) == 1.0
    with pytest.raises(ParameterError, match="k must be"):
        top_k_fidelity(f_probs, interp, 0)


def test_auprc_matches_numpy_and_ignores_classes(rng):
    y_true = (rng.random((300, 6)) < 0.3).astype(int)
    y_score = np.clip(0.4 * y_true + rng.random((300, 6)), 0, None)
    per_class = [_average_precision_numpy(y_true[:, j], y_score[:, j]) for j in range(6)]
    assert auprc(y_true, y_score, "macro") == pytest.approx(np.mean(per_class), rel=1e-12)
    assert auprc(y_true, y_score, "micro") == pytest.approx(
        _average_precision_numpy(y_true.ravel(), y_score.ravel()), rel=1e-12)
    keep = [0, 1, 3, 4, 5]
    assert auprc(y_true, y_score, "macro", ignore=[2]) == pytest.approx(np.mean([per_class[j] for j in keep]))
    assert auprc(y_true, y_score, "micro", ignore=[2]) == pytest.approx(
        _average_precision_numpy(y_true[:, keep].ravel(), y_score[:, keep].ravel()), rel=1e-12)
    y_true[:, 4] = 0
    with pytest.warns(UserWarning, match=r"\[4\]"):
        assert auprc(y_true, y_score) == pytest.approx(np.mean([per_class[j] for j in (0, 1, 2, 3, 5)]))
    with pytest.raises(ParameterError, match="only 0 and 1"):
        auprc(y_score, y_score)


def test_max_f1_matches_threshold_search(rng):
    y_true = (rng.random((150, 4)) < 0.4).astype(int)
    y_score = 0.5 * y_true + rng.random((150, 4))
    assert max_f1(y_true, y_score) == pytest.approx(_max_f1_numpy(y_true.ravel(), y_score.ravel()))
    assert max_f1(y_true, y_score, "macro", ignore=[1]) == pytest.approx(
        np.mean([_max_f1_numpy(y_true[:, j], y_score[:, j]) for j in (0, 2, 3)]))


def test_weighted_f1_hand_computed_and_against_sklearn(rng):
    # One class, 6 annotated samples: 2 positives, 4 negatives; one false positive, one true positive.
    t = np.array([[1], [1], [0], [0], [0], [0]])
    p = np.array([[1], [0], [1], [0], [0], [0]])
    f1_pos = 2 * 1 / (2 + 2)          # tp=1, |true|=2, |pred|=2
    f1_neg = 2 * 3 / (4 + 4)          # tn=3, |true neg|=4, |pred neg|=4
    assert weighted_f1(t, p) == pytest.approx((2 * f1_pos + 4 * f1_neg) / 6)
    # Only annotated labels count: unmasking a wrong prediction changes nothing when masked out.
    mask = np.ones_like(t, dtype=bool)
    t2, p2 = np.vstack([t, [[1]]]), np.vstack([p, [[0]]])
    assert weighted_f1(t2, p2, np.vstack([mask, [[False]]])) == pytest.approx(weighted_f1(t, p))

    y_true, y_pred = (rng.random((120, 5)) < 0.5).astype(int), (rng.random((120, 5)) < 0.5).astype(int)
    mask = rng.random((120, 5)) < 0.6
    expected = [f1_score(y_true[mask[:, j], j], y_pred[mask[:, j], j], average="weighted") for j in range(5)]
    score, per_class = weighted_f1(y_true, y_pred, mask, return_per_class=True)
    np.testing.assert_allclose(per_class, expected, rtol=1e-12)
    assert score == pytest.approx(np.mean(expected))
    assert weighted_f1(y_true, y_pred, mask, ignore=[0, 3]) == pytest.approx(np.mean([expected[j] for j in (1, 2, 4)]))


def test_binarize():
    np.testing.assert_array_equal(binarize([[0.2, 0.6], [0.5, 0.9]]), [[0, 1], [0, 1]])
    np.testing.assert_array_equal(binarize([[0.2, 0.6]], threshold=[0.1, 0.7]), [[1, 0]])


# --------------------------------------------------------------------------- faithfulness, constructed case
SR, N_FFT, HOP = 16000, 512, 256
STFT = STFTParams(n_fft=N_FFT, hop_length=HOP)
FREQS = (500.0, 2000.0, 5000.0, 7000.0)  # centres of the four components; the signal has no 7 kHz tone
BAND = (4500.0, 5500.0)                  # the toy classifier listens only here


@pytest.fixture(scope="module")
def toy():
    """Three tones, a dictionary of Gaussian bumps at the tones (plus one at an empty band), NMF activations."""
    t = np.arange(SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 2000 * t)
         + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    X, phase = log_magnitude_spectrogram(y, return_phase=True, **STFT.stft_kwargs())
    bins = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    W = np.stack([np.exp(-0.5 * ((bins - f) / 150.0) ** 2) for f in FREQS], axis=1)
    W /= np.linalg.norm(W, axis=0)
    H, _ = nmf_activations(X.T, W.astype(np.float32), n_iter=100)
    reference = _band_energy(y[None])[0]

    def classify(batch):
        """p(class 1) = E / (E + E_0): energy E in BAND against the clean input's band energy E_0."""
        e = _band_energy(batch)
        p = e / (e + reference)
        return np.stack([1 - p, p], axis=1)

    return {"y": y, "X": X, "phase": phase, "W": W, "H": H.astype(np.float64), "classify": classify}


def _band_energy(batch):
    spectrum = np.abs(np.fft.rfft(batch, axis=1)) ** 2
    freqs = np.fft.rfftfreq(batch.shape[1], 1 / SR)
    return spectrum[:, (freqs >= BAND[0]) & (freqs <= BAND[1])].sum(axis=1)


def _ff(toy, components, **kw):
    return faithfulness(toy["classify"], toy["X"], toy["phase"], toy["W"], toy["H"], components, 1,
                        stft=STFT, length=toy["y"].size, **kw)


@pytest.mark.parametrize("mask_domain", ["logmag", "magnitude"])
def test_faithfulness_sign_on_constructed_case(toy, mask_domain):
    # The input itself scores p = 1/2 (to the resynthesis error).
    p_input = toy["classify"](toy["y"][None])[0, 1]
    assert p_input == pytest.approx(0.5)
    # Removing the component covering the band the classifier listens to: a large drop.
    # (p can fall from 1/2 to at most 0; we measure ~0.49999.)
    ff_relevant = _ff(toy, [2], mask_domain=mask_domain)
    assert ff_relevant > 0.45
    # Removing components elsewhere (a tone outside the band, an empty band): no change.
    for irrelevant in ([0], [1], [3], [0, 1, 3]):
        assert abs(_ff(toy, irrelevant, mask_domain=mask_domain)) < 1e-3  # measured <= 5e-5
    # Removing nothing: exactly zero (f(x) is evaluated on the resynthesised input by default).
    assert _ff(toy, [], mask_domain=mask_domain) == 0.0


def test_faithfulness_equals_definition(toy):
    """FF = f(x)_c - f(x_2)_c, with x_2 the removal audio; with the original audio passed as x."""
    x_2 = removal_audio(toy["X"], toy["phase"], toy["W"], toy["H"], [2, 3], stft=STFT,
                        length=toy["y"].size)
    p = toy["classify"](np.stack([toy["y"], x_2]))[:, 1]
    assert _ff(toy, [2, 3], x=toy["y"]) == pytest.approx(p[0] - p[1], rel=1e-12)


def test_faithfulness_sweep_matches_single_evaluations(toy):
    r = np.array([0.1, 0.3, 1.0, -0.5])
    taus = [0.05, 0.2, 0.5, 0.9, 0.2]
    ff, n_removed = faithfulness_sweep(toy["classify"], toy["X"], toy["phase"], toy["W"], toy["H"], r, 1, taus,
                                       stft=STFT, length=toy["y"].size)
    np.testing.assert_array_equal(n_removed, [3, 2, 1, 1, 2])
    expected = [_ff(toy, relevant_components(r, tau)) for tau in taus]
    np.testing.assert_allclose(ff, expected, rtol=1e-12, atol=1e-15)
    assert np.all(ff > 0.3)


def test_random_baseline_draws_only_non_relevant_components(toy):
    draws = [random_components(10, 3, exclude=[1, 4], seed=s) for s in range(50)]
    for d in draws:
        assert d.size == 3 and np.unique(d).size == 3 and not np.isin(d, [1, 4]).any()
    np.testing.assert_array_equal(random_components(10, 3, exclude=[1, 4], seed=7), draws[7])
    assert len({tuple(d) for d in draws}) > 10
    with pytest.raises(ParameterError, match="size"):
        random_components(5, 4, exclude=[0, 1])

    ff, removed = random_baseline(toy["classify"], toy["X"], toy["phase"], toy["W"], toy["H"], 1, relevant=[2],
                                  n_remove=2, seed=0, stft=STFT, length=toy["y"].size)
    assert removed.size == 2 and 2 not in removed
    assert ff == pytest.approx(_ff(toy, removed), rel=1e-12, abs=1e-15)
    assert abs(ff) < 0.01  # the relevant component survives, so the probability does not drop


def test_ff_median():
    ff = np.array([0.5, -0.1, 0.2, np.nan, 0.3, 0.0])
    assert ff_median(ff) == pytest.approx(np.median([0.5, -0.1, 0.2, 0.3, 0.0]))
    per_tau = np.stack([ff, 2 * ff], axis=1)
    np.testing.assert_allclose(ff_median(per_tau), [0.2, 0.4])
    classes = np.array([0, 0, 1, 1, 2, 2])
    assert ff_median(ff, classes) == pytest.approx({0: 0.2, 1: 0.2, 2: 0.15})
    assert set(ff_median(ff, classes, ignore=[1])) == {0, 2}


# --------------------------------------------------------------------------- the authors' SONYC-UST metric
def _authors_prc_numpy(target, score, thresholds):
    """Per-class and pooled curve of the authors' calc_PRC_metrics, written as plain loops (sklearn's auc)."""
    from sklearn.metrics import auc

    thresholds = sorted(thresholds, reverse=True)
    n_classes = target.shape[1]
    tp = np.zeros((len(thresholds), n_classes))
    fp, fn = np.zeros_like(tp), np.zeros_like(tp)
    for k, t in enumerate(thresholds):
        for j in range(n_classes):
            pred = score[:, j] > t
            tp[k, j] = np.sum(pred & (target[:, j] == 1))
            fp[k, j] = np.sum(pred & (target[:, j] == 0))
            fn[k, j] = np.sum(~pred & (target[:, j] == 1))
    macro = []
    for j in range(n_classes):
        p = [1.0] + list((tp[:, j] + 1e-9) / (tp[:, j] + fp[:, j] + 1e-9)) + [0.0]
        r = [0.0] + list(tp[:, j] / (tp[:, j] + fn[:, j])) + [1.0]
        macro.append(auc(r, p))
    TP, FP, FN = tp.sum(1), fp.sum(1), fn.sum(1)
    p = np.array([1.0] + list((1e-9 + TP) / (1e-9 + TP + FP)) + [0.0])
    r = np.array([0.0] + list((1e-9 + TP) / (1e-9 + TP + FN)) + [1.0])
    return np.array(macro), auc(r, p), np.max(2 * p * r / (p + r))


def test_threshold_auprc_hand_computed():
    # one class; thresholds 0.8, 0.5, 0.2 give (recall, precision) = (1/2, 1), (1/2, 1/2), (1, 2/3);
    # with the frame (0, 1) ... (1, 0): area = 1/2 * (1 + 1) / 2 + 0 + 1/2 * (1/2 + 2/3) / 2 + 0 = 19/24
    y = np.array([[1], [1], [0], [0]])
    s = np.array([[0.9], [0.4], [0.7], [0.1]])
    for average in ("macro", "micro"):
        assert threshold_auprc(y, s, average, thresholds=(0.2, 0.8, 0.5)) == pytest.approx(19 / 24, abs=1e-8)
    # F1 at the three thresholds: 2/3, 1/2, 4/5
    assert threshold_max_f1(y, s, thresholds=(0.8, 0.5, 0.2)) == pytest.approx(0.8, abs=1e-8)


def test_threshold_auprc_matches_the_authors_loops(rng):
    target = (rng.random((60, 8)) > 0.7).astype(int)
    score = np.clip(0.5 * target + 0.6 * rng.random((60, 8)), 0, 1)
    macro, micro, f1 = _authors_prc_numpy(target, score, PRC_THRESHOLDS)
    assert threshold_auprc(target, score, "macro") == pytest.approx(macro.mean(), abs=1e-12)
    assert threshold_auprc(target, score, "micro") == pytest.approx(micro, abs=1e-12)
    assert threshold_max_f1(target, score) == pytest.approx(f1, abs=1e-12)
    keep = [0, 1, 3, 4, 5, 6, 7]
    assert threshold_auprc(target, score, "macro", ignore=[2]) == pytest.approx(macro[keep].mean(), abs=1e-12)
    # a class without a positive target: left out of the macro mean (the authors' recall would be NaN)
    target[:, 5] = 0
    macro, _, _ = _authors_prc_numpy(target, score, PRC_THRESHOLDS)
    with pytest.warns(UserWarning, match=r"\[5\]"):
        value = threshold_auprc(target, score, "macro")
    assert np.isnan(macro[5]) and value == pytest.approx(np.nanmean(macro), abs=1e-12)
    with pytest.raises(ParameterError, match="undefined"):
        threshold_auprc(np.zeros((3, 2), int), np.ones((3, 2)), "micro")


def test_auprc_with_mask_matches_numpy(rng):
    y = (rng.random((40, 3)) > 0.5).astype(int)
    s = rng.random((40, 3))
    mask = rng.random((40, 3)) > 0.3
    expected = np.mean([_average_precision_numpy(y[mask[:, j], j], s[mask[:, j], j]) for j in range(3)])
    assert auprc(y, s, "macro", mask=mask) == pytest.approx(expected, abs=1e-12)
    assert auprc(y, s, "micro", mask=mask) == pytest.approx(_average_precision_numpy(y[mask], s[mask]), abs=1e-12)


def test_fidelity_scores_per_dataset():
    f = np.array([[0.55, 0.9, 0.1], [0.7, 0.2, 0.8], [0.2, 0.65, 0.4], [0.65, 0.1, 0.3]])
    g = np.array([[0.6, 0.8, 0.2], [0.9, 0.3, 0.7], [0.1, 0.7, 0.6], [0.4, 0.2, 0.1]])
    assert fidelity_scores("esc10", "abc", False, f, g) == {"top1": 0.75}
    assert fidelity_scores("openmic", "abc", True, f, g) == {"weighted_f1": weighted_f1(binarize(f), binarize(g))}
    classes = ("engine", "non-machinery-impact", "dog")
    scores = fidelity_scores("sonyc_ust", classes, True, f, g)
    target = binarize(f, [0.6, 0.5, 0.6])  # the authors' per-class thresholds for these classes
    np.testing.assert_array_equal(target, [[0, 1, 0], [1, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert scores["macro_auprc"] == pytest.approx(threshold_auprc(target, g, "macro", ignore=[1]))
    assert scores["micro_auprc"] == pytest.approx(threshold_auprc(target, g, "micro"))
    assert scores["max_f1"] == pytest.approx(threshold_max_f1(target, g))
    assert scores["macro_auprc_ap"] == pytest.approx(auprc(binarize(f), g, "macro", ignore=[1]))
    assert scores["micro_auprc_ap"] == pytest.approx(auprc(binarize(f), g, "micro", ignore=[1]))
    assert scores["max_f1_ap"] == pytest.approx(max_f1(binarize(f), g, "micro", ignore=[1]))
    assert np.isnan(fidelity_scores("sonyc_ust", classes, True, np.zeros((2, 3)), g[:2])["macro_auprc"])
    assert target_thresholds("sonyc_ust", ("dog", "alert-signal", "unknown")).tolist() == [0.6, 0.5, 0.5]
    assert ignored_classes("sonyc_ust", classes) == (1,) and ignored_classes("openmic", classes) == ()


def test_task_scores_per_dataset():
    labels = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]])
    p = np.array([[0.8, 0.3], [0.4, 0.9], [0.6, 0.7], [0.3, 0.6]])
    assert task_scores("esc10", "ab", False, [[1, 0], [0, 1]], [[0.6, 0.4], [0.7, 0.3]]) == {"accuracy": 0.5}
    known = ~np.isnan(labels)
    y = np.nan_to_num(labels).astype(int)
    assert task_scores("openmic", "ab", True, labels, p, prefix="t_") == {
        "t_weighted_f1": weighted_f1(y, binarize(p), mask=known)}
    scores = task_scores("sonyc_ust", "ab", True, labels, p)
    expected = np.mean([_average_precision_numpy(y[known[:, j], j], p[known[:, j], j]) for j in range(2)])
    assert scores["macro_auprc"] == pytest.approx(expected)


def test_removal_drops_one_batch_per_input(toy):
    calls = []

    def classify(batch):
        calls.append(len(batch))
        return toy["classify"](batch)

    requests = [(1, [2]), (1, []), (0, [2]), (1, [0, 3]), (1, [2])]
    drops = removal_drops(classify, toy["X"], toy["phase"], toy["W"], toy["H"], requests, stft=STFT,
                          length=toy["y"].size)
    assert calls == [4]  # the input and the three distinct sets
    for (c, comps), d in zip(requests, drops):
        expected = faithfulness(toy["classify"], toy["X"], toy["phase"], toy["W"], toy["H"], comps, c,
                                stft=STFT, length=toy["y"].size)
        assert d == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert drops[1] == 0.0 and drops[0] == pytest.approx(-drops[2])
    with pytest.raises(ParameterError, match="class c=2"):
        removal_drops(toy["classify"], toy["X"], toy["phase"], toy["W"], toy["H"], [(2, [0])], stft=STFT)


def test_random_baseline_size_and_components():
    assert random_baseline_size([1, 2, 2, 4]) == 2  # mean 2.25
    assert random_baseline_size([1, 2, 3, 6], classes=[0, 0, 1, 1]) == {0: 2, 1: 4}  # 1.5 -> 2, 4.5 -> 4 (to even)
    assert random_baseline_size([]) == 0
    drawn = random_baseline_components(6, 3, [0, 1, 2, 3], seed=0)
    np.testing.assert_array_equal(drawn, [4, 5])  # capped: only two non-relevant components
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(random_baseline_components(10, 3, [1], seed=rng_a),
                                  random_components(10, 3, exclude=[1], seed=rng_b))


def test_ff_median_empty_and_all_nan():
    assert np.isnan(ff_median(np.array([])))
    assert np.isnan(ff_median(np.array([np.nan, np.nan])))
    np.testing.assert_array_equal(np.isnan(ff_median(np.zeros((0, 2)))), [True, True])
