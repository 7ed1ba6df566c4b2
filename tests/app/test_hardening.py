"""Issue 12, "nothing silently wrong", on the web application: each test reproduces a fault of the old code.

* a small FLAC that decodes to an hour of audio (decompression bomb) uploaded to the L2I page;
* a truncated WAV uploaded (accepted silently before);
* a symbolic link inside the data folder pointing out of it, at start-up and re-pointed later;
* JSON bodies nested deeply, with out-of-range numbers, strings or floats for integers;
* a loop of saves (one file per save before).

The session :func:`workspace` and :func:`explorer` are shared with the other app tests: every
test leaves them as it found them (edits undone, attributes restored by ``monkeypatch``).
"""
import io
import json
import resource
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioapp import create_app
from tests.app.conftest import TEST_UPLOAD_CAP
from tests.audio_faults import silence_flac, traced_peak

pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient. is deprecated")
UPLOAD_HEADERS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def client(workspace, explorer):
    from starlette.testclient import TestClient

    app = create_app(workspace, explorer, max_upload_bytes=TEST_UPLOAD_CAP)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def upload(client, data, name):
    return client.post("/api/l2i/upload", content=data, headers={**UPLOAD_HEADERS, "X-Filename": name})


# ----------------------------------------------------------------------------- 1. decompression bomb
@pytest.mark.parametrize("unknown_length", [False, True], ids=["header", "streamed"])
def test_an_hour_of_flac_is_refused_before_decoding(client, explorer, tmp_path, unknown_length):
    """0.5 MB of FLAC decoding to 1 h (635 MB of float32): 413 and a message, memory far below the decoded size.

    The old server decoded it whole (and answered 201); a streamed FLAC (no length in its
    header) is counted while decoding and stopped at the limit.
    """
    bomb = silence_flac(tmp_path / "hour.flac", 3600, unknown_length=unknown_length).read_bytes()
    assert len(bomb) < TEST_UPLOAD_CAP  # passes the upload size cap: only its decoded length is too large
    decoded_bytes = 3600 * 44100 * 4
    before_files = sorted(p.name for p in explorer.upload_dir.iterdir())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak, response = traced_peak(lambda: upload(client, bomb, "hour.flac"))
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    print(f"bomb upload ({'streamed' if unknown_length else 'header'}): traced peak {peak / 2**20:.1f} MB, "
          f"peak RSS growth {rss_growth / 2**20:.1f} MB, decoded size {decoded_bytes / 2**20:.0f} MB")
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    limit = explorer.max_duration
    assert limit == 4 * explorer.run.duration == 20.0
    assert "hour.flac" in error and f"at most {limit:g} s" in error and "cut the file" in error
    if not unknown_length:
        assert "lasts 3600.0 s (according to its header)" in error
    assert peak < 40 * 2**20 < decoded_bytes / 10, peak  # the upload itself is 0.5 MB
    assert rss_growth < 200 * 2**20, rss_growth
    assert sorted(p.name for p in explorer.upload_dir.iterdir()) == before_files  # the file was not kept


def test_a_real_clip_is_still_explained_as_load_clip_reads_it(client, explorer, shared_data):
    """The header-first, window-only decoding gives exactly the clip :func:`l2i.pipeline.load_clip` gives."""
    from l2i.pipeline import load_clip

    path = shared_data / "ESC-50" / "audio" / "1-100032-A-0.flac"
    response = upload(client, path.read_bytes(), "dog.flac")
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["seconds"], result["original_sr"], result["channels"], result["warnings"]) == (5.0, 44100, 1, [])
    token = result["source"].split(":")[1]
    expected, _ = load_clip(path, explorer.run.sr, explorer.run.duration,
                            peak_normalize=explorer.run.logmag_params.get("peak_normalize"))
    np.testing.assert_array_equal(explorer._uploads[token]["y"], expected)
    # A clip twice the clip length is within the 4x limit; only its first 5 s are analysed.
    y, sr = sf.read(str(path), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([y, y]), sr, format="FLAC")
    longer = upload(client, buffer.getvalue(), "dog twice.flac")
    assert longer.status_code == 201 and longer.json()["seconds"] == 10.0, longer.text
    assert client.get("/api/l2i/explain", params={"source": longer.json()["source"]}).status_code == 200


# ----------------------------------------------------------------------------- 2. truncated WAV
def test_a_truncated_wav_upload_is_reported(client, shared_data):
    """A real clip cut to 1000 of its 4812 bytes: accepted, with a warning giving both lengths (was silent)."""
    data = (shared_data / "fsdd" / "recordings" / "0_george_0.wav").read_bytes()
    assert len(data) == 4812
    with pytest.warns(UserWarning, match="2384 frames"):  # AudioFileWarning, to the server log as well
        response = upload(client, data[:1000], "cut.wav")
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["seconds"] == pytest.approx(478 / 8000, abs=1e-3)
    (warning,) = result["warnings"]
    assert "cut.wav is truncated" in warning
    assert "0.298 s (2384 frames)" in warning and "0.060 s (478 frames)" in warning
    intact = upload(client, data, "whole.wav")
    assert intact.status_code == 201 and intact.json()["warnings"] == []


