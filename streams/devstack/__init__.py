"""Local infrastructure for development and tests: real Kafka and Schema Registry, no Docker.

``kafka`` runs the broker, ``secure`` the same broker with a SASL_SSL listener and ACLs,
``registry`` the Schema Registry; ``_process`` and ``_maven`` hold what both need (errors,
ports, PIDs, Maven). ``dev_kafka`` keeps the long-lived one; ``commands`` is ``streams dev``.
"""

from streams.devstack._process import DevstackError, ToolMissing
from streams.devstack.dev_kafka import dev_down, dev_status, dev_up
from streams.devstack.kafka import (
    CONSUMER_GROUPS_MAIN,
    KAFKA_VERSION,
    LocalKafka,
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
from streams.devstack.secure import SecureKafka

__all__ = [
    "APICURIO_VERSION",
    "CONSUMER_GROUPS_MAIN",
    "KAFKA_VERSION",
    "DevstackError",
    "LocalKafka",
    "LocalRegistry",
    "SecureKafka",
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
