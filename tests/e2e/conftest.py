"""Fixtures shared by the end-to-end tests (the `platform` itself lives in tests/conftest.py)."""

from __future__ import annotations

import pytest
import requests

from .citizens import create_kiosk


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
