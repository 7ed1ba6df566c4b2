"""The package layers import one way: audiodata <- audioruns <- apnet, l2i <- audioapp, experiments.

Every ``import`` statement of every module is read (those inside functions too), so a new
upward import fails here, naming the file and line.
"""
import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("audiodata", "audioruns", "apnet", "l2i", "audioapp")
#: What each package may import among ours.
ALLOWED = {
    "audiodata": {"audiodata"},
    "audioruns": {"audiodata", "audioruns"},
    "apnet": {"audiodata", "audioruns", "apnet"},
    "l2i": {"audiodata", "audioruns", "l2i"},
    "audioapp": set(PACKAGES),
}
#: The one place l2i may use apnet: its APNet baseline (Table VIII).
L2I_USES_APNET = {"l2i/baselines/apnet_baseline.py"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def _violations(package):
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        allowed = ALLOWED[package] | ({"apnet"} if rel in L2I_USES_APNET else set())
        for line, top in _imports(path):
            if top in PACKAGES and top not in allowed:
                found.append(f"{rel}:{line} imports {top}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_layers(package):
    assert _violations(package) == []


def test_the_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The parser counts a function-level import (the old apnet/app imported l2i that way)."""
    module = tmp_path / "audioruns" / "bad.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from apnet.model import APNet\n    return APNet\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _violations("audioruns") == ["audioruns/bad.py:2 imports apnet"]

