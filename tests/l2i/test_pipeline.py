"""Tests of l2i.pipeline on a tiny trained ESC-10 run (real clips), built once per session with the L2I CLIs.

The fixtures :func:`tiny_run` and :func:`tiny_evaluation` are imported by the other L2I
pipeline tests (CLI, tables, notebooks); building is idempotent, so each importing module
reuses the same folder.
"""
import os

import keras
import numpy as np
import pytest
import soundfile as sf
import yaml

from audiodata.errors import AudioFileError, ParameterError
from audioruns.runs import Run
from l2i.pipeline import (check_tau, class_index, evaluate_run, explain_signal, find_results, interpret_file,
                          load_clip, load_run)
from tests.l2i._esc10 import TINY_CLASSIFIER, TINY_INTERPRETER, esc10_fold1, l2i_cache_dir  # noqa: F401
from tests.l2i.test_training import REPO, _cli, _common

CLIP = "1-100032-A-0.flac"  # ESC-10 'dog', fold 1 (a test clip of fold 1)


@pytest.fixture(scope="session")
def tiny_run(shared_data, l2i_cache_dir, esc10_fold1, tmp_path_factory):  # noqa: F811
    """``<root>/runs/l2i/esc10/fold1/seed0/posthoc_att-<tag>-<hash>``: classifier, K = 6 dictionary, interpreter,
    1 epoch each (the tiny config is an ablation of the paper's, so its folders carry a tag and a hash)."""
    root = tmp_path_factory.getbasetemp() / "l2i_tiny_run"
    seed_dir = root / "runs" / "l2i" / "esc10" / "fold1" / "seed0"
    done = sorted(seed_dir.glob("posthoc_att-*/results.json"))
    if done:
        return done[0].parent
    root.mkdir(exist_ok=True)
    config = yaml.safe_load((REPO / "l2i" / "configs" / "esc50.yaml").read_text())
    config["classifier"].update({k: list(v) if isinstance(v, tuple) else v for k, v in TINY_CLASSIFIER.items()})
    config["interpreter"].update(TINY_INTERPRETER)
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    common = _common(shared_data, l2i_cache_dir, root / "runs", root / "tiny.yaml")
    _cli("train_classifier.py", *common, "--verbose", "0", env=env)
    _cli("learn_dictionary.py", *common, "--n-components", "6", env=env)
    _cli("train_interpreter.py", *common, "--n-components", "6", "--mode", "posthoc", "--theta", "att", "--verbose", "0",
         env=env)
    (run,) = seed_dir.glob("posthoc_att-*")
    return run


@pytest.fixture(scope="session")
def tiny_evaluation(tiny_run, shared_data):
    """``evaluate.py`` on the first 8 test clips of the tiny run, written beside it (``evaluation_none/``)."""
    import importlib.util

    folder = tiny_run / "evaluation_none"
    if not (folder / "results.json").is_file():
        spec = importlib.util.spec_from_file_location("l2i_evaluate", REPO / "experiments" / "l2i" / "evaluate.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(["--model", str(tiny_run), "--dataset", "esc10", "--fold", "1", "--data-dir", str(shared_data),
                     "--max-clips", "8", "--taus", "0.1", "0.5", "--output", str(tiny_run.parents[4])])
    return folder


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


def test_load_run_matches_the_saved_classifier(run, tiny_run, esc10_fold1):  # noqa: F811
    assert run.dataset == "esc10" and run.classes[0] == "dog" and len(run.classes) == 10
    assert run.W.shape == (513, 6) and run.theta.shape == (6, 10) and run.n_components == 6
    (dictionary,) = tiny_run.parent.glob("dictionary-K6-*")
    np.testing.assert_allclose(run.W, np.load(dictionary / "W.npy"), rtol=1e-6)
    x = np.asarray(esc10_fold1.mel[esc10_fold1.rows["test"][:3]], dtype=np.float32)
    saved = keras.models.load_model(tiny_run.parent / "classifier" / "classifier.keras", compile=False)
    out = run.predict(x)
    np.testing.assert_allclose(out["f"], saved.predict(x, verbose=0), atol=1e-5)
    g, _, H = run.interpreter.predict(x, verbose=0)
    np.testing.assert_allclose(out["g"], g, atol=1e-5)
    np.testing.assert_allclose(out["H"], H, atol=1e-5)
    # the seed folder resolves to its only run
    assert load_run(tiny_run.parent).path == tiny_run
    # the run folder type both papers share: fold from the path, results.json as results (info: its old name)
    assert isinstance(run, Run) and run.run_dir == tiny_run and run.fold == 1
    assert run.results and run.info is run.results


