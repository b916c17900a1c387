"""What the phone does, against the public API through the gateway.

Every call that acts for the citizen carries a device token obtained with a
device-signed assertion, kept and used again until a minute before it
expires (as an OAuth client keeps an access token), DPoP-bound to the device
key: each call presents it as `Authorization: DPoP` with a fresh proof signed
by that key (RFC 9449); every decision is signed by the device key over the
digest the app recomputed from what it displayed.
"""

from __future__ import annotations

import asyncio
import base64
import time
import json as json_module  # `json` is a parameter name of _call
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec

from libs.approvals import ApprovalRequest, sign_decision
from libs.data_export import EXPORT_PATHS, JWKS_PATHS
from libs.tokens import generate_private_key, public_jwk, sign
from libs.tokens.dpop import make_proof

from .profile import PinRequired, Profile, ProfileError, check_new_pin

# A device token is used again until this long before it expires.
TOKEN_MARGIN_S = 60
# How long to wait before claiming again when the service answered citizen-unknown without a Retry-After.
CLAIM_RETRY_S = 1.0
# How long the platform holds a new phone's question after its pairing (`?wait=`, at most 20): under the HTTP
# client's own timeout.
PAIRING_WAIT_S = 20


FORMFILL_LINK = "harbourid://formfill?request="
SIGN_LINK = "harbourid://sign?request="
LOGIN_LINK = "harbourid://authorize?"
# The https form of the login link: under the issuer (this app's gateway URL), a path the app claims (Android's
# assetlinks.json, iOS's apple-app-site-association); the QR code's carries a time code auth checks.
APP_LOGIN_PATH = "/app/authorize?"


class AppError(RuntimeError):
    """The platform refused: `status` and the problem document it sent."""

    def __init__(self, status: int, problem: dict[str, Any], *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip())
        self.status = status
        self.problem = problem
        self.retry_after_s = retry_after_s  # the answer's Retry-After, in seconds, when it sent one

    @property
    def slug(self) -> str:
        """The problem's type without its base (`citizen-unknown`), "" for an answer that is no problem document."""
        return str(self.problem.get("type", "")).rsplit("/", 1)[-1]


