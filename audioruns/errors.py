"""The run layer's exceptions: problems with model files and training runs.

Both derive from :class:`RunError`, itself an :class:`audiodata.errors.AudioDataError`, so
the command lines, which catch ``AudioDataError`` (print ``error: ...``, exit 2), report them
as they report a bad input (``docs/robustness.md``, "Exception families").
"""
from audiodata.errors import AudioDataError

__all__ = ["RunError", "ModelFileError", "TrainingDivergedError"]


class RunError(AudioDataError):
    """Base class of the run layer's errors (model files, training runs)."""


class ModelFileError(RunError, ValueError):
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


class TrainingDivergedError(RunError, RuntimeError):
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
