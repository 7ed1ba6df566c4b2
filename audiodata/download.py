"""Download the datasets from their official public sources into the official layouts.

Every dataset is assembled in ``<data_dir>/_downloads/<FOLDER>/`` and renamed to
``<data_dir>/<FOLDER>`` only once every file of it is downloaded, verified and
unpacked, so an interrupted run never leaves a half-unpacked dataset that looks
complete. Downloads go to ``<file>.part`` first and are resumed with an HTTP
``Range`` request; a file is renamed to its final name only after its size and
(where the publisher publishes one) its checksum are verified. Archives are
unpacked member by member into a temporary folder, and members with absolute
paths, ``..`` components, links out of the archive or special files are refused.

Only the standard library (``urllib``) and ``tqdm`` are used.

The command lines that train or serve models get the dataset with one flag through
:func:`add_download_options` and :func:`ensure_dataset` (``--download``, ``--mirror URL``);
:func:`cli_error` turns a "no data folder" error into one that names ``--data-dir``.

Examples
--------
>>> from audiodata.download import download_dataset
>>> path = download_dataset("fsdd", "~/audio-data")  # doctest: +SKIP
>>> (path / "recordings" / "0_george_0.wav").is_file()  # doctest: +SKIP
True
"""
import dataclasses
import hashlib
import http.client
import logging
import os
import posixpath
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

from audiodata.errors import DatasetNotFoundError, DownloadError, ParameterError

logger = logging.getLogger(__name__)

#: Environment variable naming the data folder when none is given.
DATA_DIR_ENV = "AUDIO_DATA_DIR"

#: Environment variable naming a mirror of the dataset files (the default of ``--mirror``; see :func:`mirror_sources`).
MIRROR_ENV = "AUDIO_DATA_MIRROR"

#: Dataset names of the loaders (``audiodata.datasets.DATASETS``) that are downloaded as another dataset.
DOWNLOAD_AS = {"esc10": "esc50"}

#: Folder of ``data_dir`` where archives are downloaded and datasets assembled.
DOWNLOADS_FOLDER = "_downloads"

#: Dataset name -> folder of ``data_dir`` that holds it, in the official layout.
DATASET_FOLDERS = {
    "urbansound8k": "UrbanSound8K",
    "medley_solos_db": "MedleySolosDB",
    "speech_commands": "speech_commands",
    "speech_commands_v1": "speech_commands_v0.01",
    "esc50": "ESC-50",
    "sonyc_ust": "SONYC-UST",
    "openmic": "openmic-2018",
    "fsdd": "fsdd",
}

#: Dataset name -> the official page (or, where there is none, the archive) of the dataset.
DATASET_PAGES = {
    "urbansound8k": "https://zenodo.org/records/1203745",
    "medley_solos_db": "https://zenodo.org/records/3464194",
    "speech_commands": "https://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    "speech_commands_v1": "https://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    "esc50": "https://github.com/karolpiczak/ESC-50",
    "sonyc_ust": "https://zenodo.org/records/3966543",
    "openmic": "https://zenodo.org/records/1432913",
    "fsdd": "https://github.com/Jakobovski/free-spoken-digit-dataset",
}

_ALGORITHMS = {"md5": 32, "sha256": 64}
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_CHUNK = 1 << 20
_USER_AGENT = "audiodata-downloader/0.1 (Python urllib)"


def _parse_checksum(checksum):
    """Split ``"md5:<hex>"`` into ``("md5", "<hex>")``, rejecting anything else."""
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in _ALGORITHMS or not re.fullmatch(f"[0-9a-f]{{{_ALGORITHMS[algorithm]}}}", digest):
        raise ParameterError(f"checksum must be 'md5:<32 hex>' or 'sha256:<64 hex>', got {checksum!r}")
    return algorithm, digest


@dataclasses.dataclass(frozen=True)
class Source:
    """One file of a dataset: where it comes from and where its content goes.

    Parameters
    ----------
    url : str
        Where to download the file from.
    filename : str
        Name of the downloaded file (archives are recognised by it: ``.zip``,
        ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``).
    checksum : str or None
        ``"md5:<hex>"`` or ``"sha256:<hex>"``; None where the publisher publishes none.
    strip : str or None
        For an archive: its top-level folder whose content makes up the dataset
        folder (e.g. ``"ESC-50-master"``); None to take the whole archive.
    into : str
        Sub-folder of the dataset folder that receives the file or the archive's
        content (``""`` for the dataset folder itself).
    """

    url: str
    filename: str
    checksum: str = None
    strip: str = None
    into: str = ""

    def __post_init__(self):
        if self.checksum is not None:
            _parse_checksum(self.checksum)
        if not self.filename or Path(self.filename).name != self.filename:
            raise ParameterError(f"Source filename must be a plain file name, got {self.filename!r}")

    @property
    def is_archive(self):
        """bool : whether the file is unpacked (zip or tar) rather than copied."""
        return self.filename.endswith(_TAR_SUFFIXES + (".zip",))


