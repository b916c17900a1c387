"""A software WebAuthn authenticator for the Python tests, and a phone that binds and approves with its passkey.

`SoftAuthenticator` makes what a browser hands the web app (`PublicKeyCredential.toJSON()`): registration responses
with a real CBOR attestation object (fmt "none", authenticator data with the UP/UV/AT flags, the sign count, the
AAGUID, the credential id and its COSE P-256 key) and assertions signed by its P-256 key over authenticator data and
the client data's hash. Each can be made wrong on purpose: the UV flag off, another challenge, another origin or RP
ID, a sign count that does not grow, another credential. Test support only: the server verifies with py_webauthn.

`PasskeyPhone` is the reference app (clients/citizen_app) doing what the web app does with the API: a device bound
with `user_verification: passkey` and its registration, device tokens unlocked with an assertion over the token
assertion's hash, decisions with `uv: passkey` and an assertion over the prompt's digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from clients.citizen_app import CitizenApp
from clients.citizen_app.app import AppError
from libs import base64url
from libs.approvals import ApprovalRequest, sign_decision
from libs.tokens import public_jwk

UP, UV, AT = 0x01, 0x04, 0x40
# Chrome's virtual authenticator and most platform ones answer attestation "none" with a zero AAGUID.
ZERO_AAGUID = bytes(16)


def _b64(data: bytes) -> str:
    return base64url.encode(data)


def token_challenge_bytes(token_assertion: str) -> bytes:
    """The WebAuthn challenge that unlocks a device token: SHA-256 of the device-signed assertion's compact JWS."""
    return hashlib.sha256(token_assertion.encode("ascii")).digest()


class SoftAuthenticator:
    """One passkey (credential) for one RP, kept in memory."""

    def __init__(self, rp_id: str, origin: str, *, aaguid: bytes = ZERO_AAGUID) -> None:
        self.rp_id, self.origin, self.aaguid = rp_id, origin, aaguid
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, *, rp_id: str | None, flags: int, sign_count: int, attested: bool) -> bytes:
        data = hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)
        if attested:
            data += self.aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_key()
        return data

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": _b64(challenge), "origin": origin or self.origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def register(self, challenge: bytes, *, user_verified: bool = True, origin: str | None = None,
                 rp_id: str | None = None) -> dict[str, Any]:
        """navigator.credentials.create()'s answer as JSON, over `challenge`."""
        flags = UP | AT | (UV if user_verified else 0)
        auth_data = self._auth_data(rp_id=rp_id, flags=flags, sign_count=self.sign_count, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": _b64(self.credential_id), "rawId": _b64(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": _b64(self._client_data("webauthn.create", challenge, origin)),
                             "attestationObject": _b64(attestation), "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def assertion(self, challenge: bytes, *, user_verified: bool = True, origin: str | None = None,
                  rp_id: str | None = None, sign_count: int | None = None, credential_id: bytes | None = None,
                  signing_key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, Any]:
        """navigator.credentials.get()'s answer as JSON, over `challenge`; the sign count grows by one unless given."""
        if sign_count is None:
            self.sign_count += 1
            sign_count = self.sign_count
        auth_data = self._auth_data(rp_id=rp_id, flags=UP | (UV if user_verified else 0), sign_count=sign_count,
                                    attested=False)
        client_data = self._client_data("webauthn.get", challenge, origin)
        signature = (signing_key or self.key).sign(auth_data + hashlib.sha256(client_data).digest(),
                                                   ec.ECDSA(hashes.SHA256()))
        credential = credential_id or self.credential_id
        return {"id": _b64(credential), "rawId": _b64(credential), "type": "public-key",
                "response": {"clientDataJSON": _b64(client_data), "authenticatorData": _b64(auth_data),
                             "signature": _b64(signature), "userHandle": _b64(b"user-handle-16by")},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}


