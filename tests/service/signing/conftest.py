"""signing in process (tests/service/conftest.py), on SoftHSM, with auth played by the test (tests/support/auth_stand_in.py).

The clock is frozen at the real time the test starts: signatures are
verified against certificates, timestamps and CRLs stamped by that clock,
and pyHanko's validation looks at the real one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from libs.clock import FrozenClock
from services.signing.api import SIGNING
from services.signing.events import handler
from tests.support.auth_stand_in import Citizen, RelyingParty, ServiceUnderTest, auth_stand_in, enrolled, new_account_id
from tests.support.signing import application_pdf

pytestmark = pytest.mark.service
__all__ = ["auth_stand_in"]  # a fixture

CONTRACT = b"the water supply contract, version 3"
CONTRACT_SHA256 = hashlib.sha256(CONTRACT).hexdigest()


class SigningUnderTest(ServiceUnderTest):
    name = "signing"
    app_key = SIGNING
    handler = handler
    scope = "sign"
    approval_prefix = "sign"

    async def citizen(self, rp: RelyingParty, *, assurance: str = "plus", state: str = "active") -> Citizen:
        return await self.known_citizen(rp, enrolled(new_account_id(), assurance=assurance, state=state))

    async def ask(self, rp: RelyingParty, *, sub: str | None = None, document_name: str = "Water contract",
                  sha256: str = CONTRACT_SHA256, purpose: str | None = None):
        """A hash to sign (JSON) → a detached CMS."""
        body: dict[str, Any] = {"document_name": document_name, "sha256": sha256}
        if purpose is not None:
            body["purpose"] = purpose
        return await self.http.post("/v1/signing/requests", json=body, headers=self.rp_token(rp, sub=sub))

    async def ask_pdf(self, rp: RelyingParty, pdf: bytes | None = None, *, sub: str | None = None,
                      document_name: str = "Berth application"):
        """A PDF to sign (application/pdf, its name in the query) → the PDF signed (PAdES)."""
        return await self.http.post("/v1/signing/requests", data=pdf if pdf is not None else application_pdf(),
                                    params={"document_name": document_name},
                                    headers={**self.rp_token(rp, sub=sub), "Content-Type": "application/pdf"})

    async def status(self, rp: RelyingParty, request_id: str):
        return await self.http.get(f"/v1/signing/requests/{request_id}", headers=self.rp_token(rp))

    async def result(self, rp: RelyingParty, request_id: str):
        return await self.http.get(f"/v1/signing/requests/{request_id}/result", headers=self.rp_token(rp))


@pytest.fixture
def now_clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
async def signing(start_service, auth_stand_in, service_secrets, now_clock) -> SigningUnderTest:
    return await SigningUnderTest.start(start_service, auth_stand_in, now_clock, service_secrets,
                                        SIGNING_REQUEST_TTL_S="300", SIGNING_RESULT_TTL_S="1800")


async def problem(response) -> dict[str, Any]:
    assert response.content_type == "application/problem+json", (response.status, await response.text())
    return await response.json()
