"""Fixtures shared by the end-to-end tests (the `platform` itself lives in tests/conftest.py; helpers in tests/support/)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import requests
from playwright.async_api import Browser, async_playwright

from clients.relying_party.journey import CHROMIUM, CHROMIUM_ARGS

from ..support.operator import create_kiosk
from ..support.signing import trust_files


@pytest.fixture(scope="module")
def kiosk(platform) -> tuple[str, str]:
    """A kiosk client with the enrol scope: (client_id, client_secret)."""
    return create_kiosk(platform)


@pytest.fixture(scope="module")
def metadata(platform) -> dict:
    """The provider's discovery document, fetched through the gateway."""
    response = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def trust(platform, tmp_path_factory) -> dict:
    """Files for the signature verifiers: root.pem alone is trusted; the issuing CA is only an untrusted intermediate."""
    return trust_files(platform, tmp_path_factory.mktemp("trust"))


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium driven by Playwright (`make test` installs it; Playwright never downloads one)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
