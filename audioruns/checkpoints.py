"""Model files and training state written so that an interruption never leaves them half-written.

The training loops of both papers (:func:`apnet.training.fit_resumable`,
:func:`l2i.training.fit_resumable`) use these pieces:

* :func:`save_model_atomic` -- ``model.save`` / ``model.save_weights`` to a temporary file
  in the same folder (same suffix, as Keras requires), ``fsync``, then ``os.replace``: the
  file at ``path`` is always either the previous complete file or the new complete one;
* :class:`AtomicModelCheckpoint` -- :class:`keras.callbacks.ModelCheckpoint` (``monitor``,
  ``mode``, ``save_best_only``, ``initial_value_threshold``) saving with
  :func:`save_model_atomic`, optionally a model derived from the training one (``export``);
* :func:`load_model_file`, :func:`load_weights_file` -- ``keras.models.load_model`` /
  ``model.load_weights`` that report a missing, truncated or corrupt file as
  :class:`audioruns.errors.ModelFileError` naming it (Keras says
  ``ValueError: File not found: ...model.keras`` for a file that exists but is truncated);
* :class:`AtomicBackupAndRestore` -- :class:`keras.callbacks.BackupAndRestore` whose backup
  is committed atomically (Keras' writes the weights in place, then the metadata in place:
  a kill during either breaks the resume or resumes from weights of the wrong epoch) and
  which also saves the states of the model's :class:`keras.random.SeedGenerator` s (dropout,
  Gumbel sampling), which ``save_weights`` leaves out;
* :class:`DivergenceGuard` -- stops training with :class:`audioruns.errors.TrainingDivergedError`
  as soon as a logged loss (training or validation) or a weight is NaN or infinite, before
  any later callback saves that epoch;
* :class:`EpochOrder` -- sets the epoch of a dataset with ``set_epoch`` at the start of each
  epoch, so its batch order is a function of ``(seed, epoch)`` whatever Keras' calls of
  ``on_epoch_end`` (it calls it once more than there are epochs: once before the first);
* :class:`EpochTimer` -- adds the seconds of each epoch to the logs, for ``history.csv``.

Backup folder layout (``backup/``): ``training_metadata.json`` is the commit point, written
last and atomically: ``{"epoch": E, "batch": 0, "weights": "epochE.weights.h5",
"seed_generators": [[seed, counter], ...]}`` where ``E`` epochs are complete. The weights file
it names is written (atomically) before it. Older weights files are removed after the commit.
A folder written by Keras' own ``BackupAndRestore`` (``latest.weights.h5``, no ``weights`` key)
is read too.
"""
import json
import math
import os
import secrets
import time
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

from audioruns.errors import ModelFileError, TrainingDivergedError

__all__ = [
    "save_model_atomic",
    "write_text_atomic",
    "AtomicModelCheckpoint",
    "model_file_problem",
    "load_model_file",
    "load_weights_file",
    "AtomicBackupAndRestore",
    "read_backup",
    "completed_epochs",
    "seed_generator_states",
    "set_seed_generator_states",
    "DivergenceGuard",
    "EpochOrder",
    "EpochTimer",
]

#: Suffixes Keras dispatches on (``save_weights`` needs ``.weights.h5``; ``save`` ``.keras`` or legacy ``.h5``).
MODEL_SUFFIXES = (".weights.h5", ".keras", ".h5")
#: File names of a backup folder.
BACKUP_METADATA = "training_metadata.json"
_KERAS_BACKUP_WEIGHTS = "latest.weights.h5"


def _suffix(path):
    for suffix in MODEL_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return suffix
    raise ValueError(f"{path}: a model file must end in one of {list(MODEL_SUFFIXES)}")


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary(path, suffix):
    stem = path.name[:-len(suffix)]
    return path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")


