"""Argument checks shared by the baseline builders (private)."""
from audiodata.cli import positive_int, require
from audiodata.errors import ParameterError


def check_input_shape(input_shape, model_name, allow_none_time=False):
    """Return ``input_shape`` as a ``(T, F)`` tuple, or raise a ``ValueError`` naming it."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    valid = shape is not None and len(shape) == 2
    if valid:
        time, freq = shape
        valid = _positive_int(freq) and (_positive_int(time) or (allow_none_time and time is None))
    if not valid:
        allowed = "(T, F) with positive ints" + (" (T may be None)" if allow_none_time else "")
        raise ValueError(f"{model_name}: input_shape must be {allowed}; received input_shape={input_shape!r}")
    return tuple(None if d is None else int(d) for d in shape)


def check_n_classes(n_classes, model_name):
    """Return ``n_classes`` as an int >= 2, or raise a ``ValueError`` naming it."""
    if not _positive_int(n_classes) or n_classes < 2:
        raise ValueError(f"{model_name}: n_classes must be an int >= 2; received n_classes={n_classes!r}")
    return int(n_classes)


def check_rate(value, name, model_name):
    """Return a rate in [0, 1) as a float, or raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{model_name}: {name} must be a float in [0, 1); received {name}={value!r}")
    return float(value)


def _positive_int(value):
    """Whether ``value`` is a positive integer in the sense of :func:`audiodata.cli.require` (strict:
    ``int`` or NumPy integer >= 1, never a ``bool``, float or string); the callers raise their own messages."""
    try:
        require(positive_int, value, "value", strict=True)
    except ParameterError:
        return False
    return True
