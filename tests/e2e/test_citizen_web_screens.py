"""The citizen's web app (clients/citizen_web, served by auth at /app/) in Chromium, screen by screen, at phone widths.

The app runs at its canonical origin (http://localhost:<gateway port>/app/: WebAuthn refuses IP addresses) with a
virtual WebAuthn authenticator (Chrome DevTools Protocol, a platform authenticator with user verification) standing
in for the phone's fingerprint reader. A citizen enrolled at the kiosk binds the app with the slip's account id and
activation code (a passkey is made), then logs in to a relying party on the same phone (the login page's app link
opens the app), releases form fields (keeping one optional field back), reads the inbox, changes preferences and the
language, revokes a consent, renames the device, reads the activity, goes offline (the service worker's shell and the
last answers), and finally the device is revoked at a kiosk: the app says so, deletes its keys and does nothing more.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import requests
from playwright.async_api import Browser, Page, expect

from clients.citizen_app import AppError, CitizenApp, Profile
from clients.relying_party.web_phone import WebPhone, app_url

from ..support.axe import assert_accessible
from ..support.calls import bearer
from ..support.citizens import enrolled_app
from ..support.formfill import FIELDS, wait_for_status
from ..support.notify import Agency
from ..support.operator import admin
from ..support.oidc import authorize_url, claims_of, client_token, register, token_request
from ..support.people import identity, selfie
from ..support.polling import eventually
from ..support.prompts import approval_request, publish_prompt
from ..support.signing import create as create_signing, signing_rp, wait_for as wait_for_signing

pytestmark = pytest.mark.e2e

NARROW = {"width": 320, "height": 640}
PHONE = {"width": 390, "height": 844}
STEP_MS = 20_000
SCREENS = ["approvals", "scan", "inbox", "consents", "devices", "activity", "preferences"]


def unexpected(phone: WebPhone) -> list[str]:
    """What went wrong in the browser: a refused call the test provokes (a wrong code, a revoked device) is logged by
    Chromium as a failed resource, anything else is unexpected."""
    return [e for e in phone.errors if not e.startswith("Failed to load resource")]


@pytest.fixture
async def phone(platform, chromium: Browser, request) -> AsyncIterator[WebPhone]:
    """The app in a phone-sized context (320 px unless parametrized) with a virtual authenticator (WebPhone)."""
    opened = await WebPhone(chromium, app_url(platform.gateway), viewport=getattr(request, "param", NARROW)).open()
    try:
        yield opened
    finally:
        await opened.close()


async def enrol(platform, kiosk) -> tuple[dict, dict]:
    """A citizen enrolled at the kiosk, not yet bound: (the person, the enrolment: account id and activation code)."""
    person = identity()
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie(), kiosk=kiosk)
    return person, enrolment


async def fits(page: Page) -> None:
    """Nothing wider than the screen: no horizontal scrolling."""
    width, viewport = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport, f"{width}px of content in a {viewport}px screen"


async def open_screen(page: Page, name: str) -> None:
    """Through the navigation, as a person does; the screen's heading takes the focus, its data has loaded."""
    await page.locator(f"#nav-{name}").click()
    await page.locator(f"#screen-{name}").wait_for(timeout=STEP_MS)
    await page.wait_for_function(
        f"""() => {{ const s = document.getElementById("screen-{name}");
              return s && !s.querySelector('[aria-busy="true"]'); }}""", timeout=STEP_MS)
    assert await page.evaluate("document.activeElement && document.activeElement.id") == "screen-title"
    await fits(page)
    await assert_accessible(page, f"app: {name} at {page.viewport_size['width']}px")