def test_features_of_a_file_equal_the_cached_features(run, shared_data, esc10_fold1):  # noqa: F811
    # The cache divides each clip by its peak (the authors' dataloader); interpretations load clips the same way.
    y, info = load_clip(shared_data / "ESC-50" / "audio" / CLIP, run.sr, run.duration,
                        peak_normalize=run.logmag_params.get("peak_normalize"))
    assert run.logmag_params.get("peak_normalize") == "max" and np.max(y) == pytest.approx(1.0)
    assert y.shape == (220500,) and info["channels"] == 1 and info["original_sr"] == 44100
    mel, X, phase = run.features(y)
    row = esc10_fold1.mel.rows(["1-100032-A-0"])[0]
    np.testing.assert_allclose(mel, esc10_fold1.mel[row], atol=1e-4)
    np.testing.assert_allclose(X, esc10_fold1.logmag[row], atol=1e-4)
    assert phase.shape == X.shape == (431, 513)


def test_load_clip_any_rate_and_channels(run, shared_data, tmp_path):
    import librosa

    y, sr = sf.read(shared_data / "ESC-50" / "audio" / CLIP, dtype="float32")
    y22 = librosa.resample(y, orig_sr=sr, target_sr=22050)
    stereo = np.stack([y22, 0.5 * y22], axis=1)[: 22050 * 3]  # 3 s, right channel at half level
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 22050, subtype="FLOAT")
    clip, info = load_clip(path, run.sr, run.duration)
    assert clip.shape == (220500,) and info == {"original_sr": 22050, "channels": 2, "seconds": 3.0, "start": 0.0}
    assert np.all(clip[3 * 44100 + 100:] == 0)  # zero-padded after the 3 s of the file
    reference = 0.75 * y[: 3 * 44100 - 2000]
    corr = np.corrcoef(clip[: reference.size], reference)[0, 1]
    assert corr > 0.95, corr  # mono = mean of the channels, back at 44.1 kHz
    later, _ = load_clip(path, run.sr, run.duration, start=1.0)
    np.testing.assert_allclose(later[:44100], clip[44100:88200], atol=1e-6)
    with pytest.raises(AudioFileError, match="nothing to analyse"):
        load_clip(path, run.sr, run.duration, start=4.0)
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="not_audio.wav"):
        load_clip(bad, run.sr, run.duration)


def test_explain_signal_relevance_and_components(run, shared_data):
    y, _ = load_clip(shared_data / "ESC-50" / "audio" / CLIP, run.sr, run.duration)
    e = explain_signal(run, y, tau=0.1)
    assert e.c == int(np.argmax(e.f)) and abs(e.f.sum() - 1) < 1e-5 and abs(e.g.sum() - 1) < 1e-5
    mel, _, _ = run.features(y)
    z = run.predict(mel[None])["z"][0]
    contribution = z * run.theta[:, e.c]
    expected = contribution / np.abs(contribution).max() if np.abs(contribution).max() > 0 else contribution * 0
    np.testing.assert_allclose(e.relevance, expected, atol=1e-6)
    np.testing.assert_array_equal(e.components, np.flatnonzero(expected > 0.1))
    other = explain_signal(run, y, c=3, tau=0.5)
    assert other.c == 3 and set(other.components) <= set(np.flatnonzero(other.relevance > 0.5))
    summary = e.summary()
    assert summary["class"] == run.classes[e.c] and summary["components"] == e.components.tolist()


