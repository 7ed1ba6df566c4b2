"""`python experiments/extract_features.py` on every dataset folder of shared/data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = [("fsdd", "mel", [3000, 64, 64]), ("urbansound8k", "mel", [19, 84, 128]),
         ("medley_solos_db", "mel", [97, 128, 256]), ("speech_commands", "mel", [274, 60, 80]),
         ("esc10", "logmag", [317, 431, 513]), ("esc50", "mel", [317, 431, 128]),
         ("sonyc_ust", "logmag", [1, 862, 513]), ("openmic", "mel", [1, 862, 128])]


def extract(*args):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments/extract_features.py"), *args, "--no-progress"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    return proc


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-cache")


@pytest.mark.parametrize("dataset,features,shape", CASES)
def test_extract_prints_one_json_line_and_caches(dataset, features, shape, shared_data, cache):
    args = ["--dataset", dataset, "--features", features, "--data-dir", str(shared_data), "--cache-dir", str(cache)]
    first = extract(*args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out == {**out, "dataset": dataset, "features": features, "n_clips": shape[0], "shape": shape,
                   "cached": False}
    assert set(out) == {"dataset", "features", "n_clips", "shape", "seconds", "cached"}
    second = json.loads(extract(*args).stdout)
    assert second["cached"] is True and second["shape"] == shape
    assert second["seconds"] < out["seconds"]


def test_bad_dataset_folder_gives_a_clear_error_and_exit_code(tmp_path, shared_data):
    proc = extract("--dataset", "urbansound8k", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 2
    assert f"{tmp_path / 'UrbanSound8K'} does not exist" in proc.stderr and "Traceback" not in proc.stderr
    unknown = extract("--dataset", "fsdd", "--features", "cqt", "--data-dir", str(shared_data),
                      "--cache-dir", str(tmp_path / "c"))
    assert unknown.returncode == 2 and "feature set 'cqt'" in unknown.stderr
