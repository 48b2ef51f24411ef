"""Running Maven for the dev services: the jars come from Maven Central once per cache dir.

Maven's transcript goes to a log file; only its first ``[ERROR]`` line reaches the
:class:`~streams.devstack._process.DevstackError` message.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from streams.devstack._process import DevstackError

_MVN_TIMEOUT = 900.0


def _error_text(line: str) -> str | None:
    """The message of a Maven ``[ERROR]`` line; None for any other line."""
    if line.startswith("[ERROR]") and line[7:].strip():
        return line[7:].strip()
    return None


def _is_download(line: str) -> bool:
    """Whether ``line`` reports a finished download.

    Maven 3.8 in batch mode (``-B``) logs ``[INFO] Downloaded from central: ...``;
    without the logger's level prefix the line starts with ``Downloaded from``.
    """
    return line.removeprefix("[INFO] ").startswith("Downloaded from")


def _first_maven_error(log_path: Path) -> str | None:
    with log_path.open(errors="replace") as log:
        for line in log:
            if (error := _error_text(line)) is not None:
                return error
    return None


def _run_maven(
    mvn: str,
    pom: Path,
    output_dir: Path,
    log_path: Path,
    progress: Callable[[str], None],
    *,
    what: str,
) -> None:
    """Copy the runtime dependencies of ``pom`` into ``output_dir``.

    Reports every 50th download through ``progress``. On failure ``output_dir`` is
    removed and :class:`DevstackError` says Maven could not resolve ``what``.
    """
    command = [
        mvn,
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output_dir}",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    errors: collections.deque[str] = collections.deque(maxlen=5)
    downloads = 0
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        # Iterating stdout blocks, so a hung download is cut off by a timer instead.
        watchdog = threading.Timer(_MVN_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if _is_download(line):
                    downloads += 1
                    if downloads % 50 == 0:
                        progress(f"  ...{downloads} files downloaded")
                elif (error := _error_text(line)) is not None:
                    errors.append(error)
            returncode = proc.wait()
        finally:
            watchdog.cancel()
    if returncode != 0:
        shutil.rmtree(output_dir, ignore_errors=True)
        reason = errors[0] if errors else f"exit status {returncode}"
        raise DevstackError(
            f"Maven could not resolve {what}: {reason} (full log: {log_path})",
            log=str(log_path),
        )
