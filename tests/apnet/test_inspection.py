"""Tests of apnet.inspection (Section 5.1) on a small APNet trained a few steps on real FSDD clips."""
import json

import keras
import numpy as np
import pytest
import soundfile as sf
import yaml

from apnet import APNet, inspection
from apnet.inspection import (class_order, closest_prototypes, decode_prototypes, decoder_model, encoder_model,
                              fully_connected_weights, instance_prototype_distances, prototype_distance_matrix,
                              prototype_weights, reconstruct, weighted_sum_weights, write_prototypes)
from apnet.training import compile_apnet
from audiodata.errors import ParameterError
from audioruns.runs import Run


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
def x_train(fsdd_fold, fsdd_scaler):
    """200 scaled training clips (every 10th row of the training split)."""
    return fsdd_scaler.transform(fsdd_fold.features[fsdd_fold.rows["train"][::10]])


def latents(model, x):
    return np.asarray(model.encoder().predict_on_batch(x)[0], np.float64)


def numpy_distances(z, p):
    """Frequency-dependent distances of Eq. 6, (N, M, F'), by broadcasting."""
    return np.sum((z[:, None] - p[None].astype(np.float64)) ** 2, axis=(2, 4))


def test_instance_distances_are_eq4(trained, x_train):
    expected = numpy_distances(latents(trained, x_train), prototype_weights(trained)).sum(-1)
    got = instance_prototype_distances(trained, x_train, batch_size=64)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_decode_prototypes_uses_nearest_masks(trained, x_train):
    decoded = decode_prototypes(trained, x_train, batch_size=64)
    p = prototype_weights(trained)
    m = p.shape[0]
    assert decoded["mel"].shape == (m, 64, 64) and decoded["nearest"].shape == (m,)
    assert np.all(np.isfinite(decoded["mel"])) and np.abs(decoded["mel"]).max() <= 1.0
    assert decoded["mel"].std() > 1e-3  # not a constant image
    # The nearest instance is the argmin over the training set of D_ij (Eq. 4), computed in NumPy.
    d = numpy_distances(latents(trained, x_train), p).sum(-1)
    np.testing.assert_allclose(d[decoded["nearest"], np.arange(m)], d.min(axis=0), rtol=1e-5)
    np.testing.assert_allclose(decoded["nearest_distance"], d.min(axis=0), rtol=1e-4)
    # Decoding with that instance's masks, through the model's own decoder, gives the same spectrograms;
    # the masks of another instance give different ones.
    _, mask1, mask2 = trained.encoder().predict_on_batch(x_train[decoded["nearest"]])
    expected = trained.decoder().predict_on_batch([p, mask1, mask2])
    np.testing.assert_allclose(decoded["mel"], expected, atol=1e-6)
    far = np.argmax(d, axis=0)
    _, far1, far2 = trained.encoder().predict_on_batch(x_train[far])
    assert np.abs(trained.decoder().predict_on_batch([p, far1, far2]) - decoded["mel"]).max() > 1e-3
    # Classes: the full model's prediction on the decoded spectrograms, and the argmax of each row of W.
    probabilities = trained.predict_on_batch(decoded["mel"])[0]
    np.testing.assert_array_equal(decoded["classes"], probabilities.argmax(1))
    np.testing.assert_array_equal(decoded["w_classes"], trained.get_layer("dense").get_weights()[0].argmax(1))


def test_decoder_model_reconstructs_like_the_model(trained, x_train):
    z, mask1, mask2 = encoder_model(trained).predict_on_batch(x_train[:8])
    np.testing.assert_allclose(decoder_model(trained).predict_on_batch([z, mask1, mask2]),
                               trained.predict_on_batch(x_train[:8])[1], atol=1e-6)
    np.testing.assert_allclose(reconstruct(trained, x_train[:8], batch_size=3),
                               trained.predict_on_batch(x_train[:8])[1], atol=1e-6)


def test_decode_streams_unscaled_features_with_the_scaler(trained, fsdd_fold, fsdd_scaler, x_train):
    raw = fsdd_fold.features[fsdd_fold.rows["train"][::10]]
    scaled = decode_prototypes(trained, x_train, batch_size=64)
    streamed = decode_prototypes(trained, raw, batch_size=37, scaler=fsdd_scaler)
    np.testing.assert_array_equal(streamed["nearest"], scaled["nearest"])
    np.testing.assert_allclose(streamed["mel"], scaled["mel"], atol=1e-6)


