"""Every docstring example of the five packages runs and gives what it shows.

The modules are found by scanning for ``>>>``, so a new example is tested without being listed
here; the default run has no ``--doctest-modules``, hence this test.
"""
import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("audiodata", "audioruns", "apnet", "l2i", "audioapp")


def _modules_with_examples():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if ">>> " in path.read_text():
                parts = path.relative_to(REPO).with_suffix("").parts
                yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = list(_modules_with_examples())


def test_the_scan_finds_the_examples():
    assert {"apnet.model", "apnet.losses", "l2i.trainer", "audioruns.metrics"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} fail"
