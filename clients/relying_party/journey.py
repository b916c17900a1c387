"""The whole journey as a person makes it: a browser on the site (the computer), a phone that approves.

The phone is the citizen web app in a second, phone-sized browser context (web_phone.WebPhone: binds with the kiosk
slip, scans the login page's QR code with its camera, approves with the passkey) or, for scripts, the command-line
reference app (CliPhone). Used by `make demo` (headless, printing each step) and by the browser tests
(tests/e2e/test_demo_site.py), which check the outcome with independent verifiers. Each step waits for what a person
would see, takes a screenshot, runs the optional check on each screen (the tests: axe-core), and fails with a clear
message when the page is not what it should be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from playwright.async_api import Page

from clients.citizen_app import CitizenApp

from .messages import MESSAGES

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright never downloads a browser here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}
DESKTOP_VIEWPORT = {"width": 1280, "height": 800}
STEP_TIMEOUT_MS = 30_000

Check = Callable[[Page, str], Awaitable[None]]


class JourneyFailed(AssertionError):
    pass


@dataclass
class JourneyResult:
    screenshots: list[Path] = field(default_factory=list)
    prefilled: dict[str, str] = field(default_factory=dict)
    reference: str = ""
    signed_pdf: Path | None = None
    confirmation: dict = field(default_factory=dict)  # subject, body (what the phone shows) and id
    timings: dict[str, float] = field(default_factory=dict)


class Phone(Protocol):
    """What the journey needs from the citizen's phone."""

    async def log_in(self, screen: Page, client_name: str) -> dict: ...  # scan the computer's QR code, approve the login
    async def approve(self, action: str, client_name: str) -> dict: ...  # approve the next such prompt
    async def message(self, sender: str, containing: str) -> dict: ...  # read that message in the inbox: subject, body


