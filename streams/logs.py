"""Structured JSON logs. Record ids travel in ``extra={"record": ...}``; texts never do."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "RetriedErrorsAreInfo", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class RetriedErrorsAreInfo(logging.Filter):
    """Client libraries' ERROR lines about errors they retry themselves become INFO.

    aiokafka logs e.g. ``Group Coordinator Request failed: [Error 15]
    GroupCoordinatorNotAvailableError`` at ERROR on a fresh broker, then retries and
    succeeds. An error that is retried is not an operator's problem until it persists,
    and persisting shows in the project's own metrics and logs. The line is kept at
    INFO (so ``--log-level INFO`` with the library's logger at INFO still shows it) and
    dropped when that level is not enabled for its logger.
    """

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.name.startswith(self.prefixes):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if not any(getattr(arg, "retriable", False) is True for arg in args):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RetriedErrorsAreInfo("aiokafka"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about group membership; keep it to warnings.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request URL at INFO (the schema-registry client uses it).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
