"""Optional checkpoint selection of the L2I interpreter on a validation split carved from the training clips."""
import csv
import json

import keras
import numpy as np
import pytest

import l2i.training as training
from audioruns.fit import KeepBestWeights
from l2i.training import (ValidationFidelity, best_checkpoint, fit_resumable, interpreter_scores, selection_metric,
                          validation_split)
from tests.l2i._esc10 import TINY_CLASSIFIER, TINY_INTERPRETER, esc10_fold1, l2i_cache_dir  # noqa: F401


# --------------------------------------------------------------------------- the split
def _one_hot(classes, n_classes):
    return np.eye(n_classes, dtype=np.float32)[classes]


def test_validation_split_is_stratified_disjoint_and_deterministic():
    counts = [10, 7, 3, 1, 25]
    classes = np.random.default_rng(0).permutation(np.repeat(np.arange(5), counts))
    labels = _one_hot(classes, 5)
    train, held = validation_split(labels, 0.2, seed=4)
    assert len(np.intersect1d(train, held)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))
    # round(0.2 n_c) per class, half up, at most n_c - 1: 10 -> 2, 7 -> 1, 3 -> 1, 1 -> 0, 25 -> 5
    np.testing.assert_array_equal(np.bincount(classes[held], minlength=5), [2, 1, 1, 0, 5])
    assert set(classes[train]) == set(range(5))
    again_train, again_held = validation_split(labels, 0.2, seed=4)
    np.testing.assert_array_equal(held, again_held)
    np.testing.assert_array_equal(train, again_train)
    other = validation_split(labels, 0.2, seed=5)[1]
    assert not np.array_equal(held, other)
    np.testing.assert_array_equal(np.bincount(classes[other], minlength=5), [2, 1, 1, 0, 5])  # still stratified


def test_validation_split_multilabel_and_errors():
    labels = (np.random.default_rng(1).random((40, 4)) > 0.5).astype(np.float32)
    labels[0, 1] = np.nan
    train, held = validation_split(labels, 0.25, seed=0, multilabel=True)
    assert len(held) == 10 and len(train) == 30 and len(np.intersect1d(train, held)) == 0
    np.testing.assert_array_equal(held, validation_split(labels, 0.25, seed=0, multilabel=True)[1])
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            validation_split(labels, fraction, seed=0)
    with pytest.raises(ValueError, match="no validation clip"):
        validation_split(_one_hot(np.arange(4), 4), 0.3, seed=0)  # one clip per class: nothing to hold out


def test_selection_metric():
    assert selection_metric("esc50", False) == "fidelity_top1"
    assert selection_metric("openmic", True) == "fidelity_weighted_f1"
    assert selection_metric("sonyc_ust", True) == "fidelity_macro_auprc"


# --------------------------------------------------------------------------- best epoch, resume
class _Data(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(16, 3)).astype("float32")
        self.y = rng.normal(size=(16, 1)).astype("float32")

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 8:(i + 1) * 8], self.y[i * 8:(i + 1) * 8]


class _Scripted(keras.callbacks.Callback):
    """A stand-in for ValidationFidelity: logs a known value per epoch and records the weights of each epoch."""

    monitor = "val_fidelity_top1"

    def __init__(self, values, snapshots):
        super().__init__()
        self.values, self.snapshots = values, snapshots

    def on_epoch_end(self, epoch, logs=None):
        logs[self.monitor] = self.values[epoch]
        self.snapshots[epoch] = [np.array(w.numpy()) for w in self.model.weights]


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _assert_weights(model, expected):
    for w, e in zip(model.weights, expected):
        np.testing.assert_array_equal(np.asarray(w.numpy()), e)


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_fit_resumable_keeps_the_best_validation_epoch(tmp_path):
    values, snapshots = [0.2, 0.5, 0.9, 0.4, 0.9], {}
    model = _model()
    history, epochs_run = fit_resumable(model, _Data(), tmp_path, 5, verbose=0,
                                        validation=_Scripted(values, snapshots))
    assert epochs_run == 5 and [row["val_fidelity_top1"] for row in history] == values
    assert best_checkpoint(tmp_path) == {"epoch": 2, "value": 0.9, "monitor": "val_fidelity_top1"}  # first max
    _assert_weights(model, snapshots[2])
    assert not np.array_equal(snapshots[2][0], snapshots[4][0])  # the last epoch differs: a real selection
    # without validation: the last epoch, as before
    last = _model()
    fit_resumable(last, _Data(), tmp_path / "plain", 5, verbose=0)
    _assert_weights(last, snapshots[4])