async def bind(phone: WebPhone, enrolment: dict, *, keyboard: bool = False) -> None:
    page = phone.page
    await page.goto(phone.app_url + "?lang=en")
    await page.locator("#bind-account-id").wait_for(timeout=STEP_MS)
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.locator("#nav").is_hidden()
    await fits(page)
    await assert_accessible(page, "app: bind")
    if keyboard:
        # Keyboard only: the skip link first, then the form's fields in order, Enter submits.
        for _ in range(12):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == "bind-account-id":
                break
        assert await page.evaluate("document.activeElement.id") == "bind-account-id"
        await page.keyboard.type(enrolment["account_id"])
        await page.keyboard.press("Tab")
        await page.keyboard.type(enrolment["activation_code"])
        await page.keyboard.press("Tab")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("Test phone")
        await page.keyboard.press("Enter")
    else:
        await page.locator("#bind-account-id").fill(enrolment["account_id"])
        await page.locator("#bind-activation-code").fill(enrolment["activation_code"])
        await page.locator("#bind-device-name").fill("Test phone")
        await page.locator("#bind-submit").click()
    await page.locator("#screen-approvals").wait_for(timeout=STEP_MS)
    # The passkey the app keeps is on the authenticator (a refused attempt before may have left one more there).
    credentials = await phone.credentials()
    kept = await stored(page, "credential_id")
    assert kept in {c["credentialId"].replace("+", "-").replace("/", "_").rstrip("=") for c in credentials}, credentials


async def stored(page: Page, key: str):
    """One value the app keeps in IndexedDB (None when absent)."""
    return await page.evaluate("""(key) => new Promise((resolve, reject) => {
        const opened = indexedDB.open("harbour-id");
        opened.onsuccess = () => {
            const get = opened.result.transaction("device").objectStore("device").get(key);
            get.onsuccess = () => resolve(get.result === undefined ? null : get.result);
            get.onerror = () => reject(get.error);
        };
        opened.onerror = () => reject(opened.error);
    })""", key)


async def stored_keys(page: Page) -> list[str]:
    """The keys of the app's IndexedDB store (what it keeps on the phone)."""
    return await page.evaluate("""() => new Promise((resolve, reject) => {
        const opened = indexedDB.open("harbour-id");
        opened.onsuccess = () => {
            const db = opened.result;
            if (!db.objectStoreNames.contains("device")) { resolve([]); return; }
            const keys = db.transaction("device").objectStore("device").getAllKeys();
            keys.onsuccess = () => resolve(keys.result);
            keys.onerror = () => reject(keys.error);
        };
        opened.onerror = () => reject(opened.error);
    })""")


async def login_by_app_link(platform, metadata, phone: WebPhone, rp: dict, scope: str = "openid",
                            on_prompt: Callable[[], Awaitable[None]] | None = None) -> dict:
    """The citizen logs in to `rp` on the phone: its login page's button opens the app, which shows the prompt
    (`on_prompt` is awaited while it is shown); the citizen approves (passkey) and goes back to the site, which gets its
    code. Returns the token response, the phone's page settled on the site's redirect (loaded or failed)."""
    page = phone.page
    url, verifier = authorize_url(metadata, rp["client_id"], redirect_uri=rp["redirect_uris"][0], state="web-app-1", scope=scope)
    await page.goto(url)
    button = page.locator("#open-app")
    await button.wait_for(timeout=STEP_MS)
    await button.click()
    await page.wait_for_url(re.compile(r"^http://localhost:\d+/app/#prompt/"), timeout=STEP_MS)
    await page.locator("#screen-prompt #approve").wait_for(timeout=STEP_MS)
    assert (await page.locator("#prompt-client").inner_text()).strip() == rp["client_name"]
    assert re.fullmatch(r"\d{4}", (await page.locator("#prompt-code").inner_text()).strip())
    assert set(await page.locator("#prompt-scopes li").evaluate_all("items => items.map(i => i.dataset.scope)")) == set(scope.split())
    await fits(page)
    await assert_accessible(page, "app: login prompt opened by the app link")
    if on_prompt is not None:
        await on_prompt()
    await page.locator("#approve").click()
    done = page.locator("#prompt-done")
    await done.wait_for(timeout=STEP_MS)
    assert await done.get_attribute("data-status") == "approved"
    await assert_accessible(page, "app: login approved, back to the site offered")
    async with page.expect_request(lambda r: r.url.startswith(rp["redirect_uris"][0]), timeout=STEP_MS) as arrival:
        await page.locator("#prompt-back-to-site").click()
    code = re.search(r"[?&]code=([^&]+)", (await arrival.value).url).group(1)
    # The navigation to the redirect goes on after its request left: a caller evaluating the page meanwhile would have
    # its execution context destroyed under it (seen once in CI).
    await page.wait_for_load_state()
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=rp["redirect_uris"][0],
                           code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


