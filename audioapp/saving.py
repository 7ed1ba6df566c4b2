"""Saving an edited model version as a new ``.keras`` file, never over an existing file, bounded.

:func:`save_version` writes ``model_edited_<n>.keras`` and its ``.json`` summary:

* never over an existing file, nor over the loaded model: the model is written atomically
  under a temporary name (:func:`audioruns.checkpoints.save_model_atomic`: complete and
  flushed to disk) and then hard-linked to its final name (:func:`publish`), which fails
  rather than replace a file that appeared meanwhile;
* self-contained, like the ``model.keras`` of a training run (``docs/run_folders.md``): the file
  holds the version with the run's scaler in front (:func:`audioruns.preprocessing.attach_scaler`),
  so ``import apnet; keras.models.load_model(path)`` predicts from unscaled log-mels, and
  :func:`audioruns.preprocessing.load_scaled_model` reads back the version and its scaler;
* loadable like a run: outside the run folder, the run's ``config.yaml`` is copied beside it and
  its scaler written as ``scaler.json`` (and a ``results.json`` naming the dataset and fold), unless present;
* bounded, so that a loop of saves cannot fill the disk: a version already saved to that
  folder (its file still there) is not written again, at most ``max_saves`` files are
  written per session (:data:`MAX_SAVES` by default), and none when the disk has less than
  :data:`MIN_FREE_BYTES` free (:class:`StorageLimit`, HTTP 507).
"""
import errno
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from audiodata.features.normalization import load_scaler
from audioruns.checkpoints import save_model_atomic
from audioruns.preprocessing import attach_scaler, load_scaled_model
from audiodata.errors import ParameterError

from audioapp.errors import AppError
from audioapp.files import shown_path
from audioapp.versions import n_prototypes

#: Most model files one session saves (each a full ``.keras`` file; saving an already saved version
#: again returns its file and does not count).
MAX_SAVES = 50
#: Saving is refused when the output folder's disk has less than this free (bytes).
MIN_FREE_BYTES = 512 * 2**20


class StorageLimit(AppError, OSError):
    """A save refused because of the session's save cap or the free disk space (HTTP 507)."""


@dataclass(frozen=True)
class RunSource:
    """The run an edited model comes from, as its saved files record it.

    Attributes
    ----------
    model_path : Path
        The loaded ``.keras`` file.
    run_dir : Path
        Its run folder (``config.yaml``).
    dataset : str
    fold : int
    scaler : fitted scaler, optional
        The run's input scaler (``MinMaxScaler`` or ``StandardScaler``); None: read from
        ``model_path`` (:func:`audioruns.preprocessing.load_scaled_model`, either layout).
    """

    model_path: Path
    run_dir: Path
    dataset: str
    fold: int
    scaler: object = None

    def input_scaler(self):
        """The run's scaler: :attr:`scaler`, else the one of the loaded model file."""
        if self.scaler is not None:
            return self.scaler
        return load_scaled_model(self.model_path, compile=False)[1]


