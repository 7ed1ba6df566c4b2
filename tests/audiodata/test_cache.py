"""The feature cache: keys, reuse, incremental updates, atomicity, interruption and resumption."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from audiodata import AudioFileError
from audiodata.datasets import get_dataset
from audiodata.features import cached_features, compute_features, extract_features, load_feature_params, params_key
from audiodata.features.cache import FeatureArray, clean_cache

PARAMS = load_feature_params("fsdd", "mel")


@pytest.fixture
def clips(shared_data, tmp_path):
    """12 real FSDD recordings copied into a folder the test may modify."""
    folder = tmp_path / "audio"
    folder.mkdir()
    rows = []
    for src in sorted((shared_data / "fsdd/recordings").glob("*_theo_1*.wav"))[:12]:
        shutil.copy2(src, folder / src.name)
        rows.append({"clip_id": src.stem, "path": str(folder / src.name)})
    return pd.DataFrame(rows)


class Counting:
    """``compute`` that counts its calls and can be told to fail at call number ``fail_at``."""

    def __init__(self, fail_at=None, exc=KeyboardInterrupt):
        self.calls, self.fail_at, self.exc = [], fail_at, exc

    def __call__(self, path, params):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise self.exc()
        self.calls.append(os.path.basename(path))
        return compute_features(path, params)


def run(clips, cache, compute=None, params=PARAMS, n_jobs=1):
    return cached_features("toy", "mel", params, clips, compute or Counting(), cache_dir=cache, n_jobs=n_jobs,
                           progress=False)


def reference(clips):
    return np.stack([compute_features(p, PARAMS) for p in clips["path"]])


def assert_same_features(actual, expected):
    """Equal up to float32 rounding: the cache computes with one BLAS thread, the reference with several,
    and the summation order of the mel projection differs (seen: 7.6e-6 absolute on -54 dB values)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4)


def test_key_covers_every_parameter_lists_and_none_included():
    base = params_key("fsdd", PARAMS)
    assert params_key("fsdd", dict(PARAMS)) == base
    for key, value in [("fmax", 4000.0), ("fmax", 0.0), ("n_frames", None), ("htk", False), ("top_db", None),
                       ("extra", [1, 2]), ("extra", None)]:
        changed = {**PARAMS, key: value}
        assert params_key("fsdd", changed) != base, key
    assert params_key("fsdd", {**PARAMS, "extra": [1, 2]}) != params_key("fsdd", {**PARAMS, "extra": [1, 2, 3]})
    assert params_key("fsdd", {**PARAMS, "fmax": None}) != params_key("fsdd", {**PARAMS, "fmax": 0})
    assert params_key("esc10", PARAMS) != base


def test_second_call_reads_the_cache_and_gives_the_same_array(clips, tmp_path):
    first_compute, second_compute = Counting(), Counting()
    first = run(clips, tmp_path / "c", first_compute)
    second = run(clips, tmp_path / "c", second_compute)
    assert (first.cached, second.cached) == (False, True)
    assert len(first_compute.calls) == 12 and second_compute.calls == []
    np.testing.assert_array_equal(second[:], first[:])  # the cache gives back exactly what it stored
    assert_same_features(second[:], reference(clips))
    assert second.clips["clip_id"].tolist() == clips["clip_id"].tolist()
    assert isinstance(second.data, np.memmap)


def test_changing_a_parameter_never_reuses_features(clips, tmp_path):
    run(clips, tmp_path / "c")
    compute = Counting()
    other = run(clips, tmp_path / "c", compute, params={**PARAMS, "n_mels": 32})
    assert not other.cached and len(compute.calls) == 12 and other.shape == (12, 64, 32)


def test_an_edited_file_is_recomputed_alone(clips, tmp_path):
    run(clips, tmp_path / "c")
    edited = clips["path"].iloc[3]
    shutil.copy2(clips["path"].iloc[0], edited)  # new content, new size/mtime
    compute = Counting()
    again = run(clips, tmp_path / "c", compute)
    assert not again.cached and compute.calls == [os.path.basename(edited)]
    np.testing.assert_array_equal(again[3], again[0])
    # The superseded generation is kept (another data folder may still hold those files) until a clean-up,
    # which removes it but not the generation held open by ``again``.
    assert len(list((tmp_path / "c").rglob("COMPLETE"))) == 2
    report = clean_cache(tmp_path / "c", older_than_days=0)
    assert [r["path"] for r in report["removed"]] != [str(again.path)] and len(report["removed"]) == 1
    assert [p.parent for p in (tmp_path / "c").rglob("COMPLETE")] == [again.path]


