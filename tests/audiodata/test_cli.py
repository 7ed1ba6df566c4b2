"""Tests of audiodata.cli (the argparse types of the numeric options) and of every command line using them.

The parser of each command line is captured (``argparse.ArgumentParser.parse_known_args`` patched to raise
before parsing), so nothing is loaded or run; then every numeric option is given values just outside its
range, and the exit status and the message are checked. ``CLI_OPTIONS`` lists the type each option must
have: an option added with a bare ``int``/``float``, or without an entry here, fails
``test_every_numeric_option_is_validated``.
"""
import argparse
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audiodata import cli
from audiodata.cli import NumberType

REPO = Path(__file__).resolve().parents[2]

#: command line (a file under the repository, or a module) -> {numeric option: name of its type}
CLI_OPTIONS = {
    "experiments/apnet/train.py": {"--fold": "positive_int", "--epochs": "positive_int",
                                   "--batch-size": "positive_int", "--seed": "seed", "--n-prototypes": "positive_int",
                                   "--verbose": "non_negative_int"},
    "experiments/apnet/refine.py": {"--epochs": "positive_int", "--threshold": "non_negative_float",
                                    "--n-channels": "positive_int", "--batch-size": "positive_int",
                                    "--verbose": "non_negative_int"},
    "experiments/apnet/score.py": {"--fold": "positive_int", "--batch-size": "positive_int", "--jobs": "n_jobs"},
    "experiments/apnet/inspect_prototypes.py": {"--batch-size": "positive_int"},
    "experiments/apnet/evaluate.py": {},
    "experiments/apnet/tables.py": {},
    "experiments/apnet/import_reference.py": {},
    "experiments/apnet/reference_parity.py": {},
    "experiments/l2i/train_classifier.py": {"--fold": "positive_int", "--seed": "seed", "--epochs": "positive_int",
                                            "--verbose": "non_negative_int"},
    "experiments/l2i/learn_dictionary.py": {"--fold": "positive_int", "--seed": "seed", "--epochs": "positive_int",
                                            "--n-components": "positive_int"},
    "experiments/l2i/train_interpreter.py": {"--fold": "positive_int", "--seed": "seed", "--epochs": "positive_int",
                                             "--alpha": "non_negative_float", "--beta": "non_negative_float",
                                             "--gamma": "non_negative_float", "--n-components": "positive_int",
                                             "--validation-fraction": "fraction[0,1)",
                                             "--verbose": "non_negative_int"},
    "experiments/l2i/train_baseline.py": {"--fold": "positive_int", "--seed": "seed", "--epochs": "positive_int",
                                          "--k": "positive_int", "--verbose": "non_negative_int"},
    "experiments/l2i/evaluate.py": {"--fold": "positive_int", "--taus": "fraction[0,1)", "--seed": "seed",
                                    "--max-clips": "positive_int"},
    "experiments/l2i/interpret.py": {"--tau": "fraction[0,1)", "--start": "non_negative_float"},
    "experiments/l2i/tables.py": {},
    "experiments/download.py": {},
    "experiments/reproduce.py": {"--jobs": "positive_int", "--stage": "positive_int", "--folds": "positive_int",
                                 "--seeds": "seed", "--epochs": "positive_int"},
    "audioapp.cli": {"--fold": "positive_int", "--l2i-fold": "positive_int", "--port": "port",
                      "--max-points": "positive_int", "--max-upload-mb": "max_upload_mb", "--seed": "seed"},
    "audioapp.screenshots": {"--prototype": "non_negative_int", "--tau": "fraction[0,1)",
                              "--retrain-epochs": "non_negative_int"},
    "benchmarks/apnet_prototype_layer.py": {"--batch": "positive_int", "--n-prototypes": "positive_int",
                                            "--latent": "positive_int", "--repeats": "positive_int",
                                            "--threads": "non_negative_int", "--seed": "seed"},
    "benchmarks/apnet_training_step.py": {"--batch": "positive_int", "--steps": "positive_int",
                                          "--warmup": "non_negative_int", "--threads": "non_negative_int",
                                          "--seed": "seed"},
    "experiments/extract_features.py": {"--n-jobs": "n_jobs", "--older-than-days": "non_negative_float"},
    "benchmarks/epoch_throughput.py": {"--batches": "positive_int", "--clips": "positive_int", "--seed": "seed"},
    "benchmarks/feature_cache.py": {"--cap-mib": "positive_int", "--size-mib": "positive_int",
                                    "--batch-rows": "positive_int"},
    "benchmarks/l2i_interpreter_step.py": {"--batch-size": "positive_int", "--steps": "positive_int",
                                           "--warmup": "non_negative_int", "--n-components": "positive_int",
                                           "--threads": "non_negative_int"},
    "benchmarks/l2i_nmf_vs_sklearn.py": {"--clips": "positive_int", "--components": "positive_int",
                                         "--l1": "non_negative_float", "--iterations": "positive_int",
                                         "--seed": "seed", "--threads": "positive_int", "--repeats": "positive_int"},
}
#: Scripts without numeric options to check (none at present).
NOT_COVERED = set()


