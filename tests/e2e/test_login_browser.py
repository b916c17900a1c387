"""The login page in a real browser: headless Chromium (Debian's, driven by Playwright) against the real services.

The browser opens the authorization URL, shows the page to the "laptop user",
the phone (the reference app) opens the link the QR code encodes and decides,
and the page's own script must take the browser back to the relying party by
itself: no status polling or redirect following done by the test. The relying
party is a tiny aiohttp server in the test that records what reaches it.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import segno
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from libs.devstack.config import REPO_ROOT
from services.auth.oidc.messages import MESSAGES
from services.auth.oidc.pages import QR_MASK

from ..support.axe import assert_accessible
from ..support.citizens import enrolled_app
from ..support.oidc import authorize_url, register, token_request

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
SCREENSHOTS = REPO_ROOT / ".dev" / "screenshots"
ARRIVAL_TIMEOUT_MS = 20_000
CLIENT_NAME = "Harbour Library Portal"

# Reports every CSP violation to the test, even from pages the browser has already left.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolation(e.violatedDirective + " blocked " + e.blockedURI + " on " + document.location.href);
});
"""




@dataclass
class RelyingParty:
    """The client's redirect endpoint: what arrived, by GET (query) or POST (form_post)."""

    url: str = ""
    arrivals: list[dict] = field(default_factory=list)

    async def callback(self, request: web.Request) -> web.Response:
        received = dict(await request.post()) if request.method == "POST" else dict(request.query)
        self.arrivals.append({"method": request.method, "params": received, "at": time.monotonic()})
        return web.Response(text="<!doctype html><html lang=en><title>Example</title><h1>signed in</h1>", content_type="text/html")


