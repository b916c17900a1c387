"""An agency's side of notifications: send with its own token, follow a notification, receive signed callbacks."""

from __future__ import annotations

import json

import requests
from aiohttp import web
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from libs.devstack import processes

from .calls import bearer
from .citizens import enrolled_app
from .oidc import claims_of, login, register, token_request
from .polling import eventually

TEMPLATE = {
    "name": "Licence renewal",
    "placeholders": ["name", "licence"],
    "content": {
        "en": {"subject": "Renew licence {{ licence }}", "body": "Dear {{ name }}, your licence {{ licence }} expires soon."},
        "zh-HK": {"subject": "續期牌照 {{ licence }}", "body": "{{ name }} 你好，你的牌照 {{ licence }} 即將到期。"},
    },
}


class Agency:
    """An agency (relying party) with its access token for notify."""

    def __init__(self, platform, metadata, name: str, *, client: dict | None = None, agency_events: bool = False) -> None:
        """A new relying party with `openid notify` called `name` (with its own topic if `agency_events`), or `client`
        (registered with notify among its scopes)."""
        self.platform = platform
        self.client = client or register(platform, client_name=name, scope="openid notify", agency_events=agency_events)
        self.client_id = self.client["client_id"]
        granted = token_request(metadata, self.client, grant_type="client_credentials", scope="notify")
        assert granted.status_code == 200, granted.text
        self.headers = bearer(granted.json()["access_token"])

    def call(self, method: str, path: str, body=None, **headers) -> requests.Response:
        return requests.request(method, self.platform.gateway + path, json=body, headers={**self.headers, **headers}, timeout=30)

    async def template(self, body=TEMPLATE) -> dict:
        response = self.call("POST", "/v1/templates", body)
        assert response.status_code == 201, response.text
        return response.json()

    async def send(self, body: dict, **headers) -> requests.Response:
        """POST a notification, waiting while notify has not heard of the agency or the citizen's sub yet."""
        async def attempt():
            response = self.call("POST", "/v1/notifications", body, **headers)
            self.last = response
            if response.status_code == 409 or response.json().get("type", "").endswith("/unknown-recipient"):
                return None
            return [response]  # a Response is falsy when 4xx: wrapped, so eventually() takes it
        try:
            return (await eventually(attempt, timeout_s=30))[0]
        except AssertionError:
            raise AssertionError(f"never accepted: {self.last.status_code} {self.last.text}") from None

    def status(self, notification_id: str) -> dict:
        return self.call("GET", f"/v1/notifications/{notification_id}").json()


async def citizen_of(platform, kiosk, metadata, tmp_path, agency: Agency, name: str):
    """A citizen logged in to the agency once, so the agency knows its pairwise sub: (the app, the sub)."""
    app = await enrolled_app(platform, kiosk, tmp_path, name)
    tokens, _ = await login(platform, metadata, agency.client, app)
    return app, claims_of(tokens["id_token"])["sub"]


class CallbackReceiver:
    """The agency's callback endpoint: a real HTTP server that verifies each signed status with jwcrypto."""

    def __init__(self, platform, audience: str) -> None:
        self.platform, self.audience = platform, audience
        self.received: list[dict] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        if len(self.received) == 0 and self.refused == 0:
            self.refused += 1
            return web.Response(status=503)  # the first attempt fails: notify must retry
        assert request.content_type == "application/jwt"
        jwks = jwcrypto_jwk.JWKSet.from_json(requests.get(self.platform.gateway + "/v1/notifications/jwks", timeout=10).text)
        token = jwcrypto_jws.JWS()
        token.deserialize(await request.text())
        token.verify(jwks.get_key(token.jose_header["kid"]), alg="ES256")
        claims = json.loads(token.payload)
        assert claims["aud"] == self.audience and claims["iss"] == self.platform.gateway + "/v1/notifications"
        self.received.append(claims)
        return web.Response(status=204)

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/status", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = processes.free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/status"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()
