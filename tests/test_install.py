"""A non-editable install runs every command line, and no package reads from ``experiments/``.

``pip install --no-deps --no-build-isolation --target TARGET SRC`` (SRC: a copy of the working tree, so that the
build writes nothing into the checkout), then, from a folder outside the repository with ``PYTHONPATH=TARGET``:

* every script under ``experiments/`` (and the console script ``audioapp.cli:main``) answers ``--help`` with exit status 0, all in one
  interpreter (TensorFlow is imported once), and every module of the packages it imported lies under TARGET;
* ``experiments/apnet/train.py --print-config`` and ``experiments/l2i/train_classifier.py --print-config`` (each
  in its own process) print the config shipped in TARGET, the same as the repository's file.

``test_packages_build_no_path_into_experiments`` reads the packages' source: a string literal ``"experiments"``
(or ``"experiments/..."``) outside docstrings and messages is a path into the repository's scripts folder, which
an installed package does not have.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("audiodata", "audioruns", "apnet", "l2i", "audioapp")
SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "experiments").rglob("*.py"))
#: setup.py's console_scripts (apnet-app, audio-app).
CONSOLE_SCRIPTS = ["audioapp.cli:main"]

#: Runs ``SCRIPT --help`` for every script given, in this interpreter, then reports where the packages came from.
RUNNER = textwrap.dedent('''
    import json, runpy, sys
    results = {}
    for target in sys.argv[1:]:
        sys.argv = [target, "--help"]
        try:
            if target.endswith(".py"):
                runpy.run_path(target, run_name="__main__")
            else:  # a console script, module:function: its wrapper exits with what the function returns
                module, _, function = target.partition(":")
                raise SystemExit(getattr(__import__(module, fromlist=[function]), function)())
            code = "returned without exiting"
        except SystemExit as stop:
            code = stop.code or 0
        except BaseException as error:  # noqa: BLE001 - reported, not hidden
            code = f"{type(error).__name__}: {error}"
        results[target] = code
    origins = {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
               if name.split(".")[0] in PACKAGES}
    sys.stdout.write("\\nRESULTS " + json.dumps({"exit": results, "origins": origins}) + "\\n")
''')


def _tracked_tree(destination):
    """Copy the files git tracks or would track (untracked, not ignored) to ``destination``, as they are now."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        source = REPO / name
        if source.is_file():  # a file deleted or moved in the working tree stays listed until committed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(target, env, cwd)``: the packages installed non-editably into ``target``, an environment whose
    PYTHONPATH is ``target`` only, and a working folder outside the repository."""
    root = tmp_path_factory.mktemp("install")
    source, target, cwd = root / "src", root / "target", root / "elsewhere"
    cwd.mkdir()
    _tracked_tree(source)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-compile", "--quiet", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    env.pop("PYTHONSTARTUP", None)
    return target, env, cwd


def test_the_install_ships_the_configs(installed):
    target, _, _ = installed
    for package in ("audiodata", "apnet", "l2i"):
        shipped = sorted(p.name for p in (REPO / package / "configs").glob("*.yaml"))
        assert shipped, f"{package}/configs holds no YAML file"
        for name in shipped:
            installed_file = target / package / "configs" / name
            assert installed_file.is_file(), f"{installed_file} missing from the install (setup.py package_data)"
            assert installed_file.read_bytes() == (REPO / package / "configs" / name).read_bytes()
    assert not (target / "experiments").exists()


def test_every_command_line_answers_help_from_the_install(installed):
    target, env, cwd = installed
    runner = cwd / "run_help.py"
    runner.write_text(f"PACKAGES = {PACKAGES!r}\n" + RUNNER)
    commands = [str(REPO / script) for script in SCRIPTS] + CONSOLE_SCRIPTS
    proc = subprocess.run([sys.executable, str(runner), *commands], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1][len("RESULTS "):])
    failed = {name: code for name, code in report["exit"].items() if code != 0}
    assert not failed, f"--help did not exit 0: {failed}\n{proc.stderr[-3000:]}"
    assert len(report["exit"]) == len(commands)
    origins = report["origins"]
    assert {name.split(".")[0] for name in origins} >= {"audiodata", "audioruns", "apnet", "l2i", "audioapp"}
    elsewhere = {name: path for name, path in origins.items()
                 if path is not None and not Path(path).resolve().is_relative_to(target.resolve())}
    assert not elsewhere, f"modules imported from outside the install {target}: {elsewhere}"


@pytest.mark.parametrize("script, argv, package, config", [
    ("experiments/apnet/train.py", ["--dataset", "fsdd", "--fold", "1"], "apnet", "fsdd.yaml"),
    ("experiments/l2i/train_classifier.py", ["--dataset", "esc10"], "l2i", "esc50.yaml"),
])
def test_a_command_reads_its_shipped_config(installed, script, argv, package, config):
    """``--print-config`` prints ``# PATH`` (the installed file) and the config that a run would use."""
    target, env, cwd = installed
    proc = subprocess.run([sys.executable, str(REPO / script), *argv, "--print-config"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first, _, rest = proc.stdout.partition("\n")
    path = Path(first.removeprefix("# "))
    assert first.startswith("# ") and path.resolve() == (target / package / "configs" / config).resolve()
    assert yaml.safe_load(rest) == yaml.safe_load((REPO / package / "configs" / config).read_text())


def _path_literals(path, root=REPO):
    """String literals of a module that name the ``experiments`` folder as a path (docstrings excepted)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    pattern = re.compile(r"^(\.{1,2}/)*experiments(/[\w./<>{}-]*)?$")
    return [f"{path.relative_to(root)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and pattern.match(node.value.strip())]


def test_packages_build_no_path_into_experiments():
    """Nothing under the packages joins a path onto ``experiments`` (``parents[1] / "experiments"``, ...)."""
    found = [hit for package in ("apnet", "l2i", "audiodata", "audioruns")
             for module in sorted((REPO / package).rglob("*.py")) for hit in _path_literals(module)]
    assert not found, "paths into experiments/ (ship the file as package data instead):\n" + "\n".join(found)


@pytest.mark.parametrize("code, hits", [
    # what l2i/runs.py and l2i/training.py did before the configs moved into the package
    ('_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "l2i" / "configs"\n', ["'experiments'"]),
    ('CONFIG = os.path.join(ROOT, "experiments/apnet/configs", name)\n', ["'experiments/apnet/configs'"]),
    ('"""Written by ``experiments/apnet/train.py``."""\n', []),  # a docstring names a script: fine
    ('raise ValueError("learn one with experiments/l2i/learn_dictionary.py")\n', []),  # so does a message
])
def test_the_path_check_catches_the_old_lookups(tmp_path, code, hits):
    module = tmp_path / "module.py"
    module.write_text(code)
    assert [hit.split(": ", 1)[1] for hit in _path_literals(module, tmp_path)] == hits
