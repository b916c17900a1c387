"""The demo online service and the citizen web app in a real browser: the whole journey a citizen makes.

The site (clients/relying_party) runs as a real HTTP server against the real platform; Debian's Chromium
(Playwright) has two contexts: the computer at the site, and a phone-sized one running the citizen web app (/app/)
with a virtual WebAuthn authenticator and a fake camera (clients/relying_party/web_phone.py). The phone is bound with
the kiosk slip, scans the login page's QR code, approves the form fill and the signature with user verification, and
reads the confirmation in its inbox; axe-core checks every screen of both. Screenshots of every step are saved under
.dev/screenshots/demo/ as test artefacts (HARBOUR_WRITE_TOUR=1 also writes the README's tour, docs/screenshots/).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Route, async_playwright
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from cryptography.hazmat.primitives import serialization

from clients.citizen_app import CitizenApp, Profile
from clients.relying_party.application import SIGNATURE_BOX
from clients.relying_party.config import FORM_FIELDS, SCOPE, SiteConfig
from clients.relying_party.journey import CHROMIUM, CHROMIUM_ARGS, DESKTOP_VIEWPORT, PHONE_VIEWPORT, Journey
from clients.relying_party.site import create_site
from clients.relying_party.web_phone import NAVIGATION, WebPhone, app_url, camera_args
from libs.devstack.processes import free_port
from libs.devstack.config import REPO_ROOT
from libs import base64url
from libs.tokens import generate_private_key, public_jwk

from ..support.axe import assert_accessible
from ..support.oidc import register
from ..support.people import identity, selfie
from ..support.signing import both_crls, pdfsig, root_only_context
from ..support.tampered_app import ASK_AS_THE_APP_DOES, ASK_WITHOUT_USER_VERIFICATION

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO_ROOT / ".dev" / "screenshots" / "demo"
TOUR = REPO_ROOT / "docs" / "screenshots"  # the pictures the README's tour shows (HARBOUR_WRITE_TOUR=1 rewrites them)
TOUR_NAMES = frozenset({f"app-{name}.png" for name in ["bind", "approvals", "prompt-login", "approved-login", "prompt-formfill",
                                                        "approved-formfill", "prompt-sign", "approved-sign", "inbox", "message",
                                                        "scan", "consents", "devices", "activity", "preferences", "locked"]}
                       | {f"app-{name}-zh-HK.png" for name in ["prompt-login", "uv-failed", "revoked"]})
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


@pytest.fixture
async def browser(tmp_path) -> AsyncIterator[tuple[Browser, Path]]:
    """Debian's headless Chromium with a fake camera playing tmp_path/camera.y4m (the phone writes what it sees there)."""
    camera = tmp_path / "camera.y4m"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=[*CHROMIUM_ARGS, *camera_args(camera)])
        try:
            yield launched, camera
        finally:
            await launched.close()


async def kiosk_slip(platform, kiosk, person: dict) -> dict:
    """Enrolled at the kiosk (a plus identity): the slip's account id and activation code."""
    return await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie(), kiosk=kiosk)


async def bound_phone(platform, kiosk, browser, person: dict, language: str) -> WebPhone:
    slip = await kiosk_slip(platform, kiosk, person)
    launched, camera = browser
    phone = await WebPhone(launched, app_url(platform.gateway), camera, language=language, screenshots=SCREENSHOTS,
                           tour=TOUR if os.environ.get("HARBOUR_WRITE_TOUR") else None, tour_names=TOUR_NAMES,
                           check=assert_accessible).open()
    await phone.bind(slip["account_id"], slip["activation_code"], "Test phone")
    return phone


def console_errors(page, errors: list[str]) -> None:
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))


async def test_the_whole_journey_with_the_web_app_in_english(platform, kiosk, tmp_path, site, browser, trust):
    person = identity(language="en")
    phone = await bound_phone(platform, kiosk, browser, person, "en")
    desktop = await browser[0].new_context(viewport=DESKTOP_VIEWPORT, locale="en-GB", accept_downloads=True)
    page = await desktop.new_page()
    errors: list[str] = []
    console_errors(page, errors)
    steps: list[str] = []
    try:
        result = await Journey(page, phone, site.config.site_url, SITE_NAME, SCREENSHOTS, say=steps.append,
                               check=assert_accessible).run(tmp_path / "downloads")
        # What the citizen enrolled with is what the site's form now holds, read from the page.
        assert result.prefilled == {"name": person["name_en"], "address": person["address"], "phone": person["phone"],
                                    "email": person["email"]}
        assert result.reference.startswith("HP-")
        # The confirmation reached the app's inbox in the citizen's language, personalised; opening it read it.
        assert result.confirmation["subject"] == f"Application {result.reference} received"
        assert person["address"] in result.confirmation["body"] and result.confirmation["was_unread"]
        await phone.go("inbox")
        assert await phone.page.locator(f'[data-inbox-id="{result.confirmation["id"]}"]').get_attribute("data-read") == "true"
        # Every other screen of the app, checked and photographed at phone width (the README's tour).
        for screen in NAVIGATION:
            await phone.go(screen)
            await phone.shot(screen)
            assert await phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"], screen
            if screen == "activity":  # the data tracker (audit ledger): the login approved with key + verified user
                assert "swk, user, mfa" in await phone.page.locator("#activity-list").inner_text()
        # Opened again with the fingerprint failing: the app stays locked (no token without the passkey), then opens.
        await phone.user_verification(False)
        await phone.page.reload()
        await phone.page.locator("#screen-locked #locked-retry").wait_for()
        await phone.shot("locked")
        await phone.user_verification(True)
        await phone.page.locator("#locked-retry").click()
        await phone.page.locator("main [data-screen]:not([data-screen=locked])").wait_for()  # where it was
        # Nothing on the site overflows a 390 px wide screen either.
        await page.set_viewport_size(PHONE_VIEWPORT)
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    finally:
        await desktop.close()
        await phone.close()
    print("\n" + "\n".join(steps))
    assert all(path.exists() and path.stat().st_size > 5000 for path in result.screenshots)
    assert errors == [] and phone.errors == [], (errors, phone.errors)
    # Every API call the app made was answered without a server error.
    assert all(status < 500 for _, _, status in phone.api_answers), phone.api_answers

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


