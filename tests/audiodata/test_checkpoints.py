"""Tests of audioruns.checkpoints: atomic model files, clear errors for damaged ones, an atomic backup
that restores the dropout seed generators, and the NaN guard (issue 12, "Nothing silently wrong")."""
import json
import random

import keras
import numpy as np
import pytest

from audioruns.checkpoints import (AtomicBackupAndRestore, AtomicModelCheckpoint, DivergenceGuard, EpochOrder,
                                   load_model_file, load_weights_file, read_backup, save_model_atomic,
                                   seed_generator_states)
from audiodata.errors import AudioDataError
from audioruns.errors import ModelFileError, TrainingDivergedError


def tiny_model(seed=0, dropout=0.5, loss="categorical_crossentropy", activation="relu"):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation=activation)(inputs)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    return model


class Batches(keras.utils.PyDataset):
    """32 fixed samples in 4 batches whose order depends on (seed, epoch) only."""

    def __init__(self, poison_epoch=None):
        super().__init__()
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((32, 6)).astype("float32")
        self.y = np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]
        self.poison_epoch = poison_epoch
        self.set_epoch(0)

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.order = np.random.default_rng([0, epoch]).permutation(32)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        rows = self.order[i * 8:(i + 1) * 8]
        x = self.x[rows].copy()
        if self.epoch == self.poison_epoch and i == 2:
            x[:] = np.nan
        return x, self.y[rows]


def weights(model):
    return [np.array(w) for w in model.get_weights()]


# ----------------------------------------------------------------------------- atomic files
def test_save_model_atomic_writes_a_loadable_file_and_leaves_no_temporary(tmp_path):
    model = tiny_model()
    for name in ("m.keras", "m.weights.h5"):
        assert save_model_atomic(model, tmp_path / name) == tmp_path / name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.weights.h5"]
    for x, y in zip(weights(load_model_file(tmp_path / "m.keras")), weights(model)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="must end in"):
        save_model_atomic(model, tmp_path / "m.npz")