@pytest.fixture
async def relying_party() -> AsyncIterator[RelyingParty]:
    rp = RelyingParty()
    app = web.Application()
    app.router.add_get("/callback", rp.callback)
    app.router.add_post("/callback", rp.callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rp.url = f"http://127.0.0.1:{port}/callback"
    try:
        yield rp
    finally:
        await runner.cleanup()


@dataclass
class BrowserLog:
    errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        """Console errors other than the browser's own favicon request failing (neither server has one).

        A failed status poll, a script error or any CSP report is unexpected.
        """
        return [e for e in self.errors
                if "Content Security Policy" in e or not (e.startswith("Failed to load resource") and e.endswith("/favicon.ico"))]


@pytest.fixture
async def phone_page(chromium: Browser) -> AsyncIterator[tuple[Page, BrowserLog]]:
    """A 390x844 page (a phone-sized window) whose console errors, page errors and CSP violations are recorded."""
    context = await chromium.new_context(viewport=PHONE, locale="en-GB")
    log = BrowserLog()
    await context.expose_function("__cspViolation", lambda report: log.csp_violations.append(report))
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:  # also report-only / warning-level CSP
            log.errors.append(f"{message.text} @ {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.errors.append(f"page error: {error}"))
    try:
        yield page, log
    finally:
        await context.close()


async def shows_login_page(page: Page, client_name: str) -> str:
    """Check what the citizen sees on the laptop; return the app link (what the QR code encodes)."""
    assert (await page.locator(".client").inner_text()).strip() == client_name
    code = (await page.locator(".code").inner_text()).strip()
    assert re.fullmatch(r"\d{4}", code), code
    qr = page.locator("svg.qr-code")
    await qr.wait_for(state="visible")
    box = await qr.bounding_box()
    assert box is not None and box["width"] >= 200 and box["x"] + box["width"] <= PHONE["width"], box
    link_element = page.locator('a[href^="harbourid://authorize"]')
    await link_element.wait_for(state="visible")
    link = await link_element.get_attribute("href")
    assert link and link.startswith("harbourid://authorize?tx=")
    tx = link.removeprefix("harbourid://authorize?tx=")
    await page_script_runs(page)
    # The button is the https app link of the same login; the QR code says that link with this second's time code.
    button = await page.locator("#open-app").get_attribute("href")
    assert button == f"{page.url.split('/oidc/')[0]}/app/authorize?tx={tx}"
    qr_link = await shown_qr_link(page)
    assert qr_link.startswith(f"{button}&t=")
    return qr_link


async def shown_qr_link(page: Page) -> str:
    """What the QR code on screen says: the figure's data-link, checked against the modules actually drawn (both read
    at once: the code changes every second)."""
    link, shown_path, title = await page.evaluate("""() => {
        const figure = document.getElementById("qr");
        const svg = figure.querySelector("svg.qr-code");
        return [figure.getAttribute("data-link"), svg.querySelector("path[stroke]").getAttribute("d"),
                svg.querySelector("title").textContent];
    }""")
    expected = segno.make(link, error="m", mask=QR_MASK).svg_inline(scale=5, lineclass=None, omitsize=True)
    assert shown_path and f'd="{shown_path}"' in expected  # the dark modules, not the white background
    assert title in (MESSAGES["en"]["qr_title"], MESSAGES["zh-HK"]["qr_title"])  # the page's own title kept
    return link


async def scanned_from_screen(page: Page) -> str:
    """The QR code on screen, from a screenshot of the figure, as zxing-cpp reads it; checked to be the figure's link
    of just before or just after (the code changes every second)."""
    import io

    import zxingcpp
    from PIL import Image

    before = await page.locator("#qr").get_attribute("data-link")
    png = await page.locator("#qr svg").screenshot()
    after = await page.locator("#qr").get_attribute("data-link")
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode and found.text in (before, after), (found.text, before, after)
    return found.text


async def page_script_runs(page: Page) -> None:
    """The page's script is running: the countdown has appeared and the status says it is waiting."""
    await page.locator("#expiry").wait_for(state="visible")
    assert "pending" in (await page.locator("#status").get_attribute("class"))


async def screenshot(page: Page, name: str) -> Path:
    """The page as shown, checked by axe-core first (no serious or critical violation)."""
    await assert_accessible(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


async def arrives_at(page: Page, log: BrowserLog, rp: RelyingParty) -> dict:
    """Wait until the browser, on its own, has reached the client's callback; return what the client received."""
    try:
        await page.wait_for_url(lambda url: url.startswith(rp.url), timeout=ARRIVAL_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        status = await page.locator("#status").all_inner_texts()
        pytest.fail(f"the browser never reached the client: still at {urlsplit(page.url).path}, status {status}, "
                    f"console errors {sorted(set(log.errors))[:4]}, CSP violations {sorted(set(log.csp_violations))[:4]}")
    assert len(rp.arrivals) == 1, rp.arrivals
    return rp.arrivals[0]


def no_browser_errors(log: BrowserLog) -> None:
    assert log.csp_violations == [], log.csp_violations
    assert log.unexpected() == [], log.errors


async def test_two_device_login_in_a_real_browser(platform, kiosk, metadata, tmp_path, relying_party, phone_page):
    page, log = phone_page
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name=CLIENT_NAME, redirect_uris=[relying_party.url])
    url, verifier = authorize_url(metadata, rp["client_id"], redirect_uri=relying_party.url, state="browser-1")

    started = time.monotonic()
    response = await page.goto(url)
    assert response is not None and response.status == 200
    assert await page.locator("html").get_attribute("lang") == "en"
    assert (await page.locator("h1").inner_text()).strip() == MESSAGES["en"]["login_title"]
    link = await shows_login_page(page, CLIENT_NAME)
    shown = time.monotonic()
    await screenshot(page, "login-en.png")

    # The phone scans the QR code (the link) and the citizen approves; the laptop is left alone.
    outcome = await citizen.open_link(link)
    approved = time.monotonic()
    assert outcome["prompt"]["requester"]["client_name"] == CLIENT_NAME
    arrival = await arrives_at(page, log, relying_party)
    print(f"\n[en] page shown in {shown - started:.2f}s; approved -> at the client in {arrival['at'] - approved:.2f}s")

    assert arrival["method"] == "GET"
    params = arrival["params"]
    assert params["state"] == "browser-1" and params["iss"] == platform.gateway == metadata["issuer"]
    assert "error" not in params and params["code"]
    assert "signed in" in await page.locator("h1").inner_text()
    exchanged = token_request(metadata, rp, grant_type="authorization_code", code=params["code"],
                              redirect_uri=relying_party.url, code_verifier=verifier)
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["id_token"]

    # The browser now holds a Harbour ID session: prompt=none comes straight back with a code.
    cookies = {c["name"]: c for c in await page.context.cookies(platform.gateway + "/oidc/authorize")}
    assert cookies["harbour_sid"]["httpOnly"] and cookies["harbour_sid"]["sameSite"] == "Lax"
    silent_url, _ = authorize_url(metadata, rp["client_id"], redirect_uri=relying_party.url, state="silent-1", prompt="none")
    relying_party.arrivals.clear()
    await page.goto(silent_url)
    silent = await arrives_at(page, log, relying_party)
    assert silent["params"]["state"] == "silent-1" and silent["params"]["code"]
    no_browser_errors(log)


async def test_a_declined_login_in_traditional_chinese(platform, kiosk, metadata, tmp_path, relying_party, phone_page):
    page, log = phone_page
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name=CLIENT_NAME, redirect_uris=[relying_party.url])
    url, _ = authorize_url(metadata, rp["client_id"], redirect_uri=relying_party.url, state="browser-2", ui_locales="zh-HK")

    response = await page.goto(url)
    assert response is not None and response.status == 200
    await page.locator('html[lang="zh-HK"]').wait_for(state="attached")
    assert (await page.locator("h1").inner_text()).strip() == MESSAGES["zh-HK"]["login_title"]
    assert (await page.locator("#language-switch").inner_text()).strip() == "English"
    link = await shows_login_page(page, CLIENT_NAME)
    await screenshot(page, "login-zh-HK.png")

    declined = time.monotonic()
    await citizen.open_link(link, approve=False)
    arrival = await arrives_at(page, log, relying_party)
    print(f"\n[zh-HK] declined -> at the client in {arrival['at'] - declined:.2f}s")
    assert arrival["method"] == "GET"
    assert arrival["params"]["error"] == "access_denied" and arrival["params"]["state"] == "browser-2"
    assert arrival["params"]["iss"] == platform.gateway and "code" not in arrival["params"]
    no_browser_errors(log)


async def test_form_post_is_submitted_by_the_browser(platform, kiosk, metadata, tmp_path, relying_party, phone_page):
    page, log = phone_page
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name=CLIENT_NAME, redirect_uris=[relying_party.url])
    url, verifier = authorize_url(metadata, rp["client_id"], redirect_uri=relying_party.url, state="browser-3", response_mode="form_post")

    await page.goto(url)
    link = await shows_login_page(page, CLIENT_NAME)
    approved = time.monotonic()
    await citizen.open_link(link)
    arrival = await arrives_at(page, log, relying_party)
    print(f"\n[form_post] approved -> posted to the client in {arrival['at'] - approved:.2f}s")

    assert arrival["method"] == "POST"
    assert urlsplit(page.url).query == ""  # nothing travelled in the URL
    form = arrival["params"]
    assert form["state"] == "browser-3" and form["iss"] == platform.gateway and form["code"]
    exchanged = token_request(metadata, rp, grant_type="authorization_code", code=form["code"],
                              redirect_uri=relying_party.url, code_verifier=verifier)
    assert exchanged.status_code == 200, exchanged.text
    no_browser_errors(log)


async def test_the_qr_code_on_the_page_refreshes_every_second(platform, kiosk, metadata, tmp_path, relying_party, phone_page):
    """The page redraws its QR code with each second's time code (qr_links.py); the newest one scanned logs in."""
    page, log = phone_page
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name=CLIENT_NAME, redirect_uris=[relying_party.url])
    url, _ = authorize_url(metadata, rp["client_id"], redirect_uri=relying_party.url, state="browser-qr")
    await page.goto(url)
    first = await shows_login_page(page, CLIENT_NAME)
    first_t = first.split("&t=")[1].split("&")[0]
    # Awaited, not slept: the page's script swaps in the next second's code by itself.
    # (A locator assertion: wait_for_function evaluates its predicate with eval, which the page's CSP refuses.)
    await expect(page.locator("#qr")).not_to_have_attribute("data-t", first_t, timeout=15_000)
    later = await shown_qr_link(page)
    assert later != first and later.split("&c=")[0] != first.split("&c=")[0] and later.split("&c=")[1] != first.split("&c=")[1]
    # What the browser shows, photographed and read by an independent reader, is a link the figure carried.
    assert await scanned_from_screen(page) != first
    await citizen.open_link(later)
    arrival = await arrives_at(page, log, relying_party)
    assert arrival["params"]["state"] == "browser-qr" and arrival["params"]["code"]
    no_browser_errors(log)
