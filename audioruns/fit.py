"""One resumable ``fit`` for both papers: best-epoch selection, early stopping, ``history.csv``.

* :func:`fit_resumable` -- ``model.fit`` that resumes an interrupted run bit for bit from its
  ``backup/``, logs ``history.csv``, stops at the first NaN/Inf loss or weight, optionally stops
  early, and keeps the best epoch either as the whole model (``keep_best="model"``: APNet and
  its baselines, Section 4.4 of Zinemanas et al.) or as weights restored at the end
  (``keep_best="weights"``: the L2I interpreter's validation split);
* :class:`BestEpoch` -- the selection rule, defined once: the epoch with the highest finite
  ``monitor``, strictly above the best so far (the first on ties; NaN never counts).
  :class:`KeepBestWeights` keeps it on disk (``best.weights.h5`` + ``best.json``),
  :class:`KeepBestInMemory` in memory (the web app's retraining);
* :func:`early_stopping_state`, :class:`ResumableEarlyStopping` -- patience replayed from
  ``history.csv``, so a resumed run stops at the epoch an uninterrupted one does;
* :func:`read_history`, :func:`best_checkpoint`.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from audiodata.cli import positive_int, require
from audioruns.checkpoints import (AtomicBackupAndRestore, AtomicModelCheckpoint, DivergenceGuard, EpochOrder,
                                   EpochTimer, completed_epochs, load_weights_file, save_model_atomic)
from audioruns.distribute import distribute_fit_data
from audioruns.runs import write_results

__all__ = [
    "KEEP_BEST",
    "BEST_WEIGHTS",
    "BEST_JSON",
    "BestEpoch",
    "KeepBestWeights",
    "KeepBestInMemory",
    "EarlyStoppingState",
    "early_stopping_state",
    "ResumableEarlyStopping",
    "best_checkpoint",
    "read_history",
    "fit_resumable",
]

#: Ways :func:`fit_resumable` keeps the best epoch: none (the last epoch), the whole model
#: (``model.keras``, replaced at each better epoch), or weights restored at the end.
KEEP_BEST = (None, "model", "weights")
#: Files of the best checkpoint kept with ``keep_best="weights"``: the weights and ``{"epoch", "value", "monitor"}``.
BEST_WEIGHTS, BEST_JSON = "best.weights.h5", "best.json"


def _value(logs, monitor):
    value = (logs or {}).get(monitor)
    return math.nan if value is None else float(value)


def _improves(value, best):
    """The selection rule: a finite value strictly above the best so far (``best`` None: nothing yet)."""
    return math.isfinite(value) and (best is None or value > best)


# --------------------------------------------------------------------------- history


def read_history(path):
    """Rows of ``history.csv`` as a DataFrame; none when it is missing or empty.

    (:class:`keras.callbacks.CSVLogger` creates the file before it writes the first row.)

    Parameters
    ----------
    path : str or Path
        The ``history.csv`` file.

    Returns
    -------
    history : pandas.DataFrame
        One row per epoch; an empty frame with an ``epoch`` column when there is none.
    """
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame({"epoch": []})


def _history_best(history, monitor):
    """(best value, its 0-based epoch) of ``monitor`` in ``history``: the first maximum; (None, None) if none."""
    best, best_epoch = None, None
    if monitor not in history:
        return best, best_epoch
    for epoch, value in zip(history["epoch"], history[monitor]):
        value = float(value)
        if _improves(value, best):
            best, best_epoch = value, int(epoch)
    return best, best_epoch


# --------------------------------------------------------------------------- best epoch


class BestEpoch(keras.callbacks.Callback):
    """Tracks the epoch with the highest finite ``monitor``: strictly above the best so far.

    The first epoch wins ties and NaN/Inf never counts. Subclasses keep the weights of that
    epoch in :meth:`on_improvement`.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs (maximised).
    best : float or None
        Best value of epochs already run (a resumed run), None if none.
    best_epoch : int or None
        Its 0-based epoch.

    Attributes
    ----------
    best, best_epoch
        The best value and its 0-based epoch so far.
    """

    def __init__(self, monitor, best=None, best_epoch=None):
        super().__init__()
        self.monitor = monitor
        self.best = None if best is None else float(best)
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        value = _value(logs, self.monitor)
        if _improves(value, self.best):
            self.best, self.best_epoch = value, int(epoch)
            self.on_improvement(epoch, value)

    def on_improvement(self, epoch, value):
        """Called with the 0-based ``epoch`` and its ``value`` whenever a better epoch ends."""


class KeepBestInMemory(BestEpoch):
    """Keeps the best epoch's weights in memory and puts them back into the model when training ends."""

    def __init__(self, monitor):
        super().__init__(monitor)
        self.weights = None

    def on_improvement(self, epoch, value):
        self.weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


