"""The examples in l2i.training's docstrings run (the suite runs no --doctest-modules)."""
import doctest

import l2i.training


def test_l2i_training_docstring_examples():
    result = doctest.testmod(l2i.training, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
