"""End-to-end tests of experiments/apnet/train.py and evaluate.py on FSDD, and their error messages."""
import importlib.util
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

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "experiments" / "apnet"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"apnet_experiment_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_env(tmp_path):
    env = dict(os.environ)
    for var in ("KERAS_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        env[var] = str(tmp_path / var.lower())
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    env.pop("AUDIO_DATA_DIR", None)
    return env


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """The FSDD config with a small model (M = 10, C = 8), so one epoch takes seconds on 2 cores."""
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8)
    path = tmp_path_factory.mktemp("config") / "fsdd_small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, shared_data, feature_cache, fsdd_fold, small_config):
    """``train.py --dataset fsdd --fold 1 --epochs 1`` in a subprocess (features already cached)."""
    tmp = tmp_path_factory.mktemp("cli")
    output = tmp / "results"
    command = [sys.executable, str(SCRIPTS / "train.py"), "--dataset", "fsdd", "--fold", "1", "--epochs", "1",
               "--data-dir", str(shared_data), "--cache-dir", str(feature_cache), "--config", str(small_config),
               "--output", str(output), "--verbose", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=script_env(tmp), cwd=tmp, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return output, output / "apnet" / "fsdd" / "fold1" / "seed0", done


def test_train_writes_every_artifact(cli_run, fsdd_fold):
    output, run_dir, done = cli_run
    for name in ("model.keras", "history.csv", "config.yaml", "scaler.json", "results.json"):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == results
    assert results["dataset"] == "fsdd" and results["fold"] == 1 and results["seed"] == 0
    assert results["model"] == "apnet" and results["epochs"] == 1 and results["epochs_this_run"] == 1
    assert "--epochs 1" in results["command"] and results["command"].startswith("python experiments/apnet/train.py")
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["seconds"] > 0
    assert results["seconds_per_epoch"] == pytest.approx(results["seconds"])
    assert (results["n_train"], results["n_validation"], results["n_test"]) == (2000, 500, 500)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["epochs"] == 1 and config["n_prototypes"] == 10 and config["alpha"] == 10
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 1 and "val_probabilities_accuracy" in history
    # apnet/configs/fsdd.yaml keeps the settings of docs/apnet_results.md, plus the authors' patience.
    assert (results["batch_size"], results["normalizer"], results["init_last_layer"]) == (64, "minmax", True)
    assert results["early_stopping"] == 100 and results["stopped_early"] is False and results["stopped_epoch"] is None
    # The saved model loads without custom objects and its test accuracy is the one reported.
    import apnet  # noqa: F401  (registers the classes)
    from audiodata.features import MinMaxScaler

    from apnet.training import load_scaler

    model = keras.models.load_model(run_dir / "model.keras")
    scaler = load_scaler(run_dir / "scaler.json")
    assert isinstance(scaler, MinMaxScaler)
    train = fsdd_fold.features[fsdd_fold.rows["train"]]
    assert scaler.data_min == train.min() and scaler.data_max == train.max()  # fitted on train only
    x = fsdd_fold.features[fsdd_fold.rows["test"]]  # model.keras scales its inputs itself
    probs = model.predict(x, verbose=0)[0]
    accuracy = np.mean(probs.argmax(1) == fsdd_fold.targets["test"].argmax(1))
    assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-6)