def best_checkpoint(run_dir):
    """``{"epoch", "value", "monitor"}`` of the weights :class:`KeepBestWeights` kept in ``run_dir`` (None: none).

    ``epoch`` is 0-based, as the ``epoch`` column of ``history.csv``.

    Parameters
    ----------
    run_dir : str or Path

    Returns
    -------
    dict or None
    """
    path = Path(run_dir) / BEST_JSON
    if not (path.is_file() and (Path(run_dir) / BEST_WEIGHTS).is_file()):
        return None
    return json.loads(path.read_text())


class KeepBestWeights(BestEpoch):
    """Saves the best epoch's weights as ``run_dir/best.weights.h5``, then ``best.json``, each atomically.

    Runs after the backup: an interruption between the backup of epoch ``e`` and the save of
    its best weights (or between the two files) leaves ``history.csv`` naming ``e`` as best
    while ``best.json`` names an earlier epoch; the backup then holds exactly ``e``'s
    weights, which :meth:`on_train_begin` (after the restore) saves.

    Parameters
    ----------
    run_dir : str or Path
    monitor : str
    best, best_epoch : float or None, int or None
        From the epochs already logged (:func:`fit_resumable` reads them from ``history.csv``).
    completed : int
        Epochs the backup holds.
    """

    def __init__(self, run_dir, monitor, best, best_epoch, completed):
        super().__init__(monitor, best, best_epoch)
        self.run_dir = Path(run_dir)
        self.completed = int(completed)

    def on_improvement(self, epoch, value):
        save_model_atomic(self.model, self.run_dir / BEST_WEIGHTS)
        write_results(self.run_dir / BEST_JSON, {"epoch": int(epoch), "monitor": self.monitor, "value": float(value)})

    def on_train_begin(self, logs=None):
        stored = best_checkpoint(self.run_dir)
        if self.best_epoch is None:
            if stored is not None:  # from epochs the backup does not hold
                for name in (BEST_WEIGHTS, BEST_JSON):
                    (self.run_dir / name).unlink(missing_ok=True)
        elif stored is None or int(stored["epoch"]) != self.best_epoch:
            if self.best_epoch != self.completed - 1:
                raise RuntimeError(f"{self.run_dir}: history.csv names epoch {self.best_epoch} as the best "
                                   f"({self.monitor}) but {BEST_JSON} holds {stored}; remove the run folder "
                                   "to train again")
            self.on_improvement(self.best_epoch, self.best)  # the weights BackupAndRestore just restored


# --------------------------------------------------------------------------- early stopping


@dataclass
class EarlyStoppingState:
    """Early-stopping counter replayed from ``history.csv`` (see :func:`early_stopping_state`).

    Attributes
    ----------
    best : float or None
        Highest value of the monitored metric so far (None before any finite value).
    wait : int
        Epochs since the last improvement (the last row included).
    stopped_epoch : int or None
        0-based epoch (``history["epoch"]``) at which ``wait`` reached the patience, or None.
    """

    best: object
    wait: int
    stopped_epoch: object


def _check_patience(patience):
    if patience is None:
        return None
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ValueError(f"`early_stopping` must be a positive number of epochs or None (off); "
                         f"received early_stopping={patience!r}")
    return int(patience)