def _retry_after_s(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the platform sends seconds


class CitizenApp:
    """`pin`: the PIN or passphrase sealing the device key, or a function asking the citizen for it (called each time
    the key must sign: every decision, every device token). None: the key is not sealed (or not yet made)."""

    def __init__(self, profile: Profile, profile_path: Path | None = None, *,
                 pin: str | Callable[[], str] | None = None) -> None:
        self.profile = profile
        self.pin = pin
        self.profile_path = profile_path
        self.base = profile.gateway_url.rstrip("/")
        self._token: tuple[str, float] | None = None  # the device token and when to stop using it (monotonic)
        self._token_for: str | None = None  # the device it was issued to
        # The device key that signed for the token in hand: it signs each call's DPoP proof while the token lives.
        self._token_key: ec.EllipticCurvePrivateKey | None = None

    async def _call(self, method: str, path: str, *, json: Any = None, token: str | None = None, basic: tuple[str, str] | None = None) -> Any:
        headers = {}
        if token:
            headers = self.device_headers(method, path, token)
        elif basic:
            headers["Authorization"] = aiohttp.encode_basic_auth(*basic)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.request(method, self.base + path, json=json, headers=headers) as response:
                if response.status == 204:
                    return None
                body = await response.json(content_type=None)
                if response.status >= 400:
                    raise AppError(response.status, body if isinstance(body, dict) else {"detail": str(body)},
                                   retry_after_s=_retry_after_s(response.headers.get("Retry-After")))
                return body

    # -- enrolment and activation ------------------------------------------

    async def enrol(self, identity: dict[str, Any], selfie: bytes, *, kiosk: tuple[str, str] | None = None) -> dict[str, Any]:
        """Enrol at a kiosk (client credentials) or, in the sandbox, by self-registration."""
        body = {**identity, "selfie": base64.b64encode(selfie).decode()}
        result = await self._call("POST", "/v1/enrolments", json=body, basic=kiosk)
        self.profile.account_id = result["account_id"]
        self._save()
        return result

    async def replace_at_kiosk(self, identity: dict[str, Any], selfie: bytes, *, kiosk: tuple[str, str]) -> dict[str, Any]:
        """A lost phone: the kiosk proofs the citizen again; every old device is revoked and a new code is issued
        for the same account (activate this app with it)."""
        body = {**identity, "selfie": base64.b64encode(selfie).decode()}
        result = await self._call("POST", "/v1/enrolments/replacements", json=body, basic=kiosk)
        self.profile.account_id = result["account_id"]
        self._save()
        return result

    async def recover_in_sandbox(self, identity: dict[str, Any], selfie: bytes) -> dict[str, Any]:
        """Sandbox only: a test citizen's lost phone without a kiosk (same data and selfie as self-registration); every
        old device is revoked and a new code is issued for the same account (activate this app with it)."""
        body = {**identity, "selfie": base64.b64encode(selfie).decode()}
        result = await self._call("POST", "/v1/enrolments/recovery", json=body)
        self.profile.account_id = result["account_id"]
        self._save()
        return result

    async def upgrade_at_kiosk(self, identity: dict[str, Any], selfie: bytes, *, kiosk: tuple[str, str]) -> dict[str, Any]:
        """A basic identity proofed in person at a kiosk becomes plus; this phone stays bound."""
        body = {**identity, "selfie": base64.b64encode(selfie).decode()}
        return await self._call("POST", "/v1/enrolments/upgrades", json=body, basic=kiosk)

    async def activate(self, account_id: str, activation_code: str, device_name: str = "phone", *,
                       pin: str | None = None) -> dict[str, Any]:
        """Generate the device key, prove possession over a server nonce, bind the device.

        `pin`: seal the key under this PIN or passphrase (and tell auth the device is PIN-protected); without one
        the key is kept in the clear and auth is told so (its logins then never claim a PIN)."""
        key, proof = await self._new_key_with_proof(pin)
        result = await self._call(
            "POST",
            "/v1/devices",
            json={
                "account_id": account_id,
                "activation_code": activation_code,
                "public_key": public_jwk(key),
                "device_name": device_name,
                "proof": proof,
                "key_protection": self.key_protection(pin),
            },
        )
        self.profile.account_id = account_id
        self.profile.device_id = result["device_id"]
        self.profile.device_name = device_name
        self._keep_key(key, pin)
        self._save()
        return result

    async def _as_device(self, method: str, path: str, *, json: Any = None) -> Any:
        """A call for the citizen with the device token in hand (a fresh one when it has less than a minute left).

        A token in hand that is refused (401: the device revoked, the account suspended and reinstated...) is
        dropped and the call made once more with a fresh one, whose request says why if the device may no longer act."""
        held = self._token
        if held is not None and time.monotonic() < held[1] and self._token_for == self.profile.device_id:
            try:
                return await self._call(method, path, json=json, token=held[0])
            except AppError as exc:
                if exc.status != 401:
                    raise
                self.forget_token()
        return await self._call(method, path, json=json, token=await self.device_token())

    async def device_token(self) -> str:
        """A fresh device token (kept for the calls that follow, until a minute before it expires)."""
        if not self.profile.device_id:
            raise ProfileError("this profile has no device yet: activate it, or finish its pairing")
        started = time.monotonic()
        now = int(datetime.now(UTC).timestamp())
        key = self._unlock()[0]
        assertion = sign(
            {
                "iss": self.profile.device_id,
                "sub": self.profile.account_id,
                "aud": f"{self.base}/v1/devices/token",
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            key,
            headers={"kid": self.profile.device_id},
        )
        result = await self._call("POST", "/v1/devices/token", json=await self._token_request(assertion))
        self._token = (result["access_token"], started + result.get("expires_in", 0) - TOKEN_MARGIN_S)
        self._token_key = key
        self._token_for = self.profile.device_id
        return result["access_token"]

    async def _token_request(self, assertion: str) -> dict[str, Any]:
        """The body of `POST /v1/devices/token` (an app whose device has a passkey adds its assertion)."""
        return {"assertion": assertion}

    def forget_token(self) -> None:
        """The next call asks for a fresh device token (after a revocation, a new device...)."""
        self._token = None
        self._token_key = None

    def device_headers(self, method: str, path: str, token: str) -> dict[str, str]:
        """A device token is DPoP-bound (RFC 9449; its `cnf.jkt` names the device key): `Authorization: DPoP` and a
        proof for this call signed by the device key, `htu` the public URL (this app's base, the issuer, + the path),
        `ath` the token's hash. The key that obtained the token in hand signs; else the key is opened now."""
        key = self._token_key if self._token is not None and token == self._token[0] and self._token_key else None
        if key is None:
            key = self._unlock()[0]
        return {"Authorization": f"DPoP {token}", "DPoP": make_proof(key, method, self.base + path, access_token=token)}

    # -- approvals -----------------------------------------------------------

    async def pending(self) -> list[dict[str, Any]]:
        return (await self._as_device("GET", "/v1/approvals"))["approvals"]

    async def show(self, approval_id: str) -> dict[str, Any]:
        return await self._as_device("GET", f"/v1/approvals/{approval_id}")

    async def decide(self, approval_id: str, decision: str, selection: list[str] | None = None, *,
                     prompt: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sign and send a decision on the prompt as shown (`prompt`: the one in hand, else fetched now)."""
        if prompt is None:
            prompt = await self._as_device("GET", f"/v1/approvals/{approval_id}")
        # Sign what we display: the digest is recomputed here, never taken on trust.
        digest = ApprovalRequest.model_validate(prompt["request"]).digest()
        if digest != prompt["digest"]:
            raise AppError(0, {"title": "Digest mismatch", "detail": "the prompt does not match its digest; refusing to sign"})
        details = prompt["request"].get("details") or {}
        if prompt["request"].get("action") == "sign" and decision == "approve" and not (
                isinstance(details.get("sha256"), str) and len(details["sha256"]) == 64
                and details["sha256"].startswith(str(details.get("sha256_start")))):
            # The decision binds the document's whole SHA-256; the start shown must be the start of that hash.
            raise AppError(0, {"title": "Document hash", "detail": "the prompt does not name the whole document hash it shows; "
                                                                   "refusing to sign"})
        key, uv = self._unlock()  # the PIN is asked for this decision (a sealed key)
        signed = sign_decision(
            key,
            device_id=self.profile.device_id,
            approval_id=approval_id,
            digest=digest,
            decision=decision,
            selection=selection,
            uv=uv,
        )
        return await self._as_device("POST", f"/v1/approvals/{approval_id}/decision", json={"decision": signed})

    async def approve(self, approval_id: str, selection: list[str] | None = None) -> dict[str, Any]:
        return await self.decide(approval_id, "approve", selection)

    async def deny(self, approval_id: str) -> dict[str, Any]:
        return await self.decide(approval_id, "deny")

    async def open_link(self, link: str, *, approve: bool = True, selection: list[str] | None = None) -> dict[str, Any]:
        """What the phone does with a scanned QR code or a tapped link (harbourid://, or an https app link under its
        issuer): show, decide, hand back. A refused link (e.g. a QR code replayed after its window) is an AppError."""
        if link.startswith(FORMFILL_LINK):
            # The request lives at formfill; its prompt reaches this phone's queue through auth shortly after.
            prompt = await self._claim_and_wait(f"/v1/formfill/requests/{link[len(FORMFILL_LINK):]}/claim")
        elif link.startswith(SIGN_LINK):
            # The same for signing: the prompt shows the relying party, the document's name and the start of its hash.
            prompt = await self._claim_and_wait(f"/v1/signing/requests/{link[len(SIGN_LINK):]}/claim")
        elif link.startswith((LOGIN_LINK, self.base + APP_LOGIN_PATH)):
            prompt = await self._as_device("POST", "/v1/approvals/links", json={"link": link})
        else:
            # Not this issuer's: an https link elsewhere is not handed to the platform (nor any other scheme).
            raise AppError(400, {"title": "Unknown link", "detail": "this is not a link of this app's Harbour ID"})
        # The prompt just received (with its request and digest) is what the phone shows and signs.
        outcome = await self.decide(prompt["approval_id"], "approve" if approve else "deny", selection, prompt=prompt)
        return {"prompt": prompt, **outcome}

    async def _claim_and_wait(self, claim_path: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Claim a request, then wait for its prompt on the approvals stream (GET /v1/approvals/stream), opened
        before the claim so the prompt cannot arrive unseen; its content is then fetched by id. Without a stream
        (an older auth, the device's limit of streams) the prompt is asked for by id until it is there."""
        token = self._token[0] if self._token and time.monotonic() < self._token[1] else await self.device_token()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            # The stream's DPoP proof is checked once, when it opens.
            headers = {**self.device_headers("GET", "/v1/approvals/stream", token), "Accept": "text/event-stream"}
            async with session.get(self.base + "/v1/approvals/stream", headers=headers) as stream:
                claimed = await self._claim(claim_path, timeout_s)
                if stream.status != 200:
                    return await self._wait_for_prompt(claimed["approval_id"], timeout_s)
                approval_id = claimed["approval_id"]
                try:
                    await asyncio.wait_for(self._prompt_event(stream, approval_id), timeout_s)
                except (TimeoutError, aiohttp.ClientError):
                    pass  # the stream ended or stayed silent: one look by id says whether the prompt is there
        return await self.show(approval_id)

    async def _claim(self, claim_path: str, timeout_s: float) -> dict[str, Any]:
        """Claim the request; while the service has not heard of this citizen yet (409 citizen-unknown: auth's events
        about a new or just activated identity still on their way to it), ask again after its Retry-After, for up to
        `timeout_s`. Nothing changed on the service's side meanwhile: the request is still anyone's to open."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return await self._as_device("POST", claim_path, json={})
            except AppError as exc:
                wait_s = exc.retry_after_s if exc.retry_after_s is not None else CLAIM_RETRY_S
                if exc.status != 409 or exc.slug != "citizen-unknown" or time.monotonic() + wait_s > deadline:
                    raise
            await asyncio.sleep(wait_s)

    @staticmethod
    async def _prompt_event(stream: aiohttp.ClientResponse, approval_id: str) -> None:
        """Read the stream until an event names this prompt (the stream ending without one: ConnectionError)."""
        async for raw in stream.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:") and json_module.loads(line[5:]).get("approval_id") == approval_id:
                return
        raise aiohttp.ClientConnectionError("the approvals stream ended")

    async def _wait_for_prompt(self, approval_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                return await self.show(approval_id)
            except AppError as exc:
                if exc.status != 404 or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.2)

    # -- devices -------------------------------------------------------------

    async def devices(self) -> dict[str, Any]:
        return await self._as_device("GET", "/v1/devices")

    async def revoke(self, device_id: str) -> None:
        await self._as_device("DELETE", f"/v1/devices/{device_id}")

    async def rename_device(self, device_id: str, name: str) -> dict[str, Any]:
        """Name a device of the account (this one or another); the list shows the new name."""
        return await self._as_device("PATCH", f"/v1/devices/{device_id}", json={"name": name})

    # -- adding a device from an existing one --------------------------------

    async def _new_key_with_proof(self, pin: str | None) -> tuple[Any, str]:
        """A new device key and its proof of possession over a fresh server nonce (activation and pairing alike)."""
        key = generate_private_key()
        if pin:
            check_new_pin(pin)
        challenge = await self._call("POST", "/v1/devices/challenges", json={})
        now = int(datetime.now(UTC).timestamp())
        return key, sign({"nonce": challenge["nonce"], "aud": challenge["audience"], "iat": now, "exp": now + 120}, key)

    async def start_pairing(self, device_name: str = "phone", *, pin: str | None = None) -> dict[str, Any]:
        """On the new phone: make the device key, prove possession, and get the code to show (and a pairing id kept
        in the profile). The citizen enters the code on a phone already bound (`approve_pairing`); then
        `finish_pairing` here. `pin`: as `activate`'s."""
        key, proof = await self._new_key_with_proof(pin)
        started = await self._call("POST", "/v1/devices/pairings",
                                   json={"public_key": public_jwk(key), "device_name": device_name, "proof": proof,
                                         "key_protection": self.key_protection(pin)})
        self.profile.device_name = device_name
        self._keep_key(key, pin)
        self.profile.pairing_id = started["pairing_id"]
        self.profile.account_id = self.profile.device_id = None
        self._save()
        return started

    async def pairing_status(self, wait_s: int = 0) -> dict[str, Any]:
        """On the new phone: where its pairing stands (waiting, claimed, bound, denied, expired). `wait_s`: the
        platform holds the question up to that long (at most 20) until the pairing moves."""
        if not self.profile.pairing_id:
            raise AppError(0, {"title": "No pairing", "detail": "start a pairing first (start_pairing)"})
        return await self._call("GET", f"/v1/devices/pairings/{self.profile.pairing_id}" + (f"?wait={wait_s}" if wait_s else ""))

    async def finish_pairing(self, timeout_s: float = 300.0, interval_s: float = 0.5) -> dict[str, Any]:
        """On the new phone: wait until the pairing is decided; bound, this app is the account's new device. Each
        question is held by the platform until the pairing moves (`?wait=`); one answered at once with nothing new
        (the platform held its limit already) is asked again after `interval_s`, as polling did, and one the
        platform could not answer (502/503/504: auth restarting) after its Retry-After."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        known = None
        while True:
            asked = loop.time()
            try:
                status = await self.pairing_status(wait_s=max(1, min(PAIRING_WAIT_S, int(deadline - asked))))
            except AppError as exc:
                # The platform could not answer just now (auth restarting under the question it held: the gateway's
                # 502/503/504): the pairing is kept by the platform, so ask again after its Retry-After.
                if exc.status not in (502, 503, 504) or loop.time() > deadline:
                    raise
                await asyncio.sleep(exc.retry_after_s if exc.retry_after_s is not None else interval_s)
                continue
            if status["status"] in ("bound", "denied", "expired") or loop.time() > deadline:
                break
            if status["status"] == known and loop.time() - asked < interval_s:
                await asyncio.sleep(interval_s)
            known = status["status"]
        if status["status"] == "bound":
            self.profile.account_id = status["account_id"]
            self.profile.device_id = status["device_id"]
            self.profile.pairing_id = None
            self.forget_token()
            self._save()
        return status

    async def claim_pairing(self, code: str) -> dict[str, Any]:
        """On a phone already bound: the new phone's code queues an add_device prompt here (nothing bound yet)."""
        return await self._as_device("POST", "/v1/devices/pairings/claim", json={"code": code})

    async def approve_pairing(self, code: str, *, approve: bool = True,
                              key_thumbprint: str | None = None) -> dict[str, Any]:
        """On a phone already bound: enter the new phone's code, check the prompt names the new phone's key (when
        `key_thumbprint` is given, as a phone that scanned it would), and approve it, device-signed (or deny).
        The new phone shows the prompt's matching code once the code is entered (`pairing_status`): a citizen
        approving by hand compares the two (`claim_pairing`, then `approve`)."""
        claimed = await self.claim_pairing(code)
        prompt = await self.show(claimed["approval_id"])
        shown = prompt["request"]["details"]
        if key_thumbprint is not None and shown.get("key_thumbprint") != key_thumbprint:
            await self.deny(claimed["approval_id"])
            raise AppError(0, {"title": "Wrong device", "detail": "the prompt names another key than the new phone's"})
        outcome = await self.decide(claimed["approval_id"], "approve" if approve else "deny", prompt=prompt)
        return {**outcome, "device_name": shown.get("device_name"), "key_thumbprint": shown.get("key_thumbprint"),
                "matching_code": prompt.get("matching_code")}

    # -- the account ---------------------------------------------------------

    async def request_closure(self) -> dict[str, Any]:
        """Ask to close the account: the closure prompt lands on this account's queue (nothing changes yet)."""
        return await self._as_device("POST", "/v1/account/closure", json={})

    async def close_account(self) -> dict[str, Any]:
        """Close the account for good: ask, then approve the prompt as shown, device-signed (the citizen confirmed)."""
        asked = await self.request_closure()
        return await self.approve(asked["approval_id"])

    # -- inbox and notification preferences --------------------------------

    async def inbox(self, *, unread_only: bool = False) -> list[dict[str, Any]]:
        query = "?unread=true" if unread_only else ""
        return (await self._as_device("GET", "/v1/inbox" + query))["messages"]

    async def read(self, item_id: str) -> dict[str, Any]:
        return await self._as_device("POST", f"/v1/inbox/{item_id}/read")

    async def preferences(self) -> dict[str, Any]:
        return await self._as_device("GET", "/v1/preferences")

    async def set_preferences(self, **changes: Any) -> dict[str, Any]:
        """Change some preferences, keep the rest (the API replaces the whole document)."""
        current = await self.preferences()
        wanted = {k: current.get(k) for k in ("language", "channels", "email", "phone", "opted_out", "quiet_hours")} | changes
        return await self._as_device("PUT", "/v1/preferences", json=wanted)

    # -- the citizen's own profile -------------------------------------------

    async def change_profile(self, field: str, value: str) -> dict[str, Any]:
        """Change the phone, e-mail (a one-time code goes to the new one: `confirm_profile_change`) or address (applied
        at once, self-declared)."""
        return await self._as_device("POST", "/v1/profile/changes", json={"field": field, "value": value})

    async def confirm_profile_change(self, change_id: str, code: str) -> dict[str, Any]:
        """The code the new phone or e-mail received: the change holds from now on."""
        return await self._as_device("POST", f"/v1/profile/changes/{change_id}/confirmation", json={"code": code})

    async def export(self) -> dict[str, Any]:
        """The personal-data export: each service's part, signed by it (JWS), gathered into one document with a copy of
        the JWKS each verifies against, so the file can be checked after a key rotation too (docs/api.md)."""
        parts = {}
        for service, path in EXPORT_PATHS.items():
            part = await self._as_device("GET", path)
            parts[service] = {**part, "jwks": await self._call("GET", JWKS_PATHS[service])}
        return {"type": "harbour-id/personal-data-export", "issuer": self.base,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "parts": parts}

    async def activity(self, *, after: int = 0, limit: int = 50) -> dict[str, Any]:
        """The data tracker: every use of this identity (logins, releases, signatures, notifications, operator
        actions), oldest first after ledger seq `after`, each with its proof (docs/api.md)."""
        return await self._as_device("GET", f"/v1/activity?after={after}&limit={limit}")

    async def stream(self):
        """The live inbox (server-sent events): yields each new message as it arrives; comments are skipped."""
        token = await self.device_token()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            headers = {**self.device_headers("GET", "/v1/inbox/stream", token), "Accept": "text/event-stream"}
            async with session.get(self.base + "/v1/inbox/stream", headers=headers) as response:
                if response.status >= 400:
                    raise AppError(response.status, await response.json(content_type=None))
                data: list[str] = []
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith(":"):
                        yield {"comment": line[1:].strip()}
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield json_module.loads("\n".join(data))
                        data = []

    # -- the device key -------------------------------------------------------

    @staticmethod
    def key_protection(pin: str | None) -> dict[str, str]:
        """What protects the key, as auth is told at activation or pairing: a software key (this app has no
        hardware keystore auth could verify), with or without a PIN."""
        return {"storage": "software", "user_verification": "pin" if pin else "none"}

    def _keep_key(self, key: ec.EllipticCurvePrivateKey, pin: str | None) -> None:
        self.profile.set_device_key(key, pin)
        if pin and self.pin is None:
            self.pin = pin

    def _unlock(self) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """The device key, opened now, and how: "pin" when the PIN was asked for (and opened it), else "none"."""
        if not self.profile.pin_protected:
            return self.profile.device_key(), "none"
        pin = self.pin() if callable(self.pin) else self.pin
        if not pin:
            raise PinRequired("the device key is protected by a PIN: give the PIN to unlock it")
        return self.profile.device_key(pin), "pin"

    def _save(self) -> None:
        if self.profile_path is not None:
            self.profile.save(self.profile_path)
