"""The gateway remembers the tokens it verified, and still refuses a revoked one at once (real broker, real sockets)."""

from __future__ import annotations

import time
import uuid

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

import libs.tokens.jwks_cache as jwks_cache
from libs.events.envelope import CloudEvent
from libs.events.topics import REVOCATIONS
from libs.revocation.projection import TOKENS_REVOKED
from libs.service import ServiceSettings
from libs.tokens import generate_private_key, public_jwk, sign
from services.gateway.app import JWKS, create_app
from services.gateway.settings import UPSTREAMS, GatewaySettings

from ..support.polling import eventually

pytestmark = pytest.mark.integration
ISSUER = "https://harbour.example"
KEY = generate_private_key()

def fake_upstream() -> web.Application:
    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [{**public_jwk(KEY), "kid": "k1", "use": "sig", "alg": "ES256"}]})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/oidc/jwks", jwks)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app

@pytest.fixture
async def gateway(infra):
    upstream = TestServer(fake_upstream())
    await upstream.start_server()
    base = str(upstream.make_url("")).rstrip("/")
    settings = GatewaySettings(service=ServiceSettings(service="gateway", kafka_bootstrap=infra.kafka_bootstrap),
                               upstreams=dict.fromkeys(UPSTREAMS, base), issuer=ISSUER)
    async with TestClient(TestServer(create_app(settings))) as client:

        async def ready():
            return (await client.get("/readyz")).status == 200

        await eventually(ready, timeout_s=60, interval_s=0.1)  # the revocation list read
        yield client
    await upstream.close()

def agency_token(jti: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ISSUER, "sub": "agency-1", "client_id": "agency-1", "scope": "notify",
              "iat": now, "exp": now + 300, "jti": jti}
    return sign(claims, KEY, headers={"kid": "k1", "typ": "at+jwt"})

async def test_a_cached_token_is_refused_as_soon_as_it_is_revoked(gateway, infra, monkeypatch):
    verified = []
    real_verify = jwks_cache.verify
    monkeypatch.setattr(jwks_cache, "verify", lambda *a, **kw: verified.append(1) or real_verify(*a, **kw))
    jti = uuid.uuid4().hex
    bearer = {"Authorization": f"Bearer {agency_token(jti)}"}
    for _ in range(5):
        response = await gateway.get("/v1/notifications/n-1", headers=bearer)
        assert response.status == 200, await response.text()
    assert len(verified) == 1  # verified once, then answered from memory
    assert len(gateway.server.app[JWKS]._verified) == 1

    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    try:
        revoked = CloudEvent(source="/auth", type=TOKENS_REVOKED, data={"jtis": [jti], "expires_at": time.time() + 300})
        await producer.send_and_wait(REVOCATIONS.name, revoked.to_json(), key=b"revocations")
        published = time.monotonic()
    finally:
        await producer.stop()

    async def refused():
        response = await gateway.get("/v1/notifications/n-1", headers=bearer)
        return response if response.status == 401 else None

    response = await eventually(refused, timeout_s=10, interval_s=0.05)
    assert time.monotonic() - published < 2.0  # the revocation list's bound, cache or no cache
    assert "revoked" in (await response.json(content_type="application/problem+json"))["detail"]
    assert len(verified) == 1  # refused from the remembered claims, by the revocation list
    # Another token of the same caller, not revoked, still passes.
    assert (await gateway.get("/v1/notifications/n-1", headers={"Authorization": f"Bearer {agency_token(uuid.uuid4().hex)}"})).status == 200