# ----------------------------------------------------------------------------- 3. symbolic links
def test_links_out_of_the_data_folder_are_refused_at_every_request(client, workspace, explorer, tmp_path,
                                                                  shared_data, monkeypatch):
    """A link inside (a copy of) the dataset folder pointing outside: 404 at start-up and once re-pointed later."""
    from audioapp.rendering import LRUCache

    clip_id = workspace.map_ids[0]
    source = Path(workspace.clip(clip_id)["path"])
    data_copy = tmp_path / "fsdd"
    (data_copy / "recordings").mkdir(parents=True)
    inside_copy = data_copy / "recordings" / source.name
    inside_copy.write_bytes(source.read_bytes())
    secret = tmp_path / "outside" / "secret.wav"
    secret.parent.mkdir()
    secret.write_bytes(b"RIFF secret bytes outside the data folder")
    link = data_copy / "recordings" / "linked.wav"
    link.symlink_to(secret)
    monkeypatch.setattr(workspace, "data_root", data_copy)
    monkeypatch.setitem(workspace._clips[clip_id], "path", str(link))

    refused = client.get(f"/audio/clip/{clip_id}")
    assert refused.status_code == 404 and b"secret" not in refused.content
    assert "outside the dataset" in refused.json()["error"] and str(secret) not in refused.json()["error"]
    link.unlink()
    link.symlink_to(inside_copy)  # a link that stays inside is served
    served = client.get(f"/audio/clip/{clip_id}")
    assert served.status_code == 200 and served.content == source.read_bytes()
    for target in (secret, Path("/etc/hostname")):  # re-pointed after start-up
        link.unlink()
        link.symlink_to(target)
        again = client.get(f"/audio/clip/{clip_id}")
        assert again.status_code == 404, (target, again.content[:80])
        assert again.headers["content-type"].startswith("application/json")
    # A link named .wav to a text file inside the folder is not served as audio either.
    notes = data_copy / "notes.txt"
    notes.write_text("not audio")
    link.unlink()
    link.symlink_to(notes)
    assert client.get(f"/audio/clip/{clip_id}").status_code == 404

    # The L2I page's test clips: the same rule, checked when the clip is read.
    l2i_id = next(iter(explorer._clips))
    esc = tmp_path / "ESC-50"
    (esc / "audio").mkdir(parents=True)
    l2i_link = esc / "audio" / "linked.flac"
    outside_flac = tmp_path / "outside" / "clip.flac"
    outside_flac.write_bytes(Path(explorer._clips[l2i_id]["path"]).read_bytes())
    l2i_link.symlink_to(outside_flac)
    monkeypatch.setattr(explorer, "_data_root", str(esc))
    monkeypatch.setattr(explorer, "_explanations", LRUCache(16))
    monkeypatch.setitem(explorer._clips[l2i_id], "path", str(l2i_link))
    response = client.get("/api/l2i/explain", params={"source": f"clip:{l2i_id}"})
    assert response.status_code == 404 and "outside the dataset" in response.json()["error"]


# ----------------------------------------------------------------------------- 4. JSON edges
JSON_ENDPOINTS = ["/api/delete", "/api/convert", "/api/undo", "/api/evaluate", "/api/retrain",
                  "/api/retrain/cancel", "/api/save"]


def post_raw(client, path, raw):
    return client.post(path, content=raw, headers={"Content-Type": "application/json"})


