"""Faults of the feature cache that used to go unnoticed (issue 12), reproduced on real FSDD clips.

Damaged entries (rows overwritten, file truncated), one cache shared by two data folders, files replaced
with the same size and mtime, workers outliving a killed extraction, and leftovers of failed runs.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audiodata import AudioDataError
from audiodata.datasets import get_dataset
from audiodata.features import cached_features, compute_features, load_feature_params
from audiodata.features.cache import FeatureArray

PARAMS = load_feature_params("fsdd", "mel")
ROOT = Path(__file__).resolve().parents[2]


class Counting:
    """``compute`` that records the files it is asked for."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, params):
        self.calls.append(os.path.basename(path))
        return compute_features(path, params)


def run(clips, cache, compute=None, **kwargs):
    return cached_features("toy", "mel", PARAMS, clips, compute or Counting(), cache_dir=cache, n_jobs=1,
                           progress=False, **kwargs)


def fresh(paths):
    return np.stack([compute_features(p, PARAMS) for p in paths])


def assert_same_features(actual, expected):
    """Equal up to float32 rounding (one BLAS thread in the cache, several in the reference)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4)


def copy_clips(shared_data, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        shutil.copy2(shared_data / "fsdd/recordings" / name, folder / name)
        rows.append({"clip_id": Path(name).stem, "path": str(folder / name)})
    return pd.DataFrame(rows)


@pytest.fixture
def clips(shared_data, tmp_path):
    """12 real FSDD recordings copied into a folder the test may modify."""
    names = [p.name for p in sorted((shared_data / "fsdd/recordings").glob("*_jackson_1*.wav"))[:12]]
    return copy_clips(shared_data, tmp_path / "audio", names)


# ------------------------------------------------------------------------------ damaged entries
def test_rows_overwritten_with_random_bytes_are_recomputed_with_a_warning(clips, tmp_path):
    first = run(clips, tmp_path / "c")
    path = first.path
    first.close()
    with open(path / "features.npy", "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)
        header = fh.tell()
    row_bytes = 64 * 64 * 4
    junk = np.random.default_rng(0).uniform(-3e38, 3e38, size=(3, 64 * 64)).astype(np.float32)
    junk[:, ::7] = np.nan
    with open(path / "features.npy", "r+b") as fh:  # rows 4-6, as rows 100-109 in the report
        fh.seek(header + 4 * row_bytes)
        fh.write(junk.tobytes())
    compute = Counting()
    with pytest.warns(UserWarning, match=str(path)) as record:
        again = run(clips, tmp_path / "c", compute)
    assert "3 of 12 rows" in str(record[0].message)
    assert not again.cached and sorted(compute.calls) == sorted(Path(p).name for p in clips["path"].iloc[4:7])
    assert np.isfinite(again[:]).all()
    assert_same_features(again[:], fresh(clips["path"]))
    # The repaired entry is trusted again, silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(clips, tmp_path / "c").cached


def test_truncated_features_file_is_recomputed_and_never_a_bare_mmap_error(clips, tmp_path):
    first = run(clips, tmp_path / "c")
    path = first.path
    first.close()
    size = (path / "features.npy").stat().st_size
    with open(path / "features.npy", "r+b") as fh:
        fh.truncate(size - 5 * 64 * 64 * 4 - 100)  # the last 6 rows lose bytes
    with pytest.raises(AudioDataError, match=str(path / "features.npy")):
        FeatureArray(path, cached=True)  # opened directly: an error naming the file, not numpy's
    compute = Counting()
    with pytest.warns(UserWarning, match=str(path)) as record:
        again = run(clips, tmp_path / "c", compute, verify=False)  # the size check is always made
    assert "6 of 12 rows" in str(record[0].message)
    assert not again.cached and len(compute.calls) == 6
    assert_same_features(again[:], fresh(clips["path"]))


def test_unreadable_metadata_is_not_trusted(clips, tmp_path):
    first = run(clips, tmp_path / "c")
    path = first.path
    first.close()
    (path / "clips.csv").write_text("clip_id,path\nx,y\n")
    with pytest.warns(UserWarning, match=str(path)):
        again = run(clips, tmp_path / "c")
    assert not again.cached
    assert_same_features(again[:], fresh(clips["path"]))


def test_cli_reports_a_truncated_entry_and_repairs_it(shared_data, tmp_path):
    data = tmp_path / "data"
    copy_clips(shared_data, data / "fsdd/recordings", [f"{d}_theo_0.wav" for d in range(6)])
    args = [sys.executable, str(ROOT / "experiments/extract_features.py"), "--dataset", "fsdd", "--data-dir",
            str(data), "--cache-dir", str(tmp_path / "c"), "--n-jobs", "1", "--no-progress"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (feats,) = (tmp_path / "c").rglob("features.npy")
    with open(feats, "r+b") as fh:
        fh.truncate(feats.stat().st_size - 1000)
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["cached"] is False
    assert f"warning: feature cache entry {feats.parent}" in second.stderr and "Traceback" not in second.stderr
    third = subprocess.run(args + ["--no-verify"], capture_output=True, text=True, timeout=300)
    assert json.loads(third.stdout)["cached"] is True and "warning" not in third.stderr


# ------------------------------------------------------------------------------ two data folders, one cache
@pytest.fixture
def two_folders(shared_data, tmp_path):
    """Two data folders in the official layout whose recordings differ by one file."""
    names = [f"{d}_lucas_{i}.wav" for d in range(4) for i in (0, 1)]
    a = tmp_path / "A"
    b = tmp_path / "B"
    copy_clips(shared_data, a / "fsdd/recordings", names)
    copy_clips(shared_data, b / "fsdd/recordings", names[:-1] + ["9_lucas_3.wav"])
    return get_dataset("fsdd", a).clips, get_dataset("fsdd", b).clips


def test_two_data_folders_share_one_cache_without_recomputing(two_folders, tmp_path):
    clips_a, clips_b = two_folders
    run(clips_a, tmp_path / "c").close()
    compute = Counting()
    run(clips_b, tmp_path / "c", compute).close()
    assert compute.calls == ["9_lucas_3.wav"]  # the other rows come from A's generation
    for clips in (clips_a, clips_b, clips_a, clips_b):
        compute = Counting()
        feats = run(clips, tmp_path / "c", compute)
        assert feats.cached and compute.calls == []
        assert_same_features(feats[:], fresh(clips["path"]))
        feats.close()


def test_a_held_reader_survives_the_other_folder_finishing(two_folders, tmp_path):
    clips_a, clips_b = two_folders
    held = run(clips_a, tmp_path / "c")
    expected = held[:]
    path_a = held.path
    b = run(clips_b, tmp_path / "c")
    run(clips_a, tmp_path / "c").close()
    run(clips_b, tmp_path / "c").close()
    assert (path_a / "COMPLETE").exists() and (b.path / "COMPLETE").exists()
    np.testing.assert_array_equal(held[:], expected)
    got = np.concatenate([batch for _, batch in held.iter_batches(3)])
    np.testing.assert_array_equal(got, expected)


READER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from audiodata.features.cache import FeatureArray
    feats = FeatureArray(sys.argv[1], cached=True)
    first = feats[:]
    print("ready", flush=True)
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline:
        for _, batch in feats.iter_batches(2):
            pass
        assert np.array_equal(feats[:], first)
    print("ok", flush=True)
""")


