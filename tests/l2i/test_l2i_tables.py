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
    # SONYC-UST with the loss weights of Table VII (an ablation: alpha = 1 is not the main configuration)
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
    assert _row(rows, "L2I w/ Theta_ATT", "SONYC-UST macro-AUPRC")["ours"] == "not run"  # alpha = 1: ablation
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
    assert _row(viii, "L2I-Posthoc", "SONYC-UST macro-AUPRC")["ours"] == "not run"  # ablation only
    apnet = _row(viii, "APNet [13]", "ESC-50 accuracy (%)")  # no apnet/ runs: the command that makes them
    assert apnet["ours"] == "not run" and apnet["command"] == (
        "python experiments/apnet/train.py --dataset esc50 --fold $F --n-prototypes 100 --data-dir $D --output $O")
    assert _row(viii, "APNet [13]", "SONYC-UST macro-AUPRC")["ours"].startswith("n/a (APNet is single-label")
    assert _row(tables["I"][1], "Current-f", "ESC-50 top-1 (%)")["ours"] == "82.0 ± 2.0 (2 runs)"
    assert _row(tables["I"][1], "Current-f", "SONYC-UST macro-AUPRC")["ours"] == "0.600"


def test_tables_cli_writes_markdown_and_csv(tables_module, results_dir, tmp_path, capsys):
    tables_module.main([str(results_dir), "--output", str(tmp_path / "tables")])
    assert "Table IV: 4/20 cells with our numbers" in capsys.readouterr().out
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
    assert all(r["ours"] == "not run" or r["ours"].startswith("n/a") for _, rows in tables.values() for r in rows)
    assert all(r["n_runs"] == 0 for _, rows in tables.values() for r in rows)
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


# --------------------------------------------------------------------------- main runs and ablations side by side
def _run(root, dataset, fold, mode, theta, evaluation=None, training=None, legacy_config=None, **changes):
    """A run folder as train_interpreter.py names and fills it (identity.json, results.json with ``identity``),
    with ``changes`` to the main configuration: hidden_layers, alpha, beta, gamma, K; ``legacy_config``: a
    results.json written before identities (config only, folder ``<mode>_<theta>``)."""
    from l2i.runs import (classifier_identity, default_config, dictionary_identity, interpreter_folder,
                          interpreter_identity)

    base = root / "l2i" / dataset / f"fold{fold}" / "seed0"
    if legacy_config is not None:
        folder = base / f"{mode}_{theta}"
        _write(folder, dict(training or {}, mode=mode, theta=theta, config=legacy_config, command="legacy"))
    else:
        config = default_config(dataset)
        section = config["posthoc" if mode == "posthoc" else "bydesign"]
        for key in ("alpha", "beta", "gamma"):
            if key in changes:
                section[key] = changes[key]
        if "hidden_layers" in changes:
            config["interpreter"]["hidden_layers"] = changes["hidden_layers"]
        if "K" in changes:
            config["dictionary"]["n_components"] = changes["K"]
        identity = interpreter_identity(config, mode, theta, dictionary_identity(dataset, config["dictionary"]),
                                        classifier_identity(config["classifier"]))
        folder = base / interpreter_folder(mode, theta, identity, dataset)
        _write(folder, dict(training or {}, mode=mode, theta=theta, identity=identity,
                            command=f"train {folder.name}"))
        (folder / "identity.json").write_text(json.dumps(identity))
        if evaluation is not None:
            evaluation = dict(evaluation, n_components=identity["dictionary"]["K"])
    if evaluation is not None:
        _write(folder / "evaluation_none", dict(evaluation, command=f"evaluate {folder.name} fold{fold}"))
    return folder


