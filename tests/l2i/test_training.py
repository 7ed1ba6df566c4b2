"""Tests of l2i.training (losses, batches, post-hoc / by-design training) and the L2I CLIs, on real ESC-10."""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from l2i.classifier import KumarCNN
from l2i.training import L2IBatches, L2ITrainer, interpreter_scores, masked_binary_crossentropy
from tests.l2i._esc10 import (TINY_CLASSIFIER, TINY_INTERPRETER, esc10_fold1, l2i_cache_dir,  # noqa: F401
                              unit_dictionary)

REPO = Path(__file__).resolve().parents[2]


def test_masked_binary_crossentropy_matches_numpy(rng):
    y = (rng.random((4, 5)) > 0.5).astype("float32")
    p = rng.uniform(0.05, 0.95, size=(4, 5)).astype("float32")
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(float(masked_binary_crossentropy(y, p)), bce.mean(), rtol=1e-5)
    y_nan = y.copy()
    y_nan[0, :3] = np.nan
    mask = ~np.isnan(y_nan)
    np.testing.assert_allclose(float(masked_binary_crossentropy(y_nan, p)), bce[mask].mean(), rtol=1e-5)


def test_interpreter_scores_top_k():
    f = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    g = np.array([[0.2, 0.5, 0.3], [0.1, 0.7, 0.2]])
    scores = interpreter_scores(g, f, multilabel=False, ks=(1, 2))
    assert scores == {"fidelity_top1": 0.5, "fidelity_top2": 0.5}


def test_loss_terms_match_numpy(rng):
    from l2i.losses import crossentropy, nmf_reconstruction_loss

    X = rng.random((2, 3, 4))
    X_hat = rng.random((2, 3, 4))
    sq = (X - X_hat) ** 2
    assert float(nmf_reconstruction_loss(X, X_hat)) == pytest.approx(sq.sum(axis=(1, 2)).mean(), rel=1e-12)
    assert float(nmf_reconstruction_loss(X, X_hat, reduction="mean")) == pytest.approx(sq.mean(), rel=1e-12)
    f = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    g = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    assert float(crossentropy(f, g, False)) == pytest.approx(np.mean(-np.sum(f * np.log(g), axis=1)), rel=1e-9)
    bce = -(f * np.log(g) + (1 - f) * np.log(1 - g))
    assert float(crossentropy(f, g, True)) == pytest.approx(bce.mean(), rel=1e-9)
    with pytest.raises(ValueError, match="reduction"):
        nmf_reconstruction_loss(X, X_hat, reduction="max")


def test_training_scores_are_the_evaluation_metrics():
    """Training-time fidelity/task scores are l2i.metrics' (what evaluate.py and tables.py report)."""
    from l2i.metrics import fidelity_scores, task_scores
    from l2i.training import classifier_scores

    rng = np.random.default_rng(3)
    classes = ("engine", "machinery-impact", "non-machinery-impact", "powered-saw", "alert-signal", "music",
               "human-voice", "dog")
    f, g = rng.random((30, 8)), rng.random((30, 8))
    scores = interpreter_scores(g, f, multilabel=True, dataset="sonyc_ust", classes=classes)
    assert scores == {f"fidelity_{k}": v for k, v in fidelity_scores("sonyc_ust", classes, True, f, g).items()}
    assert {"fidelity_macro_auprc", "fidelity_macro_auprc_ap", "fidelity_max_f1"} <= set(scores)
    openmic = interpreter_scores(g[:, :4], f[:, :4], multilabel=True, dataset="openmic", classes="abcd")
    assert set(openmic) == {"fidelity_weighted_f1"}
    labels = (rng.random((30, 4)) > 0.5).astype(float)
    labels[0, 1] = np.nan
    assert classifier_scores(labels, g[:, :4], True, prefix="test_", dataset="openmic", classes="abcd") == \
        task_scores("openmic", "abcd", True, labels, g[:, :4], prefix="test_")