@pytest.fixture
def no_retrain(workspace, monkeypatch):
    """Record retrain calls instead of training (a bad epochs value accepted would start one)."""
    calls = []
    monkeypatch.setattr(workspace, "retrain", lambda epochs, report, cancelled: calls.append(epochs) or {})
    return calls


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_every_json_endpoint_refuses_deep_nesting_and_unknown_fields(client, workspace, no_retrain, path):
    version = workspace.current.id
    deep = post_raw(client, path, b'{"x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")  # 60 kB < the 64 kB cap
    assert deep.status_code == 400, deep.text  # was 500 (RecursionError)
    assert "nests arrays/objects 30001 deep" in deep.json()["error"]
    unknown = post_raw(client, path, b'{"epoch": 3}')  # a misspelt field was ignored
    assert unknown.status_code == 400 and "unknown field(s) 'epoch'" in unknown.json()["error"]
    assert workspace.current.id == version and no_retrain == []


@pytest.mark.parametrize("raw, message", [
    (b'{"version": 1e400}', "outside the range of a float"),  # was 500 (OverflowError)
    (b'{"version": -1e400}', "outside the range of a float"),
    (b'{"version": NaN}', "NaN, which is not valid JSON"),
    (b'{"version": Infinity}', "Infinity, which is not valid JSON"),
    (b'{"version": 0.5}', "a number with a fraction or exponent"),  # was evaluated as version 0
    (b'{"version": "0"}', "received a string"),
    (b'{"version": true}', "received a boolean"),
    (b'{"version": -1}', "version must be an integer >= 0"),
    (b'{"version": 0, "version": 1}', "gives the key 'version' twice"),
])
def test_evaluate_accepts_only_an_integer_version(client, raw, message):
    response = post_raw(client, "/api/evaluate", raw)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("epochs, message", [
    (" 2 ", "received a string"),  # was accepted as 2
    ("2", "received a string"),
    (2.0, "a number with a fraction or exponent"),
    (True, "received a boolean"),
    (1e400, "outside the range of a float"),
    ([2], "received an array"),
    (None, "received null"),
])
def test_retrain_accepts_only_an_integer_epochs(client, no_retrain, epochs, message):
    raw = b'{"epochs": 1e400}' if epochs == 1e400 else json.dumps({"epochs": epochs}).encode()
    response = post_raw(client, "/api/retrain", raw)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"] and no_retrain == []


def test_edit_fields_are_checked(client, workspace, no_retrain):
    version = workspace.current.id
    for body, message in (({"indices": [1.0]}, "indices must be a JSON integer"),
                          ({"indices": [True]}, "a boolean"),
                          ({"indices": ["1"]}, "a string"),
                          ({"indices": []}, "non-empty"),
                          ({}, "lacks 'indices'")):
        response = client.post("/api/delete", json=body)
        assert response.status_code == 400 and message in response.json()["error"], (body, response.text)
    for body in ({"clip_id": 7}, {"clip_id": ["a"]}, {"clip_id": ""}):
        response = client.post("/api/convert", json=body)
        assert response.status_code == 400 and "clip_id must be a non-empty string" in response.json()["error"]
    for epochs in (0, 501, 10**30):
        response = client.post("/api/retrain", json={"epochs": epochs})
        assert response.status_code == 400 and "epochs must be an integer [1, 500]" in response.json()["error"]
    assert workspace.current.id == version and no_retrain == []
    assert client.get("/api/map?version=%C2%B2").status_code == 400  # "²" is a Unicode digit, not a version


# ----------------------------------------------------------------------------- 5. repeated saves
def test_repeated_saves_cannot_fill_the_disk(client, workspace, tmp_path, monkeypatch):
    import audioapp.saving as module

    folder = tmp_path / "saves"
    monkeypatch.setattr(workspace, "output_dir", folder)
    monkeypatch.setattr(workspace, "_saved", {}, raising=False)
    monkeypatch.setattr(workspace, "max_saves", 2, raising=False)
    start = workspace.current.id

    def models():
        return sorted(p.name for p in folder.glob("*.keras"))

    results = [client.post("/api/save", json={}).json() for _ in range(5)]  # was: five files
    assert models() == ["model_edited_1.keras"] and len({r["path"] for r in results}) == 1
    assert [r["already_saved"] for r in results] == [False, True, True, True, True]
    first = results[0]
    assert first["bytes"] == (folder / "model_edited_1.keras").stat().st_size > 0
    assert first["saves"] == 1 and first["max_saves"] == 2 and first["disk_free_bytes"] > 0
    edits = 0
    try:
        assert client.post("/api/delete", json={"indices": [0]}).status_code == 200
        edits += 1
        second = client.post("/api/save", json={}).json()
        assert second["path"].endswith("model_edited_2.keras") and second["saves"] == 2
        assert second["session_bytes"] == first["bytes"] + second["bytes"]
        assert client.post("/api/delete", json={"indices": [0]}).status_code == 200
        edits += 1
        capped = client.post("/api/save", json={})
        assert capped.status_code == 507 and "saved 2 models (the limit, 2 files" in capped.json()["error"]
        assert models() == ["model_edited_1.keras", "model_edited_2.keras"]
        assert client.post("/api/save", json={}).status_code == 507  # a loop stays refused
        # At the cap, saving a version already saved still answers with its file (nothing written).
        assert client.post("/api/undo", json={}).status_code == 200
        edits -= 1
        again = client.post("/api/save", json={})
        assert again.status_code == 200 and again.json()["already_saved"] and again.json()["path"] == second["path"]
        # Below the free-space floor nothing is written either.
        assert client.post("/api/delete", json={"indices": [0]}).status_code == 200
        edits += 1
        monkeypatch.setattr(workspace, "max_saves", 3)
        monkeypatch.setattr(module, "MIN_FREE_BYTES", 2**62)
        full = client.post("/api/save", json={})
        assert full.status_code == 507 and "MB free on the disk" in full.json()["error"]
        assert models() == ["model_edited_1.keras", "model_edited_2.keras"]
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left
    finally:
        for _ in range(edits):
            client.post("/api/undo", json={})
    assert workspace.current.id == start
