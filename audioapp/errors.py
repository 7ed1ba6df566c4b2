"""Errors of the web application, each mapped to one HTTP status by :mod:`audioapp.server`.

Bad parameters are :class:`audiodata.errors.ParameterError` (HTTP 400), as everywhere in the
package; these add the cases a web request can also hit.
"""
from audiodata.errors import AudioDataError


class NotFound(AudioDataError, LookupError):
    """An unknown clip, prototype, version or upload (HTTP 404). The message names it."""


class Conflict(AudioDataError, RuntimeError):
    """The request cannot run now: a retrain is running, nothing to undo... (HTTP 409)."""


class PayloadTooLarge(AudioDataError, ValueError):
    """An upload over the size cap (HTTP 413)."""
