"""The demo site's pure parts: the application's checks, its PDF, and language choice."""

from __future__ import annotations

import json
import subprocess

import pytest

from clients.relying_party.application import SIGNATURE_BOX, Application, InvalidApplication
from clients.relying_party.config import SiteConfig
from libs.service.settings import SettingsError
from clients.relying_party.messages import MESSAGES, pick_language

GOOD = {"name": "CHAN Tai Man", "address": "Flat 12A, 8 Harbour Road, Wan Chai", "phone": "+85291234567",
        "email": "chan@example.hk", "plan": "green"}


def test_a_good_application_becomes_a_pdf_carrying_its_reference():
    application = Application.from_form(GOOD)
    assert application.reference.startswith("HP-") and application.name == "CHAN Tai Man"
    pdf = application.to_pdf()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert f"/Title (Application {application.reference})".encode() in pdf


@pytest.mark.parametrize("field,value", [("name", ""), ("address", "x"), ("phone", "call me"), ("email", "not-an-email"),
                                         ("plan", "free")])
def test_each_bad_field_is_named(field, value):
    with pytest.raises(InvalidApplication) as refused:
        Application.from_form({**GOOD, field: value})
    assert set(refused.value.problems) == {field}


def test_a_chinese_name_and_address_print_as_typed():
    """The PDF is written in the platform's CJK font (HARBOUR_PDF_FONT), embedded: poppler extracts exactly what was typed
    (the core PDF fonts printed '?' for every character outside Latin-1)."""
    typed = {**GOOD, "name": "陳大文", "address": "香港九龍彌敦道123號 美孚新邨 Flat 12A"}
    pdf = Application.from_form(typed).to_pdf()
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True, timeout=30).stdout.decode()
    assert typed["name"] in text and typed["address"] in text and "Applicant's signature" in text, text
    fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True, timeout=30).stdout.decode()
    assert "WenQuanYi" in fonts and " yes yes yes " in fonts, fonts  # embedded, subset, with a ToUnicode map


def test_the_signature_box_is_on_the_a4_page_below_the_text():
    x1, y1, x2, y2 = SIGNATURE_BOX
    assert 0 < x1 < x2 <= 595.28 and 0 < y1 < y2 <= 841.89 and x2 - x1 >= 72 and y2 - y1 >= 24


def test_a_missing_font_stops_the_site_at_start(monkeypatch, tmp_path):
    seed = tmp_path / "seed.json"
    key = tmp_path / "key.pem"
    key.write_text("unused")
    seed.write_text(json.dumps({"gateway": "http://127.0.0.1:8000", "clients": {"utility": {
        "client_id": "c", "private_key_file": str(key), "key_id": "k"}}}))
    monkeypatch.setenv("HARBOUR_PDF_FONT", str(tmp_path / "missing.ttf"))
    with pytest.raises(SettingsError, match="HARBOUR_PDF_FONT: no readable font at .*missing.ttf.*fonts-wqy-microhei"):
        SiteConfig.from_seed(seed, "http://127.0.0.1:8010")


def test_language_choice_and_complete_translations():
    assert pick_language("zh-HK", "en") == "zh-HK"
    assert pick_language(None, "zh-TW,zh;q=0.9") == "zh-HK"
    assert pick_language("fr", "fr-FR, en;q=0.5") == "en"
    assert MESSAGES["en"].keys() == MESSAGES["zh-HK"].keys()
