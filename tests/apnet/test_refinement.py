"""Tests of apnet.refinement (Section 5.2): Eqs. 11-13 against NumPy, exact model surgery, save/load."""
import keras
import numpy as np
import pytest

import apnet  # noqa: F401  (registers the layers for loading)
from apnet import APNet
from apnet.inspection import encoder_model, prototype_distance_matrix, prototype_weights
from apnet.refinement import (DECODER_LAYERS, RULE_DEFAULTS, channel_distance_matrix, latent_channel_distance_matrix,
                              prototype_classes, redundancy_threshold, redundant_channels, redundant_prototypes,
                              remove_channels, remove_prototypes)
from apnet.training import compile_apnet
from apnet.refinement import add_prototype  # Section 5.2.3 editing; its tests are at the end


@pytest.fixture(scope="module")
def trained(fsdd_batch):
    """APNet with input (64, 64), M = 10, C = 8, trained 4 epochs on 64 scaled FSDD clips."""
    x, y = fsdd_batch
    keras.utils.set_random_seed(0)
    model = APNet(input_shape=(64, 64), n_classes=10, n_prototypes=10, n_filters=8)
    compile_apnet(model, alpha=10, beta=5, gamma=5)
    model.fit(x, {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x), np.float32)},
              batch_size=16, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def x(fsdd_batch):
    return fsdd_batch[0][:16]


def weights(model, name):
    return model.get_layer(name).get_weights()


def numpy_apnet_head(z, p, h, w):
    """Distances (Eq. 6 argument), probabilities (Eqs. 6-8) in float64."""
    d = np.sum((z[:, None].astype(np.float64) - p[None].astype(np.float64)) ** 2, axis=(2, 4))
    logits = np.sum(np.exp(-d) * h[None], axis=-1) @ w
    e = np.exp(logits - logits.max(1, keepdims=True))
    return d, e / e.sum(1, keepdims=True)


def assert_other_weights_equal(old, new, skip):
    for layer in old.layers:
        if layer.name in skip:
            continue
        for a, b in zip(layer.get_weights(), new.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)


def test_remove_prototypes_is_exact(trained, x):
    removed = [1, 4, 7]
    kept = np.setdiff1d(np.arange(10), removed)
    new = remove_prototypes(trained, removed)
    assert new.get_layer("prototypes").n_prototypes == 7 and new.name == trained.name
    np.testing.assert_array_equal(weights(new, "prototypes")[0], weights(trained, "prototypes")[0][kept])
    np.testing.assert_array_equal(weights(new, "weighted_sum")[0], weights(trained, "weighted_sum")[0][kept])
    np.testing.assert_array_equal(weights(new, "dense")[0], weights(trained, "dense")[0][kept])
    assert_other_weights_equal(trained, new, {"prototypes", "weighted_sum", "dense"})
    # Outputs: the old model's with those prototypes removed by hand.
    z = trained.encoder().predict_on_batch(x)[0]
    old_probs, old_recon, old_dist = trained.predict_on_batch(x)
    d, probs = numpy_apnet_head(z, weights(trained, "prototypes")[0][kept], weights(trained, "weighted_sum")[0][kept],
                                weights(trained, "dense")[0][kept])
    new_probs, new_recon, new_dist = new.predict_on_batch(x)
    np.testing.assert_allclose(new_dist, old_dist[:, kept], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_dist, d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new_probs, probs, atol=1e-5)
    np.testing.assert_array_equal(new_recon, old_recon)
    assert not np.allclose(new_probs, old_probs, atol=1e-5)  # the removed prototypes did contribute


