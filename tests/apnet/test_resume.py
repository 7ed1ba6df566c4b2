"""Issue 12 on APNet: a resumed run is the run it resumes (bit for bit), and a NaN loss stops training.

Real FSDD clips (fold 1), subsampled to a few batches so that each run takes seconds.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.global_state import backup_arrays, scramble_global_state

REPO = Path(__file__).resolve().parents[2]

#: A small APNet (and the baselines' settings) for runs of a few seconds per epoch.
CONFIG = {"seed": 0, "features": "mel", "n_prototypes": 10, "n_filters": 4, "kernel_size": 3, "alpha": 10,
          "beta": 5, "gamma": 5, "batch_size": 32, "learning_rate": 0.001, "epochs": 3,
          "baseline_batch_size": {"sb_cnn": 32}, "baseline_options": {"sb_cnn": {"batch_norm_momentum": 0.9}}}
SIZES = {"train": 96, "validation": 32, "test": 32}


def subsample(fold, sizes=SIZES):
    """The first ``sizes[split]`` clips of each split of a real fold, in a fixed random draw."""
    from apnet.training import FoldData

    rng = np.random.default_rng(0)
    rows, targets = {}, {}
    for split, n in sizes.items():
        picked = np.sort(rng.choice(len(fold.rows[split]), size=n, replace=False))
        rows[split], targets[split] = fold.rows[split][picked], fold.targets[split][picked]
    return FoldData(fold.features, rows, targets, fold.classes)


@pytest.fixture
def small_fsdd(fsdd_fold, monkeypatch):
    """train_fold reads 96 / 32 / 32 real FSDD clips of fold 1 (mel features, whatever the model)."""
    import apnet.training

    fold = subsample(fsdd_fold)
    monkeypatch.setattr(apnet.training, "load_fold", lambda *args, **kwargs: fold)
    return fold


def assert_same_run(a, b):
    """Same last-epoch weights and optimizer state, same best model, same history (except timings)."""
    wa, wb = backup_arrays(a), backup_arrays(b)
    assert sorted(wa) == sorted(wb)
    different = [name for name in wa if not np.array_equal(wa[name], wb[name])]
    assert not different, f"{len(different)} of {len(wa)} backed-up arrays differ, e.g. {different[:3]}"
    ha, hb = (pd.read_csv(Path(d) / "history.csv").drop(columns="seconds") for d in (a, b))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    ma, mb = (keras.models.load_model(Path(d) / "model.keras") for d in (a, b))
    for x, y in zip(ma.get_weights(), mb.get_weights()):
        assert np.array_equal(x, y)



@pytest.mark.parametrize("model_name", ["sb_cnn"])
def test_resumed_baseline_with_dropout_is_the_uninterrupted_run(small_fsdd, tmp_path, model_name):
    """SB-CNN has two Dropout layers: their seed generators must come back with the backup."""
    from apnet.training import train_fold

    straight = train_fold(CONFIG, "fsdd", 1, tmp_path / "straight", model_name=model_name, verbose=0)
    first = train_fold({**CONFIG, "epochs": 1}, "fsdd", 1, tmp_path / "resumed", model_name=model_name, verbose=0)
    assert first["epochs_this_run"] == 1
    scramble_global_state()
    resumed = train_fold(CONFIG, "fsdd", 1, tmp_path / "resumed", model_name=model_name, verbose=0)
    assert resumed["epochs_this_run"] == 2 and resumed["epochs"] == 3
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert resumed["best_val_accuracy"] == straight["best_val_accuracy"]


#: Runs train_fold on the subsampled fold in a fresh process; argv: data dir, cache dir, run dir, epochs, crash.
#: With crash = 1 the process kills itself (SIGKILL) after the second batch of the second epoch.
RUN_SCRIPT = r"""
import json, os, signal, sys
import apnet.training as T
import audioruns.fit
from tests.apnet.test_resume import CONFIG, subsample

data_dir, cache_dir, run_dir, epochs, crash = sys.argv[1:6]
fold = subsample(T.load_fold("fsdd", 1, "mel", data_dir=data_dir, cache_dir=cache_dir, n_jobs=1))
T.load_fold = lambda *args, **kwargs: fold
if crash == "1":
    class Crash(T.EpochTimer):
        def on_epoch_begin(self, epoch, logs=None):
            super().on_epoch_begin(epoch, logs)
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
    audioruns.fit.EpochTimer = Crash
