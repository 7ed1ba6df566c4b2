#!/usr/bin/env bash
# GPU check: the JAX model tests and the epoch throughput of APNet and the L2I classifier on a GPU machine.
#
# Run from the repository root on a machine with Python 3.12, JAX with CUDA (and PyTorch) but no
# TensorFlow and no internet (about 3-6 minutes on one H200; every step has a time limit, total under 8):
#
#     bash benchmarks/gpu_check.sh                 # results (JSON and logs) go to ${OUT:-benchmarks/out}
#
# Steps: (a) install the wheels of .whl/ into /tmp/site (if .whl/ exists); (b) print `nvidia-smi -L`
# and the JAX devices; (c) the model tests that run without TensorFlow, under KERAS_BACKEND=jax;
# (d) benchmarks/epoch_throughput.py for APNet (UrbanSound8K shapes) and the L2I classifier (ESC-50
# shapes), on one device and with --distribute over all devices (--distribute-too), with benchmarks/cpu_reference.json as
# the CPU reference; (e) a summary with PASS/FAIL of the goals: a full APNet UrbanSound8K epoch under
# 3 s on one device, and the input pipeline under 20 % of every epoch (plus the GPU utilisation).
# Exit status: 0 when the tests passed and every benchmark ran; 1 otherwise (the goals are reported,
# not part of the exit status).
#
# Carrying the packages the GPU machine lacks (keras 3.15, librosa and its pure-python deps, pandas,
# pytest, ...): on a machine with internet, from the repository root, download the wheels pinned in
# benchmarks/gpu_wheels.txt for CPython 3.12 / manylinux x86_64 into .whl/, and carry .whl/ with the
# working tree:
#
#     python3 -m pip download --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#         --platform manylinux2014_x86_64 --platform any -d .whl -r benchmarks/gpu_wheels.txt
#
# (jax, jaxlib, numpy, scipy, ml_dtypes and opt_einsum are not downloaded: the machine's JAX brings them.)
#
# Environment: OUT (output folder), PYTHON (default python3), KERAS_BACKEND (default jax),
# GPU_CHECK_QUICK=1 (a smoke run, e.g. on a CPU: a short test selection and
# `--batches 2 --clips 300`; the figures are then not comparable to a full epoch),
# GPU_CHECK_TEST_TIMEOUT / GPU_CHECK_EPOCH_TIMEOUT (time limits of steps (c) and (d), default 210 and 240 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

T0=$SECONDS
stamp() { echo "[$(date -u +%Y-%m-%dT%H:%M:%SZ) +$((SECONDS - T0))s] $*"; }
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export KERAS_HOME=${KERAS_HOME:-/tmp/gpu-check/keras}
export MPLCONFIGDIR=${MPLCONFIGDIR:-/tmp/gpu-check/mpl}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/gpu-check/numba}
export MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$KERAS_HOME" "$MPLCONFIGDIR" "$NUMBA_CACHE_DIR"
QUICK=${GPU_CHECK_QUICK:-0}
TEST_TIMEOUT=${GPU_CHECK_TEST_TIMEOUT:-210}    # seconds; with (d) and the rest, under 8 minutes in all
EPOCH_TIMEOUT=${GPU_CHECK_EPOCH_TIMEOUT:-240}
STATUS=0

# (a) wheels
stamp "(a) wheels"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    stamp "installed $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
else
    stamp "no .whl/ folder: using the installed packages"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# (b) devices
stamp "(b) devices"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi -L
else
    echo "nvidia-smi: not found (no NVIDIA GPU visible)"
fi
"$PY" -c "import jax, keras; print('jax', jax.__version__, 'devices:', jax.devices()); \
print('keras', keras.__version__, 'backend', keras.backend.backend())"
if "$PY" -c "import tensorflow" 2> /dev/null; then TF_PRESENT=yes; else TF_PRESENT=no; fi
echo "tensorflow importable: $TF_PRESENT"

# (c) the JAX model tests (the ones that need no TensorFlow)
stamp "(c) model tests under KERAS_BACKEND=$KERAS_BACKEND (time limit ${TEST_TIMEOUT}s)"
if [ "$QUICK" = 1 ]; then
    TESTS=(tests/apnet/layers tests/l2i/layers
           "tests/test_model_saving.py::test_every_model_family_saves_and_reloads")
else
    TESTS=(tests/apnet/layers tests/apnet/test_model.py tests/apnet/baselines/test_sb_cnn.py
           tests/apnet/baselines/test_att_crnn.py tests/apnet/baselines/test_build_baseline.py
           tests/l2i/layers tests/l2i/test_classifier.py tests/l2i/test_interpreter.py
           "tests/test_model_saving.py::test_every_model_family_saves_and_reloads"
           tests/test_model_saving.py::test_feature_scaler_equals_the_numpy_scalers)
