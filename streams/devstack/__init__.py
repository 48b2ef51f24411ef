"""Local infrastructure for development and tests: real Kafka and Schema Registry, no Docker.

``kafka`` runs the broker, ``registry`` the Schema Registry; ``_process`` and ``_maven``
hold what both need (errors, ports, PIDs, Maven). ``commands`` is ``streams dev``.
"""

from streams.devstack._process import DevstackError, ToolMissing
from streams.devstack.kafka import (
    CONSUMER_GROUPS_MAIN,
    KAFKA_VERSION,
    LocalKafka,
    dev_down,
    dev_status,
    dev_up,
    ensure_kafka_jars,
    run_kafka_tool,
)
from streams.devstack.registry import (
    APICURIO_VERSION,
    LocalRegistry,
    dev_registry_down,
    dev_registry_status,
    dev_registry_up,
    ensure_registry_jar,
)

__all__ = [
    "APICURIO_VERSION",
    "CONSUMER_GROUPS_MAIN",
    "KAFKA_VERSION",
    "DevstackError",
    "LocalKafka",
    "LocalRegistry",
    "ToolMissing",
    "dev_down",
    "dev_registry_down",
    "dev_registry_status",
    "dev_registry_up",
    "dev_status",
    "dev_up",
    "ensure_kafka_jars",
    "ensure_registry_jar",
    "run_kafka_tool",
]
