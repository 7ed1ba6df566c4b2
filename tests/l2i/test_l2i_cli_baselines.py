"""Tests of experiments/l2i/train_baseline.py on real ESC-10 clips, and of its rows in tables.py.

To stay within a few tens of seconds on 2 cores, the runs use a copy of the ESC-10 layout that
lists 40 of the real clips (2 per class from folds 1 and 2: fold 1 is the test split, fold 2 the
training split), tiny baseline settings and one epoch. The post-hoc baseline explains an untrained
tiny Kumar CNN saved where train_classifier.py would put it: the command only needs a classifier file.
"""
import json

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.l2i._esc10 import TINY_CLASSIFIER
from tests.l2i.test_l2i_cli_eval import _script, _subprocess
from tests.l2i.test_training import REPO

#: Tiny settings of every baseline (the other values come from configs/esc50.yaml).
TINY_BASELINES = {
    "flint": {"n_attributes": 8, "psi_channels": 4, "psi_units": 8, "decoder_channels": 4, "epochs": 1},
    "vibi": {"k": 4, "chunk_size": [32, 32], "explainer_filters": 4, "approximator_filters": 4, "epochs": 1},
    "nmf": {"n_components": 4, "n_iter_dictionary": 3, "n_iter_activations": 10},
}


@pytest.fixture(scope="module")
def mini_esc10(shared_data, tmp_path_factory):
    """``<root>/ESC-50``: the official layout listing 2 real clips per class of folds 1 and 2 (links to the files)."""
    root = tmp_path_factory.mktemp("mini_esc10")
    source = shared_data / "ESC-50"
    meta = pd.read_csv(source / "meta" / "esc50.csv")
    meta = meta[meta["esc10"] & meta["fold"].isin([1, 2])].groupby(["fold", "target"]).head(2)
    assert len(meta) == 40
    (root / "ESC-50" / "meta").mkdir(parents=True)
    (root / "ESC-50" / "audio").mkdir()
    meta.to_csv(root / "ESC-50" / "meta" / "esc50.csv", index=False)
    for name in meta["filename"]:
        (root / "ESC-50" / "audio" / name).symlink_to(source / "audio" / name)
    return root


@pytest.fixture(scope="module")
def output(mini_esc10, tmp_path_factory):
    """Run folder with the tiny config and an (untrained) tiny classifier at ``<run>/classifier/classifier.keras``."""
    from l2i.classifier import KumarCNN

    root = tmp_path_factory.mktemp("baseline_runs")
    config = yaml.safe_load((REPO / "l2i" / "configs" / "esc50.yaml").read_text())
    for name, values in TINY_BASELINES.items():
        config["baselines"][name].update(values)
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    keras.utils.set_random_seed(0)
    folder = root / "runs" / "l2i" / "esc10" / "fold1" / "seed0" / "classifier"
    folder.mkdir(parents=True)
    KumarCNN(n_classes=10, n_frames=431, **TINY_CLASSIFIER).save(folder / "classifier.keras")
    return root


def _args(baseline, mini_esc10, output, *more):
    return ["--baseline", baseline, "--dataset", "esc10", "--fold", "1", "--data-dir", str(mini_esc10),
            "--cache-dir", str(output / "cache"), "--output", str(output / "runs"), "--config",
            str(output / "tiny.yaml"), "--seed", "0", "--verbose", "0", *more]


def _run(output, baseline):
    return output / "runs" / "l2i" / "esc10" / "fold1" / "seed0" / f"baseline_{baseline}"


@pytest.fixture(scope="module")
def flint_run(mini_esc10, output):
    _script("train_baseline").main(_args("flint", mini_esc10, output))
    return _run(output, "flint")


@pytest.fixture(scope="module")
def nmf_run(mini_esc10, output):
    done = _subprocess("train_baseline.py", *_args("nmf", mini_esc10, output, "--epochs", "4"))
    assert done.returncode == 0, done.stderr[-3000:]
    return _run(output, "nmf")


