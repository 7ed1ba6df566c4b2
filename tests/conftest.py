"""Test configuration shared by every test module.

Nothing may be written to the home directory: Keras, matplotlib and numba get
folders under the system temporary directory before anything imports them.
"""
import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.gettempdir()) / "audiointerp-tests"
for _var, _sub in (("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "matplotlib"), ("NUMBA_CACHE_DIR", "numba")):
    os.environ.setdefault(_var, str(_TMP / _sub))
    Path(os.environ[_var]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: The real clips of every dataset, in the official layouts (see ../shared/data/README.md).
SHARED_DATA = Path(os.environ.get("AUDIOINTERP_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """Folder holding the real dataset excerpts; the tests need it and fail loudly without it."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(
            f"test data folder {SHARED_DATA} is missing; set AUDIOINTERP_TEST_DATA to the shared/data folder"
        )
    return SHARED_DATA


@pytest.fixture
def rng():
    """A seeded NumPy generator, so every maths check is reproducible."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    """A feature cache folder shared by every test of the session (and the CLI subprocesses), so that the
    FSDD features are extracted once for the APNet and the web application tests."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="session", autouse=True)
def _cache_outside_home(feature_cache):
    """Code run without a cache_dir (and CLI subprocesses without --cache-dir) uses the session's cache,
    never ~/.cache (unless AUDIO_CACHE_DIR is already set)."""
    os.environ.setdefault("AUDIO_CACHE_DIR", str(feature_cache))
