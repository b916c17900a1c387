"""The login page's QR code SVG (services/auth/oidc/pages.qr_svg) is, character for character, what segno writes for
the same code: the fast writer changes the time it takes, not what the citizen's camera reads."""

from __future__ import annotations

import segno
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.auth.oidc.pages import QR_MASK, qr_svg

SEGNO_OPTIONS = {"scale": 5, "dark": "#000", "light": "#fff", "svgclass": "qr-code", "lineclass": None, "omitsize": True}
tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(issuer=st.sampled_from(["http://127.0.0.1:8000", "https://id.harbour.gov.hk", "https://x.example:8443/idp"]),
       tx=tokens, t=st.integers(0, 9_999_999), code=tokens,
       title=st.none() | st.text(max_size=40))
@example(issuer="https://id.example", tx="a", t=0, code="b", title='Scan <me> & "you"')
@example(issuer="https://id.example", tx="a", t=0, code="b", title="")
def test_the_svg_is_segnos_own(issuer, tx, t, code, title):
    link = f"{issuer}/app/authorize?tx={tx}&t={t}&c={code}"
    expected = segno.make(link, error="m", mask=QR_MASK).svg_inline(title=title, **SEGNO_OPTIONS)
    assert str(qr_svg(link, title)) == expected


def test_a_short_and_a_long_link_both_draw():
    for link in ("x", "https://id.example/app/authorize?tx=" + "a" * 300):
        expected = segno.make(link, error="m", mask=QR_MASK).svg_inline(**SEGNO_OPTIONS)
        assert str(qr_svg(link)) == expected
