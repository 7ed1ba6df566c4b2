"""One family of exceptions for problems with user-supplied input.

Every message names the file, folder or value at fault, so a user can act on it
without reading a traceback (cf. librosa's ``ParameterError``).
"""


class AudioDataError(Exception):
    """Base class of every user-facing input problem raised by this package."""


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


class ModelFileError(AudioDataError, ValueError):
    """A saved model or weights file that cannot be read: missing, truncated or corrupt.

    Raised by :func:`audioruns.checkpoints.load_model_file` (a ``ValueError``, as the
    ``keras.models.load_model`` error it replaces).

    Attributes
    ----------
    path : str
        The file at fault.
    """

    def __init__(self, path, message):
        self.path = str(path)
        self.message = message
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.path, self.message)


class TrainingDivergedError(AudioDataError, RuntimeError):
    """Training stopped because a logged loss became NaN or infinite.

    The message names the run folder, the epoch (1-based), the batch when it happened
    during training (None when the validation loss diverged) and the loss. Nothing of that
    epoch was saved: the run's backup still holds the last finite epoch.

    Attributes
    ----------
    run_dir : str or None
    epoch : int
        1-based epoch.
    batch : int or None
        1-based batch of that epoch (None: at the end of the epoch, e.g. a validation loss).
    loss : str
        Name of the non-finite loss (``"loss"``, ``"val_loss"``, ...).
    value : float
    """

    def __init__(self, run_dir, epoch, batch, loss, value, message=None):
        self.run_dir = None if run_dir is None else str(run_dir)
        self.epoch, self.batch, self.loss, self.value = epoch, batch, loss, value
        if message is None:
            where = f"epoch {epoch}" + ("" if batch is None else f", batch {batch}")
            folder = "training" if run_dir is None else f"{self.run_dir}: training"
            message = (f"{folder} diverged at {where}: {loss} = {value}; stopped without saving this epoch "
                       "(lower the learning rate or check the features for NaN/Inf)")
        self.message = message
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.run_dir, self.epoch, self.batch, self.loss, self.value, self.message)


class FeatureCacheError(_AboutAFile, AudioDataError, ValueError):
    """A cache entry that cannot be used or repaired (the message names the file).

    Attributes
    ----------
    path : str
        The file or folder at fault.
    """
