"""Tests of l2i.dictionary: the dataset-specific X_train constructions of Sec. IV-A3."""
import numpy as np
import pytest

from audiodata.errors import ParameterError
from l2i.dictionary import (clip_spectrograms, learn_dataset_dictionary, learn_per_class_dictionary,
                            learn_sonyc_ust_dictionary)

NMF = {"n_iter": 20, "l1": 0.01}


@pytest.fixture
def clips(rng):
    """12 synthetic 'clips' (n, T, F) and 3-class multi-hot targets; clips 0-2 have no label."""
    logmag = rng.random((12, 30, 16)).astype("float32")
    targets = np.zeros((12, 3), dtype=np.float32)
    targets[3:6, 0] = 1
    targets[6:9, 1] = 1
    targets[9:12, 2] = 1
    targets[11, 0] = 1
    return logmag, np.arange(12), targets


def test_clip_spectrograms_are_frequency_first(clips):
    logmag, rows, _ = clips
    specs = clip_spectrograms(logmag, rows[:2])
    assert specs[0].shape == (16, 30)
    np.testing.assert_array_equal(specs[1], logmag[1].T)


def test_sonyc_ust_noise_then_class_components(clips):
    logmag, rows, targets = clips
    W, info = learn_sonyc_ust_dictionary(logmag, rows, targets, n_noise=2, n_per_class=3, n_clips_per_class=2,
                                         seed=0, **NMF)
    assert W.shape == (16, 9)
    assert info["noise_rows"] == 3 and info["class_rows"] == {0: 2, 1: 2, 2: 2}
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, atol=1e-4)
    W_noise, _ = learn_sonyc_ust_dictionary(logmag, rows, targets, n_noise=2, n_per_class=3, n_clips_per_class=2,
                                            include_noise=True, seed=0, **NMF)
    assert W_noise.shape == (16, 11)
    np.testing.assert_allclose(W_noise[:, 2:], W, rtol=1e-5)


def test_per_class_ignores_unannotated(clips):
    logmag, rows, targets = clips
    targets = targets.copy()
    targets[3, 0] = np.nan
    W, info = learn_per_class_dictionary(logmag, rows, targets, n_per_class=2, n_clips_per_class=10, **NMF)
    assert W.shape == (16, 6) and info["class_rows"][0] == 3


def test_dispatch_and_errors(clips):
    logmag, rows, targets = clips
    W, info = learn_dataset_dictionary("esc10", logmag, rows, targets, {"n_components": 4, **NMF})
    assert W.shape == (16, 4) and info["n_clips"] == 12
    with pytest.raises(ParameterError, match="urbansound"):
        learn_dataset_dictionary("urbansound", logmag, rows, targets, {})
    with pytest.raises(ParameterError, match="no training clip without"):
        learn_sonyc_ust_dictionary(logmag, rows[3:], targets[3:], n_noise=1, n_per_class=1, **NMF)
