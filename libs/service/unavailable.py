"""Which exceptions mean "a dependency is unavailable": answered 503 with Retry-After, never 500.

The problem middleware asks `unavailable_dependency(exc)` about anything a
handler lets escape. A database that is down, stalled or over its deadline,
or a broker that cannot be reached, is an outage the caller can retry
through, not a bug; everything else stays a 500.

- MongoDB (PyMongo): `ConnectionFailure` and its kinds (`AutoReconnect`,
  `NetworkTimeout`, `ServerSelectionTimeoutError`, `NotPrimaryError`,
  `WaitQueueTimeoutError`); any PyMongo error that is a timeout
  (`ExecutionTimeout`, `WTimeoutError`, the request deadline of
  libs/store/client.py); errors the server labels `TransientTransactionError`
  or `RetryableWriteError`; and the server codes of a node shutting down,
  stepping down or out of time (pymongo's own "not primary" and retryable
  sets).
- Kafka (aiokafka): `KafkaConnectionError`, `KafkaTimeoutError`,
  `NoBrokersAvailable`, `KafkaUnavailableError`, `NodeNotReadyError`,
  `BrokerNotAvailableError`, `ProducerClosed`, and any error aiokafka marks
  `retriable` (no leader, request timed out...). No request path publishes
  synchronously today (events leave through the outbox), but one that does
  gets the same answer.

An exception raised `from` one of these (its explicit `__cause__`) counts too.
"""

from __future__ import annotations

import sys

from aiokafka import errors as kafka_errors

from libs.errors import NotReady

DATABASE = "database"
BROKER = "broker"
# A stalled or restarting database or broker is usually back within seconds; callers wait this long before retrying.
RETRY_AFTER_S = 2

_MONGO_LABELS = ("TransientTransactionError", "RetryableWriteError")
# Server codes of a node that cannot serve now (the retryable writes and SDAM specifications' sets, as pymongo has them).
_MONGO_UNAVAILABLE_CODES = frozenset({
    6, 7, 89, 9001,  # HostUnreachable, HostNotFound, NetworkTimeout, SocketException
    91, 11600,  # ShutdownInProgress, InterruptedAtShutdown
    189, 10058, 10107, 11602, 13435, 13436,  # stepped down, not (writable) primary, interrupted by a state change
    134, 262,  # ReadConcernMajorityNotAvailableYet, ExceededTimeLimit
})
_KAFKA_UNAVAILABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.ProducerClosed,
)


def _database_unavailable(exc: BaseException) -> bool:
    # pymongo is not imported for this (8 MB): a process that never loaded it (the gateway) has no pymongo errors.
    mongo_errors = sys.modules.get("pymongo.errors")
    if mongo_errors is None or not isinstance(exc, mongo_errors.PyMongoError):
        return False
    if isinstance(exc, mongo_errors.ConnectionFailure) or exc.timeout:
        return True
    if any(exc.has_error_label(label) for label in _MONGO_LABELS):
        return True
    return isinstance(exc, mongo_errors.OperationFailure) and exc.code in _MONGO_UNAVAILABLE_CODES


def _broker_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _KAFKA_UNAVAILABLE):
        return True
    return isinstance(exc, kafka_errors.KafkaError) and bool(getattr(exc, "retriable", False))


def unavailable_dependency(exc: BaseException) -> str | None:
    """`"database"` or `"broker"` when `exc` (or what it was raised from) means that one is unavailable, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _database_unavailable(current):
            return DATABASE
        if _broker_unavailable(current):
            return BROKER
        current = current.__cause__
    return None


class DependencyUnavailable(NotReady):
    """The service cannot reach what it stands on (its database or the broker) right now; retry after `Retry-After`.

    The body does not say which (the service's log and `harbour_http_shed_total` do).
    """

    slug, title = "temporarily-unavailable", "Temporarily unavailable"
    retry_after = RETRY_AFTER_S
