"""The benchmarks that read data say what is missing in one line and exit 2 (no traceback)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script, option, expected", [
    ("benchmarks/feature_cache.py", "--data-dir", "fsdd: dataset folder"),
    ("benchmarks/l2i_nmf_vs_sklearn.py", "--data", "meta/esc50.csv does not exist"),
])
def test_missing_data_folder_is_one_line_and_exit_2(script, option, expected, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / script), option, str(tmp_path / "nowhere")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in done.stderr
