"""Visible signatures end to end through the gateway (issue 19): two citizens sign the demo site's application PDF,
each with a stamp in a box of their own; poppler extracts both Chinese names from the page and `pdfsig` (NSS, our
root only) still validates every signature. A box off the page is refused with 422 and nothing is stored."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from clients.relying_party.application import SIGNATURE_BOX, Application

from ..support.calls import bearer
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.oidc import logged_in_token
from ..support.signing import PDF, create, pdfsig, prompt_for, result_of, signing_rp, wait_for

pytestmark = pytest.mark.e2e
SCOPE = "openid sign"
APPLICANT = {"name": "陳大文", "address": "香港九龍彌敦道123號 美孚新邨 Flat 12A", "phone": "+85291234567",
             "email": "", "plan": "green"}
SECOND_BOX = [330.0, SIGNATURE_BOX[1], 540.0, SIGNATURE_BOX[3]]


async def signed_visibly(platform, metadata, rp, app, pdf: bytes, appearance: dict) -> bytes:
    token = await logged_in_token(metadata, rp, app, SCOPE)
    request = await create(platform, token, data=pdf, headers={"Content-Type": PDF},
                           params={"document_name": "electricity-application.pdf", "appearance": json.dumps(appearance)})
    prompt = await prompt_for(app, request["request_id"])
    assert (prompt["details"]["stamp_page"], prompt["details"]["stamp_name"]) == (1, appearance["name"])
    await app.approve(prompt["approval_id"])
    await wait_for(platform, token, request["request_id"], "signed")
    result = result_of(platform, token, request["request_id"])
    assert result.status_code == 200 and result.headers["Content-Type"] == PDF, result.text[:300]
    return result.content


def page_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True, timeout=30).stdout


async def test_two_visible_signatures_print_chinese_names_and_pdfsig_validates_both(platform, kiosk, metadata, trust, tmp_path):
    rp = signing_rp(platform, "Harbour Power & Light")
    first_app, second_app = [await enrolled_app(platform, kiosk, tmp_path, f"stamp-{who}") for who in "ab"]
    application = Application.from_form(APPLICANT).to_pdf()  # the demo site's PDF, in the platform's CJK font

    once = await signed_visibly(platform, metadata, rp, first_app, application,
                                {"page": 1, "box": SIGNATURE_BOX, "name": APPLICANT["name"]})
    twice = await signed_visibly(platform, metadata, rp, second_app, once, {"page": 1, "box": SECOND_BOX, "name": "李小龍"})
    assert twice.startswith(once) and once.startswith(application)
    path = tmp_path / "stamped.pdf"
    path.write_bytes(twice)

    text = page_text(path)
    # The application's own Chinese text, and each stamp: the approved name, the wording, the signing time.
    assert APPLICANT["name"] in text and APPLICANT["address"] in text, text
    assert "李小龍" in text and text.count("Signed with Harbour ID") == 2, text
    assert len(re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text)) == 2, text

    report = pdfsig(trust, path)
    blocks = [b for b in re.split(r"^Signature #\d+:", report, flags=re.M)[1:]
              if "Common Name: Harbour ID Timestamp Authority" not in b]
    assert len(blocks) == 2, report
    for block in blocks:
        assert "Signature Type: ETSI.CAdES.detached" in block and "Signature Validation: Signature is Valid." in block, block

    verdict = requests.post(platform.gateway + "/v1/signing/verify", data=twice, headers={"Content-Type": PDF}, timeout=60).json()
    assert verdict["valid"] and [s["type"] for s in verdict["signatures"]].count("signature") == 2, verdict


async def test_a_box_off_the_page_is_refused_through_the_gateway_and_nothing_is_stored(platform, kiosk, metadata, tmp_path):
    rp = signing_rp(platform, "Harbour Power & Light")
    app = await enrolled_app(platform, kiosk, tmp_path, "stamp-off-page")
    token = await logged_in_token(metadata, rp, app, SCOPE)
    for appearance, slug in (({"page": 1, "box": [400, 60, 700, 125], "name": "陳大文"}, "invalid-appearance"),
                             ({"page": 3, "box": SIGNATURE_BOX}, "invalid-appearance"),
                             ({"page": 1, "box": [50, 60, 55, 65]}, "validation-failed")):
        refused = requests.post(platform.gateway + "/v1/signing/requests", data=Application.from_form(APPLICANT).to_pdf(),
                                params={"document_name": "a.pdf", "appearance": json.dumps(appearance)},
                                headers={**bearer(token), "Content-Type": PDF}, timeout=30)
        assert refused.status_code == 422 and refused.headers["Content-Type"].startswith("application/problem+json"), refused.text
        assert refused.json()["type"].endswith(f"/{slug}"), refused.json()
    # Refused before anything was stored: signing holds no request of this client.
    async with mongo(platform.infra.mongo_uri) as client:
        assert await client[platform.database("signing")]["requests"].count_documents({"client_id": rp["client_id"]}) == 0
