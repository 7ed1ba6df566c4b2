"""Tests of experiments/apnet/tables.py on a synthetic results folder with known accuracies."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "apnet" / "tables.py"


def load_tables():
    spec = importlib.util.spec_from_file_location("apnet_experiment_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root, model, dataset, fold, accuracy, n_params, seed=0, n_prototypes=None):
    run_dir = root / model / dataset / f"fold{fold}" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    command = f"python experiments/apnet/train.py --dataset {dataset} --model {model} --fold {fold}"
    (run_dir / "results.json").write_text(json.dumps({
        "model": model, "dataset": dataset, "fold": fold, "seed": seed, "test_accuracy": accuracy,
        "n_params": n_params, "command": command}))
    if n_prototypes is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "n_prototypes": n_prototypes}))
    return run_dir


def write_refinement(folder, method, accuracy_before, accuracy_after, n_params_after, n_prototypes_before):
    folder.mkdir(parents=True)
    command = f"python experiments/apnet/refine.py --method {method} --model {folder.parent / 'model.keras'}"
    (folder / "results.json").write_text(json.dumps({
        "dataset": "medley_solos_db", "fold": 1, "seed": 0, "method": method,
        "test_accuracy_before": accuracy_before, "test_accuracy_after": accuracy_after,
        "n_params_before": 4_000_000, "n_params_after": n_params_after,
        "n_prototypes_before": n_prototypes_before, "command": command}))
    return command


@pytest.fixture
def results(tmp_path):
    """UrbanSound8K APNet on 3 folds, SB-CNN on 1, FSDD APNet on 2, Medley APNet refined twice."""
    root = tmp_path / "results"
    for fold, accuracy in zip((1, 2, 3), (0.70, 0.75, 0.80)):
        write_run(root, "apnet", "urbansound8k", fold, accuracy, 1_180_000 + fold)
    write_run(root, "sb_cnn", "urbansound8k", 1, 0.6, 860_000)
    write_run(root, "apnet", "fsdd", 1, 0.5, 300_000)
    write_run(root, "apnet", "fsdd", 2, 0.9, 300_000)
    base = write_run(root, "apnet", "medley_solos_db", 1, 0.60, 4_000_000, n_prototypes=40)
    commands = {"prototypes": write_refinement(base / "refine_prototypes", "prototypes", 0.60, 0.65, 1_800_000, 40)}
    commands["prototypes+channels"] = write_refinement(base / "refine_prototypes" / "refine_channels", "channels",
                                                       0.65, 0.70, 1_500_000, 25)
    commands["channels"] = write_refinement(base / "refine_channels", "channels", 0.60, 0.62, 3_000_000, 40)
    write_run(root, "openl3_mlp", "medley_solos_db", 1, 0.671, 9_400_000)
    return root, commands


def test_paper_numbers_are_tables_3_and_4():
    tables = load_tables()
    assert tables.PAPER_TABLE3["apnet"] == {"urbansound8k": (76.2, 1.2), "medley_solos_db": (65.8, 4.2),
                                            "speech_commands": (89.0, 1.8)}
    assert tables.PAPER_TABLE3["openl3_mlp"]["speech_commands"] == (70.9, 9.5)
    assert tables.PAPER_TABLE3["att_crnn"]["medley_solos_db"] == (52.0, 0.29)
    assert [v[1:] for v in tables.PAPER_TABLE4.values()] == [(65.8, 4.2), (68.2, 1.8), (69.1, 1.5), (67.3, 9.4)]


def test_format_folds_and_commands():
    tables = load_tables()
    assert tables.format_folds([3, 1, 2, 5, 7, 8]) == "1-3, 5, 7-8"
    commands = ["python train.py --fold 1", "python train.py --fold 2"]
    assert tables.command_summary(commands, [1, 2]) == "python train.py --fold N"
    assert tables.command_summary(commands[:1], [1]) == "python train.py --fold 1"


def test_tables_cli(results, tmp_path, capsys):
    root, commands = results
    out = tmp_path / "tables"
    assert load_tables().main([str(root), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("table3.md", "table3.csv", "table4.md", "table4.csv"):
        assert (out / name).is_file(), name

    # Table 3: means over folds, params in millions, fold counts, "not run" where nothing ran.
    t3 = pd.read_csv(out / "table3.csv")
    t3 = t3.set_index(["model", "dataset"])
    us8k = t3.loc[("apnet", "urbansound8k")]
    assert us8k["accuracy_mean"] == pytest.approx(75.0)
    assert us8k["accuracy_std"] == pytest.approx(np.std([70.0, 75.0, 80.0], ddof=1))
    assert us8k["params_M"] == pytest.approx(1.180002)
    assert us8k["paper_accuracy"] == 76.2 and us8k["paper_params_M"] == 1.2
    assert us8k["n_folds"] == 3 and us8k["folds"] == "1-3" and us8k["status"] == "ok"
    assert us8k["command"] == "python experiments/apnet/train.py --dataset urbansound8k --model apnet --fold N"
    assert t3.loc[("sb_cnn", "urbansound8k"), "accuracy_mean"] == pytest.approx(60.0)
    assert t3.loc[("apnet", "fsdd"), "accuracy_mean"] == pytest.approx(70.0)
    assert np.isnan(t3.loc[("apnet", "fsdd"), "paper_accuracy"])
    assert ("sb_cnn", "fsdd") not in t3.index  # other datasets: only what was run
    speech = t3.loc[("apnet", "speech_commands")]
    assert speech["status"] == "not run" and np.isnan(speech["accuracy_mean"]) and speech["n_folds"] == 0
    assert len(t3) == 3 * 4 + 1

    md3 = (out / "table3.md").read_text()
    assert md3 in printed
    assert ("| APNet | UrbanSound8K | 76.2 | 75.0 ± 5.0 | 1.2 | 1.18 | 3 (1-3) | "
            "`python experiments/apnet/train.py --dataset urbansound8k --model apnet --fold N` |") in md3
    assert ("| SB-CNN | UrbanSound8K | 72.2 | 60.0 | 0.86 | 0.86 | 1 (1) | "
            "`python experiments/apnet/train.py --dataset urbansound8k --model sb_cnn --fold 1` |") in md3
    assert "| APNet | Google Speech Commands | 89.0 | not run | 1.8 | not run | 0 | — |" in md3
    assert "| APNet | FSDD (not in paper) | — | 70.0 ± 28.3 | — | 0.30 | 2 (1-2) |" in md3

    # Table 4: before/after each refinement, chained refinement recognised by its nesting.
    t4 = pd.read_csv(out / "table4.csv").set_index("row")
    assert list(t4.index) == ["apnet", "prototypes", "prototypes+channels", "openl3_mlp", "channels"]
    assert t4.loc["apnet", "accuracy_mean"] == pytest.approx(60.0)
    assert t4.loc["prototypes", "accuracy_mean"] == pytest.approx(65.0)
    assert t4.loc["prototypes+channels", "accuracy_mean"] == pytest.approx(70.0)
    assert t4.loc["prototypes+channels", "params_M"] == pytest.approx(1.5)
    assert t4.loc["channels", "accuracy_mean"] == pytest.approx(62.0)
    assert t4.loc["openl3_mlp", "paper_params_M"] == 9.4
    for stage, command in commands.items():
        assert t4.loc[stage, "command"] == command
    md4 = (out / "table4.md").read_text()
    assert f"| APNet (R. channels) | 69.1 | 70.0 | 1.5 | 1.50 | 1 (1) | `{commands['prototypes+channels']}` |" in md4
    assert "| Openl3 | 67.3 | 67.1 | 9.4 | 9.40 | 1 (1) |" in md4


def test_channel_refinement_elsewhere_counts_as_after_prototypes(tmp_path):
    """Not nested, but its model had fewer prototypes than the training run: after the prototypes."""
    tables = load_tables()
    root = tmp_path / "results"
    base = write_run(root, "apnet", "medley_solos_db", 1, 0.6, 4_000_000, n_prototypes=40)
    write_refinement(base / "channels_after_pruning", "channels", 0.65, 0.7, 1_500_000, 25)
    runs = tables.collect_refinement_runs(root)
    assert runs["stage"].tolist() == ["prototypes+channels"]


def test_empty_results(tmp_path, capsys):
    tables = load_tables()
    (tmp_path / "empty").mkdir()
    assert tables.main([str(tmp_path / "empty")]) == 0
    t3 = pd.read_csv(tmp_path / "empty" / "table3.csv")
    assert (t3["status"] == "not run").all() and len(t3) == 12
    t4 = pd.read_csv(tmp_path / "empty" / "table4.csv")
    assert (t4["status"] == "not run").all() and len(t4) == 4
    assert tables.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
