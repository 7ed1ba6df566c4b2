"""Throughput of one training epoch, from the memory-mapped feature cache, at the shapes of real runs.

Two cases, each built through the code path of a real run:

* ``apnet_urbansound8k`` -- APNet at the shapes of ``apnet/configs/urbansound8k.yaml``: the input
  shape is computed by :func:`audiodata.features.feature_shape` from the config's feature set of
  ``audiodata/configs/urbansound8k.yaml`` (``mel``: 84 frames x 128 bands), 6,970 training clips
  (an UrbanSound8K training split: 8,732 clips less a test and a validation fold, about 10 % each),
  10 classes, the config's batch size (256); the model of :func:`apnet.training.build_model`,
  compiled by :func:`apnet.training.compile_for_run`, fed by :func:`apnet.training.fold_batches`
  with the config's normaliser (:func:`apnet.training.make_scaler`) fitted on the training rows,
  as :func:`apnet.training.train_fold` does.
* ``l2i_classifier_esc50`` -- the L2I classifier f (:class:`l2i.classifier.KumarCNN`, built by the
  same helper as :func:`l2i.training.train_classifier`, input statistics of the training rows) at
  the shapes of ``l2i/configs/esc50.yaml`` (log-mel ``mel`` of ``audiodata/configs/esc50.yaml``:
  431 x 128), one ESC-50 training fold (1,600 clips), 50 classes, the classifier's batch size (32),
  compiled as ``train_classifier`` compiles it and fed by :class:`l2i.training.L2IBatches`.

The features are synthetic (seeded normal values around the range of the real features) but
they are written through the real :func:`audiodata.features.cached_features` into a cache in a
temporary folder (deleted at the end), and read back as an :class:`audiodata.features.FeatureArray`
memory map, exactly as a training run reads its cache.

Timing of each case: the train step is compiled first by an untimed ``fit`` over the first batch
and, when the epoch ends with a smaller batch, the last one (both shapes a real epoch compiles);
then one ``model.fit(..., epochs=1)`` is timed over the whole training split, or over the first
``--batches N`` batches (then ``clips_per_s`` is measured over those batches and ``epoch_s`` is
extrapolated to the full split, and the record says so). No validation pass is timed (a real run
adds one per epoch). The input pipeline alone -- calling the same batch object for the same batches,
without the model -- is timed twice, after the timed epoch: with the cache pages evicted
(``posix_fadvise(DONTNEED)``, "cold") and straight after ("warm"); ``input_share`` = warm input
seconds / epoch seconds is the fraction of the epoch the input pipeline would take if it ran
serially with the steps: an upper bound on what it adds to the epoch (the batch objects use Keras'
default ``workers=1``: no parallel readers).

On a machine with ``nvidia-smi``, the GPU utilisation is sampled every 0.2 s during the timed
epoch (``utilisation``: mean and max over samples of the mean over GPUs, and per GPU).

``--distribute-too`` times each case twice, on one device and then with ``--distribute``, from one
synthetic cache (what ``benchmarks/gpu_check.sh`` runs). ``--distribute`` builds, compiles and fits
the model inside ``audioruns.distribute.data_parallel()`` (data-parallel over every device;
batch = the global batch; on JAX the batches go through ``audioruns.distribute.even_batches``).
``--cpu-reference PATH`` reads CPU figures measured with this script
(``benchmarks/cpu_reference.json``) and adds ``ratio_to_cpu`` = clips/s / the reference's
clips/s of the same case on the TensorFlow backend (or the first reference of that case).

Prints one JSON line per case and a ``summary`` line; ``--json PATH`` writes them all.

Usage::

    python benchmarks/epoch_throughput.py                          # both cases, full epochs
    python benchmarks/epoch_throughput.py --model apnet --batches 3
    KERAS_BACKEND=jax python benchmarks/epoch_throughput.py --distribute --json out.json \\
        --cpu-reference benchmarks/cpu_reference.json
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as `python benchmarks/epoch_throughput.py` from anywhere
    sys.path.insert(0, str(_ROOT))

for _var in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR", "KERAS_HOME"):  # nothing written to the home directory
    if not os.environ.get(_var):
        os.environ[_var] = tempfile.mkdtemp(prefix=f"{_var.lower()}-")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from audiodata import cli as argtypes  # noqa: E402

#: The cases: model, dataset shapes and where their settings come from.
CASES = {
    "apnet": {"case": "apnet_urbansound8k", "dataset": "urbansound8k", "train_clips": 6970, "n_classes": 10},
    "l2i": {"case": "l2i_classifier_esc50", "dataset": "esc50", "train_clips": 1600, "n_classes": 50},
}
#: Goal of the issue: an UrbanSound8K-shaped APNet epoch in under 3 s on one H200.
APNET_EPOCH_GOAL_S = 3.0


def emit(record):
    print(json.dumps(record), flush=True)


# ------------------------------------------------------------------------------------ synthetic cache
class SyntheticRows:
    """Stand-in for ``compute_features``: seeded normal rows of a fixed shape (picklable).

    The row of placeholder file ``<i>.syn`` is drawn from seed ``i``, around ``loc`` with spread
    ``scale`` (the rough range of the real features), in float32.
    """

    def __init__(self, shape, loc, scale):
        self.shape, self.loc, self.scale = tuple(shape), float(loc), float(scale)

    def __call__(self, path, params):
        rng = np.random.default_rng(int(Path(path).stem))
        return (self.loc + self.scale * rng.standard_normal(self.shape, dtype=np.float32)).astype(np.float32)


def synthetic_cache(workdir, dataset, feature_name, n_rows, loc, scale):
    """A FeatureArray of ``n_rows`` synthetic rows at the real shape of ``dataset``'s ``feature_name``."""
    import pandas as pd

    from audiodata.features import cached_features, feature_shape, load_feature_params

    params = load_feature_params(dataset, feature_name)
    shape = feature_shape(params)
    clips_dir = Path(workdir) / f"{dataset}-{feature_name}-clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_rows):
        path = clips_dir / f"{i:06d}.syn"
        path.touch()
        paths.append(str(path))
    clips = pd.DataFrame({"clip_id": [Path(p).stem for p in paths], "path": paths})
    feats = cached_features(f"synthetic-{dataset}", feature_name, params, clips, SyntheticRows(shape, loc, scale),
                            cache_dir=Path(workdir) / "cache", n_jobs=1, progress=False)
    return feats, tuple(shape)


