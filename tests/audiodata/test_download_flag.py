"""The one-flag download of the command lines (issue 13): ``--download`` / ``--mirror`` and the "no data folder" message.

audiodata.download.ensure_dataset is what ``--download`` runs (experiments/apnet/train.py, the L2I training
scripts, the web application); it is tested here against the local HTTP server of test_download.py, which
serves archives built from the real clips under their official file names, like a mirror.
"""
import importlib.util
from argparse import Namespace

import pytest

from audiodata.download import (MIRROR_ENV, SOURCES, NoDataDirError, cli_error, ensure_dataset, mirror_sources,
                                resolve_data_dir)
from audiodata.errors import DatasetNotFoundError, ParameterError
from tests.audiodata.test_download import REPO, _fsdd, server  # noqa: F401  (server: the fixture)


def _mirror(server):  # noqa: F811
    return f"http://127.0.0.1:{server.server_port}/"


def test_mirror_sources_keep_names_checksums_and_layout():
    official = SOURCES["urbansound8k"][0]
    (mirrored,) = mirror_sources("urbansound8k", "https://mirror.example.org/audio/")
    assert mirrored.url == "https://mirror.example.org/audio/UrbanSound8K.tar.gz"
    assert (mirrored.filename, mirrored.checksum, mirrored.strip) == (official.filename, official.checksum,
                                                                      official.strip)
    assert [s.url.rsplit("/", 1)[1] for s in mirror_sources("esc10", "file:///srv/m")] == ["ESC-50-master.zip"]
    with pytest.raises(ParameterError, match="--mirror must be an http"):
        mirror_sources("fsdd", "mirror.example.org")


def test_ensure_dataset_downloads_once_then_nothing(shared_data, server, tmp_path):  # noqa: F811
    _, data, layout = _fsdd(shared_data, server, n=12)
    lines = []
    path = ensure_dataset("fsdd", tmp_path, mirror=_mirror(server), progress=False, log=lines.append)
    assert path == tmp_path / "fsdd" and len(list((path / "recordings").glob("*.wav"))) == 12
    assert server.requests == [("free-spoken-digit-dataset-1.0.10.tar.gz", None)]
    assert lines[0] == f"downloading fsdd into {tmp_path / 'fsdd'} from {_mirror(server)}"
    assert lines[-1] == f"fsdd is in {path}"
    lines.clear()
    assert ensure_dataset("fsdd", tmp_path, mirror=_mirror(server), progress=False, log=lines.append) == path
    assert len(server.requests) == 1 and lines == [f"fsdd is already in {path}; nothing to download"]


def test_ensure_dataset_downloads_nothing_when_the_loader_finds_the_dataset(shared_data, server):  # noqa: F811
    """Already there, in the data folder or given as the dataset folder itself: no request at all."""
    assert ensure_dataset("fsdd", shared_data, mirror=_mirror(server), progress=False) == shared_data / "fsdd"
    assert ensure_dataset("fsdd", shared_data / "fsdd", mirror=_mirror(server), progress=False) == \
        shared_data / "fsdd"
    assert ensure_dataset("esc10", shared_data, mirror=_mirror(server), progress=False) == shared_data / "ESC-50"
    assert server.requests == []


def test_ensure_dataset_reads_the_mirror_from_the_environment(shared_data, server, tmp_path, monkeypatch):  # noqa: F811
    _fsdd(shared_data, server, n=3)
    monkeypatch.setenv(MIRROR_ENV, _mirror(server))
    assert len(list((ensure_dataset("fsdd", tmp_path, progress=False) / "recordings").iterdir())) == 3


def test_an_incomplete_dataset_folder_is_not_downloaded_over(server, tmp_path):  # noqa: F811
    (tmp_path / "fsdd" / "recordings").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="exists but is not a complete fsdd folder; move it away"):
        ensure_dataset("fsdd", tmp_path, mirror=_mirror(server), progress=False)
    assert server.requests == []


def test_no_data_folder_names_the_flag_in_the_command_lines(monkeypatch):
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    with pytest.raises(NoDataDirError) as info:
        resolve_data_dir(None)
    assert isinstance(info.value, ParameterError)
    assert "pass data_dir or set the AUDIO_DATA_DIR" in str(info.value)  # the library's message
    assert cli_error(info.value) == "no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR environment variable"
    with pytest.raises(NoDataDirError):
        ensure_dataset("fsdd", None)
    assert cli_error(ParameterError("other")) == "other"


def test_download_cli_takes_a_mirror(shared_data, server, tmp_path, capsys):  # noqa: F811
    spec = importlib.util.spec_from_file_location("download_cli", REPO / "experiments" / "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _fsdd(shared_data, server, n=4)
    assert module.main(["--dataset", "fsdd", "--data-dir", str(tmp_path), "--mirror", _mirror(server), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"fsdd is in {tmp_path / 'fsdd'}"
    assert len(list((tmp_path / "fsdd" / "recordings").iterdir())) == 4


def test_app_download_gets_the_dataset_of_the_run(shared_data, server, tmp_path):  # noqa: F811
    """``python -m audioapp --download``: the dataset named by the run folder is fetched before anything loads."""
    from audioapp.cli import download_datasets, parse_args

    _fsdd(shared_data, server, n=5)
    run = tmp_path / "results" / "apnet" / "fsdd" / "fold1" / "seed0"
    run.mkdir(parents=True)
    args = parse_args(["--model", str(run / "model.keras"), "--data-dir", str(tmp_path / "data"), "--download",
                       "--mirror", _mirror(server)])
    assert args.download and args.mirror == _mirror(server)
    download_datasets(args)
    assert len(list((tmp_path / "data" / "fsdd" / "recordings").iterdir())) == 5
    with pytest.raises(ParameterError, match="pass --dataset"):
        download_datasets(Namespace(model=str(tmp_path / "model.keras"), dataset=None, l2i_model=None,
                                    data_dir=str(tmp_path), mirror=None))
