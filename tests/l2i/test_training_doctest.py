"""The examples in the docstrings of L2I's training model (l2i.trainer) run (the suite runs no --doctest-modules)."""
import doctest

import l2i.trainer


def test_l2i_trainer_docstring_examples():
    result = doctest.testmod(l2i.trainer, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
