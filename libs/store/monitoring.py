"""What PyMongo's monitor sees, told to ops: each failed heartbeat is logged and counted, and each time the database
is marked unavailable — by a failed check or by an operation's network error — the error that did it is logged.

A failed heartbeat is the moment PyMongo marks the database unknown and clears its connection pool — closing the
connections in use when the check timed out — so every operation then in flight fails with `AutoReconnect`. A check
*cancelled* (`_OperationCancelled`) means an operation of the process met a network error first (a connection
closed, or one not made within the connect timeout), which marked the database unknown and cleared the pool itself
(connections in use finish their operation and are dropped). Without this the only trace was those operations' own
errors, which do not say why (docs/operations.md, Growth: the 503s of a saturated core). Only heartbeat events are
listened to: they come every 10 s, while a connection-pool listener would run on every operation; and server
description changes, which come only when the database's state changes.
"""

from __future__ import annotations

from prometheus_client import Counter
from pymongo import monitoring

from libs.service.logging import get_logger

log = get_logger("harbour.store")

DATABASE_HEARTBEAT_FAILURES = Counter(
    "harbour_mongo_heartbeat_failures_total",
    "PyMongo monitor checks of the database that failed; each clears the connection pool (error: the exception's type).",
    ["service", "error"],
)


class DatabaseMonitorLog(monitoring.ServerHeartbeatListener, monitoring.ServerListener):
    """One service client's view of its database, told to ops: every failed heartbeat logged (WARNING) and counted;
    the database marked unavailable (WARNING, with the error that did it: a failed check, or an operation's network
    error such as a connection not made within the connect timeout) and available again (INFO)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        error = type(event.reply).__name__
        DATABASE_HEARTBEAT_FAILURES.labels(self.service, error).inc()
        host, port = event.connection_id
        # PyMongo cancels its check (`_OperationCancelled`) when an operation of this process met a network error
        # first (SDAM: the server is marked unknown, the pool cleared): the check did not fail, the operation did.
        why = ("an operation met a network error first" if error == "_OperationCancelled"
               else "the check itself failed")
        # The exception's text names the server and the timeouts, never a document.
        log.warning("database heartbeat failed; its connections are reset", server=f"{host}:{port}", error=error,
                    why=why, detail=str(event.reply)[:300], after_s=round(event.duration, 3), streamed=event.awaited)

    def opened(self, event: monitoring.ServerOpeningEvent) -> None:
        pass

    def closed(self, event: monitoring.ServerClosedEvent) -> None:
        pass

    def description_changed(self, event: monitoring.ServerDescriptionChangedEvent) -> None:
        before, after = event.previous_description, event.new_description
        host, port = event.server_address
        if before.is_server_type_known and not after.is_server_type_known:
            error = after.error
            log.warning("database marked unavailable; its connections are reset", server=f"{host}:{port}",
                        error=type(error).__name__ if error else None, detail=str(error)[:300] if error else None)
        elif after.is_server_type_known and not before.is_server_type_known and before.error is not None:
            log.info("database available again", server=f"{host}:{port}")
