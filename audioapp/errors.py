"""Errors of the web application, each mapped to one HTTP status by :mod:`audioapp.server`.

Bad parameters are :class:`audiodata.errors.ParameterError` (HTTP 400), as everywhere in the
package; these add the cases a web request can also hit. :func:`existing_index` checks an
index from a request (a prototype, a component) and refuses it with :class:`NotFound`.

All derive from :class:`AppError` (with :class:`audioapp.saving.StorageLimit`, HTTP 507), an
:class:`audiodata.errors.AudioDataError`: an error the server does not map to its own status is
a 400, as before.
"""
from audiodata.errors import AudioDataError


class AppError(AudioDataError):
    """Base class of the web application's own errors (each subclass has its HTTP status)."""


class NotFound(AppError, LookupError):
    """An unknown clip, prototype, version or upload (HTTP 404). The message names it."""


class Conflict(AppError, RuntimeError):
    """The request cannot run now: a retrain is running, nothing to undo... (HTTP 409)."""


class PayloadTooLarge(AppError, ValueError):
    """An upload over the size cap (HTTP 413)."""


def existing_index(value, n, what, context):
    """``value`` as an ``int`` in ``[0, n)``, else :class:`NotFound` naming ``what`` (a prototype, a component).

    ``context`` ends the message of an index out of range ("in version 3 (8 prototypes)").
    """
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise NotFound(f"{what} {str(value)[:40]!r}: not an index") from None
    if not 0 <= index < n:
        raise NotFound(f"{what} {index} does not exist {context}")
    return index