def test_flint_posthoc_end_to_end_and_resume(flint_run, mini_esc10, output):
    from l2i.metrics import top_k_fidelity
    from l2i.training import load_fold

    results = json.loads((flint_run / "results.json").read_text())
    assert results["baseline"] == "flint" and results["setting"] == "posthoc"
    assert (results["n_train"], results["n_test"], results["epochs"], results["epochs_this_run"]) == (20, 20, 1, 1)
    fidelity = results["fidelity"]
    assert 0 <= fidelity["top1"] <= fidelity["top5"] <= 1
    assert 0 <= results["interpreter"]["accuracy"] <= 1 and 0 <= results["classifier"]["accuracy"] <= 1
    assert results["n_params"] > results["n_params_interpreter"] > 0 and results["seconds"] > 0
    assert "train_baseline.py --baseline flint" in results["command"]
    assert results["classifier_path"].endswith("classifier/classifier.keras")
    assert results["config"]["baselines"]["flint"]["n_attributes"] == 8
    history = (flint_run / "history.csv").read_text().strip().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 2
    # The saved model gives the reported fidelity on the test clips (rows and predictions line up).
    data = load_fold("esc10", 1, data_dir=mini_esc10, cache_dir=output / "cache")
    rows = np.sort(data.rows["test"])
    model = keras.models.load_model(flint_run / "flint.keras", compile=False)
    out = model.predict(np.asarray(data.mel[rows]), verbose=0)
    assert top_k_fidelity(out["classifier"], out["interpreter"], 1) == pytest.approx(fidelity["top1"])
    # Re-running continues from the checkpoint: nothing left to train, same scores.
    _script("train_baseline").main(_args("flint", mini_esc10, output))
    again = json.loads((flint_run / "results.json").read_text())
    assert again["epochs_this_run"] == 0 and again["epochs"] == 1 and again["fidelity"] == fidelity


def test_nmf_bydesign_end_to_end(nmf_run):
    results = json.loads((nmf_run / "results.json").read_text())
    assert results["baseline"] == "nmf" and results["setting"] == "bydesign" and "fidelity" not in results
    assert 0 <= results["interpreter"]["accuracy"] <= 1 and results["n_test"] == 20
    assert results["n_components"] == 4 and results["feature"] == "logmag"
    assert results["config"]["baselines"]["nmf"]["n_iter_dictionary"] == 4  # --epochs
    assert results["n_params"] == 513 * 4 + 4 * 10 + 10 and results["classifier_path"] is None
    assert "train_baseline.py --baseline nmf" in results["command"]
    saved = np.load(nmf_run / "nmf.npz")
    W = saved["dictionary"]
    assert W.shape == (513, 4) and W.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, rtol=1e-4)
    assert saved["kernel"].shape == (4, 10)


def test_tables_show_the_baselines(flint_run, nmf_run, output):
    tables = _script("tables").build_tables(output / "runs")
    flint = json.loads((flint_run / "results.json").read_text())
    nmf = json.loads((nmf_run / "results.json").read_text())

    def row(table, system, metric):
        return next(r for r in tables[table][1] if r["system"] == system and r["metric"] == metric)

    cell = row("IV", "FLINT [29]", "ESC-50 top-1 fidelity (%)")
    assert cell["ours"] == f"{100 * flint['fidelity']['top1']:.1f} [ESC-10]" and cell["n_runs"] == 1
    assert cell["command"] == flint["command"]
    assert row("IV", "FLINT [29]", "ESC-50 top-5 fidelity (%)")["ours"] == \
        f"{100 * flint['fidelity']['top5']:.1f} [ESC-10]"
    cell = row("VIII", "Unsupervised-NMF", "ESC-50 accuracy (%)")
    assert cell["ours"] == f"{100 * nmf['interpreter']['accuracy']:.1f} [ESC-10]"
    assert cell["command"] == nmf["command"]
    for table, system, baseline in (("IV", "VIBI [63]", "vibi"), ("VIII", "TD-NMF [47]", "tdl_nmf"),
                                    ("VIII", "FLINT [29]", "flint_bydesign")):
        cell = row(table, system, "SONYC-UST macro-AUPRC")
        assert cell["ours"] == "not run"
        assert f"train_baseline.py --baseline {baseline} --dataset sonyc_ust" in cell["command"]
    assert row("IV", "L2I w/ Theta_ATT", "ESC-50 top-1 fidelity (%)")["ours"] == "not run"