# --------------------------------------------------------------------------------------------- the types

@pytest.mark.parametrize("type_, accepted, refused", [
    (cli.positive_int, {"1": 1, " 2 ": 2, "+3": 3, "0007": 7, "10000000000": 10**10},
     ["0", "-1", "1.5", "1e3", "0x10", "1_000", "nan", "inf", "", " ", "True", "False", "one", "٣"]),
    (cli.non_negative_int, {"0": 0, "-0": 0, "5": 5}, ["-1", "0.0", "nan", "-inf"]),
    (cli.seed, {"0": 0, "4294967295": 2**32 - 1}, ["-1", "4294967296", "1.0", "nan"]),
    (cli.port, {"0": 0, "8050": 8050, "65535": 65535}, ["-1", "65536", "80.0"]),
    (cli.n_jobs, {"-1": -1, "1": 1, "16": 16}, ["0", "-2", "-1.0", "nan"]),
    (cli.positive_float, {"1e-9": 1e-9, "2": 2.0, " .5 ": 0.5, "1E3": 1000.0},
     ["0", "-0.0", "-1", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "1_0", "0x1p0", "True", "half"]),
    (cli.non_negative_float, {"0": 0.0, "0.0": 0.0, "3.25": 3.25}, ["-1e-9", "nan", "inf"]),
    (cli.finite_float, {"-1e300": -1e300, "0": 0.0, "7": 7.0}, ["nan", "inf", "-inf", "1e999", "x"]),
    (cli.fraction(), {"0.5": 0.5, "1e-3": 1e-3}, ["0", "1", "-0.5", "1.5", "nan"]),
    (cli.fraction(include_0=True), {"0": 0.0, "0.9": 0.9}, ["1", "1.0", "-0.1", "nan"]),
    (cli.fraction(include_1=True), {"1": 1.0, "0.1": 0.1}, ["0", "1.01"]),
    (cli.fraction(include_0=True, include_1=True), {"0": 0.0, "1": 1.0}, ["-1e-12", "1.000001", "inf"]),
    (cli.float_range(0, 2048, low_closed=False), {"2048": 2048.0, "0.001": 0.001}, ["0", "2048.5"]),
    (cli.int_range(2, 4), {"2": 2, "4": 4}, ["1", "5"]),
], ids=lambda v: getattr(v, "__name__", None))
def test_types_accept_and_refuse(type_, accepted, refused):
    for text, value in accepted.items():
        result = type_(text)
        assert result == value and type(result) is type_.kind, (text, result)
    for text in refused:
        with pytest.raises(argparse.ArgumentTypeError, match=r"^must be .+, got "):
            type_(text)


