"""Issue 12 on L2I: resumed runs are the runs they resume (bit for bit), and a NaN loss stops training.

Real ESC-10 clips of fold 1 (tests/l2i/_esc10.py), subsampled to a few batches.
"""
import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.global_state import backup_arrays, h5_arrays, scramble_global_state
from tests.l2i._esc10 import TINY_CLASSIFIER, TINY_INTERPRETER, esc10_fold1, l2i_cache_dir  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
SIZES = {"train": 24, "test": 8}


def small_config():
    """The ESC-50/10 config with tiny networks, batches of 8, 3 epochs, dropout in f and in Theta."""
    config = yaml.safe_load((REPO / "l2i" / "configs" / "esc50.yaml").read_text())
    config["classifier"].update({k: list(v) if isinstance(v, tuple) else v for k, v in TINY_CLASSIFIER.items()})
    config["classifier"].update(epochs=3, batch_size=8, head_units=16, dropout=0.2)
    config["interpreter"].update(TINY_INTERPRETER)
    config["interpreter"]["attention_dropout"] = 0.4
    config["bydesign"]["epochs"] = 3
    config.update(seed=0, batch_size=8)
    return config


def subsample(fold, sizes=SIZES, mel=None):
    rng = np.random.default_rng(0)
    rows, targets = dict(fold.rows), dict(fold.targets)
    for split, n in sizes.items():
        picked = np.sort(rng.choice(len(fold.rows[split]), size=n, replace=False))
        rows[split], targets[split] = fold.rows[split][picked], fold.targets[split][picked]
    return dataclasses.replace(fold, rows=rows, targets=targets, features=fold.mel if mel is None else mel)


@pytest.fixture
def small_esc10(esc10_fold1, monkeypatch):
    import l2i.training

    fold = subsample(esc10_fold1)
    monkeypatch.setattr(l2i.training, "load_fold", lambda *args, **kwargs: fold)
    return fold


@pytest.fixture
def dictionary(tmp_path_factory):
    from l2i.nmf import save_dictionary

    W = np.random.default_rng(0).random((513, 6)).astype("float32") + 0.01
    path = tmp_path_factory.mktemp("dictionary") / "W"
    save_dictionary(path, W / np.linalg.norm(W, axis=0))
    return path


def assert_same_arrays(a, b):
    assert sorted(a) == sorted(b)
    different = [name for name in a if not np.array_equal(a[name], b[name])]
    assert not different, f"{len(different)} of {len(a)} arrays differ, e.g. {different[:3]}"


def assert_same_history(a, b):
    ha, hb = (pd.read_csv(Path(d) / "history.csv").drop(columns="seconds") for d in (a, b))
    assert len(ha) == 3
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)


def assert_same_model_file(a, b):
    ma, mb = (keras.models.load_model(p, compile=False) for p in (a, b))
    for x, y in zip(ma.get_weights(), mb.get_weights()):
        assert np.array_equal(x, y)



def test_resumed_classifier_is_the_uninterrupted_run(small_esc10, tmp_path):
    from l2i.training import train_classifier

    config = {**small_config()["classifier"], "seed": 0}
    straight = train_classifier(config, "esc10", 1, tmp_path / "straight", verbose=0)
    train_classifier({**config, "epochs": 1}, "esc10", 1, tmp_path / "resumed", verbose=0)
    scramble_global_state()
    resumed = train_classifier(config, "esc10", 1, tmp_path / "resumed", verbose=0)
    assert resumed["epochs_this_run"] == 2 and resumed["epochs"] == 3
    assert_same_arrays(backup_arrays(tmp_path / "straight"), backup_arrays(tmp_path / "resumed"))
    assert_same_history(tmp_path / "straight", tmp_path / "resumed")
    assert_same_model_file(tmp_path / "straight" / "classifier.keras", tmp_path / "resumed" / "classifier.keras")
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_resumed_interpreter_is_the_uninterrupted_run(small_esc10, dictionary, tmp_path):
    """By design (f with dropout trained jointly, Theta with attention dropout) and a validation split
    selecting the best epoch: the backup, history, best checkpoint and saved models agree exactly."""
    from l2i.training import train_interpreter

    config = {**small_config(), "validation_fraction": 0.25}

    def run(run_dir, epochs):
        section = {**config["bydesign"], "epochs": epochs}
        return train_interpreter({**config, "bydesign": section}, "esc10", 1, run_dir, mode="bydesign",
                                 dictionary_path=dictionary, verbose=0)

    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 1)
    scramble_global_state()
    resumed = run(tmp_path / "resumed", 3)
    assert resumed["epochs_this_run"] == 2 and resumed["epochs"] == 3
    a, b = tmp_path / "straight", tmp_path / "resumed"
    assert_same_arrays(backup_arrays(a), backup_arrays(b))
    assert_same_history(a, b)
    assert json.loads((a / "best.json").read_text()) == json.loads((b / "best.json").read_text())
    assert_same_arrays(h5_arrays(a / "best.weights.h5"), h5_arrays(b / "best.weights.h5"))
    for name in ("interpreter.keras", "classifier.keras"):
        assert_same_model_file(a / name, b / name)
    for key in ("accuracy", "fidelity_top1", "test_nmf_loss", "selected_epoch"):
        assert resumed[key] == straight[key], key