async def phone_approves(phone: CitizenApp, action: str, client_name: str, timeout_s: float = 30.0) -> dict:
    """The citizen opens the app, finds the site's prompt among the pending ones, and approves it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for prompt in await phone.pending():
            if prompt["action"] == action and prompt["requester"]["client_name"] == client_name:
                await phone.approve(prompt["approval_id"])
                return prompt
        await asyncio.sleep(0.3)
    raise JourneyFailed(f"no {action} prompt from {client_name} reached the phone within {timeout_s:.0f}s")


@dataclass
class CliPhone:
    """The command-line reference app (clients/citizen_app) as the phone: it opens the login page's app link."""

    app: CitizenApp

    async def log_in(self, screen: Page, client_name: str) -> dict:
        link = await screen.locator('a[href^="harbourid://authorize"]').get_attribute("href")
        prompt = (await self.app.open_link(link))["prompt"]
        if prompt["requester"]["client_name"] != client_name:
            raise JourneyFailed(f"the phone was asked to log in to {prompt['requester']['client_name']}")
        return prompt

    async def approve(self, action: str, client_name: str) -> dict:
        return await phone_approves(self.app, action, client_name)

    async def message(self, sender: str, containing: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in await self.app.inbox():
                if message["from"] == sender and containing in message["subject"]:
                    await self.app.read(message["id"])
                    return message
            await asyncio.sleep(0.3)
        raise JourneyFailed(f"no message from {sender} about {containing} reached the inbox within {timeout_s:.0f}s")


class Journey:
    def __init__(self, page: Page, phone: Phone, site_url: str, client_name: str, screenshots: Path,
                 language: str = "en", say: Callable[[str], None] = print, check: Check | None = None) -> None:
        self.page, self.phone, self.site_url, self.client_name = page, phone, site_url.rstrip("/"), client_name
        self.screenshots, self.language, self.say, self.check = screenshots, language, say, check
        self.words = MESSAGES[language]
        self.result = JourneyResult()

    async def shot(self, name: str) -> None:
        if self.check is not None:
            await self.check(self.page, f"site: {name}")
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{len(self.result.screenshots) + 1:02d}-{name}-{self.language}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        self.result.screenshots.append(path)

    async def heading_is(self, key: str) -> None:
        heading = self.page.locator("h1")
        await heading.wait_for(timeout=STEP_TIMEOUT_MS)
        text = (await heading.inner_text()).strip()
        if text != self.words[key]:
            raise JourneyFailed(f"expected the page '{self.words[key]}', the browser shows '{text}' at {self.page.url}")

    async def at(self, path: str) -> None:
        await self.page.wait_for_url(f"{self.site_url}{path}", timeout=STEP_TIMEOUT_MS)

    async def log_in(self) -> None:
        await self.page.goto(f"{self.site_url}/?lang={self.language}")
        await self.heading_is("home_title")
        await self.shot("home")
        self.say(f"1. The site {self.site_url} offers '{self.words['login_button']}'.")
        await self.page.locator("#login").click()
        await self.page.locator('a[href^="harbourid://authorize"]').wait_for(timeout=STEP_TIMEOUT_MS)
        await self.page.locator("svg.qr-code").wait_for(state="visible")
        shown_in = await self.page.locator("html").get_attribute("lang")
        if shown_in != self.language:
            raise JourneyFailed(f"the site asked for a {self.language} login page; Harbour ID showed {shown_in}")
        await self.shot("harbour-id-qr")
        self.say("2. Harbour ID's login page shows the QR code; the phone scans it and the citizen approves.")
        started = time.monotonic()
        await self.phone.log_in(self.page, self.client_name)
        await self.at("/apply")
        self.result.timings["approve_to_logged_in_s"] = time.monotonic() - started
        await self.heading_is("apply_title")
        await self.shot("logged-in")
        self.say(f"3. Logged in: the browser came back to the site by itself ({self.result.timings['approve_to_logged_in_s']:.1f}s after the scan).")

    async def prefill(self) -> None:
        await self.page.locator("#prefill").click()
        await self.at("/apply/waiting")
        await self.heading_is("waiting_title")
        await self.shot("approve-sharing")
        self.say("4. 'Fill in with Harbour ID': the site waits while the phone shows what it asks for.")
        await self.phone.approve("formfill", self.client_name)
        await self.page.locator("#prefilled").wait_for(timeout=STEP_TIMEOUT_MS)
        for name in ("name", "address", "phone", "email"):
            self.result.prefilled[name] = await self.page.locator(f"#{name}").input_value()
        await self.shot("prefilled")
        self.say(f"5. The citizen approved sharing on the phone; the form is filled in ({', '.join(n for n, v in self.result.prefilled.items() if v)}).")

    async def review(self) -> None:
        await self.page.locator("#continue").click()
        await self.at("/review")
        await self.heading_is("review_title")
        self.result.reference = (await self.page.locator("#reference").inner_text()).strip()
        await self.shot("review")
        self.say(f"6. Application {self.result.reference} is ready to sign.")

    async def sign(self, downloads: Path) -> None:
        await self.page.locator("#sign").click()
        await self.at("/sign/waiting")
        await self.shot("approve-signing")
        self.say("7. 'Sign with Harbour ID': the phone shows the document name and the start of its hash.")
        started = time.monotonic()
        await self.phone.approve("sign", self.client_name)
        await self.at("/done")
        self.result.timings["approve_to_signed_s"] = time.monotonic() - started
        await self.heading_is("done_title")
        await self.shot("signed")
        self.say(f"8. Signed ({self.result.timings['approve_to_signed_s']:.1f}s after approval).")
        async with self.page.expect_download() as download_info:
            await self.page.locator("#download").click()
        download = await download_info.value
        downloads.mkdir(parents=True, exist_ok=True)
        self.result.signed_pdf = downloads / download.suggested_filename
        await download.save_as(self.result.signed_pdf)
        self.say(f"9. The signed PDF downloaded: {self.result.signed_pdf}")

    async def confirmation_in_inbox(self) -> dict:
        """The site's confirmation reaches the phone's inbox (rendered in the citizen's language); the citizen reads it."""
        if (await self.page.locator("#confirmation").get_attribute("class") or "").find("warning") >= 0:
            raise JourneyFailed("the site says it could not send the confirmation")
        message = await self.phone.message(self.client_name, self.result.reference)
        self.result.confirmation = message
        self.say(f"10. The confirmation is in the citizen's Harbour ID inbox: '{message['subject']}' (now read).")
        return message

    async def run(self, downloads: Path) -> JourneyResult:
        await self.log_in()
        await self.prefill()
        await self.review()
        await self.sign(downloads)
        await self.confirmation_in_inbox()
        return self.result
