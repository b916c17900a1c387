"""The citizen's web app in Chromium against text written by others (issue 21): a relying party whose name, a form
fill's purpose, an agency's message subject and body, and the device's own name are HTML that would run script if a
screen put it into the page as markup. Every screen shows it literally, as text: no element is made from it, no script
runs, and the page's strict CSP reports no violation (a `securitypolicyviolation` listener installed before the app's
own scripts, as tests/e2e/test_login_browser.py does for the login page). And what the browser keeps: no token or
key in localStorage, sessionStorage or the Cache API; the device key in IndexedDB is not extractable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import requests
from playwright.async_api import Browser, Page, Response
from playwright.async_api import Error as PlaywrightError

from clients.citizen_app import CitizenApp, Profile
from clients.relying_party.web_phone import WebPhone, app_url

from ..support.calls import bearer
from ..support.formfill import FIELDS
from ..support.notify import Agency
from ..support.oidc import claims_of, register
from ..support.axe import assert_accessible
from ..support.people import identity, selfie
from ..support.polling import eventually
from ..support.tampered_app import ASK_AS_THE_APP_DOES, ASK_WITHOUT_USER_VERIFICATION
from .test_citizen_web_screens import PHONE, STEP_MS, login_by_app_link, open_screen
from .test_login_browser import REPORT_CSP_VIOLATIONS

pytestmark = pytest.mark.e2e

# Each would run script (or at least make an element) if it reached innerHTML; each counts its runs in window.__xss.
IMG = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
SVG = '<svg onload="window.__xss=(window.__xss||0)+1"></svg>'
CLIENT_NAME = f"Evil {IMG} Portal"
PURPOSE = f"Renew {SVG} & <b>bold</b> a card"
DEVICE_NAME = "<i>phone</i>" + IMG[:40]  # 60 characters at most
SUBJECT = f"Notice {IMG}"
BODY = f"Dear citizen,\n{IMG}\n<script>window.__xss = 99</script><a href=\"javascript:window.__xss=7\">click</a>"
TEMPLATE = {"name": "Hostile template", "placeholders": ["who"],
            "content": {"en": {"subject": SUBJECT, "body": BODY + " {{ who }}"}}}


@pytest.fixture
async def phone(platform, chromium: Browser) -> AsyncIterator[WebPhone]:
    """The app at phone width, every CSP violation of every page it opens reported to the test."""
    opened = await WebPhone(chromium, app_url(platform.gateway), viewport=PHONE).open()
    opened.violations, opened.device_tokens = [], []

    async def device_token(response: Response) -> None:
        if response.url.endswith("/v1/devices/token") and response.ok:
            try:
                opened.device_tokens.append((await response.json())["access_token"])
            except PlaywrightError:  # the page went elsewhere meanwhile: that answer's body is gone
                pass

    opened.page.on("response", device_token)
    await opened.context.expose_binding("__cspViolation", lambda _source, text: opened.violations.append(text))
    await opened.context.add_init_script(REPORT_CSP_VIOLATIONS)
    try:
        yield opened
    finally:
        await opened.close()


async def nothing_ran(phone: WebPhone, where: str) -> None:
    """No script from the hostile text ran, no element was made of it, the CSP was never violated."""
    page = phone.page
    ran = await page.evaluate("() => window.__xss === undefined ? 0 : window.__xss")
    made = await page.evaluate("""() => document.querySelectorAll(
        'main img[src="x"], main svg[onload], main script, main b, main i, main a[href^="javascript:"], [onerror], [onload]').length""")
    assert (ran, made) == (0, 0), f"{where}: script ran {ran} time(s), {made} element(s) made from the hostile text"
    assert phone.violations == [], f"{where}: CSP violations {phone.violations}"
    assert [e for e in phone.errors if not e.startswith("Failed to load resource")] == [], f"{where}: {phone.errors}"


async def shows_literally(page: Page, selector: str, text: str) -> None:
    locator = page.locator(selector).first
    await locator.wait_for(timeout=STEP_MS)
    assert text in await locator.inner_text(), (selector, await locator.inner_text())


async def kept_in_the_browser(page: Page) -> dict:
    """Everything the page could persist outside IndexedDB, and what IndexedDB holds."""
    return await page.evaluate("""async () => {
        const names = window.caches ? await caches.keys() : [];
        const cached = [];
        for (const name of names) {
            const cache = await caches.open(name);
            for (const request of await cache.keys()) {
                const answer = await cache.match(request);
                cached.push({name, url: request.url, body: await answer.clone().text()});
            }
        }
        const db = await new Promise((resolve, reject) => {
            const opened = indexedDB.open("harbour-id");
            opened.onsuccess = () => resolve(opened.result);
            opened.onerror = () => reject(opened.error);
        });
        const entries = await new Promise((resolve, reject) => {
            const store = db.transaction("device").objectStore("device");
            const keys = store.getAllKeys(), values = store.getAll();
            values.onsuccess = () => resolve(keys.result.map((key, i) => [key, values.result[i]]));
            values.onerror = () => reject(values.error);
        });
        const described = entries.map(([key, value]) => [key,
            value instanceof CryptoKey ? {crypto: value.type, extractable: value.extractable}
            : value && value.privateKey instanceof CryptoKey ? {pair: true, extractable: value.privateKey.extractable}
            : typeof value === "string" ? value : JSON.stringify(value)]);
        db.close();
        return {local: Object.keys(localStorage).length, session: Object.keys(sessionStorage).length, cached,
                indexed: described};
    }""")


async def test_hostile_text_from_others_is_shown_as_text_and_nothing_secret_is_kept(platform, kiosk, metadata, phone):
    page = phone.page
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(), selfie(), kiosk=kiosk)
    await page.goto(phone.app_url + "?lang=en")
    # The screen for setting up from another device, and back (the CSP holds there too).
    await page.locator("#bind-pair").click()
    await page.locator("#pair-start").wait_for(timeout=STEP_MS)
    await page.locator("#pair-back").click()
    await nothing_ran(phone, "pairing screen")
    await page.locator("#bind-account-id").fill(enrolment["account_id"])
    await page.locator("#bind-activation-code").fill(enrolment["activation_code"])
    await page.locator("#bind-device-name").fill(DEVICE_NAME)
    await page.locator("#bind-submit").click()
    await page.locator("#screen-approvals").wait_for(timeout=STEP_MS)
    await nothing_ran(phone, "bound")

    # A relying party named with markup: the login prompt opened by its app link names it literally.
    rp = register(platform, client_name=CLIENT_NAME, redirect_uris=["http://127.0.0.1:9/callback"],
                  scope="openid formfill notify", formfill_fields=FIELDS)
    tokens = await login_by_app_link(platform, metadata, phone, rp, scope="openid formfill",
                                     on_prompt=lambda: nothing_ran(phone, "login prompt"))
    await nothing_ran(phone, "back to the site")

    # Its form fill's purpose, in the live list and on the prompt.
    await page.goto(phone.app_url + "#approvals")
    await open_screen(page, "approvals")

    async def ask():
        response = requests.post(platform.gateway + "/v1/formfill/requests", headers=bearer(tokens["access_token"]),
                                 timeout=10, json={"fields": [{"name": "name_en", "required": True}], "purpose": PURPOSE})
        return response.json() if response.status_code == 201 else None

    asked = await eventually(ask, timeout_s=20)
    card = page.locator(f'[data-testid=approval-item][data-approval-id="formfill-{asked["request_id"]}"]')
    await card.wait_for(timeout=STEP_MS)
    assert CLIENT_NAME in await card.inner_text()
    if CLIENT_NAME not in await page.locator("#live").inner_text():  # announced when the stream brought it
        assert await page.locator("#live img").count() == 0
    await card.click()
    await shows_literally(page, "#prompt-purpose", PURPOSE)
    await shows_literally(page, "#prompt-client", CLIENT_NAME)
    await nothing_ran(phone, "form-fill prompt")
    await page.locator("#screen-prompt #deny").click()
    await page.locator("#prompt-done[data-status=denied]").wait_for(timeout=STEP_MS)

    # An agency's message with markup in its subject and body: the inbox, the live announcement, the message.
    await open_screen(page, "inbox")
    agency = Agency(platform, metadata, CLIENT_NAME, client=rp)
    template = await agency.template(TEMPLATE)
    sent = await agency.send({"template_id": template["template_id"], "sub": claims_of(tokens["id_token"])["sub"],
                              "personalisation": {"who": IMG}})
    assert sent.status_code == 201, sent.text
    item = page.locator("[data-testid=inbox-item]", has_text="Notice")
    await item.first.wait_for(timeout=STEP_MS)
    assert SUBJECT in await item.first.inner_text()
    await nothing_ran(phone, "inbox")
    await item.first.click()
    await shows_literally(page, "#message-body", IMG)
    assert "<script>window.__xss = 99</script>" in await page.locator("#message-body").inner_text()
    await shows_literally(page, "#screen-message h1", SUBJECT)
    await nothing_ran(phone, "message")

    # The device's own name, the consent given to the relying party, the activity.
    await open_screen(page, "devices")
    assert await page.locator("[data-testid=device-name-input]").first.input_value() == DEVICE_NAME
    await shows_literally(page, "[data-testid=device-item]", DEVICE_NAME)
    await open_screen(page, "consents")
    await open_screen(page, "activity")
    await shows_literally(page, "#activity-list", CLIENT_NAME)
    await open_screen(page, "preferences")  # the agency among the opt-outs, by its name
    await shows_literally(page, "#screen-preferences", CLIENT_NAME)
    await open_screen(page, "scan")
    await nothing_ran(phone, "devices, consents, activity, preferences, scan")

    # What the browser keeps: no token or key anywhere but the non-extractable key pair in IndexedDB; the service
    # worker's copies are the app's files and the screens' last answers, none of them a token.
    kept = await kept_in_the_browser(page)
    assert kept["local"] == 0 and kept["session"] == 0, kept
    secrets = [tokens["access_token"], tokens["id_token"]]
    for entry in kept["cached"]:
        assert not any(secret in entry["body"] for secret in secrets), entry["url"]
        assert "/token" not in entry["url"] and "/stream" not in entry["url"] and "/approvals" not in entry["url"], entry["url"]
        if "/v1/" in entry["url"]:  # a screen's answer: no device token, no private JWK member
            assert not any(token in entry["body"] for token in phone.device_tokens), entry["url"]
            assert '"d":' not in entry["body"] and "access_token" not in entry["body"], (entry["url"], entry["body"][:200])
    for key, value in kept["indexed"]:
        if isinstance(value, dict) and ("pair" in value or "crypto" in value):
            assert value["extractable"] is False, (key, value)
        else:
            assert not any(secret in str(value) for secret in [*secrets, *phone.device_tokens]), (key, value)
    assert phone.device_tokens, "the app never fetched a device token: nothing was checked"

    # The citizen removes this device: the revoked screen (its CSP held too), the keys and the screens' copies gone.
    await open_screen(page, "devices")
    mine = page.locator("[data-testid=device-item][data-current=true]")
    await mine.locator("[data-testid=device-revoke]").click()
    await mine.locator("[data-testid=device-revoke-confirm]").click()
    await page.locator("#screen-revoked").wait_for(timeout=STEP_MS)
    await nothing_ran(phone, "removed: the revoked screen")
    after = await kept_in_the_browser(page)
    assert not [e for e in after["cached"] if "/v1/" in e["url"]], [e["url"] for e in after["cached"]]
    assert [key for key, _ in after["indexed"]] in ([], ["language"]), after["indexed"]


async def test_the_app_is_locked_until_the_passkey_verifies_the_citizen(platform, kiosk, phone):
    """Whoever holds the citizen's unlocked browser with the app open cannot use it without the fingerprint: a freshly
    loaded app asks the passkey for its device token; failing, it shows the locked screen and no call that needs a
    device token succeeds - not by navigating, not by a page that asks without user verification (the platform
    refuses that assertion). With the fingerprint, "try again" unlocks it, nothing having been wiped."""
    page = phone.page
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(), selfie(), kiosk=kiosk)
    await phone.bind(enrolment["account_id"], enrolment["activation_code"], "Locked phone")
    [unlocking_token, *_] = await eventually(lambda: phone.device_tokens, timeout_s=10)
    assert claims_of(unlocking_token)["amr"] == ["swk", "user", "mfa"]

    await phone.user_verification(False)  # the fingerprint fails from now on
    # What the reloaded app asks counts from the moment its page replaces the bound one (whose answers may still land).
    marks: list[int] = []
    page.on("framenavigated", lambda frame: marks.append(len(phone.api_answers)) if frame == page.main_frame else None)
    await page.reload()
    since = marks[0]
    await page.locator("#screen-locked").wait_for(timeout=STEP_MS)
    assert "fingerprint" in await page.locator("#locked-message").inner_text()
    assert await page.locator("#nav").is_hidden()
    await assert_accessible(page, "locked")
    # Another screen by its address: still locked (the passkey is not even asked again until "try again").
    await page.goto(phone.app_url + "#devices")
    await page.locator("#screen-locked #locked-retry").wait_for(timeout=STEP_MS)
    await page.locator("#locked-retry").click()
    await page.locator("#locked-error").wait_for(timeout=STEP_MS)  # the check failed: said so, the button back
    await page.locator("#locked-retry:enabled").wait_for(timeout=STEP_MS)
    # A page asking the authenticator without user verification: the platform refuses its assertion.
    await page.evaluate(ASK_WITHOUT_USER_VERIFICATION)
    await page.locator("#locked-error").evaluate("e => e.remove()")
    await page.locator("#locked-retry").click()
    await page.locator("#locked-error").wait_for(timeout=STEP_MS)
    tried = phone.api_answers[since:]
    assert ("POST", "/v1/devices/token", 403) in tried, tried
    assert [answer for answer in tried if answer[2] < 400] == [], tried  # nothing that needs a device token worked
    assert await page.locator("#screen-locked").count() == 1

    # The fingerprint again: "try again" unlocks; the keys were kept.
    await page.evaluate(ASK_AS_THE_APP_DOES)
    await phone.user_verification(True)
    await page.locator("#locked-retry").click()
    await page.locator("#screen-devices [data-testid=device-item][data-current=true]").wait_for(timeout=STEP_MS)
    assert ("POST", "/v1/devices/token", 200) in phone.api_answers[since:]
    assert await page.locator("#nav").is_visible()
    await nothing_ran(phone, "locked and unlocked")