def early_stopping_state(history, monitor, patience):
    """Replay early stopping over the rows of ``history`` (a ``history.csv`` frame).

    An epoch improves when its ``monitor`` value is finite and strictly above the best so far
    (:class:`BestEpoch`'s rule; the APNet authors' ``considered_improvement: 0.0``); any other
    epoch adds one to ``wait``. Patience runs out at the first epoch where ``wait`` reaches
    ``patience``: training stops after that epoch. Because the state is derived from the
    logged epochs only, it is the same after an interruption and resume as in an
    uninterrupted run.

    Parameters
    ----------
    history : pd.DataFrame
        With an ``epoch`` column (0-based) and, usually, ``monitor``.
    monitor : str
        Column maximised (e.g. ``val_probabilities_accuracy``).
    patience : int or None
        Epochs without improvement before stopping; None: never stop.

    Returns
    -------
    EarlyStoppingState
    """
    patience = _check_patience(patience)
    best, wait = None, 0
    if len(history) == 0:
        return EarlyStoppingState(None, 0, None)
    history = history.sort_values("epoch")
    values = history[monitor] if monitor in history else pd.Series(np.nan, index=history.index)
    for epoch, value in zip(history["epoch"], values):
        value = float(value)
        if _improves(value, best):
            best, wait = value, 0
        else:
            wait += 1
        if patience is not None and wait >= patience:
            return EarlyStoppingState(best, wait, int(epoch))
    return EarlyStoppingState(best, wait, None)


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Stop ``fit`` after ``patience`` epochs without a strict improvement of ``monitor`` (maximised).

    Unlike :class:`keras.callbacks.EarlyStopping`, its counter starts from a given state
    (:func:`early_stopping_state` of the epochs already logged), so a resumed run stops at
    the same epoch as an uninterrupted one. It does not restore weights: the best epoch is
    kept by ``keep_best`` in :func:`fit_resumable`.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs.
    patience : int
        Epochs without improvement after which training stops.
    best : float or None
        Best value of the epochs already run.
    wait : int
        Epochs since that best value.
    """

    def __init__(self, monitor, patience, best=None, wait=0):
        super().__init__()
        self.monitor = monitor
        self.patience = _check_patience(patience)
        if self.patience is None:
            raise ValueError("ResumableEarlyStopping needs a patience; leave the callback out to train every epoch")
        self.best = best
        self.wait = int(wait)
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = _value(logs, self.monitor)
        if _improves(value, self.best):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True


# --------------------------------------------------------------------------- fit


def _drop_rows_after(history_path, initial_epoch):
    """Keep the rows of ``history.csv`` of the epochs the backup holds (a kill can log one more)."""
    history = read_history(history_path)
    if history_path.exists():
        history = history[history["epoch"] < initial_epoch]
        if len(history):
            history.to_csv(history_path, index=False)
        else:
            history_path.unlink()
    return history


def fit_resumable(model, train_data, run_dir, epochs, *, validation_data=None, monitor=None, keep_best=None,
                  early_stopping=None, callbacks=(), verbose=2, export=None):
    """``model.fit`` for ``epochs`` epochs that resumes from the last completed epoch.

    Writes into ``run_dir``:

    * ``backup/`` -- the last epoch's weights, optimizer state, seed-generator states of the
      dropout / sampling layers and epoch number, committed atomically at the end of each
      epoch (:class:`audioruns.checkpoints.AtomicBackupAndRestore`, kept after training);
    * ``history.csv`` -- one row per epoch (losses, metrics, ``seconds``), appended to on
      resume;
    * with ``keep_best="model"``: ``model.keras``, the model of the epoch with the highest
      ``monitor``, replaced atomically at each better epoch
      (:class:`audioruns.checkpoints.AtomicModelCheckpoint`); with ``keep_best="weights"``:
      ``best.weights.h5`` and ``best.json`` (:class:`KeepBestWeights`), and ``model`` ends
      with those weights (with no finite ``monitor`` at all, with the last epoch's).

    Calling it again on the same ``run_dir`` continues from the last completed epoch up to
    ``epochs`` (nothing runs if they are all done; the backup's weights are restored): rows
    of ``history.csv`` from epochs the backup does not hold are dropped first, and the best
    kept so far is only replaced by a better epoch than the best in the history. The resumed
    run is the run it resumes, bit for bit, when ``train_data`` is a
    :class:`keras.utils.PyDataset` ordered by ``(seed, epoch)`` (``set_epoch``, as
    :class:`audioruns.batches.EpochOrderedBatches`): ``fit`` gets ``shuffle=False`` and
    :class:`audioruns.checkpoints.EpochOrder` sets the epoch. (Other ``train_data`` are passed
    with Keras' default ``shuffle=True``; their resume is not reproducible.)

    A NaN or infinite loss (every ``*loss`` entry of the logs, validation included) or weight
    stops training at once with :class:`audioruns.errors.TrainingDivergedError`
    (:class:`audioruns.checkpoints.DivergenceGuard`, the first callback): nothing of the
    diverged epoch is saved, the backup keeps the last finite epoch.

    With ``early_stopping = p`` training stops after ``p`` consecutive epochs whose
    ``monitor`` is not strictly above the best so far. The counter is replayed from
    ``history.csv`` (:func:`early_stopping_state`), so an interrupted run resumes with it, and
    a run that already stopped early runs no further epoch, even when asked for more.

    Inside :func:`audioruns.distribute.data_parallel` on JAX with several devices, every training batch
    must split evenly over them: ``train_data`` loses the last ``len % n`` rows of its partial batch
    (:class:`audioruns.distribute.EvenBatches`) and ``validation_data`` is evaluated unsplit by a callback
    (:class:`audioruns.distribute.UndistributedValidation`, the same ``val_*`` logs); elsewhere both pass
    to ``fit`` unchanged.

    Parameters
    ----------
    model : keras.Model
        Compiled.
    train_data : keras.utils.PyDataset or anything ``fit`` takes
    run_dir : str or Path
        Created if missing.
    epochs : int
        Total epochs of the run (not of this call).
    validation_data : optional
        ``fit``'s ``validation_data``.
    monitor : str, optional
        Key of the epoch logs maximised by ``keep_best`` and ``early_stopping``.
    keep_best : {None, "model", "weights"}
        See above; needs ``monitor``.
    early_stopping : int, optional
        Patience in epochs; None trains all ``epochs``. Needs ``monitor``.
    callbacks : sequence of keras.callbacks.Callback
        Run after the timer and before anything reads the logs (e.g. a callback that adds
        ``monitor`` to them).
    verbose : int
        ``fit``'s.
    export : callable, optional
        With ``keep_best="model"``: ``export(model)`` gives the model saved as ``model.keras``
        (e.g. with its input normalisation attached).

    Returns
    -------
    history : pd.DataFrame
        All rows of ``history.csv``.
    epochs_run : int
        Epochs run by this call.

    Raises
    ------
    audioruns.errors.TrainingDivergedError
        A loss or weight became NaN/Inf (the message names ``run_dir``, epoch, batch and loss).
    audioruns.errors.ModelFileError
        The backup cannot be read (truncated or corrupt).
    ValueError
        ``epochs`` < 1, an unknown ``keep_best``, or ``keep_best``/``early_stopping`` without ``monitor``.
    """
    epochs = require(positive_int, epochs, "epochs")
    patience = _check_patience(early_stopping)
    if keep_best not in KEEP_BEST:
        raise ValueError(f"`keep_best` must be one of {KEEP_BEST}; received keep_best={keep_best!r}")
    if monitor is None and (keep_best is not None or patience is not None):
        raise ValueError("`keep_best` and `early_stopping` need a `monitor`")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = run_dir / "backup"
    history_path = run_dir / "history.csv"
    initial_epoch = completed_epochs(backup_dir)
    history = _drop_rows_after(history_path, initial_epoch)
    state = early_stopping_state(history, monitor, patience) if monitor is not None else None
    if state is not None and state.stopped_epoch is not None:  # stopped early before: nothing more to run
        return history.reset_index(drop=True), 0

    steps = [DivergenceGuard(run_dir)]  # first: raises before anything saves a diverged epoch
    if hasattr(train_data, "set_epoch"):
        train_data.set_epoch(initial_epoch)
        steps.append(EpochOrder(train_data))
    steps += [EpochTimer(), *callbacks]
    if keep_best == "model":
        export_option = {} if export is None else {"export": export}
        steps.append(AtomicModelCheckpoint(run_dir / "model.keras", monitor=monitor, mode="max", save_best_only=True,
                                           initial_value_threshold=state.best, **export_option))
    if patience is not None:
        steps.append(ResumableEarlyStopping(monitor, patience, best=state.best, wait=state.wait))
    steps += [keras.callbacks.CSVLogger(str(history_path), append=True),
              AtomicBackupAndRestore(backup_dir, delete_checkpoint=False)]
    if keep_best == "weights":
        steps.append(KeepBestWeights(run_dir, monitor, *_history_best(history, monitor), initial_epoch))
    # shuffle=False: a PyDataset orders its own batches by (seed, epoch); Keras' shuffle uses the global `random`.
    shuffle = not isinstance(train_data, keras.utils.PyDataset)
    # Under --distribute on JAX every batch must split evenly over the devices (audioruns.distribute): the
    # validation is then a callback, first, so that every other callback reads its val_* logs.
    train_data, validation_data, validate = distribute_fit_data(train_data, validation_data)
    steps = validate + steps
    model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=steps, verbose=verbose,
              shuffle=shuffle)
    if keep_best == "weights" and best_checkpoint(run_dir) is not None:
        load_weights_file(model, run_dir / BEST_WEIGHTS, kind="best checkpoint")
    final = read_history(history_path)
    return final, max(0, len(final) - len(history))
