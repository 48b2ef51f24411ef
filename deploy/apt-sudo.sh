# Sourced by deploy/*/install.sh: sets SUDO to "" as root, else to "sudo -n", and exits
# with one line saying what to do when neither works. Needs NAME (the tool) set first.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "$NAME: run $0 as root (or install sudo); needs apt-get install" >&2
        exit 1
    }
    SUDO="sudo -n"
fi
