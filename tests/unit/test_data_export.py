"""libs/data_export.py: a service's part of the citizen's export — JSON-safe, signed, audited without its content."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import jwt
import pytest

from libs.clock import FrozenClock
from libs.data_export import TYP, plain, signed_part, without
from libs.tokens import generate_private_key


def test_stored_documents_become_json():
    at = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)
    assert plain({"at": at, "raw": b"\xff\x00", "ids": ("a", 1), "nested": {"n": None, "ok": True}}) == {
        "at": "2026-12-02T05:30:00+00:00", "raw": "_wA", "ids": ["a", 1], "nested": {"n": None, "ok": True}}
    assert without({"_id": 1, "code_hash": "x", "name": "phone"}, "code_hash") == {"_id": 1, "name": "phone"}
    assert without(None, "x") is None


class FakeService:
    """Only what signed_part uses of a ServiceContext: settings.issuer, clock, transaction and audit."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(issuer="https://id.example")
        self.clock = FrozenClock(datetime(2026, 12, 2, 5, 30, tzinfo=UTC))
        self.audits: list[dict] = []

    async def transaction(self, work):
        return await work("session")

    async def audit(self, session, **record):
        self.audits.append(record)


class Keys:
    def __init__(self) -> None:
        self.key = SimpleNamespace(kid="k1", private_key=generate_private_key())

    async def current(self):
        return self.key


def test_a_part_is_a_typed_jws_without_exp_or_aud_and_its_audit_holds_no_data():
    service, keys = FakeService(), Keys()
    device = SimpleNamespace(account_id="acc-1", device_id="dev-1")
    part = asyncio.run(signed_part(service, keys, "notify", device, {"inbox": [{"body": "secret text"}]}, inbox_items=1))

    assert part.service == "notify" and part.jwks_uri == "https://id.example/v1/notifications/jwks"
    header = jwt.get_unverified_header(part.jws)
    assert header == {"alg": "ES256", "kid": "k1", "typ": TYP}
    claims = jwt.decode(part.jws, keys.key.private_key.public_key(), algorithms=["ES256"])
    assert claims["sub"] == "acc-1" and claims["iss"] == "https://id.example" and claims["service"] == "notify"
    assert claims["data"] == {"inbox": [{"body": "secret text"}]} and "exp" not in claims and "aud" not in claims
    # An OIDC library checking an ID token (audience required) refuses it.
    with pytest.raises(jwt.MissingRequiredClaimError):
        jwt.decode(part.jws, keys.key.private_key.public_key(), algorithms=["ES256"], audience="some-client")

    [audit] = service.audits
    assert audit == {"subject": "acc-1", "action": "data.export", "actor": "dev-1", "part": "notify",
                     "export_id": claims["jti"], "inbox_items": 1}
    assert "secret text" not in repr(audit)
