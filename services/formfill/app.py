"""create_app(settings) -> the formfill service's aiohttp application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.backbone import install_backbone
from libs.clock import Clock, SystemClock
from libs.held_requests import HeldRequests
from libs.crypto import FieldCipher
from libs.events import OUTBOX_RELAY, install_consumer
from libs.result_callbacks import ResultCallbacks
from libs.revocation import install_revocations
from libs.service import create_service_app
from libs.service.openapi import install_openapi_route
from libs.service.overload import install_long_polls
from libs.service.tracing import client_session
from libs.store import DATABASE, MONGO_CLIENT
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from . import profile_updates
from .api import ENDPOINTS, FORMFILL, HELD_ROUTES, OPERATIONS
from .collections import INDEXES, RELEASE_KEYS, REQUESTS
from .context import Formfill
from .events import CONSUMED, CONSUMER_GROUP, TOPICS, handler
from .settings import FormfillSettings


def create_app(settings: FormfillSettings | None = None, *, clock: Clock | None = None) -> web.Application:
    """`clock`: what the service takes for now (tests pass a FrozenClock to move past lifetimes)."""
    settings = settings or FormfillSettings.from_env()
    app = create_service_app(settings.service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    install_revocations(app)  # tokens, devices and accounts auth revoked are refused here too

    async def formfill_context(app: web.Application):
        keys = KeyStore(app[MONGO_CLIENT], app[DATABASE], settings.keyring, max_token_lifetime_s=settings.result_ttl_s, collection=RELEASE_KEYS)
        await keys.ensure()
        session = client_session()
        answers = HeldRequests("formfill", app[DATABASE][REQUESTS], read_timeout_s=settings.service.mongo_request_timeout_s)
        app[FORMFILL] = Formfill(
            settings=settings, mongo=app[MONGO_CLIENT], db=app[DATABASE], cipher=FieldCipher(settings.keyring),
            jwks=JWKSCache(settings.jwks_url, session, verified_cache_size=settings.token_cache_size), keys=keys,
            signer=TokenSigner(keys, f"{settings.issuer}/v1/formfill"), relay=app[OUTBOX_RELAY], clock=clock or SystemClock(),
            answers=answers,
        )
        # Standing consents' updates to clients' callback URLs (profile_updates.py), sent in the background.
        sender = asyncio.create_task(profile_updates.run_sender(app[FORMFILL]), name="formfill-consent-callbacks")
        # Requests' outcomes to clients' callback URLs (libs/result_callbacks.py), signed with the release keys.
        results = ResultCallbacks("formfill", app[DATABASE], app[FORMFILL].signer, app[FORMFILL].clock,
                                  attempts=settings.result_callback_attempts, backoff_s=settings.result_callback_backoff_s)
        result_sender = asyncio.create_task(results.run_sender(), name="formfill-result-callbacks")
        yield
        sender.cancel()
        result_sender.cancel()
        await asyncio.gather(sender, result_sender, return_exceptions=True)
        await session.close()

    app.cleanup_ctx.append(formfill_context)
    install_consumer(app, group=CONSUMER_GROUP, topics=list(CONSUMED), handler=lambda db: handler(app[FORMFILL]))
    for endpoints in ENDPOINTS:
        app.add_routes(endpoints.routes)
    # With ?wait=: held for the citizen's answer (libs/held_requests.py), after the context that holds them.
    install_long_polls(app, HELD_ROUTES, lambda app: app[FORMFILL].answers)
    install_openapi_route(app, OPERATIONS, title="Harbour ID formfill")
    return app