def test_interpret_file_writes_audio_and_figure(run, shared_data, tmp_path):
    e, info = interpret_file(run, shared_data / "ESC-50" / "audio" / CLIP, class_name="Rooster", tau=0.0,
                             output=tmp_path)
    assert run.classes[e.c] == "rooster"
    paths = info["paths"]
    x_int, sr = sf.read(paths["interpretation"])
    assert sr == 44100 and x_int.shape == (220500,)
    assert sorted(paths["components"]) == e.components.tolist()
    assert paths["figure"].stat().st_size > 1000 and (tmp_path / "interpretation.json").is_file()


def test_class_and_tau_errors(run):
    assert class_index(run, "DOG") == 0 and class_index(run, "2") == 2 and class_index(run, None) is None
    with pytest.raises(ParameterError, match="valid names: dog, rooster"):
        class_index(run, "unicorn")
    for bad in (1.0, -0.1, "abc", 2):
        with pytest.raises(ParameterError, match="tau"):
            check_tau(bad)
    assert check_tau("0.3") == 0.3


def test_evaluate_run_faithfulness_and_random_baseline(run, shared_data):
    from l2i.metrics import faithfulness, top_k_fidelity

    taus = (0.1, 0.5)
    results, rows, relevances = evaluate_run(run, fold=1, data_dir=shared_data, taus=taus, max_clips=4)
    assert results["n_clips"] == 4 and results["n_interpretations"] == 4 and len(rows) == 8
    assert len(results["ff_median"]) == len(results["ff_median_random"]) == 2
    assert all(-1 <= r["ff"] <= 1 and -1 <= r["ff_random"] <= 1 for r in rows)
    assert 0 <= results["fidelity"]["top1"] <= results["fidelity"]["top5"] <= 1
    assert 0 <= results["classifier"]["accuracy"] <= 1 and results["test_nmf_loss"] > 0
    for tau, mean in zip(taus, results["n_removed_mean"]):
        n = [r["n_removed"] for r in rows if r["tau"] == tau]
        assert mean == np.mean(n)
        assert all(r["n_random"] == min(int(round(mean)), 6 - r["n_removed"]) for r in rows if r["tau"] == tau)
    assert results["ff_median"][0] == pytest.approx(np.median([r["ff"] for r in rows if r["tau"] == 0.1]))
    assert relevances["r"].shape == (4, 6) and relevances["clip_id"][0] == "1-100032-A-0"
    # one value checked against l2i.metrics.faithfulness (Eq. 7)
    y, _ = load_clip(shared_data / "ESC-50" / "audio" / CLIP, run.sr, run.duration)
    mel, X, phase = run.features(y)
    H = run.predict(mel[None])["H"][0]
    e = explain_signal(run, y, tau=0.1)
    ff = faithfulness(run.classify, X, phase, run.W, H, e.components, e.c, stft=run.stft, x=y)
    assert rows[0]["ff"] == pytest.approx(ff, abs=1e-5)
    # fidelity from the same predictions
    f = run.classify([y])
    assert top_k_fidelity(f, e.g[None], 1) == float(np.argmax(e.g) == np.argmax(f))


def test_evaluate_run_with_corruption_changes_the_input(run, shared_data):
    clean, _, _ = evaluate_run(run, data_dir=shared_data, taus=(0.1,), max_clips=2)
    noisy, _, _ = evaluate_run(run, data_dir=shared_data, taus=(0.1,), max_clips=2, corruption="noise")
    mixed, _, _ = evaluate_run(run, data_dir=shared_data, taus=(0.1,), max_clips=2, corruption="mix")
    assert noisy["corruption"] == "noise" and mixed["corruption"] == "mix"
    assert noisy["test_nmf_loss"] != clean["test_nmf_loss"] != mixed["test_nmf_loss"]
    with pytest.raises(ParameterError, match="corruption"):
        evaluate_run(run, data_dir=shared_data, corruption="reverb")


