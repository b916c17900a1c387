"""Text a relying party supplies and the citizen reads refuses control and format characters (issue 14, item 12).

A right-to-left override makes "invoice-\u202efdp.exe" show as "invoice-exe.pdf". Every such field,
sent through the gateway with one, is refused (422 problem+json; the CIBA endpoint answers an OAuth
error) and nothing is stored; the same request without it goes through.
"""

from __future__ import annotations

import hashlib

import pytest
import requests


from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.oidc import claims_of, login, register, token_request
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE, Unicode category Cf
SPOOFED = f"invoice-{RLO}fdp.exe"


async def count(platform, service: str, collection: str) -> int:
    async with mongo(platform.infra.mongo_uri) as client:
        return await client[platform.database(service)][collection].count_documents({})


class Refusals:
    """Every field is checked, and every one that was not refused is reported (not just the first)."""

    def __init__(self) -> None:
        self.missed: list[str] = []

    def __call__(self, response: requests.Response, field: str) -> None:
        ok = (response.status_code == 422 and response.headers["Content-Type"].startswith("application/problem+json")
              and field in {e["field"] for e in response.json().get("errors", [])}
              and RLO not in response.text)  # the offending value is not echoed
        if not ok:
            self.missed.append(f"{field}: {response.status_code} {response.text[:200]}")

    def unchanged(self, what: str, now: int, before: int) -> None:
        if now != before:
            self.missed.append(f"{what}: {now - before} stored")


def accepted_eventually(send):
    """The valid twin of a refused request, retried while the service has not heard of the client yet (409) or, at
    notify, of the citizen's sub there (422 unknown-recipient: the login's identity.subject_assigned is still on its
    way through the broker, which on a loaded machine can take longer than the steps before)."""
    async def attempt():
        response = send()
        if response.status_code == 409 or (
                response.status_code == 422 and response.json().get("type", "").endswith("/unknown-recipient")):
            return None
        assert response.status_code in (200, 201, 202), response.text
        return [response]
    return eventually(attempt, timeout_s=30)


async def test_display_text_with_format_characters_is_refused_everywhere_it_enters(platform, kiosk, metadata, tmp_path):
    gateway = platform.gateway
    refused = Refusals()
    # Client registration: the name shown on the login page and the phone.
    clients_before = await count(platform, "auth", "clients")
    refused(requests.post(gateway + "/v1/clients", json={"client_name": f"Harbour {RLO}eciffO xaT", "redirect_uris": [],
                                                         "kind": "agency", "scope": "notify"}, timeout=10), "client_name")
    refused.unchanged("auth clients", await count(platform, "auth", "clients"), clients_before)

    rp = register(platform, client_name="Harbour Display Office", scope="openid formfill sign notify", formfill_fields=["name_en"])
    citizen = await enrolled_app(platform, kiosk, tmp_path, "display-phone")
    sub = claims_of((await login(platform, metadata, rp, citizen))[0]["id_token"])["sub"]
    granted = token_request(metadata, rp, grant_type="client_credentials", scope="formfill sign notify")
    assert granted.status_code == 200, granted.text
    bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}

    def post(path: str, body: dict) -> requests.Response:
        return requests.post(gateway + path, json=body, headers=bearer, timeout=30)

    # Form fill: the purpose.
    ask = {"fields": [{"name": "name_en", "required": True}], "purpose": "Open a water account"}
    await accepted_eventually(lambda: post("/v1/formfill/requests", ask))
    before = await count(platform, "formfill", "requests")
    refused(post("/v1/formfill/requests", {**ask, "purpose": f"Open a {RLO}tnuocca retaw"}), "purpose")
    refused.unchanged("formfill requests", await count(platform, "formfill", "requests"), before)

    # Signing: the document name and the purpose, in JSON and in the query of a PDF upload.
    sign = {"document_name": "invoice.pdf", "sha256": hashlib.sha256(b"invoice").hexdigest()}
    await accepted_eventually(lambda: post("/v1/signing/requests", sign))
    before = await count(platform, "signing", "requests")
    refused(post("/v1/signing/requests", {**sign, "document_name": SPOOFED}), "document_name")
    refused(post("/v1/signing/requests", {**sign, "purpose": f"Pay {RLO}0001 DKH"}), "purpose")
    refused(post("/v1/signing/requests", {**sign, "document_name": "invoice\u200b.pdf"}), "document_name")  # zero-width space
    upload = requests.post(gateway + "/v1/signing/requests", params={"document_name": SPOOFED}, data=b"%PDF-1.7\n",
                           headers={**bearer, "Content-Type": "application/pdf"}, timeout=30)
    refused(upload, "document_name")
    refused.unchanged("signing requests", await count(platform, "signing", "requests"), before)

    # Notifications: a template's subject and body, and the values rendered into a message.
    template = {"name": "Bill", "placeholders": ["amount"],
                "content": {"en": {"subject": "Your bill", "body": "Dear citizen,\nyou owe {{ amount }}."}}}
    made = post("/v1/templates", template)
    assert made.status_code == 201, made.text  # line breaks are fine in a body
    before = await count(platform, "notify", "templates")
    refused(post("/v1/templates", {**template, "content": {"en": {"subject": f"Your {RLO}llib", "body": "x"}}}), "content/en/subject")
    refused(post("/v1/templates", {**template, "content": {"en": {"subject": "Your bill", "body": f"Pay {RLO}{{{{ amount }}}}"}}}),
            "content/en/body")
    # An escape in an expression passes the source check but would render the override: refused at creation.
    escaped = post("/v1/templates", {**template, "content": {"en": {"subject": "Your bill", "body": 'Pay {{ "\\u202e" }}{{ amount }}'}}})
    assert escaped.status_code == 400 and escaped.json()["type"].endswith("template-render"), escaped.text
    refused.unchanged("notify templates", await count(platform, "notify", "templates"), before)
    send = {"template_id": made.json()["template_id"], "sub": sub, "personalisation": {"amount": "HK$ 100"}}
    await accepted_eventually(lambda: post("/v1/notifications", send))
    before = await count(platform, "notify", "notifications")
    refused(post("/v1/notifications", {**send, "personalisation": {"amount": f"HK$ {RLO}001"}}), "personalisation/amount")
    refused.unchanged("notify notifications", await count(platform, "notify", "notifications"), before)

    # CIBA: the binding message (an OAuth endpoint: an OAuth error, CIBA Core §13 invalid_binding_message).
    auth = (rp["client_id"], rp["client_secret"])
    before = await count(platform, "auth", "authorizations")
    ciba = requests.post(metadata["backchannel_authentication_endpoint"],
                         data={"scope": "openid", "login_hint": sub, "binding_message": f"Call {RLO}1284"}, auth=auth, timeout=10)
    if not (ciba.status_code == 400 and ciba.json().get("error") == "invalid_binding_message" and RLO not in ciba.text):
        refused.missed.append(f"binding_message: {ciba.status_code} {ciba.text[:200]}")
    assert not refused.missed, "accepted: " + "; ".join(refused.missed)
    assert await count(platform, "auth", "authorizations") == before
    assert not [p for p in await citizen.pending() if "binding_message" in p.get("details", {})]
    ok = requests.post(metadata["backchannel_authentication_endpoint"],
                       data={"scope": "openid", "login_hint": sub, "binding_message": "Call 4821"}, auth=auth, timeout=10)
    assert ok.status_code == 200, ok.text