async def test_the_web_app_screen_by_screen_at_320px(platform, kiosk, metadata, phone):
    page = phone.page
    person, enrolment = await enrol(platform, kiosk)

    # A wrong activation code: the app says so, with the tries left; nothing is kept.
    await page.goto(phone.app_url + "?lang=en")
    await page.locator("#bind-account-id").fill(enrolment["account_id"])
    await page.locator("#bind-activation-code").fill("WRONG-WRONG")
    await page.locator("#bind-submit").click()
    error = page.locator("#bind-error [data-testid=error]")
    await error.wait_for(timeout=STEP_MS)
    assert "4" in await error.inner_text(), await error.inner_text()
    assert set(await stored_keys(page)) <= {"language"}  # the language chosen, nothing of the device
    await assert_accessible(page, "app: bind refused")

    # Bound with the keyboard alone; the key pair is kept, the private key cannot be exported.
    await bind(phone, enrolment, keyboard=True)
    assert set(await stored_keys(page)) >= {"keys", "device_id", "account_id", "credential_id", "device_name"}
    assert await page.evaluate("""() => new Promise((resolve) => {
        const opened = indexedDB.open("harbour-id");
        opened.onsuccess = () => {
            const get = opened.result.transaction("device").objectStore("device").get("keys");
            get.onsuccess = () => resolve([get.result.privateKey.extractable, get.result.privateKey.type]);
        };
    })""") == [False, "private"]
    assert not await page.evaluate("JSON.stringify(localStorage).includes('ey') || Object.keys(sessionStorage).length > 0")
    # Installable: the manifest is linked and a service worker controls the app.
    manifest = requests.get(phone.app_url + "manifest.webmanifest", timeout=10).json()
    assert manifest["start_url"] == "/app/" and manifest["display"] == "standalone"
    assert {(i["sizes"], i.get("purpose", "any")) for i in manifest["icons"]} >= {("192x192", "any"), ("512x512", "maskable")}
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=STEP_MS)

    # Logging in on the same phone: the app link opens the app; the ID token says how the citizen was verified.
    rp = register(platform, client_name="Harbour Libraries", redirect_uris=["http://127.0.0.1:9/callback"],
                  scope="openid formfill notify", formfill_fields=FIELDS)
    tokens = await login_by_app_link(platform, metadata, phone, rp, scope="openid formfill")
    claims = claims_of(tokens["id_token"])
    assert claims["amr"] == ["swk", "user", "mfa"], claims

    # A prompt queued while the app shows its requests appears at once (the approvals stream) and is announced.
    await page.goto(phone.app_url + "#approvals")
    await open_screen(page, "approvals")
    # Every text the live region shows, kept: a message of the journey (the device's alert) may be announced just
    # after the prompt, and a wait on the region's current text could miss the prompt's (a fresh-clone run did).
    await page.evaluate("""() => {
        const live = document.getElementById("live");
        window.announced = [];
        new MutationObserver(() => window.announced.push(live.textContent))
            .observe(live, {childList: true, characterData: true, subtree: true});
    }""")

    async def ask_logged_in():
        response = requests.post(platform.gateway + "/v1/formfill/requests", headers=bearer(tokens["access_token"]), timeout=10,
                                 json={"fields": [{"name": "name_en", "required": True}], "purpose": "Renew a library card"})
        return response.json() if response.status_code == 201 else None

    live_request = await eventually(ask_logged_in, timeout_s=20)
    approval_id = f"formfill-{live_request['request_id']}"
    card = page.locator(f'[data-testid=approval-item][data-approval-id="{approval_id}"]')
    await card.wait_for(timeout=STEP_MS)
    assert await card.get_attribute("data-action") == "formfill"
    await page.wait_for_function("() => window.announced.some((text) => text.includes('Harbour Libraries'))",
                                 timeout=STEP_MS)
    await expect(page.locator("#approvals-count")).to_have_text("1", timeout=STEP_MS)
    await assert_accessible(page, "app: a new request in the list")
    await card.click()
    await page.locator("#screen-prompt #deny").click()
    await page.locator("#prompt-done[data-status=denied]").wait_for(timeout=STEP_MS)

    # The library writes to the citizen: the inbox shown and its badge count it as it arrives (the inbox stream).
    await open_screen(page, "inbox")
    unread_before = int(await page.locator("#inbox-count").get_attribute("data-unread"))
    library = Agency(platform, metadata, "Harbour Libraries", client=rp)
    template = await library.template()
    sent = await library.send({"template_id": template["template_id"], "sub": claims["sub"],
                               "personalisation": {"name": "Chan Tai Man", "licence": "LIB-42"}})
    assert sent.status_code == 201, sent.text
    # The message appears in the inbox shown (no reload) and the badges count it (another message of the journey may
    # land meanwhile: at least one more).
    await page.locator("[data-testid=inbox-item]", has_text="Harbour Libraries").first.wait_for(timeout=2 * STEP_MS)
    await expect(page.locator("#inbox-count")).not_to_have_attribute("data-unread", str(unread_before), timeout=STEP_MS)
    unread_now = int(await page.locator("#inbox-count").get_attribute("data-unread"))
    assert unread_now >= unread_before + 1, (unread_before, unread_now)
    await expect(page.locator("#inbox-unread")).to_have_text(str(unread_now), timeout=STEP_MS)

    # A form fill, opened by pasting its link on the scan screen; the citizen keeps one optional field back.
    water = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS)
    token = client_token(metadata, water, "formfill")

    async def ask():
        response = requests.post(platform.gateway + "/v1/formfill/requests", headers=bearer(token), timeout=10, json={
            "fields": [{"name": "name_en", "required": True}, {"name": "email", "required": False},
                       {"name": "phone", "required": False}], "purpose": "Open a water account", "standing": True})
        return response.json() if response.status_code == 201 else None

    asked = await eventually(ask, timeout_s=20)
    await page.goto(phone.app_url + "#approvals")
    # The link opened right after the phone was set up can reach formfill before auth's news of the citizen does:
    # its first claim answered as formfill would then (409 citizen-unknown, Retry-After), the app claims again.
    claims = []

    async def first_claim_too_early(route) -> None:
        claims.append(route.request.method)
        if len(claims) > 1:
            return await route.continue_()
        await route.fulfill(status=409, headers={"Retry-After": "1", "Content-Type": "application/problem+json"}, body=json.dumps({
            "type": "https://harbour-id.dev/problems/citizen-unknown", "title": "Citizen unknown", "status": 409,
            "detail": "this citizen is not known to formfill yet; retry shortly"}))

    await page.route(f"**/v1/formfill/requests/{asked['request_id']}/claim", first_claim_too_early)
    await open_screen(page, "scan")
    await page.locator("#scan-link").fill(asked["app_link"])
    await page.locator("#scan-open").click()
    await page.locator("#screen-prompt #approve").wait_for(timeout=STEP_MS)
    assert claims == ["POST", "POST"]
    await page.unroute(f"**/v1/formfill/requests/{asked['request_id']}/claim")
    assert "Harbour Water" in await page.locator("#prompt-client").inner_text()
    assert await page.locator("#prompt-required li").all_inner_texts() == ["Name in English"]
    await fits(page)
    await assert_accessible(page, "app: form-fill prompt")
    await page.locator("#prompt-field-phone").uncheck()
    await page.locator("#approve").click()
    await page.locator("#prompt-done[data-status=approved]").wait_for(timeout=STEP_MS)
    released = await wait_for_status(platform, token, asked["request_id"], "approved")
    assert sorted(released["released_fields"]) == ["email", "name_en"], released

    # The inbox: the device's security alert, unread, then read once opened.
    await open_screen(page, "inbox")
    item = page.locator("[data-testid=inbox-item]").first
    await expect(item).to_have_attribute("data-read", "false", timeout=STEP_MS)
    unread = int(await page.locator("#inbox-count").get_attribute("data-unread"))
    assert unread >= 1
    await expect(page.locator("#inbox-unread")).to_have_text(str(unread), timeout=STEP_MS)
    opened = await item.get_attribute("data-inbox-id")
    await item.click()
    await page.locator("#screen-message #message-body").wait_for(timeout=STEP_MS)
    await fits(page)
    await assert_accessible(page, "app: message")
    await open_screen(page, "inbox")
    # The opened message is shown read, and the count is redrawn to the unread messages shown - not "unread - 1": the
    # journey's other messages (the release just approved...) may land meanwhile (a fresh-clone run read 4 for 3).
    await expect(page.locator(f"[data-testid=inbox-item][data-inbox-id='{opened}']")).to_have_attribute(
        "data-read", "true", timeout=STEP_MS)
    await page.wait_for_function("""() => {
        const count = document.querySelector('#inbox-count');
        const shown = document.querySelectorAll('[data-testid=inbox-item][data-read=false]').length;
        return count && Number(count.dataset.unread) === shown; }""", timeout=STEP_MS)

    # Consents: the standing consent just given, revoked.
    await open_screen(page, "consents")
    consent = page.locator("[data-testid=consent-item]", has_text="Harbour Water")
    assert await consent.get_attribute("data-status") == "active"
    await consent.locator("[data-testid=consent-revoke]").click()
    await page.locator("#consents-revoked").wait_for(timeout=STEP_MS)
    assert await page.locator("[data-testid=consent-item]", has_text="Harbour Water").get_attribute("data-status") == "revoked"

    # Devices: this one, renamed.
    await open_screen(page, "devices")
    mine = page.locator("[data-testid=device-item][data-current=true]")
    assert (await mine.locator(".card-title").inner_text()).strip() == "Test phone"
    await mine.locator("[data-testid=device-name-input]").fill("Kitchen phone")
    await mine.locator("[data-testid=device-rename]").click()
    await page.locator("#devices-renamed").wait_for(timeout=STEP_MS)
    await open_screen(page, "devices")
    assert (await page.locator("[data-testid=device-item][data-current=true] .card-title").inner_text()).strip() == "Kitchen phone"

    # Activity: the login and the release are there, readable. The activity is the audit ledger's, which signing
    # fills from the services' events a moment after they happen (on a loaded machine, after the screen first
    # loads): the screen is drawn again until both show, as a person would look again.
    shown: list[set[str]] = []

    async def activity_shows_the_login_and_the_release() -> bool:
        await open_screen(page, "activity")
        items = page.locator("[data-testid=activity-item]")
        shown.append(set(await items.evaluate_all("items => items.map(i => i.dataset.kind)")))
        return {"login", "release"} <= shown[-1]

    try:
        await eventually(activity_shows_the_login_and_the_release, timeout_s=30, interval_s=0.5)
    except AssertionError:
        raise AssertionError(f"the activity screen showed only {shown[-1]}") from None

    # Preferences: e-mail on with an address, quiet hours, and the language (the app follows it).
    await open_screen(page, "preferences")
    await page.locator("#pref-channel-email").check()
    await page.locator("#pref-email").fill("citizen@example.org")
    await page.locator("#pref-quiet").check()
    await page.locator("#pref-quiet-start").fill("22:30")
    await page.locator("#pref-quiet-end").fill("07:15")
    await page.locator(f'input[name=opt-out][value="{rp["client_id"]}"]').check()  # no more from the library
    await page.locator("#pref-language").select_option("zh-HK")
    await page.locator("#pref-save").click()
    await page.locator("#pref-saved").wait_for(timeout=STEP_MS)
    assert await page.locator("html").get_attribute("lang") == "zh-HK"
    assert (await page.locator("#nav-preferences").inner_text()).strip() == "設定"
    await page.goto(phone.app_url + "#preferences")
    await page.locator("#pref-form").wait_for(timeout=STEP_MS)
    assert await page.locator("html").get_attribute("lang") == "zh-HK"
    assert await page.locator("#pref-channel-email").is_checked()
    assert await page.locator("#pref-email").input_value() == "citizen@example.org"
    assert await page.locator("#pref-quiet-start").input_value() == "22:30"
    assert await page.locator("#pref-language").input_value() == "zh-HK"
    assert await page.locator(f'input[name=opt-out][value="{rp["client_id"]}"]').is_checked()
    # The header's switch: Simplified Chinese, then English again.
    await page.locator("#language").select_option("zh-CN")
    await page.locator("html[lang=zh-CN]").wait_for(state="attached")
    assert (await page.locator("#screen-title").inner_text()).strip() == "设置"
    await page.locator("#language").select_option("en")
    await page.locator("html[lang=en]").wait_for(state="attached")

    # Offline: every screen visited once, then the network gone; a reload shows the shell and the last answers.
    for name in ["inbox", "devices", "consents", "activity", "preferences"]:
        await open_screen(page, name)
    await phone.context.set_offline(True)
    await page.reload()
    await page.locator("#offline-badge").wait_for(state="visible", timeout=STEP_MS)
    await page.locator("#screen-preferences #cached-note").wait_for(timeout=STEP_MS)
    for name in ["inbox", "consents", "activity", "devices"]:
        await open_screen(page, name)
        await page.locator(f"#screen-{name} #cached-note").wait_for(timeout=STEP_MS)
    assert await page.locator("[data-testid=device-item]", has_text="Kitchen phone").count() == 1
    await assert_accessible(page, "app: devices offline, from the saved copy")
    await phone.context.set_offline(False)

    # The phone is lost: the kiosk replaces it, every device is revoked. The app says so, keeps nothing, does nothing.
    # The open app notices by itself (its streams end, a new device token is refused: device-inactive).
    await CitizenApp(Profile(gateway_url=platform.gateway)).replace_at_kiosk(person, selfie(), kiosk=kiosk)
    await page.locator("#screen-revoked").wait_for(timeout=45_000)
    await page.goto(phone.app_url + "#inbox")
    await page.locator("#screen-bind").wait_for(timeout=STEP_MS)
    await page.goto(phone.app_url + "#revoked")
    await page.locator("#screen-revoked").wait_for(timeout=STEP_MS)
    await fits(page)
    await assert_accessible(page, "app: revoked")
    assert await page.locator("#nav").is_hidden()
    assert await stored_keys(page) == ["language"] or await stored_keys(page) == []
    assert not await page.evaluate("caches.has('harbour-data')")
    assert unexpected(phone) == [], phone.errors


