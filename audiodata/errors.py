"""One family of exceptions for problems with user-supplied input.

Every message names the file, folder or value at fault, so a user can act on it
without reading a traceback (cf. librosa's ``ParameterError``).
"""


class AudioDataError(Exception):
    """Base class of every user-facing input problem raised by this package."""


class ParameterError(AudioDataError, ValueError):
    """A bad option or parameter value (names the option and the allowed values)."""


class AudioFileError(AudioDataError, ValueError):
    """An audio file that cannot be used: missing, empty, corrupt, not audio, NaN/Inf.

    Attributes
    ----------
    path : str
        The file at fault.
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # survive pickling across worker processes (joblib)
        return type(self), (self.path, self.reason)


class DatasetNotFoundError(AudioDataError, FileNotFoundError):
    """A dataset folder that is missing, incomplete or not in the official layout."""


class DownloadError(AudioDataError, OSError):
    """A download that failed or whose checksum does not match."""
