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
import io
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Response

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
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
    "home": "#screen-approvals",
    "prompt": "[data-approval-id]",
    "approve": "#approve",
    "deny": "#deny",
    "decision_error": "#decision-error",
    "scan_open": "#nav-scan",
    "scan_start": "#scan-start",
    "inbox_open": "#nav-inbox",
    "inbox_item": "[data-inbox-id]",
    "revoked": "#screen-revoked",
}

# A BarcodeDetector for Chromium on Linux (it has none): the frame goes to the driver, which reads it with zxing-cpp.
BARCODE_DETECTOR = """
(() => {
  if (window.__harbourDecodeQr === undefined && !("__harbourDecodeQr" in window)) { /* bound by the driver */ }
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
    camera: Path
    language: str = "en"
    screenshots: Path | None = None
    check: Callable[[Page, str], Awaitable[None]] | None = None  # run on every screen shown (e.g. axe-core)
    context: BrowserContext | None = None
    page: Page | None = None
    cdp: CDPSession | None = None
    authenticator_id: str = ""
    shots: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    api_answers: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status) of /v1/ calls

    async def open(self) -> "WebPhone":
        origin = re.match(r"https?://[^/]+", self.app_url).group(0)
        self.context = await self.browser.new_context(**PHONE, locale={"en": "en-GB"}.get(self.language, self.language))
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
        if await self.locator("bind_name").count():
            await self.locator("bind_name").fill(device_name)
        await self.locator("bind_submit").click()
        await self.locator("home").wait_for(timeout=STEP_TIMEOUT_MS)
        if not await self.credentials():
            raise PhoneFailed("the app says it is bound but the authenticator holds no passkey")
        await self.shot("bound")

    async def scan(self, screen: Page, qr_selector: str = "svg.qr-code") -> None:
        """Points the phone's camera at the computer's screen: the QR code shown there is what the camera sees."""
        picture = Image.open(io.BytesIO(await screen.locator(qr_selector).screenshot()))
        write_y4m(picture, self.camera)
        await self.locator("scan_open").click()
        if await self.locator("scan_start").count():
            await self.locator("scan_start").click()
        await self.shot("scan")

    async def prompt(self, action: str, client_name: str, timeout_s: float = 30.0) -> Any:
        """The pending prompt of `action` from `client_name`, once the app shows it (locator of its card)."""
        deadline = time.monotonic() + timeout_s
        cards = self.page.locator(f'{IDS["prompt"]}[data-action="{action}"]')
        while time.monotonic() < deadline:
            for index in range(await cards.count()):
                card = cards.nth(index)
                if client_name in await card.inner_text():
                    return card
            await asyncio.sleep(0.2)
        raise PhoneFailed(f"no {action} prompt from {client_name} on the phone within {timeout_s:.0f}s")

    async def approve(self, action: str, client_name: str, *, expect_refusal: bool = False) -> dict:
        """Opens the prompt, reads what it asks, approves (the authenticator verifies the user)."""
        card = await self.prompt(action, client_name)
        approval_id = await card.get_attribute("data-approval-id")
        await card.click()
        await self.locator("approve").wait_for(timeout=STEP_TIMEOUT_MS)
        shown = (await self.page.locator("main").inner_text()).strip()
        await self.shot(f"approve-{action}")
        await self.locator("approve").click()
        if expect_refusal:
            await self.locator("decision_error").wait_for(timeout=STEP_TIMEOUT_MS)
            await self.shot(f"refused-{action}")
            return {"approval_id": approval_id, "shown": shown, "error": (await self.locator("decision_error").inner_text()).strip()}
        await self.page.locator(f'{IDS["prompt"]}[data-approval-id="{approval_id}"]').wait_for(state="detached", timeout=STEP_TIMEOUT_MS)
        return {"approval_id": approval_id, "shown": shown}

    async def inbox(self, sender: str, containing: str, timeout_s: float = 30.0) -> dict:
        """Opens the inbox and the message from `sender` whose subject contains `containing` (marking it read)."""
        await self.locator("inbox_open").click()
        items = self.page.locator(IDS["inbox_item"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index in range(await items.count()):
                item = items.nth(index)
                text = await item.inner_text()
                if sender in text and containing in text:
                    await self.shot("inbox")
                    await item.click()
                    body = (await self.page.locator("main").inner_text()).strip()
                    await self.shot("message")
                    return {"id": await item.get_attribute("data-inbox-id"), "summary": text.strip(), "body": body}
            await asyncio.sleep(0.3)
            if time.monotonic() + 0.3 < deadline:
                await self.locator("inbox_open").click()
        raise PhoneFailed(f"no message from {sender} about {containing} in the inbox within {timeout_s:.0f}s")
