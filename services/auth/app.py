"""create_app(settings) -> the auth service's aiohttp application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.result_callbacks import ResultCallbacks
from libs.backbone import install_backbone
from libs.clock import Clock, SystemClock
from libs.events import OUTBOX_RELAY, install_consumer
from libs.events.topics import APPROVAL_REQUESTED
from libs.held_requests import HeldRequests
from libs.service import create_service_app
from libs.service.overload import install_long_polls
from libs.service.openapi import install_openapi_route
from libs.store import DATABASE, MONGO_CLIENT
from libs.tokens.keystore import KeyStore, TokenSigner

from . import housekeeping
from .approvals import queue
from .approvals.stream import PromptFeed
from .callers import AUTH
from .clients.directory import install_client_directory
from .clients.registry import client_from_doc
from .collections import DEVICE_PAIRINGS, INDEXES
from .context import Auth
from .endpoints import routes
from .endpoints.approval_stream import install_approval_stream
from .endpoints.devices import HELD_ROUTES
from .endpoints.web_app import install_web_app
from .events import CONSUMER_GROUP, TOPICS, approval_requests_handler
from .devices import pairing
from .identity import closure
from .identity.proofing import FaceMatcher, LocalFaceMatcher
from .oidc import backchannel, login
from .oidc.endpoints import install_oidc
from .openapi import OPERATIONS, TITLE
from .settings import AuthSettings


def create_app(
    settings: AuthSettings | None = None, *, matcher: FaceMatcher | None = None, clock: Clock | None = None
) -> web.Application:
    """`matcher` and `clock` are seams for tests (a FrozenClock moves time instead of sleeping)."""
    settings = settings or AuthSettings.from_env()
    app = create_service_app(settings.service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)

    async def auth_context(app: web.Application):
        keys = KeyStore(app[MONGO_CLIENT], app[DATABASE], settings.keyring, max_token_lifetime_s=settings.max_jwt_lifetime_s)
        await keys.ensure()
        the_clock = clock or SystemClock()
        app[AUTH] = Auth(
            settings=settings,
            mongo=app[MONGO_CLIENT],
            db=app[DATABASE],
            keys=keys,
            signer=TokenSigner(keys, settings.issuer),
            matcher=matcher or LocalFaceMatcher(),
            relay=app[OUTBOX_RELAY],
            clock=the_clock,
            # New prompts to the phones' open streams (approvals/stream.py), those queued here as soon as committed.
            prompt_feed=PromptFeed(app[DATABASE], the_clock),
            # A new phone's question after its pairing, held until the pairing moves (?wait=; devices/pairing.py).
            # A phone asks one at a time: a few places each (one left held by a dropped connection, and its retry).
            pairings_held=HeldRequests("auth", app[DATABASE][DEVICE_PAIRINGS], max_held_per_client=4,
                                       read_timeout_s=settings.service.mongo_request_timeout_s),
            # A decided login prompt finishes its login or CIBA request (oidc/login.py), in the decision's transaction.
            # A decided closure prompt closes the account (identity/closure.py), in the same transaction.
            finishers={"login": login.on_decision, closure.ACTION: closure.on_decision,
                       # An approved add_device prompt binds the new phone (devices/pairing.py), in the same transaction.
                       pairing.ACTION: pairing.on_decision},
        )
        await queue.encrypt_stored_in_the_clear(app[DATABASE], app[AUTH].field_cipher)
        chores = asyncio.create_task(housekeeping.run(app[AUTH]), name="auth-housekeeping")
        # Logout tokens for relying parties' back-channel logout URIs, with retries (oidc/backchannel.py).
        logouts = asyncio.create_task(backchannel.run(app[AUTH], app[AUTH].backchannel_wake), name="auth-backchannel-logout")
        # Signing keys and the JWKS from memory; a rotation (here or by the operator CLI) is read within keys.cache_s.
        watching = asyncio.create_task(keys.watch(), name="auth-signing-keys")
        # CIBA logins' outcomes to clients' callback URLs (libs/result_callbacks.py), signed with the token keys.
        results = ResultCallbacks("auth", app[DATABASE], app[AUTH].signer, app[AUTH].clock,
                                  attempts=settings.result_callback_attempts, backoff_s=settings.result_callback_backoff_s)
        result_sender = asyncio.create_task(results.run_sender(), name="auth-result-callbacks")
        yield
        chores.cancel()
        watching.cancel()
        logouts.cancel()
        result_sender.cancel()
        await asyncio.gather(chores, watching, logouts, result_sender, return_exceptions=True)

    app.cleanup_ctx.append(auth_context)
    install_approval_stream(app)  # GET /v1/approvals/stream: its feed of new prompts, after the context it reads
    install_long_polls(app, HELD_ROUTES, lambda app: app[AUTH].pairings_held)  # ?wait=, after the context too
    # Clients from memory, invalidated by clients.events (clients/directory.py).
    install_client_directory(app, DATABASE, client_from_doc)
    install_consumer(app, group=CONSUMER_GROUP, topics=[APPROVAL_REQUESTED.name], handler=lambda db: approval_requests_handler(app[AUTH]))
    install_web_app(app, settings)  # the citizen's web app's files, read once, for its routes under /app/
    app.add_routes(routes)
    install_oidc(app)
    install_openapi_route(app, OPERATIONS, title=TITLE)
    return app