def save_version(versions, folder, source, saved, max_saves):
    """Save the current version of ``versions`` as ``model_edited_<n>.keras`` (+ ``.json``) in ``folder``.

    ``n`` is the first number whose files do not exist.

    Parameters
    ----------
    versions : audioapp.versions.VersionStack
        The edit stack (its current version is saved; its history goes into the summary).
    folder : Path
        Absolute output folder (created when missing).
    source : RunSource
    saved : dict
        ``(folder, version id) -> {"path", "summary", "bytes"}`` of the files this session
        wrote; updated here.
    max_saves : int
        Most files written per session.

    Returns
    -------
    dict with ``path``, ``path_shown``, ``summary`` (the JSON written beside it), ``version``,
    ``n_prototypes``, ``already_saved``, ``bytes`` (size of the model file), ``saves`` (files
    written this session), ``max_saves``, ``session_bytes`` (their total size) and
    ``disk_free_bytes``.

    Raises
    ------
    StorageLimit
        ``max_saves`` files already written, or too little free disk space (HTTP 507).
    ParameterError
        ``folder`` holds the files of another run.
    """
    v = versions.current
    previous = saved.get((str(folder), v.id))
    if previous is not None and Path(previous["path"]).is_file():
        return _result(v, previous, True, folder, saved, max_saves)
    if len(saved) >= max_saves:
        raise StorageLimit(f"this session has saved {len(saved)} models (the limit, {max_saves} files, "
                           f"{_session_bytes(saved) / 2**20:.1f} MB); restart the app to save more, after removing "
                           "the files you no longer need")
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise StorageLimit(f"only {free / 2**20:.0f} MB free on the disk of {folder}; saving needs at least "
                           f"{MIN_FREE_BYTES / 2**20:.0f} MB free; nothing was written")
    scaler = source.input_scaler()
    _prepare_folder(folder, source, scaler)
    summary = {
        "source_model": str(source.model_path),
        "dataset": source.dataset,
        "fold": source.fold,
        "version": v.id,
        "edits": [w.description for w in versions],
        "n_prototypes": n_prototypes(v.model),
        "prototype_origins": v.origins,
        "test_accuracy": v.cache.get("evaluation", {}).get("accuracy"),
        "test_accuracy_original": versions.loaded.cache.get("evaluation", {}).get("accuracy"),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    target = _write_model(attach_scaler(v.model, scaler), folder, source.model_path)
    sidecar = target.with_suffix(".json")
    _write_new(sidecar, json.dumps({**summary, "model": target.name}, indent=2) + "\n")
    record = {"path": str(target), "summary": str(sidecar), "bytes": target.stat().st_size}
    saved[(str(folder), v.id)] = record
    return _result(v, record, False, folder, saved, max_saves)


def _write_model(model, folder, loaded):
    """Write ``model`` as the first ``model_edited_<n>.keras`` of ``folder`` whose files do not exist yet."""
    n = 0
    while True:
        n += 1
        target = folder / f"model_edited_{n}.keras"
        if target.exists() or target.with_suffix(".json").exists() or _same_file(target, loaded):
            continue
        temporary = folder / f".model_edited_{n}.{os.getpid()}.{threading.get_ident()}.keras"
        try:
            save_model_atomic(model, temporary)
            publish(temporary, target)
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageLimit(f"the disk of {folder} is full ({err.strerror}); nothing was kept") from None
            raise
        finally:
            temporary.unlink(missing_ok=True)
        return target


def _session_bytes(saved):
    return sum(record["bytes"] for record in saved.values())


def _result(version, record, already_saved, folder, saved, max_saves):
    return {"path": record["path"], "summary": record["summary"], "path_shown": shown_path(record["path"]),
            "version": version.id, "n_prototypes": n_prototypes(version.model), "already_saved": already_saved,
            "bytes": record["bytes"], "saves": len(saved), "max_saves": max_saves,
            "session_bytes": _session_bytes(saved), "disk_free_bytes": shutil.disk_usage(folder).free}


def _prepare_folder(folder, source, scaler):
    """Copy the run's ``config.yaml``, write ``scaler`` as ``scaler.json`` (and a ``results.json``) unless present."""
    if folder == source.run_dir:
        return
    original, target = source.run_dir / "config.yaml", folder / "config.yaml"
    if not target.exists():
        shutil.copyfile(original, target)
    elif target.read_bytes() != original.read_bytes():
        raise ParameterError(f"{target} belongs to another run (it differs from {original}); choose another "
                             "output folder")
    target = folder / "scaler.json"
    if not target.exists():
        scaler.save(target)
    elif not _same_scaler(target, scaler):
        raise ParameterError(f"{target} belongs to another run (it differs from the scaler of {source.model_path}); "
                             "choose another output folder")
    results = folder / "results.json"
    if not results.exists():
        _write_new(results, json.dumps({"dataset": source.dataset, "fold": source.fold,
                                        "source_model": str(source.model_path)}, indent=2) + "\n")


def _scaler_state(scaler):
    """Class and config of ``scaler`` as ``scaler.json`` stores them (float32 statistics), for comparing."""
    stored = type(scaler).from_config(json.loads(json.dumps(scaler.get_config())))
    return type(scaler).__name__, json.dumps(stored.get_config(), sort_keys=True)


def _same_scaler(path, scaler):
    """Whether the ``scaler.json`` at ``path`` holds ``scaler`` (False when it cannot be read)."""
    try:
        return _scaler_state(load_scaler(path)) == _scaler_state(scaler)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _same_file(a, b):
    try:
        return os.path.abspath(a) == os.path.abspath(b) or (Path(a).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def publish(temporary, target):
    """Give ``temporary`` the name ``target`` without ever replacing an existing ``target``.

    A hard link, which fails with :class:`FileExistsError` when ``target`` exists; on a file
    system without hard links, an exclusive create and a copy.
    """
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: exclusive create + copy
        with open(target, "xb") as out, open(temporary, "rb") as source:
            shutil.copyfileobj(source, out)


def _write_new(path, text):
    with open(path, "x", encoding="utf-8") as out:
        out.write(text)
