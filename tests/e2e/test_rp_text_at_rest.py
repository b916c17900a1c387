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

from libs.store import create_client

from ..integration.eventing import eventually
from .citizens import all_documents
from .test_formfill import created, rp_with_key, status_of, wait_for_status
from .test_formfill import logged_in_token as formfill_token
from .test_signing import PDF, application_pdf, bearer, create, plus_citizen, prompt_for, result_of, signing_rp, wait_for
from .test_signing import logged_in_token as signing_token

pytestmark = pytest.mark.e2e


async def test_document_names_and_purposes_are_encrypted_at_rest_yet_shown(platform, kiosk, metadata, tmp_path):
    marker = uuid.uuid4().hex[:12]
    purpose = f"Renew the mooring permit of the Jade Heron {marker}"
    sign_purpose = f"Consent to the berth transfer {marker}"
    document_name = f"chan-berth-transfer-{marker}.pdf"
    needles = [purpose.encode(), sign_purpose.encode(), document_name.encode(), marker.encode()]
    app = await plus_citizen(platform, kiosk, tmp_path, "at-rest-phone")

    formfill_rp, _ = rp_with_key(platform)
    ff_token = await formfill_token(platform, metadata, formfill_rp, app)
    ff_request = await created(platform, ff_token, [("name_en", True)], purpose=purpose)
    sign_rp = signing_rp(platform, "Harbour Berths Office")
    sg_token = await signing_token(metadata, sign_rp, app)
    sg_request = await create(platform, sg_token, data=application_pdf(f"Berth transfer {uuid.uuid4().hex}"),
                              params={"document_name": document_name, "purpose": sign_purpose}, headers={"Content-Type": PDF})

    # The phone shows both texts, and approving works (each service recomputes the digest from what it stored).
    ff_prompt = await eventually(
        lambda: _pending(app, f"formfill-{ff_request['request_id']}"), timeout_s=30)
    sg_prompt = await prompt_for(app, sg_request["request_id"])
    assert ff_prompt["purpose"] == purpose
    assert sg_prompt["details"]["document_name"] == document_name and sg_prompt["purpose"] == sign_purpose
    await app.approve(ff_prompt["approval_id"], selection=[])
    await app.approve(sg_prompt["approval_id"])

    # The relying parties' answers and the citizen's receipt still carry them; the signed PDF's reason too.
    assert (await wait_for_status(platform, ff_token, ff_request["request_id"], "approved"))["purpose"] == purpose
    assert status_of(platform, ff_token, ff_request["request_id"])["purpose"] == purpose
    assert (await wait_for(platform, sg_token, sg_request["request_id"], "signed"))["document_name"] == document_name
    receipts = requests.get(platform.gateway + "/v1/consents", headers=bearer(await app.device_token()), timeout=10).json()["consents"]
    assert [c["purpose"] for c in receipts if c["request_id"] == ff_request["request_id"]] == [purpose]
    signed = result_of(platform, sg_token, sg_request["request_id"])
    assert signed.status_code == 200
    [signature] = [s for s in PdfFileReader(io.BytesIO(signed.content)).embedded_regular_signatures]
    assert signature.sig_object["/Reason"] == sign_purpose

    # Read straight from MongoDB: no collection of signing or formfill (requests, consents, results, outboxes...)
    # holds any of the texts in the clear.
    client = create_client(platform.infra.mongo_uri)
    try:
        stored = {service: await all_documents(client, platform.database(service)) for service in ("signing", "formfill")}
        request_docs = {"signing": await client[platform.database("signing")].requests.find_one({"_id": sg_request["request_id"]}),
                        "formfill": await client[platform.database("formfill")].requests.find_one({"_id": ff_request["request_id"]})}
    finally:
        await client.close()
    for service, raws in stored.items():
        assert raws
        for raw in raws:
            assert not any(needle in raw for needle in needles), f"a relying party's free text in the clear in {service}'s database"
    assert all(request_docs.values()) and all("text" in doc for doc in request_docs.values())  # stored, encrypted


async def _pending(app, approval_id: str):
    return next((p for p in await app.pending() if p["approval_id"] == approval_id), None)
