"""Retraining a model version from the train page, with progress, cancellation and best-epoch selection.

:func:`fit_version` trains a copy of a version with the run's settings
(:func:`apnet.training.compile_for_run`: ``alpha``, ``beta``, ``gamma``,
``learning_rate``; ``batch_size``; ``seed``) on the fold's training split, keeping the epoch
of best validation accuracy (Section 4.4) in memory (:class:`audioruns.fit.KeepBestInMemory`): nothing is
written. :class:`_Progress` reports every batch and epoch to the page (through
:class:`~audioapp.background_job.BackgroundJob`) and stops the fit at once when the job is
cancelled. A NaN/Inf loss or weight stops it with
:class:`audioruns.errors.TrainingDivergedError` (:class:`~audioruns.checkpoints.DivergenceGuard`).
"""
import time
from dataclasses import dataclass

import keras
import numpy as np

from apnet.training import APNET_MONITOR, compile_for_run, fold_batches
from audioruns.checkpoints import DivergenceGuard, EpochOrder
from audioruns.fit import KeepBestInMemory
from audiodata.cli import int_range, require

#: Most epochs one retrain request may ask for.
MAX_EPOCHS = 500
#: What a retrain's ``epochs`` may be.
EPOCHS = int_range(1, MAX_EPOCHS, name="epochs")


def check_epochs(epochs):
    """``epochs`` as an int in [1, :data:`MAX_EPOCHS`] (not a bool, float or string), else :class:`ParameterError`."""
    return require(EPOCHS, epochs, "epochs", strict=True)


class _Cancelled(Exception):
    """Raised by :class:`_Progress` to leave ``fit`` at once (no validation pass) on cancellation."""


class _Progress(keras.callbacks.Callback):
    """Reports batches and epochs of a fit to ``report`` and stops it when ``cancelled`` is set."""

    def __init__(self, report, cancelled, epochs, steps):
        super().__init__()
        self.report, self.cancelled, self.epochs, self.steps = report, cancelled, epochs, steps
        self.history = []
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        done = self._epoch * self.steps + batch + 1
        loss = None if not logs or logs.get("loss") is None else float(logs["loss"])
        self.report(epoch=self._epoch + 1, batch=batch + 1, progress=done / (self.epochs * self.steps), loss=loss)
        if self.cancelled is not None and self.cancelled.is_set():
            raise _Cancelled

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._start}
        row.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.history.append(row)
        self.report(history=list(self.history))


def copy_model(model):
    """A new model with the same architecture and weights (no shared variables)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


@dataclass
class Fit:
    """What :func:`fit_version` did.

    Attributes
    ----------
    cancelled : bool
        The fit was stopped by ``cancelled``; the model is then partly trained and must be dropped.
    history : list of dict
        One row per completed epoch (``epoch``, ``seconds`` and the Keras logs).
    best_epoch : int or None
        The epoch (1-based) whose weights the model holds (best validation accuracy).
    """

    cancelled: bool
    history: list
    best_epoch: int = None


def fit_version(model, config, data, batch_size, scaler, epochs, report, cancelled=None):
    """Train ``model`` (a copy: :func:`copy_model`) in place ``epochs`` epochs with the run's settings.

    Parameters
    ----------
    model : keras.Model
    config : dict
        The run's ``config.yaml`` (``alpha``, ``beta``, ``gamma``, ``learning_rate``, ``seed``).
    data : audioruns.folds.Fold
    batch_size : int
    scaler : fitted scaler of the run
    epochs : int
    report : callable
        Called with keyword arguments (``phase``, ``epochs``, ``steps``, ``epoch``, ``batch``,
        ``progress`` in [0, 1], ``loss``, ``history``) as training goes.
    cancelled : threading.Event, optional
        Set it to stop after the current batch.

    Returns
    -------
    Fit

    Raises
    ------
    audioruns.errors.TrainingDivergedError
        A NaN/Inf loss or weight.
    """
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    compile_for_run(model, config)
    batches = fold_batches(data, batch_size, scaler=scaler, seed=seed, splits=("train", "validation"))
    train, validation = batches["train"], batches["validation"]
    progress, best = _Progress(report, cancelled, epochs, len(train)), KeepBestInMemory(APNET_MONITOR)
    report(phase="training", epochs=epochs, steps=len(train), epoch=0, batch=0, progress=0.0)
    try:
        # No Keras shuffling (Python's global random): the order is FeatureBatches' (seed, epoch) one.
        model.fit(train, validation_data=validation, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[DivergenceGuard(), EpochOrder(train), progress, best])
    except _Cancelled:
        return Fit(True, progress.history)
    return Fit(False, progress.history, None if best.best_epoch is None else best.best_epoch + 1)
