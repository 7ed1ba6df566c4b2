"""Tests of apnet.refinement (Section 5.2): Eqs. 11-13 against NumPy, exact model surgery, save/load."""
import keras
import numpy as np
import pytest

import apnet  # noqa: F401  (registers the layers for loading)
from apnet import APNet
from apnet.inspection import encoder_model, prototype_distance_matrix, prototype_weights
from apnet.refinement import (channel_distance_matrix, latent_channel_distance_matrix, redundancy_threshold,
                              redundant_channels, redundant_prototypes, remove_channels, remove_prototypes)
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
    # Only pairs of the same class (reference implementation): 0 and 1 differ, 1 and 3 share one.
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
