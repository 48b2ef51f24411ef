#!/usr/bin/env bash
# Install Prometheus and promtool from Debian's `prometheus` package, for the
# integration tests (tests/integration/test_prometheus.py) and CI.
#
# Idempotent: does nothing when both binaries are already on PATH. Needs root
# (or sudo without a password) and no stdin. It never enables or starts the
# packaged system service: the tests run their own Prometheus on 127.0.0.1
# with a config and data directory of their own.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus: already installed ($(command -v prometheus))"
    exit 0
fi

NAME=prometheus
# shellcheck source=../apt-sudo.sh
source "$(dirname "$0")/../apt-sudo.sh"

# Debian's maintainer scripts start the service through invoke-rc.d unless a
# policy-rc.d says no. Put one in place for this install only, if none exists.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ADDED_POLICY=1
fi
cleanup() {
    if [ "$ADDED_POLICY" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends prometheus </dev/null

# In case a maintainer script started it anyway (a host with a running systemd).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null && command -v promtool >/dev/null || {
    echo "prometheus: package installed but prometheus/promtool not on PATH" >&2
    exit 1
}
echo "prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
