"""Shared helpers of the L2I model/training tests: tiny model sizes and real ESC-10 features."""
import numpy as np
import pytest

#: A Kumar CNN small enough for CPU tests (same structure as the paper's).
TINY_CLASSIFIER = {"filters": (4, 4, 8, 8, 16, 16), "head_filters": 16}
#: Psi/Theta sizes of the tests.
TINY_INTERPRETER = {"psi_channels": 16, "attention_units": 8}


def unit_dictionary(rng, n_frequencies=513, n_components=6):
    W = rng.random((n_frequencies, n_components)).astype("float32") + 0.01
    return W / np.linalg.norm(W, axis=0)


@pytest.fixture(scope="session")
def l2i_cache_dir(tmp_path_factory):
    """One feature cache for every L2I test of the session and the CLI subprocesses."""
    path = tmp_path_factory.getbasetemp() / "l2i_feature_cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def esc10_fold1(shared_data, l2i_cache_dir):
    """ESC-10 fold 1 (real clips): cached mel (431 x 128) and logmag (431 x 513) features."""
    from l2i.training import load_fold

    return load_fold("esc10", 1, data_dir=shared_data, cache_dir=l2i_cache_dir, n_jobs=2)
