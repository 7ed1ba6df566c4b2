"""Run folders of both papers: where a run lives, what it wrote, what it is.

Every training command writes one folder per run::

    <output>/<family>/<dataset>/fold<N>/seed<S>/[<system>/]

``family`` is the model (``apnet``, ``sb_cnn``, ...) for APNet's Table 3 runs and ``l2i`` for
L2I, whose systems (``classifier``, ``dictionary``, ``posthoc_att``, ...) are sub-folders. Each
holds ``config.yaml`` (or the config in ``results.json``), ``results.json`` and, for L2I,
``identity.json`` (what changes the run's numbers).

* :func:`run_directory`, :func:`locate` -- the path of a run, and back;
* :func:`read_results`, :func:`write_results` -- ``results.json``, written atomically;
* :func:`identity_hash`, :func:`read_identity`, :func:`write_identity` -- ``identity.json``;
* :class:`Run` -- what every loaded run has (its folder, dataset, fold, results); the papers'
  loaders return subclasses (:class:`apnet.inspection.APNetRun`, :class:`l2i.pipeline.L2IRun`).
"""
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from audiodata.errors import ParameterError
from audioruns.checkpoints import write_text_atomic

__all__ = ["Run", "run_directory", "locate", "read_results", "write_results", "plain", "identity_hash",
           "read_identity", "write_identity"]

_LOCATION = re.compile(r"(?:^|/)(?P<family>[^/]+)/(?P<dataset>[^/]+)/fold(?P<fold>\d+)/seed(?P<seed>\d+)"
                       r"(?:/(?P<system>[^/]+))?/?$")


@dataclass(kw_only=True)
class Run:
    """A loaded run folder: what both papers' runs have.

    Attributes
    ----------
    path : Path
        The run folder.
    dataset : str
    fold : int or None
    results : dict
        Its ``results.json`` (empty if absent).
    """

    path: Path
    dataset: str
    fold: int = None
    results: dict = field(default_factory=dict)

    @property
    def run_dir(self):
        """The run folder (:attr:`path`)."""
        return self.path


def run_directory(output, family, dataset, fold, seed, *, create=True):
    """``<output>/<family>/<dataset>/fold<N>/seed<S>`` (created unless ``create=False``).

    Parameters
    ----------
    output : str or Path
        Root of the runs.
    family : str
        ``"apnet"``, ``"l2i"``, ...
    dataset : str
    fold : int
    seed : int
    create : bool
        Create the folder (and its parents).

    Returns
    -------
    pathlib.Path
    """
    path = Path(output) / family / dataset / f"fold{int(fold)}" / f"seed{int(seed)}"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def locate(path):
    """``{"family", "dataset", "fold", "seed", "system"}`` read from a run folder's path, or None.

    ``path`` is resolved first; ``fold`` and ``seed`` are ints, ``system`` None for a run
    folder without systems (APNet's).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict or None
    """
    match = _LOCATION.search(Path(path).resolve().as_posix())
    if match is None:
        return None
    found = match.groupdict()
    found["fold"], found["seed"] = int(found["fold"]), int(found["seed"])
    return found


def read_results(run_dir):
    """The ``results.json`` of ``run_dir`` as a dict; ``{}`` when there is none.

    Parameters
    ----------
    run_dir : str or Path

    Returns
    -------
    dict

    Raises
    ------
    audiodata.errors.ParameterError
        The file is not valid JSON (the message names it).
    """
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ParameterError(f"{path}: not valid JSON ({error})") from None


def write_results(path, results):
    """Write ``results`` as indented JSON with sorted keys, atomically (temporary file, fsync, rename).

    NumPy numbers are written as floats.

    Parameters
    ----------
    path : str or Path
        The JSON file to write.
    results : dict

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    write_text_atomic(path, json.dumps(results, indent=2, sort_keys=True, default=float))


def plain(value):
    """JSON-stable copy: tuples as lists, NumPy scalars as Python numbers, dict keys sorted strings.

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, NumPy scalars and JSON values, nested.

    Returns
    -------
    object
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return plain(value.item())
    return value


def identity_hash(identity):
    """First 8 hex digits of the SHA-1 of the canonical JSON of ``identity``.

    Parameters
    ----------
    identity : dict

    Returns
    -------
    str
    """
    text = json.dumps(plain(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def write_identity(folder, identity):
    """Write ``folder/identity.json``; refuse (:class:`ParameterError`) if it holds another identity.

    Parameters
    ----------
    folder : str or Path
    identity : dict

    Returns
    -------
    pathlib.Path
        ``folder/identity.json``.

    Raises
    ------
    audiodata.errors.ParameterError
        ``folder`` holds another identity.
    """
    folder = Path(folder)
    existing = read_identity(folder)
    if existing is not None and existing != plain(identity):
        raise ParameterError(f"{folder} holds a run of another configuration (identity {identity_hash(existing)}, "
                             f"this one {identity_hash(identity)}); use another --output or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "identity.json").write_text(json.dumps(plain(identity), indent=2, sort_keys=True))
    return folder / "identity.json"


def read_identity(folder):
    """The identity stored in ``folder`` (``identity.json``, else ``results.json``'s ``identity``), or None.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    dict or None
    """
    folder = Path(folder)
    for name, key in (("identity.json", None), ("results.json", "identity")):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            data = data if key is None else data.get(key)
            if data:
                return plain(data)
    return None