def test_a_reader_in_another_process_keeps_working(two_folders, tmp_path):
    clips_a, clips_b = two_folders
    path_a = run(clips_a, tmp_path / "c").path
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path_a), "4"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        run(clips_b, tmp_path / "c").close()
        from audiodata.features.cache import clean_cache

        report = clean_cache(tmp_path / "c", older_than_days=0)
        assert str(path_a) in [k["path"] for k in report["kept"]]  # locked by the reader
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert out.strip() == "ok"


# ------------------------------------------------------------------------------ clean-up
def test_clean_cache_skips_a_locked_entry_and_removes_unused_ones(two_folders, tmp_path):
    from audiodata.features import clean_cache

    clips_a, clips_b = two_folders
    held = run(clips_a, tmp_path / "c")
    other = run(clips_b, tmp_path / "c")
    other_path = other.path
    other.close()
    old = time.time() - 40 * 86400
    for path in (held.path, other_path):
        os.utime(path / "LAST_USED", (old, old))
    # A partial folder of a dead extraction on this host, and one whose owner is alive (this process).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_partial = held.path.parent / ".partial-0123456789abcdef"
    live_partial = held.path.parent / ".partial-fedcba9876543210"
    for folder, pid in ((dead_partial, dead.stdout.strip()), (live_partial, os.getpid())):
        folder.mkdir()
        (folder / "OWNER").write_text(f"{socket.gethostname()}:{pid}")
    leftover = held.path.parent / "00000000000000aa"  # a generation folder without COMPLETE
    leftover.mkdir()
    recent = held.path.parent / "00000000000000bb"  # a complete generation used recently
    shutil.copytree(other_path, recent)
    (recent / "LAST_USED").touch()

    report = clean_cache(tmp_path / "c", older_than_days=30)
    removed = {r["path"] for r in report["removed"]}
    kept = {k["path"]: k["reason"] for k in report["kept"]}
    assert removed == {str(other_path), str(dead_partial), str(leftover)}
    assert "in use" in kept[str(held.path)] and "alive" in kept[str(live_partial)] and str(recent) in kept
    assert (held.path / "COMPLETE").exists() and not other_path.exists() and live_partial.exists()
    assert_same_features(held[:], fresh(clips_a["path"]))
    held.close()
    report = clean_cache(tmp_path / "c", dataset="toy", older_than_days=30)
    assert [r["path"] for r in report["removed"]] == [str(held.path)]


