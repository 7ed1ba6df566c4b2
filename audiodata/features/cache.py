"""On-disk feature cache: one memory-mapped array per (dataset, feature parameters, audio files).

Layout of a cache entry::

    <cache_dir>/<dataset>/<feature set>-<params key>/<files key>/
        features.npy   float32 array [shape=(n_clips, T, F)], opened with mmap_mode='r'
        clips.csv      row order: clip_id, path, size, mtime_ns (the audio file identity)
        params.json    every feature parameter, the dataset and the cache format version
        COMPLETE       written last; an entry without it is never trusted

* The *params key* hashes the canonical JSON of every parameter (lists and None included),
  so changing any parameter never reuses stale features.
* The *files key* hashes each clip's id, size and modification time, so an edited, added or
  removed file gives a new entry; rows of files that did not change are copied over.
* Work in progress lives in ``.partial-<files key>/`` with a bitmap of finished rows that is
  saved (atomically, after flushing the rows) every few seconds and on interruption: a re-run
  resumes where the last one stopped, and finished rows of unchanged files are reused even
  when other files changed in between. The folder is renamed into place only once complete,
  so an interrupted run never leaves an entry that a later run trusts.
"""
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParameterError

#: Bump when the on-disk format or the feature code changes what is stored.
CACHE_FORMAT_VERSION = 1
_CHECKPOINT_SECONDS = 5.0