@pytest.fixture
def side_by_side(tmp_path):
    """Main runs and every kind of ablation under one results root, each with its own numbers."""
    root = tmp_path / "results"
    folders = {}
    for fold, top1 in ((1, 0.6), (2, 0.7)):
        base = root / "l2i" / "esc50" / f"fold{fold}" / "seed0"
        _write(base / "classifier", {"test_accuracy": 0.8 + 0.04 * (fold - 1), "command": f"f fold{fold}"})
        folders[f"main{fold}"] = _run(root, "esc50", fold, "posthoc", "att",
                                      _evaluation(top1, 0.9, [0.1, 0.04, 0.01, 0.004, 0.002], [1e-5] * 5, g_acc=0.7,
                                                  nmf=0.08, lfid=1.5))
    # Table VI ablations (fold 1), a K ablation (Fig. 6), a loss-weight ablation on ESC (in no table)
    folders["B3"] = _run(root, "esc50", 1, "posthoc", "att", _evaluation(0.30, 0.5, [0.5] * 5, [0.0] * 5, g_acc=0.2,
                                                                         nmf=0.104, lfid=1.788),
                         hidden_layers=["block3"])
    folders["Input"] = _run(root, "esc50", 1, "posthoc", "att",
                            _evaluation(0.345, 0.6, [0.6] * 5, [0.0] * 5, g_acc=0.1, nmf=0.102, lfid=2.384),
                            hidden_layers=["input"])
    folders["B5+B6"] = _run(root, "esc50", 1, "posthoc", "att",
                            _evaluation(0.615, 0.8, [0.7] * 5, [0.0] * 5, nmf=0.103, lfid=1.572),
                            hidden_layers=["block5", "block6"])
    folders["B3 fold 2"] = _run(root, "esc50", 2, "posthoc", "att", _evaluation(0.11, 0.2, [0.8] * 5, [0.0] * 5,
                                                                                nmf=0.5), hidden_layers=["block3"])
    folders["K50"] = _run(root, "esc50", 1, "posthoc", "att", _evaluation(0.2, 0.3, [0.9] * 5, [0.0] * 5, nmf=0.2),
                          training={"n_components": 50}, K=50)
    folders["a1"] = _run(root, "esc50", 1, "posthoc", "att", _evaluation(0.25, 0.3, [0.3] * 5, [0.0] * 5), alpha=1.0)
    # the reviewer's case: a B3-only ablation written before identities, in another folder under the same root
    _run(root / "old_ablation", "esc50", 1, "posthoc", "att",
         _evaluation(0.30, 0.5, [0.5] * 5, [0.0] * 5, g_acc=0.2, nmf=0.104, lfid=1.788),
         legacy_config={"interpreter": {"hidden_layers": ["block3"]}})
    # and an ablated classifier in another folder: not BASE-f
    _write(root / "other" / "l2i" / "esc50" / "fold1" / "seed0" / "classifier",
           {"test_accuracy": 0.1, "config": {"filters": [4, 4, 8, 8, 16, 16]}, "command": "tiny f"})
    # Table VIII: by design, main and with another gamma
    folders["bd"] = _run(root, "esc50", 1, "bydesign", "att", training={"accuracy": 0.52})
    folders["bd g0.5"] = _run(root, "esc50", 1, "bydesign", "att", training={"accuracy": 0.99}, gamma=0.5)
    # SONYC-UST: main (alpha 10, beta 0.8) and the loss-weight ablations of Table VII, one with B3 too
    for name, (a, b, macro, lfid) in {"s main": (10.0, 0.8, 0.900, 0.386), "s a1": (1.0, 0.8, 0.921, 0.375),
                                      "s b8": (10.0, 8.0, 0.879, 0.3861)}.items():
        folders[name] = _run(root, "sonyc_ust", 1, "posthoc", "att", {
            "fidelity": {"macro_auprc": macro, "micro_auprc": macro}, "classifier": {"macro_auprc": 0.601},
            "interpreter": {"macro_auprc": macro - 0.3}, "test_nmf_loss": 0.028, "test_fidelity_loss": lfid,
            "taus": [0.1], "ff_median": [0.1], "ff_median_random": [0.0]}, alpha=a, beta=b)
    folders["s a1 B3"] = _run(root, "sonyc_ust", 1, "posthoc", "att", {
        "fidelity": {"macro_auprc": 0.1}, "test_fidelity_loss": 9.0, "test_nmf_loss": 9.0}, alpha=1.0,
        hidden_layers=["block3"])
    return root, folders


def test_run_folders_are_distinct_and_main_ones_keep_their_names(side_by_side):
    _, folders = side_by_side
    names = {name: folder.name for name, folder in folders.items()}
    assert names["main1"] == names["main2"] == "posthoc_att" and names["s main"] == "posthoc_att"
    assert names["bd"] == "bydesign_att"
    assert names["B3"].startswith("posthoc_att-B3-") and names["Input"].startswith("posthoc_att-Input-")
    assert names["K50"].startswith("posthoc_att-K50-") and names["a1"].startswith("posthoc_att-a1.0-")
    assert names["bd g0.5"].startswith("bydesign_att-g0.5-")
    assert len({f for f in folders.values()}) == len(folders)  # nothing overwritten


