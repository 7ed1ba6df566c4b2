"""Real ESC-10 features shared by the L2I baseline tests: 40 clips, 2 per class from folds 1 and 2."""
import pytest

from tests.l2i._esc10 import l2i_cache_dir  # noqa: F401  (session fixture)


def _esc10_subset(shared_data, cache_dir, features):
    from audiodata.datasets import get_dataset
    from audiodata.features import extract_features

    ds = get_dataset("esc10", data_dir=shared_data)
    clips = ds.clips[ds.clips["fold"].isin([1, 2])].groupby(["fold", "label"]).head(2)
    array = extract_features(ds, features, cache_dir=cache_dir, n_jobs=2, progress=False)
    return array[array.rows(clips["clip_id"])], ds.targets(clips)


@pytest.fixture(scope="session")
def esc10_mel(shared_data, l2i_cache_dir):  # noqa: F811
    """Log-mel averaged over 3 frames, first 128 frames -> (40, 128, 128), with one-hot targets."""
    x, y = _esc10_subset(shared_data, l2i_cache_dir, "mel")
    x = x[:, :429].reshape(len(x), 143, 3, -1).mean(axis=2)[:, :128]
    return x.astype("float32"), y


@pytest.fixture(scope="session")
def esc10_logmag(shared_data, l2i_cache_dir):  # noqa: F811
    """Log-magnitude averaged over 4 frames -> (40, 107, 513), with one-hot targets."""
    X, y = _esc10_subset(shared_data, l2i_cache_dir, "logmag")
    X = X[:, :428].reshape(len(X), 107, 4, -1).mean(axis=2)
    return X.astype("float32"), y
