"""Tests of experiments/l2i/tables.py on a synthetic results folder (values known in advance)."""
import csv
import importlib.util
import json

import pytest

from tests.l2i.test_training import REPO


@pytest.fixture(scope="module")
def tables_module():
    spec = importlib.util.spec_from_file_location("l2i_tables", REPO / "experiments" / "l2i" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, results):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(results))


def _evaluation(top1, top5, ff, ff_random, f_acc=0.8, g_acc=0.7, nmf=0.08, lfid=1.5, command="evaluate.py X"):
    return {"taus": [0.1, 0.3, 0.5, 0.7, 0.9], "fidelity": {"top1": top1, "top5": top5},
            "classifier": {"accuracy": f_acc}, "interpreter": {"accuracy": g_acc}, "ff_median": ff,
            "ff_median_random": ff_random, "test_nmf_loss": nmf, "test_fidelity_loss": lfid, "command": command}


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "results"
    for fold, (top1, f_acc) in enumerate([(0.6, 0.80), (0.7, 0.84)], start=1):
        base = root / "l2i" / "esc50" / f"fold{fold}" / "seed0"
        _write(base / "classifier", {"test_accuracy": f_acc, "command": f"train_classifier.py fold{fold}"})
        config = {"interpreter": {"hidden_layers": ["block4", "block5", "block6"]}, "posthoc": {"alpha": 10.0,
                                                                                              "beta": 0.8}}
        _write(base / "posthoc_att", {"mode": "posthoc", "fidelity_top1": 0.1, "accuracy": 0.1, "config": config,
                                      "command": "train_interpreter.py"})
        ff = [0.1 * fold, 0.04, 0.01, 0.004, 0.002]
        _write(base / "posthoc_att" / "evaluation_none", _evaluation(top1, 0.9, ff, [1e-5] * 5, f_acc=f_acc,
                                                                     command=f"evaluate.py fold{fold}"))
        _write(base / "posthoc_att" / "evaluation_noise", _evaluation(0.0, 0.0, [0.9] * 5, [0.9] * 5))
    # training results only (no evaluation): the fallback for Theta_MAX
    _write(root / "l2i" / "esc50" / "fold1" / "seed0" / "posthoc_max",
           {"mode": "posthoc", "fidelity_top1": 0.75, "fidelity_top5": 0.95, "accuracy": 0.6, "command": "max"})
    # SONYC-UST with the loss weights of Table VII
    sonyc = root / "l2i" / "sonyc_ust" / "fold1" / "seed0" / "posthoc_att"
    _write(sonyc, {"config": {"posthoc": {"alpha": 1.0, "beta": 0.8}}, "command": "train sonyc"})
    _write(sonyc / "evaluation_none", {"fidelity": {"macro_auprc": 0.91, "micro_auprc": 0.92, "max_f1": 0.8},
                                       "classifier": {"macro_auprc": 0.6}, "interpreter": {"macro_auprc": 0.55},
                                       "test_nmf_loss": 0.045, "test_fidelity_loss": 0.375, "taus": [0.1],
                                       "ff_median": [0.1], "ff_median_random": [0.0], "command": "eval sonyc"})
    return root


def _row(rows, system, metric):
    return next(r for r in rows if r["system"] == system and r["metric"] == metric)


def test_build_tables_values(tables_module, results_dir):
    tables = tables_module.build_tables(results_dir)
    assert set(tables) == {"I", "IV", "V", "VI", "VII", "VIII"}
    rows = tables["IV"][1]
    att = _row(rows, "L2I w/ Theta_ATT", "ESC-50 top-1 fidelity (%)")
    assert att["paper"] == "65.7 ± 2.8" and att["ours"] == "65.0 ± 5.0 (2 runs)" and att["n_runs"] == 2
    assert att["command"].startswith("evaluate.py fold") and "(+1 more)" in att["command"]
    assert _row(rows, "L2I w/ Theta_MAX", "ESC-50 top-1 fidelity (%)")["ours"] == "75.0"
    assert _row(rows, "L2I w/ Theta_ATT", "SONYC-UST macro-AUPRC")["ours"] == "0.910"
    missing = _row(rows, "L2I w/ Theta_ATT", "OpenMIC-2018 avg-weighted-F1")
    assert missing["ours"] == "not run" and "evaluate.py" in missing["command"] and "--dataset openmic" in \
        missing["command"]
    assert _row(rows, "VIBI [63]", "ESC-50 top-1 fidelity (%)")["ours"] == "not run"
    v = tables["V"][1]
    assert _row(v, "L2I w/ Theta_ATT", "FF_median, tau = 0.1")["ours"] == "0.150 ± 0.050 (2 runs)"
    assert _row(v, "L2I w/ Theta_ATT", "FF_median, tau = 0.1")["paper"] == "0.113"
    assert _row(v, "Random Baseline", "FF_median, tau = 0.1")["ours"] == "1e-05 ± 0 (2 runs)"
    vi = tables["VI"][1]
    assert _row(vi, "B4+B5+B6", "L_NMF")["ours"] == "0.080" and _row(vi, "B4+B5+B6", "L_NMF")["paper"] == "0.079"
    assert _row(vi, "B3", "L_NMF")["ours"] == "not run"
    vii = tables["VII"][1]
    assert _row(vii, "alpha = 1.0, beta = 0.8", "L_FID")["ours"] == "0.375"
    assert _row(vii, "alpha = 10.0, beta = 0.8", "L_FID")["ours"] == "not run"
    viii = tables["VIII"][1]
    assert _row(viii, "BASE-f", "ESC-50 accuracy (%)")["ours"] == "82.0 ± 2.0 (2 runs)"
    assert _row(viii, "L2I-Posthoc", "ESC-50 accuracy (%)")["ours"] == "70.0 ± 0.0 (2 runs)"
    assert _row(viii, "L2I-Posthoc", "SONYC-UST macro-AUPRC")["ours"] == "0.550"
    assert _row(viii, "APNet [13]", "ESC-50 accuracy (%)")["ours"].startswith("n/a")
    assert _row(tables["I"][1], "Current-f", "ESC-50 top-1 (%)")["ours"] == "82.0 ± 2.0 (2 runs)"
    assert _row(tables["I"][1], "Current-f", "SONYC-UST macro-AUPRC")["ours"] == "0.600"


