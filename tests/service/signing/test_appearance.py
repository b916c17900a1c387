"""A visible signature (issue 19): the relying party asks for a stamp on a page, in a box; the citizen approves the
page and the name it shows; the signed PDF prints that name (Chinese too), "Signed with Harbour ID" and the time, in
the platform's CJK font, embedded. A page or box that does not fit the PDF is refused before anything is stored."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pytest
from aiohttp import FormData
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.support.signing import application_pdf

from .conftest import problem

STAMP = {"page": 1, "box": [50, 60, 260, 125], "name": "陳大文"}


async def ask(signing, rp, sub, pdf: bytes, appearance) -> object:
    params = {"document_name": "Berth application"}
    if appearance is not None:
        params["appearance"] = appearance if isinstance(appearance, str) else json.dumps(appearance)
    return await signing.http.post("/v1/signing/requests", data=pdf, params=params,
                                   headers={**signing.rp_token(rp, sub=sub), "Content-Type": "application/pdf"})


async def signed(signing, pdf: bytes, appearance) -> tuple[bytes, object]:
    """`pdf` signed by a new citizen, with `appearance` (or none); the signed PDF and the prompt the citizen approved."""
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    answer = await ask(signing, rp, citizen.sub, pdf, appearance)
    assert answer.status == 201, await answer.text()
    request_id = (await answer.json())["request_id"]
    prompt = await signing.prompt(request_id)
    await signing.learn(citizen.phone.decided(prompt))
    result = await signing.result(rp, request_id)
    assert result.status == 200, await result.text()
    return await result.read(), prompt


def page_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=30).stdout.decode()


def rects(pdf: bytes) -> list[list[float]]:
    """Each /Sig signature field's widget rectangle, in order."""
    signatures = [s for s in PdfFileReader(io.BytesIO(pdf)).embedded_signatures if s.sig_object_type == "/Sig"]
    return [[float(v) for v in s.sig_field["/Rect"]] for s in signatures]


def stamp_fonts(pdf: bytes) -> list[dict]:
    """The fonts of each signature widget's normal appearance: base name, subtype, and whether the file is embedded."""
    found = []
    for s in PdfFileReader(io.BytesIO(pdf)).embedded_signatures:
        appearance = s.sig_field.get("/AP")
        if appearance is None:
            continue
        fonts = appearance["/N"]["/Resources"].get("/Font") or {}
        for font in fonts.values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else {}
            descriptor = descendant.get("/FontDescriptor")
            widths = [w for entry in descendant.get("/W", []) if isinstance(entry, list) for w in entry]
            found.append({"name": str(font["/BaseFont"]), "subtype": str(font["/Subtype"]), "widest": max(widths, default=0),
                          "embedded": descriptor is not None and "/FontFile2" in descriptor.get_object()})
    return found


async def test_a_visible_signature_shows_the_approved_chinese_name_and_still_verifies(signing):
    pdf = application_pdf("Application for a harbour berth")
    result, prompt = await signed(signing, pdf, STAMP)

    # The citizen approved the page and the name the stamp shows: both are in the prompt their device signed.
    assert (prompt.details["stamp_page"], prompt.details["stamp_name"]) == (1, "陳大文")
    text = page_text(result)
    assert "陳大文" in text and "Signed with Harbour ID" in text, text
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text), text  # the signing time
    assert rects(result) == [[50.0, 60.0, 260.0, 125.0]]
    [font] = stamp_fonts(result)
    assert font["subtype"] == "/Type0" and font["embedded"] and "WenQuanYi" in font["name"], font
    assert 500 <= font["widest"] <= 1000, font  # glyph widths in thousandths of an em (a Han glyph is one em wide)

    verdict = await (await signing.http.post("/v1/signing/verify", data=result, headers={"Content-Type": "application/pdf"})).json()
    assert verdict["valid"], verdict
    [ours] = [s for s in verdict["signatures"] if s["type"] == "signature"]
    shown = ours["sole_control"]["prompt"]["details"]
    assert shown["stamp_page"] == 1 and "stamp_name" not in shown  # the report carries no free text


async def test_without_an_appearance_the_signature_stays_invisible(signing):
    result, prompt = await signed(signing, application_pdf(), None)
    assert "stamp_page" not in prompt.details
    assert rects(result) == [[0.0, 0.0, 0.0, 0.0]]
    assert "Signed with Harbour ID" not in page_text(result) and stamp_fonts(result) == []


