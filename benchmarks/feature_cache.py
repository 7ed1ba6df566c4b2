"""Benchmark: the memory-mapped feature cache of ``audiodata.features`` on real and synthetic data.

Measures, in one run (ratios within one run are what count on a shared, noisy machine):

1. ``cache``: first extraction (``cached=False``) against a cached re-read (``cached=True``)
   of FSDD ``mel`` and ESC-10 ``mel`` and ``logmag``, each in a fresh temporary cache. The
   re-read is timed from the call of ``extract_features`` until every row has been read once
   through ``iter_batches``; it is timed twice, once after evicting ``features.npy`` from the
   page cache (``posix_fadvise(DONTNEED)``, "cold") and once more straight after ("warm").
2. ``parallel``: extraction with ``n_jobs=1`` against ``n_jobs=-1`` on the same clips, each in
   a fresh cache; ``os.cpu_count()`` is reported beside the ratio. ``n_jobs=1`` is timed twice:
   as the library runs it, and inside ``threadpool_limits(1)`` (one BLAS thread, as joblib
   gives each worker), which separates the gain of the worker processes from BLAS threading.
3. ``stream``: a synthetic entry larger than a memory cap is written through the real
   ``cached_features`` (in a child process), then read in two more child processes: once with
   ``FeatureArray.iter_batches`` and once through one long-lived ``np.load(mmap_mode='r')``
   map, both summing every row. Each child reports its peak resident set size (``VmHWM``,
   reset through ``/proc/self/clear_refs`` after imports), to compare with the cap and the
   array size. The cap is not enforced (an address-space limit would refuse the memory map
   itself); it is the budget the peak is checked against.

Every audio file is read once before timing, so extraction timings do not include cold
disk reads of the audio. librosa is imported, and its first call made, in this process and
in the joblib workers before any timing (``warmup`` line), so the ratios measure extraction
rather than imports and numba compilation.

Prints one JSON line per measurement and a final ``summary`` line. Usage::

    python benchmarks/feature_cache.py                  # full run (about 5 minutes on 2 cores)
    python benchmarks/feature_cache.py --quick          # smoke run: 600 FSDD clips, 384 MiB array
    python benchmarks/feature_cache.py --cap-mib 1024 --size-mib 4096
"""
import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ENV_DIRS = []
for _var in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR"):  # before anything imports librosa (numba, matplotlib)
    if not os.environ.get(_var):
        _ENV_DIRS.append(tempfile.mkdtemp(prefix=f"{_var.lower()}-"))
        os.environ[_var] = _ENV_DIRS[-1]

import numpy as np  # noqa: E402

from audiodata import cli as argtypes  # noqa: E402
from audiodata.features import FeatureArray, cached_features, extract_features  # noqa: E402

MIB = 2 ** 20
#: Synthetic feature rows: a real parameter set (``cached_features`` asks ``feature_shape`` for the
#: row shape) giving (T, F) = (512, 512) float32, i.e. exactly 1 MiB per row.
SYNTHETIC_PARAMS = {"type": "logmag", "sr": 8000, "n_fft": 1022, "win_length": 1022, "hop_length": 128,
                    "duration": 8.0, "n_frames": 512}


def emit(record):
    print(json.dumps(record), flush=True)


def memory_status():
    """``VmRSS``, ``VmHWM`` (peak RSS), ``RssAnon`` and ``RssFile`` of this process, in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return fields


def reset_peak():
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def evict(path):
    """Drop a (clean, fsynced) file from the page cache, so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_all(feats, batch_rows=256):
    """Read every row of a FeatureArray once through ``iter_batches``; float64 checksum."""
    total = 0.0
    for _, x in feats.iter_batches(batch_rows):
        total += float(x.sum(dtype=np.float64))
    return total


def subset(dataset, n):
    """A copy of ``dataset`` keeping ``n`` clips spread evenly over its table."""
    if n is None or n >= len(dataset.clips):
        return dataset
    part = copy.copy(dataset)
    step = len(dataset.clips) // n
    part.clips = dataset.clips.iloc[::step].iloc[:n].reset_index(drop=True)
    return part


