"""The demo online service in a real browser: the whole journey a citizen makes, with the phone as the reference app.

The site (clients/relying_party) runs as a real HTTP server against the real
platform; Debian's Chromium (Playwright) is the citizen's browser; the
reference app approves on the "phone". Screenshots of every step are saved
under .dev/screenshots/demo/ as test artefacts.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from cryptography.hazmat.primitives import serialization

from clients.relying_party.application import SIGNATURE_BOX
from clients.relying_party.config import FORM_FIELDS, SCOPE, SiteConfig
from clients.relying_party.journey import PHONE_VIEWPORT, CliPhone, Journey
from clients.relying_party.site import create_site
from libs.devstack.processes import free_port
from libs.devstack.config import REPO_ROOT
from libs.tokens import generate_private_key, public_jwk

from ..support.axe import assert_accessible
from ..support.citizens import enrolled_app
from ..support.oidc import register
from ..support.people import identity
from ..support.signing import both_crls, pdfsig, root_only_context

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO_ROOT / ".dev" / "screenshots" / "demo"
SITE_NAME = "Harbour Power & Light"


@dataclass
class RunningSite:
    config: SiteConfig
    client: dict


@pytest.fixture
async def site(platform) -> AsyncIterator[RunningSite]:
    """The demo site on a free loopback port, registered at Harbour ID with private_key_jwt as `make seed` does."""
    url = f"http://127.0.0.1:{free_port()}"
    key = generate_private_key()
    jwk = public_jwk(key) | {"kid": "power-1", "use": "sig", "alg": "ES256"}
    client = register(platform, client_name=SITE_NAME, redirect_uris=[f"{url}/callback"], post_logout_redirect_uris=[f"{url}/"],
                      scope=f"{SCOPE} notify", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]},
                      formfill_fields=[name for name, _ in FORM_FIELDS])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    config = SiteConfig(issuer=platform.gateway, client_id=client["client_id"], private_key_pem=pem, key_id="power-1", site_url=url)
    runner = web.AppRunner(create_site(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.port).start()
    try:
        yield RunningSite(config, client)
    finally:
        await runner.cleanup()


async def test_the_whole_journey_at_phone_width_in_english(platform, kiosk, tmp_path, site, chromium, trust):
    person = identity(language="en")
    phone = await enrolled_app(platform, kiosk, tmp_path, person=person)
    context = await chromium.new_context(viewport=PHONE_VIEWPORT, locale="en-GB", accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    steps: list[str] = []
    try:
        result = await Journey(page, CliPhone(phone), site.config.site_url, SITE_NAME, SCREENSHOTS, say=steps.append,
                              check=assert_accessible).run(tmp_path / "downloads")
        # What the citizen enrolled with is what the site's form now holds, read from the page.
        assert result.prefilled == {"name": person["name_en"], "address": person["address"], "phone": person["phone"],
                                    "email": person["email"]}
        assert result.reference.startswith("HP-")
        # The confirmation reached the inbox in the citizen's language, personalised, and is now read.
        assert result.confirmation["subject"] == f"Application {result.reference} received"
        assert person["address"] in result.confirmation["body"]
        read = [m for m in await phone.inbox() if m["id"] == result.confirmation["id"]]
        assert read and read[0]["read_at"]
        # Nothing overflows a 390 px wide screen.
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    finally:
        await context.close()
    print("\n" + "\n".join(steps))
    assert all(path.exists() and path.stat().st_size > 5000 for path in result.screenshots)
    assert errors == []

    # The PDF the browser downloaded is the application, signed by this citizen: poppler and pyHanko agree,
    # trusting only the platform's root.
    signed = result.signed_pdf.read_bytes()
    assert result.signed_pdf.name == f"{result.reference}-signed.pdf"
    assert f"/Title (Application {result.reference})".encode() in signed
    report = pdfsig(trust, result.signed_pdf)
    assert "Signature Validation: Signature is Valid." in report and "Certificate Validation: Certificate is Trusted." in report, report
    with open(result.signed_pdf, "rb") as pdf:
        signature = PdfFileReader(pdf).embedded_signatures[0]
        status = await async_validate_pdf_signature(signature, signer_validation_context=root_only_context(trust, both_crls(platform)))
    assert status.intact and status.valid and status.trusted
    # The signature is visible, in the application's signature box: the applicant's name (in the Applicant row and
    # again in the stamp), the platform's wording and the signing time.
    text = subprocess.run(["pdftotext", "-layout", str(result.signed_pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=30).stdout
    assert text.count(person["name_en"]) >= 2 and "Signed with Harbour ID" in text, text
    assert [[round(float(v)) for v in s.sig_field["/Rect"]] for s in PdfFileReader(io.BytesIO(signed)).embedded_signatures
            if s.sig_object_type == "/Sig"] == [[round(v) for v in SIGNATURE_BOX]]


async def test_the_site_and_the_qr_page_in_traditional_chinese(platform, kiosk, tmp_path, site, chromium):
    phone = await enrolled_app(platform, kiosk, tmp_path)
    context = await chromium.new_context(viewport=PHONE_VIEWPORT, locale="zh-HK")
    page = await context.new_page()
    steps: list[str] = []
    try:
        journey = Journey(page, CliPhone(phone), site.config.site_url, SITE_NAME, SCREENSHOTS, language="zh-HK", say=steps.append,
                          check=assert_accessible)
        await journey.log_in()  # also checks that Harbour ID's QR page came up in zh-HK
        assert await page.locator("html").get_attribute("lang") == "zh-HK"
        assert (await page.locator("#prefill").inner_text()).strip() == "以「海港身份」填表"
        await journey.prefill()
        assert journey.result.prefilled["name"]
        # The language switch takes the same page to English and back.
        await page.locator("#language-switch").click()
        assert (await page.locator("h1").inner_text()).strip() == "Your application"
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    finally:
        await context.close()


async def test_bad_requests_to_the_site_change_nothing(site):
    """Forged forms, stray callbacks and invalid applications get clear answers, never a 500."""
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        base = site.config.site_url
        async with browser.get(base + "/") as home:
            assert home.status == 200
            assert "default-src 'none'" in home.headers["Content-Security-Policy"]
            cookie = home.cookies["harbour_power_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Lax"
        # Not logged in: the application pages send the visitor to the start.
        async with browser.get(base + "/apply", allow_redirects=False) as apply:
            assert apply.status == 303 and apply.headers["Location"] == "/"
        # A callback nobody started, and one with a forged state, are refused.
        async with browser.get(base + "/callback?code=x&state=y") as stray:
            assert stray.status == 400 and "not started here" in await stray.text()
        async with browser.get(base + "/login", allow_redirects=False) as login:
            assert login.status == 303 and login.headers["Location"].startswith(site.config.issuer + "/oidc/authorize?")
        async with browser.get(base + f"/callback?code=x&state=forged&iss={site.config.issuer}") as forged:
            assert forged.status == 400 and "not started here" in await forged.text()
        # A form posted without the session's CSRF token is refused.
        async with browser.post(base + "/logout", data={"csrf": "forged"}) as logout:
            assert logout.status == 403
