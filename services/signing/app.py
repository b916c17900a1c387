"""create_app(settings) -> the signing service's aiohttp application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.background import stop_task
from libs.backbone import install_backbone
from libs.clock import Clock, SystemClock
from libs.crypto import FieldCipher
from libs.events import OUTBOX_RELAY, install_consumer
from libs.held_requests import HeldRequests
from libs.result_callbacks import ResultCallbacks
from libs.revocation import install_revocations
from libs.service import add_readiness_check, create_service_app
from libs.service.openapi import install_openapi_route
from libs.service.overload import install_long_polls
from libs.service.tracing import client_session
from libs.store import DATABASE, MONGO_CLIENT
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from .api import ENDPOINTS, EXPORT_KEYS, HELD_ROUTES, OPERATIONS, SIGNING
from .collections import EXPORT_KEYS as EXPORT_KEYS_COLLECTION
from .authority import load_or_create
from .collections import INDEXES, REQUESTS
from .context import Signing
from .events import CONSUMED, CONSUMER_GROUP, TOPICS, handler
from .hsm import HSM
from .ledger.service import OPERATIONS as LEDGER_OPERATIONS, install_ledger
from .sandbox import Sandbox
from .settings import SigningSettings
from .tsa import TimeStampAuthority

# What the sandbox's forkserver preloads for its parsing workers: the parsers (pyHanko), not the signing side
# (signatures.py: HSM, authority, database), which no worker uses (docs/operations.md, idle RSS).
PARSERS = ["services.signing.verify", "services.signing.uploads"]


def create_app(settings: SigningSettings | None = None, *, clock: Clock | None = None) -> web.Application:
    """`clock`: what the service takes for now (tests pass a FrozenClock to move past lifetimes)."""
    settings = settings or SigningSettings.from_env()
    clock = clock or SystemClock()
    app = create_service_app(settings.service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    install_revocations(app)  # tokens, devices and accounts auth revoked are refused here too

    async def signing_context(app: web.Application):
        hsm = await asyncio.to_thread(HSM, settings.pkcs11_module, settings.pkcs11_pin,
                                      token_label=settings.token_label, slot=settings.token_slot)
        authority = await load_or_create(app[DATABASE], hsm, settings, now=clock.now())
        session = client_session()
        # The parsers are imported once by the forkserver; PKCS#11 stays in this process.
        sandbox = Sandbox(settings.parsing, preload=PARSERS)
        await sandbox.start()
        answers = HeldRequests("signing", app[DATABASE][REQUESTS], read_timeout_s=settings.service.mongo_request_timeout_s)
        app[SIGNING] = Signing(
            settings=settings, mongo=app[MONGO_CLIENT], db=app[DATABASE], cipher=FieldCipher(settings.keyring),
            jwks=JWKSCache(settings.jwks_url, session, verified_cache_size=settings.token_cache_size), relay=app[OUTBOX_RELAY], hsm=hsm, authority=authority,
            tsa=TimeStampAuthority(hsm, authority.labels["tsa"], authority.certs["tsa"], authority.chain, clock=clock),
            sandbox=sandbox, clock=clock, answers=answers,
        )

        async def hsm_ready() -> None:
            # The token answers and still holds the keys the stored authorities name.
            for label in authority.labels.values():
                if not await hsm.has_key(label):
                    raise RuntimeError("an authority key is missing from the token")

        async def sandbox_ready() -> None:
            # Not "a worker is idle": under load every worker may be busy for a moment, which is no outage.
            if not sandbox.forking:
                raise RuntimeError("PDF parsing workers cannot be started")

        add_readiness_check(app, "hsm", hsm_ready)
        add_readiness_check(app, "parsing-workers", sandbox_ready)
        yield
        await sandbox.close()
        await session.close()
        hsm.close()

    app.cleanup_ctx.append(signing_context)

    async def export_keys(app: web.Application):
        # The citizen's export part is signed with these (never rotated automatically; JWKS at /v1/signing/jwks).
        keys = KeyStore(app[MONGO_CLIENT], app[DATABASE], settings.keyring, max_token_lifetime_s=0,
                        collection=EXPORT_KEYS_COLLECTION)
        await keys.ensure()
        app[EXPORT_KEYS] = keys
        # Requests' outcomes to clients' callback URLs (libs/result_callbacks.py), signed with these keys too.
        results = ResultCallbacks("signing", app[DATABASE], TokenSigner(keys, f"{settings.issuer}/v1/signing"), clock,
                                  attempts=settings.result_callback_attempts, backoff_s=settings.result_callback_backoff_s)
        sender = asyncio.create_task(results.run_sender(), name="signing-result-callbacks")
        yield
        await stop_task(sender)

    app.cleanup_ctx.append(export_keys)
    install_consumer(app, group=CONSUMER_GROUP, topics=list(CONSUMED), handler=lambda db: handler(app[SIGNING]))
    # The audit ledger (issue 19): audit.events appended to a hash chain, checkpoints signed with the export key.
    install_ledger(app, issuer=settings.issuer, keys=EXPORT_KEYS, clock=clock)
    for endpoints in ENDPOINTS:
        app.add_routes(endpoints.routes)
    # With ?wait=: held for the citizen's answer (libs/held_requests.py), after the context that holds them.
    install_long_polls(app, HELD_ROUTES, lambda app: app[SIGNING].answers)
    install_openapi_route(app, OPERATIONS + LEDGER_OPERATIONS, title="Harbour ID signing")
    return app
