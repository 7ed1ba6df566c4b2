"""On-disk feature cache: one memory-mapped array per (dataset, feature parameters, audio files).

Layout of a cache entry (a *generation*)::

    <cache_dir>/<dataset>/<feature set>-<params key>/<files key>/
        features.npy    float32 array [shape=(n_clips, T, F)], memory-mapped read-only
        clips.csv       row order: clip_id, path, size, mtime_ns (+ digest with content identity)
        params.json     every feature parameter, the dataset and the cache format version
        rows.crc32.npy  uint32 ``zlib.crc32`` of each row's bytes, computed when the entry is written
        COMPLETE        written last (JSON: shape, format, identity); an entry without it is never trusted
        LOCK            every open :class:`FeatureArray` holds a shared ``flock`` on it
        LAST_USED       touched each time the entry is opened: its mtime is the last use

* The *params key* hashes the canonical JSON of every parameter (lists and None included) and
  the cache format version, so changing any parameter never reuses stale features.
* The *files key* hashes each clip's id and identity (below), so an edited, added or removed
  file gives a new generation; rows of files that did not change are copied over (after their
  checksum is checked). Generations of different file sets (two data folders, an edited file)
  **coexist**: nothing deletes another complete generation automatically, see *Clean-up*.

Identity of an audio file (``identity=`` or ``$AUDIO_CACHE_IDENTITY``):

* ``"stat"`` (default): ``(size, mtime_ns)``. Free (one ``stat`` per file) but it misses a file
  replaced by another of the same size whose mtime was restored (``cp -p``, ``rsync -t``,
  ``os.utime``): such a file gets the features of the old one.
* ``"content"``: ``(size, blake2b of the bytes)``, stored in the ``digest`` column. Never stale,
  but every audio file is read on every call (measured on the 3000 FSDD clips, 21 MB, files in
  the page cache: 0.057 s against 0.0074 s for ``stat``, 7.7x; from a cold disk it is a full read).
  A content entry ignores mtimes (``touch`` changes nothing); a stat run may reuse rows of a
  content entry, a content run reuses only rows whose digest matches.

Verification (every open by :func:`cached_features`):

* always: COMPLETE, params.json and clips.csv are readable, the ``.npy`` header, COMPLETE and
  clips.csv agree on the shape and the file size is exactly header + rows (a truncated or padded
  file is caught before it is mapped);
* by default also the checksum of every row, in one sequential read of ``features.npy``
  (``zlib.crc32``; measured 0.27 s for a 0.88 GB entry in the page cache, 3.3 GB/s, so about
  0.015 s for the 49 MB FSDD mel entry; from a cold disk it costs one read of the file).
  ``verify=False``, ``$AUDIO_CACHE_VERIFY=0`` or ``experiments/extract_features.py --no-verify``
  skip it (the size checks remain).

A damaged entry is never used: a warning names its folder and the number of bad rows, and a new
generation is built that reuses only the rows whose checksum verifies; the damaged one is
*retired* (renamed ``.retired-*``) and removed as soon as no reader holds it. Entries of cache
format 1 (no checksums) live under other params keys and are recomputed, never trusted.

Locking and clean-up:

* A :class:`FeatureArray` holds a shared ``flock`` on its entry's ``LOCK`` until
  :meth:`FeatureArray.close` (or ``with``, or garbage collection), and reads through its own open
  file, so renaming or removing the folder never breaks it.
* :func:`clean_cache` (``experiments/extract_features.py --clean-cache``) removes generations not
  used for ``older_than_days``, retired ones, partial folders whose owner is gone and unreadable
  leftovers; it skips every folder whose lock it cannot take exclusively (``LOCK_EX|LOCK_NB``).

Work in progress lives in ``.partial-<files key>/`` with a bitmap of finished rows that is saved
(atomically, after flushing the rows) every few seconds and on interruption: a re-run resumes
where the last one stopped, and finished rows of unchanged files are reused even when other files
changed in between. The writer holds an exclusive ``flock`` on the partial's ``LOCK`` and names
itself in ``OWNER`` (host:pid). The folder is renamed into place only once complete, so an
interrupted run never leaves an entry that a later run trusts. A partial folder whose lock is free
and whose owner is dead is removed by :func:`clean_cache`, or automatically once it has not been
modified for :data:`STALE_PARTIAL_SECONDS`. Parallel workers (joblib/loky) exit on their own
within about a second when the extracting process dies (even by ``kill -9``).
"""
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import warnings
import weakref
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..errors import FeatureCacheError, ParameterError
from .extract import feature_shape

