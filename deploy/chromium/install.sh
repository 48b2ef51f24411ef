#!/usr/bin/env bash
# Install headless Chromium from Debian's `chromium` package, for the check that the
# `streams eval` HTML report renders (tests/eval/test_eval_html.py) and CI.
#
# Idempotent: does nothing when `chromium` is already on PATH. Needs root (or sudo
# without a password) and no stdin.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: already installed ($(command -v chromium))"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "chromium: run $0 as root (or install sudo); needs apt-get install" >&2
        exit 1
    }
    SUDO="sudo -n"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
command -v chromium >/dev/null