def one_hot(n_rows, n_classes, seed):
    labels = np.random.default_rng(seed).integers(0, n_classes, size=n_rows)
    return np.eye(n_classes, dtype=np.float32)[labels]


# ------------------------------------------------------------------------------------ the two cases
def setup_apnet(workdir, n_clips, seed):
    """Cache, batches and a function building the compiled model, as ``apnet.training.train_fold``."""
    from apnet.training import build_model, compile_for_run, feature_set, fold_batches, make_scaler, training_settings
    from audioruns.folds import Fold

    spec = CASES["apnet"]
    with open(_ROOT / "apnet" / "configs" / "urbansound8k.yaml") as fh:
        config = yaml.safe_load(fh)
    settings = training_settings("apnet", config)
    features = feature_set("apnet", config)
    feats, shape = synthetic_cache(workdir, spec["dataset"], features, n_clips, loc=-40.0, scale=15.0)  # dB-like
    rows = np.arange(n_clips)
    data = Fold(features=feats, rows={"train": rows}, targets={"train": one_hot(n_clips, spec["n_classes"], seed)},
                classes=tuple(f"class{k}" for k in range(spec["n_classes"])), dataset=spec["dataset"])
    scaler = make_scaler(settings["normalizer"]).fit(data.features, rows=rows)
    batches = fold_batches(data, settings["batch_size"], scaler=scaler, targets="apnet", seed=seed,
                           splits=("train",))["train"]

    def model():
        return compile_for_run(build_model("apnet", data.input_shape, len(data.classes), config), config)

    return {"features": feats, "feature_set": features, "shape": shape, "batch": settings["batch_size"],
            "batches": batches, "model": model}


def setup_l2i(workdir, n_clips, seed):
    """Cache, batches and a function building the compiled classifier, as ``l2i.training.train_classifier``."""
    import keras

    from l2i.training import FoldFeatures, L2IBatches, _fresh_classifier, load_config

    spec = CASES["l2i"]
    config = load_config(spec["dataset"])
    section = dict(config["classifier"], seed=config["seed"])
    feats, shape = synthetic_cache(workdir, spec["dataset"], "mel", n_clips, loc=-5.0, scale=3.0)  # log(S + amin)-like
    rows = np.arange(n_clips)
    targets = one_hot(n_clips, spec["n_classes"], seed)
    data = FoldFeatures(features=feats, rows={"train": rows}, targets={"train": targets},
                        classes=tuple(f"class{k}" for k in range(spec["n_classes"])), dataset=spec["dataset"])
    batch = int(section["batch_size"])
    batches = L2IBatches(data.mel, None, rows, targets, batch, targets="classifier", shuffle=True, seed=seed)

    def model():
        classifier = _fresh_classifier({"classifier": section}, data)
        classifier.compile(optimizer=keras.optimizers.Adam(float(section["learning_rate"])),
                           loss="categorical_crossentropy", metrics=["accuracy"])
        return classifier

    return {"features": feats, "feature_set": "mel", "shape": shape, "batch": batch, "batches": batches,
            "model": model}