def test_remove_channels_is_exact(trained, x):
    removed = [0, 5]
    kept = np.setdiff1d(np.arange(8), removed)
    new = remove_channels(trained, removed)
    assert tuple(new.get_layer("latent").output.shape[1:]) == (16, 16, 6)
    kernel, bias = weights(trained, "encoder_conv3")
    new_kernel, new_bias = weights(new, "encoder_conv3")
    np.testing.assert_array_equal(new_kernel, kernel[..., kept])
    np.testing.assert_array_equal(new_bias, bias[kept])
    np.testing.assert_array_equal(weights(new, "prototypes")[0], weights(trained, "prototypes")[0][..., kept])
    deconv_kernel, deconv_bias = weights(trained, "decoder_conv1")  # (k, k, filters, input channels)
    np.testing.assert_array_equal(weights(new, "decoder_conv1")[0], deconv_kernel[:, :, :, kept])
    np.testing.assert_array_equal(weights(new, "decoder_conv1")[1], deconv_bias)
    assert_other_weights_equal(trained, new, {"encoder_conv3", "prototypes", "decoder_conv1"})
    # The new latent is the old one without the removed channels; the classifier works on the kept ones.
    z_old, mask1_old, mask2_old = encoder_model(trained).predict_on_batch(x)
    z_new, mask1_new, mask2_new = encoder_model(new).predict_on_batch(x)
    np.testing.assert_allclose(z_new, z_old[..., kept], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(mask1_new, mask1_old)
    np.testing.assert_array_equal(mask2_new, mask2_old)
    d, probs = numpy_apnet_head(z_old[..., kept], weights(trained, "prototypes")[0][..., kept],
                                weights(trained, "weighted_sum")[0], weights(trained, "dense")[0])
    new_probs, _, new_dist = new.predict_on_batch(x)
    np.testing.assert_allclose(new_dist, d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new_probs, probs, atol=1e-5)


def test_refined_models_save_and_load(trained, x, tmp_path):
    # Both refinements chained, as in Table 4 (prototypes, then channels), with fewer prototypes than classes.
    refined = remove_channels(remove_prototypes(trained, [0, 2, 3]), [1, 2, 6])
    assert refined.count_params() < trained.count_params()
    path = tmp_path / "refined.keras"
    refined.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("prototypes").n_prototypes == 7 and loaded.get_layer("encoder_conv3").filters == 5
    for a, b in zip(refined.predict_on_batch(x), loaded.predict_on_batch(x)):
        np.testing.assert_array_equal(a, b)
    # A refined model can be compiled and trained like APNet (output names kept).
    compile_apnet(loaded, alpha=10, beta=5, gamma=5)
    y = np.eye(10, dtype=np.float32)[np.arange(len(x)) % 10]
    history = loaded.fit(x, {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x), np.float32)},
                         batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_redundancy_threshold_and_rule_eq12():
    d = np.array([[0.0, 1.0, 9.0, 9.0],
                  [1.0, 0.0, 9.0, 2.0],
                  [9.0, 9.0, 0.0, 9.0],
                  [9.0, 2.0, 9.0, 0.0]])
    off = d[~np.eye(4, dtype=bool)]
    assert redundancy_threshold(d) == pytest.approx(off.min() + off.mean() / 2)  # 1 + 6.5 / 2 = 4.25
    # Pairs below 4.25: (0, 1) then (1, 3). 1 goes with the first; (1, 3) then has a removed prototype.
    np.testing.assert_array_equal(redundant_prototypes(d), [1])
    np.testing.assert_array_equal(redundant_prototypes(d, threshold=1.5), [1])
    np.testing.assert_array_equal(redundant_prototypes(d, threshold=0.5), [])
    np.testing.assert_array_equal(redundant_prototypes(d, threshold=10.0), [1, 2, 3])
    # Only pairs of the same class (optional with the paper's rules): 0 and 1 differ, 1 and 3 share one.
    np.testing.assert_array_equal(redundant_prototypes(d, classes=[0, 1, 2, 1]), [3])
    with pytest.raises(ValueError, match="classes"):
        redundant_prototypes(d, classes=[0, 1])


def test_redundant_prototypes_of_a_trained_model(trained):
    d = prototype_distance_matrix(trained)
    threshold = redundancy_threshold(d)
    removed = redundant_prototypes(d)
    kept = np.setdiff1d(np.arange(10), removed)
    assert 0 < len(removed) < 10
    # No two kept prototypes are closer than the threshold, and each removed one was close to another.
    sub = d[np.ix_(kept, kept)]
    assert np.all(sub[~np.eye(len(kept), dtype=bool)] >= threshold)
    assert all(np.sort(d[j])[1] < threshold for j in removed)