def timed_extract(dataset, features, cache_dir, n_jobs, blas_threads=None):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(blas_threads):  # None: leave the BLAS thread pools as they are
        start = time.perf_counter()
        feats = extract_features(dataset, features, cache_dir=cache_dir, n_jobs=n_jobs, progress=False)
        return feats, time.perf_counter() - start


def timed_cached_read(dataset, features, cache_dir, cold):
    if cold:
        evict(next(Path(cache_dir).glob("*/*/*/features.npy")))
    start = time.perf_counter()
    feats = extract_features(dataset, features, cache_dir=cache_dir, progress=False)
    checksum = read_all(feats)
    return feats, time.perf_counter() - start, checksum


def warm_up(datasets, workdir):
    """First calls in a fresh process pay imports and numba compilation: pay them before timing."""
    seconds = {}
    for name, dataset, features in datasets:
        small = subset(dataset, 16)
        for n_jobs in (1, -1):  # this process, then the joblib workers (reused by later calls)
            start = time.perf_counter()
            extract_features(small, features, cache_dir=Path(workdir) / f"warmup-{name}-{features}-{n_jobs}",
                             n_jobs=n_jobs, progress=False)
            seconds[f"{name}/{features}/n_jobs={n_jobs}"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    for _, dataset, _ in datasets:  # audio into the page cache: extraction timings exclude cold disk reads
        for path in dataset.clips["path"]:
            Path(path).read_bytes()
    seconds["read_audio"] = round(time.perf_counter() - start, 2)
    emit({"measure": "warmup", "seconds": seconds,
          "note": "16 clips per case: librosa import and first calls (numba JIT) in this process and in the "
                  "joblib workers, then one read of every audio file; all before any timing"})


def bench_cache(name, dataset, features, workdir):
    cache_dir = Path(tempfile.mkdtemp(prefix=f"cache-{name}-{features}-", dir=workdir))
    try:
        first, first_s = timed_extract(dataset, features, cache_dir, n_jobs=-1)
        assert not first.cached, "a fresh cache directory returned cached features"
        expected = read_all(first)
        del first
        cold, cold_s, cold_sum = timed_cached_read(dataset, features, cache_dir, cold=True)
        warm, warm_s, warm_sum = timed_cached_read(dataset, features, cache_dir, cold=False)
        assert cold.cached and warm.cached, "the second call recomputed the features"
        assert cold_sum == expected == warm_sum, "the cached rows differ from the extracted ones"
        record = {"measure": "cache", "dataset": name, "features": features, "clips": len(dataset.clips),
                  "shape": list(warm.shape), "mib": round(warm.data.nbytes / MIB, 1),
                  "first_s": round(first_s, 3), "cached_cold_s": round(cold_s, 4), "cached_warm_s": round(warm_s, 4),
                  "ratio_cold": round(first_s / cold_s, 1), "ratio_warm": round(first_s / warm_s, 1)}
        emit(record)
        return record
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def bench_parallel(name, dataset, features, workdir):
    seconds = {}
    for key, n_jobs, blas_threads in (("serial", 1, None), ("parallel", -1, None), ("serial_blas1", 1, 1)):
        cache_dir = Path(tempfile.mkdtemp(prefix=f"{key}-{name}-{features}-", dir=workdir))
        try:
            feats, seconds[key] = timed_extract(dataset, features, cache_dir, n_jobs, blas_threads)
            assert not feats.cached
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    record = {"measure": "parallel", "dataset": name, "features": features, "clips": len(dataset.clips),
              "cpu_count": os.cpu_count(), "serial_s": round(seconds["serial"], 3),
              "parallel_s": round(seconds["parallel"], 3),
              "ratio_serial_over_parallel": round(seconds["serial"] / seconds["parallel"], 2),
              "serial_blas1_s": round(seconds["serial_blas1"], 3),
              "ratio_serial_blas1_over_parallel": round(seconds["serial_blas1"] / seconds["parallel"], 2),
              "note": "serial: n_jobs=1 as the library runs it (BLAS pools untouched); serial_blas1: the same "
                      "inside threadpool_limits(1), as joblib's workers run"}
    emit(record)
    return record


# ------------------------------------------------------------------------------------ synthetic
def synthetic_row(path, params):
    """Deterministic stand-in for ``compute_features``: a seeded normal array of the row shape."""
    seed = int(Path(path).stem)
    shape = (params["n_frames"], params["n_fft"] // 2 + 1)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def make_placeholders(folder, n_rows):
    """Empty placeholder files standing for clips (the cache stats each clip's file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_rows):
        (folder / f"{i:06d}.syn").touch()


def placeholder_clips(folder):
    """The clips table of the placeholders; each file's name seeds its row."""
    import pandas as pd

    paths = sorted(str(p) for p in folder.glob("*.syn"))
    return pd.DataFrame({"clip_id": [Path(p).stem for p in paths], "path": paths})


def child(mode, folder, batch_rows):
    """Run in a subprocess: write the synthetic entry, or read it back; print one JSON line."""
    folder = Path(folder)
    if mode == "write":  # cached_features imports librosa (feature_shape): do it before the baseline
        from audiodata.features import feature_shape

        feature_shape(SYNTHETIC_PARAMS)
    base = memory_status()["VmRSS"]
    peak_reset = reset_peak()
    start = time.perf_counter()
    if mode == "write":
        clips = placeholder_clips(folder / "clips")
        feats = cached_features("synthetic", "rows", SYNTHETIC_PARAMS, clips, synthetic_row,
                                cache_dir=folder / "cache", n_jobs=1, progress=False)
        result = {"entry": str(feats.path), "cached": feats.cached}
    else:
        entry = next((folder / "cache").glob("*/*/*/COMPLETE")).parent
        feats = FeatureArray(entry, cached=True)
        total = 0.0
        if mode == "iter_batches":
            for _, x in feats.iter_batches(batch_rows):
                total += float(x.sum(dtype=np.float64))
        else:  # one long-lived map over the whole file, read in the same batches
            data = np.load(entry / "features.npy", mmap_mode="r")
            for lo in range(0, len(data), batch_rows):
                total += float(data[lo:lo + batch_rows].sum(dtype=np.float64))
        result = {"checksum": total}
    seconds = time.perf_counter() - start
    status = memory_status()
    import resource

    emit({**result, "seconds": seconds, "rss_before_mib": base, "peak_rss_mib": status["VmHWM"],
          "rss_anon_end_mib": status["RssAnon"], "rss_file_end_mib": status["RssFile"],
          "peak_was_reset": peak_reset, "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_child(mode, folder, batch_rows):
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(batch_rows)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_stream(workdir, cap_mib, size_mib, batch_rows):
    row_mib = 1  # SYNTHETIC_PARAMS: 512 x 512 float32
    n_rows = max(size_mib // row_mib, 1)
    needed = n_rows * row_mib * MIB * 1.1 + 256 * MIB
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise SystemExit(f"{workdir}: {free / MIB:.0f} MiB free, the synthetic array needs about "
                         f"{needed / MIB:.0f} MiB; pass a smaller --size-mib or another --tmp-dir")
    folder = Path(tempfile.mkdtemp(prefix="stream-", dir=workdir))
    try:
        make_placeholders(folder / "clips", n_rows)
        written = run_child("write", folder, batch_rows)
        entry = Path(written["entry"])
        array_mib = (entry / "features.npy").stat().st_size / MIB
        expected = sum(float(synthetic_row(p, SYNTHETIC_PARAMS).sum(dtype=np.float64))
                       for p in placeholder_clips(folder / "clips")["path"])
        records = {}
        for mode in ("iter_batches", "mmap"):
            evict(entry / "features.npy")
            out = run_child(mode, folder, batch_rows)
            records[mode] = {
                "measure": "stream", "reader": mode, "array_mib": round(array_mib, 1), "cap_mib": cap_mib,
                "batch_rows": batch_rows, "batch_mib": batch_rows * row_mib,
                "rss_before_mib": round(out["rss_before_mib"], 1), "peak_rss_mib": round(out["peak_rss_mib"], 1),
                "peak_over_cap": round(out["peak_rss_mib"] / cap_mib, 3),
                "peak_over_array": round(out["peak_rss_mib"] / array_mib, 3),
                "within_cap": out["peak_rss_mib"] <= cap_mib, "peak_was_reset": out["peak_was_reset"],
                "seconds": round(out["seconds"], 2), "mib_per_s": round(array_mib / out["seconds"], 1),
                "checksum_ok": bool(np.isclose(out["checksum"], expected, rtol=1e-9, atol=1e-3)),
            }
            emit(records[mode])
        write = {"measure": "stream_write", "array_mib": round(array_mib, 1), "rows": n_rows,
                 "seconds": round(written["seconds"], 2), "mib_per_s": round(array_mib / written["seconds"], 1),
                 "rss_before_mib": round(written["rss_before_mib"], 1),
                 "peak_rss_mib": round(written["peak_rss_mib"], 1),
                 "peak_above_before_mib": round(written["peak_rss_mib"] - written["rss_before_mib"], 1),
                 "peak_was_reset": written["peak_was_reset"],
                 "note": "cached_features(n_jobs=1) with a seeded-normal compute function; rss_before is taken "
                         "after librosa is imported; the peak includes the pages of the array written through "
                         "its memory map"}
        emit(write)
        return write, records
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def machine():
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    import joblib
    import librosa

    return {"cpu_count": os.cpu_count(), "ram_gib": round(mem_kib / 2 ** 20, 1), "python": platform.python_version(),
            "numpy": np.__version__, "librosa": librosa.__version__, "joblib": joblib.__version__,
            "kernel": platform.release()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get(
        "AUDIO_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    parser.add_argument("--quick", action="store_true", help="600 FSDD clips and a 3 x 128 MiB synthetic array")
    parser.add_argument("--cap-mib", type=argtypes.positive_int,
                        help="memory budget of the streaming reader (default 512; quick 128)")
    parser.add_argument("--size-mib", type=argtypes.positive_int, help="synthetic array size (default 3 x cap)")
    parser.add_argument("--batch-rows", type=argtypes.positive_int,
                        help="rows (1 MiB each) per iter_batches batch (default cap / 16)")
    parser.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where the temporary caches go")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, folder, batch_rows = args.child
        child(mode, folder, int(batch_rows))
        return

    from audiodata.datasets import get_dataset

    cap_mib = args.cap_mib or (128 if args.quick else 512)
    size_mib = args.size_mib or 3 * cap_mib
    batch_rows = args.batch_rows or max(cap_mib // 16, 1)
    from audiodata.errors import AudioDataError

    try:
        fsdd = subset(get_dataset("fsdd", data_dir=args.data_dir), 600 if args.quick else None)
        esc10 = get_dataset("esc10", data_dir=args.data_dir)
    except AudioDataError as err:
        print(f"error: {err} (--data-dir names the folder holding fsdd/ and ESC-50/)", file=sys.stderr)
        return 2
    cases = [("fsdd", fsdd, "mel"), ("esc10", esc10, "mel"), ("esc10", esc10, "logmag")]

    workdir = Path(tempfile.mkdtemp(prefix="bench-feature-cache-", dir=args.tmp_dir))
    try:
        emit({"measure": "machine", **machine(), "quick": args.quick})
        warm_up(cases, workdir)
        cache = [bench_cache(name, ds, feat, workdir) for name, ds, feat in cases]
        parallel = [bench_parallel(name, ds, feat, workdir) for name, ds, feat in cases]
        write, stream = bench_stream(workdir, cap_mib, size_mib, batch_rows)
        emit({
            "measure": "summary", "cpu_count": os.cpu_count(), "quick": args.quick,
            "cache_ratio_cold": {f"{r['dataset']}/{r['features']}": r["ratio_cold"] for r in cache},
            "cache_ratio_warm": {f"{r['dataset']}/{r['features']}": r["ratio_warm"] for r in cache},
            "fsdd_ratio_goal_20_met": cache[0]["ratio_cold"] >= 20,
            "serial_over_parallel": {f"{r['dataset']}/{r['features']}": r["ratio_serial_over_parallel"]
                                     for r in parallel},
            "serial_blas1_over_parallel": {f"{r['dataset']}/{r['features']}": r["ratio_serial_blas1_over_parallel"]
                                           for r in parallel},
            "stream_peak_rss_mib": {mode: r["peak_rss_mib"] for mode, r in stream.items()},
            "stream_within_cap": {mode: r["within_cap"] for mode, r in stream.items()},
            "array_mib": stream["iter_batches"]["array_mib"], "cap_mib": cap_mib,
            "write_peak_rss_mib": write["peak_rss_mib"],
        })
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for folder in _ENV_DIRS:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
