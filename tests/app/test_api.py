"""The web application's back end and HTTP API, without a browser: edits, saving, safety rules.

The session :func:`workspace` is shared with the browser tests, so every test here leaves it
at the version it found (edits are undone).
"""
import hashlib
import http.client
import io
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

import apnet  # noqa: F401  (registers the layers for loading)
from audioapp import BackgroundJob, create_app
from audioapp.errors import Conflict, NotFound
from audioapp.files import audio_file, inside
from audioapp.server import url_of
from audiodata.errors import ParameterError
from tests.app.conftest import TEST_UPLOAD_CAP

REPO = Path(__file__).resolve().parents[2]
# Starlette >= 1 prefers the httpx2 fork for its TestClient; httpx works with every version.
pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient. is deprecated")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def client(workspace, explorer):
    from starlette.testclient import TestClient

    app = create_app(workspace, explorer, max_upload_bytes=TEST_UPLOAD_CAP)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def train_clip(workspace):
    return workspace.map_ids[0]


def post(client, path, payload=None, **kwargs):
    return client.post(path, json={} if payload is None else payload, **kwargs)


# ----------------------------------------------------------------------------- pages and data
def test_pages_use_only_local_assets(client):
    for page in ("/", "/train", "/l2i"):
        response = client.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert sources and all(s.startswith("/") for s in sources), sources  # no CDN, no other host
        for source in sources:
            assert client.get(source).status_code == 200, source


def test_status_map_and_details(client, workspace, train_clip):
    status = client.get("/api/status").json()
    assert status["dataset"] == "fsdd" and status["fold"] == 1 and status["n_prototypes"] == 10
    assert status["classes"] == [str(d) for d in range(10)] and status["l2i"] is True
    assert status["max_upload_bytes"] == TEST_UPLOAD_CAP
    pca = client.get(f"/api/map?method=pca&version={status['version']}").json()
    assert len(pca["instances"]) == 300 and len(pca["prototypes"]) == 10
    assert len(pca["explained_variance"]) == 2 and sum(pca["explained_variance"]) <= 1.0
    labels = workspace.map_labels
    assert [p["label"] for p in pca["instances"]] == labels.tolist()
    # PCA: the prototypes are projected on the instances' principal components.
    from apnet.inspection import prototype_weights

    latents = workspace._latent_matrix(workspace.current)
    protos = prototype_weights(workspace.current.model).reshape(10, -1)
    centred = latents - latents.mean(axis=0)
    component = np.linalg.svd(centred, full_matrices=False)[2][0]
    first = (protos - latents.mean(axis=0)) @ component
    np.testing.assert_allclose(np.abs([p["x"] for p in pca["prototypes"]]), np.abs(first), rtol=1e-3, atol=1e-3)
    tsne = client.get("/api/map?method=tsne").json()
    assert len(tsne["instances"]) == 300 and len(tsne["prototypes"]) == 10 and tsne["perplexity"] == 30.0
    assert client.get("/api/map?method=umap").status_code == 400

    info = client.get(f"/api/instance/{train_clip}").json()
    assert info["split"] == "train" and info["convertible"] and len(info["probabilities"]) == 10
    assert abs(sum(info["probabilities"]) - 1.0) < 1e-3 and len(info["closest_prototypes"]) == 3
    proto = client.get("/api/prototype/2").json()
    assert proto["index"] == 2 and len(proto["w_row"]) == 10 and proto["origin"] == "trained"
    assert client.get(f"/api/instance/{proto['nearest_clip_id']}").status_code == 200
    assert client.get("/api/prototype/10").status_code == 404
    assert client.get("/api/instance/not_a_clip").status_code == 404
    assert client.get("/api/prototype/1?version=99").status_code == 404


