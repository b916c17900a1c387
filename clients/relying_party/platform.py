"""The platform's APIs this site uses after login, through the gateway: form filling, signing, notifications.

Each call is made with the citizen's access token (form filling, signing) or
the site's own client-credentials token (notifications). Services learn about
a new login through events, so right after login they may answer `409` with
`Retry-After` for a moment; those calls are retried briefly. A status check
the gateway could not have answered (`502`/`503`/`504`: the service restarting
under the held check) says nothing of the request, which the service keeps:
it reads as still pending, and the waiting page asks again.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .config import SiteConfig

NOT_YET_KNOWN_RETRY_S = 10.0
# The gateway's answers when the service was not there to answer: the request is unchanged, ask again.
SERVICE_AWAY = frozenset({502, 503, 504})


class PlatformError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _problem(response: httpx2.Response) -> PlatformError:
    try:
        detail = response.json().get("detail") or response.json().get("title")
    except ValueError:
        detail = response.text[:200]
    return PlatformError(f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}", response.status_code)


# How long a status check waits for the citizen's answer (?wait=): the waiting page's check is answered the moment
# they decide, and asks again after a "pending" — one request per 10 s instead of one a second.
ANSWER_WAIT_S = 10


class PlatformApi:
    def __init__(self, config: SiteConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self.http = http
        self.base = config.issuer

    async def _send(self, method: str, path: str, token: str, headers: dict[str, str] | None = None, **kwargs) -> httpx2.Response:
        """One call; while the service has not yet heard of this login (409 + Retry-After), retry briefly."""
        deadline = time.monotonic() + NOT_YET_KNOWN_RETRY_S
        while True:
            response = await self.http.request(method, self.base + path, headers={"Authorization": f"Bearer {token}", **(headers or {})},
                                               **kwargs)
            if response.status_code == 409 and "Retry-After" in response.headers and time.monotonic() < deadline:
                await asyncio.sleep(min(float(response.headers["Retry-After"]), 1.0))
                continue
            return response

    # -- form filling ----------------------------------------------------------

    async def ask_for_fields(self, access_token: str, fields: tuple[tuple[str, bool], ...], purpose: str) -> str:
        body = {"fields": [{"name": name, "required": required} for name, required in fields], "purpose": purpose}
        response = await self._send("POST", "/v1/formfill/requests", access_token, json=body)
        if response.status_code != 201:
            raise _problem(response)
        return response.json()["request_id"]

    async def form_status(self, access_token: str, request_id: str) -> str:
        """The request's status, held up to ANSWER_WAIT_S while the citizen has not answered (docs/api.md)."""
        return await self._held_status(access_token, f"/v1/formfill/requests/{request_id}")

    async def released_fields(self, access_token: str, request_id: str, sub: str) -> dict[str, str]:
        """Read the release once and check it: formfill's signature, issued to us, about this citizen."""
        response = await self._send("GET", f"/v1/formfill/requests/{request_id}/result", access_token)
        if response.status_code != 200:
            raise _problem(response)
        jwks = await self.http.get(self.base + "/v1/formfill/jwks")
        jwks.raise_for_status()
        try:
            release = jwt.decode(response.text, KeySet.import_key_set(jwks.json()), algorithms=["ES256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": f"{self.config.issuer}/v1/formfill"},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True, "value": sub}, exp={"essential": True},
            ).validate(release.claims)
        except (JoseError, ValueError) as error:
            raise PlatformError(f"the released data failed verification: {error}") from error
        return dict(release.claims["fields"])

    # -- signing ---------------------------------------------------------------

    async def ask_to_sign(self, access_token: str, pdf: bytes, document_name: str, purpose: str,
                          appearance: dict[str, Any] | None = None) -> str:
        """Upload the PDF; the citizen sees its name and the start of its hash on the phone. `appearance`: a visible
        signature ({"page", "box", "name"}: the citizen sees its page and name too)."""
        params = {"document_name": document_name, "purpose": purpose}
        if appearance is not None:
            params["appearance"] = json.dumps(appearance, ensure_ascii=False)
        response = await self._send("POST", "/v1/signing/requests", access_token, headers={"Content-Type": "application/pdf"},
                                    params=params, content=pdf)
        if response.status_code != 201:
            raise _problem(response)
        return response.json()["request_id"]

    async def signing_status(self, access_token: str, request_id: str) -> str:
        """As `form_status`."""
        return await self._held_status(access_token, f"/v1/signing/requests/{request_id}")

    async def _held_status(self, access_token: str, path: str) -> str:
        """A form-fill or signing request's status, asked with `wait`; `pending` when the service was away."""
        response = await self._send("GET", path, access_token, params={"wait": ANSWER_WAIT_S})
        if response.status_code in SERVICE_AWAY:
            return "pending"
        if response.status_code != 200:
            raise _problem(response)
        return response.json()["status"]

    async def signed_pdf(self, access_token: str, request_id: str) -> bytes:
        response = await self._send("GET", f"/v1/signing/requests/{request_id}/result", access_token)
        if response.status_code != 200 or response.headers.get("Content-Type") != "application/pdf":
            raise _problem(response)
        return response.content

    # -- notifications -----------------------------------------------------------

    async def ensure_template(self, token: str, name: str, placeholders: list[str], content: dict) -> str:
        """The site's template, created once per site process (notify versions templates; we keep ours fixed)."""
        response = await self._send("POST", "/v1/templates", token, json={"name": name, "placeholders": placeholders, "content": content})
        if response.status_code not in (200, 201):
            raise _problem(response)
        return response.json()["template_id"]

    async def notify(self, token: str, template_id: str, sub: str, personalisation: dict[str, str], reference: str) -> str:
        """Send one notification; the reference doubles as the idempotency key, so a retry sends nothing twice."""
        body = {"template_id": template_id, "sub": sub, "personalisation": personalisation, "reference": reference}
        response = await self._send("POST", "/v1/notifications", token, headers={"Idempotency-Key": reference}, json=body)
        if response.status_code not in (200, 201):
            raise _problem(response)
        return response.json()["notification_id"]
