"""What the L2I training scripts tell a newcomer (issue 13): split sizes, a `warning:` line on a dataset excerpt,
the run folder at the start and the end, ``--download`` (here from the local HTTP server of
tests/audiodata/test_download.py, as a mirror), and a "no data folder" error that names --data-dir."""
import csv
import io

import pytest

from tests.audiodata.test_download import _zip, server  # noqa: F401  (server: the fixture)
from tests.l2i.test_l2i_run_identity import _script


@pytest.fixture
def esc50_mirror(shared_data, server):  # noqa: F811
    """``ESC-50-master.zip`` with one real ESC-10 clip per class from folds 1 and 2 (20 clips), served by name."""
    with open(shared_data / "ESC-50" / "meta" / "esc50.csv", newline="") as file:
        rows = list(csv.reader(file))
    picked, seen = [], set()
    for row in rows[1:]:
        if row[1] in ("1", "2") and (row[1], row[2]) not in seen:
            seen.add((row[1], row[2]))
            picked.append(row)
    assert len(picked) == 20
    meta = io.StringIO()
    csv.writer(meta, lineterminator="\n").writerows([rows[0]] + picked)
    members = {f"ESC-50-master/audio/{row[0]}": shared_data / "ESC-50" / "audio" / row[0] for row in picked}
    members["ESC-50-master/meta/esc50.csv"] = meta.getvalue().encode()
    server.serve("ESC-50-master.zip", _zip(members))
    return f"http://127.0.0.1:{server.server_port}/"


def test_learn_dictionary_downloads_reports_and_names_its_folder(esc50_mirror, server, tmp_path, capsys):  # noqa: F811
    data, output = tmp_path / "data", tmp_path / "runs"
    argv = ["--dataset", "esc10", "--fold", "1", "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"),
            "--output", str(output), "--seed", "0", "--epochs", "2", "--n-components", "2", "--download",
            "--mirror", esc50_mirror]
    _script("learn_dictionary").main(argv)
    captured = capsys.readouterr()
    assert server.requests == [("ESC-50-master.zip", None)]
    (folder,) = (output / "l2i" / "esc10" / "fold1" / "seed0").glob("dictionary-K2-*")
    assert (folder / "W.npy").is_file()
    lines = captured.err.splitlines()
    assert lines[0] == f"run folder: {folder}"
    assert f"downloading esc50 into {data / 'ESC-50'} from {esc50_mirror}" in lines
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: "))
    assert lines[warning].startswith(f"warning: esc10: {data / 'ESC-50'} holds only 20 clips, 5.0% of the 400")
    assert lines[warning + 1] == "esc10 fold 1: train 10, validation 0, test 10 clips"
    assert "features: 100%" in captured.err
    assert lines[-1].startswith(f"run folder: {folder}")
    assert captured.out.strip().splitlines()[-1].startswith("{'shape': [513, 2]")  # stdout unchanged


@pytest.mark.parametrize("script, extra", [
    ("train_classifier", []),
    ("learn_dictionary", []),
    ("train_interpreter", ["--mode", "bydesign", "--dictionary", "{tmp}/W.npy"]),
    ("train_baseline", ["--baseline", "nmf"]),
])
def test_download_without_a_data_folder_names_the_flag(script, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AUDIO_DATA_DIR", raising=False)
    (tmp_path / "W.npy").write_bytes(b"")
    argv = ["--dataset", "esc10", "--output", str(tmp_path / "runs"), "--download",
            *[a.replace("{tmp}", str(tmp_path)) for a in extra]]
    with pytest.raises(SystemExit) as info:
        _script(script).main(argv)
    assert info.value.code == 2
    assert "error: no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR" in capsys.readouterr().err
