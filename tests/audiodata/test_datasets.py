"""Tests of the dataset loaders in audiodata.datasets, on the real excerpts in shared/data.

Every expected count comes from ../shared/data/README.md. Variants of a dataset (a renamed
column, a missing file, other audio formats, a labels file) are built in ``tmp_path`` as a
mirror of the shared folder: real folders with symbolic links to the shared files, so the
shared data is never modified; a file that a test changes is replaced by a real copy first.
"""
import json
import os
import shutil
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiodata.datasets import DATASETS, MissingAudioWarning, coarse_targets, get_dataset
from audiodata.datasets.esc50 import CLASSES as ESC50_CLASSES
from audiodata.datasets.esc50 import ESC10_TARGETS
from audiodata.datasets.medley_solos_db import CLASSES as MEDLEY_CLASSES
from audiodata.datasets.openmic import LABELS_FILE
from audiodata.datasets.sonyc_ust import CLASSES as SONYC_CLASSES
from audiodata.datasets.speech_commands import WORDS_V1, WORDS_V2
from audiodata.datasets.urbansound8k import CLASSES as US8K_CLASSES
from audiodata.download import DATASET_FOLDERS
from audiodata.errors import DatasetNotFoundError, ParameterError
from audiodata.io import load_audio

FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
ESC10_CLASSES = ("dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
                 "helicopter", "chainsaw")
# Registry name -> the folder its loader expects under the data folder.
EXPECTED_FOLDER = {"urbansound8k": "UrbanSound8K", "medley_solos_db": "MedleySolosDB",
                   "speech_commands": "speech_commands", "speech_commands_v1": "speech_commands_v0.01",
                   "esc50": "ESC-50", "esc10": "ESC-50", "sonyc_ust": "SONYC-UST", "openmic": "openmic-2018",
                   "fsdd": "fsdd"}


def _mirror(src, dst):
    """Copy the folder tree ``src`` to ``dst`` as real folders holding symbolic links to the files."""
    shutil.copytree(src, dst, copy_function=os.symlink)
    return dst


def _own_copy(path):
    """Replace the symbolic link ``path`` (made by :func:`_mirror`) by a real copy, so it can be edited."""
    target = os.path.realpath(path)
    os.unlink(path)
    shutil.copyfile(target, path)
    return path