async def test_in_traditional_chinese_an_approval_needs_user_verification_and_a_revoked_phone_can_do_nothing(
        platform, kiosk, site, browser, tmp_path):
    person = identity(language="zh-HK")
    phone = await bound_phone(platform, kiosk, browser, person, "zh-HK")
    desktop = await browser[0].new_context(viewport=DESKTOP_VIEWPORT, locale="zh-HK", accept_downloads=True)
    page = await desktop.new_page()
    steps: list[str] = []
    try:
        journey = Journey(page, phone, site.config.site_url, SITE_NAME, SCREENSHOTS, language="zh-HK", say=steps.append,
                          check=assert_accessible)
        await journey.log_in()  # also checks that Harbour ID's QR page came up in zh-HK
        assert await phone.page.locator("html").get_attribute("lang") == "zh-HK"
        assert (await page.locator("#prefill").inner_text()).strip() == "以「海港身份」填表"
        await page.locator("#prefill").click()
        await journey.at("/apply/waiting")
        approval_id = await phone.open_prompt("formfill", SITE_NAME)
        decision_path = f"/v1/approvals/{approval_id}/decision"

        # Every decision the app sends, as the server answers it (a test may take the passkey assertion out).
        decisions: list[dict] = []
        strip_passkey = False

        async def decision(route: Route) -> None:
            body = json.loads(route.request.post_data or "{}")
            if strip_passkey:
                body.pop("passkey")
            response = await route.fetch(post_data=json.dumps(body))
            flags = base64url.decode(body["passkey"]["response"]["authenticatorData"])[32] if "passkey" in body else None
            decisions.append({"passkey": "passkey" in body, "uv_flag": None if flags is None else bool(flags & 0x04),
                              "status": response.status, "problem": (await response.json()).get("type", "").rsplit("/", 1)[-1]})
            await route.fulfill(response=response)

        await phone.page.route(f"**{decision_path}", decision)
        # The fingerprint does not match: the authenticator refuses, the app says so and sends nothing.
        await phone.user_verification(False)
        assert await phone.try_to_approve()
        await phone.shot("uv-failed")
        assert decisions == []
        # A tampered app that does not ask for user verification: the authenticator's genuine assertion says the
        # user was not verified, and the server refuses it.
        await phone.page.evaluate(ASK_WITHOUT_USER_VERIFICATION)
        assert await phone.try_to_approve()
        # An app that leaves the passkey assertion out (the device key's signed decision alone): refused too.
        await phone.page.evaluate(ASK_AS_THE_APP_DOES)
        await phone.user_verification(True)
        strip_passkey = True
        assert await phone.try_to_approve()
        await phone.page.unroute(f"**{decision_path}")
        assert decisions == [{"passkey": True, "uv_flag": False, "status": 403, "problem": "user-verification-required"},
                             {"passkey": False, "uv_flag": None, "status": 403, "problem": "user-verification-required"}]

        # Still pending: approved now with the fingerprint, the site gets the details.
        await phone.approve_shown("formfill")
        await page.locator("#prefilled").wait_for()
        assert (await page.locator("#name").input_value()) == person["name_en"]
        await journey.review()
        await journey.sign(tmp_path / "downloads")
        message = await journey.confirmation_in_inbox()
        assert journey.result.reference in message["subject"] and person["address"] in message["body"]
        # The language switch takes the site to English and back.
        await page.locator("#language-switch").click()
        assert (await page.locator("h1").inner_text()).strip() == "Application signed"

        # The phone is lost: at the kiosk, a replacement revokes it. The app says so and can do nothing more.
        await phone.go("approvals")
        since = len(phone.api_answers)
        replaced = await CitizenApp(Profile(gateway_url=platform.gateway)).replace_at_kiosk(person, selfie(), kiosk=kiosk)
        assert replaced["devices_revoked"] == 1
        await phone.locator("revoked").wait_for(timeout=20_000)
        await phone.shot("revoked")
        assert [a for a in phone.api_answers[since:] if a[2] in (401, 403)], phone.api_answers[since:]  # how it learnt
        revoked_at = len(phone.api_answers)
        await phone.page.goto(phone.app_url + "#inbox")  # opened again, at a screen that needs the device
        await phone.page.locator("#screen-bind, #screen-revoked").first.wait_for()
        assert all(status >= 400 for _, _, status in phone.api_answers[revoked_at:]), phone.api_answers[revoked_at:]
    finally:
        await desktop.close()
        await phone.close()
    print("\n" + "\n".join(steps))


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
