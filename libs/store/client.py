"""The MongoDB client of a service: one `AsyncMongoClient` per process, owned by the app.

PyMongo's async API, the supported successor of Motor (Motor's end of life was 2026-05-14).

How long an operation may wait, decided once here (docs/architecture.md, *A stalled database*):

- **Requests** run under a deadline: every database operation of a request
  must be done `MONGO_REQUEST_TIMEOUT_S` (5 s) after the request arrived
  (PyMongo's client-side operation timeout, `pymongo.timeout`, entered by
  `request_deadline_middleware`). It bounds everything an operation can wait
  on — server selection, a pool connection, the socket, and the retries of
  `with_transaction`, which would otherwise retry a transaction that meets a
  dead database for 120 s. When it passes, PyMongo raises a timeout error and
  the problem middleware answers 503 with Retry-After: a stalled database
  (SIGSTOP) costs a caller at most the deadline, well inside the gateway's
  30 s, never a gateway 504. Long-lived streams (`mark_long_lived`) and the
  probes run without it.
- **Everything else** (consumers, the outbox relay, the dispatcher, start-up)
  is not under the request deadline — a chunk of 500 notifications is one
  transaction that may legitimately take seconds — but no wait is endless: a
  server is selected within 5 s and a connection made within 10 s, and when
  the server stops answering, PyMongo's monitor marks it unknown after a
  missed heartbeat and interrupts the operations waiting on it (measured on a
  SIGSTOPped local server: 15-18 s). Each raises a `ConnectionFailure`,
  which consumers retry as an outage, never dead-letter.
- **The monitor waits `CONNECT_TIMEOUT_MS` (10 s) past a heartbeat, not 2 s.**
  The local server streams its heartbeat (`hello` with a topology version,
  answered every 10 s), and PyMongo reads each answer with the connect timeout
  as its margin: 12 s in all with 2 s. A check that times out marks the server
  unknown and *closes every connection in use* (`interrupt_connections`). The
  monitor is a task on the service's own event loop: with a core saturated
  (the growth bench, a busy CI host) an answer was read over 2 s late, and
  every operation in flight failed at once with `AutoReconnect: connection is
  already closed` — logins answered 503 though the database was fine. The
  price: a dead database is noticed after 15-18 s instead of 7-10 s;
  requests keep their own 5 s deadline, so callers do not wait longer.
- **No `socketTimeoutMS` or `waitQueueTimeoutMS`.** With either set, PyMongo's
  asyncio I/O waits through `asyncio.wait_for`, which on Python 3.11 can lose a
  task's cancellation when the wait ends at the same moment (CPython
  gh-86296, fixed in 3.12): the outbox relay then ignored its cancellation
  and a service never finished stopping (seen in tests/service/auth). The
  request deadline gives requests their bound instead.
"""

from __future__ import annotations

import linecache
from collections.abc import Sequence

import pymongo
from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from libs.service.app import SETTINGS
from libs.service.health import add_readiness_check
from libs.service.overload import is_long_lived

from .indexes import IndexSpec, apply_indexes
from .monitoring import DatabaseMonitorLog

MONGO_CLIENT = web.AppKey("mongo_client", AsyncMongoClient)
DATABASE = web.AppKey("database", AsyncDatabase)


SERVER_SELECTION_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_MS = 10000


def create_client(uri: str, *, server_selection_timeout_ms: int = SERVER_SELECTION_TIMEOUT_MS,
                  **options) -> AsyncMongoClient:
    """The platform's client of `uri`; `options` are PyMongo's own (tests pass event listeners)."""
    cached = set(linecache.cache)
    # tz_aware: every datetime we read back is UTC-aware, never naive.
    client = AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connectTimeoutMS=CONNECT_TIMEOUT_MS,
        appname="harbour-id",
        **options,
    )
    # PyMongo keeps the stack that made the client (`traceback.format_stack()`, for its unclosed-client warning),
    # which reads every source file on that stack whole into linecache and keeps them there: ~0.5 MB a process held
    # for nothing (docs/operations.md, idle RSS). The text of the stack is kept; the files read for it are dropped.
    for filename in set(linecache.cache) - cached:
        linecache.cache.pop(filename, None)
    return client


def request_deadline_middleware(timeout_s: float):
    """Every database operation of a request done within `timeout_s` of its arrival (PyMongo's operation timeout)."""

    @web.middleware
    async def request_deadline(request: web.Request, handler):
        if is_long_lived(request) or not timeout_s:
            return await handler(request)
        with pymongo.timeout(timeout_s):
            return await handler(request)

    return request_deadline


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


def install_mongo(app: web.Application, indexes: Sequence[IndexSpec] = ()) -> None:
    """Give the app its database for its lifetime: connect, declare indexes, close on shutdown; and its requests
    their database deadline."""
    app.middlewares.append(request_deadline_middleware(app[SETTINGS].mongo_request_timeout_s))

    async def mongo_lifecycle(app: web.Application):
        settings = app[SETTINGS]
        client = create_client(settings.mongo_uri, event_listeners=[DatabaseMonitorLog(settings.service)])
        app[MONGO_CLIENT] = client
        app[DATABASE] = client[settings.database]
        await apply_indexes(app[DATABASE], indexes)
        add_readiness_check(app, "mongodb", lambda: ping(client))
        yield
        await client.close()

    app.cleanup_ctx.append(mongo_lifecycle)
