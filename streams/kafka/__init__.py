"""Kafka client concerns shared by the engines: the producer error table and output limits."""

from streams.kafka.produce import (
    PRODUCE_ERRORS,
    ProduceFault,
    classify_produce_error,
    output_size_limit,
)

__all__ = ["PRODUCE_ERRORS", "ProduceFault", "classify_produce_error", "output_size_limit"]
