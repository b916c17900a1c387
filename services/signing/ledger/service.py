"""The ledger inside the signing service: its consumer of `audit.events`, its appender loop, its public endpoint.

`install_ledger(app, settings, keys=...)` after the export keys' cleanup context (the checkpoints are signed with
signing's export key, published at /v1/signing/jwks) and after the backbone (outbox relay).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from libs.background import stop_task
from libs.clock import Clock
from libs.events.consumer import install_consumer
from libs.events.topics import AUDIT, AUDIT_CHECKPOINTS
from libs.errors import NotFound
from libs.service import add_readiness_check
from libs.service.endpoints import Endpoints
from libs.service.settings import from_env, setting
from libs.store import DATABASE, MONGO_CLIENT, apply_indexes

from .consumer import AuditConsumer
from .metrics import LEDGER_SIZE, checkpoint_signed
from .tracker import INDEXES as TRACKER_INDEXES
from .store import INDEXES, Ledger, consumer_handler, latest_checkpoint

CONSUMER_GROUP = "signing-audit-ledger"
LEDGER = web.AppKey("audit_ledger", Ledger)


@dataclass(frozen=True)
class LedgerSettings:
    # A signed checkpoint this often when the log grew since the last one (docs/operations.md).
    checkpoint_every_s: float = setting("SIGNING_LEDGER_CHECKPOINT_EVERY_S", 10.0)
    # Records appended per transaction at most, and audit events received per transaction at most.
    batch: int = setting("SIGNING_LEDGER_BATCH", 500)
    # After a partial batch the ledger's consumer waits this long before fetching again (consumer.py).
    linger_s: float = setting("SIGNING_LEDGER_LINGER_S", 0.5)

    @classmethod
    def from_env(cls) -> "LedgerSettings":
        return from_env(cls)


def install_ledger(app: web.Application, *, issuer: str, keys: web.AppKey, clock: Clock,
                   settings: LedgerSettings | None = None) -> None:
    settings = settings or LedgerSettings.from_env()

    # The ledger's consumer takes the audit events a batch per transaction (services/signing/ledger/consumer.py).
    install_consumer(app, group=CONSUMER_GROUP, topics=[AUDIT.name], handler=consumer_handler,
                     consumer_class=AuditConsumer, max_records=settings.batch, linger_s=settings.linger_s)

    async def ledger_lifecycle(app: web.Application):
        await apply_indexes(app[DATABASE], (*INDEXES, *TRACKER_INDEXES))
        ledger = Ledger(app[MONGO_CLIENT], app[DATABASE], keys=app[keys], issuer=issuer,
                        checkpoint_topic=AUDIT_CHECKPOINTS.name, batch=settings.batch,
                        checkpoint_every_s=settings.checkpoint_every_s, clock=clock)
        latest = await latest_checkpoint(app[DATABASE])
        if latest is not None:
            checkpoint_signed(latest["time"].timestamp())
        LEDGER_SIZE.set((await ledger.head()).seq)
        app[LEDGER] = ledger
        add_readiness_check(app, "audit-ledger", ledger.ready)
        task = asyncio.create_task(ledger.run(), name="audit-ledger")
        yield
        await stop_task(task)
        await ledger.release_lease()

    app.cleanup_ctx.append(ledger_lifecycle)
    app.add_routes(endpoints.routes)


# -- GET /v1/audit/checkpoints/latest: public (sizes and hashes, no personal data) ----------------------

endpoints = Endpoints(tags=("audit",))


class NoCheckpoint(NotFound):
    slug, title = "no-checkpoint", "No checkpoint yet"


class Checkpoint(BaseModel):
    size: int
    head: str
    time: datetime
    kid: str
    jws: str
    jwks_uri: str


@endpoints.get("/v1/audit/checkpoints/latest",
               summary="The audit ledger's latest signed checkpoint: its size, head chain hash and time, as a JWS",
               description="The JWS (ES256, typ harbour-audit-checkpoint+jwt) is signed with a key of /v1/signing/jwks; "
                           "its payload holds iss, log, size, head (hex SHA-256), time and iat (docs/architecture.md).",
               answers={200: Checkpoint, 404: "no checkpoint yet (the log is empty)"}, refusals=(NoCheckpoint,),
               headers={"Cache-Control": "max-age=5"})
async def latest(request: web.Request) -> Checkpoint:
    ledger = request.app[LEDGER]
    doc = await latest_checkpoint(ledger.db)
    if doc is None:
        raise NoCheckpoint("the audit ledger has no checkpoint yet")
    return Checkpoint(size=doc["size"], head=doc["head"], time=doc["time"], kid=doc["kid"], jws=doc["jws"],
                      jwks_uri=ledger.issuer + "/v1/signing/jwks")


OPERATIONS = tuple(endpoints.operations)
