"""The demo site's pure parts: the application's checks, its PDF, and language choice."""

from __future__ import annotations

import pytest

from clients.relying_party.application import Application, InvalidApplication
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


def test_text_outside_latin_1_does_not_break_the_pdf():
    assert Application.from_form({**GOOD, "address": "香港灣仔港灣道8號 Flat 12A"}).to_pdf().startswith(b"%PDF-")


def test_language_choice_and_complete_translations():
    assert pick_language("zh-HK", "en") == "zh-HK"
    assert pick_language(None, "zh-TW,zh;q=0.9") == "zh-HK"
    assert pick_language("fr", "fr-FR, en;q=0.5") == "en"
    assert MESSAGES["en"].keys() == MESSAGES["zh-HK"].keys()
