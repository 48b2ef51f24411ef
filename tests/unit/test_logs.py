"""Project logging: client libraries' retried errors do not print as ERROR lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError

from streams.logs import configure_logging

COORDINATOR = "aiokafka.consumer.group_coordinator"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("aiokafka", "httpx", COORDINATOR)
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    root.handlers[:], root.level = handlers, level
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_retried_coordinator_error_is_not_an_error_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """aiokafka's retried GroupCoordinatorNotAvailable: hidden at INFO, shown as info at DEBUG."""
    configure_logging("INFO")
    log = logging.getLogger(COORDINATOR)
    log.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    assert _lines(capsys.readouterr().err) == []

    logging.getLogger("aiokafka").setLevel(logging.INFO)
    log.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    (line,) = _lines(capsys.readouterr().err)
    assert line["level"] == "info"
    assert "GroupCoordinatorNotAvailableError" in str(line["msg"])


def test_a_fatal_client_error_stays_an_error_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-retriable error from the same logger is still printed at ERROR."""
    configure_logging("INFO")
    logging.getLogger(COORDINATOR).error("join failed: %s", GroupAuthorizationFailedError())
    (line,) = _lines(capsys.readouterr().err)
    assert line["level"] == "error"
