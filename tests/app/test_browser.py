"""The web application driven in headless Chromium (Playwright): what a user clicks, end to end.

APNet: load the map, click and hover prototypes and instances (spectrogram, audio), delete two
prototypes, convert a training instance into a prototype, undo, convert again, switch to t-SNE,
run a 1-epoch retrain on FSDD (a second request meanwhile gets 409), save, and check the saved
file: its number of prototypes and its test accuracy. L2I: explain a test clip, move the tau
slider, upload a WAV, a text file and a too large file.

Every page is screenshotted (to ``$AUDIOINTERP_SCREENSHOTS``, e.g. ``docs/screenshots``, or a
temporary folder). The pages run under their Content-Security-Policy, so the checks use
Playwright's locators (no ``eval`` in the page).
"""
import hashlib
import io
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

import apnet  # noqa: F401  (registers the layers for loading)
from tests.app.conftest import TEST_UPLOAD_CAP

expect = pytest.importorskip("playwright.sync_api").expect
READY = 120_000  # ms: first map (decoding the prototypes over the training split)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def page(browser, live_server):
    """A fresh page that records page errors, console errors and requests to any other host."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda err: page.problems.append(f"page error: {err}"))
    page.on("console", lambda msg: page.problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "status of 409" not in msg.text and "status of 400" not in msg.text
            and "status of 413" not in msg.text else None)
    page.on("request", lambda request: None if request.url.startswith(live_server)
            else page.problems.append(f"request to another host: {request.url}"))
    yield page
    context.close()


def keep(page, folder, name):
    """Full-page screenshot, reduced to a 128-colour PNG (:func:`audioapp.screenshots.save_screenshot`)."""
    from audioapp.screenshots import save_screenshot

    path = save_screenshot(page, Path(folder) / f"{name}.png")
    assert path.stat().st_size > 10_000
    return path


def click(locator, shift=False):
    """A real click; if another map item covers this one, the click event is sent to the item itself."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.click(modifiers=["Shift"] if shift else None, timeout=5_000)
    except PlaywrightTimeout:
        locator.dispatch_event("click", {"shiftKey": shift})


def hover(locator):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.hover(timeout=5_000)
    except PlaywrightTimeout:
        locator.dispatch_event("mouseover")


def fetch_audio(page, url):
    response = page.request.get(url)
    assert response.ok and response.headers["content-type"].startswith("audio/"), url
    return sf.read(io.BytesIO(response.body()))


