"""Normalisation fitted on the training split only, streamed over the memory-mapped cache."""
import numpy as np
import pytest

from audiodata import ParameterError
from audiodata.datasets import get_dataset
from audiodata.features import MinMaxScaler, StandardScaler, extract_features
from audiodata.features.normalization import _Scaler


@pytest.fixture(scope="module")
def us8k(shared_data, tmp_path_factory):
    ds = get_dataset("urbansound8k", shared_data)
    feats = extract_features(ds, "mel", cache_dir=tmp_path_factory.mktemp("cache"), n_jobs=1, progress=False)
    parts = ds.split(fold=5)
    return feats, feats.rows(parts["train"]["clip_id"]), feats.rows(parts["test"]["clip_id"])


def test_minmax_uses_only_training_rows_and_maps_them_to_minus_one_one(us8k):
    feats, train, test = us8k
    scaler = MinMaxScaler().fit(feats, rows=train, batch_size=4)
    x = feats[np.sort(train)]
    assert scaler.data_min == x.min() and scaler.data_max == x.max()
    scaled = scaler.transform(x)
    assert scaled.min() == pytest.approx(-1.0) and scaled.max() == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), x, atol=1e-3)
    whole = MinMaxScaler().fit(feats)
    assert (whole.data_min, whole.data_max) != (scaler.data_min, scaler.data_max) or \
        feats[np.sort(test)].min() >= x.min()


def test_standard_scaler_streamed_equals_numpy(us8k):
    feats, train, _ = us8k
    scaler = StandardScaler().fit(feats, rows=train, batch_size=3)
    x = feats[np.sort(train)].reshape(-1, feats.shape[-1]).astype(np.float64)
    np.testing.assert_allclose(scaler.mean, x.mean(axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(scaler.std, x.std(axis=0), rtol=1e-4, atol=1e-3)


def test_scalers_save_and_load(us8k, tmp_path):
    feats, train, _ = us8k
    for scaler in (MinMaxScaler(feature_range=(0, 1)).fit(feats, rows=train), StandardScaler().fit(feats, rows=train)):
        scaler.save(tmp_path / "s.json")
        loaded = _Scaler.load(tmp_path / "s.json")
        assert type(loaded) is type(scaler)
        np.testing.assert_array_equal(loaded.transform(feats[:2]), scaler.transform(feats[:2]))


def test_unfitted_and_bad_ranges_are_reported():
    with pytest.raises(ParameterError, match="not fitted"):
        MinMaxScaler().transform(np.zeros(3))
    with pytest.raises(ParameterError, match="low < high"):
        MinMaxScaler(feature_range=(1, -1))
