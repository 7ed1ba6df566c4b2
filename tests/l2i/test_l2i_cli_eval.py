"""Tests of experiments/l2i/interpret.py and evaluate.py on the tiny ESC-10 run (real clips)."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.l2i._esc10 import esc10_fold1, l2i_cache_dir  # noqa: F401
from tests.l2i.test_pipeline import CLIP, tiny_run  # noqa: F401
from tests.l2i.test_training import REPO


def _script(name):
    spec = importlib.util.spec_from_file_location(f"l2i_{name}", REPO / "experiments" / "l2i" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subprocess(script, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO / "experiments" / "l2i" / script), *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def test_interpret_cli_on_a_real_flac(tiny_run, shared_data, tmp_path):  # noqa: F811
    done = _subprocess("interpret.py", "--model", tiny_run, "--audio", shared_data / "ESC-50" / "audio" / CLIP,
                       "--tau", "0.1", "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "prediction of f:" in done.stdout and "interpreted class:" in done.stdout
    summary = json.loads((tmp_path / "out" / "interpretation.json").read_text())
    assert summary["tau"] == 0.1 and summary["class"] in done.stdout
    x_int, sr = sf.read(tmp_path / "out" / "interpretation.wav")
    assert sr == 44100 and x_int.shape == (220500,)
    for k in summary["components"]:
        assert (tmp_path / "out" / f"component_{k}.wav").is_file()
        assert f"{k} (r = " in done.stdout
    assert (tmp_path / "out" / "interpretation.png").stat().st_size > 1000


def test_interpret_cli_on_a_stereo_22k_wav(tiny_run, shared_data, tmp_path, capsys):  # noqa: F811
    import librosa

    y, sr = sf.read(shared_data / "ESC-50" / "audio" / "1-17150-A-12.flac", dtype="float32")
    y = librosa.resample(y, orig_sr=sr, target_sr=22050)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([y, y[::-1]], axis=1), 22050)
    _script("interpret").main(["--model", str(tiny_run), "--audio", str(path), "--class", "crackling_fire",
                               "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "22050 Hz, 2 channel(s)" in out and "interpreted class: crackling_fire" in out
    analysed, sr = sf.read(tmp_path / "out" / "input.wav")
    assert sr == 44100 and analysed.ndim == 1 and analysed.size == 220500


@pytest.mark.parametrize("args, message", [
    (["--audio", "NOT_AUDIO"], "not_audio.wav: cannot be decoded"),
    (["--class", "unicorn"], "valid names: dog, rooster, rain"),
])
def test_interpret_cli_errors(tiny_run, shared_data, tmp_path, capsys, args, message):  # noqa: F811
    bad = tmp_path / "not_audio.wav"
    bad.write_text("hello")
    argv = ["--model", str(tiny_run), "--audio", str(shared_data / "ESC-50" / "audio" / CLIP),
            "--output", str(tmp_path / "out")]
    argv += [str(bad) if a == "NOT_AUDIO" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        _script("interpret").main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_evaluate_cli_end_to_end(tiny_run, shared_data, tmp_path):  # noqa: F811
    taus = ["0.1", "0.3", "0.9"]
    done = _subprocess("evaluate.py", "--model", tiny_run, "--dataset", "esc10", "--fold", "1", "--data-dir",
                       shared_data, "--taus", *taus, "--max-clips", "6", "--output", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "l2i" / "esc10" / "fold1" / "seed0" / tiny_run.name / "evaluation_none"
    results = json.loads((folder / "results.json").read_text())
    for key in ("fidelity", "classifier", "interpreter", "ff_median", "ff_median_random", "n_removed_mean",
                "ff_median_per_class", "test_nmf_loss", "test_fidelity_loss", "command", "taus"):
        assert key in results, key
    assert results["taus"] == [0.1, 0.3, 0.9] and results["n_clips"] == 6
    assert len(results["ff_median"]) == len(results["ff_median_random"]) == len(taus)
    assert all(-1 <= v <= 1 for v in results["ff_median"] + results["ff_median_random"])
    assert 0 <= results["fidelity"]["top1"] <= results["fidelity"]["top5"] <= 1
    assert 0 <= results["classifier"]["accuracy"] <= 1 and 0 <= results["interpreter"]["accuracy"] <= 1
    assert results["n_removed_mean"][0] >= results["n_removed_mean"][1] >= results["n_removed_mean"][2] >= 0
    assert results["test_nmf_loss"] > 0 and results["test_fidelity_loss"] > 0
    assert "evaluate.py" in results["command"]
    for tau in taus:
        lines = (folder / f"ff_tau{tau}.csv").read_text().strip().splitlines()
        assert lines[0].startswith("clip_id,class") and len(lines) == 7
    relevances = np.load(folder / "relevances.npz")
    assert relevances["r"].shape == (6, 6) and np.all(np.abs(relevances["r"]) <= 1 + 1e-9)


@pytest.mark.parametrize("args, message", [
    (["--tau", "1.5"], "argument --tau: must be a number in [0, 1), got 1.5"),
    (["--tau", "1"], "argument --tau: must be a number in [0, 1), got 1"),
    (["--tau", "high"], "argument --tau: must be a number in [0, 1), got 'high'"),
    (["--tau", "nan"], "argument --tau: must be a number in [0, 1), got 'nan'"),
    (["--start", "-1"], "argument --start: must be a non-negative finite number, got -1"),
    (["--start", "inf"], "argument --start: must be a non-negative finite number, got 'inf'"),
])
def test_interpret_cli_bad_numbers(tmp_path, capsys, args, message):
    """Refused by the parser (exit 2, argparse's message) before the run or the audio file is read."""
    argv = ["--model", str(tmp_path / "run"), "--audio", str(tmp_path / "a.wav"), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        _script("interpret").main(argv + args)
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--taus", "0.1", "1.2"], "argument --taus: must be a number in [0, 1), got 1.2"),
    (["--taus", "0.1", "-0.5"], "argument --taus: must be a number in [0, 1), got -0.5"),
    (["--max-clips", "0"], "argument --max-clips: must be a positive integer, got 0"),
    (["--fold", "0"], "argument --fold: must be a positive integer, got 0"),
    (["--seed", "-1"], "argument --seed: must be an integer seed in [0, 4294967295], got -1"),
    (["--corruption", "reverb"], "argument --corruption: invalid choice: 'reverb'"),
])
def test_evaluate_cli_bad_tau_and_corruption(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        _script("evaluate").main(["--model", str(tmp_path / "run"), "--dataset", "esc10", "--output",
                                  str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script, args, message", [
    ("train_classifier", ["--epochs", "-1"], "argument --epochs: must be a positive integer, got -1"),
    ("train_classifier", ["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("train_classifier", ["--verbose", "5"], "argument --verbose: invalid choice: 5"),
    ("learn_dictionary", ["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("learn_dictionary", ["--n-components", "-4"], "argument --n-components: must be a positive integer, got -4"),
    ("train_interpreter", ["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("train_interpreter", ["--alpha", "-1"], "argument --alpha: must be a non-negative finite number, got -1"),
    ("train_interpreter", ["--beta", "inf"], "argument --beta: must be a non-negative finite number, got 'inf'"),
    ("train_interpreter", ["--gamma", "nan"], "argument --gamma: must be a non-negative finite number, got 'nan'"),
    ("train_interpreter", ["--validation-fraction", "1"],
     "argument --validation-fraction: must be a number in [0, 1), got 1"),
    ("train_interpreter", ["--seed", "4294967296"],
     "argument --seed: must be an integer seed in [0, 4294967295], got 4294967296"),
])
def test_training_clis_refuse_bad_numbers_before_writing(script, args, message, tmp_path, capsys):
    """Issue 12: e.g. ``train_classifier.py --epochs -1`` exited 0 with an untrained classifier.keras."""
    with pytest.raises(SystemExit) as exit_info:
        _script(script).main(["--dataset", "esc10", "--output", str(tmp_path / "runs"), *args])
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("missing, message", [
    ("dictionary", "learn it with experiments/l2i/learn_dictionary.py"),
    ("classifier", "train it with experiments/l2i/train_classifier.py"),
])
def test_train_interpreter_names_a_missing_input(missing, message, tmp_path, capsys):
    """A run folder without its dictionary (or classifier) gives one error line naming the file, no traceback."""
    base = tmp_path / "l2i" / "esc10" / "fold1" / "seed0"
    inputs = {"classifier": base / "classifier" / "classifier.keras", "dictionary": base / "dictionary" / "W.npy"}
    for name, path in inputs.items():
        if name != missing:
            path.parent.mkdir(parents=True)
            path.write_bytes(b"present")
    with pytest.raises(SystemExit) as exit_info:
        _script("train_interpreter").main(["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: the {missing} {base}" in err and message in err and "Traceback" not in err
