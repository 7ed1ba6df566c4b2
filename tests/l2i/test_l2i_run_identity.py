"""Run identity (l2i/runs.py): dictionaries keyed on their parameters, interpreter runs named by their identity."""
import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest

from tests.l2i.test_training import REPO


def _script(name):
    spec = importlib.util.spec_from_file_location(f"l2i_{name}", REPO / "experiments" / "l2i" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_fold(monkeypatch):
    """learn_dictionary.py on 12 tiny random spectrograms (20 frames x 16 bins) instead of a dataset."""
    module = _script("learn_dictionary")
    rng = np.random.default_rng(0)
    data = SimpleNamespace(logmag=rng.random((12, 20, 16)).astype("float32"), rows={"train": np.arange(10)},
                           targets={"train": np.zeros((10, 10))})
    monkeypatch.setattr(module, "load_fold", lambda *args, **kwargs: data)
    return module


def test_learn_dictionary_keeps_one_dictionary_per_K(fake_fold, tmp_path, capsys):
    from l2i.nmf import load_dictionary

    args = ["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path), "--epochs", "2"]
    fake_fold.main(args)  # the config's K = 100: the main dictionary
    fake_fold.main(args + ["--n-components", "6"])
    base = tmp_path / "l2i" / "esc10" / "fold1" / "seed0"
    main, = [p for p in base.iterdir() if p.name == "dictionary"]
    other, = [p for p in base.iterdir() if p.name.startswith("dictionary-")]
    assert other.name.startswith("dictionary-K6-")
    W100, params100 = load_dictionary(main / "W.npy")
    W6, params6 = load_dictionary(other / "W.npy")
    assert W100.shape == (16, 100) and W6.shape == (16, 6)
    assert params100["identity"]["K"] == 100 and params6["identity"]["K"] == 6
    assert json.loads((other / "results.json").read_text())["identity"] == params6["identity"]
    capsys.readouterr()
    fake_fold.main(args + ["--n-components", "6"])  # the same parameters again: kept
    assert "nothing to do" in capsys.readouterr().out
    assert np.array_equal(load_dictionary(other / "W.npy")[0], W6)
    # a dictionary of other parameters in the main folder (written before identities) is refused, not reused
    (main / "identity.json").unlink()
    results = json.loads((main / "results.json").read_text())
    (main / "results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "identity"}))
    meta = json.loads((main / "W.json").read_text())
    meta["params"].pop("identity")
    meta["params"]["n_components"] = 50
    (main / "W.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exit_info:
        fake_fold.main(args)
    assert exit_info.value.code == 2 and "learned with other parameters" in capsys.readouterr().err


def test_train_interpreter_loads_the_dictionary_of_its_K_and_names_its_folder(fake_fold, tmp_path, monkeypatch):
    from l2i.runs import main_identity, read_identity, write_identity

    args = ["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path), "--epochs", "2"]
    fake_fold.main(args)
    fake_fold.main(args + ["--n-components", "6"])
    base = tmp_path / "l2i" / "esc10" / "fold1" / "seed0"
    (base / "classifier").mkdir()
    (base / "classifier" / "classifier.keras").write_bytes(b"not loaded here")
    write_identity(base / "classifier", main_identity("esc10", "classifier"))  # as train_classifier.py does
    module = _script("train_interpreter")
    calls = []

    def fake_train(config, dataset, fold, run_dir, **kwargs):
        calls.append(dict(kwargs, run_dir=run_dir, config=config))
        return {"accuracy": 0.5}

    monkeypatch.setattr(module, "train_interpreter", fake_train)
    common = ["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path), "--verbose", "0"]
    module.main(common)
    module.main(common + ["--n-components", "6"])
    module.main(common + ["--hidden-layers", "input"])
    module.main(common + ["--alpha", "1", "--beta", "0.8"])
    main, k6, inp, a1 = calls
    assert main["run_dir"].name == "posthoc_att" and main["dictionary_path"] == base / "dictionary" / "W.npy"
    assert k6["run_dir"].name.startswith("posthoc_att-K6-") and k6["dictionary_path"].parent.name.startswith(
        "dictionary-K6-")
    assert inp["run_dir"].name.startswith("posthoc_att-Input-")
    assert inp["config"]["interpreter"]["hidden_layers"] == ["add_channel"]  # the named choice, as f's layer
    assert a1["run_dir"].name.startswith("posthoc_att-a1.0-")
    assert read_identity(main["run_dir"]) == main_identity("esc10")
    assert read_identity(inp["run_dir"])["interpreter"]["hidden_layers"] == ["input"]
    results = json.loads((k6["run_dir"] / "results.json").read_text())
    assert results["identity"]["dictionary"]["K"] == 6 and results["run"] == k6["run_dir"].name
    # an interpreter whose dictionary was never learned: an error naming it, not another K's dictionary
    with pytest.raises(SystemExit) as exit_info:
        module.main(common + ["--n-components", "50"])
    assert exit_info.value.code == 2


def test_classifier_folder_refuses_another_configuration(tmp_path):
    from audiodata.errors import ParameterError
    from l2i.runs import classifier_identity, default_config, write_identity

    section = default_config("esc50")["classifier"]
    write_identity(tmp_path, classifier_identity(section))
    write_identity(tmp_path, classifier_identity(dict(section, epochs=3)))  # a budget: same identity
    with pytest.raises(ParameterError, match="another configuration"):
        write_identity(tmp_path, classifier_identity(dict(section, filters=[4, 4, 8, 8, 16, 16])))


def test_layers_label_and_aliases():
    from l2i.runs import canonical_layers, classifier_layers, layers_label

    assert layers_label(["block4", "block5", "block6"]) == "B4+B5+B6"
    assert layers_label(["input"]) == layers_label(["add_channel"]) == "Input"
    assert classifier_layers(["input", "block6"]) == ["add_channel", "block6"]
    assert canonical_layers(["add_channel"]) == ["input"]


def test_train_interpreter_validation_fraction_gets_its_own_folder(fake_fold, tmp_path, monkeypatch, capsys):
    from l2i.runs import main_identity, read_identity, write_identity

    fake_fold.main(["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path), "--epochs", "2"])
    base = tmp_path / "l2i" / "esc10" / "fold1" / "seed0"
    (base / "classifier").mkdir()
    (base / "classifier" / "classifier.keras").write_bytes(b"not loaded here")
    write_identity(base / "classifier", main_identity("esc10", "classifier"))
    module = _script("train_interpreter")
    calls = []
    monkeypatch.setattr(module, "train_interpreter",
                        lambda config, dataset, fold, run_dir, **kw: calls.append((run_dir, config)) or {})
    common = ["--dataset", "esc10", "--fold", "1", "--output", str(tmp_path), "--verbose", "0"]
    module.main(common)
    module.main(common + ["--validation-fraction", "0.1"])
    module.main(common + ["--validation-fraction", "0"])  # 0: off, the main run
    (main_dir, main_config), (val_dir, val_config), (off_dir, _) = calls
    assert main_dir.name == off_dir.name == "posthoc_att" and "validation_fraction" not in main_config
    assert val_dir.name.startswith("posthoc_att-val0.1-") and val_config["validation_fraction"] == 0.1
    assert read_identity(val_dir)["validation_fraction"] == 0.1 and read_identity(main_dir) == main_identity("esc10")
    with pytest.raises(SystemExit) as exit_info:
        module.main(common + ["--validation-fraction", "1"])
    assert exit_info.value.code == 2 and "--validation-fraction" in capsys.readouterr().err