def test_every_cell_comes_from_the_right_run(tables_module, side_by_side):
    root, folders = side_by_side
    tables = tables_module.build_tables(root)
    iv, v, vi, vii, viii = (tables[t][1] for t in ("IV", "V", "VI", "VII", "VIII"))
    # Tables IV, V, VIII: main runs only (B3 with top-1 30.0 and FF 0.5, old or new, does not take over)
    att = _row(iv, "L2I w/ Theta_ATT", "ESC-50 top-1 fidelity (%)")
    assert att["ours"] == "65.0 ± 5.0 (2 runs)" and all("posthoc_att " in c or "posthoc_att fold" in c
                                                         for c in [att["command"].split("  (+")[0]])
    assert _row(iv, "L2I w/ Theta_ATT", "ESC-50 top-5 fidelity (%)")["ours"] == "90.0 ± 0.0 (2 runs)"
    assert _row(iv, "L2I w/ Theta_ATT", "SONYC-UST macro-AUPRC")["ours"] == "0.900"
    assert _row(iv, "L2I w/ Theta_ATT", "SONYC-UST micro-AUPRC")["ours"] == "0.900"
    assert _row(v, "L2I w/ Theta_ATT", "FF_median, tau = 0.1")["ours"] == "0.100 ± 0.000 (2 runs)"
    assert _row(v, "L2I w/ Theta_ATT", "FF_median, tau = 0.9")["ours"] == "0.002 ± 0.000 (2 runs)"
    assert _row(v, "Random Baseline", "FF_median, tau = 0.1")["ours"] == "1e-05 ± 0 (2 runs)"
    assert _row(viii, "L2I-Posthoc", "ESC-50 accuracy (%)")["ours"] == "70.0 ± 0.0 (2 runs)"
    assert _row(viii, "L2I-Posthoc", "SONYC-UST macro-AUPRC")["ours"] == "0.600"
    assert _row(viii, "L2I_BD w/ Theta_ATT", "ESC-50 accuracy (%)")["ours"] == "52.0"  # not gamma = 0.5's 99
    assert _row(viii, "BASE-f", "ESC-50 accuracy (%)")["ours"] == "82.0 ± 2.0 (2 runs)"  # not the tiny f's 10
    assert _row(tables["I"][1], "Current-f", "ESC-50 top-1 (%)")["ours"] == "82.0 ± 2.0 (2 runs)"
    assert _row(tables["I"][1], "Current-f", "SONYC-UST macro-AUPRC")["ours"] == "0.601"
    # Table VI: fold 1, main but for the hidden layers; B4+B5+B6 is the main run
    cells = {(r["system"], r["metric"]): (r["ours"], r["n_runs"]) for r in vi}
    assert cells[("B4+B5+B6", "top-1 fidelity (%)")] == ("60.0", 1)
    assert cells[("B4+B5+B6", "L_NMF")] == ("0.080", 1)
    assert cells[("B3", "top-1 fidelity (%)")] == ("30.0", 1)  # old and new B3 folders: one run, fold 2 left out
    assert cells[("B3", "L_NMF")] == ("0.104", 1) and cells[("B3", "L_FID")] == ("1.788", 1)
    assert cells[("Input", "L_NMF")] == ("0.102", 1) and cells[("Input", "top-1 fidelity (%)")] == ("34.5", 1)
    assert cells[("B5+B6", "L_FID")] == ("1.572", 1)
    assert cells[("B6", "L_NMF")] == ("not run", 0) and cells[("B2+B3", "L_NMF")] == ("not run", 0)
    input_row = next(r for r in vi if r["system"] == "B6")
    assert "--hidden-layers block6" in input_row["command"]
    # Table VII: SONYC-UST, main but for alpha and beta; alpha = 10, beta = 0.8 is the main run
    cells = {(r["system"], r["metric"]): r["ours"] for r in vii}
    assert cells[("alpha = 10.0, beta = 0.8", "L_FID")] == "0.386"
    assert cells[("alpha = 1.0, beta = 0.8", "L_FID")] == "0.375"  # not the B3 + alpha = 1 run's 9.0
    assert cells[("alpha = 10.0, beta = 8.0", "macro-AUPRC")] == "0.879"
    assert cells[("alpha = 100.0, beta = 0.8", "L_NMF")] == "not run"
    assert "--alpha 100 --beta 0.8" in next(r for r in vii if r["system"] == "alpha = 100.0, beta = 0.8")["command"]


