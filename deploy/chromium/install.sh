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
NAME=chromium
# shellcheck source=../apt-sudo.sh
source "$(dirname "$0")/../apt-sudo.sh"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
command -v chromium >/dev/null