def test_batches_read_both_caches(esc10_fold1):
    data = esc10_fold1
    rows = data.rows["train"][:10]
    batches = L2IBatches(data.mel, data.logmag, rows, data.targets["train"][:10], 4, shuffle=True, seed=3)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 431, 128) and y["spectrogram"].shape == (4, 513, 431)
    assert y["labels"].shape == (4, 10) and np.all(y["teacher"] == 0)
    positions = np.sort(batches._order[:4])
    np.testing.assert_array_equal(x, data.mel[rows[positions]])
    np.testing.assert_array_equal(y["spectrogram"], np.asarray(data.logmag[rows[positions]]).transpose(0, 2, 1))
    again = L2IBatches(data.mel, data.logmag, rows, data.targets["train"][:10], 4, shuffle=True, seed=3)
    np.testing.assert_array_equal(again[0][0], x)


def _tiny_classifier(data, seed=0):
    keras.utils.set_random_seed(seed)
    mean = np.asarray(data.mel[data.rows["train"][:32]]).reshape(-1, 128).mean(0)
    std = np.asarray(data.mel[data.rows["train"][:32]]).reshape(-1, 128).std(0) + 1e-3
    return KumarCNN(n_classes=10, n_frames=431, input_mean=mean, input_std=std, **TINY_CLASSIFIER)


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]