def test_explore_edit_retrain_and_save(page, live_server, workspace, apnet_run, screenshot_dir):
    digest = sha256(apnet_run)
    page.goto(live_server + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=READY)
    expect(page.locator("#map .prototype")).to_have_count(10)
    expect(page.locator("#map .instance")).to_have_count(300)
    expect(page.locator("#legend span")).to_have_count(11)
    base = workspace.current.id

    # Click a prototype: its decoded spectrogram and its Griffin-Lim audio.
    click(page.locator('#map .prototype[data-index="3"]'))
    expect(page.locator("#selection-title")).to_contain_text("Prototype 3")
    image = page.locator("#selection-image")
    expect(image).to_have_attribute("src", f"/image/prototype/3?version={base}")
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 100
    y, sr = fetch_audio(page, page.locator("#audio-prototype").get_attribute("src"))
    assert sr == 8000 and y.shape == (8000,)
    # Hover an instance: the tooltip shows its class and its mel-spectrogram.
    hover(page.locator("#map .instance").nth(0))
    expect(page.locator("#tooltip")).to_be_visible()
    expect(page.locator("#tooltip img")).to_have_count(1)

    # Delete two prototypes (shift-click adds to the selection).
    click(page.locator('#map .prototype[data-index="5"]'), shift=True)
    expect(page.locator("#delete-btn")).to_have_text("Delete 2 selected prototypes")
    page.locator("#delete-btn").click()
    expect(page.locator("#map .prototype")).to_have_count(8)
    expect(page.locator("#message")).to_contain_text("Deleted prototype(s) P3, P5")
    expect(page.locator("#status-prototypes")).to_have_text("8")

    # Select a training instance (dots overlap, so the click is dispatched to the dot itself).
    clip = workspace.map_ids[7]
    page.locator(f'#map .instance[data-id="{clip}"]').dispatch_event("click")
    expect(page.locator("#selection-title")).to_contain_text(f"Instance {clip}")
    original, _ = fetch_audio(page, page.locator("#audio-original").get_attribute("src"))
    assert original.size > 0
    rebuilt, sr = fetch_audio(page, page.locator("#audio-reconstruction").get_attribute("src"))
    assert sr == 8000 and rebuilt.shape == (8000,)
    # Convert it into a prototype, undo, convert again.
    expect(page.locator("#convert-btn")).to_be_enabled()
    page.locator("#convert-btn").click()
    expect(page.locator("#map .prototype")).to_have_count(9)
    expect(page.locator("#selection-title")).to_contain_text("Prototype 8")
    expect(page.locator("#map .prototype.converted")).to_have_count(1)
    page.locator("#undo-btn").click()
    expect(page.locator("#map .prototype")).to_have_count(8)
    expect(page.locator("#message")).to_contain_text("Undone: converted instance")
    page.locator(f'#map .instance[data-id="{clip}"]').dispatch_event("click")
    expect(page.locator("#convert-btn")).to_be_enabled()
    page.locator("#convert-btn").click()
    expect(page.locator("#map .prototype")).to_have_count(9)
    expect(page.locator("#history li")).to_have_count(len(workspace.status()["history"]))
    hover(page.locator("#map .prototype").nth(8))
    expect(page.locator("#tooltip img")).to_have_count(1)
    keep(page, screenshot_dir, "explore")
    page.select_option("#projection", "tsne")
    expect(page.locator("#map .axis")).to_contain_text("t-SNE", timeout=60_000)
    expect(page.locator("#map .prototype")).to_have_count(9)
    keep(page, screenshot_dir, "explore_tsne")
    edited = workspace.current.id

    # Retrain one epoch on FSDD as a background job, with a live progress bar.
    page.locator("nav a[href='/train']").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#current-version")).to_have_text(f"version {edited}")
    page.fill("#epochs", "1")
    page.locator("#retrain-btn").click()
    expect(page.locator("body")).to_have_attribute("data-job", "running")
    second = page.request.post(live_server + "/api/retrain", data={"epochs": 1})
    assert second.status == 409 and "already running" in second.json()["error"]
    blocked = page.request.post(live_server + "/api/delete", data={"indices": [0]})
    assert blocked.status == 409 and "retrain is running" in blocked.json()["error"]
    expect(page.locator("#retrain-btn")).to_be_disabled()
    expect(page.locator("#progress-text")).to_contain_text("epoch 1/1", timeout=60_000)
    expect(page.locator("body")).to_have_attribute("data-job", "done", timeout=600_000)
    expect(page.locator("#accuracy-table tr[data-role='after']")).to_be_visible()
    accuracy = {role: float(page.locator(f"#accuracy-table tr[data-role='{role}'] td[data-accuracy]")
                            .get_attribute("data-accuracy")) for role in ("original", "before", "after")}
    expect(page.locator("#confusion-after td")).to_have_count(100)
    expect(page.locator("#epoch-table tr")).to_have_count(2)
    page.locator("#save-btn").click()
    expect(page.locator("#saved-path")).to_be_visible()
    saved_path = Path(page.locator("#saved-path").text_content()).absolute()  # shown relative to the cwd when inside it
    keep(page, screenshot_dir, "train")

    # The saved model: a new file beside the loaded one, 10 - 2 + 1 prototypes, the accuracy shown.
    assert saved_path.is_file() and saved_path != apnet_run and saved_path.parent == apnet_run.parent
    assert sha256(apnet_run) == digest
    saved = keras.models.load_model(saved_path)
    assert saved.get_layer("prototypes").n_prototypes == 9
    assert keras.models.load_model(apnet_run).get_layer("prototypes").n_prototypes == 10
    x = workspace.scaler.transform(workspace.data.features[workspace.data.rows["test"]])
    labels = workspace.data.targets["test"].argmax(axis=1)

    def test_accuracy(model):
        return float(np.mean(model.predict(x, verbose=0)[0].argmax(axis=1) == labels))

    assert test_accuracy(saved.inner) == pytest.approx(accuracy["after"], abs=1e-9)  # the file holds scaler + model
    # (the loaded model's accuracy is checked against an independent count in test_api.py)
    assert accuracy["original"] == pytest.approx(workspace.evaluate(0)["accuracy"], abs=1e-9)
    assert accuracy["after"] != accuracy["original"]
    np.testing.assert_allclose(saved.get_weights()[0], workspace.current.model.get_weights()[0])
    assert workspace.current.description.startswith("retrained 1 epoch(s)")
    assert not page.problems, page.problems


