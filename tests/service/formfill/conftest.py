"""formfill in process (tests/service/conftest.py), with auth played by the test (tests/support/auth_stand_in.py).

`formfill` starts the service on a FrozenClock and gives what the use cases
need: relying parties and citizens formfill has learnt of (their events
handed to its handler), their tokens, the prompts it published and the
phone that answers them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.formfill.api import FORMFILL
from services.formfill.events import handler
from tests.support.auth_stand_in import Citizen, RelyingParty, ServiceUnderTest, auth_stand_in, enrolled, new_account_id

pytestmark = pytest.mark.service
__all__ = ["auth_stand_in"]  # a fixture

FIELDS = ["name_en", "date_of_birth", "email", "phone", "address"]
PROFILE = {"id_number": "A123456(3)", "name_en": "CHAN, Tai Man", "name_zh": "陳大文", "date_of_birth": "1990-01-01",
           "gender": "M", "phone": "+85291234567", "email": "tai.man@example.hk", "address": "1 Harbour Road"}


class FormfillUnderTest(ServiceUnderTest):
    name = "formfill"
    app_key = FORMFILL
    handler = handler
    scope = "formfill"
    approval_prefix = "formfill"

    async def relying_party(self, *, fields: list[str] = FIELDS, encryption_jwk: dict | None = None, **metadata: Any) -> RelyingParty:
        return await super().relying_party(formfill_fields=fields, encryption_jwk=encryption_jwk, **metadata)

    async def citizen(self, rp: RelyingParty, *, profile: dict[str, Any] = PROFILE) -> Citizen:
        """A citizen enrolled with `profile` (sealed to formfill's key, as auth sends it), known at `rp`'s sector."""
        sealing_key = json.loads(self.secrets["HARBOUR_FORMFILL_SEALING_PUBLIC_JWK"])
        return await self.known_citizen(rp, enrolled(new_account_id(), profile=profile, sealed_to=sealing_key))

    async def ask(self, rp: RelyingParty, *, sub: str | None = None, fields: list[tuple[str, bool]] | None = None,
                  purpose: str = "Open a water account", standing: bool = False):
        wanted = fields if fields is not None else [("name_en", True), ("email", False)]
        body = {"fields": [{"name": n, "required": r} for n, r in wanted], "purpose": purpose, "standing": standing}
        return await self.http.post("/v1/formfill/requests", json=body, headers=self.rp_token(rp, sub=sub))

    async def status(self, rp: RelyingParty, request_id: str):
        return await self.http.get(f"/v1/formfill/requests/{request_id}", headers=self.rp_token(rp))

    async def result(self, rp: RelyingParty, request_id: str):
        return await self.http.get(f"/v1/formfill/requests/{request_id}/result", headers=self.rp_token(rp))


@pytest.fixture
async def formfill(start_service, auth_stand_in, service_secrets, clock) -> FormfillUnderTest:
    return await FormfillUnderTest.start(start_service, auth_stand_in, clock, service_secrets,
                                         FORMFILL_REQUEST_TTL_S="300", FORMFILL_RESULT_TTL_S="600")


async def problem(response) -> dict[str, Any]:
    assert response.content_type == "application/problem+json", (response.status, await response.text())
    return await response.json()
