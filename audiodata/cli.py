"""Validating ``type=`` callables for the numeric options of every command line of the project.

Every numeric option of ``experiments/``, ``audioapp`` and ``benchmarks/`` takes one of these
instead of a bare ``int`` or ``float``, so that a value outside the option's range is refused by
argparse itself, before anything is loaded or written, with argparse's usual one-line error and
exit status 2::

    usage: train_classifier.py [-h] ...
    train_classifier.py: error: argument --epochs: must be a positive integer, got -1

What the types accept, all of them alike:

* the text of a number in ASCII digits, with an optional sign and optional surrounding
  whitespace (``" 2 "`` is 2, as ``int(" 2 ")``); integers are plain digits (``"2.0"``,
  ``"1e3"``, ``"0x10"`` and ``"1_000"`` are refused), floats are decimal or scientific
  notation (``"0.5"``, ``".5"``, ``"1e-3"``);
* never ``"nan"``, ``"inf"``, ``"infinity"`` or a float that overflows to infinity
  (``"1e400"``), never ``"True"``/``"False"`` or a ``bool``;
* a number passed as a Python ``int`` (or, for the float types, a ``float``), so that
  defaults and programmatic calls are checked the same way.

The range each type checks is in its error message and in its attributes (``kind``, ``low``,
``high``, ``low_closed``, ``high_closed``, ``also``), which the tests read to build values just
outside it.
"""
import argparse
import math
import numbers
import re
import sys

from .errors import ParameterError

__all__ = [
    "NumberType",
    "int_range",
    "float_range",
    "fraction",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "finite_float",
    "seed",
    "port",
    "n_jobs",
    "require",
    "say",
    "add_data_options",
]

_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


class NumberType:
    """An argparse ``type=``: text -> ``int`` or finite ``float`` in an interval (plus special values).

    Parameters
    ----------
    kind : {int, float}
    low, high : number or None
        Bounds of the interval (None: unbounded on that side).
    low_closed, high_closed : bool
        Whether ``low`` / ``high`` themselves are allowed.
    also : tuple of int
        Values allowed outside the interval (``n_jobs``: -1).
    name : str
        ``__name__`` of the type (argparse shows it in some messages; the tests list it).
    description : str
        What the value must be, after "must be " in the error message.

    Calling the instance returns the value or raises :class:`argparse.ArgumentTypeError`
    with ``"must be <description>, got <text>"``; argparse prefixes the option's name.
    """

    def __init__(self, kind, low=None, high=None, low_closed=True, high_closed=True, also=(), name=None,
                 description=None):
        if kind not in (int, float):
            raise ValueError(f"kind must be int or float, got {kind!r}")
        self.kind, self.low, self.high = kind, low, high
        self.low_closed, self.high_closed = bool(low_closed), bool(high_closed)
        self.also = tuple(also)
        self.__name__ = name or f"{kind.__name__}_range"
        self.description = description or self._default_description()

    def _default_description(self):
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "[" if self.low_closed else "(", "]" if self.high_closed else ")"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>=' if self.low_closed else '>'} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<=' if self.high_closed else '<'} {self.high:g}"
        return "an integer" if self.kind is int else "a finite number"

    def __repr__(self):
        return self.__name__

    def contains(self, value):
        """Whether the number ``value`` is in range (no parsing)."""
        if value in self.also:
            return True
        if self.low is not None and not (value >= self.low if self.low_closed else value > self.low):
            return False
        if self.high is not None and not (value <= self.high if self.high_closed else value < self.high):
            return False
        return True

    def _refuse(self, shown):
        raise argparse.ArgumentTypeError(f"must be {self.description}, got {shown}")

    def _parse(self, text):
        if isinstance(text, bool):
            self._refuse(repr(text))
        if isinstance(text, int):
            return text if self.kind is int else float(text), str(text)
        if isinstance(text, float) and self.kind is float:
            if not math.isfinite(text):
                self._refuse(repr(text))
            return text, f"{text:g}"
        if not isinstance(text, str):
            self._refuse(repr(text))
        stripped = text.strip()
        pattern = _INT_TEXT if self.kind is int else _FLOAT_TEXT
        if not pattern.fullmatch(stripped):
            self._refuse(repr(text))
        value = self.kind(stripped)
        if not math.isfinite(value):  # "1e400"
            self._refuse(repr(text))
        return value, stripped

    def __call__(self, text):
        value, shown = self._parse(text)
        if not self.contains(value):
            self._refuse(shown)
        return value


