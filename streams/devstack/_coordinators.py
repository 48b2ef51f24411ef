"""The dev broker's last start-up step: its group and transaction coordinators answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from streams.devstack._process import DevstackError
from streams.kafka import clients

__all__ = ["PROBE_ID", "wait_for_coordinators"]

PROBE_ID = "streams-devstack-coordinator-probe"
"""Group and transactional id of the check; neither ever holds data."""


def wait_for_coordinators(
    admin: Any, bootstrap: str, deadline: float, log_tails: Callable[[], str]
) -> None:
    """Wait until the group and the transaction coordinators answer.

    A fresh broker creates ``__consumer_offsets`` and ``__transaction_state`` on first
    use and answers "coordinator load in progress" meanwhile. Clients retry that, but
    log it loudly (librdkafka's GETPID warning, aiokafka's GroupCoordinatorNotAvailable
    ERROR), so the first screen of a demo would show errors nobody caused.
    """
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            admin.describe_consumer_groups([PROBE_ID])[PROBE_ID].result(timeout=5)
            # librdkafka's own logging is silenced: failures surface as exceptions.
            producer = clients.producer(bootstrap, {"transactional.id": PROBE_ID, "log_level": 0})
            producer.init_transactions(10)
            return
        except KafkaException as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise DevstackError(
        f"Kafka on {bootstrap} has no group or transaction coordinator in time "
        f"({last_error}):\n{log_tails()}"
    )