def test_channel_distance_matrix_is_eq13(trained, x, rng):
    z = np.asarray(encoder_model(trained).predict_on_batch(x[:3])[0], np.float64)
    for a in (z, prototype_weights(trained).astype(np.float64), rng.normal(size=(2, 3, 4, 5))):
        n_ch = a.shape[-1]
        every = np.zeros((n_ch, n_ch))
        same = np.zeros((n_ch, n_ch))
        for k in range(n_ch):
            for q in range(n_ch):
                every[k, q] = np.sum((a[:, None, :, :, k] - a[None, :, :, :, q]) ** 2)  # sum over i, j, t, f
                same[k, q] = np.sum((a[..., k] - a[..., q]) ** 2)                      # i = j only
        np.testing.assert_allclose(channel_distance_matrix(a), every, rtol=1e-9, atol=1e-9 * every.max())
        np.testing.assert_allclose(channel_distance_matrix(a, pairing="same"), same, rtol=1e-9,
                                   atol=1e-9 * same.max())
    np.testing.assert_array_equal(channel_distance_matrix(trained),
                                  channel_distance_matrix(prototype_weights(trained)))
    # Streamed over batches of encoded inputs: the same as on the stack of latents.
    z = np.asarray(encoder_model(trained).predict_on_batch(x)[0], np.float64)
    for pairing in ("all", "same"):
        np.testing.assert_allclose(latent_channel_distance_matrix(trained, x, batch_size=5, pairing=pairing),
                                   channel_distance_matrix(z, pairing=pairing), rtol=1e-5)
    with pytest.raises(ValueError, match="pairing"):
        channel_distance_matrix(z, pairing="mean")


def test_redundant_channels():
    c = np.array([[5.0, 1.0, 2.0, 8.0],
                  [1.0, 5.0, 3.0, 8.0],
                  [2.0, 3.0, 5.0, 4.0],
                  [8.0, 8.0, 4.0, 5.0]])
    # Pairs by C: (0,1)=1 -> drop 1; (0,2)=2 -> drop 2; (1,2) skipped; (2,3) skipped; (0,3)=8 -> drop 3.
    np.testing.assert_array_equal(redundant_channels(c, 1), [1])
    np.testing.assert_array_equal(redundant_channels(c, 2), [1, 2])
    np.testing.assert_array_equal(redundant_channels(c, 3), [1, 2, 3])
    for bad in (0, 4, 2.5):
        with pytest.raises(ValueError, match="n_channels"):
            redundant_channels(c, bad)


def test_bad_indices_are_rejected(trained):
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        remove_prototypes(trained, [10])
    with pytest.raises(ValueError, match="unique"):
        remove_prototypes(trained, [1, 1])
    with pytest.raises(ValueError, match="cannot remove all 10"):
        remove_prototypes(trained, list(range(10)))
    with pytest.raises(ValueError, match="integers"):
        remove_channels(trained, [0.5])
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        remove_channels(trained, [-1])


# ----------------------------------------------------------------------------- the authors' rules (Table 4)
def symmetric(size, entries, fill=10.0):
    """A distance matrix: ``fill`` off the diagonal, zero on it, and the given ``{(a, b): value}``."""
    d = np.full((size, size), fill)
    np.fill_diagonal(d, 0.0)
    for (a, b), value in entries.items():
        d[a, b] = d[b, a] = value
    return d


def test_authors_threshold_takes_the_mean_over_the_whole_matrix():
    d = symmetric(4, {(0, 1): 1.0, (1, 3): 4.0}, fill=9.0)
    off = d[~np.eye(4, dtype=bool)]  # 1, 9, 9, 9, 4, 9 twice: mean 41 / 6
    assert redundancy_threshold(d) == pytest.approx(1.0 + off.mean() / 2)               # 4.41666...
    assert redundancy_threshold(d, "authors") == pytest.approx(1.0 + d.mean() / 2)      # 1 + 82 / 16 / 2 = 3.5625
    assert redundancy_threshold(d, "authors") == pytest.approx(1.0 + 82.0 / 32.0)
    # D_13 = 4 lies between the two thresholds: the authors' rule keeps prototype 3, unless given the paper's.
    same = [0, 0, 0, 0]
    np.testing.assert_array_equal(redundant_prototypes(d, classes=same, rules="authors"), [0])
    np.testing.assert_array_equal(
        redundant_prototypes(d, redundancy_threshold(d, "paper"), classes=same, rules="authors"), [0, 3])
    with pytest.raises(ValueError, match="rules"):
        redundancy_threshold(d, "literal")