def _zenodo(record, filename, md5, **kwargs):
    """A file of a Zenodo record, with the md5 that Zenodo publishes for it."""
    url = f"https://zenodo.org/records/{record}/files/{filename}?download=1"
    return Source(url, filename, f"md5:{md5}", **kwargs)


_SONYC_AUDIO_MD5 = (
    "bbb4dbae7d2e58e18d24878b9ee1eb51", "7c369ff37ac6a1fdd8493fdffe62e0a1", "412241c063d7f196953d3dd1c44aeb5e",
    "d2a872392d95993a2c238d305b940812", "b15b0e0cb3f8584259ef0d24293a9be3", "de745f887067433757a2f2c8f99f99bb",
    "b0286c67468369d66336f6f5ddede31f", "ff300183ab7a9d3f2f74c3b730ffeb52", "7be76b821fa6dbe20f6b50ca440e1024",
    "959f7edfbb26eadad9865069f38aa9dd", "84e94de273666c537a3e6b709ee88d9b", "44fe1f43121a7d1178aa0cdf7477793b",
    "a7eb21011f460b5ac289f8e285e875ab", "27945a8b1008eec787f97213164951e6", "fb8c7d81c3bde3a0c86c1e55e6a85a24",
    "f6af9b65d876ef96d199b9e5f0473cb9", "e8337c61a90c30989d500f950fbe443a", "3e47e85eb4564a30fe7f442ee97ec7b9",
    "c6b2ef4d0d5b7269d465c469cdbbdc4b",
)

