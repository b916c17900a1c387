"""The citizen web app (clients/citizen_web, served at /app/) driven as a phone in Chromium, for `make demo` and the tests.

A phone-sized browser context (390x844, mobile, touch) on the app's canonical origin with a virtual WebAuthn
authenticator (Chrome DevTools Protocol: a platform authenticator with user verification, as a phone's fingerprint
reader) and a camera: Chromium's fake capture device plays a .y4m file the driver writes from a picture of the
computer's screen. Linux Chromium has no BarcodeDetector, so an init script installs one that hands the video frame
to this process, where zxing-cpp reads it; the app's own camera code runs for real.

Everything the driver does, it does as a person does: it clicks the app's controls (ids from docs/citizen-app.md)
and reads what the screens show; it never calls the platform's APIs itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PIL import Image
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Response
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

PHONE_SIZE = {"width": 390, "height": 844}
CAMERA_SIZE = (640, 480)  # the fake camera's frame; it must not change while the browser runs
STEP_TIMEOUT_MS = 30_000

# Chromium's switches for the fake camera (the file is read each time a capture starts).
def camera_args(y4m: Path) -> list[str]:
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"]


# The app's controls and screens (docs/citizen-app.md is the source of these ids).
IDS = {
    "bind_account": "#bind-account-id",
    "bind_code": "#bind-activation-code",
    "bind_name": "#bind-device-name",
    "bind_submit": "#bind-submit",
    "approvals": "#screen-approvals",
    "prompt_card": "a[data-approval-id]",
    "prompt": "#screen-prompt",
    "prompt_client": "#prompt-client",
    "prompt_code": "#prompt-code",
    "approve": "#approve",
    "deny": "#deny",
    "decided": "#prompt-done",
    "decision_error": "#decision-error",
    "scan_open": "#nav-scan",
    "scan_start": "#scan-start",
    "inbox_open": "#nav-inbox",
    "inbox": "#screen-inbox",
    "inbox_item": "[data-inbox-id]",
    "message": "#screen-message",
    "message_body": "#message-body",
    "revoked": "#screen-revoked",
}
# What says a screen has finished loading (the others: their body is no longer aria-busy).
READY = {"approvals": "#approvals-list, #approvals-empty", "scan": "#scan-start, #scan-unsupported"}
# Every screen a bound app shows from its navigation (the README's tour and the accessibility checks visit each).
NAVIGATION = ["approvals", "scan", "inbox", "consents", "devices", "activity", "preferences"]


def app_url(issuer: str) -> str:
    """The web app's canonical address for an issuer (docs/api.md): a loopback IP host becomes `localhost`, since
    WebAuthn refuses IP addresses as relying party ids."""
    parts = urlsplit(issuer)
    host = "localhost" if parts.hostname in ("127.0.0.1", "::1") else parts.hostname
    return urlunsplit((parts.scheme, f"{host}:{parts.port}" if parts.port else host, "/app/", "", ""))


# A BarcodeDetector for Chromium on Linux (it has none): the frame goes to the driver, which reads it with zxing-cpp.
BARCODE_DETECTOR = """
(() => {
  class BarcodeDetector {
    constructor(options) { this.formats = (options && options.formats) || ["qr_code"]; }
    static async getSupportedFormats() { return ["qr_code"]; }
    async detect(source) {
      let width = source.videoWidth || source.naturalWidth || source.displayWidth || source.width;
      let height = source.videoHeight || source.naturalHeight || source.displayHeight || source.height;
      if (!width || !height) return [];
      const canvas = document.createElement("canvas");
      canvas.width = width; canvas.height = height;
      const context = canvas.getContext("2d");
      if (source instanceof ImageData) context.putImageData(source, 0, 0);
      else if (source instanceof Blob) context.drawImage(await createImageBitmap(source), 0, 0);
      else context.drawImage(source, 0, 0, width, height);
      const text = await window.__harbourDecodeQr(canvas.toDataURL("image/png"));
      if (!text) return [];
      return [{rawValue: text, format: "qr_code", boundingBox: new DOMRectReadOnly(0, 0, width, height),
               cornerPoints: [{x: 0, y: 0}, {x: width, y: 0}, {x: width, y: height}, {x: 0, y: height}]}];
    }
  }
  window.BarcodeDetector = BarcodeDetector;
})();
"""


class PhoneFailed(AssertionError):
    pass


def write_y4m(picture: Image.Image, path: Path) -> None:
    """One frame of 4:2:0 video (YUV4MPEG2) showing `picture` centred on white, as Chromium's fake camera plays it."""
    width, height = CAMERA_SIZE
    frame = Image.new("RGB", CAMERA_SIZE, "white")
    picture = picture.convert("RGB")
    scale = min((width - 40) / picture.width, (height - 40) / picture.height)
    picture = picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.NEAREST)
    frame.paste(picture, ((width - picture.width) // 2, (height - picture.height) // 2))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    data = y.tobytes() + cb.resize(half, Image.BILINEAR).tobytes() + cr.resize(half, Image.BILINEAR).tobytes()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + data)
    tmp.replace(path)


def decode_qr(data_url: str) -> str | None:
    import zxingcpp

    png = base64.b64decode(data_url.split(",", 1)[1])
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return found[0].text if found else None


@dataclass
class WebPhone:
    """The web app in a phone-sized context of `browser` (launched with camera_args(camera))."""

    browser: Browser
    app_url: str  # the canonical origin's /app/ (http://localhost:<gateway port>/app/)
    camera: Path | None = None  # the file the browser's fake camera plays (camera_args); None: no scanning
    language: str = "en"
    viewport: dict = field(default_factory=lambda: dict(PHONE_SIZE))  # e.g. {"width": 320, "height": 640}
    screenshots: Path | None = None
    tour: Path | None = None  # also each screen's first picture here, small (the README's tour: docs/screenshots/)
    tour_names: frozenset[str] | None = None  # only these file names (app-<screen>[-<language>].png) go to the tour
    check: Callable[[Page, str], Awaitable[None]] | None = None  # run on every screen shown (e.g. axe-core)
    context: BrowserContext | None = None
    page: Page | None = None
    cdp: CDPSession | None = None
    authenticator_id: str = ""
    shots: list[Path] = field(default_factory=list)
    tour_written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    api_answers: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status) of /v1/ calls

    async def open(self) -> "WebPhone":
        origin = re.match(r"https?://[^/]+", self.app_url).group(0)
        self.context = await self.browser.new_context(viewport=self.viewport, is_mobile=True, has_touch=True,
                                                      locale={"en": "en-GB"}.get(self.language, self.language))
        await self.context.grant_permissions(["camera"], origin=origin)
        await self.context.expose_binding("__harbourDecodeQr", lambda _source, data_url: decode_qr(data_url))
        await self.context.add_init_script(BARCODE_DETECTOR)
        self.page = await self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(f"{m.text} @ {m.location.get('url')}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("response", self._record)
        self.cdp = await self.context.new_cdp_session(self.page)
        await self.cdp.send("WebAuthn.enable", {"enableUI": False})
        added = await self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True}})
        self.authenticator_id = added["authenticatorId"]
        return self

    def _record(self, response: Response) -> None:
        path = response.url.split("://", 1)[1].split("/", 1)[-1]
        if path.startswith("v1/"):
            self.api_answers.append((response.request.method, "/" + path.split("?")[0], response.status))

    async def close(self) -> None:
        if self.context is not None:
            await self.context.close()

    async def user_verification(self, succeeds: bool) -> None:
        """The fingerprint (or face, or screen lock) check the authenticator makes passes or fails from now on."""
        await self.cdp.send("WebAuthn.setUserVerified", {"authenticatorId": self.authenticator_id, "isUserVerified": succeeds})

    async def credentials(self) -> list[dict]:
        return (await self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id}))["credentials"]

    async def shot(self, name: str) -> Path | None:
        if self.check is not None:
            await self.check(self.page, f"app: {name}")
        if self.screenshots is None:
            return None
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"phone-{len(self.shots) + 1:02d}-{name}-{self.language}.png"
        await self.page.screenshot(path=str(path))
        self.shots.append(path)
        if self.tour is not None:
            small = self.tour / (f"app-{name}.png" if self.language == "en" else f"app-{name}-{self.language}.png")
            wanted = self.tour_names is None or small.name in self.tour_names
            if wanted and not any(small.name == p.name for p in self.tour_written):
                small.parent.mkdir(parents=True, exist_ok=True)
                Image.open(path).convert("RGB").quantize(colors=64).save(small, optimize=True)
                self.tour_written.append(small)
        return path

    def locator(self, name: str):
        return self.page.locator(IDS[name])

    # -- what a person does ------------------------------------------------------------------------------------------

    async def bind(self, account_id: str, activation_code: str, device_name: str = "My phone") -> None:
        """Opens the app, types the kiosk slip's account id and activation code, and makes the passkey."""
        await self.page.goto(f"{self.app_url}?lang={self.language}")
        await self.locator("bind_account").wait_for(timeout=STEP_TIMEOUT_MS)
        await self.shot("bind")
        await self.locator("bind_account").fill(account_id)
        await self.locator("bind_code").fill(activation_code)
        await self.locator("bind_name").fill(device_name)
        await self.locator("bind_submit").click()
        await self.locator("approvals").wait_for(timeout=STEP_TIMEOUT_MS)
        if not await self.credentials():
            raise PhoneFailed("the app says it is bound but the authenticator holds no passkey")
        await self.shot("approvals")

    async def go(self, screen: str) -> None:
        """Opens a screen from the app's navigation."""
        await self.page.locator(f"#nav-{screen}").click()
        await self.page.locator(READY.get(screen, f"#screen-{screen} .body[aria-busy=false]")).first.wait_for(timeout=STEP_TIMEOUT_MS)

    async def scan(self, screen: Page, qr_selector: str = "svg.qr-code") -> None:
        """Points the phone's camera at the computer's screen: the QR code shown there is what the camera sees."""
        # What the screen shows where the code is (a picture of the region: the page redraws the code every second),
        # once the page has drawn it: a person waits for the code to appear before pointing the camera.
        code = screen.locator(qr_selector)
        with contextlib.suppress(PlaywrightTimeoutError):
            await code.wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
        box = await code.bounding_box()
        if box is None:
            raise PhoneFailed("the computer's screen shows no QR code")
        if self.camera is None:
            raise PhoneFailed("this phone has no camera: the browser was not launched with camera_args")
        picture = Image.open(io.BytesIO(await screen.screenshot(clip=box)))
        write_y4m(picture, self.camera)
        await self.locator("scan_open").click()
        await self.locator("scan_start").click()
        await self.locator("prompt").wait_for(timeout=STEP_TIMEOUT_MS)

    async def log_in(self, screen: Page, client_name: str) -> dict:
        """Scans the login page's QR code; the app shows the login (the same matching code as the computer); approves."""
        await self.scan(screen)
        await self.locator("approve").wait_for(timeout=STEP_TIMEOUT_MS)
        shown_client = (await self.locator("prompt_client").inner_text()).strip()
        if shown_client != client_name:
            raise PhoneFailed(f"the phone was asked to log in to {shown_client}")
        code_on_screen = (await screen.locator(".code").inner_text()).strip()
        code_on_phone = (await self.locator("prompt_code").inner_text()).strip()
        if code_on_phone != code_on_screen:
            raise PhoneFailed(f"the phone shows the code {code_on_phone}, the computer {code_on_screen}")
        return await self.approve_shown("login")

    async def prompt(self, action: str, client_name: str, timeout_s: float = 30.0) -> Any:
        """The card of the pending prompt of `action` from `client_name`, once the approvals screen lists it (live)."""
        if not await self.locator("approvals").count():
            await self.go("approvals")
        cards = self.page.locator(f'{IDS["prompt_card"]}[data-action="{action}"]').filter(has_text=client_name)
        try:
            await cards.first.wait_for(timeout=timeout_s * 1000)
        except PlaywrightTimeoutError:
            raise PhoneFailed(f"no {action} prompt from {client_name} on the phone within {timeout_s:.0f}s") from None
        return cards.first

    async def open_prompt(self, action: str, client_name: str) -> str:
        card = await self.prompt(action, client_name)
        approval_id = await card.get_attribute("data-approval-id")
        await card.click()
        await self.locator("approve").wait_for(timeout=STEP_TIMEOUT_MS)
        return approval_id

    async def approve(self, action: str, client_name: str) -> dict:
        """Opens the prompt from the approvals screen, reads what it asks, approves (the authenticator verifies the user)."""
        approval_id = await self.open_prompt(action, client_name)
        return {"approval_id": approval_id, **await self.approve_shown(action)}

    async def approve_shown(self, action: str) -> dict:
        """Approves the prompt on screen (the authenticator verifies the user); fails unless the app says approved."""
        shown = (await self.locator("prompt").inner_text()).strip()
        await self.shot(f"prompt-{action}")
        await self._mark_earlier_refusals()
        await self.locator("approve").click()
        refusal = self.page.locator(f"{IDS['decision_error']}:not([data-earlier])")
        await self.locator("decided").or_(refusal).first.wait_for(timeout=STEP_TIMEOUT_MS)
        if await refusal.count():
            await self.shot(f"refused-{action}")
            raise PhoneFailed(f"the {action} approval failed: {(await self.locator('decision_error').inner_text()).strip()}")
        if await self.locator("decided").get_attribute("data-status") != "approved":
            raise PhoneFailed(f"the {action} prompt is {await self.locator('decided').get_attribute('data-status')}, not approved")
        await self.shot(f"approved-{action}")
        return {"shown": shown}

    async def _mark_earlier_refusals(self) -> None:
        """An earlier refusal still on screen is marked, so that only the next attempt's answer counts."""
        await self.page.evaluate("""() => document.querySelectorAll("#decision-error").forEach(e => e.dataset.earlier = "1")""")

    async def try_to_approve(self) -> str:
        """Approves the prompt on screen expecting a refusal; returns the error the app shows (the buttons come back)."""
        await self._mark_earlier_refusals()
        await self.locator("approve").click()
        error = self.page.locator(f"{IDS['decision_error']}:not([data-earlier])")
        await error.wait_for(timeout=STEP_TIMEOUT_MS)
        await self.page.locator(f"{IDS['approve']}:enabled").wait_for(timeout=STEP_TIMEOUT_MS)
        return (await error.inner_text()).strip()

    async def message(self, sender: str, containing: str, timeout_s: float = 30.0) -> dict:
        """Opens the inbox and the message from `sender` whose subject contains `containing` (reading marks it read)."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.go("inbox")
            items = self.page.locator(IDS["inbox_item"]).filter(has_text=sender).filter(has_text=containing)
            if await items.count():
                break
            if time.monotonic() > deadline:
                raise PhoneFailed(f"no message from {sender} about {containing} in the inbox within {timeout_s:.0f}s")
            await asyncio.sleep(0.5)
        item = items.first
        message_id, unread = await item.get_attribute("data-inbox-id"), await item.get_attribute("data-read") == "false"
        await self.shot("inbox")
        await item.click()
        await self.locator("message_body").wait_for(timeout=STEP_TIMEOUT_MS)
        subject = (await self.page.locator("#screen-message h1").inner_text()).strip()
        body = (await self.locator("message_body").inner_text()).strip()
        await self.shot("message")
        return {"id": message_id, "subject": subject, "body": body, "was_unread": unread}
