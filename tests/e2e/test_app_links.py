"""Links a phone can trust, through the gateway against the real services: the files that tie the issuer's
https links to the citizen app, the https app link opened by the reference app, and the login page's QR code
changing every second (each new code accepted by the app)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from clients.citizen_app import AppError

from ..conftest import APP_CERT_SHA256, APPLE_APP_ID
from ..support.citizens import enrolled_app
from ..support.oidc import authorize_url, register, status_url_of
from ..support.polling import eventually

pytestmark = pytest.mark.e2e


def params(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def login_page(metadata, rp) -> str:
    url, _ = authorize_url(metadata, rp["client_id"])
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    return page.text


def test_the_app_link_files_are_public_json_at_the_issuer(platform):
    for path in ("/.well-known/assetlinks.json", "/.well-known/apple-app-site-association"):
        response = requests.get(platform.gateway + path, timeout=10, allow_redirects=False)
        # Apple fetches the file with no redirect followed and wants application/json; so does Android's verifier.
        assert response.status_code == 200, (path, response.status_code, response.text)
        assert response.headers["Content-Type"].split(";")[0] == "application/json", path
    assert requests.get(platform.gateway + "/.well-known/assetlinks.json", timeout=10).json() == [{
        "relation": ["delegate_permission/common.handle_all_urls"],
        "target": {"namespace": "android_app", "package_name": "hk.harbourid.citizen",
                   "sha256_cert_fingerprints": [APP_CERT_SHA256]}}]
    association = requests.get(platform.gateway + "/.well-known/apple-app-site-association", timeout=10).json()
    assert association == {"applinks": {"details": [{
        "appIDs": [APPLE_APP_ID], "components": [{"/": "/app/*", "comment": "Harbour ID login and approval links"}]}]}}
    # Without the installed app, the link opens the citizen's web app at its one origin (localhost: WebAuthn
    # refuses the issuer's IP address), served by auth (tests/e2e/test_passkeys.py checks the app's answers).
    page = requests.get(platform.gateway + "/app/authorize?tx=abc", timeout=10, allow_redirects=False)
    assert page.status_code == 308
    assert page.headers["Location"] == platform.gateway.replace("127.0.0.1", "localhost") + "/app/authorize?tx=abc"


async def test_the_https_app_link_opens_in_the_reference_app(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    page = login_page(metadata, rp)
    link = re.search(r'id="open-app" class="button" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert link.startswith(metadata["issuer"] + "/app/authorize?tx=") and set(params(link)) == {"tx"}
    outcome = await citizen.open_link(link)
    assert outcome["prompt"]["requester"]["client_id"] == rp["client_id"]
    assert "code=" in outcome["redirect_to"]


async def test_the_login_page_qr_code_changes_and_each_code_is_accepted(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    page = login_page(metadata, rp)
    status_url = status_url_of(page) + "&qr=1"
    first = requests.get(status_url, timeout=10).json()["qr"]
    assert first["link"].startswith(metadata["issuer"] + "/app/authorize?")

    def next_code():
        qr = requests.get(status_url, timeout=10).json()["qr"]
        return qr if qr["t"] != first["t"] else None

    later = await eventually(next_code, timeout_s=15, interval_s=0.2)  # the page's next second
    assert later["t"] > first["t"] and params(later["link"])["tx"] == params(first["link"])["tx"]
    assert params(later["link"])["c"] != params(first["link"])["c"]
    outcome = await citizen.open_link(later["link"])  # scanned within its window
    assert outcome["prompt"]["requester"]["client_id"] == rp["client_id"]
    assert "code=" in outcome["redirect_to"]
    # A made-up code for the same login is refused with a problem the app shows.
    forged = later["link"].replace("c=" + params(later["link"])["c"], "c=" + "A" * 22)
    with pytest.raises(AppError) as refused:
        await citizen.open_link(forged)
    assert refused.value.status == 400 and refused.value.problem["type"].endswith("/qr-code-invalid")