def test_fit_resumable_keeps_the_best_across_a_resume(tmp_path):
    values, snapshots = [0.3, 0.7, 0.5, 0.6, 0.4], {}
    fit_resumable(_model(), _Data(), tmp_path, 2, verbose=0, validation=_Scripted(values, snapshots))
    assert best_checkpoint(tmp_path)["epoch"] == 1
    model = _model()  # a new process: fresh weights, the backup restores epoch 1's
    history, epochs_run = fit_resumable(model, _Data(), tmp_path, 5, verbose=0,
                                        validation=_Scripted(values, snapshots))
    assert epochs_run == 3 and [int(row["epoch"]) for row in history] == [0, 1, 2, 3, 4]
    # epochs 2-4 (0.5, 0.6, 0.4) beat nothing once the best (0.7) is read back from history.csv
    assert best_checkpoint(tmp_path)["epoch"] == 1
    _assert_weights(model, snapshots[1])
    # all epochs done: only restores, and still ends with the best epoch's weights
    again = _model()
    assert fit_resumable(again, _Data(), tmp_path, 5, verbose=0, validation=_Scripted(values, {}))[1] == 0
    _assert_weights(again, snapshots[1])


def test_fit_resumable_recovers_a_best_epoch_interrupted_before_its_save(tmp_path, monkeypatch):
    """Killed after the backup of the best epoch, before its weights were saved: the backup provides them."""
    values, snapshots = [0.1, 0.3, 0.8, 0.2], {}
    save = KeepBestWeights.on_epoch_end

    def crash_at_2(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        save(self, epoch, logs)

    monkeypatch.setattr(KeepBestWeights, "on_epoch_end", crash_at_2)
    with pytest.raises(KeyboardInterrupt):
        fit_resumable(_model(), _Data(), tmp_path, 4, verbose=0, validation=_Scripted(values, snapshots))
    monkeypatch.undo()
    assert best_checkpoint(tmp_path)["epoch"] == 1 and len(_history(tmp_path)) == 3
    model = _model()
    fit_resumable(model, _Data(), tmp_path, 4, verbose=0, validation=_Scripted(values, snapshots))
    assert best_checkpoint(tmp_path) == {"epoch": 2, "value": 0.8, "monitor": "val_fidelity_top1"}
    _assert_weights(model, snapshots[2])


def test_fit_resumable_without_a_defined_value_keeps_the_last_epoch(tmp_path):
    snapshots = {}
    model = _model()
    fit_resumable(model, _Data(), tmp_path, 2, verbose=0, validation=_Scripted([float("nan")] * 2, snapshots))
    assert best_checkpoint(tmp_path) is None
    _assert_weights(model, snapshots[1])


# --------------------------------------------------------------------------- the validation score
class _FakeTrainer:
    """predict_on_batch of an L2ITrainer whose outputs are looked up by the row number each input encodes."""

    def __init__(self, g, f):
        self.g, self.f = g, f

    def predict_on_batch(self, x):
        rows = np.asarray(x)[:, 0, 0].astype(int)
        return {"interpreter": self.g[rows], "classifier": self.f[rows]}


def test_validation_fidelity_scores_the_interpreter_against_f():
    rng = np.random.default_rng(0)
    n, C = 12, 4
    mel = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 2, 3))
    f, g = rng.random((n, C)), rng.random((n, C))
    rows = rng.permutation(n)[:9]  # unsorted: batches read rows sorted within a batch
    batches = training.L2IBatches(mel, None, rows, None, 4, targets="none")
    expected = float(np.mean(np.argmax(f[rows], 1) == np.argmax(g[rows], 1)))
    by_design = ValidationFidelity(batches, dataset="esc50", classes=tuple("abcd"))
    assert by_design.monitor == "val_fidelity_top1"
    assert by_design.score(_FakeTrainer(g, f)) == pytest.approx(expected)
    # post-hoc: f's fixed outputs, in the order of the batches (as classifier.predict(batches) gives them)
    teacher = np.concatenate([f[np.asarray(batches[i][0])[:, 0, 0].astype(int)] for i in range(len(batches))])
    posthoc = ValidationFidelity(batches, teacher=teacher, dataset="esc50", classes=tuple("abcd"))
    assert posthoc.score(_FakeTrainer(g, np.full_like(f, np.nan))) == pytest.approx(expected)
    openmic = ValidationFidelity(batches, dataset="openmic", classes=tuple("abcd"), multilabel=True)
    assert openmic.monitor == "val_fidelity_weighted_f1"
    assert openmic.score(_FakeTrainer(g, f)) == pytest.approx(
        interpreter_scores(g[rows], f[rows], True, dataset="openmic", classes="abcd")["fidelity_weighted_f1"])


