"""``python -m apnet.app``: see :mod:`apnet.app.cli`."""
import sys

from apnet.app.cli import main

sys.exit(main(prog="python -m apnet.app"))