def test_media_endpoints(client, workspace, train_clip):
    original = client.get(f"/audio/clip/{train_clip}")
    assert original.status_code == 200 and original.headers["content-type"] == "audio/wav"
    assert original.content == workspace.clip_path(train_clip).read_bytes()
    for path in (f"/audio/reconstruction/{train_clip}?version=0", "/audio/prototype/0?version=0"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav", path
        y, sr = sf.read(io.BytesIO(response.content))
        assert sr == 8000 and y.shape == (8000,) and 0.85 < np.abs(y).max() <= 0.91  # 1 s, peak 0.9
    for path in (f"/image/clip/{train_clip}", f"/image/reconstruction/{train_clip}?version=0",
                 "/image/prototype/3?version=0"):
        response = client.get(path)
        assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n", path
    assert client.get("/image/prototype/3?version=x").status_code == 400


# ----------------------------------------------------------------------------- edits
def test_delete_convert_undo(client, workspace, train_clip):
    start = workspace.current.id
    before = workspace.current.model
    response = post(client, "/api/delete", {"indices": [1, 4]})
    assert response.status_code == 200 and response.json()["n_prototypes"] == 8
    deleted = workspace.current
    kept = [0, 2, 3, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(deleted.model.get_layer("dense").get_weights()[0],
                                  before.get_layer("dense").get_weights()[0][kept])
    # the decoded prototypes derived from the parent equal a full decoding pass
    from apnet.inspection import decode_prototypes

    full = decode_prototypes(deleted.model, workspace._train, batch_size=256, scaler=workspace.scaler)
    derived = workspace.decoded(deleted.id)
    np.testing.assert_array_equal(derived["nearest"], full["nearest"])
    np.testing.assert_allclose(derived["mel"], full["mel"], atol=1e-5)
    np.testing.assert_array_equal(derived["classes"], full["classes"])

    response = post(client, "/api/convert", {"clip_id": train_clip})
    assert response.status_code == 200 and response.json() == {"version": workspace.current.id, "n_prototypes": 9,
                                                               "index": 8}
    converted = workspace.current
    from apnet.inspection import encoder_model

    latent = encoder_model(before).predict_on_batch(workspace.scaled(train_clip))[0][0]
    np.testing.assert_allclose(converted.model.get_layer("prototypes").get_weights()[0][8], latent, atol=1e-6)
    w_row = converted.model.get_layer("dense").get_weights()[0][8]
    assert w_row.argmax() == workspace.clip(train_clip)["label"]
    assert converted.origins[-1] == f"instance {train_clip}"
    proto = client.get("/api/prototype/8").json()
    assert proto["nearest_clip_id"] == train_clip and proto["nearest_distance"] < 1e-2

    test_clip = next(c for c, i in workspace._clips.items() if i["split"] == "test")
    refused = post(client, "/api/convert", {"clip_id": test_clip})
    assert refused.status_code == 400 and "only training instances" in refused.json()["error"]
    assert post(client, "/api/delete", {"indices": list(range(9))}).status_code == 400
    assert post(client, "/api/delete", {"indices": [9]}).status_code == 400
    assert post(client, "/api/delete", {"indices": "1"}).status_code == 400
    assert post(client, "/api/convert", {}).status_code == 400

    history = client.get("/api/status").json()["history"]
    assert [h["n_prototypes"] for h in history[-3:]] == [10, 8, 9]
    assert "converted instance" in history[-1]["description"]
    assert post(client, "/api/undo").json()["n_prototypes"] == 8
    assert post(client, "/api/undo").json()["n_prototypes"] == 10
    assert workspace.current.id == start and workspace.current.model is before
    if start == 0:
        response = post(client, "/api/undo")
        assert response.status_code == 409 and "nothing to undo" in response.json()["error"]


def test_evaluate_matches_an_independent_count(client, workspace):
    result = post(client, "/api/evaluate", {"version": 0}).json()
    confusion = np.array(result["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == result["n_test"] == 500
    model = keras.models.load_model(workspace.model_path)
    x = workspace.scaler.transform(workspace.data.features[workspace.data.rows["test"]])
    predicted = model.predict(x, verbose=0)[0].argmax(axis=1)
    labels = workspace.data.targets["test"].argmax(axis=1)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert np.trace(confusion) / 500 == pytest.approx(result["accuracy"])


# ----------------------------------------------------------------------------- safety
TRAVERSALS = [
    "/audio/clip/../../../../../../etc/passwd",
    "/audio/clip/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/audio/clip/%2Fetc%2Fpasswd",
    "/audio/clip/%2e%2e%2f%2e%2e%2fsetup.py",
    "/image/clip/..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/../../../setup.py",
    "/static/..%2F..%2F..%2Fsetup.py",
    "/static/%2e%2e/%2e%2e/%2e%2e/setup.py",
    "/static//etc/passwd",
    "/audio/prototype/..%2F..%2Fsetup.py",
    "/audio/l2i/input?source=clip:../../../../etc/passwd",
    "/audio/l2i/input?source=clip:/etc/passwd",
    "/audio/l2i/input?source=upload:../../../../etc/passwd",
    "/audio/l2i/input?source=/etc/passwd",
    "/audio/l2i/..%2F..%2Fsetup.py?source=clip:x",
    "/image/l2i/input?source=upload:..%2F..%2Fsetup.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(live_server, path):
    """Raw requests (no client-side normalisation of ``..``) never reach a file outside the app's folders."""
    host, port = live_server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status in (400, 404), (path, response.status)
    assert b"root:" not in body and b"setuptools" not in body


def test_files_outside_the_dataset_are_refused(workspace, tmp_path, train_clip, monkeypatch):
    root = workspace.data_root
    assert inside(root, root / "recordings" / "x.wav") and not inside(root, root / ".." / "x.wav")
    assert not inside(root, "/etc/passwd") and not inside(root, "../../etc/passwd")
    assert inside(root, "recordings/../recordings/a.wav")
    with pytest.raises(NotFound, match="outside"):
        audio_file(root / ".." / "fsdd_copy" / "a.wav", [root])
    with pytest.raises(NotFound, match="not an audio file"):
        audio_file(root / "README.md", [root])
    # Defence in depth: a clip whose table entry points elsewhere is not served.
    elsewhere = tmp_path / "elsewhere.wav"
    sf.write(elsewhere, np.zeros(800, np.float32), 8000)
    monkeypatch.setitem(workspace._clips[train_clip], "path", str(elsewhere))
    with pytest.raises(NotFound, match="outside the dataset"):
        workspace.clip_path(train_clip)


def test_uploads_capped_and_checked(client, explorer, shared_data):
    wav = (shared_data / "fsdd" / "recordings" / "7_theo_3.wav").read_bytes()
    ok = client.post("/api/l2i/upload", content=wav, headers={"X-Filename": "seven.wav",
                                                               "Content-Type": "application/octet-stream"})
    assert ok.status_code == 201, ok.text
    upload = ok.json()
    assert upload["source"].startswith("upload:") and upload["original_sr"] == 8000 and upload["channels"] == 1
    explained = client.get("/api/l2i/explain", params={"source": upload["source"], "tau": "0.2"}).json()
    assert explained["name"] == "seven.wav" and len(explained["relevance"]) == 6 and explained["tau"] == 0.2
    audio = client.get("/audio/l2i/input", params={"source": upload["source"]})
    y, sr = sf.read(io.BytesIO(audio.content))
    assert audio.status_code == 200 and sr == 44100 and y.shape == (5 * 44100,)
    token = upload["source"].split(":")[1]
    stored = list(explorer.upload_dir.glob(f"{token}.*"))
    assert len(stored) == 1 and inside(explorer.cache_dir, stored[0])

    text = client.post("/api/l2i/upload", content=b"hello, this is not audio\n" * 40,
                       headers={"X-Filename": "notes.txt", "Content-Type": "application/octet-stream"})
    assert text.status_code == 400
    assert "notes.txt" in text.json()["error"] and "WAV, FLAC or OGG" in text.json()["error"]
    disguised = client.post("/api/l2i/upload", content=b"RIFF\x00\x00\x00\x00WAVEjunk" * 10,
                            headers={"X-Filename": "fake.wav", "Content-Type": "application/octet-stream"})
    assert disguised.status_code == 400 and "fake.wav" in disguised.json()["error"]
    before = sorted(p.name for p in explorer.upload_dir.iterdir())
    big = client.post("/api/l2i/upload", content=b"\x00" * (TEST_UPLOAD_CAP + 1),
                      headers={"X-Filename": "big.wav", "Content-Type": "application/octet-stream"})
    assert big.status_code == 413 and "over the limit of 2.0 MB" in big.json()["error"]
    assert sorted(p.name for p in explorer.upload_dir.iterdir()) == before  # refused files are not kept
    empty = client.post("/api/l2i/upload", content=b"", headers={"X-Filename": "empty.wav"})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]


def test_only_the_last_uploads_are_kept(explorer, shared_data, monkeypatch):
    import audioapp.l2i_explorer as module

    monkeypatch.setattr(module, "MAX_UPLOADS", 2)
    wav = (shared_data / "fsdd" / "recordings" / "1_theo_1.wav").read_bytes()
    first, *_ = [explorer.add_upload(f"clip{i}.wav", wav)["source"] for i in range(3)]
    token = first.split(":")[1]
    assert not list(explorer.upload_dir.glob(f"{token}.*"))
    with pytest.raises(NotFound, match="last 2 uploads"):
        explorer.explain(first)


def test_uploads_over_the_cap_are_refused_while_streaming(client):
    """A body without Content-Length (chunked) is cut off at the cap as well."""
    def chunks():
        for _ in range(3 * TEST_UPLOAD_CAP // 2**16):
            yield b"\x00" * 2**16

    response = client.post("/api/l2i/upload", content=chunks(), headers={"X-Filename": "stream.wav"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert re.search(r"upload of at least [\d.]+ MB is over the limit of 2\.0 MB", response.json()["error"])


def test_requests_from_other_sites_are_refused(client):
    evil = post(client, "/api/undo", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-origin" in evil.json()["error"]
    form = client.post("/api/delete", content=b"indices=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400 and "application/json" in form.json()["error"]
    assert client.get("/api/status", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert client.get("/api/status", headers={"Host": "localhost:8050"}).status_code == 200


def test_one_retrain_at_a_time(workspace, explorer, monkeypatch):
    """A second retrain request while one runs gets 409 and a message; edits wait for it too."""
    from starlette.testclient import TestClient

    release, started = threading.Event(), threading.Event()

    def slow_retrain(epochs, report, cancelled):
        report(progress=0.25, epoch=1)
        started.set()
        release.wait(30)
        return {"epochs": epochs}

    monkeypatch.setattr(workspace, "retrain", slow_retrain)
    job = BackgroundJob()
    app = create_app(workspace, explorer, job=job)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        first = post(client, "/api/retrain", {"epochs": 2})
        assert first.status_code == 202 and first.json()["status"] == "running"
        assert started.wait(10)
        second = post(client, "/api/retrain", {"epochs": 1})
        assert second.status_code == 409
        assert "already running (25 % done" in second.json()["error"] and "only one at a time" in second.json()["error"]
        assert post(client, "/api/delete", {"indices": [0]}).status_code == 409
        assert client.get("/api/retrain").json()["progress"] == 0.25
        release.set()
        assert job.wait(10)["status"] == "done" and job.status()["result"] == {"epochs": 2}
        assert post(client, "/api/retrain", {"epochs": 0}).status_code == 400
        assert post(client, "/api/retrain", {"epochs": "many"}).status_code == 400
        assert post(client, "/api/retrain/cancel").status_code == 409  # nothing to cancel


def test_retrain_refuses_edits_and_a_second_retrain_directly(workspace):
    workspace.busy = "a retrain of version 0 (1 epoch(s)) is running"
    try:
        with pytest.raises(Conflict, match="edits are locked"):
            workspace.delete_prototypes([0])
        with pytest.raises(Conflict, match="is running"):
            workspace.retrain(1)
    finally:
        workspace.busy = None
    with pytest.raises(ParameterError, match="epochs"):
        workspace.retrain(0)


def test_retrain_can_be_cancelled(workspace):
    """A cancelled retrain stops after its first batch and pushes nothing."""
    cancelled, reports = threading.Event(), []
    cancelled.set()
    version = workspace.current.id
    result = workspace.retrain(1, report=lambda **kw: reports.append(kw), cancelled=cancelled)
    assert result["cancelled"] is True and result["version"] == version
    assert workspace.current.id == version and workspace.busy is None
    assert any(r.get("batch") == 1 for r in reports) and not any(r.get("batch") == 2 for r in reports)


def test_a_diverging_retrain_pushes_no_version(workspace, monkeypatch):
    """A NaN loss stops the retrain with TrainingDivergedError; the NaN model never becomes a version."""
    from audioruns.errors import TrainingDivergedError

    version = workspace.current.id
    monkeypatch.setitem(workspace.config, "learning_rate", 1e30)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        workspace.retrain(2)
    assert workspace.current.id == version and workspace.busy is None


def test_background_job_reports_failures():
    job = BackgroundJob()

    def broken(report, cancelled):
        raise ValueError("bad data")

    job.start("broken", broken)
    state = job.wait(10)
    assert state["status"] == "failed" and "ValueError: bad data" in state["error"]


def test_model_file_is_never_overwritten(client, workspace, apnet_run):
    digest, mtime = sha256(apnet_run), apnet_run.stat().st_mtime_ns
    post(client, "/api/delete", {"indices": [0]})
    try:
        first = post(client, "/api/save").json()
        taken = apnet_run.parent / f"model_edited_{int(Path(first['path']).stem.split('_')[-1]) + 1}.keras"
        taken.write_bytes(b"someone else's file")
        post(client, "/api/delete", {"indices": [0]})  # a new version (saving the same one again returns its file)
        second = workspace.save()
    finally:
        post(client, "/api/undo")
        post(client, "/api/undo")
    paths = [Path(first["path"]), Path(second["path"])]
    assert paths[0] != apnet_run and paths[0].parent == apnet_run.parent and paths[0].name.startswith("model_edited_")
    assert paths[1].name == f"model_edited_{int(paths[0].stem.split('_')[-1]) + 2}.keras"  # skipped the taken name
    assert taken.read_bytes() == b"someone else's file"
    assert sha256(apnet_run) == digest and apnet_run.stat().st_mtime_ns == mtime
    saved = keras.models.load_model(paths[0])
    assert saved.get_layer("prototypes").n_prototypes == 9
    summary = json.loads(Path(first["summary"]).read_text())
    assert summary["source_model"] == str(apnet_run) and "deleted prototype(s) [0]" in summary["edits"][-1]
    assert not list(apnet_run.parent.glob(".model_edited_*"))  # no temporary file left
    # The publishing step itself refuses an existing name, the loaded model included.
    from audioapp.saving import publish as _publish

    temporary = apnet_run.parent / "temporary.bin"
    temporary.write_bytes(b"new")
    with pytest.raises(FileExistsError):
        _publish(temporary, apnet_run)
    temporary.unlink()
    assert sha256(apnet_run) == digest


def test_save_into_another_folder_makes_a_loadable_run(workspace, tmp_path, shared_data, app_feature_cache):
    from audioapp import Workspace

    saved = workspace.save(tmp_path / "edited")
    folder = Path(saved["path"]).parent
    assert {p.name for p in folder.iterdir()} >= {"model_edited_1.keras", "model_edited_1.json", "config.yaml",
                                                   "scaler.json", "results.json"}
    reloaded = Workspace(saved["path"], data_dir=shared_data, cache_dir=app_feature_cache, max_points=20)
    assert reloaded.dataset_name == "fsdd" and reloaded.fold == 1 and reloaded.n_prototypes() == saved["n_prototypes"]
    with pytest.raises(ParameterError, match="trained on dataset fsdd"):
        Workspace(saved["path"], dataset="esc10", data_dir=shared_data, cache_dir=app_feature_cache)


def test_cli_serves_on_localhost_and_prints_the_url(apnet_run, shared_data, app_feature_cache, tmp_path):
    import os
    import urllib.request

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "audioapp", "--model", str(apnet_run), "--dataset", "fsdd", "--fold", "1",
               "--data-dir", str(shared_data), "--cache-dir", str(app_feature_cache), "--port", "0",
               "--max-points", "50", "--work-dir", str(tmp_path / "work")]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stdout:
            match = re.search(r"ready: (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url is not None, process.stderr.read()[-3000:]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        with urllib.request.urlopen(url + "api/status", timeout=30) as response:
            assert json.loads(response.read())["n_prototypes"] == 10
    finally:
        process.terminate()
        process.wait(30)
    assert url_of("::1", 80) == "http://[::1]:80/"


def test_cli_refuses_a_fold_the_model_was_not_trained_on(apnet_run, shared_data, app_feature_cache, capsys):
    from audioapp.cli import main

    argv = ["--model", str(apnet_run), "--fold", "2", "--data-dir", str(shared_data), "--cache-dir",
            str(app_feature_cache), "--port", "0"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--fold 2: the model" in error and "trained on fold 1" in error
    assert main(argv[:2] + argv[4:] + ["--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err


def test_pages_show_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    """Pages (and so screenshots) never show the machine's absolute path of a folder under the cwd."""
    from audioapp.files import shown_path as _shown

    inside = tmp_path / "results" / "apnet" / "fsdd"
    monkeypatch.chdir(tmp_path)
    assert _shown(inside) == str(Path("results") / "apnet" / "fsdd")
    outside = tmp_path.parent / "elsewhere"
    assert _shown(outside) == str(outside)
