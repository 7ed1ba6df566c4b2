"""The APNet authors' refined UrbanSound8K model (50 -> 17 prototypes), imported with apnet.reference,
opens in the web application: its 17 prototypes are on the map, and one plays as audio."""
import io
import os
from pathlib import Path

import pytest
import soundfile as sf

import apnet  # noqa: F401  (registers the layers for loading)
from apnet.reference import import_reference
from tests.app.conftest import TEST_UPLOAD_CAP, serve_in_thread

expect = pytest.importorskip("playwright.sync_api").expect
ROOT = Path(__file__).resolve().parents[2]
REFINED = Path(os.environ.get("AUDIOINTERP_TEST_REFERENCE", ROOT.parent / "shared" / "reference")) / \
    "APNet/experiments/UrbanSound8k/APNet/refine_prototypes/fold1"


@pytest.fixture(scope="module")
def reference_server(shared_data, tmp_path_factory):
    from audioapp import Workspace, create_app

    if not REFINED.is_dir():
        raise FileNotFoundError(f"{REFINED} is missing (the APNet authors' artefacts, ../shared/reference)")
    run_dir = import_reference(REFINED, tmp_path_factory.mktemp("refined") / "run")
    workspace = Workspace(run_dir / "model.keras", dataset="urbansound8k", fold=1, data_dir=shared_data,
                          cache_dir=tmp_path_factory.mktemp("refined_cache"))
    with serve_in_thread(create_app(workspace, None, max_upload_bytes=TEST_UPLOAD_CAP)) as url:
        yield url


def test_imported_refined_apnet_opens_in_the_app(browser, reference_server):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=reference_server)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(reference_server + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=120_000)
        expect(page.locator("#map .prototype")).to_have_count(17)
        expect(page.locator("#status-prototypes")).to_have_text("17")
        page.locator('#map .prototype[data-index="0"]').dispatch_event("click")
        expect(page.locator("#selection-title")).to_contain_text("Prototype 0")
        # Griffin-Lim decoding of a prototype: seconds when idle, beyond Playwright's default 30 s on a busy machine
        response = page.request.get(page.locator("#audio-prototype").get_attribute("src"), timeout=180_000)
        assert response.ok and response.headers["content-type"].startswith("audio/")
        y, sr = sf.read(io.BytesIO(response.body()))
        assert sr == 22050 and y.size > 0 and abs(y).max() > 0
        assert not errors, errors
    finally:
        context.close()