def test_cli_clean_cache(two_folders, tmp_path):
    clips_a, _ = two_folders
    feats = run(clips_a, tmp_path / "c")
    feats.close()
    old = time.time() - 40 * 86400
    os.utime(feats.path / "LAST_USED", (old, old))
    proc = subprocess.run([sys.executable, str(ROOT / "experiments/extract_features.py"), "--clean-cache",
                           "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["removed"] == 1 and out["paths_removed"] == [str(feats.path)] and out["freed_bytes"] > 8 * 64 * 64 * 4


def test_stale_partial_of_a_failed_extraction_is_removed_by_the_next_one(clips, tmp_path, monkeypatch):
    import audiodata.features.cache as cache_module

    class Failing(Counting):
        def __call__(self, path, params):
            if len(self.calls) == 3:
                raise KeyboardInterrupt
            return super().__call__(path, params)

    with pytest.raises(KeyboardInterrupt):
        run(clips.iloc[:6], tmp_path / "c", Failing())
    (partial,) = (tmp_path / "c").rglob(".partial-*")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (partial / "OWNER").write_text(f"{socket.gethostname()}:{dead.stdout.strip()}")  # as if that process died
    run(clips, tmp_path / "c").close()  # another file set: the partial is recent, so it stays
    assert partial.exists()
    monkeypatch.setattr(cache_module, "STALE_PARTIAL_SECONDS", 0.0)
    run(clips.iloc[1:], tmp_path / "c").close()
    assert not list((tmp_path / "c").rglob(".partial-*"))


# ------------------------------------------------------------------------------ identity
def same_size_pair(shared_data):
    by_size = {}
    for path in sorted((shared_data / "fsdd/recordings").glob("*.wav")):
        size = path.stat().st_size
        if size in by_size and by_size[size].read_bytes() != path.read_bytes():
            return by_size[size], path
        by_size[size] = path
    raise AssertionError("no two FSDD recordings of the same size")


def test_same_size_same_mtime_replacement_needs_content_identity(shared_data, tmp_path, monkeypatch):
    original, replacement = same_size_pair(shared_data)
    names = [f"{d}_yweweler_2.wav" for d in range(5)]
    clips = copy_clips(shared_data, tmp_path / "audio", names)
    target = tmp_path / "audio" / original.name
    shutil.copy2(original, target)
    clips = pd.concat([clips, pd.DataFrame([{"clip_id": original.stem, "path": str(target)}])], ignore_index=True)
    run(clips, tmp_path / "c").close()
    run(clips, tmp_path / "c", identity="content").close()
    stat = os.stat(target)
    shutil.copyfile(replacement, target)  # as `cp -p` / `rsync -t`: same size, mtime restored
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    expected = fresh(clips["path"])
    assert not np.allclose(expected[-1], fresh([original])[0])

    stale = run(clips, tmp_path / "c", identity="stat")
    assert stale.cached  # documented limit of the default identity
    assert not np.allclose(stale[-1], expected[-1])
    compute = Counting()
    content = run(clips, tmp_path / "c", compute, identity="content")
    assert not content.cached and compute.calls == [original.name]
    assert_same_features(content[:], expected)
    assert "digest" in content.clips.columns
    monkeypatch.setenv("AUDIO_CACHE_IDENTITY", "content")
    assert run(clips, tmp_path / "c").cached  # the environment variable selects it too
    monkeypatch.setenv("AUDIO_CACHE_IDENTITY", "inode")
    with pytest.raises(AudioDataError, match="AUDIO_CACHE_IDENTITY"):
        run(clips, tmp_path / "c")


# ------------------------------------------------------------------------------ kill -9
KILLED = textwrap.dedent("""
    import os, sys, time
    import pandas as pd
    from audiodata.features import cached_features, compute_features, load_feature_params

    def slow(path, params):
        open(os.path.join(sys.argv[2], str(os.getpid())), "w").close()
        time.sleep(0.3)
        return compute_features(path, params)

    clips = pd.read_csv(sys.argv[1], dtype=str)
    cached_features("toy", "mel", load_feature_params("fsdd", "mel"), clips, slow, cache_dir=sys.argv[3],
                    n_jobs=2, progress=False)
""")


def _children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_workers_die_with_a_killed_extraction(shared_data, tmp_path):
    names = [p.name for p in sorted((shared_data / "fsdd/recordings").glob("*_george_4*.wav"))[:10]]
    clips = copy_clips(shared_data, tmp_path / "audio", names)
    clips = pd.concat([clips.assign(clip_id=clips["clip_id"] + f"-{k}") for k in range(4)], ignore_index=True)
    clips.to_csv(tmp_path / "clips.csv", index=False)
    markers = tmp_path / "workers"
    markers.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "clips.csv"), str(markers),
                               str(tmp_path / "c")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while len(list(markers.iterdir())) < 2:
            assert parent.poll() is None, parent.stderr.read().decode()
            assert time.time() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = [int(p.name) for p in markers.iterdir()]
        family = set(_descendants(parent.pid)) | set(workers)
        assert set(workers) <= family
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 10
        while any(_running(p) for p in family) and time.time() < deadline:
            time.sleep(0.2)
        alive = [p for p in family if _running(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
    for pid in alive:  # do not leave them behind for the next test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert alive == [], f"processes of the killed extraction still running: {alive} (workers {workers})"
