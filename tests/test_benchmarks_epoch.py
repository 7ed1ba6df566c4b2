"""benchmarks/epoch_throughput.py at tiny settings on the TensorFlow CPU backend, and gpu_check.sh's syntax.

The throughput script must build its synthetic cache at the real feature shapes of the configs
(APNet / UrbanSound8K ``mel``: 84 x 128; L2I / ESC-50 ``mel``: 431 x 128), use the configs' batch
sizes (256 and 32), time the batches asked for, report positive clips/s, the input pipeline, the
ratio to a CPU reference, and delete its temporary folder.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "epoch_throughput.py"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("epoch_throughput")
    (tmp / "work").mkdir()
    reference = tmp / "reference.json"
    reference.write_text(json.dumps({"cases": [
        {"model": "apnet", "backend": "jax", "distribute": False, "clips_per_s": 1000.0},
        {"model": "apnet", "backend": "tensorflow", "distribute": False, "clips_per_s": 2.0},
        {"model": "l2i", "backend": "tensorflow", "distribute": False, "clips_per_s": 4.0},
    ]}))
    out = tmp / "out.json"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "both", "--batches", "1", "--clips", "64", "--json", str(out),
         "--cpu-reference", str(reference), "--tmp-dir", str(tmp / "work")],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"result": json.loads(out.read_text()), "stdout": done.stdout, "tmp": tmp}


def _case(run, model):
    (record,) = [r for r in run["result"]["cases"] if r["model"] == model]
    return record


def test_shapes_batches_and_figures(tiny_run):
    from audiodata.features import feature_shape, load_feature_params

    apnet, l2i = _case(tiny_run, "apnet"), _case(tiny_run, "l2i")
    assert apnet["input_shape"] == list(feature_shape(load_feature_params("urbansound8k", "mel"))) == [84, 128]
    assert l2i["input_shape"] == list(feature_shape(load_feature_params("esc50", "mel"))) == [431, 128]
    assert (apnet["batch"], l2i["batch"]) == (256, 32)
    # 64 clips: one APNet batch (the whole epoch), two classifier batches of which one is timed
    assert (apnet["batches_per_epoch"], apnet["batches_timed"], apnet["clips"]) == (1, 1, 64)
    assert (l2i["batches_per_epoch"], l2i["batches_timed"], l2i["clips"]) == (2, 1, 32)
    assert apnet["epoch_s_extrapolated"] is False and l2i["epoch_s_extrapolated"] is True
    for record in (apnet, l2i):
        assert record["backend"] == "tensorflow" and record["distribute"] is False
        assert record["devices"]["n_devices"] == 1
        assert record["seconds"] > 0 and record["clips_per_s"] > 0 and record["input_pipeline_s"] > 0
        assert record["clips_per_s"] == pytest.approx(record["clips"] / record["seconds"], rel=1e-3)
        share = record["input_pipeline_s"] / record["seconds"]
        assert 0 < record["input_share"] == pytest.approx(share, rel=1e-2, abs=1e-5)
        assert record["finite_loss"]
        if shutil.which("nvidia-smi") is None:
            assert record["utilisation"] == "n/a (no nvidia-smi)"
    assert l2i["epoch_s"] == pytest.approx(64 / l2i["clips_per_s"], rel=1e-3)


def test_ratio_to_the_cpu_reference_of_the_same_model_and_backend(tiny_run):
    apnet, l2i = _case(tiny_run, "apnet"), _case(tiny_run, "l2i")
    assert apnet["cpu_reference_clips_per_s"] == 2.0 and apnet["cpu_reference_backend"] == "tensorflow"
    assert apnet["ratio_to_cpu"] == pytest.approx(apnet["clips_per_s"] / 2.0, abs=0.01)
    assert l2i["ratio_to_cpu"] == pytest.approx(l2i["clips_per_s"] / 4.0, abs=0.01)


def test_printed_lines_and_cleanup(tiny_run):
    lines = [json.loads(line) for line in tiny_run["stdout"].splitlines() if line.startswith("{")]
    assert [line.get("case") for line in lines[:2]] == ["apnet_urbansound8k", "l2i_classifier_esc50"]
    summary = lines[-1]
    assert summary["summary"] is True and set(summary["cases"]) == {"apnet_urbansound8k", "l2i_classifier_esc50"}
    assert summary["cases"]["apnet_urbansound8k"]["epoch_goal_s"] == 3.0
    assert list((tiny_run["tmp"] / "work").iterdir()) == []  # the synthetic cache is deleted


def test_gpu_check_script_syntax():
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_shipped_cpu_reference_is_a_measurement():
    reference = json.loads((ROOT / "benchmarks" / "cpu_reference.json").read_text())
    assert reference["machine"]["nproc"] >= 1 and reference["machine"]["cpu_model"]
    models = {(c["model"], c["backend"]) for c in reference["cases"]}
    assert {("apnet", "tensorflow"), ("l2i", "tensorflow")} <= models
    for case in reference["cases"]:
        assert case["clips_per_s"] > 0 and case["clips"] > 0 and case["command"].startswith("python")