@pytest.mark.parametrize("phone", [PHONE], indirect=True)
async def test_each_screen_fits_a_390px_phone_and_removing_this_device_unbinds_the_app(platform, kiosk, metadata, phone, tmp_path):
    page = phone.page
    _, enrolment = await enrol(platform, kiosk)
    # The login page's app link opened before the app is bound: the app asks to be set up first, then shows the login.
    rp = register(platform, client_name="Harbour Museums", redirect_uris=["http://127.0.0.1:9/callback"])
    url, _ = authorize_url(metadata, rp["client_id"], redirect_uri=rp["redirect_uris"][0])
    await page.goto(url)
    await page.locator("#open-app").click()
    await page.locator("#screen-bind #bind-notice").wait_for(timeout=STEP_MS)
    await page.locator("#bind-account-id").fill(enrolment["account_id"])
    await page.locator("#bind-activation-code").fill(enrolment["activation_code"])
    await page.locator("#bind-submit").click()
    await page.locator("#screen-prompt #approve").wait_for(timeout=STEP_MS)
    assert (await page.locator("#prompt-client").inner_text()).strip() == "Harbour Museums"
    await page.locator("#approve").click()
    await page.locator("#prompt-done[data-status=approved]").wait_for(timeout=STEP_MS)
    await page.locator("#prompt-back-to-site").wait_for()
    # A signing request opened by its link: the document's name and the start of its hash; denied.
    registry = signing_rp(platform, "Harbour Lands Registry")
    token = client_token(metadata, registry, "sign")
    digest = hashlib.sha256(f"Deed of assignment {uuid.uuid4()}".encode()).hexdigest()
    asked = await create_signing(platform, token, json={"document_name": "deed.txt", "sha256": digest})
    await open_screen(page, "scan")
    await page.locator("#scan-link").fill(asked["app_link"])
    await page.locator("#scan-open").press("Enter")
    await page.locator("#screen-prompt #deny").wait_for(timeout=STEP_MS)
    assert (await page.locator("#prompt-document").inner_text()).strip() == "deed.txt"
    assert digest.startswith((await page.locator("#prompt-hash").inner_text()).strip())
    await fits(page)
    await assert_accessible(page, "app: signing prompt")
    # By keyboard: from the focused heading, Tab reaches Approve then Deny; Enter denies.
    for _ in range(6):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "deny":
            break
    await page.keyboard.press("Enter")
    await page.locator("#prompt-done[data-status=denied]").wait_for(timeout=STEP_MS)
    await wait_for_signing(platform, token, asked["request_id"], "denied")

    # A prompt left open until it expires: the app stops offering Approve and says it expired.
    expiring = approval_request(enrolment["account_id"], expires_in_s=8)
    await publish_prompt(platform, expiring)
    await open_screen(page, "approvals")
    await page.locator(f'[data-testid=approval-item][data-approval-id="{expiring.approval_id}"]').click(timeout=STEP_MS)
    await page.locator("#screen-prompt #approve").wait_for(timeout=STEP_MS)
    await page.locator("#prompt-status[data-status=expired]").wait_for(timeout=STEP_MS)
    assert await page.locator("#approve").count() == 0

    # A tablet added from the phone: its code entered on the devices screen, the add_device prompt approved (the same
    # matching code on both); then revoked from the phone (two steps): it can do nothing more, the phone goes on.
    tablet = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "tablet.json")
    started = await tablet.start_pairing("Tablet")
    await open_screen(page, "devices")
    await page.locator("#pair-code").fill(started["code"])
    await page.locator("#pair-submit").click()
    await page.locator("#screen-prompt #approve").wait_for(timeout=STEP_MS)
    assert (await page.locator("#prompt-device-name").inner_text()).strip() == "Tablet"
    assert (await page.locator("#prompt-code").inner_text()).strip() == (await tablet.pairing_status())["matching_code"]
    await assert_accessible(page, "app: add a device")
    await page.locator("#approve").click()
    await page.locator("#prompt-done[data-status=approved]").wait_for(timeout=STEP_MS)
    assert (await tablet.finish_pairing(timeout_s=20))["status"] == "bound"
    await open_screen(page, "devices")
    other = page.locator("[data-testid=device-item][data-current=false]", has_text="Tablet")
    assert await other.get_attribute("data-status") == "active"
    await other.locator("[data-testid=device-revoke]").click()
    await other.locator("[data-testid=device-revoke-confirm]").click()
    await page.locator("#devices-revoked").wait_for(timeout=STEP_MS)
    assert await page.locator("[data-testid=device-item][data-current=false]").get_attribute("data-status") == "revoked"
    with pytest.raises(AppError) as refused:
        await tablet.devices()
    assert refused.value.status == 401

    # The account suspended by an operator: the open app says so and stops, keeping its keys; reinstated, it works again.
    assert admin(platform, "set-state", enrolment["account_id"], "suspended", "--reason", "reported stolen").returncode == 0
    await page.locator("#screen-inactive").wait_for(timeout=45_000)
    await assert_accessible(page, "app: account not active")
    assert "keys" in await stored_keys(page)
    assert admin(platform, "set-state", enrolment["account_id"], "active", "--reason", "found again").returncode == 0
    await page.locator("#inactive-retry").click()
    await page.locator("#screen-approvals").wait_for(timeout=STEP_MS)
    for name in SCREENS:
        await open_screen(page, name)
    # The skip link takes the keyboard to the screen shown, and stays on it.
    await page.locator("#skip").focus()
    await page.keyboard.press("Enter")
    assert await page.evaluate("[location.hash, document.activeElement.id]") == ["#preferences", "screen-title"]
    # zh-HK from the header's switch: every screen in Traditional Chinese, <html lang> set.
    await page.locator("#language").select_option("zh-HK")
    await page.locator("html[lang=zh-HK]").wait_for(state="attached")
    for name in SCREENS:
        await open_screen(page, name)
    assert (await page.locator("#screen-title").inner_text()).strip() == "設定"
    # Removing this device (two steps): the app is unbound, its keys and saved data deleted.
    await open_screen(page, "devices")
    mine = page.locator("[data-testid=device-item][data-current=true]")
    await mine.locator("[data-testid=device-revoke]").click()
    await assert_accessible(page, "app: removing this device, confirm")
    await mine.locator("[data-testid=device-revoke-confirm]").click()
    await page.locator("#screen-revoked").wait_for(timeout=STEP_MS)
    assert "keys" not in await stored_keys(page)
    assert unexpected(phone) == [], phone.errors


