"""The producer error table, and the size limit every output must fit under.

An outcome that cannot be produced is classified once, here, by the error's
type (looked up along its MRO, most specific first):

    fault          what the worker does                       errors
    -------------  -----------------------------------------  --------------------------------
    RETRIABLE      keep the record uncommitted, back off,     timeouts, leader changes, broker
                   produce again                              unavailable, not enough replicas
    RECORD         never retried: the record takes its        message/record too large, corrupt
                   fallback route (a small DLQ envelope)      or invalid record, invalid topic
    DEPLOYMENT     the deployment's fault (a missing ACL):    topic/cluster/transactional-id
                   hold with a loud log, retry with backoff   authorization, SASL failures
    FENCED         another instance took over: stop           ProducerFenced, invalid epoch

An error that is not in the table is RETRIABLE if Kafka marks it retriable and
RECORD otherwise, so an unknown fatal error can never loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from aiokafka import errors as ke

__all__ = ["PRODUCE_ERRORS", "ProduceFault", "classify_produce_error", "output_size_limit"]


class ProduceFault(enum.StrEnum):
    RETRIABLE = "retriable"
    RECORD = "record"
    DEPLOYMENT = "deployment"
    FENCED = "fenced"


#: The one producer error table (see the module docstring).
PRODUCE_ERRORS: Mapping[type[BaseException], ProduceFault] = {
    ke.KafkaTimeoutError: ProduceFault.RETRIABLE,
    ke.RequestTimedOutError: ProduceFault.RETRIABLE,
    ke.KafkaConnectionError: ProduceFault.RETRIABLE,
    ke.NodeNotReadyError: ProduceFault.RETRIABLE,
    ke.NotLeaderForPartitionError: ProduceFault.RETRIABLE,
    ke.LeaderNotAvailableError: ProduceFault.RETRIABLE,
    ke.BrokerNotAvailableError: ProduceFault.RETRIABLE,
    ke.NotEnoughReplicasError: ProduceFault.RETRIABLE,
    ke.NotEnoughReplicasAfterAppendError: ProduceFault.RETRIABLE,
    ke.UnknownTopicOrPartitionError: ProduceFault.RETRIABLE,
    ke.KafkaStorageError: ProduceFault.RETRIABLE,
    ke.OutOfOrderSequenceNumber: ProduceFault.RETRIABLE,
    ke.ConcurrentTransactions: ProduceFault.RETRIABLE,
    ke.CoordinatorNotAvailableError: ProduceFault.RETRIABLE,
    ke.NotCoordinatorError: ProduceFault.RETRIABLE,
    ke.CoordinatorLoadInProgressError: ProduceFault.RETRIABLE,
    ke.MessageSizeTooLargeError: ProduceFault.RECORD,
    ke.RecordTooLargeError: ProduceFault.RECORD,
    ke.RecordListTooLargeError: ProduceFault.RECORD,
    ke.CorruptRecordException: ProduceFault.RECORD,
    ke.InvalidMessageError: ProduceFault.RECORD,
    ke.InvalidTimestampError: ProduceFault.RECORD,
    ke.InvalidTopicError: ProduceFault.RECORD,
    ke.UnsupportedForMessageFormatError: ProduceFault.RECORD,
    ke.PolicyViolationError: ProduceFault.RECORD,
    ke.TopicAuthorizationFailedError: ProduceFault.DEPLOYMENT,
    ke.ClusterAuthorizationFailedError: ProduceFault.DEPLOYMENT,
    ke.TransactionalIdAuthorizationFailed: ProduceFault.DEPLOYMENT,
    ke.GroupAuthorizationFailedError: ProduceFault.DEPLOYMENT,
    ke.SaslAuthenticationFailed: ProduceFault.DEPLOYMENT,
    ke.AuthenticationFailedError: ProduceFault.DEPLOYMENT,
    ke.ProducerFenced: ProduceFault.FENCED,
    ke.InvalidProducerEpoch: ProduceFault.FENCED,
    ke.TransactionCoordinatorFenced: ProduceFault.FENCED,
}


def classify_produce_error(exc: BaseException) -> ProduceFault:
    """The fault ``exc`` stands for, per :data:`PRODUCE_ERRORS`."""
    for cls in type(exc).__mro__:
        fault = PRODUCE_ERRORS.get(cls)
        if fault is not None:
            return fault
    if isinstance(exc, ke.KafkaError) and getattr(exc, "retriable", False):
        return ProduceFault.RETRIABLE
    return ProduceFault.RECORD


#: Bytes a produce request spends besides the record's key, value and headers: the
#: record batch header (61 bytes) plus per-record varints, with room to spare.
BATCH_OVERHEAD = 512


def output_size_limit(max_request_size: int, topic_max_message_bytes: int | None) -> int:
    """The largest key+value+headers an outcome may have and still be accepted."""
    ceiling = max_request_size
    if topic_max_message_bytes is not None:
        ceiling = min(ceiling, topic_max_message_bytes)
    return max(0, ceiling - BATCH_OVERHEAD)
