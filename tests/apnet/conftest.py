"""Fixtures of the APNet model and training tests: real FSDD features, extracted once per session."""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def fsdd_fold(shared_data, feature_cache):
    """FSDD fold 1 (test speaker 1, validation speaker 2): cached log-mel features (3000, 64, 64)."""
    from apnet.training import load_fold

    return load_fold("fsdd", 1, "mel", data_dir=shared_data, cache_dir=feature_cache, n_jobs=2)


@pytest.fixture(scope="session")
def fsdd_scaler(fsdd_fold):
    """Min-max scaler to [-1, 1] fitted on the training rows of FSDD fold 1."""
    from audiodata.features import MinMaxScaler

    return MinMaxScaler(feature_range=(-1.0, 1.0)).fit(fsdd_fold.features, rows=fsdd_fold.rows["train"])


@pytest.fixture(scope="session")
def fsdd_batch(fsdd_fold, fsdd_scaler):
    """64 scaled training clips (all ten digits) and their one-hot targets."""
    rng = np.random.default_rng(0)
    picked = np.sort(rng.choice(len(fsdd_fold.rows["train"]), size=64, replace=False))
    x = fsdd_scaler.transform(fsdd_fold.features[fsdd_fold.rows["train"][picked]])
    return x, fsdd_fold.targets["train"][picked]
