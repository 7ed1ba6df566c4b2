"""Screenshots of the web application's pages, with your own trained models (``docs/screenshots/``).

    python -m audioapp.screenshots --model RUN/model.keras --l2i-model L2I_RUN --data-dir DIR \
        --output docs/screenshots [--prototype 0] [--clip 1-21934-A-38] [--tau 0.1] [--retrain-epochs 1]

Serves the app on a free 127.0.0.1 port (the options of ``python -m audioapp``), opens it in
headless Chromium (Debian's ``chromium`` or ``--chromium PATH``, driven by Playwright), and
writes ``explore.png`` (PCA map, a prototype selected), ``explore_tsne.png``, ``train.png``
(the test-fold evaluation, and a retrain when ``--retrain-epochs`` is given) and, with
``--l2i-model``, ``l2i.png`` (an interpreted test clip at ``--tau``). Nothing is edited or saved.
"""
import argparse
import io
import shutil
import sys
from pathlib import Path

from PIL import Image

from audiodata import cli as argtypes
from audiodata.errors import AudioDataError

from audioapp import cli
from audioapp.server import serve_in_thread

#: Milliseconds to wait for a page's first content (decoding the prototypes, t-SNE, an interpretation).
READY_MS = 600_000


def save_screenshot(page, path, colors=128):
    """Full-page screenshot of a Playwright ``page`` as a ``colors``-colour PNG (small enough to keep in git).

    Waits for every ``<img>`` of the page to be decoded first. Returns the path.
    """
    path = Path(path)
    page.locator("img").evaluate_all("images => Promise.all(images.map(i => i.decode().catch(() => null)))")
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def take(base_url, output, chromium=None, prototype=0, clip=None, tau=0.1, retrain_epochs=0, with_l2i=False,
         browser=None, log=print):
    """Open the pages at ``base_url`` and write their screenshots into ``output``; returns the paths.

    ``browser``: a Playwright browser already launched (one sync Playwright per thread); otherwise
    ``chromium`` (the executable) is launched headless for the occasion.
    """
    if browser is not None:
        return _take(browser, base_url, output, prototype, clip, tau, retrain_epochs, with_l2i, log)
    # Playwright is a test extra (pip install -e '.[test]'), not a dependency of the app: imported when used.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            return _take(browser, base_url, output, prototype, clip, tau, retrain_epochs, with_l2i, log)
        finally:
            browser.close()


def _take(browser, base_url, output, prototype, clip, tau, retrain_epochs, with_l2i, log):
    from playwright.sync_api import expect  # a test extra, as in take()

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=base_url)
    page = context.new_page()

    def shot(name):
        written.append(save_screenshot(page, output / name))
        log(f"wrote {written[-1]}")

    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=READY_MS)
    page.locator(f'#map .prototype[data-index="{int(prototype)}"]').dispatch_event("click")
    expect(page.locator("#selection-title")).to_contain_text(f"Prototype {int(prototype)}")
    shot("explore.png")
    page.select_option("#projection", "tsne")
    expect(page.locator("#map .axis")).to_contain_text("t-SNE", timeout=READY_MS)
    shot("explore_tsne.png")

    page.goto("/train")
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=READY_MS)
    if retrain_epochs:
        page.fill("#epochs", str(int(retrain_epochs)))
        page.locator("#retrain-btn").click()
        expect(page.locator("body")).to_have_attribute("data-job", "done", timeout=READY_MS * 6)
    else:
        page.locator("#evaluate-btn").click()
        expect(page.locator("#accuracy-table tr").first).to_be_visible(timeout=READY_MS)
    shot("train.png")

    if with_l2i:
        page.goto("/l2i")
        expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=READY_MS)
        if clip:
            page.select_option("#clip-select", clip)
        chosen = page.locator("#clip-select").input_value()
        page.locator("#explain-btn").click()
        expect(page.locator("body")).to_have_attribute("data-explained", f"clip:{chosen}", timeout=READY_MS)
        page.fill("#tau", f"{float(tau):g}")
        expect(page.locator("#interpretation-audio")).to_have_attribute(
            "src", f"/audio/l2i/interpretation?source=clip%3A{chosen}&tau={float(tau):g}", timeout=READY_MS)
        shot("l2i.png")
    context.close()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--output", required=True, help="folder of the PNG files (e.g. docs/screenshots)")
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: chromium on the PATH)")
    parser.add_argument("--prototype", type=argtypes.non_negative_int, default=0, help="prototype selected on the map")
    parser.add_argument("--clip", default=None, help="test clip interpreted on the L2I page (default: the first)")
    parser.add_argument("--tau", type=argtypes.fraction(include_0=True), default=0.1,
                        help="relevance threshold on the L2I page, in [0, 1)")
    parser.add_argument("--retrain-epochs", type=argtypes.non_negative_int, default=0,
                        help="retrain this many epochs before train.png (0: none)")
    own, rest = parser.parse_known_args(argv)
    args = cli.parse_args(rest + ["--port", "0"], prog="python -m audioapp.screenshots")
    chromium = own.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("error: Chromium not found: install Debian's chromium or pass --chromium PATH", file=sys.stderr)
        return 2
    try:
        app = cli.build(args)
    except AudioDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with serve_in_thread(app, name="audioapp-screenshots") as url:
        take(url, own.output, chromium, own.prototype, own.clip, own.tau, own.retrain_epochs,
             with_l2i=bool(args.l2i_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