def test_evaluate_aggregates_folds(cli_run, tmp_path):
    output, run_dir, _ = cli_run
    # A second (fake) fold, to check the mean and standard deviation.
    fake = json.loads((run_dir / "results.json").read_text())
    fold2 = output / "apnet" / "fsdd" / "fold2" / "seed0"
    fold2.mkdir(parents=True)
    (fold2 / "results.json").write_text(json.dumps({**fake, "fold": 2, "test_accuracy": fake["test_accuracy"] + 0.1}))
    evaluate = load_script("evaluate")
    assert evaluate.main([str(output), "--model", "apnet", "--csv", str(tmp_path / "s.csv"),
                          "--json", str(tmp_path / "s.json")]) == 0
    summary = pd.read_csv(tmp_path / "s.csv")
    assert len(summary) == 1 and summary.loc[0, "n_runs"] == 2 and summary.loc[0, "folds"] == "1 2"
    accuracies = [fake["test_accuracy"], fake["test_accuracy"] + 0.1]
    assert summary.loc[0, "accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert summary.loc[0, "accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert json.loads((tmp_path / "s.json").read_text())["summary"][0]["n_params_mean"] == fake["n_params"]
    assert evaluate.main([str(output), "--dataset", "urbansound8k"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "fsdd", "--fold", "7"], "--fold must be one of [1, 2, 3, 4, 5, 6], got 7"),
    (["--dataset", "esc10", "--fold", "1", "--data-dir", "{empty}"], "ESC-50"),
    (["--dataset", "fsdd", "--fold", "1"], "AUDIO_DATA_DIR"),
    (["--dataset", "fsdd", "--fold", "1"], "error: no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR"),
])
def test_clear_errors(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{empty}", str(tmp_path / "empty")) for a in argv] + ["--output", str(tmp_path / "out")]
    assert load_script("train").main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    (["--epochs", "-1"], "argument --epochs: must be a positive integer, got -1"),
    (["--n-prototypes", "0"], "argument --n-prototypes: must be a positive integer, got 0"),
    (["--batch-size", "nan"], "argument --batch-size: must be a positive integer, got 'nan'"),
    (["--seed", "-1"], "argument --seed: must be an integer seed in [0, 4294967295], got -1"),
    (["--fold", "0"], "argument --fold: must be a positive integer, got 0"),
    (["--verbose", "3"], "argument --verbose: invalid choice: 3"),
    (["--config", "/nonexistent.yaml"], "argument --config: config file /nonexistent.yaml does not exist"),
])
def test_bad_numbers_are_refused_by_the_parser(extra, message, tmp_path, capsys):
    """Out-of-range overrides exit 2 with argparse's one-line error, before any config is read or folder made."""
    argv = ["--dataset", "fsdd", "--fold", "1", *extra, "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        load_script("train").main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("usage: ") and f"error: {message}" in err
    assert not (tmp_path / "out").exists()
    assert load_script("train").parse_args(["--fold", "1", "--seed", "0"]).seed == 0  # a seed may be 0


def test_overrides_replace_the_config_values():
    train = load_script("train")
    args = train.parse_args(["--dataset", "esc10", "--fold", "2", "--n-prototypes", "100", "--batch-size", "8"])
    config = train.load_config(args)
    assert (config["n_prototypes"], config["batch_size"], config["epochs"]) == (100, 8, 200)
    assert train.load_config(train.parse_args(["--dataset", "esc10", "--fold", "2"]))["n_prototypes"] == 20


def test_unknown_dataset_and_model_are_rejected(capsys):
    train = load_script("train")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--dataset", "imagenet", "--fold", "1"])
    assert exit_info.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--model", "resnet", "--fold", "1"])


def test_resume_refuses_another_config(cli_run, small_config, shared_data, feature_cache, capsys):
    output, _, _ = cli_run
    argv = ["--dataset", "fsdd", "--fold", "1", "--batch-size", "16", "--config", str(small_config),
            "--data-dir", str(shared_data), "--cache-dir", str(feature_cache), "--output", str(output)]
    assert load_script("train").main(argv) == 2
    assert "another config" in capsys.readouterr().err


def test_batch_size_override_goes_to_the_model_trained():
    from apnet.training import training_settings

    train = load_script("train")

    def settings(*argv):
        args = train.parse_args(["--dataset", "urbansound8k", "--fold", "1", *argv])
        config = train.load_config(args)
        return config, training_settings(args.model, config)

    config, used = settings("--model", "sb_cnn")
    assert used["batch_size"] == 128 and used["normalizer"] == "standard"  # the authors' SB-CNN config
    config, used = settings("--model", "sb_cnn", "--batch-size", "8")
    assert used["batch_size"] == 8 and config["batch_size"] == 256 and config["baseline_batch_size"]["att_crnn"] == 128
    config, used = settings("--batch-size", "8")  # --model apnet
    assert used["batch_size"] == 8 and config["baseline_batch_size"]["sb_cnn"] == 128
    assert settings("--model", "att_crnn")[1]["normalizer"] == "minmax"


def test_a_bad_setting_in_the_config_is_a_clear_error(tmp_path, capsys):
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config["normalizer"]["apnet"] = "standard"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["--dataset", "fsdd", "--fold", "1", "--config", str(path), "--output", str(tmp_path / "out")]
    assert load_script("train").main(argv) == 2
    assert "apnet: `normalizer` must be 'minmax'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_run_saved_without_the_new_keys(tmp_path):
    from audiodata.errors import ParameterError

    train = load_script("train")
    config = train.load_config(train.parse_args(["--dataset", "fsdd", "--fold", "1"]))
    old = {k: v for k, v in config.items() if k not in ("early_stopping", "normalizer")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(ParameterError, match=r"differs in \['early_stopping', 'normalizer'\]"):
        train.check_resume(tmp_path, config)
    train.check_resume(tmp_path, {**old, "epochs": 7})  # epochs alone may change


@pytest.fixture
def synthetic_training(monkeypatch, tmp_path):
    """apnet.training.load_fold replaced by a tiny random fold (40 / 16 / 16 clips of (16, 16), 2 classes) and
    an FSDD config with a small APNet, a zero learning rate (the validation accuracy never improves after the
    first epoch) and early stopping after 1 epoch without improvement."""
    import apnet.training
    from apnet.training import FoldData

    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(72, 16, 16)).astype("float32")
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, 72)]
    rows = {"train": np.arange(40), "validation": np.arange(40, 56), "test": np.arange(56, 72)}
    fold = FoldData(x, rows, {name: labels[r] for name, r in rows.items()}, ("a", "b"))
    monkeypatch.setattr(apnet.training, "load_fold", lambda *args, **kwargs: fold)
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=4, n_filters=4, kernel_size=3, batch_size=16, learning_rate=0.0, epochs=5,
                  early_stopping=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_results_record_early_stopping(synthetic_training, tmp_path):
    train = load_script("train")
    output = tmp_path / "out"
    argv = ["--dataset", "fsdd", "--fold", "1", "--config", str(synthetic_training), "--output", str(output),
            "--verbose", "0"]
    assert train.main(argv) == 0
    run_dir = output / "apnet" / "fsdd" / "fold1" / "seed0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["early_stopping"] == 1 and results["stopped_early"] is True and results["stopped_epoch"] == 2
    assert results["epochs"] == 2 and results["epochs_this_run"] == 2 and results["best_epoch"] == 1
    assert len(pd.read_csv(run_dir / "history.csv")) == 2
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["early_stopping"] == 1
    # The same command again (the config check passes): nothing more to train, still reported as stopped.
    assert train.main(argv + ["--epochs", "9"]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_this_run"] == 0 and results["stopped_early"] is True and results["stopped_epoch"] == 2


def test_the_cli_asks_for_progress_and_the_library_stays_quiet(synthetic_training, tmp_path, monkeypatch):
    """train.py passes progress=True down to load_fold (split sizes, size warning, extraction bar on stderr);
    train_fold called from Python does not."""
    import apnet.training

    calls = []
    fold = apnet.training.load_fold()  # the synthetic fold of the fixture
    monkeypatch.setattr(apnet.training, "load_fold", lambda *args, **kwargs: calls.append(kwargs) or fold)
    argv = ["--dataset", "fsdd", "--fold", "1", "--config", str(synthetic_training), "--output", str(tmp_path / "o"),
            "--epochs", "1", "--verbose", "0"]
    assert load_script("train").main(argv) == 0
    assert calls[-1]["progress"] is True
    config = yaml.safe_load(synthetic_training.read_text())
    apnet.training.train_fold({**config, "epochs": 1}, "fsdd", 1, tmp_path / "lib", verbose=0)
    assert calls[-1]["progress"] is False


@pytest.mark.parametrize("key, value, message", [
    ("n_prototypes", 0, "n_prototypes must be a positive integer, got 0"),
    ("n_prototypes", "10", "n_prototypes must be a positive integer, got the string '10'"),
    ("seed", -1, "seed must be an integer seed in [0, 4294967295], got -1"),
    ("seed", 2**32, "seed must be an integer seed in [0, 4294967295], got 4294967296"),
])
def test_train_fold_checks_its_config_numbers(key, value, message, tmp_path, monkeypatch):
    """A bad n_prototypes or seed in the config is a ParameterError before any data is read or folder made."""
    import apnet.training
    from audiodata.errors import ParameterError

    monkeypatch.setattr(apnet.training, "load_fold", lambda *a, **k: pytest.fail("loaded the data"))
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    with pytest.raises(ParameterError) as info:
        apnet.training.train_fold({**config, key: value}, "fsdd", 1, tmp_path / "run")
    assert str(info.value) == message and not (tmp_path / "run").exists()