def test_write_prototypes(trained, x_train, fsdd_fold, fsdd_scaler, tmp_path):
    from audiodata.features import load_feature_params

    decoded = {key: value[:3] for key, value in decode_prototypes(trained, x_train, batch_size=64).items()}
    params = load_feature_params("fsdd", "mel")
    clip_ids = fsdd_fold.features.clips["clip_id"].to_numpy()[fsdd_fold.rows["train"][::10]]
    summary = write_prototypes(tmp_path, decoded, params, scaler=fsdd_scaler, class_names=fsdd_fold.classes,
                               clip_ids=clip_ids)
    assert len(summary) == 3
    for j, cls in enumerate(decoded["classes"]):
        stem = tmp_path / f"prototype_{j}_{fsdd_fold.classes[cls]}"
        y, sr = sf.read(stem.with_suffix(".wav"))
        assert sr == 8000 and len(y) == 8000
        assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y ** 2)) > 1e-3
        assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [r["prototype"] for r in rows] == [0, 1, 2]
    assert [r["nearest_clip_id"] for r in rows] == list(clip_ids[decoded["nearest"]])
    assert [r["class"] for r in rows] == decoded["classes"].tolist()
    assert [r["w_class"] for r in rows] == decoded["w_classes"].tolist()
    assert (tmp_path / "summary.csv").read_text().splitlines()[0].startswith("prototype,nearest_row,nearest_clip_id")


def test_prototype_distance_matrix_is_eq11(trained):
    p = prototype_weights(trained).astype(np.float64)
    d = prototype_distance_matrix(trained)
    expected = np.sum((p[:, None] - p[None]) ** 2, axis=(2, 3, 4))
    np.testing.assert_allclose(d, expected, rtol=1e-9, atol=1e-9 * expected.max())
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert np.all(d[~np.eye(len(d), dtype=bool)] > 0)
    np.testing.assert_array_equal(prototype_distance_matrix(p), d)


def test_weights_of_the_figures(trained):
    w = trained.get_layer("dense").get_weights()[0]
    h = trained.get_layer("weighted_sum").get_weights()[0]
    np.testing.assert_array_equal(fully_connected_weights(trained), w.T)
    np.testing.assert_array_equal(weighted_sum_weights(trained), h)
    up = weighted_sum_weights(trained, upsample=True)
    assert up.shape == (10, 64)
    np.testing.assert_array_equal(up, np.repeat(h, 4, axis=1))
    np.testing.assert_array_equal(class_order([2, 0, 1, 0]), [1, 3, 2, 0])


def test_closest_prototypes_weighted_and_mean(trained, x_train):
    x = x_train[:5]
    s = np.exp(-numpy_distances(latents(trained, x), prototype_weights(trained)))
    h = trained.get_layer("weighted_sum").get_weights()[0]
    out = closest_prototypes(trained, x, k=3, batch_size=2)
    np.testing.assert_allclose(out["weighted_similarity"], np.sum(s * h[None], -1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out["mean_similarity"], s.mean(-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(out["weighted"], np.argsort(-out["weighted_similarity"], axis=1)[:, :3])
    np.testing.assert_array_equal(out["mean"], np.argsort(-out["mean_similarity"], axis=1)[:, :3])
    # The weighted similarity is the model's own weighted-sum output (Eq. 7).
    sub = keras.Model(trained.inputs[0], trained.get_layer("weighted_sum").output)
    np.testing.assert_allclose(out["weighted_similarity"], sub.predict_on_batch(x), rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_rejected(trained, x_train):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="is not an APNet"):
        decode_prototypes(plain, x_train)
    with pytest.raises(ValueError, match="batch_size"):
        instance_prototype_distances(trained, x_train, batch_size=0)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        closest_prototypes(trained, x_train[:2], k=0)
    with pytest.raises(ValueError, match="type='logmag'"):
        write_prototypes("unused", {"mel": []}, {"type": "logmag", "sr": 8000})


def test_load_run_returns_an_apnet_run(tmp_path, monkeypatch):
    """dataset and fold from results.json, else from the path; ``run["model"]`` kept for old notebooks."""
    model, scaler = object(), object()
    monkeypatch.setattr(inspection, "load_scaled_model", lambda path: (model, scaler))
    run_dir = tmp_path / "out" / "apnet" / "fsdd" / "fold3" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"features": "mel", "batch_size": 8}))
    run = inspection.load_run(run_dir / "model.keras")
    assert isinstance(run, inspection.APNetRun) and isinstance(run, Run)
    assert (run.dataset, run.fold, run.results, run.run_dir, run.path) == ("fsdd", 3, {}, run_dir, run_dir)
    assert run.model is model and run.scaler is scaler and run.config == {"features": "mel", "batch_size": 8}
    assert [run[key] for key in ("model", "scaler", "dataset", "fold", "run_dir")] == [model, scaler, "fsdd", 3,
                                                                                        run_dir]
    with pytest.raises(KeyError):
        run["data"]
    (run_dir / "results.json").write_text(json.dumps({"dataset": "esc10", "fold": 2, "test_accuracy": 0.5}))
    run = inspection.load_run(run_dir / "model.keras")
    assert (run.dataset, run.fold, run.results["test_accuracy"]) == ("esc10", 2, 0.5)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("model.keras", "config.yaml"):
        (elsewhere / name).write_bytes((run_dir / name).read_bytes())
    with pytest.raises(ParameterError, match="no dataset/fold"):
        inspection.load_run(elsewhere / "model.keras")