def _crash_after_half(monkeypatch, method):
    """Make ``keras.Model.<method>`` write half of a real file at its path, then die."""
    original = getattr(keras.Model, method)

    def half_then_crash(self, filepath, *args, **kwargs):
        original(self, filepath, *args, **kwargs)
        data = open(filepath, "rb").read()
        with open(filepath, "wb") as handle:
            handle.write(data[:len(data) // 2])
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, method, half_then_crash)


def test_a_checkpoint_killed_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model = tiny_model()
    data = Batches()
    checkpoint = AtomicModelCheckpoint(tmp_path / "model.keras", monitor="accuracy", mode="max",
                                       save_best_only=True)
    model.fit(data, epochs=1, callbacks=[checkpoint], verbose=0, shuffle=False)
    before = (tmp_path / "model.keras").read_bytes()
    saved = weights(load_model_file(tmp_path / "model.keras"))
    _crash_after_half(monkeypatch, "save")
    checkpoint = AtomicModelCheckpoint(tmp_path / "model.keras", monitor="accuracy", mode="max",
                                       save_best_only=True, initial_value_threshold=-1.0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=1, callbacks=[checkpoint], verbose=0, shuffle=False)
    assert (tmp_path / "model.keras").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left behind
    for x, y in zip(weights(load_model_file(tmp_path / "model.keras")), saved):
        np.testing.assert_array_equal(x, y)


def test_a_truncated_or_missing_model_file_is_reported_by_name(tmp_path):
    path = tmp_path / "model.keras"
    save_model_atomic(tiny_model(), path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="File not found"):  # what Keras says of a file that exists
        keras.models.load_model(path)
    with pytest.raises(ModelFileError, match="corrupt or truncated model file") as caught:
        load_model_file(path)
    assert str(path) in str(caught.value) and caught.value.path == str(path)
    assert isinstance(caught.value, AudioDataError) and isinstance(caught.value, ValueError)
    with pytest.raises(ModelFileError, match=f"model file {tmp_path / 'other.keras'} not found"):
        load_model_file(tmp_path / "other.keras")
    weights_path = tmp_path / "w.weights.h5"
    save_model_atomic(tiny_model(), weights_path)
    weights_path.write_bytes(weights_path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="corrupt or truncated weights file .*w.weights.h5"):
        load_weights_file(tiny_model(), weights_path)


# ----------------------------------------------------------------------------- the backup
def _fit(model, run_dir, epochs, data=None, extra=()):
    data = data or Batches()
    callbacks = [DivergenceGuard(run_dir), EpochOrder(data), *extra, AtomicBackupAndRestore(run_dir / "backup")]
    return model.fit(data, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)


def test_backup_restores_the_dropout_seed_generators(tmp_path):
    """Keras' save_weights leaves out the SeedGenerator states: a model rebuilt from them draws the
    dropout masks of the first epoch again. The backup keeps them, so resuming is exact."""
    straight = tiny_model()
    _fit(straight, tmp_path / "straight", 3)
    _fit(tiny_model(), tmp_path / "resumed", 1)
    state = read_backup(tmp_path / "resumed" / "backup")
    assert state["epoch"] == 1 and state["weights"] == "epoch1.weights.h5"
    assert len(state["seed_generators"]) == 1 and state["seed_generators"][0][1] == 4  # 4 batches drawn
    keras.utils.set_random_seed(99)
    random.seed(12345)
    resumed = tiny_model()
    history = _fit(resumed, tmp_path / "resumed", 3)
    assert len(history.history["loss"]) == 2
    assert seed_generator_states(resumed) == seed_generator_states(straight)
    for x, y in zip(weights(resumed), weights(straight)):
        assert np.array_equal(x, y)
    assert sorted(p.name for p in (tmp_path / "resumed" / "backup").iterdir()) == [
        "epoch3.weights.h5", "training_metadata.json"]


def test_backup_killed_mid_write_keeps_the_previous_epoch(tmp_path, monkeypatch):
    _fit(tiny_model(), tmp_path, 1)
    _crash_after_half(monkeypatch, "save_weights")
    with pytest.raises(KeyboardInterrupt):
        _fit(tiny_model(), tmp_path, 3)
    monkeypatch.undo()
    assert read_backup(tmp_path / "backup")["epoch"] == 1
    assert [p.name for p in (tmp_path / "backup").glob("*.weights.h5")] == ["epoch1.weights.h5"]
    history = _fit(tiny_model(), tmp_path, 3)  # resumes from the intact epoch 1
    assert len(history.history["loss"]) == 2


def test_a_truncated_backup_is_reported_clearly(tmp_path):
    _fit(tiny_model(), tmp_path, 1)
    path = tmp_path / "backup" / "epoch1.weights.h5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=f"corrupt or truncated training backup {path}"):
        _fit(tiny_model(), tmp_path, 2)
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 1, "wei')
    with pytest.raises(ModelFileError, match="corrupt or truncated training backup .*training_metadata.json"):
        _fit(tiny_model(), tmp_path, 2)


# ----------------------------------------------------------------------------- NaN
def test_divergence_guard_stops_before_the_epoch_is_saved(tmp_path):
    # (NaN inputs can log finite losses: TF's ReLU maps NaN to 0, Keras clips NaN probabilities; the
    # weights check at the end of the epoch catches that case, see below.)
    data = Batches(poison_epoch=1)
    with pytest.raises(TrainingDivergedError) as caught:
        _fit(tiny_model(loss="mse", activation="tanh"), tmp_path, 3, data=data)
    err = caught.value
    assert isinstance(err, AudioDataError) and isinstance(err, RuntimeError)
    assert (err.epoch, err.batch, err.loss) == (2, 3, "loss") and np.isnan(err.value)
    assert str(err).startswith(f"{tmp_path}: training diverged at epoch 2, batch 3: loss = nan")
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1


def test_divergence_guard_checks_validation_losses_and_weights(tmp_path):
    model = tiny_model(dropout=0.0, loss="mse", activation="tanh")
    validation = Batches(poison_epoch=0)
    validation.set_epoch = lambda epoch: None  # stays poisoned
    with pytest.raises(TrainingDivergedError, match="epoch 1: val_loss = nan"):
        model.fit(Batches(), validation_data=validation, epochs=2, callbacks=[DivergenceGuard(tmp_path)],
                  verbose=0, shuffle=False)
    # NaN inputs through a ReLU: finite logged losses, NaN weights (NaN gradients) after the epoch.
    with pytest.raises(TrainingDivergedError, match=r"epoch 2: weight .* = nan"):
        _fit(tiny_model(), tmp_path / "ce", 3, data=Batches(poison_epoch=1))
    assert read_backup(tmp_path / "ce" / "backup")["epoch"] == 1
    model = tiny_model(dropout=0.0)
    model.layers[1].kernel.assign(np.full((6, 8), np.inf, "float32"))
    guard = DivergenceGuard(None)
    guard.set_model(model)
    with pytest.raises(TrainingDivergedError, match=r"^training diverged at epoch 4: weight .*kernel = inf"):
        guard.on_epoch_end(3, {"loss": 0.5})
