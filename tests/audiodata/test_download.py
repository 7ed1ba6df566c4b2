"""Tests of audiodata.download against a real HTTP server on 127.0.0.1.

The archives are built from the real clips in shared/data, in the folder
structure of the upstream archives, and served by a threaded HTTP server that
honours Range requests and can cut a transfer after a given byte.
"""
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from audiodata.download import (
    DATASET_FOLDERS,
    DATASET_PAGES,
    DOWNLOADS_FOLDER,
    SOURCES,
    Source,
    download_dataset,
    download_file,
    download_instructions,
    file_checksum,
    unpack_archive,
)
from audiodata.errors import DownloadError, ParameterError

REPO = Path(__file__).resolve().parents[2]


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; cuts a transfer where told to."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        name = self.path.lstrip("/")
        byte_range = self.headers.get("Range")
        server.requests.append((name, byte_range))
        if name not in server.files:
            self.send_error(404)
            return
        data = server.files[name]
        start = 0
        if byte_range and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut_after.pop(name, None)
        self.wfile.write(data[start:cut])
        self.wfile.flush()

    def log_message(self, *args):
        """Keep the test output quiet."""


class _Server(ThreadingHTTPServer):
    """A local file server whose requests are recorded as ``(name, Range header)``."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.cut_after, self.requests, self.ignore_range = {}, {}, [], False

    def serve(self, name, data):
        """Serve ``data`` at ``/name`` and return its URL."""
        self.files[name] = data
        return f"http://127.0.0.1:{self.server_port}/{name}"


@pytest.fixture
def server():
    """A fresh local HTTP server running in a thread."""
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _md5(data):
    return "md5:" + hashlib.md5(data).hexdigest()


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar_gz(members):
    """A .tar.gz holding ``{archive name: file path or bytes}``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else Path(content).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members):
    """A .zip holding ``{archive name: file path or bytes}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else Path(content).read_bytes())
    return buffer.getvalue()


def _assert_same_files(expected, root):
    """Every ``{relative path: source file}`` is in ``root`` with identical bytes."""
    for relative, source in expected.items():
        target = root / relative
        assert target.is_file(), f"{target} is missing"
        assert target.read_bytes() == Path(source).read_bytes(), f"{target} differs from {source}"


def _fsdd(shared_data, server, n=20):
    """An FSDD release archive (``free-spoken-digit-dataset-1.0.10/...``) of ``n`` real recordings."""
    recordings = sorted((shared_data / "fsdd" / "recordings").glob("*.wav"))[:n]
    layout = {f"recordings/{p.name}": p for p in recordings}
    layout["README.md"] = shared_data / "fsdd" / "README.md"
    data = _tar_gz({f"free-spoken-digit-dataset-1.0.10/{name}": path for name, path in layout.items()})
    name = "free-spoken-digit-dataset-1.0.10.tar.gz"
    source = Source(server.serve(name, data), name, _sha256(data), strip="free-spoken-digit-dataset-1.0.10")
    return source, data, layout


def _esc50(shared_data, server, n=5):
    """An ESC-50 GitHub archive (``ESC-50-master/audio``, ``/meta/esc50.csv``) of ``n`` real clips."""
    clips = sorted((shared_data / "ESC-50" / "audio").glob("*.flac"))[:n]
    with open(shared_data / "ESC-50" / "meta" / "esc50.csv", newline="") as file:
        rows = list(csv.reader(file))
    names = {p.name for p in clips}
    meta = io.StringIO()
    csv.writer(meta, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if r[0] in names])
    layout = {f"audio/{p.name}": p for p in clips}
    members = {f"ESC-50-master/{name}": path for name, path in layout.items()}
    members["ESC-50-master/meta/esc50.csv"] = meta.getvalue().encode()
    data = _zip(members)
    source = Source(server.serve("ESC-50-master.zip", data), "ESC-50-master.zip", _md5(data), strip="ESC-50-master")
    return source, layout, meta.getvalue().encode()


def test_fsdd_tar_lands_in_official_layout(shared_data, server, tmp_path):
    source, _, layout = _fsdd(shared_data, server)
    path = download_dataset("fsdd", tmp_path, sources=[source], progress=False)
    assert path == tmp_path / "fsdd"
    _assert_same_files(layout, path)
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "recordings"]
    assert not (tmp_path / DOWNLOADS_FOLDER).exists()


def test_esc50_zip_lands_in_official_layout(shared_data, server, tmp_path):
    source, layout, meta = _esc50(shared_data, server)
    path = download_dataset("esc50", tmp_path, sources=[source], progress=False)
    _assert_same_files(layout, path)
    assert (path / "meta" / "esc50.csv").read_bytes() == meta
    assert len(meta.decode().splitlines()) == len(layout) + 1


def test_medley_parts_go_into_audio_and_annotation(shared_data, server, tmp_path):
    clips = sorted((shared_data / "MedleySolosDB" / "audio").glob("*.flac"))[:4]
    audio = _tar_gz({p.name: p for p in clips})
    metadata = (shared_data / "MedleySolosDB" / "annotation" / "Medley-solos-DB_metadata.csv").read_bytes()
    sources = [
        Source(server.serve("Medley-solos-DB.tar.gz", audio), "Medley-solos-DB.tar.gz", _md5(audio), into="audio"),
        Source(server.serve("meta.csv", metadata), "Medley-solos-DB_metadata.csv", _md5(metadata), into="annotation"),
    ]
    path = download_dataset("medley_solos_db", tmp_path, sources=sources, progress=False)
    assert path == tmp_path / "MedleySolosDB"
    expected = {f"audio/{p.name}": p for p in clips}
    expected["annotation/Medley-solos-DB_metadata.csv"] = shared_data / "MedleySolosDB" / "annotation" / (
        "Medley-solos-DB_metadata.csv"
    )
    _assert_same_files(expected, path)


def test_sonyc_audio_parts_merge_into_one_folder(shared_data, server, tmp_path):
    root = shared_data / "SONYC-UST"
    clips = sorted((root / "audio").glob("*.wav"))[:4]
    sources = [
        Source(server.serve(name, (root / name).read_bytes()), name, _md5((root / name).read_bytes()))
        for name in ("annotations.csv", "dcase-ust-taxonomy.yaml")
    ]
    for i, part in enumerate((clips[:2], clips[2:])):
        data = _tar_gz({f"audio/{p.name}": p for p in part})
        sources.append(Source(server.serve(f"audio-{i}.tar.gz", data), f"audio-{i}.tar.gz", _md5(data)))
    path = download_dataset("sonyc_ust", tmp_path, sources=sources, progress=False)
    expected = {f"audio/{p.name}": p for p in clips}
    expected.update({name: root / name for name in ("annotations.csv", "dcase-ust-taxonomy.yaml")})
    _assert_same_files(expected, path)
    assert sorted(p.name for p in (path / "audio").iterdir()) == [p.name for p in clips]


def test_cut_download_resumes_from_part_on_next_call(shared_data, server, tmp_path):
    source, data, layout = _fsdd(shared_data, server)
    cut = len(data) // 2
    server.cut_after[source.filename] = cut
    with pytest.raises(DownloadError, match=re.escape(source.url)):
        download_dataset("fsdd", tmp_path, sources=[source], retries=0, progress=False)
    part = tmp_path / DOWNLOADS_FOLDER / "fsdd" / (source.filename + ".part")
    assert part.stat().st_size == cut
    assert not (tmp_path / "fsdd").exists()

    path = download_dataset("fsdd", tmp_path, sources=[source], progress=False)
    assert server.requests == [(source.filename, None), (source.filename, f"bytes={cut}-")]
    _assert_same_files(layout, path)


def test_cut_download_resumes_within_one_call(shared_data, server, tmp_path):
    source, _, layout = _fsdd(shared_data, server)
    server.cut_after[source.filename] = 12345
    path = download_dataset("fsdd", tmp_path, sources=[source], retries=2, progress=False)
    assert server.requests == [(source.filename, None), (source.filename, "bytes=12345-")]
    _assert_same_files(layout, path)


def test_server_ignoring_range_restarts_from_zero(shared_data, server, tmp_path):
    source, _, layout = _fsdd(shared_data, server)
    server.cut_after[source.filename] = 9999
    server.ignore_range = True
    path = download_dataset("fsdd", tmp_path, sources=[source], retries=1, progress=False)
    assert server.requests[-1] == (source.filename, "bytes=9999-")
    _assert_same_files(layout, path)


def test_complete_part_is_not_downloaded_again(shared_data, server, tmp_path):
    source, data, layout = _fsdd(shared_data, server)
    part = tmp_path / DOWNLOADS_FOLDER / "fsdd" / (source.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    path = download_dataset("fsdd", tmp_path, sources=[source], progress=False)
    assert server.requests == [(source.filename, f"bytes={len(data)}-")]
    _assert_same_files(layout, path)


def test_wrong_checksum_raises_and_leaves_no_file(shared_data, server, tmp_path):
    source, _, _ = _fsdd(shared_data, server)
    bad = Source(source.url, source.filename, "md5:" + "0" * 32, strip=source.strip)
    with pytest.raises(DownloadError, match=re.escape(source.filename)) as error:
        download_dataset("fsdd", tmp_path, sources=[bad], progress=False)
    assert source.url in str(error.value)
    downloads = tmp_path / DOWNLOADS_FOLDER / "fsdd"
    assert not (downloads / source.filename).exists()
    assert not (downloads / (source.filename + ".part")).exists()
    assert not (tmp_path / "fsdd").exists()


def test_second_call_downloads_nothing(shared_data, server, tmp_path):
    source, _, _ = _fsdd(shared_data, server)
    first = download_dataset("fsdd", tmp_path, sources=[source], progress=False)
    count = len(server.requests)
    second = download_dataset("fsdd", tmp_path, sources=[source], progress=False)
    assert second == first
    assert len(server.requests) == count == 1


def test_kept_archive_is_verified_not_downloaded_again(shared_data, server, tmp_path):
    source, data, layout = _fsdd(shared_data, server)
    download_dataset("fsdd", tmp_path, sources=[source], keep_archives=True, progress=False)
    assert (tmp_path / DOWNLOADS_FOLDER / "fsdd" / source.filename).read_bytes() == data
    shutil.rmtree(tmp_path / "fsdd")
    path = download_dataset("fsdd", tmp_path, sources=[source], keep_archives=True, progress=False)
    assert len(server.requests) == 1
    _assert_same_files(layout, path)


def test_missing_checksum_warns_and_still_checks_size(server, tmp_path):
    url = server.serve("notes.txt", b"x" * 5000)
    with pytest.warns(UserWarning, match="no checksum is published"):
        path = download_file(url, tmp_path / "notes.txt", progress=False)
    assert path.read_bytes() == b"x" * 5000
    server.cut_after["notes.txt"] = 100
    with pytest.raises(DownloadError, match="100 of 5000 bytes"), pytest.warns(UserWarning):
        download_file(url, tmp_path / "again.txt", retries=0, progress=False)


def test_http_error_names_the_url(server, tmp_path):
    url = server.serve("present.bin", b"1").replace("present", "absent")
    with pytest.raises(DownloadError, match=re.escape(url) + ".*404"):
        download_file(url, tmp_path / "absent.bin", checksum=_md5(b"1"), progress=False)


def test_refused_connection_does_not_claim_a_partial_download(tmp_path):
    """Nothing was written, so the message must not say a partial download is kept."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/clip.tar.gz"
    with pytest.raises(DownloadError, match="nothing was downloaded") as error:
        download_file(url, tmp_path / "clip.tar.gz", checksum=_md5(b"1"), retries=0, timeout=5, progress=False)
    assert "is kept" not in str(error.value)
    assert not (tmp_path / "clip.tar.gz.part").exists()