def test_resumed_tdl_nmf_is_the_uninterrupted_run(small_esc10, tmp_path):
    from l2i.baselines import TDLNMFClassifier

    fold = small_esc10
    rows, labels = fold.rows["train"], fold.targets["train"]

    def fit(run_dir, epochs):
        model = TDLNMFClassifier(n_components=4, n_iter=3, n_iter_dictionary=5, epochs=epochs, batch_size=8, seed=0)
        return model.fit(fold.logmag, labels, n_classes=10, rows=rows, run_dir=run_dir)

    straight = fit(tmp_path / "straight", 3)
    fit(tmp_path / "resumed", 1)
    scramble_global_state()
    resumed = fit(tmp_path / "resumed", 3)
    assert resumed.epochs_this_run_ == 2 and len(resumed.history_["loss"]) == 3
    assert_same_arrays(backup_arrays(tmp_path / "straight"), backup_arrays(tmp_path / "resumed"))
    assert_same_history(tmp_path / "straight", tmp_path / "resumed")
    for x, y in zip(straight.model_.get_weights(), resumed.model_.get_weights()):
        assert np.array_equal(x, y)


# ----------------------------------------------------------------------------- NaN losses
@pytest.fixture
def corrupted_esc10(esc10_fold1, monkeypatch):
    """The small fold with one training clip's log-mel all NaN (a corrupted cache), in memory."""
    import l2i.training

    fold = subsample(esc10_fold1)
    mel = np.array(esc10_fold1.mel[np.arange(esc10_fold1.mel.shape[0])], dtype=np.float32)
    mel[fold.rows["train"][5]] = np.nan
    fold = dataclasses.replace(fold, features=mel)
    monkeypatch.setattr(l2i.training, "load_fold", lambda *args, **kwargs: fold)
    return fold


def test_nan_loss_stops_train_classifier(corrupted_esc10, tmp_path):
    from audiodata.errors import AudioDataError
    from audioruns.errors import TrainingDivergedError

    from l2i.training import train_classifier

    # The NaN clip poisons f's input normalisation: every output is NaN, which the clipped cross-entropy
    # logs as a finite loss; the weights turn NaN and are caught at the end of the epoch.
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1: weight .* = nan") as caught:
        train_classifier({**small_config()["classifier"], "seed": 0}, "esc10", 1, tmp_path, verbose=0)
    assert isinstance(caught.value, AudioDataError) and str(tmp_path) in str(caught.value)
    assert not (tmp_path / "classifier.keras").exists()
    assert not (tmp_path / "backup" / "training_metadata.json").exists()  # no backup of the NaN epoch
    assert (tmp_path / "history.csv").read_text() == ""  # created by CSVLogger, no row


def test_nan_loss_stops_train_interpreter(corrupted_esc10, dictionary, tmp_path):
    from audioruns.errors import TrainingDivergedError

    from l2i.training import train_interpreter

    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1") as caught:
        train_interpreter(small_config(), "esc10", 1, tmp_path, mode="bydesign", dictionary_path=dictionary,
                          verbose=0)
    assert str(tmp_path) in str(caught.value)
    assert not (tmp_path / "interpreter.keras").exists()
    assert not (tmp_path / "backup" / "training_metadata.json").exists()