def test_authors_prototype_rule_by_hand():
    # Classes 0: prototypes 1, 3, 4; classes 1: 0, 2, 5. Visiting order (class-sorted): 1, 3, 4, 0, 2, 5.
    d = symmetric(6, {(3, 4): 1.0, (1, 3): 2.0, (0, 1): 2.5, (0, 2): 3.0, (2, 5): 3.5})
    classes = [1, 0, 1, 0, 0, 1]
    # 1: nearest 3 (2.0), same class -> removed, 3 kept.   3: kept, stays although its nearest (4) is at 1.0.
    # 4: nearest 3 (1.0) -> removed.                        0: nearest 1 (2.5) has another class -> stays,
    #    although 2 (same class) is at 3.0 < threshold.     2: nearest 0 (3.0) -> removed, 0 kept.
    # 5: nearest 2 (3.5) -> removed although 2 is gone (the authors' code does not check).
    np.testing.assert_array_equal(redundant_prototypes(d, 4.0, classes, rules="authors"), [1, 2, 4, 5])
    # The paper's rule on the same matrix: pairs (3,4) -> 4, (1,3) -> 3, (0,1) -> 1, (0,2) -> 2, (2,5) skipped.
    np.testing.assert_array_equal(redundant_prototypes(d, 4.0, rules="paper"), [1, 2, 3, 4])
    # Only the nearest neighbour is tested: below 3.2 the pair (2, 5) is out, so 5 stays.
    np.testing.assert_array_equal(redundant_prototypes(d, 3.2, classes, rules="authors"), [1, 2, 4])
    np.testing.assert_array_equal(redundant_prototypes(d, 0.5, classes, rules="authors"), [])
    # All of one class (visited by index): 0's nearest 1 (2.5) is now a class-mate -> 0 removed, 1 kept;
    # 2's nearest is 0 (3.0), removed before -> 2 removed too; 3's nearest 4 (1.0) -> 3 removed, 4 kept;
    # 5's nearest 2 (3.5) -> removed.
    np.testing.assert_array_equal(redundant_prototypes(d, 4.0, [0] * 6, rules="authors"), [0, 2, 3, 5])
    with pytest.raises(ValueError, match="classes"):
        redundant_prototypes(d, 4.0, rules="authors")
    with pytest.raises(ValueError, match="rules"):
        redundant_prototypes(d, 4.0, classes, rules="author")


def test_authors_prototype_rule_visits_in_class_sorted_order():
    # Prototype 1 (class 0) is as close to 0 (class 1) as to 2 (class 0). In class-sorted order (1, 2, 0)
    # its first nearest neighbour is 2, a class-mate: 1 goes and 2 stays. Visiting by index, 1's first
    # nearest would be 0 (another class) and then 2 would go instead.
    d = symmetric(3, {(0, 1): 1.0, (1, 2): 1.0}, fill=10.0)
    assert redundancy_threshold(d, "authors") == pytest.approx(1.0 + 24.0 / 9.0 / 2.0)
    np.testing.assert_array_equal(redundant_prototypes(d, classes=[1, 0, 0], rules="authors"), [1])
    # Relabelled so that the class order is the index order: 1's first nearest is 0, of another class, so 1
    # stays and 2 (whose nearest 1 is a class-mate) goes.
    np.testing.assert_array_equal(redundant_prototypes(d, classes=[0, 1, 1], rules="authors"), [2])
    np.testing.assert_array_equal(redundant_prototypes(d, classes=[0, 0, 1], rules="authors"), [0])


def test_prototype_classes_is_the_head_on_the_prototypes(trained):
    p, h, w = (weights(trained, name)[0] for name in ("prototypes", "weighted_sum", "dense"))
    _, probs = numpy_apnet_head(p, p, h, w)
    np.testing.assert_array_equal(prototype_classes(trained), probs.argmax(axis=1))
    # Prototypes far apart: each is similar to itself only (S_hat = e_j H_j), so its class is the argmax of
    # its row of W, whatever the classes of the other prototypes.
    keras.utils.set_random_seed(1)
    fresh = APNet(input_shape=(32, 32), n_classes=3, n_prototypes=6, n_filters=4)
    p = fresh.get_layer("prototypes").get_weights()[0]
    fresh.get_layer("prototypes").set_weights([np.arange(6, dtype=np.float32)[:, None, None, None] + 0 * p])
    kernel = np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32)
    fresh.get_layer("dense").set_weights([kernel])
    np.testing.assert_array_equal(prototype_classes(fresh), kernel.argmax(axis=1))