@pytest.mark.parametrize("baseline, extra, message", [
    ("vibi", [], "error: the classifier {output}/runs/l2i/esc10/fold1/seed0/classifier/classifier.keras does not "
                 "exist; train it with experiments/l2i/train_classifier.py or pass --classifier"),
    ("nmf", ["--data-dir", "{output}/no_data"], "error: esc50: dataset folder {output}/no_data/ESC-50 does not exist"),
    ("tdl_nmf", ["--config", "{output}/no_baselines.yaml"], "has no baselines.tdl_nmf section"),
], ids=["missing-classifier", "missing-dataset", "no-baselines-section"])
def test_train_baseline_errors_are_one_line(baseline, extra, message, tmp_path, capsys):
    (tmp_path / "no_baselines.yaml").write_text(yaml.safe_dump({"seed": 0, "batch_size": 4}))
    argv = ["--baseline", baseline, "--dataset", "esc10", "--output", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as exit_info:
        _script("train_baseline").main(argv + [a.format(output=tmp_path) for a in extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # Only the error line, after at most the `run folder:` line that a training run starts with (issue 13).
    lines = [line for line in err.splitlines() if not line.startswith("run folder: ")]
    assert lines[0].startswith("error: ") and message.format(output=tmp_path) in err and "Traceback" not in err


@pytest.mark.parametrize("extra, message", [
    (["--k", "64", "0"], "argument --k: must be a positive integer, got 0"),
    (["--k", "-64"], "argument --k: must be a positive integer, got -64"),
    (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    (["--fold", "-1"], "argument --fold: must be a positive integer, got -1"),
    (["--fold", "0"], "argument --fold: must be a positive integer, got 0"),
    (["--verbose", "-1"], "argument --verbose: must be a non-negative integer, got -1"),
    (["--verbose", "3"], "argument --verbose: invalid choice: 3"),
])
def test_train_baseline_refuses_bad_numbers(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script("train_baseline").main(["--baseline", "nmf", "--dataset", "esc10", "--output",
                                        str(tmp_path / "runs"), *extra])
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_nmf_sweep_writes_one_folder_per_combination_and_the_selection(mini_esc10, output):
    from l2i.baselines.training import select_sweep

    _script("train_baseline").main(_args("nmf", mini_esc10, output, "--epochs", "2", "--k", "2", "3",
                                         "--features", "logmag", "sqrt_mel"))
    seed_dir = output / "runs" / "l2i" / "esc10" / "fold1" / "seed0"
    scores = {}
    for k in (2, 3):
        for feature in ("logmag", "sqrt_mel"):
            results = json.loads((seed_dir / f"baseline_nmf_k{k}_{feature}" / "results.json").read_text())
            assert results["sweep"] == {"baseline": "nmf", "n_components": k, "feature": feature,
                                        "metric": "interpreter.accuracy", "score": results["interpreter"]["accuracy"]}
            assert results["n_components"] == k and results["feature"] == feature
            scores[(k, feature)] = results["interpreter"]["accuracy"]
    sweep = json.loads((output / "runs" / "l2i" / "esc10" / "baseline_nmf_sweep.json").read_text())
    best = max(scores.items(), key=lambda item: (item[1], -item[0][0], item[0][1] != "logmag"))
    assert (sweep["selected"]["n_components"], sweep["selected"]["feature"]) == best[0]
    assert sweep["selected"]["system"] == f"baseline_nmf_k{best[0][0]}_{best[0][1]}" and sweep["runs"] == [[1, 0]]
    assert sweep == json.loads(json.dumps(select_sweep(output / "runs", "nmf", "esc10")))
    assert not (seed_dir / "baseline_nmf_k2_sqrt_mel" / "scratch").exists()
