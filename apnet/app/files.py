"""Which files the web application may read: only audio inside the dataset folder or the app's cache folder.

Clients never send paths: audio is addressed by clip id, prototype index or upload token,
and the path found for it is checked again here before a byte is read, so a corrupted
table or a crafted id cannot reach a file outside those folders.
"""
import os
from pathlib import Path

from audiodata.io import AUDIO_EXTENSIONS

from apnet.app.errors import NotFound


def inside(root, path):
    """True when ``path`` (absolute, or relative to ``root``) lies in ``root`` once ``..`` are resolved.

    Symbolic links inside ``root`` are not followed (dataset folders may link their files),
    but ``..`` components and absolute paths elsewhere are rejected.
    """
    root = os.path.abspath(os.fspath(root))
    target = os.path.abspath(os.path.join(root, os.fspath(path)))
    return os.path.commonpath([root, target]) == root


def audio_file(path, roots):
    """``path`` as a :class:`~pathlib.Path` when it is an existing audio file inside one of ``roots``.

    Raises
    ------
    NotFound
        Outside every root, not an audio extension, or missing (the message does not echo
        the full path of a refused file).
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise NotFound(f"{path.name}: not an audio file the app serves ({', '.join(AUDIO_EXTENSIONS)})")
    if not any(inside(root, path) for root in roots):
        raise NotFound(f"{path.name}: outside the dataset and cache folders; refused")
    if not path.is_file():
        raise NotFound(f"{path.name}: no such audio file")
    return path
