"""``--distribute`` (audioruns.distribute): one model data-parallel over several devices.

Unit tests of :class:`DeviceInfo`, the no-op path, the batch-size check and :class:`EvenBatches`
run here (TensorFlow, one CPU). The real runs go through this file as a script in a subprocess:

* JAX with two virtual CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``):
  ``experiments/apnet/train.py`` on an FSDD excerpt, once without and once with ``--distribute``,
  from the same seed: the same first-epoch losses within 1e-5 (relative), the same accuracies, and
  ``results.json`` recording 1 and 2 devices (41 validation clips: a last validation batch of 9 rows,
  which the two-device run validates unsplit);
* TensorFlow with the CPU split into two logical devices (``tf.config.set_logical_device_configuration``):
  the same with :class:`tf.distribute.MirroredStrategy` (2 replicas);
* (slow) the L2I classifier on ESC-10 fold 1 under JAX.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from audiodata.errors import ParameterError
from audioruns import distribute
from audioruns.distribute import DeviceInfo, EvenBatches, check_batch_size, data_parallel

ROOT = Path(__file__).resolve().parents[2]
#: Relative tolerance on the first-epoch losses of one and two devices (float rounding of the split batch):
#: JAX computes the global batch's loss (measured: within 1e-7), MirroredStrategy each replica's, then the mean
#: (measured: within 2e-5).
RTOL = {"jax": 1e-5, "tensorflow": 1e-4}

TINY_APNET = """\
seed: 0
features: mel
folds: [1, 2, 3, 4, 5, 6]
n_prototypes: 10
n_filters: 8
kernel_size: 5
alpha: 10
beta: {beta}
gamma: 5
batch_size: 16
learning_rate: 0.001
epochs: 1
init_last_layer: true
early_stopping: null
"""


# ----------------------------------------------------------------------------- unit tests
def test_device_info_as_dict_and_checks():
    info = DeviceInfo("jax", "data_parallel", 2, ["cpu:0", "cpu:1"])
    assert info.devices == ("cpu:0", "cpu:1")
    assert info.as_dict() == {"backend": "jax", "strategy": "data_parallel", "n_devices": 2,
                              "devices": ["cpu:0", "cpu:1"]}
    json.dumps(info.as_dict())
    with pytest.raises(ValueError, match="strategy"):
        DeviceInfo("jax", "pipeline", 2)
    with pytest.raises(ValueError, match="n_devices=2"):
        DeviceInfo("jax", "none", 2)


def test_disabled_is_a_no_op():
    assert distribute.active() is None
    with data_parallel(False) as info:
        assert (info.backend, info.strategy, info.n_devices) == (keras.backend.backend(), "none", 1)
        assert len(info.devices) == 1
        assert distribute.active() is info
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        x = np.ones((5, 3), np.float32)
        np.testing.assert_array_equal(distribute.predict(model, x), model.predict(x, verbose=0))
        np.testing.assert_array_equal(distribute.predict_on_batch(model, x), model.predict_on_batch(x))
    assert distribute.active() is None


def test_mirrored_strategy_on_tensorflow_in_process():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow test session only")
    import tensorflow as tf

    with data_parallel(True) as info:
        assert info.strategy == "mirrored"
        assert tf.distribute.has_strategy()
        assert info.n_devices == len(info.devices) >= 1
    assert not tf.distribute.has_strategy()
    assert distribute.active() is None


def test_other_backends_are_refused(monkeypatch):
    with pytest.raises(ParameterError, match="'torch'"):
        distribute.visible_devices("torch")
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ParameterError, match="KERAS_BACKEND"):
        with data_parallel(True):
            pass


@pytest.mark.parametrize("batch_size, n", [(15, 2), (1, 2), (6, 4)])
def test_batch_size_must_split_evenly(batch_size, n):
    with pytest.raises(ParameterError, match=rf"batch size {batch_size} must be a multiple of the number of "
                                             rf"devices {n}"):
        check_batch_size(batch_size, n)


def test_multi_process_is_refused():
    distribute.check_single_process(1)
    with pytest.raises(ParameterError, match="2 processes"):
        distribute.check_single_process(2)


def test_batch_size_per_device():
    assert check_batch_size(64, 2) == 32
    assert check_batch_size(3, 1) == 3


class _Rows(keras.utils.PyDataset):
    """``n`` rows in batches of ``b``: x = row number, y = {"a": row, "b": -row}; records set_epoch."""

    def __init__(self, n, b, targets=True):
        super().__init__()
        self.n, self.b, self.targets, self.epochs = n, b, targets, []

    def __len__(self):
        return -(-self.n // self.b)

    def __getitem__(self, i):
        x = np.arange(i * self.b, min(self.n, (i + 1) * self.b), dtype=np.float32)[:, None]
        return (x, {"a": x[:, 0], "b": -x[:, 0]}) if self.targets else (x,)

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def on_epoch_end(self):
        self.epochs.append("end")


def test_even_batches_drop_the_remainder_of_a_training_batch():
    rows = _Rows(11, 4)  # batches of 4, 4, 3
    even = EvenBatches(rows, 2)
    assert len(even) == 3
    x, y = even[2]
    np.testing.assert_array_equal(x[:, 0], [8, 9])
    np.testing.assert_array_equal(y["b"], [-8, -9])
    np.testing.assert_array_equal(even[0][0][:, 0], [0, 1, 2, 3])
    even.set_epoch(3)
    even.on_epoch_end()
    assert rows.epochs == [3, "end"]
    assert len(EvenBatches(_Rows(9, 4), 2)) == 2  # a last batch of 1 row < 2 devices is left out


def test_fit_data_unchanged_without_a_jax_distribution():
    rows, held = _Rows(11, 4), _Rows(5, 4)
    assert distribute.even_batches(rows) is rows
    with pytest.raises(ValueError, match="partial"):
        distribute.even_batches(rows, "pad")
    assert distribute.distribute_fit_data(rows, held) == (rows, held, [])
    with data_parallel(False):
        assert distribute.distribute_fit_data(rows, held) == (rows, held, [])
        with distribute.undistributed():
            assert distribute.active().strategy == "none"


# ----------------------------------------------------------------------------- real runs (subprocesses)
def _fsdd_excerpt(shared_data, folder):
    """241 FSDD clips as symbolic links: fold 1 trains on 160 (10 batches of 16), validates on 41 (jackson: a
    last batch of 9 rows, which two JAX devices cannot split) and tests on 40 (george)."""
    recordings = folder / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    source = shared_data / "fsdd" / "recordings"
    for clip in sorted(source.glob("*_[0-3].wav")) + [source / "0_jackson_4.wav"]:
        (recordings / clip.name).symlink_to(clip)
    return folder


def _run_script(mode, out, env):
    done = subprocess.run([sys.executable, str(Path(__file__)), mode, str(out)], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                                                    os.environ.get("PYTHONPATH", "")])},
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads((Path(out) / "report.json").read_text())


#: Losses compared. Under MirroredStrategy Keras 3 logs the per-output validation losses of the last, unevenly
#: split batch otherwise (measured: val_reconstruction_loss 0.3% apart while val_loss is equal), so only the
#: totals and the training losses are compared there.
LOSSES = {"jax": ("loss", "probabilities_loss", "prototypes_loss", "reconstruction_loss", "val_loss",
                  "val_probabilities_loss", "val_prototypes_loss", "val_reconstruction_loss"),
          "tensorflow": ("loss", "probabilities_loss", "prototypes_loss", "reconstruction_loss", "val_loss")}


def _check_same_first_epoch(report, strategy, rtol):
    """Same first epoch: losses within ``rtol``, the same accuracies (and test accuracy)."""
    one, two = report["runs"]["one"], report["runs"]["two"]
    assert one["distribution"]["n_devices"] == 1 and one["distribution"]["strategy"] == "none"
    assert two["distribution"]["n_devices"] == 2 and two["distribution"]["strategy"] == strategy
    assert len(two["distribution"]["devices"]) == 2
    assert one["history"].keys() == two["history"].keys()
    for key in LOSSES[report["backend"]]:
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=rtol, err_msg=key)
    for key in ("probabilities_accuracy", "val_probabilities_accuracy"):
        assert two["history"][key] == pytest.approx(one["history"][key], abs=1e-6), key
    assert two["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=1e-6)


def test_apnet_on_two_jax_devices_matches_one(shared_data, tmp_path):
    """train.py with and without --distribute on two virtual JAX CPU devices: same first epoch."""
    _fsdd_excerpt(shared_data, tmp_path / "data")
    report = _run_script("jax", tmp_path, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                                           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert report["visible"] == 2
    _check_same_first_epoch(report, "data_parallel", RTOL["jax"])
    assert report["bad_batch"].startswith("error: --distribute: the batch size 15 must be a multiple of the "
                                          "number of devices 2")


def test_apnet_on_two_tensorflow_replicas_matches_one(shared_data, tmp_path):
    """The same with the CPU split into two logical devices and tf.distribute.MirroredStrategy."""
    _fsdd_excerpt(shared_data, tmp_path / "data")
    report = _run_script("tensorflow", tmp_path, {"KERAS_BACKEND": "tensorflow"})
    assert report["visible"] == 2
    _check_same_first_epoch(report, "mirrored", RTOL["tensorflow"])


@pytest.mark.slow
def test_l2i_classifier_on_two_jax_devices(shared_data, tmp_path):
    """train_classifier.py --distribute on ESC-10 fold 1 (real clips) under JAX: one epoch on two devices.

    The excerpt has an odd number of training clips, so the last batch loses one clip on two devices
    (EvenBatches "drop"): the losses agree to 1e-2, not to float rounding."""
    report = _run_script("l2i", tmp_path, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                                           "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                                           "AUDIOINTERP_TEST_DATA": str(shared_data)})
    one, two = report["runs"]["one"], report["runs"]["two"]
    assert (one["distribution"]["n_devices"], two["distribution"]["n_devices"]) == (1, 2)
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=1e-2)


# ----------------------------------------------------------------------------- script side
def _load_main(script):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"distribute_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _history(path):
    import pandas as pd

    row = pd.read_csv(path).iloc[0]
    return {key: float(value) for key, value in row.items() if key not in ("epoch", "seconds", "val_seconds")}


def _apnet_runs(out):
    import contextlib
    import io

    main = _load_main("experiments/apnet/train.py")
    # The prototype loss takes minima over the whole batch: under MirroredStrategy its replicas gather their
    # distances (audioruns.distribute.gather_replicas), so beta = 5 checks that on both backends.
    (out / "tiny.yaml").write_text(TINY_APNET.format(beta=5))
    runs = {}
    for name, extra in (("one", []), ("two", ["--distribute"])):
        args = ["--dataset", "fsdd", "--fold", "1", "--config", str(out / "tiny.yaml"), "--data-dir",
                str(out / "data"), "--cache-dir", str(out / "cache"), "--output", str(out / name), "--verbose", "0"]
        assert main(args + extra) == 0
        run_dir = out / name / "apnet" / "fsdd" / "fold1" / "seed0"
        results = json.loads((run_dir / "results.json").read_text())
        runs[name] = {"distribution": results["distribution"], "test_accuracy": results["test_accuracy"],
                      "history": _history(run_dir / "history.csv")}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(args[:-2] + ["--output", str(out / "bad"), "--batch-size", "15", "--distribute"])
    return runs, (stderr.getvalue().splitlines() or [""])[-1] if code == 2 else f"exit status {code}"


def _l2i_runs(out):
    import yaml

    main = _load_main("experiments/l2i/train_classifier.py")
    config = yaml.safe_load((ROOT / "l2i" / "configs" / "esc50.yaml").read_text())
    config["classifier"].update(epochs=1, batch_size=16, filters=[4, 8, 8, 8, 8, 8], head_filters=16, head_units=16)
    (out / "tiny.yaml").write_text(yaml.safe_dump(config))
    runs = {}
    for name, extra in (("one", []), ("two", ["--distribute"])):
        main(["--dataset", "esc10", "--fold", "1", "--config", str(out / "tiny.yaml"), "--data-dir",
              os.environ["AUDIOINTERP_TEST_DATA"], "--cache-dir", str(out / "cache"), "--output", str(out / name),
              "--verbose", "0"] + extra)
        run_dir = out / name / "l2i" / "esc10" / "fold1" / "seed0" / "classifier"
        results = json.loads((run_dir / "results.json").read_text())
        runs[name] = {"distribution": results["distribution"], "test_accuracy": results["test_accuracy"],
                      "history": _history(run_dir / "history.csv")}
    return runs


def _script_main(mode, out):
    out = Path(out)
    if mode == "tensorflow":  # two logical CPUs, before TensorFlow initialises its devices
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        visible = len(tf.config.list_logical_devices("CPU"))
    else:
        import jax

        visible = len(jax.devices())
    assert keras.backend.backend() == ("tensorflow" if mode == "tensorflow" else "jax")
    report = {"backend": keras.backend.backend(), "visible": visible}
    if mode == "l2i":
        report["runs"] = _l2i_runs(out)
    else:
        report["runs"], report["bad_batch"] = _apnet_runs(out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path, where tests/audioruns would hide the package.
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
    _script_main(sys.argv[1], sys.argv[2])


#: Two logical CPUs and MirroredStrategy against one device: a multi-label model trained with the masked binary
#: cross-entropy (a scalar loss normalised by the annotated labels of the global batch), and an
#: InterpreterModel (its own compute_loss), both with plain SGD, so that a gradient n times too large shows.
MIRRORED_LOSSES = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras import ops
from audioruns.metrics import masked_binary_crossentropy
from l2i.trainer import InterpreterModel

class Tiny(InterpreterModel):
    LOSS_TERMS = ("fit",)
    def loss_terms(self, y, y_pred, *, x=None):
        term = ops.mean(ops.square(y_pred - y))
        return {"fit": term}, 2.0 * term

rng = np.random.default_rng(0)
x = rng.normal(size=(32, 6)).astype("float32")
labels = (rng.random((32, 4)) > 0.5).astype("float32")
labels[rng.random((32, 4)) > 0.7] = np.nan  # not annotated
target = rng.normal(size=(32, 3)).astype("float32")

def run(kind):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    if kind == "bce":
        model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=masked_binary_crossentropy)
        y = labels
    else:
        model = Tiny(inputs=inputs, outputs=keras.layers.Dense(3)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        y = target
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    return {"history": {k: [float(v) for v in vs] for k, vs in history.items()},
            "weights": [w.tolist() for w in model.get_weights()]}

report = {}
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # one per process: collective keys are per strategy
for kind in ("bce", "interpreter"):
    one = run(kind)
    with strategy.scope():
        two = run(kind)
    report[kind] = {"one": one, "two": two}
json.dump(report, open(sys.argv[1], "w"))
"""


def test_scalar_losses_under_mirrored_strategy_match_one_device(tmp_path):
    """audioruns.distribute.replica_sum / replica_share: Keras divides by the replica count only the losses it
    reduces itself; the masked BCE and InterpreterModel.compute_loss take their share themselves."""
    script = tmp_path / "mirrored_losses.py"
    script.write_text(MIRRORED_LOSSES)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "report.json")], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow",
                               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    for kind, runs in report.items():
        one, two = runs["one"], runs["two"]
        for key in one["history"]:
            np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, err_msg=f"{kind} {key}")
        for a, b in zip(one["weights"], two["weights"]):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"{kind} weights")