def test_authors_prototype_rule_on_a_trained_model(trained):
    d = prototype_distance_matrix(trained)
    classes = prototype_classes(trained)
    threshold = redundancy_threshold(d, "authors")
    removed = redundant_prototypes(d, classes=classes, rules="authors")
    masked = d + np.diag(np.full(len(d), np.inf))
    for j in removed:  # each removed one had a class-mate as its nearest neighbour, closer than the threshold
        nearest = np.argmin(masked[j])
        assert masked[j, nearest] < threshold and classes[nearest] == classes[j]
    for j in np.setdiff1d(np.arange(len(d)), removed):
        nearest = np.argmin(masked[j])
        if masked[j, nearest] < threshold and classes[nearest] == classes[j]:
            assert nearest in removed  # kept because it was the neighbour of one removed before it


def authors_channel_loop(matrix, n):
    """The authors' loop written out: the top_N smallest lower-triangle pairs, top_N = n, n + 1, ... (sorted)."""
    rows, cols = np.tril_indices(len(matrix), k=-1)
    order = np.lexsort((cols, rows, matrix[rows, cols]))
    for top in range(n, len(order) + 1):
        delete = []
        for r, c in zip(rows[order[:top]], cols[order[:top]]):
            delete.append(c if r in delete else r)
        if len(np.unique(delete)) == n:
            return np.unique(delete)
    raise AssertionError("no prefix gives n channels")


def test_authors_channel_rule_by_hand(rng):
    c = symmetric(4, {(3, 2): 1.0, (3, 1): 2.0, (1, 0): 3.0, (2, 0): 4.0, (2, 1): 5.0, (3, 0): 6.0})
    np.fill_diagonal(c, 0.0)
    # Authors: (3,2) -> 3; (3,1): 3 already in -> 1; (1,0): 1 already in -> 0.
    np.testing.assert_array_equal(redundant_channels(c, 1, rules="authors"), [3])
    np.testing.assert_array_equal(redundant_channels(c, 2, rules="authors"), [1, 3])
    np.testing.assert_array_equal(redundant_channels(c, 3, rules="authors"), [0, 1, 3])
    # Paper: (2,3) -> 3; (1,3) skipped; (0,1) -> 1; (0,2) -> 2.
    np.testing.assert_array_equal(redundant_channels(c, 3, rules="paper"), [1, 2, 3])
    # A pair whose two channels are already removed adds none: (4,1) -> 4, (3,1) -> 3, (4,3) -> 3 again,
    # so the fourth pair (1,0) is needed for three channels: 1.
    c5 = symmetric(5, {(4, 1): 1.0, (3, 1): 2.0, (4, 3): 3.0, (1, 0): 4.0})
    np.testing.assert_array_equal(redundant_channels(c5, 2, rules="authors"), [3, 4])
    np.testing.assert_array_equal(redundant_channels(c5, 3, rules="authors"), [1, 3, 4])
    # The same as the authors' loop over growing top-N selections, on random matrices.
    for _ in range(20):
        a = rng.random((9, 9))
        a = a + a.T
        for n in (1, 4, 8):
            np.testing.assert_array_equal(redundant_channels(a, n, rules="authors"), authors_channel_loop(a, n))
            assert len(redundant_channels(a, n, rules="paper")) == n
    with pytest.raises(ValueError, match="rules"):
        redundant_channels(c, 2, rules="both")


