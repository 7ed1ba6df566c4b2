"""The README's set-up commands are what CI runs, and the browser installer says what it cannot do."""
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "tests" / "install_browser.sh"


def _readme_test_command():
    lines = (ROOT / "README.md").read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("# 2. the tests")]
    assert len(marks) == 1, "README.md must have exactly one '# 2. the tests' line"
    return lines[marks[0] + 1]


def test_ci_runs_the_readme_test_command_as_written():
    command = _readme_test_command()
    assert "python -m pytest" in command and "tests/install_browser.sh" in command
    extracted = subprocess.run(["bash", "-c", "sed -n '/^# 2\\. the tests/{n;p;q}' README.md"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    assert extracted == command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "sed -n '/^# 2\\. the tests/{n;p;q}' README.md" in ci and 'bash -c "$TEST_COMMAND"' in ci


def _run_installer(tmp_path, **env):
    """The installer with a PATH holding only bash, sed and id (no chromium, no apt-get)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "id", "env"):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return subprocess.run([str(bin_dir / "bash"), str(INSTALLER)], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path), **env})


def test_installer_without_a_package_manager_says_what_to_do(tmp_path):
    done = _run_installer(tmp_path)
    assert done.returncode == 1
    assert "Chromium is missing" in done.stderr and "AUDIOINTERP_CHROMIUM" in done.stderr


def test_installer_refuses_a_chromium_path_that_is_not_executable(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("not a program")
    done = _run_installer(tmp_path, AUDIOINTERP_CHROMIUM=str(fake))
    assert done.returncode == 1 and str(fake) in done.stderr
    fake.chmod(0o755)
    assert _run_installer(tmp_path, AUDIOINTERP_CHROMIUM=str(fake)).returncode == 0


def test_installer_accepts_an_explicit_skip(tmp_path):
    done = _run_installer(tmp_path, AUDIOINTERP_SKIP_BROWSER="1")
    assert done.returncode == 0 and "skipped" in done.stderr


def test_installer_finds_chromium_on_the_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "chromium"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    done = _run_installer(tmp_path)
    assert done.returncode == 0, done.stderr
    assert os.access(fake, os.X_OK)
