#!/usr/bin/env bash
# Make sure the headless Chromium of the web application's browser tests (tests/app/test_browser.py)
# is installed. Part of the README's test command; .ci/run runs that command as written.
#
# Chromium on the PATH (or $AUDIOINTERP_CHROMIUM): nothing to do. Otherwise Debian/Ubuntu's package is
# installed with apt-get, as root or through sudo when sudo needs no password. Where neither is possible
# it prints the exact command to run and exits 1: the browser tests never skip silently
# (AUDIOINTERP_SKIP_BROWSER=1 skips them on purpose, and then this script does nothing).
set -euo pipefail

if [ "${AUDIOINTERP_SKIP_BROWSER:-0}" = "1" ]; then
    echo "install_browser: AUDIOINTERP_SKIP_BROWSER=1, the browser tests will be skipped" >&2
    exit 0
fi
if [ -n "${AUDIOINTERP_CHROMIUM:-}" ]; then
    if [ -x "$AUDIOINTERP_CHROMIUM" ]; then exit 0; fi
    echo "install_browser: AUDIOINTERP_CHROMIUM=$AUDIOINTERP_CHROMIUM is not an executable file" >&2
    exit 1
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
COMMAND="apt-get update && apt-get install -y --no-install-recommends chromium"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: Chromium is missing and this system has no apt-get. Install Chromium with your" >&2
    echo "package manager and put it on the PATH, or set AUDIOINTERP_CHROMIUM=/path/to/chromium." >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
else
    echo "install_browser: Chromium is missing and installing it needs root. Run:" >&2
    echo "    sudo sh -c '$COMMAND'" >&2
    echo "then the tests again (or set AUDIOINTERP_CHROMIUM=/path/to/chromium)." >&2
    exit 1
fi
echo "install_browser: installing Debian's chromium for the browser tests ($COMMAND)" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
command -v chromium >/dev/null 2>&1 || { echo "install_browser: chromium still not on the PATH" >&2; exit 1; }