def _symlink_tar():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("data/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(link)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "filename, data, member",
    [
        ("evil.tar.gz", _tar_gz({"ok.txt": b"ok", "../evil.txt": b"evil"}), "../evil.txt"),
        ("evil.tgz", _tar_gz({"/tmp/evil.txt": b"evil"}), "/tmp/evil.txt"),
        ("evil.zip", _zip({"ok.txt": b"ok", "sub/../../evil.txt": b"evil"}), "sub/../../evil.txt"),
        ("evil.tar", _symlink_tar(), "../../outside"),
    ],
)
def test_unsafe_archive_members_are_refused(server, tmp_path, filename, data, member):
    archive = tmp_path / filename
    archive.write_bytes(data)
    with pytest.raises(DownloadError, match=re.escape(member)):
        unpack_archive(archive, tmp_path / "out" / "unpacked")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()

    good = _tar_gz({"audio/a.wav": b"a"})
    sources = [
        Source(server.serve("good.tar.gz", good), "good.tar.gz", _md5(good)),
        Source(server.serve(filename, data), filename, _md5(data)),
    ]
    with pytest.raises(DownloadError, match=re.escape(member)):
        download_dataset("sonyc_ust", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data" / "SONYC-UST").exists()


def test_missing_top_level_folder_is_reported(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"other/x.txt": b"x"}))
    with pytest.raises(DownloadError, match="ESC-50-master.*other"):
        unpack_archive(archive, tmp_path / "out", strip="ESC-50-master")


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ParameterError, match="esc50.*fsdd.*urbansound8k"):
        download_dataset("esc-50", tmp_path)
    with pytest.raises(ParameterError, match="speech_commands_v1"):
        download_instructions("gtzan")