class PasskeyPhone(CitizenApp):
    """The reference app with a passkey, as the web app uses the API (tests only)."""

    authenticator: SoftAuthenticator
    # How its device token requests are unlocked: None, an assertion over the token assertion's hash (the web app);
    # a function (token assertion -> the body's `passkey`, or None for none) to make it wrong.
    unlock: Any = None

    async def _token_request(self, assertion: str) -> dict[str, Any]:
        authenticator = getattr(self, "authenticator", None)
        if authenticator is None:  # bound without a passkey (a pairing's old phone, say)
            return {"assertion": assertion}
        passkey = (self.unlock(assertion) if self.unlock is not None
                   else authenticator.assertion(token_challenge_bytes(assertion)))
        return {"assertion": assertion, **({"passkey": passkey} if passkey is not None else {})}

    def passkey_for(self, rp_id: str, origin: str) -> SoftAuthenticator:
        self.authenticator = SoftAuthenticator(rp_id, origin)
        return self.authenticator

    async def fresh_nonce_and_proof(self) -> tuple[ec.EllipticCurvePrivateKey, str, str]:
        """A new device key, its proof of possession and the nonce the proof is over (the passkey's challenge)."""
        key, proof = await self._new_key_with_proof(None)
        return key, proof, json.loads(base64url.decode(proof.split(".")[1]))["nonce"]

    async def activate_with_passkey(self, account_id: str, activation_code: str, device_name: str = "web phone", *,
                                    registration: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """Bind with `user_verification: passkey` and the authenticator's registration over the proof's nonce
        (`registration` given: that one instead; `options`: register()'s, to make it wrong)."""
        key, proof, nonce = await self.fresh_nonce_and_proof()
        body = {"account_id": account_id, "activation_code": activation_code, "public_key": public_jwk(key),
                "device_name": device_name, "proof": proof,
                "key_protection": {"storage": "software", "user_verification": "passkey"},
                "passkey": registration or self.authenticator.register(nonce.encode(), **options)}
        result = await self._call("POST", "/v1/devices", json=body)
        self.profile.account_id = account_id
        self.profile.device_id = result["device_id"]
        self.profile.device_name = device_name
        self._keep_key(key, None)
        self._save()
        return result

    async def decide_with_passkey(self, approval_id: str, decision: str, *, assertion: dict[str, Any] | None = None,
                                  send_assertion: bool = True, **options: Any) -> dict[str, Any]:
        """Sign the decision (`uv: passkey`) and send it with an assertion over the prompt's digest (`assertion`
        given: that one; `options`: assertion()'s, to make it wrong; `send_assertion=False`: none)."""
        prompt = await self.show(approval_id)
        digest = ApprovalRequest.model_validate(prompt["request"]).digest()
        if digest != prompt["digest"]:
            raise AppError(0, {"detail": "the prompt does not match its digest"})
        signed = sign_decision(self._unlock()[0], device_id=self.profile.device_id, approval_id=approval_id,
                               digest=digest, decision=decision, uv="passkey")
        body: dict[str, Any] = {"decision": signed}
        if send_assertion:
            body["passkey"] = assertion or self.authenticator.assertion(base64url.decode(digest), **options)
        return await self._as_device("POST", f"/v1/approvals/{approval_id}/decision", json=body)

    async def start_pairing_with_passkey(self, device_name: str = "new web phone", **options: Any) -> dict[str, Any]:
        """On the new phone: a pairing with `user_verification: passkey` and the registration over the nonce."""
        key, proof, nonce = await self.fresh_nonce_and_proof()
        started = await self._call("POST", "/v1/devices/pairings", json={
            "public_key": public_jwk(key), "device_name": device_name, "proof": proof,
            "key_protection": {"storage": "software", "user_verification": "passkey"},
            "passkey": self.authenticator.register(nonce.encode(), **options)})
        self.profile.device_name = device_name
        self._keep_key(key, None)
        self.profile.pairing_id = started["pairing_id"]
        self.profile.account_id = self.profile.device_id = None
        self._save()
        return started

    async def open_login_link(self, link: str, decision: str = "approve", **options: Any) -> dict[str, Any]:
        """A login link (scanned or tapped) opened, and its prompt decided with the passkey (decide_with_passkey's
        options)."""
        prompt = await self._as_device("POST", "/v1/approvals/links", json={"link": link})
        return {"prompt": prompt, **await self.decide_with_passkey(prompt["approval_id"], decision, **options)}
