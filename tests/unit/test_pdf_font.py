"""The platform's PDF font (libs/pdf_font.py): checked at start, read as one face, cut down to what a stamp prints."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fontTools.ttLib import TTFont

from libs.pdf_font import DEFAULT_PDF_FONT, checked_font, font_face, stamp_face
from libs.service.settings import SettingsError
from services.signing.settings import SigningSettings


def test_the_default_font_is_installed_and_covers_latin_and_chinese():
    assert checked_font(DEFAULT_PDF_FONT) == DEFAULT_PDF_FONT
    cmap = TTFont(io.BytesIO(font_face(DEFAULT_PDF_FONT)), lazy=True).getBestCmap()
    # Traditional (and Hong Kong) and Simplified characters, and the stamp's Latin wording.
    assert all(ord(char) in cmap for char in "陳大文彌敦道邨栢陈广东Signed with Harbour ID 0123456789:-")


def test_a_missing_or_wrong_font_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match=r"HARBOUR_PDF_FONT: no readable font at .*nowhere.ttf .*apt-get install fonts-wqy-microhei"):
        checked_font(str(tmp_path / "nowhere.ttf"))
    text = tmp_path / "notes.ttf"
    text.write_text("not a font")
    with pytest.raises(SettingsError, match="is not a TrueType or OpenType font"):
        checked_font(str(text))


def test_signing_refuses_to_start_without_its_font(monkeypatch, tmp_path):
    monkeypatch.setenv("HARBOUR_SANDBOX", "true")
    monkeypatch.setenv("HARBOUR_SIGNING_KEK", "k1:" + base64.urlsafe_b64encode(bytes(32)).decode().rstrip("="))
    monkeypatch.setenv("HARBOUR_SIGNING_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
    monkeypatch.setenv("HARBOUR_SIGNING_HSM_PIN", "1234")
    monkeypatch.setenv("HARBOUR_AUTH_SEALING_PUBLIC_JWK", json.dumps({"kty": "EC"}))
    assert SigningSettings.from_env().pdf_font == DEFAULT_PDF_FONT
    monkeypatch.setenv("HARBOUR_PDF_FONT", str(tmp_path / "gone.ttc"))
    with pytest.raises(SettingsError, match="HARBOUR_PDF_FONT: no readable font"):
        SigningSettings.from_env()


def test_a_stamp_face_holds_only_the_glyphs_it_prints():
    face = TTFont(io.BytesIO(stamp_face(DEFAULT_PDF_FONT, "陳大文")))
    cmap = face.getBestCmap()
    assert {ord(c) for c in "陳大文Signed with Harbour ID2026-12-02 07:49:11 UTC"} <= set(cmap)
    assert ord("彌") not in cmap and len(face.getGlyphOrder()) < 200  # of the font's 30,000 glyphs
    # pyHanko writes advance widths into the PDF unscaled, and PDF reads them in thousandths of an em.
    assert face["head"].unitsPerEm == 1000 and face["hmtx"][face.getBestCmap()[ord("陳")]][0] <= 1000