def test_data_dir_comes_from_environment(shared_data, server, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_DATA_DIR", str(tmp_path))
    source, _, layout = _fsdd(shared_data, server, n=3)
    assert download_dataset("fsdd", sources=[source], progress=False) == tmp_path / "fsdd"
    monkeypatch.delenv("AUDIO_DATA_DIR")
    with pytest.raises(ParameterError, match="AUDIO_DATA_DIR"):
        download_dataset("fsdd", sources=[source], progress=False)


def test_bad_checksum_string_is_refused():
    with pytest.raises(ParameterError, match="sha1"):
        Source("https://example.org/a.zip", "a.zip", "sha1:" + "0" * 40)


def test_registry_is_complete_and_names_official_folders(shared_data):
    assert set(SOURCES) == set(DATASET_FOLDERS) == set(DATASET_PAGES)
    for name, folder in DATASET_FOLDERS.items():
        if name != "speech_commands_v1":
            assert (shared_data / folder).is_dir(), folder
        for source in SOURCES[name]:
            assert source.url.startswith("https://")
            if "zenodo.org" in source.url:
                assert source.checksum.startswith("md5:"), source.filename
        text = download_instructions(name)
        assert f"--dataset {name}" in text and DATASET_PAGES[name] in text and folder in text
    assert len(SOURCES["sonyc_ust"]) == 21
    assert {s.checksum for s in SOURCES["esc50"] + SOURCES["fsdd"]} == {None}


def test_file_checksum_matches_hashlib(shared_data):
    path = shared_data / "fsdd" / "README.md"
    assert file_checksum(path, "md5") == hashlib.md5(path.read_bytes()).hexdigest()
    assert file_checksum(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_prints_where_the_dataset_is(tmp_path):
    (tmp_path / "ESC-50").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDIO_DATA_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "download.py"), "--dataset", "esc50", "--quiet"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert run.stdout.strip() == f"esc50 is in {tmp_path / 'ESC-50'}"
    env.pop("AUDIO_DATA_DIR")
    run = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "download.py"), "--dataset", "esc50"],
        env=env, capture_output=True, text=True,
    )
    assert run.returncode == 2 and "AUDIO_DATA_DIR" in run.stderr
