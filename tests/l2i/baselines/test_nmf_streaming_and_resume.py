"""Bounded memory and resuming of the NMF baselines (TDL-NMF batches, NMF dictionary checkpoints) on real ESC-10."""
import numpy as np
import pytest

from l2i.baselines import NMFClassifier, TDLNMFClassifier
from l2i.baselines import nmf_classifier as nmf_module

TDL = {"n_components": 4, "n_iter": 5, "n_iter_dictionary": 10, "batch_size": 8, "learning_rate": 1e-2}


class CountingArray:
    """A feature array ``(N, T, F)`` read by row numbers, like audiodata's FeatureArray; records every read."""

    def __init__(self, data):
        self._data, self.reads = data, []

    @property
    def shape(self):
        return self._data.shape

    def __len__(self):
        return len(self._data)

    def __getitem__(self, index):
        rows = np.atleast_1d(np.arange(len(self._data))[index])
        self.reads.append(len(rows))
        return np.array(self._data[index])


def test_tdl_nmf_reads_at_most_one_batch_at_a_time(esc10_logmag):
    X, y = esc10_logmag
    source = CountingArray(X)
    rows = np.arange(0, 40, 2)
    model = TDLNMFClassifier(epochs=2, **TDL).fit(source, y[rows], rows=rows, transform=np.sqrt)
    fit_reads = list(source.reads)
    probabilities = model.predict_proba(source, rows=rows, transform=np.sqrt)
    assert max(source.reads) <= 8, "never more than batch_size rows read at once"
    # dictionary scratch file + Z_0 + 2 epochs (+ a 1-row shape probe per pass): each row a handful of times
    assert sum(fit_reads) <= 6 * len(rows)
    np.testing.assert_allclose(probabilities, model.predict_proba(np.sqrt(X[rows])), rtol=1e-5, atol=1e-6)
    assert np.asarray(model.history_["loss"]).shape == (2,)


def test_nmf_clips_of_sqrt_mel_are_written_by_batches(tmp_path):
    from l2i.baselines.training import nmf_clips

    class Data:
        mel = type("Mel", (), {})()

    logmel = np.log(np.random.default_rng(0).random((30, 7, 5)).astype(np.float32) + 1e-3)
    Data.mel.data = CountingArray(logmel)
    Data.mel.params = {"log": "log", "amin": 1e-10}
    clips = nmf_clips(Data, np.arange(3, 30), "sqrt_mel", scratch=tmp_path, batch_size=4)
    assert max(Data.mel.data.reads) <= 4 and len(clips) == 27
    assert isinstance(clips[0].base, np.memmap) or isinstance(clips[0], np.memmap)
    np.testing.assert_allclose(clips[5], np.sqrt(np.maximum(np.exp(logmel[8].astype(np.float64)) - 1e-10, 0)),
                               rtol=1e-5)


def test_tdl_nmf_resumed_training_continues_from_the_saved_epoch(esc10_logmag, tmp_path):
    X, y = esc10_logmag
    straight = TDLNMFClassifier(epochs=3, **TDL).fit(X, y, run_dir=tmp_path / "straight")
    TDLNMFClassifier(epochs=1, **TDL).fit(X, y, run_dir=tmp_path / "resumed")  # "interrupted" after epoch 1
    resumed = TDLNMFClassifier(epochs=3, **TDL).fit(X, y, run_dir=tmp_path / "resumed")
    assert straight.epochs_this_run_ == 3 and resumed.epochs_this_run_ == 2
    assert (tmp_path / "resumed" / "tdl_nmf_init.npz").is_file()
    assert len(resumed.history_["loss"]) == 3
    # epoch 1 is the saved one (same W_0, read-out and batches); later epochs agree to within 2%, not bit for bit
    # (Keras' PyDataset calls on_epoch_end once more than there are epochs; see docs/l2i_baselines.md)
    assert resumed.history_["loss"][0] == pytest.approx(straight.history_["loss"][0], rel=1e-5)
    np.testing.assert_allclose(resumed.history_["loss"], straight.history_["loss"], rtol=2e-2)
    np.testing.assert_allclose(resumed.initial_dictionary_, straight.initial_dictionary_, rtol=1e-6)
    assert np.abs(resumed.dictionary_ - straight.dictionary_).max() < 0.05
    # all epochs done: a re-run trains nothing and keeps the weights
    again = TDLNMFClassifier(epochs=3, **TDL).fit(X, y, run_dir=tmp_path / "resumed")
    assert again.epochs_this_run_ == 0
    np.testing.assert_allclose(again.dictionary_, resumed.dictionary_, rtol=1e-6)


def test_nmf_dictionary_resumes_after_an_interruption(esc10_logmag, tmp_path, monkeypatch):
    X, y = esc10_logmag
    params = {"n_components": 4, "n_iter_dictionary": 10, "n_iter_activations": 20, "tol": 0.0}
    straight = NMFClassifier(**params).fit(X, y, run_dir=tmp_path / "straight", checkpoint_every=2)
    assert straight.dictionary_iterations_ == 10

    real = nmf_module.learn_dictionary

    def interrupted(*args, callback=None, **kwargs):
        def stop(iteration, W, H):
            callback(iteration, W, H)
            if iteration == 5:
                raise KeyboardInterrupt
        return real(*args, callback=stop, **kwargs)

    monkeypatch.setattr(nmf_module, "learn_dictionary", interrupted)
    with pytest.raises(KeyboardInterrupt):
        NMFClassifier(**params).fit(X, y, run_dir=tmp_path / "resumed", checkpoint_every=2)
    monkeypatch.setattr(nmf_module, "learn_dictionary", real)
    with np.load(tmp_path / "resumed" / nmf_module.CHECKPOINT) as saved:
        assert int(saved["iteration"]) == 4  # the last checkpoint before the interruption
    resumed = NMFClassifier(**params).fit(X, y, run_dir=tmp_path / "resumed", checkpoint_every=2)
    assert resumed.dictionary_iterations_ == 10 and resumed.dictionary_iterations_this_run_ == 6
    np.testing.assert_allclose(resumed.dictionary_, straight.dictionary_, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(resumed.predict_proba(X), straight.predict_proba(X), rtol=1e-3, atol=1e-4)
    done = NMFClassifier(**params).fit(X, y, run_dir=tmp_path / "resumed")
    assert done.dictionary_iterations_this_run_ == 0
    np.testing.assert_allclose(done.dictionary_, resumed.dictionary_)