def test_remove_channels_reinitializes_the_decoder(trained, x):
    removed = [0, 5]
    kept = np.setdiff1d(np.arange(8), removed)
    keep = remove_channels(trained, removed)
    new = remove_channels(trained, removed, decoder="reinitialize", seed=7)
    # Everything but the decoder is what "keep" gives: encoder pruned, prototypes pruned, H and W copied.
    assert_other_weights_equal(keep, new, set(DECODER_LAYERS))
    np.testing.assert_array_equal(weights(new, "prototypes")[0], weights(trained, "prototypes")[0][..., kept])
    # The decoder has new weights: Glorot-uniform kernels, zero biases, none equal to the old ones.
    for name in DECODER_LAYERS:
        (kernel, bias), (old_kernel, old_bias) = weights(new, name), weights(keep, name)
        assert kernel.shape == old_kernel.shape and bias.shape == old_bias.shape
        assert not np.any(np.isclose(kernel, old_kernel, rtol=0, atol=1e-7).all(axis=(0, 1, 2)))
        kh, kw, filters, inputs = kernel.shape
        limit = np.sqrt(6.0 / (kh * kw * (filters + inputs)))
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
        np.testing.assert_array_equal(bias, np.zeros_like(bias))
    assert weights(new, "decoder_conv1")[0].shape == (5, 5, 8, 6)
    # Seeded: the same seed gives the same decoder, another seed another one.
    again = remove_channels(trained, removed, decoder="reinitialize", seed=7)
    other = remove_channels(trained, removed, decoder="reinitialize", seed=8)
    for name in DECODER_LAYERS:
        np.testing.assert_array_equal(weights(again, name)[0], weights(new, name)[0])
        assert not np.allclose(weights(other, name)[0], weights(new, name)[0])
    # The classifier is untouched (same distances and probabilities); only the reconstruction changes.
    keep_probs, keep_recon, keep_dist = keep.predict_on_batch(x)
    new_probs, new_recon, new_dist = new.predict_on_batch(x)
    np.testing.assert_allclose(new_dist, keep_dist, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_probs, keep_probs, atol=1e-6)
    assert np.abs(new_recon - keep_recon).mean() > 1e-3
    with pytest.raises(ValueError, match="decoder"):
        remove_channels(trained, removed, decoder="reset")
    with pytest.raises(ValueError, match="seed"):
        remove_channels(trained, removed, decoder="reinitialize", seed=1.5)
    assert RULE_DEFAULTS == {"authors": {"pairing": "same", "decoder": "reinitialize"},
                             "paper": {"pairing": "all", "decoder": "keep"}}


def test_reinitialized_decoder_saves_loads_and_trains(trained, x, tmp_path):
    refined = remove_channels(trained, [1, 2], decoder="reinitialize", seed=0)
    path = tmp_path / "reinit.keras"
    refined.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(refined.predict_on_batch(x), loaded.predict_on_batch(x)):
        np.testing.assert_array_equal(a, b)
    before = weights(loaded, "decoder_conv2")[0].copy()
    compile_apnet(loaded, alpha=10, beta=5, gamma=5)
    y = np.eye(10, dtype=np.float32)[np.arange(len(x)) % 10]
    loaded.fit(x, {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x), np.float32)},
               batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(weights(loaded, "decoder_conv2")[0], before)  # the new decoder is learnt


