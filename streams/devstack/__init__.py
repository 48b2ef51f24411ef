"""Local infrastructure for development and tests: a real Kafka broker without Docker."""

from streams.devstack.kafka import (
    CONSUMER_GROUPS_MAIN,
    KAFKA_VERSION,
    DevstackError,
    LocalKafka,
    ToolMissing,
    dev_down,
    dev_status,
    dev_up,
    ensure_kafka_jars,
    run_kafka_tool,
)

__all__ = [
    "CONSUMER_GROUPS_MAIN",
    "KAFKA_VERSION",
    "DevstackError",
    "LocalKafka",
    "ToolMissing",
    "dev_down",
    "dev_status",
    "dev_up",
    "ensure_kafka_jars",
    "run_kafka_tool",
]
