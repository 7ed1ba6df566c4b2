"""What experiments/apnet/train.py tells a newcomer (issue 13): split sizes, a loud warning on a dataset excerpt,
the run folder, feature-extraction progress, and ``--download`` fetching the dataset before training.

The download test serves an FSDD release archive of 60 real recordings (one per digit and speaker, so every
speaker-fold has clips: fold 1 tests on george, validates on jackson, trains on the other four) from the local
HTTP server of tests/audiodata/test_download.py, pointed at with ``--mirror``.
"""
import json
import subprocess
import sys

import pytest
import yaml

from tests.apnet.test_train_cli import REPO, SCRIPTS, load_script, script_env
from tests.audiodata.test_download import _tar_gz, server  # noqa: F401  (server: the fixture)

CONFIGS = REPO / "apnet" / "configs"


def _small_config(tmp_path, dataset):
    """The dataset's config with a small APNet (M = 10, C = 8), so one epoch takes seconds on 2 cores."""
    config = yaml.safe_load((CONFIGS / f"{dataset}.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8)
    path = tmp_path / f"{dataset}_small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_excerpt_is_reported_before_training(shared_data, tmp_path, capsys, monkeypatch):
    """UrbanSound8K's 19 test clips: the split sizes (13 / 3 / 3) and a `warning:` line come first, then the
    extraction's progress bar; the run folder is named at the start and at the end; stdout's last line is
    still results.json."""
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    output = tmp_path / "out"
    argv = ["--dataset", "urbansound8k", "--fold", "1", "--epochs", "1", "--data-dir", str(shared_data),
            "--cache-dir", str(tmp_path / "cache"), "--config", str(_small_config(tmp_path, "urbansound8k")),
            "--output", str(output), "--verbose", "0"]
    assert load_script("train").main(argv) == 0
    captured = capsys.readouterr()
    run_dir = output / "apnet" / "urbansound8k" / "fold1" / "seed0"
    lines = captured.err.splitlines()
    assert lines[0] == f"run folder: {run_dir}"
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: "))
    assert lines[warning].startswith(f"warning: urbansound8k: {shared_data / 'UrbanSound8K'} holds only 19 clips")
    assert "of the 8,732 of the official release" in lines[warning]
    assert lines[warning + 1] == "urbansound8k fold 1: train 13, validation 3, test 3 clips"
    assert "features: 100%" in captured.err.split(lines[warning + 1], 1)[1]  # the cache's progress bar, after
    assert lines[-1].startswith(f"run folder: {run_dir}")
    results = json.loads(captured.out.strip().splitlines()[-1])
    assert results == json.loads((run_dir / "results.json").read_text())
    assert (results["n_train"], results["n_validation"], results["n_test"]) == (13, 3, 3)


def test_no_data_folder_error_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    for extra in ([], ["--download"]):
        argv = ["--dataset", "fsdd", "--fold", "1", "--output", str(tmp_path / "out"), *extra]
        assert load_script("train").main(argv) == 2
        err = capsys.readouterr().err
        assert "error: no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR environment variable" in err


@pytest.fixture
def fsdd_release(shared_data, server):  # noqa: F811
    """The FSDD v1.0.10 archive, holding recording 0 of every digit and speaker (60), served under its name."""
    recordings = sorted((shared_data / "fsdd" / "recordings").glob("*_0.wav"))
    assert len(recordings) == 60
    members = {f"free-spoken-digit-dataset-1.0.10/recordings/{p.name}": p for p in recordings}
    server.serve("free-spoken-digit-dataset-1.0.10.tar.gz", _tar_gz(members))
    return f"http://127.0.0.1:{server.server_port}"


def test_download_flag_fetches_the_dataset_then_trains(fsdd_release, server, tmp_path):  # noqa: F811
    data = tmp_path / "empty"
    data.mkdir()
    output = tmp_path / "results"
    command = [sys.executable, str(SCRIPTS / "train.py"), "--dataset", "fsdd", "--fold", "1", "--epochs", "1",
               "--download", "--mirror", fsdd_release, "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
               "--config", str(_small_config(tmp_path, "fsdd")), "--output", str(output), "--verbose", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=script_env(tmp_path), cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.requests == [("free-spoken-digit-dataset-1.0.10.tar.gz", None)]
    assert len(list((data / "fsdd" / "recordings").glob("*.wav"))) == 60
    assert f"downloading fsdd into {data / 'fsdd'} from {fsdd_release}" in done.stderr
    assert "fsdd fold 1: train 40, validation 10, test 10 clips" in done.stderr
    assert "warning: fsdd: " in done.stderr and "holds only 60 clips" in done.stderr
    run_dir = output / "apnet" / "fsdd" / "fold1" / "seed0"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == json.loads((run_dir / "results.json").read_text()) and results["epochs"] == 1
    assert (results["n_train"], results["n_validation"], results["n_test"]) == (40, 10, 10)
