"""audioruns.cli: the shipped configs of each paper, --config PATH and --print-config of every training script."""
import importlib.util
from pathlib import Path

import pytest
import yaml

from audiodata.errors import ParameterError
from audioruns.cli import shipped_config

REPO = Path(__file__).resolve().parents[1]
#: script -> the arguments it needs besides the config options
TRAINING_SCRIPTS = {
    "experiments/apnet/train.py": ["--dataset", "fsdd", "--fold", "1"],
    "experiments/l2i/train_classifier.py": ["--dataset", "esc10"],
    "experiments/l2i/learn_dictionary.py": ["--dataset", "esc50"],
    "experiments/l2i/train_interpreter.py": ["--dataset", "esc50"],
    "experiments/l2i/train_baseline.py": ["--dataset", "esc50", "--baseline", "nmf"],
}


def _main(script):
    spec = importlib.util.spec_from_file_location(f"run_cli_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("package, dataset, name", [("apnet", "fsdd", "fsdd.yaml"), ("apnet", "esc10", "esc10.yaml"),
                                                    ("l2i", "sonyc_ust", "sonyc_ust.yaml")])
def test_shipped_config_is_the_package_file(package, dataset, name):
    assert shipped_config(package, dataset) == REPO / package / "configs" / name


def test_a_dataset_without_a_config_is_a_clear_error():
    with pytest.raises(ParameterError, match=r"no apnet config for dataset 'openmic' \(.*openmic\.yaml does not "
                                             r"exist; datasets with one: \['esc10', 'esc50', 'fsdd'"):
        shipped_config("apnet", "openmic")
    from l2i.runs import config_path

    assert config_path("esc10") == REPO / "l2i" / "configs" / "esc50.yaml"  # ESC-10 uses esc50's
    with pytest.raises(ParameterError, match="no l2i config for dataset 'fsdd'"):
        config_path("fsdd")


@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS))
def test_print_config_shows_the_shipped_file_and_config_replaces_it(script, tmp_path, capsys):
    main, argv = _main(script), TRAINING_SCRIPTS[script]
    package = script.split("/")[1]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--print-config", "--output", str(tmp_path / "out")])
    first, _, rest = capsys.readouterr().out.partition("\n")
    shipped = shipped_config(package, "esc50" if "esc10" in argv and package == "l2i" else argv[1])
    assert stop.value.code == 0 and first == f"# {shipped}"
    assert yaml.safe_load(rest) == yaml.safe_load(shipped.read_text())

    own = yaml.safe_load(shipped.read_text())
    own["seed"] = 7
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(own))
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--config", str(path), "--seed", "3", "--print-config", "--output", str(tmp_path / "out")])
    first, _, rest = capsys.readouterr().out.partition("\n")
    assert stop.value.code == 0 and first == f"# {path}"
    assert yaml.safe_load(rest) == {**own, "seed": 3}  # the file given, with --seed applied
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", sorted(TRAINING_SCRIPTS))
def test_a_missing_config_is_refused_by_the_parser(script, tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SystemExit) as stop:
        _main(script)([*TRAINING_SCRIPTS[script], "--config", str(missing), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("usage: ")
    assert f"error: argument --config: config file {missing} does not exist" in err
    assert not (tmp_path / "out").exists()
