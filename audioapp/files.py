"""Which files the web application may read, and how it shows paths.

Clients never send paths: audio is addressed by clip id, prototype index or upload token,
and the path found for it is checked again here (:func:`audio_file`) before a byte is read,
so a corrupted table or a crafted id cannot reach a file outside the dataset folder or the
app's cache folder. Paths the pages show go through :func:`shown_path`.
"""
import os
from pathlib import Path

from audiodata.io import AUDIO_EXTENSIONS

from audioapp.errors import NotFound


def inside(root, path):
    """True when ``path`` (absolute, or relative to ``root``) lies in ``root`` once ``..`` are resolved.

    A lexical check (symbolic links are not resolved here); :func:`audio_file` also checks
    the real path.
    """
    root = os.path.abspath(os.fspath(root))
    target = os.path.abspath(os.path.join(root, os.fspath(path)))
    return os.path.commonpath([root, target]) == root


def audio_file(path, roots):
    """The real file of ``path`` when it is an existing audio file inside one of ``roots``.

    Two checks, both at every call (so a link re-pointed after start-up is caught): the path
    as written must lie in a root (no ``..`` or absolute path elsewhere), and its real path,
    symbolic links resolved now (``os.path.realpath``), must lie under the real path of a
    root and be an audio file. Links inside a root to files inside a root (or a linked
    dataset folder) are fine; a link to anything outside is refused. The resolved path is
    returned, so the file opened is the one checked.

    Raises
    ------
    NotFound
        Outside every root (as written or once resolved), not an audio extension, or
        missing (the message does not echo the full path of a refused file).
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise NotFound(f"{path.name}: not an audio file the app serves ({', '.join(AUDIO_EXTENSIONS)})")
    if not any(inside(root, path) for root in roots):
        raise NotFound(f"{path.name}: outside the dataset and cache folders; refused")
    if not path.is_file():
        raise NotFound(f"{path.name}: no such audio file")
    real = Path(os.path.realpath(path))
    if not any(inside(os.path.realpath(os.fspath(root)), real) for root in roots):
        raise NotFound(f"{path.name}: a link to a file outside the dataset and cache folders; refused")
    if real.suffix.lower() not in AUDIO_EXTENSIONS or not real.is_file():
        raise NotFound(f"{path.name}: a link to something that is not an audio file; refused")
    return real


def shown_path(path):
    """``path`` as the pages show it: relative to the working directory when inside it, else absolute.

    So pages and screenshots do not carry the machine's absolute paths of the folders below
    the working directory.
    """
    path = os.path.abspath(os.fspath(path))
    relative = os.path.relpath(path)
    return path if relative == ".." or relative.startswith(".." + os.sep) else relative