def test_tables_cli_writes_markdown_and_csv(tables_module, results_dir, tmp_path, capsys):
    tables_module.main([str(results_dir), "--output", str(tmp_path / "tables")])
    assert "Table IV: 6/20 cells with our numbers" in capsys.readouterr().out
    for table in ("I", "IV", "V", "VI", "VII", "VIII"):
        md = (tmp_path / "tables" / f"table_{table}.md").read_text()
        assert md.startswith(f"# Table {table}:") and "| system | metric | paper | ours | command |" in md
        with open(tmp_path / "tables" / f"table_{table}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and set(rows[0]) == {"system", "metric", "paper", "ours", "n_runs", "command"}
    md = (tmp_path / "tables" / "table_V.md").read_text()
    assert "| L2I w/ Theta_ATT | FF_median, tau = 0.9 | 0.002 | 0.002 ± 0.000 (2 runs) | `evaluate.py fold1" in md


def test_tables_on_an_empty_folder(tables_module, tmp_path):
    tables = tables_module.build_tables(tmp_path)
    assert all(r["ours"] in ("not run", "n/a (not our system)") for _, rows in tables.values() for r in rows)
    with pytest.raises(SystemExit):
        tables_module.main([str(tmp_path / "missing")])


def test_baseline_rows_from_train_baseline_results(tables_module, tmp_path, rng):
    """Rows of FLINT, VIBI, NMF, TD-NMF and FLINT by design: mean +- std over folds, [ESC-10], multi-label names."""
    from l2i.baselines.training import score_predictions
    from l2i.pipeline import dataset_classes, find_results

    root = tmp_path / "results"
    for fold, (top1, acc) in enumerate([(0.70, 0.30), (0.76, 0.40)], start=1):
        base = root / "l2i" / "esc50" / f"fold{fold}" / "seed0"
        _write(base / "baseline_flint", {"fidelity": {"top1": top1, "top5": 0.9}, "interpreter": {"accuracy": 0.5},
                                         "command": f"train_baseline.py flint fold{fold}"})
        _write(base / "baseline_nmf", {"interpreter": {"accuracy": acc}, "command": f"train_baseline.py nmf {fold}"})
    _write(root / "l2i" / "esc10" / "fold1" / "seed0" / "baseline_vibi",
           {"fidelity": {"top1": 0.25, "top5": 0.5}, "command": "train_baseline.py vibi"})
    # Multi-label scores exactly as train_baseline.py writes them.
    scores = {}
    for dataset, system in (("sonyc_ust", "baseline_tdl_nmf"), ("openmic", "baseline_flint_bydesign")):
        # dataset_classes("openmic") is empty: OpenMIC's class names come from its data folder (class-map.json).
        classes = dataset_classes(dataset) or tuple(f"instrument{i}" for i in range(20))
        labels = (rng.random((40, len(classes))) < 0.3).astype(float)
        f, g = rng.random(labels.shape), rng.random(labels.shape)
        scores[dataset] = score_predictions(dataset, classes, True, labels, f=f, g=g)
        _write(root / "l2i" / dataset / "fold1" / "seed0" / system, dict(scores[dataset], command=system))
    assert {e["kind"] for e in find_results(root)} == {"baseline"}

    tables = tables_module.build_tables(root)
    iv, viii = tables["IV"][1], tables["VIII"][1]
    flint = _row(iv, "FLINT [29]", "ESC-50 top-1 fidelity (%)")
    assert flint["ours"] == "73.0 ± 3.0 (2 runs)" and flint["paper"] == "73.5 ± 2.3"
    assert flint["command"].startswith("train_baseline.py flint fold") and "(+1 more)" in flint["command"]
    assert _row(iv, "VIBI [63]", "ESC-50 top-5 fidelity (%)")["ours"] == "50.0 [ESC-10]"
    assert _row(viii, "Unsupervised-NMF", "ESC-50 accuracy (%)")["ours"] == "35.0 ± 5.0 (2 runs)"
    assert _row(viii, "TD-NMF [47]", "SONYC-UST macro-AUPRC")["ours"] == \
        f"{scores['sonyc_ust']['interpreter']['macro_auprc']:.3f}"
    assert _row(viii, "FLINT [29]", "OpenMIC-2018 avg-weighted-F1")["ours"] == \
        f"{scores['openmic']['interpreter']['weighted_f1']:.3f}"
    assert _row(viii, "FLINT [29]", "ESC-50 accuracy (%)")["ours"] == "not run"  # FLINT post-hoc is not by design
    assert _row(viii, "L2I-Posthoc", "ESC-50 accuracy (%)")["ours"] == "not run"
    assert _row(iv, "FLINT [29]", "OpenMIC-2018 avg-weighted-F1")["command"] == (
        "python experiments/l2i/train_baseline.py --baseline flint --dataset openmic --fold $F --data-dir $D "
        "--output $O")