#: Bump when the on-disk format or the feature code changes what is stored.
#: 2: per-row checksums (rows.crc32.npy), LOCK/LAST_USED, optional content identity.
CACHE_FORMAT_VERSION = 2
_CHECKPOINT_SECONDS = 5.0
#: A partial folder whose lock is free, whose owner is dead and that was not modified for this
#: long is removed by the next extraction into the same feature folder.
STALE_PARTIAL_SECONDS = 24 * 3600.0
IDENTITIES = ("stat", "content")
_CRC_FILE = "rows.crc32.npy"
_READ_BLOCK = 16 << 20


class _EntryGone(FeatureCacheError):
    """The entry does not exist (any more): removed or replaced, e.g. while we waited for its lock."""


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
    """``(size, mtime_ns)`` of each file, the identity the cache compares (``identity="stat"``)."""
    stats = [os.stat(p) for p in paths]
    return [s.st_size for s in stats], [s.st_mtime_ns for s in stats]


def file_digests(paths, chunk_size=1 << 20):
    """Hex ``blake2b`` (128 bits) of the bytes of each file (``identity="content"``)."""
    out = []
    for path in paths:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            while True:
                block = fh.read(chunk_size)
                if not block:
                    break
                h.update(block)
        out.append(h.hexdigest())
    return out


def resolve_identity(identity=None):
    """``identity``, else ``$AUDIO_CACHE_IDENTITY``, else ``"stat"`` (ParameterError for another value)."""
    if identity is None:
        identity = os.environ.get("AUDIO_CACHE_IDENTITY", "").strip() or "stat"
    if identity not in IDENTITIES:
        raise ParameterError(f"cache identity must be one of {list(IDENTITIES)} (argument or "
                             f"$AUDIO_CACHE_IDENTITY), got {identity!r}")
    return identity


def resolve_verify(verify=None):
    """``verify``, else False when ``$AUDIO_CACHE_VERIFY`` is 0/false/no/off, else True."""
    if verify is None:
        return os.environ.get("AUDIO_CACHE_VERIFY", "1").strip().lower() not in ("0", "false", "no", "off")
    return bool(verify)


# ----------------------------------------------------------------------------------- locks
def _open_lock(folder, create=True):
    """An fd on ``folder/LOCK`` (created if allowed), or None where it can neither be created nor opened."""
    path = Path(folder) / "LOCK"
    for flags in ((os.O_RDWR | os.O_CREAT) if create else os.O_RDWR, os.O_RDONLY):
        try:
            return os.open(path, flags, 0o666)
        except FileNotFoundError:
            if not Path(folder).is_dir():
                raise
        except PermissionError:
            continue
    return None


def _same_file(fd, path):
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (own.st_ino, own.st_dev) == (st.st_ino, st.st_dev)


def _lock_exclusive_nowait(folder):
    """An fd holding ``LOCK_EX`` on ``folder/LOCK``, or None when someone else holds a lock on it."""
    try:
        fd = _open_lock(folder)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    if not _same_file(fd, Path(folder) / "LOCK"):  # removed or replaced meanwhile
        os.close(fd)
        return None
    return fd


def _touch(path):
    try:
        with open(path, "ab"):
            pass
        os.utime(path)
    except OSError:
        pass  # a read-only cache still works; only the clean-up loses the date


def _release(*handles):
    for h in handles:
        if h is None:
            continue
        try:
            h.close() if hasattr(h, "close") else os.close(h)
        except OSError:
            pass


