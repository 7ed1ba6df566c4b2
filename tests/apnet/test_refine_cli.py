"""End-to-end tests of experiments/apnet/refine.py and inspect_prototypes.py on a one-epoch FSDD run."""
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

import apnet  # noqa: F401  (registers the classes for loading)
from apnet.inspection import APNetRun, prototype_distance_matrix
from audioruns.preprocessing import load_scaled_model
from apnet.refinement import (DECODER_LAYERS, channel_distance_matrix, prototype_classes, redundancy_threshold,
                              redundant_channels, redundant_prototypes, remove_channels)

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "experiments" / "apnet"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"apnet_experiment_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data, feature_cache, fsdd_fold):
    """``train.py --dataset fsdd --fold 1 --epochs 1`` with a small model (M = 10, C = 8)."""
    tmp = tmp_path_factory.mktemp("refine_cli")
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8)
    (tmp / "fsdd_small.yaml").write_text(yaml.safe_dump(config))
    argv = ["--dataset", "fsdd", "--fold", "1", "--epochs", "1", "--data-dir", str(shared_data), "--cache-dir",
            str(feature_cache), "--config", str(tmp / "fsdd_small.yaml"), "--output", str(tmp / "results"),
            "--verbose", "0"]
    assert load_script("train").main(argv) == 0
    return tmp / "results" / "apnet" / "fsdd" / "fold1" / "seed0"


def refine_argv(model, shared_data, feature_cache, *extra, epochs="1"):
    return ["--model", str(model), "--epochs", epochs, "--data-dir", str(shared_data),
            "--cache-dir", str(feature_cache), "--verbose", "0", *extra]


@pytest.fixture(scope="module")
def refined_prototypes(run_dir, shared_data, feature_cache):
    """``refine.py --method prototypes`` with the default rules (the authors')."""
    argv = refine_argv(run_dir / "model.keras", shared_data, feature_cache, "--method", "prototypes")
    assert load_script("refine").main(argv) == 0
    return run_dir / "refine_prototypes"