# --------------------------------------------------------------------------- the interpreter, real ESC-10 clips
def test_train_interpreter_selects_on_validation(esc10_fold1, tmp_path, monkeypatch, rng):
    """Post-hoc on 40 ESC-10 training clips (4 per class): the saved interpreter is the best validation epoch's.

    The logged validation values are scripted (a tiny interpreter on 30 clips barely moves its top-1
    agreement); the real score of each epoch is kept to check it against the saved model's.
    """
    from l2i.classifier import KumarCNN
    from l2i.nmf import save_dictionary
    from tests.l2i._esc10 import unit_dictionary

    data = esc10_fold1
    classes = np.argmax(data.targets["train"], axis=1)
    keep = np.sort(np.concatenate([np.flatnonzero(classes == c)[:4] for c in range(10)]))
    small = training.dataclasses.replace(
        data, rows={"train": data.rows["train"][keep], "test": data.rows["test"][:10]},
        targets={"train": data.targets["train"][keep], "test": data.targets["test"][:10]})
    monkeypatch.setattr(training, "load_fold", lambda *args, **kwargs: small)
    scripted, real, snapshots = [0.2, 0.6, 0.4], {}, {}
    score = ValidationFidelity.score

    def on_epoch_end(self, epoch, logs=None):
        real[epoch] = score(self)
        snapshots[epoch] = [np.array(w.numpy()) for w in self.model.interpreter.weights]
        logs[self.monitor] = scripted[epoch]

    monkeypatch.setattr(ValidationFidelity, "on_epoch_end", on_epoch_end)
    keras.utils.set_random_seed(0)
    mel = np.asarray(data.mel[small.rows["train"]]).reshape(-1, 128)
    f = KumarCNN(n_classes=10, n_frames=431, input_mean=mel.mean(0), input_std=mel.std(0) + 1e-3, **TINY_CLASSIFIER)
    f.save(tmp_path / "classifier.keras")
    save_dictionary(tmp_path / "W.npy", unit_dictionary(rng, n_components=6))
    config = {"seed": 3, "batch_size": 10, "learning_rate": 1e-2, "interpreter": dict(TINY_INTERPRETER),
              "posthoc": {"alpha": 1.0, "beta": 0.1, "epochs": 3}, "validation_fraction": 0.25}
    run_dir = tmp_path / "run"

    def train():
        return training.train_interpreter(config, "esc10", 1, run_dir, mode="posthoc",
                                          classifier_path=tmp_path / "classifier.keras",
                                          dictionary_path=tmp_path / "W.npy", verbose=0)

    results = train()
    # 0.25 of 4 clips per class -> 1 per class, from the seed; trained on the other 30
    held = validation_split(small.targets["train"], 0.25, seed=3)[1]
    ids = data.mel.clips["clip_id"].to_numpy()
    assert results["validation_clips"] == [str(c) for c in ids[small.rows["train"][held]]]
    assert results["n_validation"] == 10 and results["n_train"] == 30 and results["checkpoint"] == "best_validation"
    assert sorted(np.argmax(small.targets["train"][held], axis=1)) == list(range(10))
    assert [float(row["val_fidelity_top1"]) for row in _history(run_dir)] == scripted
    assert results["selection_metric"] == "val_fidelity_top1" and results["selected_epoch"] == 1
    assert results["best_validation_fidelity"] == 0.6
    # the saved interpreter holds epoch 1's weights (not the last epoch's) ...
    g = keras.models.load_model(run_dir / "interpreter.keras")
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[1], snapshots[2]))
    for w, e in zip(g.weights, snapshots[1]):
        np.testing.assert_array_equal(np.asarray(w.numpy()), e)
    # ... and, scored on the validation clips, gives epoch 1's validation fidelity
    x = np.asarray(data.mel[small.rows["train"][held]])
    g_probs = np.asarray(g.predict(x, verbose=0)[0])
    fidelity = interpreter_scores(g_probs, f.predict(x, verbose=0), False, ks=(1,))["fidelity_top1"]
    assert fidelity == pytest.approx(real[1])
    # resume with everything done: same selection, nothing trained
    again = train()
    assert again["epochs_this_run"] == 0 and again["selected_epoch"] == 1
    assert again["fidelity_top1"] == results["fidelity_top1"]


def test_validation_fraction_is_part_of_the_run_identity():
    from l2i.runs import default_config, differences, interpreter_folder, interpreter_identity, main_identity

    config = default_config("esc50")
    ids = main_identity("esc50")
    plain = interpreter_identity(config, "posthoc", "att", ids["dictionary"], ids["classifier"])
    assert plain == ids and "validation_fraction" not in plain
    assert interpreter_identity(dict(config, validation_fraction=None), "posthoc", "att", ids["dictionary"],
                                ids["classifier"]) == ids
    held = interpreter_identity(dict(config, validation_fraction=0.1), "posthoc", "att", ids["dictionary"],
                                ids["classifier"])
    assert held["validation_fraction"] == 0.1 and differences(held, "esc50") == ["validation_fraction"]
    assert interpreter_folder("posthoc", "att", held, "esc50").startswith("posthoc_att-val0.1-")
    assert json.dumps(held)  # JSON-serialisable (identity.json)