SETUPS = {"apnet": setup_apnet, "l2i": setup_l2i}


# ------------------------------------------------------------------------------------ measuring
class UtilisationSampler:
    """Samples ``nvidia-smi`` GPU utilisation every ``interval`` s in a background thread."""

    QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]

    def __init__(self, interval=0.2):
        self.interval = interval
        self.available = shutil.which("nvidia-smi") is not None
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(self.QUERY, capture_output=True, text=True, timeout=5, check=True).stdout
                values = [float(v) for v in out.split() if v.strip()]
                if values:
                    self.samples.append(values)
            except (OSError, subprocess.SubprocessError, ValueError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def result(self):
        if not self.available:
            return "n/a (no nvidia-smi)"
        if not self.samples:
            return "n/a (nvidia-smi gave no samples)"
        width = min(len(s) for s in self.samples)
        per_gpu = np.array([s[:width] for s in self.samples])
        means = per_gpu.mean(axis=1)
        return {"mean_percent": round(float(means.mean()), 1), "max_percent": round(float(means.max()), 1),
                "per_gpu_mean_percent": [round(float(v), 1) for v in per_gpu.mean(axis=0)],
                "samples": len(self.samples), "interval_s": self.interval}


def evict(path):
    """Drop a file's pages from the page cache (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except (AttributeError, OSError):
        return False
    finally:
        os.close(fd)


def time_input(batches, n_batches):
    """Seconds to produce ``n_batches`` batches of ``batches`` without a model; clips produced."""
    start = time.perf_counter()
    clips = 0
    for i in range(n_batches):
        x = batches[i][0]
        clips += len(x)
    return time.perf_counter() - start, clips


def _listed_class():
    import keras

    class Listed(keras.utils.PyDataset):
        """A PyDataset of given batches (the untimed warm-up epoch)."""

        def __init__(self, items):
            super().__init__()
            self.items = list(items)

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    return Listed


def _Listed(items):
    return _listed_class()(items)


def run_case(name, args, workdir):
    """The records of one case: on one device, data-parallel, or both (one synthetic cache for both)."""
    import keras

    spec = CASES[name]
    n_clips = args.clips or spec["train_clips"]
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    setup = SETUPS[name](workdir, n_clips, args.seed)
    setup_s = time.perf_counter() - start
    modes = (False, True) if args.distribute_too else (bool(args.distribute),)
    try:
        return [time_epoch(name, spec, setup, setup_s, n_clips, args, distribute) for distribute in modes]
    finally:
        setup["features"].close()


def time_epoch(name, spec, setup, setup_s, n_clips, args, distribute):
    """Compile, then time one epoch (or ``args.batches`` batches) and the input pipeline; one record."""
    import keras

    from audioruns.distribute import data_parallel, even_batches

    keras.backend.clear_session()  # the model of a previous mode is gone
    keras.utils.set_random_seed(args.seed)
    with data_parallel(distribute) as info:
        # under a JAX distribution over n devices every batch must split evenly (audioruns.distribute)
        train = even_batches(setup["batches"])
        n_epoch_batches = len(train)
        n_batches = n_epoch_batches if args.batches is None else min(args.batches, n_epoch_batches)
        model = setup["model"]()
        start = time.perf_counter()
        warm = sorted({0, n_epoch_batches - 1})
        # compile the train step for every batch shape of an epoch, through fit as the timed epoch (not timed)
        model.fit(_Listed([train[i] for i in warm]), epochs=1, verbose=0, shuffle=False)
        compile_s = time.perf_counter() - start
        train.set_epoch(0)
        with UtilisationSampler() as sampler:
            start = time.perf_counter()
            history = model.fit(train, epochs=1, verbose=0, shuffle=False,
                                steps_per_epoch=None if n_batches == n_epoch_batches else n_batches)
            seconds = time.perf_counter() - start
        devices = info.as_dict()
        loss = float(history.history["loss"][-1])
        train.set_epoch(0)
        evicted = evict(Path(setup["features"].path) / "features.npy")
        input_cold_s, clips = time_input(train, n_batches)
        input_warm_s, _ = time_input(train, n_batches)
    clips_per_s = clips / seconds
    full = n_batches == n_epoch_batches
    record = {
        "case": spec["case"] + ("_distributed" if distribute else ""),
        "model": name,
        "backend": keras.backend.backend(),
        "distribute": bool(distribute),
        "devices": devices,
        "feature_set": f"{spec['dataset']}/{setup['feature_set']}",
        "input_shape": list(setup["shape"]),
        "train_clips": n_clips,
        "batch": setup["batch"],
        "batches_timed": n_batches,
        "batches_per_epoch": n_epoch_batches,
        "clips": clips,
        "seconds": round(seconds, 4),
        "clips_per_s": round(clips_per_s, 2),
        "epoch_s": round(seconds if full else n_clips / clips_per_s, 4),
        "epoch_s_extrapolated": not full,
        "input_pipeline_s": round(input_warm_s, 6),
        "input_pipeline_cold_s": round(input_cold_s, 6) if evicted else None,
        "input_share": round(input_warm_s / seconds, 6),
        "utilisation": sampler.result(),
        "compile_s": round(compile_s, 3),
        "setup_s": round(setup_s, 3),
        "loss": loss,
        "finite_loss": bool(np.isfinite(loss)),
    }
    return record


# ------------------------------------------------------------------------------------ reference, output
def reference_clips_per_s(reference, record):
    """CPU clips/s of the same model in a reference JSON: its TensorFlow case first, else the first one."""
    cases = [c for c in reference.get("cases", []) if c.get("model") == record["model"] and not c.get("distribute")]
    if not cases:
        return None, None
    best = next((c for c in cases if c.get("backend") == "tensorflow"), cases[0])
    return float(best["clips_per_s"]), best


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else None
    import keras

    info = {"host_cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    if shutil.which("nvidia-smi"):
        try:
            info["gpus"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10,
                                          check=True).stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError):
            info["gpus"] = "nvidia-smi -L failed"
    return info


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("apnet", "l2i", "both"), default="both")
    parser.add_argument("--batches", type=argtypes.positive_int, default=None,
                        help="time only the first N batches of the epoch (full-epoch time extrapolated)")
    parser.add_argument("--clips", type=argtypes.positive_int, default=None,
                        help="training clips (default: 6970 for APNet/UrbanSound8K, 1600 for L2I/ESC-50)")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over every device (audioruns.distribute.data_parallel)")
    parser.add_argument("--distribute-too", action="store_true",
                        help="time each case on one device, then with --distribute (one synthetic cache for both)")
    parser.add_argument("--json", type=Path, default=None, help="write the records and the summary here")
    parser.add_argument("--cpu-reference", type=Path, default=None,
                        help="JSON of CPU figures (benchmarks/cpu_reference.json): adds ratio_to_cpu")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary cache goes")
    parser.add_argument("--seed", type=argtypes.seed, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    reference = None
    if args.cpu_reference is not None:
        reference = json.loads(args.cpu_reference.read_text())
    names = ("apnet", "l2i") if args.model == "both" else (args.model,)
    workdir = Path(tempfile.mkdtemp(prefix="epoch-throughput-", dir=args.tmp_dir))
    records = []
    try:
        for record in (r for name in names for r in run_case(name, args, workdir)):
            if reference is not None:
                ref, ref_case = reference_clips_per_s(reference, record)
                record["cpu_reference_clips_per_s"] = ref
                record["cpu_reference_backend"] = None if ref_case is None else ref_case.get("backend")
                record["ratio_to_cpu"] = None if ref is None else round(record["clips_per_s"] / ref, 2)
            emit(record)
            if record["utilisation"] == "n/a (no nvidia-smi)":
                print("device utilisation: n/a (no nvidia-smi)", flush=True)
            records.append(record)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"summary": True, "machine": machine(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": {}}
    for r in records:
        line = {k: r[k] for k in ("clips_per_s", "epoch_s", "epoch_s_extrapolated", "input_share")}
        line["n_devices"] = r["devices"].get("n_devices")
        if "ratio_to_cpu" in r:
            line["ratio_to_cpu"] = r["ratio_to_cpu"]
        if r["model"] == "apnet":
            line["epoch_goal_s"] = APNET_EPOCH_GOAL_S
            line["epoch_goal_met"] = r["epoch_s"] < APNET_EPOCH_GOAL_S
        summary["cases"][r["case"]] = line
    emit(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cases": records, "summary": summary}, indent=2) + "\n")
    return 0 if all(r["finite_loss"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