def _load(name, data_dir, **kwargs):
    """``get_dataset`` that fails on any warning (the complete excerpts must load silently)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return get_dataset(name, data_dir, **kwargs)


def _ids(table):
    return set(table["clip_id"])


def _check_partition(parts, clips):
    """The three parts are disjoint and together hold every clip exactly once."""
    ids = [_ids(parts[k]) for k in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(len(parts[k]) for k in parts) == len(clips)
    assert set.union(*ids) == _ids(clips)


# --------------------------------------------------------------------------------------------- every loader
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_loader_lists_unique_existing_clips(name, shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingAudioWarning)  # sonyc_ust and openmic are partial excerpts
        ds = get_dataset(name, shared_data)
    clips = ds.clips
    assert len(ds) == len(clips) > 0
    assert clips["clip_id"].is_unique
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in clips["path"])
    assert list(clips.index) == list(range(len(clips)))
    # The shared copy of Speech Commands is v0.01 stored as speech_commands/ (the fallback folder of v1).
    folder = "speech_commands" if name == "speech_commands_v1" else EXPECTED_FOLDER[name]
    assert ds.root == (shared_data / folder).resolve()
    if name != "openmic":  # no labels file in the excerpt (tested below)
        y = ds.targets()
        assert y.shape == (len(clips), ds.n_classes) and y.dtype == np.float32
        assert set(np.unique(y)) <= {0.0, 1.0}
        if not ds.multilabel:
            np.testing.assert_array_equal(y.argmax(axis=1), clips["label"].to_numpy())
            np.testing.assert_array_equal(y.sum(axis=1), 1.0)
        assert ds.label_mask().shape == y.shape and ds.label_mask().all()


@pytest.mark.parametrize("name", ["fsdd", "urbansound8k", "esc50", "esc10", "medley_solos_db", "speech_commands"])
def test_complete_excerpts_load_with_strict(name, shared_data):
    assert len(_load(name, shared_data, strict=True)) > 0


def test_unknown_dataset_name_raises(shared_data):
    with pytest.raises(ParameterError, match="'urbansound'"):
        get_dataset("urbansound", shared_data)


# --------------------------------------------------------------------------------------------- FSDD
def test_fsdd_clips_labels_and_folds(shared_data):
    ds = _load("fsdd", shared_data)
    clips = ds.clips
    assert len(clips) == 3000
    assert ds.classes == tuple(str(d) for d in range(10))
    assert Counter(clips["label"]) == {d: 300 for d in range(10)}
    assert ds.speakers == list(FSDD_SPEAKERS)
    assert ds.folds() == [1, 2, 3, 4, 5, 6]
    assert Counter(clips["fold"]) == {k: 500 for k in range(1, 7)}
    # every speaker is one fold, in alphabetical order: george=1 ... yweweler=6
    assert {s: set(clips.loc[clips["speaker"] == s, "fold"]) for s in FSDD_SPEAKERS} == {
        s: {k} for k, s in enumerate(FSDD_SPEAKERS, start=1)}
    # 50 recordings (indices 0-49) of every digit by every speaker
    assert (clips.groupby(["speaker", "label"]).size() == 50).all()
    assert sorted(clips["index"].unique()) == list(range(50))
    row = clips.set_index("clip_id").loc["7_theo_12"]
    assert (row["label"], row["speaker"], row["index"], row["fold"]) == (7, "theo", 12, 5)
    assert os.path.basename(row["path"]) == "7_theo_12.wav"


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5, 6])
def test_fsdd_split_holds_out_one_speaker_each(fold, shared_data):
    ds = _load("fsdd", shared_data)
    parts = ds.split(fold=fold)
    test_speaker = FSDD_SPEAKERS[fold - 1]
    val_speaker = FSDD_SPEAKERS[fold % 6]  # k + 1, and 6 -> 1
    assert set(parts["test"]["speaker"]) == {test_speaker}
    assert set(parts["validation"]["speaker"]) == {val_speaker}
    assert set(parts["train"]["speaker"]) == set(FSDD_SPEAKERS) - {test_speaker, val_speaker}
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (2000, 500, 500)
    assert Counter(parts["test"]["label"]) == {d: 50 for d in range(10)}
    _check_partition(parts, ds.clips)


@pytest.mark.parametrize("fold", [0, 7, "1"])
def test_fsdd_split_rejects_unknown_fold(fold, shared_data):
    with pytest.raises(ParameterError, match=r"fold must be one of \[1, 2, 3, 4, 5, 6\]"):
        _load("fsdd", shared_data).split(fold=fold)


def test_fsdd_skips_misnamed_files_with_a_warning(shared_data, tmp_path):
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for name in ("0_george_0", "1_jackson_3"):
        os.symlink(shared_data / "fsdd" / "recordings" / f"{name}.wav", rec / f"{name}.wav")
    os.symlink(shared_data / "fsdd" / "recordings" / "2_lucas_4.wav", rec / "two-lucas.wav")
    with pytest.warns(MissingAudioWarning, match="two-lucas.wav"):
        ds = get_dataset("fsdd", tmp_path)
    assert list(ds.clips["clip_id"]) == ["0_george_0", "1_jackson_3"]


# --------------------------------------------------------------------------------------------- any audio format
def test_same_clips_read_from_flac_and_ogg(shared_data, tmp_path):
    src = shared_data / "fsdd" / "recordings"
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    formats = {"0_george_0": "wav", "1_jackson_5": "flac", "2_lucas_7": "ogg", "9_nicolas_49": "flac"}
    for stem, ext in formats.items():
        y, sr = sf.read(src / f"{stem}.wav", dtype="int16")
        if ext == "wav":
            shutil.copyfile(src / f"{stem}.wav", rec / f"{stem}.wav")
        elif ext == "flac":
            sf.write(rec / f"{stem}.flac", y, sr, subtype="PCM_16")
        else:
            sf.write(rec / f"{stem}.ogg", y.astype(np.float32) / 32768, sr, format="OGG", subtype="VORBIS")
    ds = _load("fsdd", tmp_path)
    clips = ds.clips.set_index("clip_id")
    assert sorted(clips.index) == sorted(formats)
    assert {c: os.path.splitext(p)[1] for c, p in clips["path"].items()} == {c: "." + e for c, e in formats.items()}
    assert clips["label"].to_dict() == {"0_george_0": 0, "1_jackson_5": 1, "2_lucas_7": 2, "9_nicolas_49": 9}
    assert clips["fold"].to_dict() == {"0_george_0": 1, "1_jackson_5": 2, "2_lucas_7": 3, "9_nicolas_49": 4}
    for stem, ext in formats.items():
        original, sr = load_audio(src / f"{stem}.wav")
        copy, copy_sr = load_audio(clips.loc[stem, "path"])
        assert copy_sr == sr == 8000
        if ext == "ogg":  # lossy: same length, same waveform up to coding noise
            assert abs(len(copy) - len(original)) <= 64
            n = min(len(copy), len(original))
            assert np.corrcoef(copy[:n], original[:n])[0, 1] > 0.95
        else:  # lossless
            np.testing.assert_array_equal(copy, original)


# --------------------------------------------------------------------------------------------- UrbanSound8K
US8K_FOLD_COUNTS = {1: 3, 2: 3, 5: 7, 7: 3, 10: 3}
US8K_CLASS_COUNTS = {"air_conditioner": 3, "car_horn": 3, "children_playing": 3, "dog_bark": 4, "drilling": 1,
                     "engine_idling": 1, "siren": 1, "street_music": 3}


def test_urbansound8k_clips_follow_the_metadata(shared_data):
    ds = _load("urbansound8k", shared_data)
    clips = ds.clips
    assert len(clips) == 19 and ds.classes == US8K_CLASSES and ds.n_classes == 10
    assert dict(Counter(clips["fold"])) == US8K_FOLD_COUNTS
    assert dict(Counter(ds.classes[label] for label in clips["label"])) == US8K_CLASS_COUNTS
    meta = pd.read_csv(shared_data / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv")
    assert list(clips["clip_id"]) == [f"fold{f}/{n[:-4]}" for f, n in zip(meta["fold"], meta["slice_file_name"])]
    np.testing.assert_array_equal(clips["label"], meta["classID"])
    assert [ds.classes[label] for label in clips["label"]] == list(meta["class"])
    assert [os.path.relpath(p, ds.root / "audio") for p in clips["path"]] == [
        f"fold{f}/{n}" for f, n in zip(meta["fold"], meta["slice_file_name"])]


def test_urbansound8k_mixed_formats_load(shared_data):
    ds = _load("urbansound8k", shared_data)
    meta = pd.read_csv(shared_data / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv").set_index("slice_file_name")
    odd = {"147764-4-7-0.wav": (22050, 2, "PCM_16"), "176787-5-0-0.wav": (22050, 2, "FLOAT"),
           "40722-8-0-7.wav": (22050, 1, "PCM_U8")}
    for path in ds.clips["path"]:
        name = os.path.basename(path)
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == odd.get(name, (44100, 2, "PCM_16"))
        y, sr = load_audio(path)
        assert y.ndim == 1 and y.dtype == np.float32 and sr == info.samplerate
        assert 0 < np.abs(y).max() <= 1.0
        assert len(y) / sr == pytest.approx(meta.loc[name, "end"] - meta.loc[name, "start"], abs=0.01)
        y22, sr22 = load_audio(path, sr=22050)
        assert sr22 == 22050 and abs(len(y22) - round(len(y) * 22050 / sr)) <= 1


def test_urbansound8k_split_fold1_validates_on_fold2(shared_data):
    ds = _load("urbansound8k", shared_data)
    parts = ds.split(fold=1)
    assert set(parts["test"]["fold"]) == {1} and len(parts["test"]) == 3
    assert set(parts["validation"]["fold"]) == {2} and len(parts["validation"]) == 3
    assert set(parts["train"]["fold"]) == {5, 7, 10} and len(parts["train"]) == 13
    assert sorted(parts["test"]["clip_id"]) == ["fold1/147764-4-7-0", "fold1/176787-5-0-0", "fold1/40722-8-0-7"]
    _check_partition(parts, ds.clips)


def test_urbansound8k_split_fold10_validates_on_fold1(shared_data):
    parts = _load("urbansound8k", shared_data).split(fold=10)
    assert set(parts["validation"]["fold"]) == {1} and len(parts["validation"]) == 3
    assert set(parts["train"]["fold"]) == {2, 5, 7} and len(parts["train"]) == 13


def test_urbansound8k_split_skips_an_empty_validation_fold_with_a_warning(shared_data):
    ds = _load("urbansound8k", shared_data)
    with pytest.warns(MissingAudioWarning, match="validation fold 3 has no clips here; using fold 5"):
        parts = ds.split(fold=2)
    assert set(parts["validation"]["fold"]) == {5} and len(parts["validation"]) == 7
    assert set(parts["train"]["fold"]) == {1, 7, 10} and len(parts["train"]) == 9
    _check_partition(parts, ds.clips)


@pytest.mark.parametrize("fold", [3, 4, 6, 8, 9])
def test_urbansound8k_split_on_an_empty_fold_raises(fold, shared_data):
    with pytest.raises(DatasetNotFoundError, match=f"test fold {fold} has no clips"):
        _load("urbansound8k", shared_data).split(fold=fold)


@pytest.mark.parametrize("fold", [0, 11])
def test_urbansound8k_split_rejects_unknown_fold(fold, shared_data):
    with pytest.raises(ParameterError, match=f"got {fold}"):
        _load("urbansound8k", shared_data).split(fold=fold)


# --------------------------------------------------------------------------------------------- ESC-50 / ESC-10
ESC_CLASS_COUNTS = {name: 32 for name in ESC10_CLASSES} | {"rain": 31, "crying_baby": 30}


def test_esc50_labels_are_the_official_targets(shared_data):
    ds = _load("esc50", shared_data)
    clips = ds.clips
    meta = pd.read_csv(shared_data / "ESC-50" / "meta" / "esc50.csv")
    assert len(clips) == 317 and ds.n_classes == 50 and ds.classes == ESC50_CLASSES
    assert dict(Counter(clips["fold"])) == {1: 80, 2: 80, 3: 79, 5: 78}
    np.testing.assert_array_equal(clips["label"], meta["target"])
    assert list(clips["clip_id"]) == [f[: -len(".flac")] for f in meta["filename"]]
    assert [ds.classes[label] for label in clips["label"]] == list(meta["category"])
    assert dict(Counter(ds.classes[label] for label in clips["label"])) == ESC_CLASS_COUNTS
    assert sorted(set(clips["label"])) == list(ESC10_TARGETS)
    y = ds.targets()
    assert set(np.flatnonzero(y.sum(axis=0))) == set(ESC10_TARGETS)
    assert ds.cache_name == "esc50" and ds.config_name == "esc50"


def test_esc10_labels_follow_the_target_order(shared_data):
    ds = _load("esc10", shared_data)
    clips = ds.clips
    meta = pd.read_csv(shared_data / "ESC-50" / "meta" / "esc50.csv")
    assert len(clips) == 317 and ds.classes == ESC10_CLASSES and ds.n_classes == 10
    assert dict(Counter(clips["fold"])) == {1: 80, 2: 80, 3: 79, 5: 78}
    by_target = {0: 0, 1: 1, 10: 2, 11: 3, 12: 4, 20: 5, 21: 6, 38: 7, 40: 8, 41: 9}
    assert list(clips["label"]) == [by_target[t] for t in meta["target"]]
    assert list(clips["target"]) == list(meta["target"])
    assert [ds.classes[label] for label in clips["label"]] == list(meta["category"])
    assert dict(Counter(ds.classes[label] for label in clips["label"])) == ESC_CLASS_COUNTS
    assert clips.set_index("clip_id").loc["1-100032-A-0", "label"] == 0
    assert ds.cache_name == "esc10" and ds.config_name == "esc50"


@pytest.mark.parametrize("name", ["esc50", "esc10"])
def test_esc_split_without_validation_trains_on_the_other_folds(name, shared_data):
    ds = _load(name, shared_data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = ds.split(fold=3)
    assert set(parts["test"]["fold"]) == {3} and len(parts["test"]) == 79
    assert set(parts["train"]["fold"]) == {1, 2, 5} and len(parts["train"]) == 238
    assert len(parts["validation"]) == 0
    _check_partition(parts, ds.clips)


@pytest.mark.parametrize("name", ["esc50", "esc10"])
def test_esc_split_with_validation_skips_the_missing_fold4(name, shared_data):
    ds = _load(name, shared_data)
    with pytest.warns(MissingAudioWarning, match="validation fold 4 has no clips here; using fold 5"):
        parts = ds.split(fold=3, validation=True)
    assert set(parts["test"]["fold"]) == {3} and len(parts["test"]) == 79
    assert set(parts["validation"]["fold"]) == {5} and len(parts["validation"]) == 78
    assert set(parts["train"]["fold"]) == {1, 2} and len(parts["train"]) == 160
    _check_partition(parts, ds.clips)
    parts = ds.split(fold=5, validation=True)  # cyclic: 5 -> 1, present, so no warning
    assert set(parts["validation"]["fold"]) == {1} and len(parts["train"]) == 159


def test_esc_split_on_the_missing_fold4_raises(shared_data):
    ds = _load("esc50", shared_data)
    with pytest.raises(DatasetNotFoundError, match="test fold 4 has no clips"):
        ds.split(fold=4)
    with pytest.raises(ParameterError, match=r"fold must be one of \[1, 2, 3, 4, 5\], got 6"):
        ds.split(fold=6)


def test_esc50_rejects_a_target_that_contradicts_its_category(shared_data, tmp_path):
    root = _mirror(shared_data / "ESC-50", tmp_path / "ESC-50")
    meta = pd.read_csv(root / "meta" / "esc50.csv")
    dog = meta.index[meta["category"] == "dog"][3]
    meta.loc[dog, "target"] = 1  # a dog clip said to be target 1 (rooster)
    os.unlink(root / "meta" / "esc50.csv")
    meta.to_csv(root / "meta" / "esc50.csv", index=False)
    with pytest.raises(DatasetNotFoundError, match=f"{meta.loc[dog, 'filename']} has target 1 but category 'dog'"):
        get_dataset("esc50", tmp_path)


# --------------------------------------------------------------------------------------------- Medley-solos-DB
def test_medley_solos_db_splits_and_labels(shared_data):
    ds = _load("medley_solos_db", shared_data)
    clips = ds.clips
    meta = pd.read_csv(shared_data / "MedleySolosDB" / "annotation" / "Medley-solos-DB_metadata.csv",
                       dtype={"track_id": str})
    assert len(clips) == 97 and ds.classes == MEDLEY_CLASSES
    np.testing.assert_array_equal(clips["label"], meta["instrument_id"])
    assert [ds.classes[label] for label in clips["label"]] == list(meta["instrument"])
    assert list(clips["track_id"]) == list(meta["track_id"])
    parts = ds.split()
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (80, 9, 8)
    assert Counter(parts["train"]["label"]) == {i: 10 for i in range(8)}
    assert Counter(parts["validation"]["label"]) == {i: 1 for i in range(8)} | {MEDLEY_CLASSES.index("flute"): 2}
    assert Counter(parts["test"]["label"]) == {i: 1 for i in range(8)}
    assert ds.split(fold=1)["test"].equals(parts["test"])
    _check_partition(parts, clips)
    first = clips.iloc[0]
    assert first["clip_id"] == "Medley-solos-DB_test-0_0a282672-c22c-59ff-faaa-ff9eb73fc8e6"
    assert (first["label"], first["split"], first["track_id"]) == (0, "test", "017")
    assert os.path.basename(first["path"]) == first["clip_id"] + ".flac"


def test_medley_solos_db_has_one_partition(shared_data):
    with pytest.raises(ParameterError, match="fold must be None or 1, got 2"):
        _load("medley_solos_db", shared_data).split(fold=2)


@pytest.mark.parametrize("column", ["track_id", "song_id"])
def test_medley_solos_db_accepts_both_track_column_names(column, shared_data, tmp_path):
    root = tmp_path / "MedleySolosDB"
    (root / "annotation").mkdir(parents=True)
    os.symlink(shared_data / "MedleySolosDB" / "audio", root / "audio")
    lines = (shared_data / "MedleySolosDB" / "annotation" / "Medley-solos-DB_metadata.csv").read_text().splitlines()
    assert lines[0] == "subset,instrument,instrument_id,track_id,uuid4"
    lines[0] = lines[0].replace("track_id", column)
    (root / "annotation" / "Medley-solos-DB_metadata.csv").write_text("\n".join(lines) + "\n")
    reference = _load("medley_solos_db", shared_data).clips
    clips = _load("medley_solos_db", tmp_path, strict=True).clips
    assert len(clips) == 97
    for col in ("clip_id", "label", "split", "track_id"):  # track ids keep their leading zeros
        assert list(clips[col]) == list(reference[col])


# --------------------------------------------------------------------------------------------- Speech Commands
def _list_ids(path):
    return {line.strip()[: -len(".wav")] for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.parametrize("name", ["speech_commands", "speech_commands_v1"])
def test_speech_commands_v001_is_read_as_version_1(name, shared_data):
    ds = _load(name, shared_data)
    clips = ds.clips
    assert ds.version == 1 and ds.cache_name == "speech_commands_v1"
    assert ds.classes == WORDS_V1 and ds.n_classes == 30
    assert len(clips) == 274
    assert set(Counter(clips["label"]).values()) <= set(range(7, 11)) and clips["label"].nunique() == 30
    assert [ds.classes[label] for label in clips["label"]] == [c.split("/")[0] for c in clips["clip_id"]]
    parts = ds.split()
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (205, 44, 25)
    assert _ids(parts["test"]) == _list_ids(shared_data / "speech_commands" / "testing_list.txt")
    assert _ids(parts["validation"]) == _list_ids(shared_data / "speech_commands" / "validation_list.txt")
    _check_partition(parts, clips)
    row = clips.set_index("clip_id").loc["cat/aef8dcf5_nohash_0"]
    assert (row["label"], row["split"], row["speaker"]) == (WORDS_V1.index("cat"), "test", "aef8dcf5")


def test_speech_commands_missing_listed_file_warns_or_raises(shared_data, tmp_path):
    root = _mirror(shared_data / "speech_commands", tmp_path / "speech_commands")
    _own_copy(root / "testing_list.txt")
    with open(root / "testing_list.txt", "a") as f:
        f.write("dog/0badf00d_nohash_0.wav\n")
    with pytest.warns(MissingAudioWarning, match="dog/0badf00d_nohash_0.wav"):
        ds = get_dataset("speech_commands", tmp_path)
    parts = ds.split()
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (205, 44, 25)
    with pytest.raises(DatasetNotFoundError, match="dog/0badf00d_nohash_0.wav"):
        get_dataset("speech_commands", tmp_path, strict=True)


def test_speech_commands_detects_version_2(shared_data, tmp_path):
    root = _mirror(shared_data / "speech_commands", tmp_path / "speech_commands")
    (root / "backward").mkdir()
    shutil.copyfile(root / "cat" / "aef8dcf5_nohash_0.wav", root / "backward" / "0badf00d_nohash_0.wav")
    with pytest.warns(MissingAudioWarning, match=r"no audio for \['follow', 'forward', 'learn', 'visual'\]"):
        ds = get_dataset("speech_commands", tmp_path)
    assert ds.version == 2 and ds.classes == WORDS_V2 and ds.n_classes == 35
    assert len(ds) == 275
    row = ds.clips.set_index("clip_id").loc["backward/0badf00d_nohash_0"]
    assert (row["label"], row["split"]) == (0, "train")
    assert ds.clips.set_index("clip_id").loc["cat/aef8dcf5_nohash_0", "label"] == WORDS_V2.index("cat")
    # forcing v0.01 ignores the v0.02-only word
    v1 = _load("speech_commands_v1", tmp_path)
    assert v1.version == 1 and len(v1) == 274


def test_speech_commands_rejects_unknown_version(shared_data):
    with pytest.raises(ParameterError, match="version must be 'auto', 1 or 2, got 3"):
        get_dataset("speech_commands", shared_data, version=3)


def test_speech_commands_v1_prefers_the_v001_folder_beside_v002(shared_data, tmp_path):
    v2 = _mirror(shared_data / "speech_commands", tmp_path / "speech_commands")
    for word in ("backward", "follow", "forward", "learn", "visual"):
        (v2 / word).mkdir()
        shutil.copyfile(v2 / "cat" / "aef8dcf5_nohash_0.wav", v2 / word / "0badf00d_nohash_0.wav")
    _mirror(shared_data / "speech_commands", tmp_path / "speech_commands_v0.01")
    assert _load("speech_commands", tmp_path).version == 2
    v1 = _load("speech_commands_v1", tmp_path)
    assert v1.root == (tmp_path / "speech_commands_v0.01").resolve()


def test_speech_commands_v1_missing_names_its_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        get_dataset("speech_commands_v1", tmp_path)
    assert "--dataset speech_commands_v1" in str(err.value)
    assert str(tmp_path.resolve() / DATASET_FOLDERS["speech_commands_v1"]) in str(err.value)


# --------------------------------------------------------------------------------------------- SONYC-UST
def test_sonyc_coarse_targets_follow_the_dcase_rule(shared_data):
    ann = pd.read_csv(shared_data / "SONYC-UST" / "annotations.csv")
    minority = coarse_targets(ann)
    majority = coarse_targets(ann, vote="majority")
    for table in (minority, majority):
        assert list(table.columns) == list(SONYC_CLASSES)
        assert table.dtypes.eq(np.float32).all()
        # 00_000275 has only individual SONYC-team rows (annotator_id < 0): no verified or crowd target
        assert sorted(table.index) == ["00_000118.wav", "41_020874.wav", "45_006905.wav"]
        # 00_000118: the verified row (annotator_id 0) is used as is, whatever the vote
        assert dict(table.loc["00_000118.wav"]) == {c: float(c in ("engine", "human-voice")) for c in SONYC_CLASSES}
        assert (table.loc["41_020874.wav"] == 0).all()
    # 45_006905: engine and machinery-impact each marked by 1 of its 3 crowd annotators
    assert dict(minority.loc["45_006905.wav"]) == {c: float(c in ("engine", "machinery-impact"))
                                                   for c in SONYC_CLASSES}
    assert (majority.loc["45_006905.wav"] == 0).all()
    with pytest.raises(ParameterError, match="'unanimous'"):
        coarse_targets(ann, vote="unanimous")


def test_sonyc_majority_needs_more_than_half_the_crowd():
    rows = [{"audio_filename": "a.wav", "annotator_id": i, "1_engine_presence": e, "2_machinery-impact_presence": m}
            for i, e, m in ((1, 1, 1), (2, 1, 0), (3, 0, -1), (4, 1, 0))]
    ann = pd.DataFrame(rows)
    for col in ("3_non-machinery-impact", "4_powered-saw", "5_alert-signal", "6_music", "7_human-voice", "8_dog"):
        ann[f"{col}_presence"] = 0
    assert coarse_targets(ann, "majority").loc["a.wav", "engine"] == 1.0  # 3 of 4
    assert coarse_targets(ann, "majority").loc["a.wav", "machinery-impact"] == 0.0  # 1 of 4, -1 counts as 0
    assert coarse_targets(ann, "minority").loc["a.wav", "machinery-impact"] == 1.0


@pytest.mark.parametrize("vote", ["minority", "majority"])
def test_sonyc_loader_lists_the_annotated_clip_with_audio(vote, shared_data):
    with pytest.warns(MissingAudioWarning) as record:
        ds = get_dataset("sonyc_ust", shared_data, vote=vote)
    messages = [str(r.message) for r in record]
    assert any("2 of 3 clips" in m and "41_020874.wav" in m and "45_006905.wav" in m for m in messages)
    # 00_000275 has only individual SONYC-team rows: no usable target, and the user is told.
    assert any("00_000275.wav" in m and "neither a verified" in m for m in messages)
    assert ds.multilabel and ds.classes == SONYC_CLASSES
    assert list(ds.clips["clip_id"]) == ["00_000118"] and list(ds.clips["split"]) == ["validation"]
    assert list(ds.clips["sensor_id"]) == [0]
    np.testing.assert_array_equal(ds.targets(), [[1, 0, 0, 0, 0, 0, 1, 0]])
    parts = ds.split()
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (0, 1, 0)
    np.testing.assert_array_equal(ds.targets(parts["validation"]), [[1, 0, 0, 0, 0, 0, 1, 0]])
    assert ds.label_mask().shape == (1, 8) and ds.label_mask().all()


def test_sonyc_loader_strict_raises_on_annotated_clips_without_audio(shared_data):
    with pytest.raises(DatasetNotFoundError, match="41_020874.wav"):
        get_dataset("sonyc_ust", shared_data, strict=True)


# --------------------------------------------------------------------------------------------- OpenMIC-2018
OPENMIC_CLASSES = ("accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute", "guitar",
                   "mallet_percussion", "mandolin", "organ", "piano", "saxophone", "synthesizer", "trombone",
                   "trumpet", "ukulele", "violin", "voice")


def _openmic(data_dir, **kwargs):
    with pytest.warns(MissingAudioWarning, match="19999 of 20000 clips"):
        return get_dataset("openmic", data_dir, **kwargs)


def test_openmic_lists_the_clip_and_classes(shared_data):
    ds = _openmic(shared_data)
    class_map = json.loads((shared_data / "openmic-2018" / "class-map.json").read_text())
    assert ds.classes == OPENMIC_CLASSES == tuple(sorted(class_map, key=class_map.get))
    assert ds.multilabel and ds.n_classes == 20
    assert list(ds.clips["clip_id"]) == ["000046_3840"] and list(ds.clips["split"]) == ["train"]
    assert ds.clips["path"][0].endswith(os.path.join("audio", "000", "000046_3840.ogg"))
    parts = ds.split()
    assert (len(parts["train"]), len(parts["validation"]), len(parts["test"])) == (1, 0, 0)


def test_openmic_targets_without_labels_file_raise(shared_data):
    ds = _openmic(shared_data)
    for method in (ds.targets, ds.label_mask):
        with pytest.raises(DatasetNotFoundError, match=LABELS_FILE):
            method()


def test_openmic_targets_and_mask_from_labels_file(shared_data, tmp_path):
    _mirror(shared_data / "openmic-2018", tmp_path / "openmic-2018")
    pd.DataFrame(
        [("000046_3840", "guitar", 0.83, 3), ("000046_3840", "piano", 0.5, 2), ("000046_3840", "voice", 0.17, 3),
         ("000046_3840", "kazoo", 1.0, 3),       # not a class: ignored
         ("000135_483840", "drums", 1.0, 3)],    # clip without audio: ignored
        columns=["sample_key", "instrument", "relevance", "num_responses"],
    ).to_csv(tmp_path / "openmic-2018" / LABELS_FILE, index=False)
    ds = _openmic(tmp_path)
    expected_y = np.zeros((1, 20), dtype=np.float32)
    expected_y[0, [OPENMIC_CLASSES.index("guitar"), OPENMIC_CLASSES.index("piano")]] = 1
    expected_mask = np.zeros((1, 20), dtype=bool)
    expected_mask[0, [OPENMIC_CLASSES.index(c) for c in ("guitar", "piano", "voice")]] = True
    y, mask = ds.targets(), ds.label_mask()
    assert y.dtype == np.float32 and mask.dtype == bool
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(ds.targets(ds.split()["train"]), expected_y)
    assert ds.targets(ds.split()["test"]).shape == (0, 20)


# --------------------------------------------------------------------------------------------- missing data
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_dataset_folder_names_it_and_the_download_command(name, tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        get_dataset(name, tmp_path)
    message = str(err.value)
    assert f"{tmp_path.resolve() / EXPECTED_FOLDER[name]} does not exist" in message
    download_name = "esc50" if name == "esc10" else name
    assert f"`python experiments/download.py --dataset {download_name} --data-dir DATA_DIR`" in message
    assert f"DATA_DIR/{DATASET_FOLDERS[download_name]}" in message


def test_dataset_folder_without_its_metadata_says_what_is_missing(tmp_path):
    (tmp_path / "UrbanSound8K" / "audio").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="lacks metadata/UrbanSound8K.csv") as err:
        get_dataset("urbansound8k", tmp_path)
    assert "experiments/download.py --dataset urbansound8k" in str(err.value)


def test_dataset_folder_itself_can_be_the_data_dir(shared_data):
    ds = _load("fsdd", shared_data / "fsdd")
    assert len(ds) == 3000 and ds.root == (shared_data / "fsdd").resolve()


@pytest.mark.parametrize("name, folder, csv, column", [
    ("urbansound8k", "UrbanSound8K", "metadata/UrbanSound8K.csv", "classID"),
    ("esc50", "ESC-50", "meta/esc50.csv", "fold"),
    ("medley_solos_db", "MedleySolosDB", "annotation/Medley-solos-DB_metadata.csv", "uuid4"),
    ("sonyc_ust", "SONYC-UST", "annotations.csv", "annotator_id"),
])
def test_metadata_without_a_required_column_raises(name, folder, csv, column, shared_data, tmp_path):
    root = _mirror(shared_data / folder, tmp_path / folder)
    meta = pd.read_csv(root / csv, dtype=str)
    os.unlink(root / csv)
    meta.drop(columns=[column]).to_csv(root / csv, index=False)
    with pytest.raises(DatasetNotFoundError, match=f"lacks the column\\(s\\) \\['{column}'\\]"):
        get_dataset(name, tmp_path)


def test_no_audio_at_all_raises_with_the_download_command(shared_data, tmp_path):
    root = tmp_path / "UrbanSound8K"
    (root / "metadata").mkdir(parents=True)
    os.symlink(shared_data / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv", root / "metadata" / "UrbanSound8K.csv")
    with pytest.raises(DatasetNotFoundError, match="none of the 19 clips") as err:
        get_dataset("urbansound8k", tmp_path)
    assert "experiments/download.py --dataset urbansound8k" in str(err.value)


def test_data_dir_from_the_environment(shared_data, monkeypatch):
    monkeypatch.setenv("AUDIO_DATA_DIR", str(shared_data))
    ds = _load("fsdd", None)
    assert len(ds) == 3000 and ds.root == (shared_data / "fsdd").resolve()


@pytest.mark.parametrize("value", [None, ""])
def test_no_data_dir_and_no_environment_raises(value, monkeypatch):
    if value is None:
        monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("AUDIO_DATA_DIR", value)
    with pytest.raises(ParameterError, match="AUDIO_DATA_DIR"):
        get_dataset("fsdd")


# ----------------------------------------------------------------- size of the official release (issue 13)
def test_every_loader_knows_its_official_clip_count():
    """The counts of the official releases (shared/data/README.md, the papers, the loaders' docstrings)."""
    from audiodata.datasets import ESC50, FSDD, SONYCUST, MedleySolosDB, OpenMIC2018, SpeechCommands, UrbanSound8K

    expected = {UrbanSound8K: 8732, FSDD: 3000, ESC50: 2000, MedleySolosDB: 21571, SpeechCommands: 105829,
                SONYCUST: 18510, OpenMIC2018: 20000}
    for cls, count in expected.items():
        assert cls.OFFICIAL_CLIPS == count and cls.OFFICIAL_SOURCE, cls.__name__
    assert ESC50.OFFICIAL_CLIPS_ESC10 == 400
    assert SpeechCommands.OFFICIAL_CLIPS_BY_VERSION == {2: 105829, 1: 64727}
    assert {name for name, (cls, _) in DATASETS.items() if not cls.OFFICIAL_CLIPS} == set()


@pytest.mark.parametrize("name, official, found", [
    ("urbansound8k", 8732, 19), ("medley_solos_db", 21571, 97), ("esc50", 2000, 317),
    ("speech_commands", 64727, 274),  # the excerpt is v0.01
])
def test_size_warning_fires_on_the_test_excerpts(name, official, found, shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = get_dataset(name, shared_data)
    assert ds.official_clips == official and len(ds) == found
    message = ds.size_warning()
    assert message.startswith(f"{ds.cache_name}: {ds.root} holds only {found} clips")
    assert f"of the {official:,} of the official release" in message and "experiments/download.py" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["fsdd", "esc10"])
def test_size_warning_is_silent_on_complete_enough_folders(name, shared_data):
    """FSDD is complete here (3,000 clips); ESC-10 has 317 of its 400 (fold 4 is missing), above half."""
    ds = _load(name, shared_data)
    assert ds.official_clips == {"fsdd": 3000, "esc10": 400}[name]
    assert ds.size_warning() is None


def test_size_warning_is_silent_with_the_official_count(shared_data):
    """A folder holding the official number of clips (here UrbanSound8K's rows repeated to 8,732) gets no warning;
    below half of it, it does."""
    ds = _load("urbansound8k", shared_data)
    rows = np.arange(ds.OFFICIAL_CLIPS) % len(ds.clips)
    ds.clips = ds.clips.iloc[rows].reset_index(drop=True)
    assert ds.size_warning() is None
    ds.clips = ds.clips.iloc[:ds.OFFICIAL_CLIPS // 2].reset_index(drop=True)  # exactly half: still fine
    assert ds.size_warning() is None
    ds.clips = ds.clips.iloc[:-1]
    assert "holds only 4,365 clips, 50.0% of the 8,732" in ds.size_warning()


def test_report_split_prints_sizes_or_warns(shared_data):
    import io

    from audiodata.datasets import SmallDatasetWarning, report_split, split_summary

    ds = _load("urbansound8k", shared_data)
    parts = ds.split(fold=1)
    assert split_summary(parts) == "train 13, validation 3, test 3 clips"
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command-line form prints, it does not warn
        message = report_split(ds, parts, 1, progress=True, file=out)
    lines = out.getvalue().splitlines()
    assert lines == [f"warning: {message}", "urbansound8k fold 1: train 13, validation 3, test 3 clips"]
    with pytest.warns(SmallDatasetWarning, match="holds only 19 clips"):
        report_split(ds, parts, 1)
    fsdd = _load("fsdd", shared_data)
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report_split(fsdd, fsdd.split(fold=1), 1, progress=True, file=out) is None
        assert report_split(fsdd, fsdd.split(fold=1), 1) is None
    assert out.getvalue() == "fsdd fold 1: train 2,000, validation 500, test 500 clips\n"