def _replace_with(path, write):
    """Write ``path`` through ``write(temporary path)``, fsync, rename over ``path`` (nothing left on failure)."""
    path = Path(path)
    suffix = _suffix(path) if path.name.endswith(MODEL_SUFFIXES) else path.suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, suffix)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_model_atomic(model, path, **kwargs):
    """Save ``model`` to ``path`` atomically: a complete new file or the previous one, never a partial one.

    ``*.weights.h5``: ``model.save_weights``; ``*.keras`` (or legacy ``*.h5``): ``model.save``
    (``kwargs`` go to it). The model is saved to a hidden temporary file of the same suffix
    in the same folder, flushed to disk (``fsync``) and renamed over ``path``
    (``os.replace``, atomic on POSIX and Windows); on any error the temporary file is removed
    and ``path`` is untouched.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        ``*.keras``, ``*.h5`` or ``*.weights.h5``.
    **kwargs
        Options of ``model.save`` (none for ``*.weights.h5``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        ``kwargs`` given for a ``*.weights.h5`` file.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".weights.h5":
        if kwargs:
            raise TypeError(f"save_weights takes no options; received {sorted(kwargs)}")
        return _replace_with(path, lambda tmp: model.save_weights(tmp))
    return _replace_with(path, lambda tmp: model.save(tmp, **kwargs))


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``).

    Parameters
    ----------
    path : str or Path
    text : str

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)

    def write(tmp):
        with open(tmp, "w") as handle:
            handle.write(text)

    return _replace_with(path, write)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """:class:`keras.callbacks.ModelCheckpoint` whose saves are atomic (:func:`save_model_atomic`).

    Same arguments and semantics (``monitor``, ``mode``, ``save_best_only``,
    ``save_weights_only``, ``initial_value_threshold``, ``filepath`` patterns); a kill
    while saving leaves the previous checkpoint intact instead of a truncated file.

    ``export``, if given, is called with the training model at each save and returns the model
    written instead (e.g. :func:`audioruns.preprocessing.attach_scaler` puts the input
    normalisation in front); the training model itself is left as it is.
    """

    def __init__(self, filepath, *args, export=None, **kwargs):
        super().__init__(filepath, *args, **kwargs)
        if export is not None and not callable(export):
            raise TypeError(f"`export` must be a callable model -> model to save; received {export!r}")
        self.export = export

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        if Path(filepath).is_dir():
            raise IsADirectoryError(f"ModelCheckpoint needs a file path; {filepath} is a folder")
        model = self.model if self.export is None else self.export(self.model)
        if self.save_weights_only:
            save_model_atomic(model, filepath)
        else:
            save_model_atomic(model, filepath, overwrite=True)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")


# --------------------------------------------------------------------------- reading


def model_file_problem(path):
    """Why the model or weights file ``path`` cannot be complete (a string), or None if it looks intact.

    ``.keras``: a zip archive whose members all pass their CRC check and that holds
    ``config.json``; ``.h5`` / ``.weights.h5``: an HDF5 file whose datasets can all be read.

    Parameters
    ----------
    path : str or Path
        A ``.keras``, ``.h5`` or ``.weights.h5`` file.

    Returns
    -------
    str or None
    """
    path = Path(path)
    try:
        if path.name.endswith(".keras"):
            if not zipfile.is_zipfile(path):
                return "not a complete zip archive"
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                if bad is not None:
                    return f"member {bad} fails its CRC check"
                if "config.json" not in archive.namelist():
                    return "no config.json in the archive"
            return None
        if path.name.endswith(".h5"):

            if not h5py.is_hdf5(path):
                return "not an HDF5 file"
            with h5py.File(path, "r") as handle:
                def read(_, item):
                    if isinstance(item, h5py.Dataset):
                        item[()]
                handle.visititems(read)
            return None
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _check_readable(path, kind="model file"):
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise ModelFileError(path, f"{kind} {path} {what}")
    problem = model_file_problem(path)
    if problem is not None:
        raise ModelFileError(path, f"corrupt or truncated {kind} {path} ({problem})")
    return path


_LOAD_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def load_model_file(path, **kwargs):
    """``keras.models.load_model(path, **kwargs)`` with a clear error for a missing or damaged file.

    Parameters
    ----------
    path : str or Path
    **kwargs
        Options of :func:`keras.models.load_model` (``compile``, ``custom_objects``, ...).

    Returns
    -------
    model : keras.Model

    Raises
    ------
    audioruns.errors.ModelFileError
        ``"model file PATH not found"``; ``"corrupt or truncated model file PATH (why)"`` when
        the archive is incomplete (:func:`model_file_problem`); ``"cannot load model file PATH
        (error)"`` when Keras fails to read an intact file (e.g. a layer class that is not
        registered: import its package first).
    """
    path = _check_readable(path)
    try:
        return keras.models.load_model(path, **kwargs)
    except _LOAD_ERRORS as err:
        raise ModelFileError(path, f"cannot load model file {path} ({type(err).__name__}: {err})") from err


def load_weights_file(model, path, *, kind="weights file"):
    """``model.load_weights(path)`` with :class:`~audioruns.errors.ModelFileError` for a missing or damaged file.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
    kind : str
        What the file is, for the messages.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    audioruns.errors.ModelFileError
        The file is missing, truncated or corrupt, or Keras cannot load it into ``model``.
    """
    path = _check_readable(path, kind)
    try:
        model.load_weights(path)
    except _LOAD_ERRORS as err:
        raise ModelFileError(path, f"cannot load {kind} {path} into {model.name!r} "
                                   f"({type(err).__name__}: {err})") from err
    return path


# --------------------------------------------------------------------------- random state


def _seed_generators(model):
    seen, found = set(), []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", ()):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
    return found


def seed_generator_states(model):
    """States ``[seed, counter]`` of every :class:`keras.random.SeedGenerator` of ``model`` (layer order).

    ``model.save_weights`` does not save them (a ``Dropout`` layer has no weights), so a
    model restored from its weights alone draws other dropout masks than the run it resumes.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of list of int
    """
    return [[int(v) for v in np.asarray(keras.ops.convert_to_numpy(g.state.value)).ravel()]
            for g in _seed_generators(model)]


def set_seed_generator_states(model, states, *, source="the backup"):
    """Restore :func:`seed_generator_states` into ``model`` (same architecture).

    Parameters
    ----------
    model : keras.Model
    states : list of list of int
        As returned by :func:`seed_generator_states`.
    source : str
        Where ``states`` come from, for the message.

    Returns
    -------
    None

    Raises
    ------
    audioruns.errors.ModelFileError
        ``states`` does not hold one state per random generator of ``model``.
    """
    generators = _seed_generators(model)
    if len(generators) != len(states):
        raise ModelFileError(source, f"{source} holds {len(states)} random-generator states, the model "
                                     f"{model.name!r} has {len(generators)}: it is not the model that was backed up")
    for generator, state in zip(generators, states):
        generator.state.assign(np.asarray(state).astype(keras.backend.standardize_dtype(generator.state.dtype)))


# --------------------------------------------------------------------------- backup


def read_backup(backup_dir):
    """The committed metadata of a backup folder (dict with ``epoch``), or None when there is none.

    Raises :class:`~audioruns.errors.ModelFileError` when the metadata cannot be read.

    Parameters
    ----------
    backup_dir : str or Path

    Returns
    -------
    dict or None

    Raises
    ------
    audioruns.errors.ModelFileError
        The metadata file is unreadable or has no integer ``epoch``.
    """
    path = Path(backup_dir) / BACKUP_METADATA
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFileError(path, f"corrupt or truncated training backup {path} ({type(err).__name__}: {err}); "
                                   "delete the backup folder to train from scratch") from err
    return state


def completed_epochs(backup_dir):
    """Number of epochs saved in a backup folder (:class:`AtomicBackupAndRestore` or Keras'; 0 if none).

    Parameters
    ----------
    backup_dir : str or Path

    Returns
    -------
    int
    """
    state = read_backup(backup_dir)
    return 0 if state is None else int(state["epoch"])


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """:class:`keras.callbacks.BackupAndRestore` (end of each epoch) with an atomic commit and the RNG states.

    At the end of epoch ``e`` (0-based) it writes ``epoch<e+1>.weights.h5`` (weights and
    optimizer state, :func:`save_model_atomic`), then the commit point
    ``training_metadata.json`` (atomically) naming that file and holding
    :func:`seed_generator_states`, then removes the older weights files. At the start of
    ``fit`` it restores the weights, the optimizer, the seed generators and the epoch of the
    last commit. An interrupted save leaves the previous commit usable; a damaged backup
    raises :class:`~audioruns.errors.ModelFileError` naming the file.

    Args:
        backup_dir: folder of the backup (created).
        delete_checkpoint: remove the folder at the end of a ``fit`` that was not interrupted.
    """

    def __init__(self, backup_dir, delete_checkpoint=False):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self.backup_path = Path(backup_dir)

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model {self.model} is unbuilt.")
        state = read_backup(self.backup_path)
        if state is None:
            return
        weights = self.backup_path / state.get("weights", _KERAS_BACKUP_WEIGHTS)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        load_weights_file(self.model, weights, kind="training backup")
        if "seed_generators" in state:
            set_seed_generator_states(self.model, state["seed_generators"], source=str(weights))
        self.model._initial_epoch = int(state["epoch"])

    def _save_model(self):
        self.backup_path.mkdir(parents=True, exist_ok=True)
        epoch = int(self._current_epoch)
        name = f"epoch{epoch}.weights.h5"
        save_model_atomic(self.model, self.backup_path / name)
        metadata = {"epoch": epoch, "batch": int(self._last_batch_seen), "weights": name,
                    "seed_generators": seed_generator_states(self.model)}
        write_text_atomic(self.backup_path / BACKUP_METADATA, json.dumps(metadata))
        for old in self.backup_path.glob("*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- training guards


def _value(value):
    try:
        return float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None


class DivergenceGuard(keras.callbacks.Callback):
    """Raise :class:`~audioruns.errors.TrainingDivergedError` when a loss or a weight is NaN or infinite.

    Checks every ``*loss`` entry of the logs after each training batch and at the end of
    each epoch (validation losses included), and the trainable weights at the end of each
    epoch (a single-batch epoch can log a finite loss and end with non-finite weights).
    Raising stops ``fit`` at once, so the callbacks after this one (put it first) never save
    the diverged epoch: the backup keeps the last finite one.

    Args:
        run_dir: folder named in the message (or None).
    """

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)

    def _check_logs(self, logs, batch):
        for key, value in (logs or {}).items():
            if not str(key).endswith("loss"):
                continue
            number = _value(value)
            if number is not None and not math.isfinite(number):
                raise TrainingDivergedError(self.run_dir, self._epoch + 1, batch, key, number)

    def on_train_batch_end(self, batch, logs=None):
        self._check_logs(logs, int(batch) + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = int(epoch)
        self._check_logs(logs, None)
        for variable in self.model.trainable_variables:
            values = np.asarray(keras.ops.convert_to_numpy(variable.value))
            if values.size and not np.all(np.isfinite(values)):
                bad = values[~np.isfinite(values)].ravel()[0]
                raise TrainingDivergedError(self.run_dir, epoch + 1, None, f"weight {variable.path}", float(bad))


class EpochOrder(keras.callbacks.Callback):
    """Calls ``data.set_epoch(epoch)`` at the start of every epoch (before any batch is read).

    Pass ``shuffle=False`` to ``fit`` with it: Keras' own shuffling of a
    :class:`keras.utils.PyDataset` reorders the batches with Python's global ``random``, which
    a resumed run does not restore.
    """

    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(int(epoch))


class EpochTimer(keras.callbacks.Callback):
    """Adds the wall-clock seconds of each epoch (training + validation) to the logs as ``seconds``.

    Put it before :class:`keras.callbacks.CSVLogger` so that ``history.csv`` records it.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self._start
