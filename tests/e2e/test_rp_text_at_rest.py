"""A relying party's free text is encrypted at rest in signing and formfill (issue 14, item 15).

Document names and purposes describe a citizen's business: personal data. signing's
requests and formfill's requests and consent receipts store them only encrypted
(per-record data keys under the KEK ring); the agency events no longer repeat them.
Yet the phone shows them, the relying party's status answers carry them, the
citizen's receipts list the purpose, and the signed PDF carries the purpose as its
reason. (auth's prompt queue, the outboxes' prompts and approvals.requested are
covered by test_prompt_privacy.py.)
"""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from pyhanko.pdf_utils.reader import PdfFileReader

from ..support import formfill, signing
from ..support.calls import device_auth
from ..support.citizens import enrolled_app
from ..support.database import all_documents, mongo
from ..support.oidc import logged_in_token

pytestmark = pytest.mark.e2e


async def test_document_names_and_purposes_are_encrypted_at_rest_yet_shown(platform, kiosk, metadata, tmp_path):
    marker = uuid.uuid4().hex[:12]
    purpose = f"Renew the mooring permit of the Jade Heron {marker}"
    sign_purpose = f"Consent to the berth transfer {marker}"
    document_name = f"chan-berth-transfer-{marker}.pdf"
    needles = [purpose.encode(), sign_purpose.encode(), document_name.encode(), marker.encode()]
    app = await enrolled_app(platform, kiosk, tmp_path, "at-rest-phone")

    formfill_rp, _ = formfill.rp_with_key(platform)
    ff_token = await logged_in_token(metadata, formfill_rp, app, "openid formfill")
    ff_request = await formfill.created(platform, ff_token, [("name_en", True)], purpose=purpose)
    sign_rp = signing.signing_rp(platform, "Harbour Berths Office")
    sg_token = await logged_in_token(metadata, sign_rp, app, "openid sign")
    sg_request = await signing.create(platform, sg_token, data=signing.application_pdf(f"Berth transfer {uuid.uuid4().hex}"),
                                      params={"document_name": document_name, "purpose": sign_purpose},
                                      headers={"Content-Type": signing.PDF})

    # The phone shows both texts, and approving works (each service recomputes the digest from what it stored).
    ff_prompt = await formfill.prompt_for(app, ff_request["request_id"], timeout_s=30)
    sg_prompt = await signing.prompt_for(app, sg_request["request_id"])
    assert ff_prompt["purpose"] == purpose
    assert sg_prompt["details"]["document_name"] == document_name and sg_prompt["purpose"] == sign_purpose
    await app.approve(ff_prompt["approval_id"], selection=[])
    await app.approve(sg_prompt["approval_id"])

    # The relying parties' answers and the citizen's receipt still carry them; the signed PDF's reason too.
    assert (await formfill.wait_for_status(platform, ff_token, ff_request["request_id"], "approved"))["purpose"] == purpose
    assert formfill.status_of(platform, ff_token, ff_request["request_id"])["purpose"] == purpose
    assert (await signing.wait_for(platform, sg_token, sg_request["request_id"], "signed"))["document_name"] == document_name
    receipts = requests.get(platform.gateway + "/v1/consents", timeout=10,
                            headers=device_auth(app, await app.device_token(), "GET", platform.gateway + "/v1/consents")).json()["consents"]
    assert [c["purpose"] for c in receipts if c["request_id"] == ff_request["request_id"]] == [purpose]
    signed = signing.result_of(platform, sg_token, sg_request["request_id"])
    assert signed.status_code == 200
    [signature] = [s for s in PdfFileReader(io.BytesIO(signed.content)).embedded_regular_signatures]
    assert signature.sig_object["/Reason"] == sign_purpose

    # Read straight from MongoDB: no collection of signing or formfill (requests, consents, results, outboxes...)
    # holds any of the texts in the clear.
    async with mongo(platform.infra.mongo_uri) as client:
        stored = {service: await all_documents(client, platform.database(service)) for service in ("signing", "formfill")}
        request_docs = {"signing": await client[platform.database("signing")].requests.find_one({"_id": sg_request["request_id"]}),
                        "formfill": await client[platform.database("formfill")].requests.find_one({"_id": ff_request["request_id"]})}
    for service, raws in stored.items():
        assert raws
        for raw in raws:
            assert not any(needle in raw for needle in needles), f"a relying party's free text in the clear in {service}'s database"
    assert all(request_docs.values()) and all("text" in doc for doc in request_docs.values())  # stored, encrypted

