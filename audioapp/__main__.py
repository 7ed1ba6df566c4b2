"""``python -m audioapp``: see :mod:`audioapp.cli`."""
import sys

from audioapp.cli import main

sys.exit(main(prog="python -m audioapp"))