def test_posthoc_loss_decreases_with_f_frozen(esc10_fold1, rng):
    data = esc10_fold1
    f = _tiny_classifier(data)
    rows, labels = data.rows["train"][:16], data.targets["train"][:16]
    teacher = f.predict(np.asarray(data.mel[rows]), verbose=0)
    before = _weights(f)
    trainer = L2ITrainer(f, unit_dictionary(rng, n_components=8), mode="posthoc", alpha=10.0, beta=0.8,
                         interpreter_kwargs=TINY_INTERPRETER)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3), run_eagerly=True)
    assert not any(w.trainable for w in f.weights)
    assert "classifier" not in trainer.output_names if hasattr(trainer, "output_names") else True
    batch = L2IBatches(data.mel, data.logmag, rows, labels, 16, teacher=teacher)
    x, y = batch[0]
    losses = [float(trainer.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(8)]
    assert losses[-1] < losses[0], losses
    for b, a in zip(before, _weights(f)):
        np.testing.assert_array_equal(b, a)  # f's weights and batch-norm statistics untouched
    terms, total = trainer.loss_terms(y, trainer(x))
    assert float(terms["classification"]) == 0.0 and float(terms["nmf"]) > 0


@pytest.mark.parametrize("mode", ["bydesign", "bydesign_nopred"])
def test_bydesign_modes_train_f_and_combine_terms(esc10_fold1, rng, mode):
    data = esc10_fold1
    f = _tiny_classifier(data, seed=1)
    trainer = L2ITrainer(f, unit_dictionary(rng, n_components=8), mode=mode, alpha=3.0, beta=0.2, gamma=1.0,
                         theta="max", interpreter_kwargs=TINY_INTERPRETER)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    rows, labels = data.rows["train"][:8], data.targets["train"][:8]
    x, y = L2IBatches(data.mel, data.logmag, rows, labels, 8)[0]
    out = trainer(x)
    terms, total = trainer.loss_terms(y, out)
    g, fo = (keras.ops.convert_to_numpy(out[k]) for k in ("interpreter", "classifier"))
    ce = lambda t, p: float(np.mean(-np.sum(t * np.log(np.clip(p, 1e-7, 1)), axis=1)))  # noqa: E731
    if mode == "bydesign":
        np.testing.assert_allclose(float(terms["classification"]), ce(labels, fo), rtol=1e-3)
        np.testing.assert_allclose(float(terms["fidelity"]), ce(fo, g), rtol=1e-3)
    else:
        np.testing.assert_allclose(float(terms["classification"]), ce(labels, g), rtol=1e-3)
        assert float(terms["fidelity"]) == 0.0
    expected = float(terms["classification"]) + float(terms["fidelity"]) + 3.0 * float(terms["nmf"]) \
        + 0.2 * float(terms["sparsity"])
    np.testing.assert_allclose(float(total), expected, rtol=1e-5)
    before = _weights(f)
    trainer.train_on_batch(x, y)
    assert any(not np.array_equal(b, a) for b, a in zip(before, _weights(f))), "f must be trained by design"


def _cli(script, *args, env):
    command = [sys.executable, str(REPO / "experiments" / "l2i" / script), *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    for var in ("KERAS_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        env[var] = str(tmp_path / var.lower())
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


@pytest.fixture
def tiny_config(tmp_path):
    config = yaml.safe_load((REPO / "l2i" / "configs" / "esc50.yaml").read_text())
    config["classifier"].update({k: list(v) if isinstance(v, tuple) else v for k, v in TINY_CLASSIFIER.items()})
    config["interpreter"].update(TINY_INTERPRETER)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _common(shared_data, cache, output, config):
    return ["--dataset", "esc10", "--fold", "1", "--data-dir", str(shared_data), "--cache-dir", str(cache),
            "--output", str(output), "--config", str(config), "--seed", "0", "--epochs", "1"]


def test_clis_end_to_end_and_resume(esc10_fold1, shared_data, l2i_cache_dir, tmp_path, cli_env, tiny_config):
    output = tmp_path / "runs"
    common = _common(shared_data, l2i_cache_dir, output, tiny_config)
    _cli("train_classifier.py", *common, "--verbose", "0", env=cli_env)
    _cli("learn_dictionary.py", *common, "--n-components", "6", env=cli_env)
    interpret = ("train_interpreter.py", *common, "--n-components", "6", "--mode", "posthoc", "--theta", "att",
                 "--verbose", "0")
    _cli(*interpret, env=cli_env)
    run = output / "l2i" / "esc10" / "fold1" / "seed0"
    classifier = json.loads((run / "classifier" / "results.json").read_text())
    assert 0 <= classifier["test_accuracy"] <= 1 and classifier["epochs"] == 1
    # The tiny config is not the paper's: its runs are ablations, named by a tag and a hash of their identity.
    (dictionary,) = run.glob("dictionary-K6-*")
    W = np.load(dictionary / "W.npy")
    assert W.shape == (513, 6)
    (interpreter,) = run.glob("posthoc_att-*")
    results = json.loads((interpreter / "results.json").read_text())
    assert results["identity"]["dictionary"]["n_components"] == 6
    for key in ("accuracy", "fidelity_top1", "fidelity_top5", "seconds", "n_params", "command"):
        assert key in results
    assert results["fidelity_top1"] <= results["fidelity_top5"] <= 1 and results["epochs_this_run"] == 1
    assert "train_interpreter.py" in results["command"]
    g = keras.models.load_model(interpreter / "interpreter.keras")
    assert tuple(g.outputs[2].shape) == (None, 6, 431)
    # Re-running resumes from the checkpoint: nothing left to train, same model.
    _cli(*interpret, env=cli_env)
    again = json.loads((interpreter / "results.json").read_text())
    assert again["epochs_this_run"] == 0 and again["epochs"] == 1
    assert again["fidelity_top1"] == results["fidelity_top1"]


@pytest.mark.slow
@pytest.mark.parametrize("mode, theta", [("bydesign", "att"), ("bydesign_nopred", "max"), ("posthoc", "max")])
def test_cli_other_modes(esc10_fold1, shared_data, l2i_cache_dir, tmp_path, cli_env, tiny_config, mode, theta):
    output = tmp_path / "runs"
    common = _common(shared_data, l2i_cache_dir, output, tiny_config)
    if mode == "posthoc":
        _cli("train_classifier.py", *common, "--verbose", "0", env=cli_env)
    _cli("learn_dictionary.py", *common, "--n-components", "6", env=cli_env)
    _cli("train_interpreter.py", *common, "--n-components", "6", "--mode", mode, "--theta", theta, "--verbose", "0",
         env=cli_env)
    (run,) = (output / "l2i" / "esc10" / "fold1" / "seed0").glob(f"{mode}_{theta}-*")
    results = json.loads((run / "results.json").read_text())
    assert results["mode"] == mode and 0 <= results["accuracy"] <= 1
    if mode != "posthoc":
        assert (run / "classifier.keras").exists()