# ----------------------------------------------------------------------------- add_prototype (manual editing)
def test_add_prototype_appends_an_instance_and_its_votes(trained, x):
    z = np.asarray(encoder_model(trained).predict_on_batch(x)[0])
    i, c = 3, 7
    new = add_prototype(trained, z[i], c)
    assert new.get_layer("prototypes").n_prototypes == 11 and new.name == trained.name
    p_old, h_old, w_old = (weights(trained, name)[0] for name in ("prototypes", "weighted_sum", "dense"))
    p_new, h_new, w_new = (weights(new, name)[0] for name in ("prototypes", "weighted_sum", "dense"))
    np.testing.assert_array_equal(p_new[:10], p_old)
    np.testing.assert_array_equal(p_new[10], z[i])
    np.testing.assert_array_equal(h_new[:10], h_old)
    np.testing.assert_allclose(h_new[10], h_old.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(w_new[:10], w_old)
    voters = np.flatnonzero(w_old.argmax(axis=1) == c)
    assert len(voters) > 0
    np.testing.assert_allclose(w_new[10], w_old[voters].mean(axis=0), rtol=1e-6)
    assert w_new[10].argmax() == c  # the new row votes for the instance's class
    assert_other_weights_equal(trained, new, {"prototypes", "weighted_sum", "dense"})

    # Outputs: the old distances are untouched, the new column is the distance to Z_i, and the
    # probabilities are those of Eqs. 6-8 with the appended rows.
    old_probs, old_recon, old_dist = trained.predict_on_batch(x)
    new_probs, new_recon, new_dist = new.predict_on_batch(x)
    np.testing.assert_allclose(new_dist[:, :10], old_dist, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(new_recon, old_recon)
    d, probs = numpy_apnet_head(z, p_new, h_new, w_new)
    np.testing.assert_allclose(new_dist, d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new_probs, probs, atol=1e-5)
    assert new_dist[i, 10].sum() < 1e-3 * max(old_dist[i].sum(), 1.0)  # the instance is its own prototype
    assert new_probs[i, c] > old_probs[i, c]
    # Every input: logits move by S_hat_M W_M only (log-probability differences are rank one).
    s_hat = np.sum(np.exp(-d[:, 10].astype(np.float64)) * h_new[10], axis=-1)
    shift = np.log(new_probs) - np.log(old_probs)
    expected = s_hat[:, None] * w_new[10][None, :]
    np.testing.assert_allclose(shift - shift.mean(1, keepdims=True), expected - expected.mean(1, keepdims=True),
                               atol=2e-4)
    # A prototype far from every input (exp(-D) = 0 in every bin) leaves every prediction as it was.
    far = add_prototype(trained, np.full_like(z[i], 5.0), c)
    far_probs, _, far_dist = far.predict_on_batch(x)
    assert far_dist[:, 10].min() > 100.0
    np.testing.assert_allclose(far_probs, old_probs, atol=1e-6)


def test_add_prototype_rows_given_fallback_and_save(trained, x, tmp_path):
    z = np.asarray(encoder_model(trained).predict_on_batch(x[:1])[0])
    w_row, h_row = np.linspace(-1, 1, 10), np.full(16, 0.25)
    new = add_prototype(trained, z, 2, dense_row=w_row, weighted_sum_row=h_row)  # (1, T', F', C) accepted
    np.testing.assert_allclose(weights(new, "dense")[0][10], w_row, rtol=1e-6)
    np.testing.assert_allclose(weights(new, "weighted_sum")[0][10], h_row)
    # No prototype votes for the class: +m for it, -m elsewhere, m = mean |W|.
    kernel = weights(trained, "dense")[0].copy()
    kernel[:, 0] = kernel.min() - 1.0
    assert not np.any(kernel.argmax(axis=1) == 0)
    trained_copy = keras.models.clone_model(trained)
    trained_copy.set_weights(trained.get_weights())
    trained_copy.get_layer("dense").set_weights([kernel])
    m = np.mean(np.abs(kernel))
    np.testing.assert_allclose(weights(add_prototype(trained_copy, z[0], 0), "dense")[0][10],
                               np.where(np.arange(10) == 0, m, -m), rtol=1e-6)
    # Chained with remove_prototypes, saved and loaded: same predictions.
    edited = add_prototype(remove_prototypes(trained, [0, 5]), z[0], 9)
    assert edited.get_layer("prototypes").n_prototypes == 9
    path = tmp_path / "edited.keras"
    edited.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("prototypes").n_prototypes == 9
    for a, b in zip(edited.predict_on_batch(x), loaded.predict_on_batch(x)):
        np.testing.assert_array_equal(a, b)


def test_add_prototype_rejects_bad_arguments(trained):
    z = np.zeros((16, 16, 8), np.float32)
    with pytest.raises(ValueError, match=r"shape \(16, 16, 8\)"):
        add_prototype(trained, np.zeros((16, 16, 4)), 0)
    with pytest.raises(ValueError, match=r"class_index.*\[0, 10\)"):
        add_prototype(trained, z, 10)
    with pytest.raises(ValueError, match="class_index"):
        add_prototype(trained, z, 1.0)
    with pytest.raises(ValueError, match="finite"):
        add_prototype(trained, np.full((16, 16, 8), np.nan), 0)
    with pytest.raises(ValueError, match="dense_row"):
        add_prototype(trained, z, 0, dense_row=np.ones(3))
    with pytest.raises(ValueError, match="weighted_sum_row"):
        add_prototype(trained, z, 0, weighted_sum_row=np.ones(15))
