"""One family of exceptions for problems with user-supplied input.

Every message names the file, folder or value at fault, so a user can act on it
without reading a traceback (cf. librosa's ``ParameterError``). :class:`AudioDataError`
is also the base of the other packages' families (:class:`audioruns.errors.RunError`:
model files and training runs; :class:`audioapp.errors.AppError`: the web app), so that
one ``except AudioDataError`` catches every user-facing problem (``docs/robustness.md``).
"""


class AudioDataError(Exception):
    """Base class of every user-facing input problem raised by this package (and of
    :class:`audioruns.errors.RunError` and :class:`audioapp.errors.AppError`)."""


class ParameterError(AudioDataError, ValueError):
    """A bad option or parameter value (names the option and the allowed values)."""


class _AboutAFile:
    """Mixin of the problems with one file: ``path`` and ``reason``, message ``"<path>: <reason>"``."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # survive pickling across worker processes (joblib)
        return type(self), (self.path, self.reason)


class AudioFileError(_AboutAFile, AudioDataError, ValueError):
    """An audio file that cannot be used: missing, empty, corrupt, not audio, NaN/Inf.

    Attributes
    ----------
    path : str
        The file at fault.
    """


class AudioFileWarning(_AboutAFile, UserWarning):
    """An audio file that can be used, but not as its header describes it (e.g. a truncated WAV).

    Attributes
    ----------
    path : str
        The file concerned (also at the start of the message).
    """


class DatasetNotFoundError(AudioDataError, FileNotFoundError):
    """A dataset folder that is missing, incomplete or not in the official layout."""


class DownloadError(AudioDataError, OSError):
    """A download that failed or whose checksum does not match."""


class FeatureCacheError(_AboutAFile, AudioDataError, ValueError):
    """A cache entry that cannot be used or repaired (the message names the file).

    Attributes
    ----------
    path : str
        The file or folder at fault.
    """
