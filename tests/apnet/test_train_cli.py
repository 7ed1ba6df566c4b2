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
    config = yaml.safe_load((SCRIPTS / "configs" / "fsdd.yaml").read_text())
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
    # The saved model loads without custom objects and its test accuracy is the one reported.
    import apnet  # noqa: F401  (registers the classes)
    from audiodata.features import MinMaxScaler

    model = keras.models.load_model(run_dir / "model.keras")
    scaler = MinMaxScaler.load(run_dir / "scaler.json")
    train = fsdd_fold.features[fsdd_fold.rows["train"]]
    assert scaler.data_min == train.min() and scaler.data_max == train.max()  # fitted on train only
    x = scaler.transform(fsdd_fold.features[fsdd_fold.rows["test"]])
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
    (["--dataset", "fsdd", "--fold", "1", "--epochs", "0"], "--epochs must be positive"),
    (["--dataset", "fsdd", "--fold", "1", "--n-prototypes", "0"], "--n-prototypes must be positive"),
    (["--dataset", "fsdd", "--fold", "1", "--config", "/nonexistent.yaml"], "does not exist"),
    (["--dataset", "esc10", "--fold", "1", "--data-dir", "{empty}"], "ESC-50"),
    (["--dataset", "fsdd", "--fold", "1"], "AUDIO_DATA_DIR"),
])
def test_clear_errors(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{empty}", str(tmp_path / "empty")) for a in argv] + ["--output", str(tmp_path / "out")]
    assert load_script("train").main(argv) == 2
    assert message in capsys.readouterr().err


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