def test_fig6_and_notebooks_pick_the_K_ablation(side_by_side):
    from l2i.figures import components_ablation
    from l2i.pipeline import find_results
    from l2i.runs import select

    root, folders = side_by_side
    entries = find_results(root)
    main, note = select(entries)
    assert note == "main configuration"
    assert {e["path"].parent for e in main if e["kind"] == "evaluation"} == {
        folders["main1"] / "evaluation_none", folders["main2"] / "evaluation_none",
        folders["s main"] / "evaluation_none"}
    chosen, _ = select([e for e in entries if e["base"] == "posthoc_att" and e["dataset"] == "esc50"], axis="K")
    table = components_ablation(chosen)["esc50"]
    assert [row["K"] for row in table] == [50, 100]
    assert table[0]["nmf_loss"] == pytest.approx(0.2) and table[1]["nmf_loss"] == pytest.approx(0.08)
    # only small test runs of another configuration: the notebooks fall back to the most common one, and say so
    tiny = [dict(e, differences=["interpreter.psi_channels"]) for e in chosen]
    picked, note = select(tiny, axis="K", fallback=True)
    assert len(picked) == len(chosen) and note.startswith("no run of the main configuration")


# --------------------------------------------------------------------------- Table VIII: NMF sweeps and APNet
def _sweep_run(root, dataset, fold, seed, name, k, feature, score):
    """A sweep folder as ``train_baseline.py --k ... --features ...`` writes it."""
    from l2i.baselines.training import SWEEP_METRICS, sweep_system

    metric = SWEEP_METRICS[dataset]
    _write(root / "l2i" / dataset / f"fold{fold}" / f"seed{seed}" / sweep_system(name, k, feature), {
        "interpreter": {metric: score}, "baseline": name, "n_components": k, "feature": feature, "dataset": dataset,
        "fold": fold, "seed": seed, "command": f"sweep {name} k{k} {feature} fold{fold} seed{seed}",
        "sweep": {"baseline": name, "n_components": k, "feature": feature, "metric": f"interpreter.{metric}",
                  "score": score}})


def test_nmf_rows_report_the_selected_sweep_combination(tables_module, tmp_path):
    from l2i.baselines.training import select_sweep

    root = tmp_path / "results"
    # ESC-50 nmf, folds 1 and 2: K=256 logmag and sqrt_mel tie (46 %): logmag wins; K=512 (90 %) is on fold 1 only
    for fold, delta in ((1, -0.01), (2, 0.01)):
        for k, feature, score in ((64, "logmag", 0.31), (128, "sqrt_mel", 0.45), (256, "logmag", 0.46),
                                  (256, "sqrt_mel", 0.46)):
            _sweep_run(root, "esc50", fold, 0, "nmf", k, feature, score + delta)
        _write(root / "l2i" / "esc50" / f"fold{fold}" / "seed0" / "baseline_nmf",
               {"interpreter": {"accuracy": 0.2}, "command": "plain nmf"})
    _sweep_run(root, "esc50", 1, 0, "nmf", 512, "logmag", 0.9)
    # SONYC-UST tdl_nmf: K=128 sqrt_mel best; ESC-50 tdl_nmf: no sweep, the baseline_tdl_nmf/ run
    for k, feature, score in ((64, "logmag", 0.40), (128, "sqrt_mel", 0.43), (512, "logmag", 0.41)):
        _sweep_run(root, "sonyc_ust", 1, 0, "tdl_nmf", k, feature, score)
    _write(root / "l2i" / "esc50" / "fold1" / "seed0" / "baseline_tdl_nmf",
           {"interpreter": {"accuracy": 0.5}, "command": "plain tdl_nmf"})
    # OpenMIC nmf: two combinations, each on another seed: none complete, no baseline_nmf/ either
    _sweep_run(root, "openmic", 1, 0, "nmf", 64, "logmag", 0.6)
    _sweep_run(root, "openmic", 1, 1, "nmf", 128, "logmag", 0.7)

    viii = tables_module.build_tables(root)["VIII"][1]
    nmf = _row(viii, "Unsupervised-NMF", "ESC-50 accuracy (%)")
    assert nmf["ours"] == "46.0 ± 1.0 (2 runs) [K=256, logmag]" and nmf["n_runs"] == 2
    assert nmf["command"].startswith("sweep nmf k256 logmag fold") and "(+1 more)" in nmf["command"]
    selection = select_sweep(root, "nmf", "esc50")
    assert selection["selected"]["system"] == "baseline_nmf_k256_logmag"
    assert nmf["ours"].startswith(f"{100 * selection['selected']['mean']:.1f} ")  # 0-1 selection, % cell
    tdl = _row(viii, "TD-NMF [47]", "SONYC-UST macro-AUPRC")
    assert tdl["ours"] == "0.430 [K=128, sqrt_mel]" and tdl["command"] == "sweep tdl_nmf k128 sqrt_mel fold1 seed0"
    assert _row(viii, "TD-NMF [47]", "ESC-50 accuracy (%)")["ours"] == "50.0"  # fallback: baseline_tdl_nmf/
    assert _row(viii, "Unsupervised-NMF", "SONYC-UST macro-AUPRC")["ours"] == "not run"
    incomplete = _row(viii, "Unsupervised-NMF", "OpenMIC-2018 avg-weighted-F1")
    assert incomplete["ours"] == "not run (sweep incomplete: no K/feature combination run on every fold and seed)"
    assert incomplete["command"].endswith("--baseline nmf --dataset openmic --fold $F --data-dir $D --output $O "
                                          "--k 64 128 256 512 --features logmag sqrt_mel")
    # sweep folders are no Table IV/VIII cell of their own, and leave the other baselines alone
    assert _row(viii, "FLINT [29]", "ESC-50 accuracy (%)")["ours"] == "not run"