async def test_without_a_name_the_stamp_shows_the_certificate_name(signing):
    result, prompt = await signed(signing, application_pdf(), {"page": 1, "box": [300, 700, 560, 780]})
    assert "stamp_name" not in prompt.details
    assert "Harbour ID citizen" in page_text(result)


async def test_a_countersignature_gets_its_own_stamp_in_another_box(signing):
    first, _ = await signed(signing, application_pdf("Lease of berth 7"), STAMP)
    second, _ = await signed(signing, first, {"page": 1, "box": [300, 60, 540, 125], "name": "李小龍 Bruce Lee"})

    assert second.startswith(first)  # an incremental update: the first signature's bytes untouched
    assert rects(second) == [[50.0, 60.0, 260.0, 125.0], [300.0, 60.0, 540.0, 125.0]]
    text = page_text(second)
    assert "陳大文" in text and "李小龍 Bruce Lee" in text and text.count("Signed with Harbour ID") == 2, text
    verdict = await (await signing.http.post("/v1/signing/verify", data=second, headers={"Content-Type": "application/pdf"})).json()
    assert verdict["valid"] and [s["type"] for s in verdict["signatures"]].count("signature") == 2, verdict


async def test_a_multipart_upload_carries_the_appearance_as_a_field(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    form = FormData()
    form.add_field("document_name", "Berth application")
    form.add_field("appearance", json.dumps(STAMP))
    form.add_field("document", application_pdf(), filename="berth.pdf", content_type="application/pdf")
    answer = await signing.http.post("/v1/signing/requests", data=form, headers=signing.rp_token(rp, sub=citizen.sub))
    assert answer.status == 201, await answer.text()
    prompt = await signing.prompt((await answer.json())["request_id"])
    assert (prompt.details["stamp_page"], prompt.details["stamp_name"]) == (1, "陳大文")
    # At rest the page and box are plain, the name only inside the request's encrypted free text.
    stored = await signing.ctx.db["requests"].find_one({})
    assert stored["appearance"] == {"page": 1, "box": [50.0, 60.0, 260.0, 125.0]}
    assert "stamp_name" not in stored and "陳大文" not in repr(stored)


# A4 (fpdf2's default): 595.28 x 841.89 points, one page.
@pytest.mark.parametrize("appearance, slug", [
    ({"page": 2, "box": [50, 60, 260, 125]}, "invalid-appearance"),          # the PDF has one page
    ({"page": 1, "box": [400, 60, 700, 125]}, "invalid-appearance"),         # past the right edge
    ({"page": 1, "box": [50, 800, 260, 900]}, "invalid-appearance"),         # past the top
    ({"page": 1, "box": [-10, 60, 200, 125]}, "invalid-appearance"),         # left of the page
    ({"page": 1, "box": [50, 60, 60, 125]}, "validation-failed"),            # too narrow for the stamp
    ({"page": 1, "box": [260, 125, 50, 60]}, "validation-failed"),           # corners swapped
    ({"page": 0, "box": [50, 60, 260, 125]}, "validation-failed"),           # pages count from 1
    ({"page": 1, "box": [50, 60, 260]}, "validation-failed"),                # three numbers
    ({"page": 1, "box": [50, 60, 260, 125], "colour": "red"}, "validation-failed"),
    ({"page": 1, "box": [50, 60, 260, 125], "name": "a\u202eb"}, "validation-failed"),  # a bidi override
    ('{"page": 1, "box": [50, 60, Infinity, 125]}', "validation-failed"),
    ("not json", "validation-failed"),
])
async def test_an_appearance_that_does_not_fit_is_refused_and_nothing_is_stored(signing, appearance, slug):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    answer = await ask(signing, rp, citizen.sub, application_pdf(), appearance)
    assert answer.status == 422, await answer.text()
    assert (await problem(answer))["type"].endswith(f"/{slug}")
    assert await signing.ctx.db["requests"].count_documents({}) == 0
    assert await signing.ctx.db["documents"].count_documents({}) == 0


async def test_an_appearance_is_refused_for_a_hash(signing):
    rp = await signing.relying_party()
    answer = await signing.http.post("/v1/signing/requests", params={"appearance": json.dumps(STAMP)},
                                     json={"document_name": "Water contract", "sha256": "ab" * 32}, headers=signing.rp_token(rp))
    assert answer.status == 422 and (await problem(answer))["type"].endswith("/validation-failed")
    assert await signing.ctx.db["requests"].count_documents({}) == 0