def test_find_results(tiny_evaluation):
    entries = find_results(tiny_evaluation.parents[5])
    kinds = {e["kind"] for e in entries}
    assert {"classifier", "dictionary", "interpreter", "evaluation"} <= kinds
    evaluation = next(e for e in entries if e["kind"] == "evaluation")
    assert evaluation["corruption"] == "none" and evaluation["training"]["mode"] == "posthoc"
    assert (evaluation["dataset"], evaluation["fold"], evaluation["seed"], evaluation["base"]) == \
        ("esc10", 1, 0, "posthoc_att")
    assert evaluation["system"] == tiny_evaluation.parent.name and evaluation["differences"]


def test_dataset_classes_without_data():
    from l2i.pipeline import OPENMIC_CLASSES, dataset_classes

    assert dataset_classes("openmic") == OPENMIC_CLASSES and len(OPENMIC_CLASSES) == 20
    assert len(dataset_classes("esc10")) == 10 and dataset_classes("sonyc_ust")[2] == "non-machinery-impact"
    with pytest.raises(ParameterError, match="unknown dataset"):
        dataset_classes("nope")


def test_openmic_classes_match_class_map(shared_data):
    import json

    from l2i.pipeline import OPENMIC_CLASSES

    class_map = json.loads((shared_data / "openmic-2018" / "class-map.json").read_text())
    assert tuple(sorted(class_map, key=class_map.get)) == OPENMIC_CLASSES


def test_openmic_run_end_to_end(shared_data, tmp_path):
    """load_run + evaluate_run on an (untrained, tiny) OpenMIC-2018 run and the real clip of ../shared/data.

    The shared sample has no labels file: a copy of the dataset folder with the clip as the test split and
    two made-up annotations (guitar present, piano absent) stands in for it.
    """
    import json

    from l2i.classifier import KumarCNN
    from l2i.interpreter import L2IInterpreter

    source = shared_data / "openmic-2018"
    data = tmp_path / "data" / "openmic-2018"
    (data / "partitions").mkdir(parents=True)
    (data / "audio").symlink_to(source / "audio")
    (data / "class-map.json").write_text((source / "class-map.json").read_text())
    (data / "partitions" / "split01_test.csv").write_text("000046_3840\n")
    (data / "partitions" / "split01_train.csv").write_text("999999_0\n")
    (data / "openmic-2018-aggregated-labels.csv").write_text(
        "sample_key,instrument,relevance,num_responses\n000046_3840,guitar,1.0,3\n000046_3840,piano,0.0,3\n")
    keras.utils.set_random_seed(0)
    f = KumarCNN(n_classes=20, n_frames=862, multilabel=True, name="classifier", **TINY_CLASSIFIER)
    W = np.random.default_rng(0).random((513, 4)).astype("float32") + 0.01
    folder = tmp_path / "runs" / "l2i" / "openmic" / "fold1" / "seed0" / "posthoc_att"
    folder.mkdir(parents=True)
    L2IInterpreter(f, W / np.linalg.norm(W, axis=0), n_frames=862, **TINY_INTERPRETER).save(
        folder / "interpreter.keras")
    (folder / "results.json").write_text(json.dumps({"mode": "posthoc", "theta": "att"}))  # dataset from the path

    run = load_run(folder)
    assert run.dataset == "openmic" and len(run.classes) == 20 and run.multilabel
    results, rows, relevances = evaluate_run(run, fold=1, data_dir=tmp_path / "data", taus=(0.1,))
    assert results["n_clips"] == 1 and set(results["fidelity"]) == {"weighted_f1"}
    assert 0 <= results["fidelity"]["weighted_f1"] <= 1
    assert set(results["classifier"]) == set(results["interpreter"]) == {"weighted_f1"}
    assert results["n_interpretations"] == len(rows) == len(relevances["class_index"])
    assert all(r["class"] in run.classes and r["n_random"] <= 4 - r["n_removed"] for r in rows)