fi
# test_tf_keras_load_model loads a model with tf.keras: it needs TensorFlow.
if timeout "$TEST_TIMEOUT" "$PY" -m pytest -q --no-header -p no:cacheprovider -o addopts="" --import-mode=importlib \
        -m "not slow" "${TESTS[@]}" --deselect tests/apnet/test_model.py::test_tf_keras_load_model \
        2>&1 | tee "$OUT/jax_tests.log" | tail -n 15; then
    TESTS_RESULT=PASS
else
    TESTS_RESULT=FAIL
    STATUS=1
fi
stamp "model tests: $TESTS_RESULT (log: $OUT/jax_tests.log)"

# (d) epoch throughput: each case on one device, then with --distribute over all devices (one cache for both)
EXTRA=()
if [ "$QUICK" = 1 ]; then EXTRA=(--batches 2 --clips 300); fi
if [ -f benchmarks/cpu_reference.json ]; then EXTRA+=(--cpu-reference benchmarks/cpu_reference.json); fi
stamp "(d) epoch throughput (time limit ${EPOCH_TIMEOUT}s)"
if ! timeout "$EPOCH_TIMEOUT" "$PY" benchmarks/epoch_throughput.py --model both --distribute-too "${EXTRA[@]}" \
        --json "$OUT/epoch.json" 2>&1 | tee "$OUT/epoch.log" | grep --line-buffered -v '^[IWE]0000'; then
    stamp "epoch throughput: FAILED (log: $OUT/epoch.log)"
    STATUS=1
fi

# (e) summary
stamp "(e) summary"
"$PY" - "$OUT" "$TESTS_RESULT" "$QUICK" <<'EOF' || STATUS=1
import json
import sys
from pathlib import Path

out, tests, quick = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
INPUT_SHARE_GOAL = 0.2
rows = []
path = out / "epoch.json"
if path.is_file():
    rows = json.loads(path.read_text())["cases"]
print(f"{'case':34} {'backend':7} {'dev':>3} {'clips/s':>9} {'x CPU':>7} {'epoch s':>9} {'input %':>8}  utilisation")
for r in rows:
    util = r["utilisation"]
    util = f"{util['mean_percent']}% mean, {util['max_percent']}% max" if isinstance(util, dict) else util
    ratio = r.get("ratio_to_cpu")
    epoch = f"{r['epoch_s']:.2f}" + ("*" if r["epoch_s_extrapolated"] else "")
    print(f"{r['case']:34} {r['backend']:7} {r['devices'].get('n_devices', '?'):>3} {r['clips_per_s']:>9.1f} "
          f"{'-' if ratio is None else f'{ratio:.1f}':>7} {epoch:>9} {100 * r['input_share']:>7.1f}%  {util}")
print("(* extrapolated from the batches timed)")
goals = {"JAX model tests": tests}
apnet = [r for r in rows if r["model"] == "apnet" and not r["distribute"]]
if not apnet:
    goals["APNet UrbanSound8K epoch < 3 s (one device)"] = "FAIL (not measured)"
elif quick or apnet[0]["epoch_s_extrapolated"] or apnet[0]["train_clips"] != 6970:
    a = apnet[0]
    goals["APNet UrbanSound8K epoch < 3 s (one device)"] = (
        f"n/a (quick run: {a['epoch_s']:.2f} s for {a['train_clips']} clips"
        + (", extrapolated)" if a["epoch_s_extrapolated"] else ")"))
else:
    goals["APNet UrbanSound8K epoch < 3 s (one device)"] = (
        ("PASS" if apnet[0]["epoch_s"] < 3.0 else "FAIL") + f" ({apnet[0]['epoch_s']:.2f} s)")
if rows:
    worst = max(rows, key=lambda r: r["input_share"])
    goals[f"input pipeline < {INPUT_SHARE_GOAL:.0%} of every epoch"] = (
        ("PASS" if worst["input_share"] < INPUT_SHARE_GOAL else "FAIL")
        + f" (largest: {100 * worst['input_share']:.1f}% in {worst['case']})")
else:
    goals[f"input pipeline < {INPUT_SHARE_GOAL:.0%} of every epoch"] = "FAIL (not measured)"
for name, result in goals.items():
    print(f"GOAL {name}: {result}")
(out / "summary.json").write_text(json.dumps({"goals": goals, "cases": rows}, indent=2) + "\n")
EOF
stamp "done in $((SECONDS - T0)) s; results in $OUT; exit status $STATUS"
exit $STATUS