def _apnet_run(root, dataset, fold, accuracy, m, model="apnet", seed=0, config=True):
    """A run folder as ``experiments/apnet/train.py`` writes it (config.yaml with M = n_prototypes)."""
    import yaml

    folder = root / "apnet" / dataset / f"fold{fold}" / f"seed{seed}"
    _write(folder, {"model": model, "dataset": dataset, "fold": fold, "seed": seed, "test_accuracy": accuracy,
                    "best_val_accuracy": 0.5, "command": f"apnet {dataset} fold{fold} M{m}"})
    if config:
        (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "n_prototypes": m, "folds": [1, 2, 3]}))


def test_apnet_row_takes_runs_with_m_equal_to_k(tables_module, tmp_path):
    from l2i.runs import default_config

    assert default_config("esc50")["dictionary"]["n_components"] == 100
    root = tmp_path / "results"
    _apnet_run(root, "esc50", 1, 0.60, 100)
    _apnet_run(root, "esc50", 2, 0.70, 100)
    _apnet_run(root, "esc50", 3, 0.99, 50)  # M = 50: another comparison
    _apnet_run(root, "esc50", 4, 0.99, 100, model="sb_cnn")  # not APNet
    _apnet_run(root, "esc50", 5, 0.99, 100, config=False)  # M unknown
    _apnet_run(root, "esc10", 1, 0.99, 100)  # ESC-50 runs exist: ESC-10 is not used
    viii = tables_module.build_tables(root)["VIII"][1]
    apnet = _row(viii, "APNet [13]", "ESC-50 accuracy (%)")
    assert apnet["ours"] == "65.0 ± 5.0 (2 runs) [M=100]" and apnet["n_runs"] == 2 and apnet["paper"] == "63.6 ± 1.7"
    assert apnet["command"] == "apnet esc50 fold1 M100  (+1 more)"
    for metric in ("SONYC-UST macro-AUPRC", "OpenMIC-2018 avg-weighted-F1"):
        cell = _row(viii, "APNet [13]", metric)
        assert cell["ours"].startswith("n/a (APNet is single-label") and cell["command"] == "" and cell["n_runs"] == 0


def test_apnet_row_without_m_equal_to_k(tables_module, tmp_path):
    root = tmp_path / "results"
    _apnet_run(root, "esc50", 1, 0.99, 50)
    apnet = _row(tables_module.build_tables(root)["VIII"][1], "APNet [13]", "ESC-50 accuracy (%)")
    assert apnet["ours"] == "not run (runs with M = 50 only, not M = K)" and apnet["n_runs"] == 0
    assert "--dataset esc50 --fold $F --n-prototypes 100 " in apnet["command"]
    _apnet_run(root, "esc10", 2, 0.725, 100)  # ESC-10 with M = K: the ESC cell's fallback, marked as such
    apnet = _row(tables_module.build_tables(root)["VIII"][1], "APNet [13]", "ESC-50 accuracy (%)")
    assert apnet["ours"] == "72.5 [ESC-10] [M=100]" and apnet["command"] == "apnet esc10 fold2 M100"