def int_range(low=None, high=None, name=None, description=None):
    """Integers in ``[low, high]`` (None: unbounded)."""
    return NumberType(int, low, high, name=name, description=description)


def float_range(low=None, high=None, low_closed=True, high_closed=True, name=None, description=None):
    """Finite floats between ``low`` and ``high``, each end included or not."""
    return NumberType(float, low, high, low_closed, high_closed, name=name, description=description)


def fraction(include_0=False, include_1=False):
    """Floats in (0, 1), with 0 and/or 1 allowed as asked: ``fraction(include_0=True)`` is [0, 1)."""
    left, right = "[" if include_0 else "(", "]" if include_1 else ")"
    return float_range(0.0, 1.0, include_0, include_1, name=f"fraction{left}0,1{right}")


#: Integers >= 1: epochs, batch sizes, counts, folds.
positive_int = int_range(1, name="positive_int", description="a positive integer")
#: Integers >= 0: indices, epochs where 0 means "none", thread counts where 0 means "the default".
non_negative_int = int_range(0, name="non_negative_int", description="a non-negative integer")
#: Finite floats > 0.
positive_float = float_range(0.0, low_closed=False, name="positive_float", description="a positive finite number")
#: Finite floats >= 0: loss weights, seconds, distances.
non_negative_float = float_range(0.0, name="non_negative_float", description="a non-negative finite number")
#: Any finite float (refuses only nan, inf and non-numbers).
finite_float = float_range(name="finite_float", description="a finite number")
#: Random seeds: what ``numpy.random.seed`` (hence ``keras.utils.set_random_seed``) accepts.
seed = int_range(0, 2**32 - 1, name="seed", description=f"an integer seed in [0, {2**32 - 1}]")
#: TCP ports (0: the system picks a free one).
port = int_range(0, 65535, name="port", description="a port number in [0, 65535] (0: any free port)")
#: joblib-style process counts: -1 (all cores) or a positive integer.
n_jobs = NumberType(int, 1, also=(-1,), name="n_jobs", description="-1 (all cores) or a positive integer")


def require(kind, value, name, strict=False):
    """``kind(value)`` for a value from a config file or a call, as a :class:`ParameterError` naming ``name``.

    The library's entry points check their numbers with the same types as the command lines::

        epochs = require(positive_int, config["epochs"], "epochs")

    A string is refused even where its text would parse: values from YAML or code have types.
    NumPy numbers are taken as the Python numbers they equal (``np.int64(3)`` is 3; ``np.bool_``
    is refused like ``bool``), and an integral float such as YAML's ``200.0`` is taken as the
    integer 200 by an integer ``kind``, unless ``strict``: then any float is refused there, as
    Keras layer arguments and other programmatic sizes are (``n_prototypes=2.0`` is a mistake).
    The message is ``"<name> must be <kind.description>, got <value>"``.
    """
    if isinstance(value, str):
        raise ParameterError(f"{name} must be {kind.description}, got the string {value!r}")
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        value = int(value)  # np.int64 and the like (numpy's bool is no numbers.Integral)
    elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and type(value) is not float:
        value = float(value)  # np.float32, np.float64 and the like
    if isinstance(value, float) and kind.kind is int and value.is_integer() and not strict:
        value = int(value)  # YAML's 200.0
    try:
        return kind(value)
    except argparse.ArgumentTypeError as err:
        raise ParameterError(f"{name} {err}") from None


def say(line):
    """Print one progress or status line of a command line to stderr, at once (stdout keeps the results)."""
    print(line, file=sys.stderr, flush=True)


def add_data_options(parser, data_dir_required=False):
    """Add ``--data-dir`` (the folder holding the dataset folders) and ``--cache-dir`` (the feature cache).

    ``--data-dir`` defaults to ``$AUDIO_DATA_DIR`` (:func:`audiodata.download.resolve_data_dir`) unless
    ``data_dir_required``; ``--cache-dir`` to ``$AUDIO_CACHE_DIR`` or ``~/.cache``.
    """
    if data_dir_required:
        parser.add_argument("--data-dir", required=True, help="folder holding the dataset folders")
    else:
        parser.add_argument("--data-dir", default=None,
                            help="folder holding the dataset folder (default $AUDIO_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default $AUDIO_CACHE_DIR or ~/.cache)")
    return parser