def test_refine_prototypes(run_dir, refined_prototypes):
    out = refined_prototypes
    for name in ("model.keras", "results.json", "config.yaml", "scaler.json", "history.csv", "distances.npy"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    trained = json.loads((run_dir / "results.json").read_text())
    original = load_scaled_model(run_dir / "model.keras")[0]
    distances = prototype_distance_matrix(original)
    np.testing.assert_allclose(np.load(out / "distances.npy"), distances)
    # The authors' rules by default: nearest neighbours of the same class (the head on the prototype).
    classes = prototype_classes(original)
    assert results["rules"] == "authors" and results["same_class"] is True
    assert results["prototype_classes"] == classes.tolist()
    assert results["threshold"] == pytest.approx(redundancy_threshold(distances, "authors"))
    assert results["removed_prototypes"] == redundant_prototypes(distances, classes=classes, rules="authors").tolist()
    n_removed = len(results["removed_prototypes"])
    assert results["n_prototypes_before"] == 10
    assert results["n_prototypes_after"] == 10 - n_removed
    assert results["n_params_before"] == trained["n_params"] >= results["n_params_after"]
    assert (results["n_params_after"] < results["n_params_before"]) == (n_removed > 0)
    assert results["test_accuracy_before"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    assert 0.0 <= results["test_accuracy_after"] <= 1.0
    assert results["epochs"] == 1 and results["seconds"] > 0 and results["method"] == "prototypes"
    assert results["dataset"] == "fsdd" and results["fold"] == 1
    assert results["command"].startswith("python experiments/apnet/refine.py") and "--epochs 1" in results["command"]
    model = keras.models.load_model(out / "model.keras")
    assert model.get_layer("prototypes").n_prototypes == results["n_prototypes_after"]
    assert model.count_params() == results["n_params_after"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["n_prototypes"] == results["n_prototypes_after"] and config["refinement"]["method"] == "prototypes"
    assert config["refinement"]["rules"] == "authors"
    assert (out / "scaler.json").read_text() == (run_dir / "scaler.json").read_text()


def test_refine_prototypes_paper_rules(run_dir, shared_data, feature_cache, tmp_path):
    argv = refine_argv(run_dir / "model.keras", shared_data, feature_cache, "--method", "prototypes", "--rules",
                       "paper", "--output", str(tmp_path / "paper"))
    assert load_script("refine").main(argv) == 0
    results = json.loads((tmp_path / "paper" / "results.json").read_text())
    distances = prototype_distance_matrix(load_scaled_model(run_dir / "model.keras")[0])
    assert results["rules"] == "paper" and results["same_class"] is False and results["prototype_classes"] is None
    assert results["threshold"] == pytest.approx(redundancy_threshold(distances, "paper"))
    assert results["removed_prototypes"] == redundant_prototypes(distances).tolist()
    assert 0 < len(results["removed_prototypes"]) < 10
    assert results["n_prototypes_after"] == 10 - len(results["removed_prototypes"])


def test_refine_channels_after_prototypes(refined_prototypes, shared_data, feature_cache):
    source = refined_prototypes / "model.keras"
    argv = refine_argv(source, shared_data, feature_cache, "--method", "channels", "--n-channels", "2")
    assert load_script("refine").main(argv) == 0
    out = refined_prototypes / "refine_channels"
    results = json.loads((out / "results.json").read_text())
    # The authors' rules by default: Eq. 13 with i = j, their pair walk, a re-created decoder.
    assert (results["rules"], results["pairing"], results["decoder"]) == ("authors", "same", "reinitialize")
    matrix = channel_distance_matrix(load_scaled_model(source)[0], pairing="same")
    np.testing.assert_allclose(np.load(out / "distances.npy"), matrix)
    assert results["removed_channels"] == redundant_channels(matrix, 2, rules="authors").tolist()
    assert (results["n_channels_before"], results["n_channels_after"]) == (8, 6)
    assert results["n_prototypes_after"] == results["n_prototypes_before"]
    assert results["n_params_after"] < results["n_params_before"]
    model = keras.models.load_model(out / "model.keras")
    assert tuple(model.get_layer("latent").output.shape[1:]) == (16, 16, 6)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["latent_channels"] == 6 and config["refinement"]["decoder"] == "reinitialize"


def test_refine_rules_and_overrides(run_dir):
    """refine() without retraining: each --rules sets Eq. 13's pairing and the decoder, the flags override them."""
    module = load_script("refine")
    model = load_scaled_model(run_dir / "model.keras")[0]
    run = APNetRun(path=run_dir, dataset="fsdd", fold=1, model=model, scaler=None,
                   config={"batch_size": 8, "seed": 3})
    args = module.parse_args(["--method", "channels", "--model", "m.keras", "--n-channels", "2"])
    assert (args.rules, args.pairing, args.decoder) == ("authors", None, None)

    def channels(*extra):
        argv = ["--method", "channels", "--model", "m.keras", "--n-channels", "2", *extra]
        return module.refine(module.parse_args(argv), run, None)

    new, matrix, details = channels()
    assert (details["rules"], details["pairing"], details["decoder"]) == ("authors", "same", "reinitialize")
    np.testing.assert_allclose(matrix, channel_distance_matrix(model, pairing="same"))
    expected = redundant_channels(matrix, 2, rules="authors")
    assert details["removed_channels"] == expected.tolist()
    seeded = remove_channels(model, expected, decoder="reinitialize", seed=3)  # the run's seed
    kept = remove_channels(model, expected)
    for name in DECODER_LAYERS:
        np.testing.assert_array_equal(new.get_layer(name).get_weights()[0], seeded.get_layer(name).get_weights()[0])
        assert not np.allclose(new.get_layer(name).get_weights()[0], kept.get_layer(name).get_weights()[0])

    new, matrix, details = channels("--rules", "paper")
    assert (details["rules"], details["pairing"], details["decoder"]) == ("paper", "all", "keep")
    np.testing.assert_allclose(matrix, channel_distance_matrix(model, pairing="all"))
    assert details["removed_channels"] == redundant_channels(matrix, 2, rules="paper").tolist()
    kept = remove_channels(model, details["removed_channels"])
    for name in DECODER_LAYERS:
        np.testing.assert_array_equal(new.get_layer(name).get_weights()[0], kept.get_layer(name).get_weights()[0])

    _, matrix, details = channels("--rules", "paper", "--pairing", "same", "--decoder", "reinitialize")
    assert (details["pairing"], details["decoder"]) == ("same", "reinitialize")
    assert details["removed_channels"] == redundant_channels(matrix, 2, rules="paper").tolist()

    argv = ["--method", "prototypes", "--model", "m.keras", "--rules", "paper", "--same-class", "--threshold", "1e9"]
    _, distances, details = module.refine(module.parse_args(argv), run, None)
    classes = prototype_classes(model)
    assert details["same_class"] is True and details["prototype_classes"] == classes.tolist()
    assert details["removed_prototypes"] == redundant_prototypes(distances, 1e9, classes).tolist()


def test_inspect_prototypes(run_dir, shared_data, feature_cache, tmp_path):
    argv = ["--model", str(run_dir / "model.keras"), "--output", str(tmp_path), "--data-dir", str(shared_data),
            "--cache-dir", str(feature_cache)]
    assert load_script("inspect_prototypes").main(argv) == 0
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert len(rows) == 10
    for row in rows:
        assert (tmp_path / row["wav"]).is_file() and (tmp_path / row["png"]).is_file()
        assert row["wav"] == f"prototype_{row['prototype']}_{row['class_name']}.wav"
        assert row["nearest_clip_id"]
    arrays = np.load(tmp_path / "weights.npz")
    assert arrays["W_T"].shape == (10, 10) and arrays["H"].shape == (10, 16) and arrays["distances"].shape == (10, 10)
    assert arrays["mel"].shape == (10, 64, 64)


@pytest.mark.parametrize("extra, message", [
    (["--method", "channels", "--n-channels", "8"], "n_channels"),
])
def test_refine_errors(run_dir, shared_data, feature_cache, extra, message, capsys):
    argv = refine_argv(run_dir / "model.keras", shared_data, feature_cache, *extra)
    assert load_script("refine").main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("script, extra, message", [
    ("refine", ["--epochs", "1", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("refine", ["--n-channels", "0"], "argument --n-channels: must be a positive integer, got 0"),
    ("refine", ["--batch-size", "-8"], "argument --batch-size: must be a positive integer, got -8"),
    ("refine", ["--threshold", "nan"], "argument --threshold: must be a non-negative finite number, got 'nan'"),
    ("refine", ["--verbose", "3"], "argument --verbose: invalid choice: 3"),
    ("inspect_prototypes", ["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
])
def test_bad_numbers_are_refused_by_the_parser(script, extra, message, tmp_path, capsys):
    """Out-of-range options exit 2 with argparse's error before the run folder is read (the last --epochs wins)."""
    argv = ["--model", str(tmp_path / "model.keras"), *extra] + (["--method", "channels"] if script == "refine" else [])
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"error: {message}" in err and "does not exist" not in err


def test_missing_run_folder(tmp_path, capsys):
    assert load_script("refine").main(["--method", "prototypes", "--model", str(tmp_path / "model.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert load_script("inspect_prototypes").main(["--model", str(tmp_path / "model.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