# ----------------------------------------------------------------------------------- entries
def _npy_layout(path):
    """``(shape, dtype, header_bytes)`` of a ``.npy`` file, read from its header without mapping it."""
    with open(path, "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)
        return shape, np.dtype(dtype), fh.tell()


def _read_clips(path):
    return pd.read_csv(path, dtype={"clip_id": str, "path": str, "digest": str})


def _check_entry(path):
    """Cheap consistency checks of a complete entry; FeatureCacheError naming the file at fault.

    Returns ``(clips, params, shape, dtype, header)``.
    """
    path = Path(path)
    try:
        shape = tuple(json.loads((path / "COMPLETE").read_text())["shape"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FeatureCacheError(path / "COMPLETE", f"unreadable completion marker ({err})") from None
    try:
        params = json.loads((path / "params.json").read_text())["params"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FeatureCacheError(path / "params.json", f"unreadable ({err})") from None
    try:
        clips = _read_clips(path / "clips.csv")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise FeatureCacheError(path / "clips.csv", f"unreadable ({err})") from None
    if not {"clip_id", "path", "size", "mtime_ns"} <= set(clips.columns) or len(clips) != shape[0]:
        raise FeatureCacheError(path / "clips.csv", f"{len(clips)} rows with columns {list(clips.columns)}, "
                                f"expected {shape[0]} rows (COMPLETE)")
    feats = path / "features.npy"
    try:
        npy_shape, dtype, header = _npy_layout(feats)
        size = os.stat(feats).st_size
    except (OSError, ValueError, EOFError) as err:
        raise FeatureCacheError(feats, f"unreadable array header ({err})") from None
    if tuple(npy_shape) != shape or dtype != np.float32:
        raise FeatureCacheError(feats, f"array of shape {tuple(npy_shape)} and dtype {dtype}, "
                                f"expected {shape} float32 (COMPLETE)")
    expected = header + int(np.prod(shape)) * 4
    if size != expected:
        raise FeatureCacheError(feats, f"{size} bytes, expected {expected} (header {header} + {shape[0]} rows): "
                                "truncated or overwritten")
    return clips, params, shape, dtype, header


def _row_checksums(fh, header, n_rows, row_bytes):
    """CRC-32 of each row of an open array file, in one sequential read; rows beyond the end of the
    file get None."""
    out = [None] * n_rows
    per_block = max(1, _READ_BLOCK // max(row_bytes, 1))
    buf = bytearray(per_block * row_bytes)
    view = memoryview(buf)
    fh.seek(header)
    for start in range(0, n_rows, per_block):
        want = min(per_block, n_rows - start) * row_bytes
        got = fh.readinto(view[:want])
        got = got or 0
        while got < want:  # readinto may return short reads before the end of the file
            more = fh.readinto(view[got:want])
            if not more:
                break
            got += more
        for k in range(got // row_bytes):
            out[start + k] = zlib.crc32(view[k * row_bytes:(k + 1) * row_bytes])
        if got < want:
            break
    return out


def _load_checksums(path, n_rows):
    try:
        crc = np.load(Path(path) / _CRC_FILE)
    except (OSError, ValueError, EOFError):
        return None
    if crc.shape != (n_rows,) or crc.dtype != np.uint32:
        return None
    return crc


def verify_entry(path):
    """Check a complete entry (sizes, consistency and every row checksum) without trusting any of it.

    Returns
    -------
    (bad, problems) : (np.ndarray of bool or None, list of str)
        ``bad[i]`` is True when row ``i`` cannot be trusted (None when not even the number of rows is
        known); ``problems`` names each file at fault (empty for a sound entry).
    """
    path = Path(path)
    try:
        n_rows = int(json.loads((path / "COMPLETE").read_text())["shape"][0])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        return None, [f"{path / 'COMPLETE'}: unreadable ({err})"]
    problems = []
    try:
        _check_entry(path)
    except FeatureCacheError as err:
        problems.append(str(err))
    bad = np.ones(n_rows, dtype=bool)
    crc = _load_checksums(path, n_rows)
    if crc is None:
        problems.append(f"{path / _CRC_FILE}: missing or unreadable row checksums")
        return bad, problems
    feats = path / "features.npy"
    try:
        shape, dtype, header = _npy_layout(feats)
        if shape[0] != n_rows or dtype != np.float32:
            return bad, problems
        with open(feats, "rb") as fh:
            sums = _row_checksums(fh, header, n_rows, int(np.prod(shape[1:])) * 4)
    except (OSError, ValueError, EOFError):
        return bad, problems
    bad = np.array([s is None or s != int(c) for s, c in zip(sums, crc)], dtype=bool)
    if bad.any():
        problems.append(f"{feats}: {int(bad.sum())} of {n_rows} rows fail their checksum or are missing")
    return bad, problems


class FeatureArray:
    """A cached feature array: a read-only memory map plus the table of its rows.

    Opening it takes a shared lock on the entry (so :func:`clean_cache` leaves it alone) and
    checks that its files are consistent (:class:`FeatureCacheError` naming the file otherwise).
    Release it with :meth:`close` or ``with FeatureArray(...) as feats:``; garbage collection
    releases it too. Reads go through a file opened here, so they keep working if the entry is
    renamed or removed meanwhile.

    Attributes
    ----------
    path : Path
        The cache entry folder.
    clips : pd.DataFrame
        One row per array row: ``clip_id``, ``path``, ``size``, ``mtime_ns`` (and ``digest`` with
        content identity).
    params : dict
        The feature parameters.
    cached : bool
        True when the entry existed and verified before this call (nothing was computed).
    """

    def __init__(self, path, cached):
        self.path = Path(path)
        self.cached = cached
        self._data = None
        try:
            lock = _open_lock(self.path)
        except FileNotFoundError:
            raise _EntryGone(self.path, "no such feature cache entry") from None
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_SH)
                if not _same_file(lock, self.path / "LOCK") or not (self.path / "COMPLETE").exists():
                    raise _EntryGone(self.path, "the entry was removed while waiting for its lock")
            self.clips, self.params, self._shape, self._dtype, self._header = _check_entry(self.path)
            self._file = open(self.path / "features.npy", "rb")
        except BaseException:
            _release(lock)
            raise
        self._finalizer = weakref.finalize(self, _release, self._file, lock)
        _touch(self.path / "LAST_USED")

    def close(self):
        """Release the entry (its lock and file); the arrays already read stay valid."""
        self._data = None
        self._finalizer()

    @property
    def closed(self):
        return not self._finalizer.alive

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):  # a copy in another process opens (and locks) the entry itself
        return type(self), (str(self.path), self.cached)

    def _check_open(self):
        if self.closed:
            raise ValueError(f"{self.path}: this FeatureArray is closed")

    @property
    def data(self):
        """The whole array as a read-only memory map (opened on first use)."""
        if self._data is None:
            self._check_open()
            self._data = np.memmap(self._file, dtype=self._dtype, mode="r", offset=self._header, shape=self._shape)
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
        self._check_open()
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        header, row_shape = self._header, self._shape[1:]
        row_bytes = int(np.prod(row_shape)) * self._dtype.itemsize
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            lo, hi = int(batch.min()), int(batch.max()) + 1
            window = np.memmap(self._file, dtype=self._dtype, mode="r",
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


class _Partial:
    """An entry under construction: the array file, the bitmap of finished rows, and their checkpoints.

    Rows are written with ``os.pwrite`` at their offsets rather than through a memory map, so the
    writer's memory stays at one row however large the array is. The writer holds an exclusive
    lock on ``LOCK`` until :meth:`release` (after the folder is renamed into place).
    """

    def __init__(self, folder, n_rows, row_shape):
        self.folder = folder
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = None
        for _ in range(5):
            folder.mkdir(parents=True, exist_ok=True)
            owner_file = folder / "OWNER"
            try:
                other = owner_file.read_text()
            except OSError:
                other = None
            if other and other != self.owner and _pid_alive(other):
                raise ParameterError(f"another process ({other}) is extracting into {folder}; "
                                     "wait for it or delete that folder")
            self.lock = _lock_exclusive_nowait(folder)
            if self.lock is not None:
                break
            if folder.is_dir():  # else removed by a clean-up meanwhile: create it again
                raise ParameterError(f"another process is extracting into {folder} (its LOCK is held); "
                                     "wait for it")
        else:
            raise FeatureCacheError(folder, "could not lock this partial folder")
        owner_file.write_text(self.owner)
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
        data = row if isinstance(row, bytes) else np.ascontiguousarray(row, dtype=np.float32).tobytes()
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

    def release(self):
        self.close()
        _release(self.lock)
        self.lock = None


def _row_keys(table, identity):
    if identity == "content":
        return list(zip(table["clip_id"], table["size"], table["digest"]))
    return list(zip(table["clip_id"], table["size"], table["mtime_ns"]))


def _reusable_rows(entry, clips, exclude, identity="stat", masks=None):
    """``{target_row: (source_folder, source_row, crc or None)}`` for clips unchanged in other
    generations of this folder.

    Sources are the complete generations (rows with a checksum, checked again when copied; ``masks``
    maps a folder to a boolean array of its rows that may be used) and the finished rows of other
    (interrupted) partial ones. Retired generations and unreadable leftovers are ignored.
    """
    wanted = {key: i for i, key in enumerate(_row_keys(clips, identity))}
    found = {}
    masks = masks or {}
    for folder in sorted(p for p in entry.iterdir() if p.is_dir() and p != exclude):
        if folder.name.startswith((".retired", ".removing")):
            continue
        crc = None
        try:
            old = _read_clips(folder / "clips.csv")
            if (folder / "COMPLETE").exists():
                crc = _load_checksums(folder, len(old))
                if crc is None:
                    continue  # rows that cannot be verified are not reused
                usable = np.ones(len(old), dtype=bool)
            elif folder.name.startswith(".partial") and (folder / "done.npy").exists():
                usable = np.load(folder / "done.npy")
            else:
                continue
            if identity == "content" and "digest" not in old.columns:
                continue  # rows of a stat entry cannot vouch for the content
            keys = _row_keys(old, identity)
        except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue  # unreadable leftovers are ignored, never trusted
        if len(usable) != len(old):
            continue
        if folder in masks:
            usable = usable & masks[folder]
        for j, key in enumerate(keys):
            i = wanted.get(key)
            if usable[j] and i is not None and i not in found:
                found[i] = (folder, j, None if crc is None else int(crc[j]))
    return found


def _copy_reusable(partial, sources):
    """Copy verified rows of other generations into ``partial``; returns how many were rejected."""
    rejected = 0
    by_folder = {}
    for i, (folder, j, crc) in sources.items():
        if not partial.done[i]:
            by_folder.setdefault(folder, []).append((i, j, crc))
    for folder, rows in by_folder.items():
        try:
            shape, dtype, header = _npy_layout(folder / "features.npy")
            if tuple(shape[1:]) != partial.shape[1:] or dtype != np.float32:
                continue
            fd = os.open(folder / "features.npy", os.O_RDONLY)
        except (OSError, ValueError, EOFError):
            continue
        try:
            for i, j, crc in sorted(rows, key=lambda r: r[1]):
                data = os.pread(fd, partial.row_bytes, header + j * partial.row_bytes)
                if len(data) != partial.row_bytes or (crc is not None and zlib.crc32(data) != crc):
                    rejected += 1
                    continue
                partial.write(i, data)
                partial.done[i] = True
        finally:
            os.close(fd)
    return rejected


def _clip_table(clips, identity):
    table = clips[["clip_id", "path"]].reset_index(drop=True).copy()
    table["size"], table["mtime_ns"] = file_identities(table["path"])
    if identity == "content":
        table["digest"] = file_digests(table["path"])
        key = _digest({"identity": "content", "clips": table["clip_id"].tolist(),
                       "sizes": table["size"].tolist(), "digests": table["digest"].tolist()})
    else:
        key = _digest([table["clip_id"].tolist(), table["size"].tolist(), table["mtime_ns"].tolist()])
    return table, key


def cached_features(dataset_name, feature_name, params, clips, compute, cache_dir=None, n_jobs=-1,
                    progress=True, identity=None, verify=None):
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
    identity : {'stat', 'content'}, optional
        How an audio file is recognised (module docstring); default ``$AUDIO_CACHE_IDENTITY`` or ``"stat"``.
    verify : bool, optional
        Check every row's checksum when an existing entry is opened (default True unless
        ``$AUDIO_CACHE_VERIFY=0``). The size and consistency checks are always made.

    Warns
    -----
    UserWarning
        When an existing entry is damaged (the warning names its folder and the number of bad rows);
        the bad rows are recomputed and the rest reused.

    Raises
    ------
    FeatureCacheError
        An entry that cannot be repaired (names the file).
    """
    if len(clips) == 0:
        raise ParameterError(f"{dataset_name}: no clips to extract features from")
    if clips["clip_id"].duplicated().any():
        dup = clips.loc[clips["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise ParameterError(f"{dataset_name}: clip id {dup!r} appears twice")
    identity, verify = resolve_identity(identity), resolve_verify(verify)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    table, files_key = _clip_table(clips, identity)
    entry = cache_dir / dataset_name / f"{feature_name}-{params_key(dataset_name, params)}"
    final = entry / files_key
    damaged = None  # (inode of the damaged folder, its usable-row mask)
    for _ in range(5):
        if not (final / "COMPLETE").exists():
            break
        try:
            feats = FeatureArray(final, cached=True)
        except _EntryGone:
            continue  # removed by a clean-up while we waited: look again
        except FeatureCacheError:
            feats = None
        if feats is not None:
            if not verify:
                return feats
            bad, problems = verify_entry(final)
            if not problems:
                return feats
            feats.close()
        else:
            bad, problems = verify_entry(final)
        n_rows = len(table)
        n_bad = n_rows if bad is None or len(bad) != n_rows else int(bad.sum())
        warnings.warn(f"feature cache entry {final} is damaged ({'; '.join(problems)}): {n_bad} of {n_rows} "
                      "rows are recomputed, the others reused", stacklevel=2)
        try:
            damaged = (os.stat(final).st_ino, None if bad is None or len(bad) != n_rows else ~bad)
        except OSError:
            damaged = None
        break
    if damaged is None and final.is_dir() and not (final / "COMPLETE").exists():
        warnings.warn(f"feature cache entry {final} has no COMPLETE marker: it is not trusted and recomputed",
                      stacklevel=2)
        try:
            damaged = (os.stat(final).st_ino, np.zeros(len(table), dtype=bool))
        except OSError:
            damaged = None

    if entry.is_dir():
        _remove_stale_partials(entry, STALE_PARTIAL_SECONDS)
    row_shape = feature_shape(params)
    partial = _Partial(entry / f".partial-{files_key}", len(table), row_shape)
    try:
        table.to_csv(partial.folder / "clips.csv", index=False)
        masks = {}
        if damaged is not None:  # only the rows of the damaged generation that verified
            masks[final] = damaged[1] if damaged[1] is not None else np.zeros(len(table), dtype=bool)
        _copy_reusable(partial, _reusable_rows(entry, table, partial.folder, identity, masks))
        try:
            _fill(partial, table, params, compute, n_jobs, progress)
        finally:
            partial.checkpoint(force=True)
            partial.close()
        _finish(partial, final, table, dataset_name, feature_name, params, identity,
                replace=None if damaged is None else damaged[0])
    finally:
        partial.release()
    return FeatureArray(final, cached=False)


def _serial(compute, paths, params):
    """Compute in this process with one BLAS thread, as joblib's workers do (small matrix products
    are several times slower when OpenBLAS splits them over threads)."""

    for path in paths:
        with threadpool_limits(1):
            result = compute(path, params)
        yield result


_WATCHING_PARENT = False


def _watch_parent(parent):
    """In a worker process: a daemon thread that ends the process when its parent dies."""
    global _WATCHING_PARENT
    if _WATCHING_PARENT:
        return
    _WATCHING_PARENT = True
    ppid = os.getppid()
    if ppid != parent:  # not a direct child (or the parent is already gone)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=watch, name="audiodata-parent-watch", daemon=True).start()


class _DieWithParent:
    """``compute`` for joblib's worker processes: a worker exits within ~0.5 s once the process
    that started the extraction is gone (a ``kill -9`` of it otherwise leaves the loky workers and
    their resource tracker running, hundreds of MB each)."""

    def __init__(self, compute):
        self.compute = compute
        self.parent = os.getpid()

    def __call__(self, path, params):
        if os.getpid() != self.parent:
            _watch_parent(self.parent)
        return self.compute(path, params)


def _fill(partial, table, params, compute, n_jobs, progress):

    todo = np.flatnonzero(~partial.done)
    if len(todo) == 0:
        return
    paths = table["path"].to_numpy()
    if n_jobs == 1:
        results = _serial(compute, paths[todo], params)
    else:
        guarded = _DieWithParent(compute)
        results = Parallel(n_jobs=n_jobs, return_as="generator", batch_size="auto")(
            delayed(guarded)(paths[i], params) for i in todo)
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


def _finish(partial, final, table, dataset_name, feature_name, params, identity="stat", replace=None):
    """Checksum the rows, write the metadata and COMPLETE, and rename the partial folder into place.

    ``replace``: inode of a damaged generation at ``final`` that is retired (renamed) first.
    Other complete generations are never touched.
    """
    folder = partial.folder
    shape = list(partial.shape)
    with open(folder / "features.npy", "rb") as fh:
        sums = _row_checksums(fh, partial.header, shape[0], partial.row_bytes)
    if any(s is None for s in sums):
        raise FeatureCacheError(folder / "features.npy", "shorter than its rows after writing (disk full?)")
    _atomic_write(folder / _CRC_FILE, lambda fh: np.save(fh, np.asarray(sums, dtype=np.uint32)))
    table.to_csv(folder / "clips.csv", index=False)
    meta = {"dataset": dataset_name, "features": feature_name, "params": params, "format": CACHE_FORMAT_VERSION}
    (folder / "params.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    for name in ("done.npy", "OWNER"):
        (folder / name).unlink(missing_ok=True)
    complete = {"shape": shape, "format": CACHE_FORMAT_VERSION, "identity": identity, "checksums": _CRC_FILE}
    _atomic_write(folder / "COMPLETE", lambda fh: fh.write(json.dumps(complete).encode()))
    retired = None
    if replace is not None:
        try:
            if os.stat(final).st_ino == replace:
                retired = final.parent / f".retired-{final.name}-{os.getpid()}-{time.time_ns()}"
                os.rename(final, retired)
        except OSError:
            retired = None
    try:
        os.rename(folder, final)
    except OSError:  # another process completed the same entry first: theirs is as good as ours
        shutil.rmtree(folder, ignore_errors=True)
    if retired is not None:
        _remove_if_unlocked(retired)


# ----------------------------------------------------------------------------------- clean-up
def _remove_if_unlocked(folder):
    """Remove ``folder`` if its LOCK can be taken exclusively (renamed first, so nobody opens it
    meanwhile); returns its size in bytes, or None when it is in use."""
    fd = _lock_exclusive_nowait(folder)
    if fd is None:
        return None
    try:
        size = _folder_bytes(folder)
        doomed = folder.parent / f".removing-{folder.name.lstrip('.')}-{os.getpid()}-{time.time_ns()}"
        os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return size
    finally:
        os.close(fd)


def _folder_bytes(folder):
    total = 0
    for p in Path(folder).rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _last_modified(folder):
    times = []
    for p in [folder, *Path(folder).iterdir()]:
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else 0.0


def _partial_in_use(folder):
    try:
        owner = (folder / "OWNER").read_text()
    except OSError:
        return False
    return bool(owner) and _pid_alive(owner)


def _remove_stale_partials(entry, min_age):
    """Remove partial folders of ``entry`` whose owner is dead and that were not modified for ``min_age`` s."""
    removed = []
    for folder in entry.glob(".partial-*"):
        try:
            if _partial_in_use(folder) or time.time() - _last_modified(folder) < min_age:
                continue
            if _remove_if_unlocked(folder) is not None:
                removed.append(folder)
        except OSError:
            continue
    return removed


def _is_key(name):
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def clean_cache(cache_dir=None, dataset=None, older_than_days=30.0, dry_run=False):
    """Remove what the feature cache no longer needs, never anything in use.

    In each ``<dataset>/<feature set>-<params key>/`` folder this removes

    * generations not opened for ``older_than_days`` days (mtime of ``LAST_USED``, else of ``COMPLETE``),
    * retired (damaged, replaced) generations and interrupted removals,
    * partial folders whose owner process is gone (whatever their age; never one whose ``OWNER``
      is alive or that names another host),
    * unreadable leftovers: generation folders without a readable ``COMPLETE``.

    A folder whose ``LOCK`` cannot be taken exclusively (an open :class:`FeatureArray`, a running
    extraction) is kept. Nothing outside the cache's own folder names is touched.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Default :func:`default_cache_dir`.
    dataset : str or list of str, optional
        Only these dataset folders (cache names: ``esc10``, ``speech_commands_v2``, ...).
    older_than_days : float
        Age of the last use beyond which a complete generation is removed (0: every unused one).
    dry_run : bool
        Report what would be removed without removing it (locks are still tested).

    Returns
    -------
    dict
        ``{"removed": [{"path", "reason", "bytes"}], "kept": [{"path", "reason"}]}``.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = None if dataset is None else ({dataset} if isinstance(dataset, str) else set(dataset))
    report = {"removed": [], "kept": []}
    cutoff = time.time() - float(older_than_days) * 86400.0
    if not cache_dir.is_dir():
        return report
    for ds_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        if names is not None and ds_dir.name not in names:
            continue
        for entry in sorted(p for p in ds_dir.iterdir() if p.is_dir() and _is_key(p.name.rpartition("-")[2])):
            for folder in sorted(p for p in entry.iterdir() if p.is_dir()):
                reason = _removal_reason(folder, cutoff)
                if reason is None:
                    continue
                if isinstance(reason, tuple):  # kept, with why
                    report["kept"].append({"path": str(folder), "reason": reason[0]})
                    continue
                if dry_run:
                    fd = _lock_exclusive_nowait(folder)
                    size = None if fd is None else _folder_bytes(folder)
                    _release(fd)
                else:
                    size = _remove_if_unlocked(folder)
                if size is None:
                    report["kept"].append({"path": str(folder), "reason": "in use (locked)"})
                else:
                    report["removed"].append({"path": str(folder), "reason": reason, "bytes": size})
    return report


def _removal_reason(folder, cutoff):
    """Why ``folder`` should go (str), why it stays (1-tuple), or None for a folder that is not ours."""
    name = folder.name
    if name.startswith((".retired-", ".removing-")):
        return "retired generation" if name.startswith(".retired-") else "interrupted removal"
    if name.startswith(".partial-"):
        if _partial_in_use(folder):
            return ("partial folder whose owner is alive",)
        return "partial folder of a dead extraction"
    if not _is_key(name):
        return None
    try:
        json.loads((folder / "COMPLETE").read_text())["shape"]
        _read_clips(folder / "clips.csv")
    except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return "unreadable leftover (no usable COMPLETE or clips.csv)"
    used = folder / "LAST_USED"
    try:
        last = used.stat().st_mtime if used.exists() else (folder / "COMPLETE").stat().st_mtime
    except OSError:
        last = 0.0
    if last >= cutoff:
        return (f"used {(time.time() - last) / 86400:.1f} days ago",)
    return f"not used for {(time.time() - last) / 86400:.1f} days"