@pytest.mark.parametrize("type_, text, message", [
    (cli.positive_int, "-1", "must be a positive integer, got -1"),
    (cli.positive_int, " 0 ", "must be a positive integer, got 0"),
    (cli.positive_int, "abc", "must be a positive integer, got 'abc'"),
    (cli.positive_int, "True", "must be a positive integer, got 'True'"),
    (cli.non_negative_int, "-3", "must be a non-negative integer, got -3"),
    (cli.seed, "-1", "must be an integer seed in [0, 4294967295], got -1"),
    (cli.port, "70000", "must be a port number in [0, 65535] (0: any free port), got 70000"),
    (cli.n_jobs, "0", "must be -1 (all cores) or a positive integer, got 0"),
    (cli.positive_float, "nan", "must be a positive finite number, got 'nan'"),
    (cli.positive_float, "1e400", "must be a positive finite number, got '1e400'"),
    (cli.non_negative_float, "-0.5", "must be a non-negative finite number, got -0.5"),
    (cli.finite_float, "inf", "must be a finite number, got 'inf'"),
    (cli.fraction(include_0=True), "1", "must be a number in [0, 1), got 1"),
    (cli.fraction(), "0", "must be a number in (0, 1), got 0"),
    (cli.float_range(0, 2048, low_closed=False), "4096", "must be a number in (0, 2048], got 4096"),
])
def test_type_messages(type_, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        type_(text)
    assert str(error.value) == message


def test_python_numbers_are_checked_too():
    """Defaults and programmatic calls: ints (floats for the float types) pass the same checks; bools never."""
    assert cli.positive_int(3) == 3 and cli.positive_float(2) == 2.0 and cli.fraction()(0.25) == 0.25
    for type_, value in ((cli.positive_int, True), (cli.positive_int, 0), (cli.positive_int, 2.0),
                         (cli.positive_float, float("nan")), (cli.positive_float, False), (cli.seed, None)):
        with pytest.raises(argparse.ArgumentTypeError):
            type_(value)


def test_names_and_argparse_message():
    assert [t.__name__ for t in (cli.positive_int, cli.non_negative_int, cli.positive_float, cli.non_negative_float,
                                 cli.finite_float, cli.seed, cli.port, cli.n_jobs)] == [
        "positive_int", "non_negative_int", "positive_float", "non_negative_float", "finite_float", "seed", "port",
        "n_jobs"]
    assert cli.fraction(include_0=True).__name__ == "fraction[0,1)" and repr(cli.fraction()) == "fraction(0,1)"
    with pytest.raises(ValueError):
        NumberType(str)


def test_argparse_reports_the_option(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--epochs", type=cli.positive_int)
    parser.add_argument("--taus", type=cli.fraction(include_0=True), nargs="+")
    assert parser.parse_args(["--epochs", " 2 ", "--taus", "0", "0.5"]).epochs == 2
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--epochs", "-1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("usage: tool")
    assert err.splitlines()[-1] == "tool: error: argument --epochs: must be a positive integer, got -1"
    with pytest.raises(SystemExit):
        parser.parse_args(["--taus", "0.1", "1"])
    assert "argument --taus: must be a number in [0, 1), got 1" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- every command line

class _Captured(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


_PARSERS = {}


def _load(target):
    if not target.endswith(".py"):
        return importlib.import_module(target)
    name = "cli_test_" + target.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, REPO / target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parser_of(target):
    """The first ArgumentParser that ``target``'s parse_args (or main) parses with; nothing else runs."""
    if target not in _PARSERS:
        module = _load(target)
        entry = getattr(module, "parse_args", None) or module.main

        def capture(self, *args, **kwargs):
            raise _Captured(self)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
            patch.setattr(argparse.ArgumentParser, "parse_args", capture)
            with pytest.raises(_Captured) as captured:
                entry(*([[]] if inspect.signature(entry).parameters else []))
        _PARSERS[target] = captured.value.parser
    return _PARSERS[target]


def numeric_actions(parser):
    return {action.option_strings[0]: action for action in parser._actions
            if isinstance(action.type, NumberType) or action.type in (int, float)}


def test_every_command_line_is_listed():
    scripts = {str(p.relative_to(REPO)) for p in (REPO / "experiments").rglob("*.py")}
    scripts |= {str(p.relative_to(REPO)) for p in (REPO / "benchmarks").glob("*.py")}
    assert scripts - NOT_COVERED == {t for t in CLI_OPTIONS if t.endswith(".py")}


@pytest.mark.parametrize("target", sorted(CLI_OPTIONS))
def test_every_numeric_option_is_validated(target):
    parser = parser_of(target)
    bare = [a.option_strings or a.dest for a in parser._actions if a.type in (int, float)]
    assert not bare, f"{target}: use an audiodata.cli type instead of int/float for {bare}"
    types = {option: action.type.__name__ for option, action in numeric_actions(parser).items()}
    assert types == CLI_OPTIONS[target]


def _valid(type_):
    return next(text for text in ("1", "0", "0.5", "-1") if _accepts(type_, text))


def _accepts(type_, text):
    try:
        type_(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def bad_values(type_):
    """Texts just outside ``type_``'s range (from its bounds), and texts that are no number of its kind."""
    step = 1 if type_.kind is int else 0.5
    values = ["nan", "inf", "-inf", "ten", "True", ""] + (["1.5", "1e3"] if type_.kind is int else [])
    if type_.low is not None:
        values.append(f"{type_.low - step if type_.low_closed else type_.low:g}")
    if type_.high is not None:
        values.append(f"{type_.high + step if type_.high_closed else type_.high:g}")
    if type_.also:  # n_jobs: -1 is allowed, -2 is not
        values.append(f"{min(type_.also) - 1:g}")
    return values


def required_argv(parser):
    """Values for the required options and positionals of ``parser`` (first choice, or a valid number)."""
    argv = []
    for action in parser._actions:
        if action.option_strings and not action.required:
            continue
        if not action.option_strings and action.nargs in ("?", "*", argparse.REMAINDER):
            continue
        value = str(action.choices[0]) if action.choices else (
            _valid(action.type) if isinstance(action.type, NumberType) else "x")
        argv += action.option_strings[:1] + [value]
    return argv


CASES = [(target, option) for target, options in sorted(CLI_OPTIONS.items()) for option in options]


@pytest.mark.parametrize("target, option", CASES, ids=[f"{Path(t).stem}{o}" for t, o in CASES])
def test_bad_values_exit_2_naming_the_option(target, option, capsys):
    parser = parser_of(target)
    action = numeric_actions(parser)[option]
    base = required_argv(parser)
    n_values = action.nargs if isinstance(action.nargs, int) else 1
    good = _valid(action.type)
    parser.parse_args(base + [option] + [good] * n_values)  # the base command line itself parses
    bad = bad_values(action.type)
    if action.choices:  # --verbose: the type's range, then the choices
        bad.append(str(max(action.choices) + 1))
    assert len(bad) >= 6
    for value in bad:
        assert not _accepts(action.type, value) or action.choices, value
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(base + [option] + [good] * (n_values - 1) + [value])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (option, value)
        assert f"error: argument {'/'.join(action.option_strings)}: " in err, (option, value, err)
        assert "Traceback" not in err


def test_apnet_app_main_returns_2_on_a_bad_option(capsys):
    from audioapp.cli import main

    assert main(["--model", "m.keras", "--port", "65536"]) == 2
    assert "argument --port: must be a port number in [0, 65535]" in capsys.readouterr().err
    assert main(["--model", "m.keras", "--max-upload-mb", "0"]) == 2
    assert "argument --max-upload-mb: must be a number in (0, 2048], got 0" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_train_classifier_refuses_negative_epochs_before_writing(tmp_path):
    """Issue 12: ``--epochs -1`` used to exit 0 with an untrained classifier.keras and results.json."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    output = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(REPO / "experiments" / "l2i" / "train_classifier.py"), "--dataset",
                           "esc10", "--fold", "1", "--epochs", "-1", "--output", str(output), "--data-dir",
                           str(tmp_path / "no_data")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "usage: train_classifier.py" in done.stderr  # after TensorFlow's start-up lines
    assert done.stderr.splitlines()[-1] == ("train_classifier.py: error: argument --epochs: must be a positive "
                                            "integer, got -1")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_require_checks_values_from_configs_and_code():
    from audiodata.errors import ParameterError

    assert cli.require(cli.positive_int, 200, "epochs") == 200
    assert cli.require(cli.positive_int, 200.0, "epochs") == 200  # YAML's 200.0
    for bad in (0, -1, 1.5, True, "3", float("nan"), None):
        with pytest.raises(ParameterError, match="epochs"):
            cli.require(cli.positive_int, bad, "epochs")


def test_require_takes_numpy_numbers_and_strict_refuses_floats():
    import numpy as np

    from audiodata.errors import ParameterError

    for value in (np.int64(3), np.int32(3), np.uint8(3)):
        got = cli.require(cli.positive_int, value, "n")
        assert got == 3 and type(got) is int
    assert cli.require(cli.positive_int, np.float32(3.0), "n") == 3
    assert cli.require(cli.positive_float, np.float32(0.5), "x") == 0.5
    assert cli.require(cli.positive_int, np.int64(3), "n", strict=True) == 3
    for bad in (np.bool_(True), np.int64(0)):
        with pytest.raises(ParameterError, match="n must be a positive integer"):
            cli.require(cli.positive_int, bad, "n")
    for bad in (3.0, np.float64(3.0), 2.5):
        with pytest.raises(ParameterError, match=r"n must be a positive integer, got (3\.0|2\.5)$"):
            cli.require(cli.positive_int, bad, "n", strict=True)


@pytest.mark.parametrize("module", ["apnet.training", "l2i.training"])
def test_fit_resumable_refuses_epochs_below_one_before_writing(module, tmp_path):
    """Config files reach fit_resumable without argparse: epochs 0 or -1 used to save an untrained model."""
    import keras

    from audiodata.errors import ParameterError

    fit_resumable = importlib.import_module(module).fit_resumable
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    for epochs in (0, -1):
        with pytest.raises(ParameterError, match="epochs must be a positive integer"):
            if module == "apnet.training":
                fit_resumable(model, None, None, tmp_path / "run", epochs, "val_loss")
            else:
                fit_resumable(model, None, tmp_path / "run", epochs)
    assert not (tmp_path / "run").exists()
