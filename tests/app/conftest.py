"""Fixtures of the web application tests.

* :func:`apnet_run` -- a run folder as ``experiments/apnet/train.py`` writes it (``model.keras``,
  ``config.yaml``, ``scaler.json``, ``results.json``): FSDD fold 1 (real clips), M = 10, C = 8,
  trained 3 epochs on 320 training clips so that it takes seconds, not minutes;
* :func:`l2i_run` -- an ESC-10 L2I run folder (``interpreter.keras`` + ``results.json``) with a
  tiny, untrained classifier and interpreter: the L2I page only needs a loadable run (the
  pipeline's numbers are tested in ``tests/l2i``);
* :func:`workspace`, :func:`explorer` -- the back end over them, shared by the session;
* :func:`live_server` -- the app served by uvicorn in a thread on a free 127.0.0.1 port;
* :func:`browser` -- headless Chromium (Debian's ``chromium``, or ``$AUDIOINTERP_CHROMIUM``)
  driven by Playwright. A missing browser fails the tests with a message saying how to
  install it; ``AUDIOINTERP_SKIP_BROWSER=1`` skips them instead.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from audioapp.server import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
#: Environment variable naming the Chromium executable (default: ``chromium`` on the PATH).
CHROMIUM_ENV = "AUDIOINTERP_CHROMIUM"
#: Set to 1 to skip the browser tests (they fail loudly otherwise when Chromium is missing).
SKIP_ENV = "AUDIOINTERP_SKIP_BROWSER"
#: Set to a folder (e.g. docs/screenshots) to keep the screenshots there; default a temporary folder.
SCREENSHOTS_ENV = "AUDIOINTERP_SCREENSHOTS"
#: Upload cap of the test servers (small, so the cap is cheap to exceed).
TEST_UPLOAD_CAP = 2 * 2**20


@pytest.fixture(scope="session")
def app_feature_cache(feature_cache):
    """The session's feature cache (tests/conftest.py): FSDD is extracted once for all test folders."""
    return feature_cache


@pytest.fixture(scope="session")
def apnet_run(tmp_path_factory, shared_data, app_feature_cache):
    """``<tmp>/apnet/fsdd/fold1/seed0/model.keras`` of a quick FSDD APNet (M = 10, C = 8)."""
    import keras

    from apnet import APNet
    from apnet.training import FeatureBatches, compile_apnet, load_fold
    from audiodata.features import MinMaxScaler

    run_dir = tmp_path_factory.mktemp("app_runs") / "apnet" / "fsdd" / "fold1" / "seed0"
    run_dir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8, epochs=3)
    data = load_fold("fsdd", 1, config["features"], data_dir=shared_data, cache_dir=app_feature_cache, n_jobs=2)
    scaler = MinMaxScaler(feature_range=(-1.0, 1.0)).fit(data.features, rows=data.rows["train"])
    keras.utils.set_random_seed(0)
    model = APNet(input_shape=data.input_shape, n_classes=len(data.classes), n_prototypes=10, n_filters=8)
    compile_apnet(model, config["alpha"], config["beta"], config["gamma"], float(config["learning_rate"]))
    picked = np.sort(np.random.default_rng(0).choice(len(data.rows["train"]), size=320, replace=False))
    batches = FeatureBatches(data.features, data.rows["train"][picked], data.targets["train"][picked], 32,
                             scaler=scaler, shuffle=True, seed=0)
    model.fit(batches, epochs=config["epochs"], verbose=0)
    model.save(run_dir / "model.keras")
    scaler.save(run_dir / "scaler.json")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "results.json").write_text(json.dumps({"model": "apnet", "dataset": "fsdd", "fold": 1, "seed": 0,
                                                      "note": "tests/app quick run (320 clips)"}))
    return run_dir / "model.keras"


@pytest.fixture(scope="session")
def l2i_run(tmp_path_factory):
    """``<tmp>/l2i/esc10/fold1/seed0/posthoc_att`` with an untrained tiny interpreter (K = 6)."""
    import keras

    from l2i.classifier import KumarCNN
    from l2i.interpreter import build_interpreter

    run = tmp_path_factory.mktemp("app_l2i") / "l2i" / "esc10" / "fold1" / "seed0" / "posthoc_att"
    run.mkdir(parents=True)
    keras.utils.set_random_seed(1)
    classifier = KumarCNN(n_classes=10, n_frames=431, filters=(4, 4, 8, 8, 16, 16), head_filters=16)
    W = np.random.default_rng(0).random((513, 6)).astype("float32") + 0.01
    interpreter = build_interpreter(classifier, W / np.linalg.norm(W, axis=0), psi_channels=16, attention_units=8)
    interpreter.save(run / "interpreter.keras")
    (run / "results.json").write_text(json.dumps({"dataset": "esc10", "fold": 1, "mode": "posthoc", "theta": "att"}))
    return run


@pytest.fixture(scope="session")
def workspace(apnet_run, shared_data, app_feature_cache):
    from audioapp import Workspace

    return Workspace(apnet_run, dataset="fsdd", fold=1, data_dir=shared_data, cache_dir=app_feature_cache,
                     max_points=300)


@pytest.fixture(scope="session")
def explorer(l2i_run, shared_data, tmp_path_factory):
    from audioapp.l2i_explorer import L2IExplorer

    return L2IExplorer(l2i_run, tmp_path_factory.mktemp("app_cache"), data_dir=shared_data)


@pytest.fixture(scope="session")
def live_server(workspace, explorer):
    """Base URL (``http://127.0.0.1:<port>``) of the app served by uvicorn in a daemon thread."""
    from audioapp import create_app

    with serve_in_thread(create_app(workspace, explorer, max_upload_bytes=TEST_UPLOAD_CAP)) as url:
        yield url


@pytest.fixture(scope="session")
def chromium_path():
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: browser tests skipped")
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        pytest.fail(f"Chromium is missing: install Debian's chromium (`apt-get install -y chromium`, as .ci/run does) "
                    f"or set {CHROMIUM_ENV}=/path/to/chromium; {SKIP_ENV}=1 skips the browser tests", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory):
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")