def test_added_clip_only_computes_the_new_one(clips, tmp_path):
    run(clips.iloc[:10], tmp_path / "c")
    compute = Counting()
    grown = run(clips, tmp_path / "c", compute)
    assert compute.calls == [os.path.basename(p) for p in clips["path"].iloc[10:]]
    assert_same_features(grown[:], reference(clips))


def test_interrupted_run_leaves_no_trusted_entry_and_resumes(clips, tmp_path, monkeypatch):
    import audiodata.features.cache as cache_module

    monkeypatch.setattr(cache_module, "_CHECKPOINT_SECONDS", 0.0)  # checkpoint after every row
    with pytest.raises(KeyboardInterrupt):
        run(clips, tmp_path / "c", Counting(fail_at=7))
    assert not list((tmp_path / "c").rglob("COMPLETE"))
    partial = next((tmp_path / "c").rglob(".partial-*"))
    assert np.load(partial / "done.npy").sum() == 7
    compute = Counting()
    resumed = run(clips, tmp_path / "c", compute)
    assert len(compute.calls) == 5 and not resumed.cached
    assert_same_features(resumed[:], reference(clips))
    assert not list((tmp_path / "c").rglob(".partial-*"))


def test_bad_file_raises_naming_it_and_corrupts_nothing(clips, tmp_path):
    bad = clips["path"].iloc[5]
    with open(bad, "r+b") as fh:
        fh.truncate(30)
    with pytest.raises(AudioFileError) as info:
        run(clips, tmp_path / "c")
    assert bad in str(info.value)
    assert not list((tmp_path / "c").rglob("COMPLETE"))
    # Fix the file: the rows computed before the failure are kept, the rest are computed.
    shutil.copy2(clips["path"].iloc[4], bad)
    compute = Counting()
    fixed = run(clips, tmp_path / "c", compute)
    assert len(compute.calls) < 12
    assert_same_features(fixed[:], reference(clips))


def test_bad_file_in_a_worker_process_is_reported_by_name(clips, tmp_path):
    bad = clips["path"].iloc[2]
    open(bad, "w").write("not audio")
    with pytest.raises(AudioFileError, match=str(bad)):
        run(clips, tmp_path / "c", compute_features, n_jobs=2)


def test_entry_without_completion_marker_is_not_trusted(clips, tmp_path):
    first = run(clips, tmp_path / "c")
    (first.path / "COMPLETE").unlink()
    compute = Counting()
    with pytest.warns(UserWarning, match=f"{first.path} has no COMPLETE marker"):
        again = run(clips, tmp_path / "c", compute)
    assert not again.cached
    assert_same_features(again[:], reference(clips))


def test_corrupt_partial_bitmap_is_discarded(clips, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(clips, tmp_path / "c", Counting(fail_at=4))
    partial = next((tmp_path / "c").rglob(".partial-*"))
    (partial / "done.npy").write_bytes(b"garbage")
    compute = Counting()
    again = run(clips, tmp_path / "c", compute)
    assert len(compute.calls) == 12
    assert_same_features(again[:], reference(clips))


def test_parallel_equals_serial_and_batches_equal_rows(clips, tmp_path):
    serial = run(clips, tmp_path / "s", compute_features, n_jobs=1)
    parallel = run(clips, tmp_path / "p", compute_features, n_jobs=2)
    np.testing.assert_array_equal(serial[:], parallel[:])
    rows = np.array([11, 0, 5, 6])
    got = {int(r): b for idx, batch in parallel.iter_batches(3, rows) for r, b in zip(idx, batch)}
    for r in rows:
        np.testing.assert_array_equal(got[int(r)], serial[int(r)])


def test_rows_lookup_names_an_unknown_clip(clips, tmp_path):
    feats = run(clips, tmp_path / "c")
    np.testing.assert_array_equal(feats.rows([clips["clip_id"][4], clips["clip_id"][1]]), [4, 1])
    with pytest.raises(KeyError, match="nope"):
        feats.rows(["nope"])


def test_extract_features_on_a_real_dataset_and_metadata(shared_data, tmp_path):
    ds = get_dataset("urbansound8k", shared_data)
    feats = extract_features(ds, "mel", cache_dir=tmp_path, n_jobs=1, progress=False)
    assert feats.shape == (19, 84, 128) and np.isfinite(feats[:]).all()
    meta = json.loads((feats.path / "params.json").read_text())
    assert meta["params"] == load_feature_params("urbansound8k", "mel") and meta["dataset"] == "urbansound8k"
    again = FeatureArray(feats.path, cached=True)
    np.testing.assert_array_equal(again[:], feats[:])