def test_l2i_page(page, live_server, explorer, shared_data, tmp_path, screenshot_dir):
    page.goto(live_server + "/l2i")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=60_000)
    expect(page.locator("#clip-select option")).to_have_count(len(explorer.clips()))
    clip = "1-100032-A-0"  # ESC-10 dog, a test clip of fold 1
    page.select_option("#clip-select", clip)
    page.locator("#explain-btn").click()
    expect(page.locator("body")).to_have_attribute("data-explained", f"clip:{clip}", timeout=60_000)
    expect(page.locator("#relevance .relevance-bar")).to_have_count(6)
    expect(page.locator("#result-title")).to_contain_text("true class: dog")
    expect(page.locator("#prediction .bar:not(.g)")).to_have_count(5)

    # The tau slider selects the components with r > tau, and the audio follows.
    for tau in ("0", "0.5", "0.95"):
        expected = explorer.explain(f"clip:{clip}", float(tau))["components"]
        page.fill("#tau", tau)
        expect(page.locator("#tau-value")).to_have_text(f"{float(tau):.2f}")
        expect(page.locator("#interpretation-audio")).to_have_attribute(
            "src", f"/audio/l2i/interpretation?source=clip%3A{clip}&tau={float(tau):g}")
        expect(page.locator("#components li[data-k]")).to_have_count(len(expected))
        expect(page.locator("#relevance .relevance-bar[data-selected='1']")).to_have_count(len(expected))
    page.fill("#tau", "0")
    expect(page.locator("#tau-value")).to_have_text("0.00")
    relevant = explorer.explain(f"clip:{clip}", 0.0)["components"]
    assert relevant, "the test interpreter should give at least one positive relevance"
    expect(page.locator("#components li[data-k]")).to_have_count(len(relevant))
    y, sr = fetch_audio(page, page.locator("#interpretation-audio").get_attribute("src"))
    assert sr == 44100 and y.shape == (5 * 44100,)
    y, sr = fetch_audio(page, page.locator("#components li[data-k] audio").first.get_attribute("src"))
    assert sr == 44100 and y.shape == (5 * 44100,)
    keep(page, screenshot_dir, "l2i")

    # Uploads: a WAV is explained, a text file and an oversized file are refused with a message.
    wav = tmp_path / "my recording.wav"
    wav.write_bytes((shared_data / "fsdd" / "recordings" / "4_lucas_8.wav").read_bytes())
    page.set_input_files("#upload-input", str(wav))
    page.locator("#upload-btn").click()
    expect(page.locator("#message")).to_contain_text("my recording.wav: ", timeout=60_000)
    expect(page.locator("body")).to_have_attribute("data-explained", re.compile("^upload:[0-9a-f]{32}$"))
    expect(page.locator("#result-title")).to_contain_text("my recording.wav")
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 50)
    page.set_input_files("#upload-input", str(text))
    page.locator("#upload-btn").click()
    expect(page.locator("#message")).to_have_attribute("data-kind", "error")
    expect(page.locator("#message")).to_contain_text("notes.txt")
    expect(page.locator("#message")).to_contain_text("WAV, FLAC or OGG")
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (TEST_UPLOAD_CAP + 1024))
    page.set_input_files("#upload-input", str(big))
    page.locator("#upload-btn").click()
    expect(page.locator("#message")).to_contain_text("over the limit of 2.0 MB", timeout=30_000)
    assert not page.problems, page.problems


def test_screenshot_script_writes_every_page(live_server, browser, workspace, tmp_path):
    """``python -m audioapp.screenshots``'s browser part on the test app: four pages, nothing edited."""
    from PIL import Image

    from audioapp.screenshots import take

    before = workspace.current.id
    paths = take(live_server, tmp_path, prototype=0, clip="1-100032-A-0", tau=0.1, with_l2i=True, browser=browser,
                 log=lambda message: None)
    assert [p.name for p in paths] == ["explore.png", "explore_tsne.png", "train.png", "l2i.png"]
    for path in paths:
        width, height = Image.open(path).size
        assert width == 1280 and height >= 860 and path.stat().st_size > 10_000, path.name
    assert workspace.current.id == before  # screenshots edit nothing