@pytest.mark.parametrize("phone", [PHONE], indirect=True)
async def test_a_second_phone_is_set_up_from_the_first(platform, kiosk, phone, tmp_path):
    """No kiosk slip: the web app shows a pairing code, the citizen's first phone (the command-line app) enters it;
    both show the same matching code; approved there, the web app is bound to the same account, with its passkey."""
    page = phone.page
    first = await enrolled_app(platform, kiosk, tmp_path, "first-phone")
    # This browser cannot keep the approvals stream open (a proxy that cuts it, say): the app asks now and then instead.
    await phone.context.route("**/v1/approvals/stream", lambda route: route.abort())
    await page.goto(phone.app_url + "?lang=zh-HK")
    await page.locator("#bind-pair").click()
    await page.locator("#screen-pair").wait_for(timeout=STEP_MS)
    await fits(page)
    await assert_accessible(page, "app: set up from another device")
    await page.locator("#pair-device-name").fill("Second phone")
    await page.locator("#pair-start").click()
    code = (await page.locator("#pair-show-code").inner_text(timeout=STEP_MS)).strip()
    claimed = await first.claim_pairing(code)
    shown = page.locator("#pair-matching-code")
    await shown.wait_for(timeout=STEP_MS)
    assert (await shown.inner_text()).strip() == claimed["matching_code"]
    await assert_accessible(page, "app: pairing code claimed, matching code shown")
    await first.approve(claimed["approval_id"])
    await page.locator("#screen-approvals").wait_for(timeout=STEP_MS)
    assert await stored(page, "account_id") == first.profile.account_id
    # ?lang= was a choice: the app opened without it (as an app link opens it) stays in Traditional Chinese.
    await page.goto(phone.app_url)
    await page.locator("#screen-approvals").wait_for(timeout=STEP_MS)
    assert await page.locator("html").get_attribute("lang") == "zh-HK"
    await open_screen(page, "devices")
    assert await page.locator("[data-testid=device-item]").count() == 2
    mine = page.locator("[data-testid=device-item][data-current=true]")
    assert (await mine.locator(".card-title").inner_text()).strip() == "Second phone"

    # The first phone asks to close the account: the prompt reaches this one without its stream; it shows what closing
    # would do, and the citizen denies it.
    asked = await first.request_closure()
    await open_screen(page, "approvals")
    card = page.locator(f'[data-testid=approval-item][data-approval-id="{asked["approval_id"]}"]')
    await card.wait_for(timeout=30_000)
    assert "每隔數秒檢查一次請求" in await page.locator("#stream-status").inner_text()
    await card.click()
    await page.locator("#screen-prompt #deny").wait_for(timeout=STEP_MS)
    assert await page.locator("#prompt-consequences li").count() >= 1
    await assert_accessible(page, "app: close-account prompt")
    await page.locator("#deny").click()
    await page.locator("#prompt-done[data-status=denied]").wait_for(timeout=STEP_MS)
    assert (await first.show(asked["approval_id"]))["status"] == "denied"
    assert [e for e in unexpected(phone) if "/v1/approvals/stream" not in e and "ERR_FAILED" not in e] == [], phone.errors