def default_cache_dir():
    """``$AUDIO_CACHE_DIR``, else ``$XDG_CACHE_HOME/audio-interpretability``, else ``~/.cache/...``."""
    if os.environ.get("AUDIO_CACHE_DIR"):
        return Path(os.environ["AUDIO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "audio-interpretability"


def _digest(obj):
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def params_key(dataset_name, params):
    """Hash of the dataset name, every feature parameter and the cache format version."""
    return _digest({"dataset": dataset_name, "params": params, "format": CACHE_FORMAT_VERSION})


def file_identities(paths):
    """``(size, mtime_ns)`` of each file, the identity the cache compares."""
    stats = [os.stat(p) for p in paths]
    return [s.st_size for s in stats], [s.st_mtime_ns for s in stats]


class FeatureArray:
    """A cached feature array: a read-only memory map plus the table of its rows.

    Attributes
    ----------
    path : Path
        The cache entry folder.
    clips : pd.DataFrame
        One row per array row: ``clip_id``, ``path``, ``size``, ``mtime_ns``.
    params : dict
        The feature parameters.
    cached : bool
        True when the entry existed before this call (nothing was computed).
    """

    def __init__(self, path, cached):
        self.path = Path(path)
        self.cached = cached
        self.clips = pd.read_csv(self.path / "clips.csv", dtype={"clip_id": str, "path": str})
        self.params = json.loads((self.path / "params.json").read_text())["params"]
        self._shape, self._dtype, self._header = _npy_layout(self.path / "features.npy")
        self._data = None

    @property
    def data(self):
        """The whole array as a read-only memory map (opened on first use)."""
        if self._data is None:
            self._data = np.load(self.path / "features.npy", mmap_mode="r")
        return self._data

    @property
    def shape(self):
        return self._shape

    def __len__(self):
        return self._shape[0]

    def __getitem__(self, index):
        """Rows as an in-memory float32 array (fancy indices are sorted for sequential reads)."""
        return np.asarray(self.data[index])

    def rows(self, clip_ids):
        """Row numbers of the given clip ids (KeyError naming the first unknown id)."""
        lookup = pd.Series(np.arange(len(self.clips)), index=self.clips["clip_id"])
        missing = [c for c in clip_ids if c not in lookup.index]
        if missing:
            raise KeyError(f"clip {missing[0]!r} is not in the feature cache {self.path}")
        return lookup.loc[list(clip_ids)].to_numpy()

    def iter_batches(self, batch_size, rows=None):
        """Yield ``(row_numbers, array)`` batches, reading each through its own short-lived map.

        Memory stays bounded by one batch however large the array is: each batch is copied
        out of a memory map that is closed before the next one is opened.
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        header, row_shape = self._header, self._shape[1:]
        row_bytes = int(np.prod(row_shape)) * self._dtype.itemsize
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            lo, hi = int(batch.min()), int(batch.max()) + 1
            window = np.memmap(self.path / "features.npy", dtype=self._dtype, mode="r",
                               offset=header + lo * row_bytes, shape=(hi - lo,) + row_shape)
            out = window[batch - lo]  # fancy indexing copies out of the map
            del window
            yield batch, out


def _pid_alive(owner):
    host, _, pid = owner.partition(":")
    if host != socket.gethostname():
        return True  # cannot tell for another machine: assume it is alive
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path, write):
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _npy_layout(path):
    """``(shape, dtype, header_bytes)`` of a ``.npy`` file, read from its header without mapping it."""
    with open(path, "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)
        return shape, np.dtype(dtype), fh.tell()


class _Partial:
    """An entry under construction: the array file, the bitmap of finished rows, and their checkpoints.

    Rows are written with ``os.pwrite`` at their offsets rather than through a memory map, so the
    writer's memory stays at one row however large the array is.
    """

    def __init__(self, folder, n_rows, row_shape):
        self.folder = folder
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        lock = folder / "OWNER"
        if folder.exists() and lock.exists() and _pid_alive(lock.read_text()) and lock.read_text() != self.owner:
            raise ParameterError(f"another process ({lock.read_text()}) is extracting into {folder}; "
                                 "wait for it or delete that folder")
        folder.mkdir(parents=True, exist_ok=True)
        lock.write_text(self.owner)
        self.shape = (n_rows,) + tuple(row_shape)
        feats, done = folder / "features.npy", folder / "done.npy"
        self.done = None
        if feats.exists() and done.exists():
            try:
                shape, dtype, _ = _npy_layout(feats)
                bitmap = np.load(done)
                if shape == self.shape and dtype == np.float32 and bitmap.shape == (n_rows,):
                    self.done = bitmap
            except (ValueError, OSError, EOFError):
                pass  # unreadable leftovers are never trusted
        if self.done is None:
            # Writes the header and sizes the (sparse) file; the rows are written below with pwrite.
            np.lib.format.open_memmap(feats, mode="w+", dtype=np.float32, shape=self.shape).flush()
            self.done = np.zeros(n_rows, dtype=bool)
        _, _, self.header = _npy_layout(feats)
        self.row_bytes = int(np.prod(row_shape)) * 4
        self.fd = os.open(feats, os.O_RDWR)
        self._last = time.monotonic()

    def write(self, i, row):
        data = np.ascontiguousarray(row, dtype=np.float32).tobytes()
        if os.pwrite(self.fd, data, self.header + int(i) * self.row_bytes) != len(data):
            raise OSError(f"short write to {self.folder / 'features.npy'} (disk full?)")

    def checkpoint(self, force=False):
        if not force and time.monotonic() - self._last < _CHECKPOINT_SECONDS:
            return
        os.fsync(self.fd)  # rows first, then the bitmap that vouches for them
        _atomic_write(self.folder / "done.npy", lambda fh: np.save(fh, self.done))
        self._last = time.monotonic()

    def close(self):
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


def _reusable_rows(entry, clips, exclude):
    """``{target_row: (source_path, source_row)}`` for clips unchanged in other entries of this folder.

    Sources are the complete generations and the finished rows of other (interrupted) partial ones.
    """
    wanted = {(c, s, m): i for i, (c, s, m) in enumerate(zip(clips["clip_id"], clips["size"], clips["mtime_ns"]))}
    found = {}
    for folder in sorted(p for p in entry.iterdir() if p.is_dir() and p != exclude):
        try:
            old = pd.read_csv(folder / "clips.csv", dtype={"clip_id": str, "path": str})
            if (folder / "COMPLETE").exists():
                usable = np.ones(len(old), dtype=bool)
            elif folder.name.startswith(".partial") and (folder / "done.npy").exists():
                usable = np.load(folder / "done.npy")
            else:
                continue
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue  # unreadable leftovers are ignored, never trusted
        if len(usable) != len(old):
            continue
        for j, key in enumerate(zip(old["clip_id"], old["size"], old["mtime_ns"])):
            i = wanted.get(key)
            if usable[j] and i is not None and i not in found:
                found[i] = (folder / "features.npy", j)
    return found


def cached_features(dataset_name, feature_name, params, clips, compute, cache_dir=None, n_jobs=-1,
                    progress=True):
    """Return the :class:`FeatureArray` of ``clips``, computing only what the cache lacks.

    Parameters
    ----------
    dataset_name : str
        Name of the dataset (part of the key).
    feature_name : str
        Name of the feature set (readable part of the folder name).
    params : dict
        Every feature parameter (all of it is hashed).
    clips : pd.DataFrame
        Columns ``clip_id`` and ``path`` (absolute), in the row order wanted.
    compute : callable
        ``compute(path, params) -> np.ndarray [shape=(T, F)]``; must be picklable for ``n_jobs != 1``.
    cache_dir : str or Path, optional
        Root of the cache (default :func:`default_cache_dir`).
    n_jobs : int
        Parallel worker processes (joblib; -1 = all cores, 1 = serial).
    progress : bool
        Show a progress bar on stderr.
    """
    from .extract import feature_shape

    if len(clips) == 0:
        raise ParameterError(f"{dataset_name}: no clips to extract features from")
    if clips["clip_id"].duplicated().any():
        dup = clips.loc[clips["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise ParameterError(f"{dataset_name}: clip id {dup!r} appears twice")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    table = clips[["clip_id", "path"]].reset_index(drop=True).copy()
    table["size"], table["mtime_ns"] = file_identities(table["path"])
    entry = cache_dir / dataset_name / f"{feature_name}-{params_key(dataset_name, params)}"
    files_key = _digest([table["clip_id"].tolist(), table["size"].tolist(), table["mtime_ns"].tolist()])
    final = entry / files_key
    if (final / "COMPLETE").exists():
        return FeatureArray(final, cached=True)

    row_shape = feature_shape(params)
    partial = _Partial(entry / f".partial-{files_key}", len(table), row_shape)
    table.to_csv(partial.folder / "clips.csv", index=False)
    sources = {}
    for i, (src, j) in _reusable_rows(entry, table, exclude=partial.folder).items():
        if not partial.done[i]:
            if src not in sources:
                sources[src] = np.load(src, mmap_mode="r")
            partial.write(i, sources[src][j])
            partial.done[i] = True
    del sources
    try:
        _fill(partial, table, params, compute, n_jobs, progress)
    finally:
        partial.checkpoint(force=True)
        partial.close()
    _finish(partial, final, table, dataset_name, feature_name, params)
    return FeatureArray(final, cached=False)


def _serial(compute, paths, params):
    """Compute in this process with one BLAS thread, as joblib's workers do (small matrix products
    are several times slower when OpenBLAS splits them over threads)."""
    from threadpoolctl import threadpool_limits

    for path in paths:
        with threadpool_limits(1):
            result = compute(path, params)
        yield result


def _fill(partial, table, params, compute, n_jobs, progress):
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    todo = np.flatnonzero(~partial.done)
    if len(todo) == 0:
        return
    paths = table["path"].to_numpy()
    if n_jobs == 1:
        results = _serial(compute, paths[todo], params)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size="auto")(
            delayed(compute)(paths[i], params) for i in todo)
    bar = tqdm(total=len(partial.done), initial=len(partial.done) - len(todo), disable=not progress,
               desc="features", unit="clip")
    with bar:
        for i, feats in zip(todo, results):
            if feats.shape != partial.shape[1:]:
                raise ParameterError(f"{paths[i]}: features of shape {feats.shape}, expected {partial.shape[1:]}")
            partial.write(i, feats)
            partial.done[i] = True
            bar.update(1)
            partial.checkpoint()


def _finish(partial, final, table, dataset_name, feature_name, params):
    folder = partial.folder
    shape = list(partial.shape)
    table.to_csv(folder / "clips.csv", index=False)
    meta = {"dataset": dataset_name, "features": feature_name, "params": params, "format": CACHE_FORMAT_VERSION}
    (folder / "params.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    for name in ("done.npy", "OWNER"):
        (folder / name).unlink(missing_ok=True)
    _atomic_write(folder / "COMPLETE", lambda fh: fh.write(json.dumps({"shape": shape}).encode()))
    try:
        os.rename(folder, final)
    except OSError:  # another process completed the same entry first: theirs is as good as ours
        shutil.rmtree(folder, ignore_errors=True)
    for other in final.parent.iterdir():  # older generations and abandoned partial ones are superseded
        if other == final:
            continue
        abandoned = other.name.startswith(".partial") and not (
            (other / "OWNER").exists() and _pid_alive((other / "OWNER").read_text()))
        if abandoned or (other / "COMPLETE").exists():
            shutil.rmtree(other, ignore_errors=True)
