"""Kafka-backed state: the result cache and the spend ledger live in topics.

Both survive restarts and are shared by every worker of a consumer group,
because their source of truth is a Kafka topic, not process memory.
"""

from streams.state.admin import TopicSpec, ensure_topics
from streams.state.spend import SpendLedger
from streams.state.table import KafkaTable

__all__ = ["KafkaTable", "SpendLedger", "TopicSpec", "ensure_topics"]