results = T.train_fold({**CONFIG, "epochs": int(epochs)}, "fsdd", 1, run_dir, verbose=0)
print(json.dumps(results))
"""


def _run(args, tmp_path):
    env = dict(os.environ)
    for var in ("KERAS_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        env[var] = str(tmp_path / var.lower())
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", RUN_SCRIPT, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_apnet_killed_mid_epoch_resumes_to_the_uninterrupted_run(small_fsdd, shared_data, feature_cache, tmp_path):
    """The run of the issue: killed during epoch 2, resumed in a new process, it must end where the
    uninterrupted run ends (before the fix Keras' shuffle of the batch order drew from the global
    ``random``, whose state a new process does not have)."""
    from apnet.training import train_fold

    straight = train_fold(CONFIG, "fsdd", 1, tmp_path / "straight", verbose=0)
    run_dir = tmp_path / "killed"
    done = _run([shared_data, feature_cache, run_dir, 3, 1], tmp_path)
    assert done.returncode == -9, done.stderr[-3000:]
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    done = _run([shared_data, feature_cache, run_dir, 3, 0], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["epochs_this_run"] == 2 and resumed["epochs"] == 3
    assert_same_run(tmp_path / "straight", run_dir)
    assert resumed["test_accuracy"] == straight["test_accuracy"]


# ----------------------------------------------------------------------------- NaN losses
class NaNAtEpoch:
    """Features whose rows read as NaN while ``self.poisoned`` is set (a corrupted cache)."""

    def __init__(self, features):
        self.features, self.poisoned = features, False
        self.shape = features.shape

    def __getitem__(self, rows):
        x = np.array(self.features[rows], dtype=np.float32)
        if self.poisoned:
            x[:] = np.nan
        return x


def test_nan_loss_stops_fit_and_keeps_the_last_finite_backup(small_fsdd, fsdd_scaler, tmp_path):
    from audiodata.errors import AudioDataError
    from audioruns.errors import TrainingDivergedError

    from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet, fit_resumable
    from tests.apnet.test_training import small_apnet

    fold = small_fsdd
    features = NaNAtEpoch(fold.features)

    class Poisoned(FeatureBatches):  # NaN inputs from the second epoch on
        def set_epoch(self, epoch):
            super().set_epoch(epoch)
            features.poisoned = epoch >= 1

    def run(epochs):
        model = compile_apnet(small_apnet(), 10, 5, 5)
        train = Poisoned(features, fold.rows["train"], fold.targets["train"], 32, scaler=fsdd_scaler, shuffle=True)
        validation = FeatureBatches(fold.features, fold.rows["validation"], fold.targets["validation"], 32,
                                    scaler=fsdd_scaler)
        return model, fit_resumable(model, train, validation, tmp_path, epochs, APNET_MONITOR, verbose=0)

    with pytest.raises(TrainingDivergedError) as caught:
        run(3)
    err = caught.value
    assert isinstance(err, AudioDataError)
    assert str(tmp_path) in str(err) and "epoch 2, batch 1" in str(err) and "loss = nan" in str(err)
    assert (err.epoch, err.batch) == (2, 1)
    # Nothing of the diverged epoch was saved: backup, history and best model are those of epoch 1.
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [0]
    assert all(np.all(np.isfinite(a)) for a in backup_arrays(tmp_path).values())
    # Resuming (features repaired) continues from the finite weights of epoch 1.
    Poisoned.set_epoch = FeatureBatches.set_epoch
    features.poisoned = False
    model, (history, ran) = run(3)
    assert ran == 2 and list(history["epoch"]) == [0, 1, 2]
    assert np.all(np.isfinite(history["loss"]))
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)


def test_nan_loss_in_the_first_epoch_then_resume(small_fsdd, fsdd_scaler, tmp_path):
    """Diverged in epoch 1: no backup, an empty history.csv (CSVLogger creates it), and a re-run with
    repaired features trains from scratch instead of failing on the empty file."""
    from audioruns.errors import TrainingDivergedError

    from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet, fit_resumable
    from tests.apnet.test_training import small_apnet

    fold = small_fsdd
    features = NaNAtEpoch(fold.features)
    features.poisoned = True

    def run():
        train = FeatureBatches(features, fold.rows["train"], fold.targets["train"], 32, scaler=fsdd_scaler,
                               shuffle=True)
        validation = FeatureBatches(fold.features, fold.rows["validation"], fold.targets["validation"], 32,
                                    scaler=fsdd_scaler)
        return fit_resumable(compile_apnet(small_apnet(), 10, 5, 5), train, validation, tmp_path, 2, APNET_MONITOR,
                             verbose=0)

    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 1"):
        run()
    assert not (tmp_path / "backup" / "training_metadata.json").exists() and not (tmp_path / "model.keras").exists()
    features.poisoned = False
    history, ran = run()
    assert ran == 2 and list(history["epoch"]) == [0, 1]


def test_train_cli_exits_nonzero_on_a_nan_loss(fsdd_fold, shared_data, feature_cache, tmp_path):
    """``train.py`` with a learning rate that blows the weights up: exit 2, ``error: ...``, no results.json."""
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8, learning_rate=1e30)
    path = tmp_path / "fsdd_nan.yaml"
    path.write_text(yaml.safe_dump(config))
    output = tmp_path / "results"
    env = dict(os.environ)
    for var in ("KERAS_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        env[var] = str(tmp_path / var.lower())
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    command = [sys.executable, str(REPO / "experiments" / "apnet" / "train.py"), "--dataset", "fsdd", "--fold", "1",
               "--epochs", "1", "--data-dir", str(shared_data), "--cache-dir", str(feature_cache), "--config",
               str(path), "--output", str(output), "--verbose", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    run_dir = output / "apnet" / "fsdd" / "fold1" / "seed0"
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "error:" in done.stderr and "diverged" in done.stderr and str(run_dir) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (run_dir / "results.json").exists()
    assert not (run_dir / "model.keras").exists()
