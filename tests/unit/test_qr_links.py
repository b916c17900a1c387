"""The login links and the dynamic QR code's time code (services/auth/oidc/qr_links.py): pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.auth.oidc import qr_links
from services.auth.oidc.errors import QrCodeExpired, QrCodeForged, UnknownLink

ISSUER = "https://id.harbour.example"
KEY = qr_links.qr_key(b"k" * 32)
START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_the_key_is_derived_and_each_second_has_its_own_code():
    assert KEY != b"k" * 32 and len(KEY) == 32 and qr_links.qr_key(b"j" * 32) != KEY
    codes = {qr_links.time_code(KEY, "tx1", t) for t in range(100)}
    assert len(codes) == 100 and qr_links.time_code(KEY, "tx2", 0) not in codes
    assert all(len(code) == 22 for code in codes)  # 128 bits, base64url


def test_both_link_forms_parse_and_others_do_not():
    assert qr_links.parse("harbourid://authorize?tx=abc", ISSUER) == qr_links.LoginLink("abc")
    assert qr_links.parse(qr_links.app_link(ISSUER, "abc"), ISSUER) == qr_links.LoginLink("abc")
    link = qr_links.parse(qr_links.qr_link(ISSUER, KEY, "abc", 7), ISSUER)
    assert (link.tx, link.t, link.code, link.from_qr) == ("abc", 7, qr_links.time_code(KEY, "abc", 7), True)
    for other in ("https://elsewhere.example/app/authorize?tx=abc", f"{ISSUER}/app/other?tx=abc",
                  "http://id.harbour.example/app/authorize?tx=abc", f"{ISSUER}/app/authorize?tx=",
                  f"{ISSUER}/app/authorize?tx=a&tx=b", f"{ISSUER}/app/authorize?tx=abc#x", "harbourid://[authorize?tx=a",
                  "harbourid://sign?request=abc"):
        with pytest.raises(UnknownLink):
            qr_links.parse(other, ISSUER)
    for odd in (f"{ISSUER}/app/authorize?tx=abc&t=1", f"{ISSUER}/app/authorize?tx=abc&c=x", f"{ISSUER}/app/authorize?tx=abc&t=x&c=y",
                f"{ISSUER}/app/authorize?tx=abc&t=12345678&c=y", "harbourid://authorize?tx=abc&t=1&c=y",
                f"{ISSUER}/app/authorize?tx=abc&t=%D9%A1&c=y"):  # an Arabic-Indic digit is not a second we draw
        with pytest.raises(QrCodeForged):
            qr_links.parse(odd, ISSUER)


@pytest.mark.parametrize(("drawn_at", "opened_at", "accepted"), [
    (0, 0, True), (0, 10, True), (0, 10.5, False), (0, 11, False), (5, 15, True), (5, 16.5, False),
    (7, 5, True),    # drawn by an auth instance whose clock runs ahead, within the skew allowed
    (9, 5, False),   # ...beyond it
])
def test_a_qr_code_is_accepted_within_its_window(drawn_at, opened_at, accepted):
    link = qr_links.parse(qr_links.qr_link(ISSUER, KEY, "tx", drawn_at), ISSUER)
    opened = START + timedelta(seconds=opened_at)
    if accepted:
        qr_links.check(link, KEY, START, opened, window_s=10)
    else:
        with pytest.raises(QrCodeExpired):
            qr_links.check(link, KEY, START, opened, window_s=10)


def test_a_code_for_another_login_second_or_key_is_forged():
    for link in (qr_links.LoginLink("tx", 3, qr_links.time_code(KEY, "other", 3)),
                 qr_links.LoginLink("tx", 3, qr_links.time_code(KEY, "tx", 4)),
                 qr_links.LoginLink("tx", 3, qr_links.time_code(qr_links.qr_key(b"x" * 32), "tx", 3))):
        with pytest.raises(QrCodeForged):
            qr_links.check(link, KEY, START, START + timedelta(seconds=3), window_s=10)
    qr_links.check(qr_links.LoginLink("tx"), KEY, START, START + timedelta(days=1), window_s=10)  # no time code: no window



def test_the_login_page_offers_the_https_link_and_draws_the_qr_link():
    from .test_oidc_pages import APP_LINK, assert_strict_csp_ready, login

    https = qr_links.app_link(ISSUER, "abc")
    qr = qr_links.qr_link(ISSUER, KEY, "abc", 4)
    html = login(https_link=https, qr_link=qr)
    assert f'id="open-app" class="button" href="{https.replace("&", "&amp;")}"' in html
    assert f'id="open-app-scheme" href="{APP_LINK.replace("&", "&amp;")}"' in html  # the custom scheme as the fallback
    assert f'data-link="{qr.replace("&", "&amp;")}" data-t="4"' in html and '"refreshQr": true' in html
    assert_strict_csp_ready(html, (https, qr.replace("&", "&amp;")))  # nothing else from anywhere
    # Without them (a caller of old): the button is the custom scheme, the QR code says it, nothing refreshes.
    plain = login()
    assert 'id="open-app-scheme"' not in plain and '"refreshQr": false' in plain
    with pytest.raises(ValueError):
        login(https_link="javascript:alert(1)")