#: Dataset name -> the files that make it up (see docs/download.md for where each checksum comes from).
SOURCES = {
    "urbansound8k": (
        _zenodo(1203745, "UrbanSound8K.tar.gz", "9aa69802bbf37fb986f71ec1483a196e", strip="UrbanSound8K"),
    ),
    "medley_solos_db": (
        _zenodo(3464194, "Medley-solos-DB.tar.gz", "f5facf398793ef5c1f80c013afdf3e5f", into="audio"),
        _zenodo(3464194, "Medley-solos-DB_metadata.csv", "fda6a589c56785f2195c9227809c521a", into="annotation"),
    ),
    # Google publishes no checksum; these SHA-256 are the ones torchaudio verifies these archives against.
    "speech_commands": (
        Source(
            "https://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            "speech_commands_v0.02.tar.gz",
            "sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        ),
    ),
    "speech_commands_v1": (
        Source(
            "https://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
            "speech_commands_v0.01.tar.gz",
            "sha256:743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        ),
    ),
    # GitHub archives have no published checksum (and a branch archive changes with every commit).
    "esc50": (
        Source("https://github.com/karolpiczak/ESC-50/archive/master.zip", "ESC-50-master.zip", strip="ESC-50-master"),
    ),
    "sonyc_ust": (
        _zenodo(3966543, "annotations.csv", "70b507b15bb4cfcce4870925302f276b"),
        _zenodo(3966543, "dcase-ust-taxonomy.yaml", "6c1cca1c4c383a6ebb0cb71cb74fe3a9"),
    )
    + tuple(_zenodo(3966543, f"audio-{i}.tar.gz", md5) for i, md5 in enumerate(_SONYC_AUDIO_MD5)),
    "openmic": (
        _zenodo(1432913, "openmic-2018-v1.0.0.tgz", "e4ccf187e2bb5ab2e115416e8aafe7f4", strip="openmic-2018"),
    ),
    "fsdd": (
        Source(
            "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
            "free-spoken-digit-dataset-1.0.10.tar.gz",
            strip="free-spoken-digit-dataset-1.0.10",
        ),
    ),
}


def dataset_folder(name):
    """Folder name of a dataset under the data folder.

    Parameters
    ----------
    name : str
        A dataset name, one of ``DATASET_FOLDERS``.

    Returns
    -------
    folder : str

    Raises
    ------
    ParameterError
        If ``name`` is not a known dataset; the message lists the valid names.
    """
    if name not in DATASET_FOLDERS:
        raise ParameterError(f"unknown dataset {name!r}; valid names are: {', '.join(sorted(DATASET_FOLDERS))}")
    return DATASET_FOLDERS[name]


def download_instructions(name):
    """How to get a dataset, for "dataset not found" messages.

    Parameters
    ----------
    name : str
        A dataset name, one of ``DATASET_FOLDERS``.

    Returns
    -------
    text : str
        The command that downloads it and its official URL.

    Examples
    --------
    >>> print(download_instructions("fsdd"))
    Download it with `python experiments/download.py --dataset fsdd --data-dir DATA_DIR` (puts it in DATA_DIR/fsdd),
    or get it from https://github.com/Jakobovski/free-spoken-digit-dataset
    """
    folder = dataset_folder(name)
    return (
        f"Download it with `python experiments/download.py --dataset {name} --data-dir DATA_DIR` "
        f"(puts it in DATA_DIR/{folder}),\nor get it from {DATASET_PAGES[name]}"
    )


class NoDataDirError(ParameterError):
    """No data folder was given and ``AUDIO_DATA_DIR`` is not set (:func:`cli_error` names the command-line flag)."""


def cli_error(error, flag="--data-dir"):
    """The message a command line prints for ``error``: the library's, except that a missing data folder names ``flag``.

    >>> cli_error(NoDataDirError("no data folder given: pass data_dir or set AUDIO_DATA_DIR"))
    'no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR environment variable'
    """
    if isinstance(error, NoDataDirError):
        return f"no data folder: pass {flag} DATA or set the {DATA_DIR_ENV} environment variable"
    return str(error)


def resolve_data_dir(data_dir=None):
    """The data folder: ``data_dir``, or the ``AUDIO_DATA_DIR`` environment variable.

    Parameters
    ----------
    data_dir : str or os.PathLike or None

    Returns
    -------
    path : pathlib.Path
        Absolute, with ``~`` expanded.

    Raises
    ------
    NoDataDirError
        (a :class:`ParameterError`) If ``data_dir`` is None and ``AUDIO_DATA_DIR`` is not set.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise NoDataDirError(f"no data folder given: pass data_dir or set the {DATA_DIR_ENV} environment variable")
    return Path(data_dir).expanduser().resolve()


def download_dataset(
    name, data_dir=None, *, sources=None, keep_archives=False, retries=3, timeout=60.0, progress=True
):
    """Download a dataset and unpack it into ``<data_dir>/<FOLDER>`` in the official layout.

    Does nothing if the dataset folder already exists. Files already downloaded
    and verified (``keep_archives=True``, or a previous interrupted run) are not
    downloaded again; a partial file is resumed.

    Parameters
    ----------
    name : str
        A dataset name, one of ``DATASET_FOLDERS``.
    data_dir : str or os.PathLike or None
        Data folder; None reads the ``AUDIO_DATA_DIR`` environment variable.
    sources : sequence of Source or None
        Files to download instead of ``SOURCES[name]`` (a mirror, or a test server).
    keep_archives : bool
        Keep the downloaded files in ``<data_dir>/_downloads/<FOLDER>/`` afterwards.
    retries : int >= 0
        How many times an interrupted download is resumed before giving up.
    timeout : float > 0
        Seconds to wait for the server on each connection or read.
    progress : bool
        Show progress bars.

    Returns
    -------
    path : pathlib.Path
        The dataset folder.

    Raises
    ------
    ParameterError
        Unknown dataset name, no data folder, or a bad ``retries``/``timeout``.
    DownloadError
        A network failure, a checksum mismatch, or an unsafe or unexpected archive.
    """
    folder = dataset_folder(name)
    sources = tuple(SOURCES[name] if sources is None else sources)
    _check_options(retries, timeout)
    target = resolve_data_dir(data_dir) / folder
    if target.exists():
        logger.info("%s is already in %s; nothing to download", name, target)
        return target
    work = target.parent / DOWNLOADS_FOLDER / folder
    files = [
        download_file(source.url, work / source.filename, checksum=source.checksum,
                      retries=retries, timeout=timeout, progress=progress)
        for source in sources
    ]
    staging = _fresh_folder(work / "unpacked")
    for source, path in zip(sources, files):
        _install(source, path, staging, progress)
    staging.rename(target)
    _clean_up(work, keep_archives)
    logger.info("%s is in %s", name, target)
    return target


def mirror_sources(name, mirror):
    """The files of dataset ``name`` fetched from ``mirror`` instead of their official hosts.

    A mirror is a base URL (``http://``, ``https://`` or ``file://``) under which every file of
    ``SOURCES[name]`` is found by its file name: ``<mirror>/<filename>``, e.g.
    ``https://mirror.example.org/audio/UrbanSound8K.tar.gz``. Checksums, stripped folders and
    destinations stay those of the official files, so a mirror's files are verified alike.
    It serves institutional mirrors and the tests (a local HTTP server).

    Parameters
    ----------
    name : str
        A dataset name, one of ``DATASET_FOLDERS`` (or ``esc10``, downloaded as ``esc50``).
    mirror : str

    Returns
    -------
    sources : tuple of Source
    """
    name = DOWNLOAD_AS.get(name, name)
    dataset_folder(name)
    if not re.match(r"(https?|file)://", str(mirror)):
        raise ParameterError(f"--mirror must be an http://, https:// or file:// URL, got {mirror!r}")
    base = str(mirror).rstrip("/")
    return tuple(dataclasses.replace(source, url=f"{base}/{source.filename}") for source in SOURCES[name])


def ensure_dataset(name, data_dir=None, *, mirror=None, progress=True, log=None):
    """Download dataset ``name`` into ``data_dir`` unless it is already there (the ``--download`` of the command lines).

    The dataset counts as there when its loader finds it (``audiodata.datasets.get_dataset``:
    ``<data_dir>/<FOLDER>``, or ``data_dir`` itself); then nothing is downloaded. Otherwise
    :func:`download_dataset` fetches it from its official sources, or from ``mirror``
    (:func:`mirror_sources`; default: the ``AUDIO_DATA_MIRROR`` environment variable), with
    progress bars.

    Parameters
    ----------
    name : str
        A dataset name of ``audiodata.datasets.DATASETS`` (``esc10`` downloads ESC-50).
    data_dir : str or os.PathLike or None
        Data folder; None reads ``AUDIO_DATA_DIR``.
    mirror : str or None
        Base URL of a mirror.
    progress : bool
        Show progress bars.
    log : callable or None
        Called with one line of text for each step (the command lines print it to stderr).

    Returns
    -------
    path : pathlib.Path
        The dataset folder.

    Raises
    ------
    NoDataDirError
        No ``data_dir`` and no ``AUDIO_DATA_DIR``.
    DatasetNotFoundError
        The dataset folder exists but its loader cannot read it (an incomplete copy: nothing
        is downloaded over it; move it away first).
    DownloadError
        The download failed.
    """
    from audiodata.datasets import get_dataset  # here: audiodata.datasets imports this module (download hints)

    log = log or (lambda line: None)
    download_name = DOWNLOAD_AS.get(name, name)
    root = resolve_data_dir(data_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing clips are reported again when the dataset is loaded
            found = get_dataset(name, data_dir=root).root
    except DatasetNotFoundError as error:
        target = root / dataset_folder(download_name)
        if target.exists():
            raise DatasetNotFoundError(f"{error}\n{target} exists but is not a complete {name} folder; move it away "
                                       "and run again with --download to download it") from None
    else:
        log(f"{name} is already in {found}; nothing to download")
        return found
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    sources = mirror_sources(download_name, mirror) if mirror else None
    where = mirror or ", ".join(sorted({urllib.parse.urlsplit(s.url).netloc for s in SOURCES[download_name]}))
    log(f"downloading {download_name} into {root / dataset_folder(download_name)} from {where}")
    path = download_dataset(download_name, root, sources=sources, progress=progress)
    log(f"{download_name} is in {path}")
    return path


def add_download_options(parser):
    """Add ``--download`` and ``--mirror URL`` to an :class:`argparse.ArgumentParser` (see :func:`ensure_dataset`)."""
    parser.add_argument("--download", action="store_true",
                        help="download the dataset into --data-dir first (with progress bars) unless it is "
                             "already there; see docs/download.md")
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_ENV) or None, metavar="URL",
                        help="with --download: fetch the dataset's files from URL/<file name> instead of their "
                             f"official hosts (a mirror; default ${MIRROR_ENV})")
    return parser


def download_file(url, path, *, checksum=None, retries=3, timeout=60.0, progress=True):
    """Download one file, resuming a partial download and verifying its checksum.

    The data goes to ``<path>.part`` and is renamed to ``path`` only once it is
    complete and verified. A file already at ``path`` that matches ``checksum``
    is not downloaded again.

    Parameters
    ----------
    url : str
    path : str or os.PathLike
        Where the file goes.
    checksum : str or None
        ``"md5:<hex>"`` or ``"sha256:<hex>"``; None warns that the file cannot be verified.
    retries : int >= 0
        How many times an interrupted download is resumed before giving up.
    timeout : float > 0
        Seconds to wait for the server on each connection or read.
    progress : bool
        Show a progress bar.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    DownloadError
        The server failed or stayed unreachable, or the checksum does not match
        (the partial file is then deleted). The message names the URL and file.
    """
    _check_options(retries, timeout)
    path = Path(path)
    if path.is_file():
        if checksum is None or _checksum_matches(path, checksum):
            logger.info("%s is already downloaded", path)
            return path
        logger.warning("%s does not match its checksum %s; downloading it again", path, checksum)
    if checksum is None:
        warnings.warn(f"{path.name}: no checksum is published for {url}; only its size is checked", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    _fetch_with_retries(url, part, retries, timeout, progress)
    _verify(part, checksum, url)
    os.replace(part, path)
    return path


def file_checksum(path, algorithm="sha256"):
    """Hex digest of a file.

    Parameters
    ----------
    path : str or os.PathLike
    algorithm : {"md5", "sha256"}

    Returns
    -------
    digest : str
    """
    if algorithm not in _ALGORITHMS:
        raise ParameterError(f"checksum algorithm must be one of {sorted(_ALGORITHMS)}, got {algorithm!r}")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unpack_archive(archive, destination, *, strip=None, progress=False):
    """Unpack a zip or tar archive safely into a new folder.

    Every member is checked before it is written: absolute paths, ``..``
    components, links pointing out of the archive and special files are refused.

    Parameters
    ----------
    archive : str or os.PathLike
        A ``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2`` or ``.tar.xz`` file.
    destination : str or os.PathLike
        Folder to unpack into; it must not exist yet.
    strip : str or None
        A top-level folder of the archive: return it instead of ``destination``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    root : pathlib.Path
        ``destination``, or ``destination / strip``.

    Raises
    ------
    DownloadError
        An unsafe member, an unreadable archive, or ``strip`` missing from it.
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            _unzip(archive, destination, progress)
        elif archive.name.endswith(_TAR_SUFFIXES):
            _untar(archive, destination, progress)
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise DownloadError(f"{archive}: cannot be unpacked ({error})") from error
    root = destination / strip if strip else destination
    if not root.is_dir():
        found = sorted(p.name for p in destination.iterdir())
        raise DownloadError(f"{archive}: expected a top-level folder {strip!r}, found {found}")
    return root


def _check_options(retries, timeout):
    """Reject a bad ``retries`` or ``timeout``."""
    if not isinstance(retries, int) or retries < 0:
        raise ParameterError(f"retries must be an integer >= 0, got {retries!r}")
    if not timeout > 0:
        raise ParameterError(f"timeout must be > 0 seconds, got {timeout!r}")


def _checksum_matches(path, checksum):
    """Whether ``path`` has the given ``"algorithm:hex"`` checksum."""
    algorithm, digest = _parse_checksum(checksum)
    return file_checksum(path, algorithm) == digest


def _verify(part, checksum, url):
    """Delete ``part`` and raise if it does not match ``checksum``."""
    if checksum is None:
        return
    algorithm, expected = _parse_checksum(checksum)
    found = file_checksum(part, algorithm)
    if found != expected:
        part.unlink()
        raise DownloadError(
            f"{part.name.removesuffix('.part')}: {algorithm} checksum mismatch for {url} "
            f"(expected {expected}, got {found}); the download was deleted"
        )


class _Interrupted(Exception):
    """A transfer that stopped early and can be resumed."""


def _fetch_with_retries(url, part, retries, timeout, progress):
    """Fetch ``url`` into ``part``, resuming up to ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            return _fetch(url, part, timeout, progress)
        except _Interrupted as error:
            if attempt == retries:
                size = part.stat().st_size if part.exists() else 0
                kept = (f"the partial download {part} ({size} bytes) is kept, run again to resume" if size
                        else "nothing was downloaded, run again to retry")
                if not size:
                    part.unlink(missing_ok=True)
                raise DownloadError(f"{url}: {error}; {kept}") from error
            delay = min(0.5 * 2**attempt, 30.0)
            logger.warning("%s: %s; resuming in %.1f s (%d/%d)", url, error, delay, attempt + 1, retries)
            time.sleep(delay)


def _fetch(url, part, timeout, progress):
    """One attempt: append the rest of ``url`` to ``part`` (restarting if the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except _RangeRefused as refused:
        if refused.total == offset:
            return
        logger.info("%s: the server refused to resume at byte %d; restarting", url, offset)
        part.unlink()
        offset, response = 0, _open(url, 0, timeout)
    with response:
        offset = _resume_offset(response, offset, url)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as file, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:
            _copy(response, file, bar)
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Interrupted(f"connection closed after {size} of {total} bytes")


class _RangeRefused(Exception):
    """HTTP 416: the requested range starts at or past the end of the file (``total`` bytes, if known)."""

    def __init__(self, total):
        super().__init__(total)
        self.total = total


def _open(url, offset, timeout):
    """Open ``url`` from byte ``offset``."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            match = re.fullmatch(r"bytes \*/(\d+)", error.headers.get("Content-Range", ""))
            raise _RangeRefused(int(match.group(1)) if match else None) from error
        if error.code >= 500:
            raise _Interrupted(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (OSError, http.client.HTTPException) as error:
        raise _Interrupted(f"cannot connect ({getattr(error, 'reason', error)})") from error


def _resume_offset(response, offset, url):
    """Where the body of ``response`` starts: ``offset`` for a matching 206, else 0."""
    if not offset:
        return 0
    if response.status == 206:
        match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            logger.info("%s: resuming at byte %d", url, offset)
            return offset
    logger.info("%s: the server ignored the Range request; restarting", url)
    return 0


def _copy(response, file, bar):
    """Copy the body of ``response`` into ``file``, turning network errors into ``_Interrupted``."""
    try:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            file.write(chunk)
            bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as error:
        raise _Interrupted(f"connection lost ({error})") from error


def _check_member(name, archive):
    """Refuse a member name that is absolute or climbs out of the destination."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        raise DownloadError(f"{archive}: refusing member with an absolute path: {name!r}")
    if ".." in posix.parts or ".." in windows.parts:
        raise DownloadError(f"{archive}: refusing member with '..' in its path: {name!r}")


def _check_link(member, archive):
    """Refuse a tar link whose target is absolute or outside the archive."""
    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
    target = posixpath.normpath(str(base / member.linkname))
    if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
        raise DownloadError(f"{archive}: refusing link {member.name!r} to {member.linkname!r} outside the archive")


def _unzip(archive, destination, progress):
    """Check every member name of a zip, then extract it."""
    with zipfile.ZipFile(archive) as zip_file:
        members = zip_file.infolist()
        for member in members:
            _check_member(member.filename, archive)
        for member in tqdm(members, desc=f"unpacking {archive.name}", unit="file", disable=not progress, leave=False):
            zip_file.extract(member, destination)


def _untar(archive, destination, progress):
    """Extract a tar member by member, checking each one before it is written."""
    with tarfile.open(archive) as tar:
        for member in tqdm(tar, desc=f"unpacking {archive.name}", unit="file", disable=not progress, leave=False):
            _check_member(member.name, archive)
            if member.issym() or member.islnk():
                _check_link(member, archive)
            try:
                tar.extract(member, destination, filter="data")
            except tarfile.FilterError as error:
                raise DownloadError(f"{archive}: refusing member {member.name!r} ({error})") from error


def _fresh_folder(path):
    """An empty folder at ``path`` (what an earlier interrupted run left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _install(source, path, staging, progress):
    """Put a downloaded file, or an archive's content, into ``staging / source.into``."""
    destination = staging / source.into
    destination.mkdir(parents=True, exist_ok=True)
    if not source.is_archive:
        shutil.copyfile(path, destination / source.filename)
        return
    scratch = staging / f".unpacking-{source.filename}"
    root = unpack_archive(path, scratch, strip=source.strip, progress=progress)
    _merge(root, destination)
    shutil.rmtree(scratch)


def _merge(source, destination):
    """Move the content of folder ``source`` into folder ``destination``, merging sub-folders."""
    for entry in source.iterdir():
        target = destination / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _merge(entry, target)
        else:
            os.replace(entry, target)


def _clean_up(work, keep_archives):
    """Remove the assembly folder, and the downloads unless they are to be kept."""
    if keep_archives:
        shutil.rmtree(work / "unpacked", ignore_errors=True)
        return
    shutil.rmtree(work)
    try:
        work.parent.rmdir()
    except OSError:
        pass
