"""No tracked file names the folder this checkout lives in (paths in docs and code are relative or arguments)."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_tracked_files_do_not_name_the_checkouts_parent_folder():
    parent = str(ROOT.parent)
    if parent == ROOT.anchor:
        pytest.skip("the checkout sits at the file system's root: its parent path is '/'")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    needle = (parent.rstrip("/") + "/").encode()
    hits = []
    for name in filter(None, listed.stdout.split(b"\0")):
        path = ROOT / name.decode()
        if path.is_file() and needle in path.read_bytes():
            hits.append(name.decode())
    assert not hits, f"tracked files naming {parent}/ (use paths relative to the repository): {hits}"
