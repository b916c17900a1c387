"""Links a phone can trust, in process with a FrozenClock: the https app link beside the custom scheme, and the login
page's dynamic QR code (a new code each second; a captured one refused after its window; a forged one refused)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from clients.citizen_app import AppError

from .oidc_steps import authorization_params, query_of, register


async def login_page(auth_service, rp: dict) -> str:
    page = await auth_service.client.get("/oidc/authorize", params=authorization_params(rp)[0])
    assert page.status == 200, await page.text()
    return await page.text()


def qr_link_of(page: str) -> str:
    """What the page's QR code says at first: the figure's data-link, which the page's script draws
    (tests/unit/test_qr_code_js.py; in a browser: tests/e2e/test_login_browser.py)."""
    return re.search(r'<figure id="qr" class="qr" data-link="([^"]+)"', page).group(1).replace("&amp;", "&")


def https_link_of(page: str) -> str:
    return re.search(r'id="open-app" class="button" href="([^"]+)"', page).group(1).replace("&amp;", "&")


def status_path(auth_service, page: str) -> str:
    return re.search(r'"statusUrl":\s*"([^"]+)"', page).group(1).removeprefix(auth_service.url)


def params(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


async def test_the_qr_code_changes_every_second_and_the_page_fetches_it(auth_service, clock):
    rp = await register(auth_service)
    page = await login_page(auth_service, rp)
    first = qr_link_of(page)
    tx = params(first)["tx"]
    assert first.startswith(f"{auth_service.url}/app/authorize?") and params(first)["t"] == "0"
    assert https_link_of(page) == f"{auth_service.url}/app/authorize?tx={tx}"  # the same-device button: no time code
    assert f'href="harbourid://authorize?tx={tx}"' in page  # the custom scheme stays, as the fallback link
    path = status_path(auth_service, page)
    # Without qr=1 the status stays as it was (no QR code drawn for pollers that do not show one).
    assert await (await auth_service.client.get(path)).json() == {"status": "pending"}
    seen = {}
    for _ in range(3):
        answer = await (await auth_service.client.get(path + "&qr=1")).json()
        qr = answer["qr"]
        # The link of this second, which the page draws: no SVG drawn by auth.
        assert answer["status"] == "pending" and set(qr) == {"link", "t"}
        assert params(qr["link"])["tx"] == tx and params(qr["link"])["t"] == str(qr["t"])
        seen[qr["t"]] = params(qr["link"])["c"]
        clock.advance(1)
    assert sorted(seen) == [0, 1, 2] and len(set(seen.values())) == 3  # a new t and a new HMAC each second
    assert seen[0] == params(first)["c"]
    clock.advance(auth_service.context.settings.authorization_ttl_s)
    assert await (await auth_service.client.get(path + "&qr=1")).json() == {"status": "expired"}


async def test_a_qr_code_opened_within_its_window_logs_in(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    page = await login_page(auth_service, rp)
    clock.advance(3)
    answer = await (await auth_service.client.get(status_path(auth_service, page) + "&qr=1")).json()
    captured = answer["qr"]["link"]
    clock.advance(auth_service.context.settings.qr_window_s - 3)  # the code of second 3, scanned at second 10
    outcome = await phone.open_link(captured)
    assert outcome["prompt"]["requester"]["client_id"] == rp["client_id"]
    assert "code" in query_of(outcome["redirect_to"])


async def test_a_captured_qr_code_replayed_after_its_window_is_refused(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    page = await login_page(auth_service, rp)
    captured = qr_link_of(page)  # a screenshot of the page as it was shown, relayed to a victim
    window = auth_service.context.settings.qr_window_s
    clock.advance(window + 1)
    with pytest.raises(AppError) as refused:
        await phone.open_link(captured)
    problem = refused.value.problem
    assert refused.value.status == 410 and problem["type"].endswith("/qr-code-expired"), problem
    assert f"more than {window} s old" in problem["detail"]
    # Nothing was written: the login is still anyone's, and the page's current code (or the app link) opens it.
    assert await auth_service.context.db["approvals"].count_documents({"_id": f"login-{params(captured)['tx']}"}) == 0
    current = (await (await auth_service.client.get(status_path(auth_service, page) + "&qr=1")).json())["qr"]["link"]
    assert params(current)["t"] == str(window + 1)
    outcome = await phone.open_link(current)
    assert "code" in query_of(outcome["redirect_to"])


async def test_a_forged_or_altered_qr_code_is_refused(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    page = await login_page(auth_service, rp)
    link = params(qr_link_of(page))
    clock.advance(30)
    base = f"{auth_service.url}/app/authorize?"
    forged = [
        {**link, "t": "30"},                       # a stale code moved to the current second: its HMAC no longer fits
        {**link, "c": "A" * 22},                   # a made-up HMAC
        {**link, "c": link["c"][:-1]},             # cut short
        {"tx": link["tx"], "t": "30"},             # a time without a code
        {**link, "t": "-1"},                       # not a second we draw
    ]
    for query in forged:
        with pytest.raises(AppError) as refused:
            await phone.open_link(base + urlencode(query))
        assert refused.value.status == 400 and refused.value.problem["type"].endswith("/qr-code-invalid"), query
    # A time code on the custom scheme is not one we draw either.
    with pytest.raises(AppError) as refused:
        await phone.open_link("harbourid://authorize?" + urlencode(link))
    assert refused.value.problem["type"].endswith("/qr-code-invalid")
    # The same path under another host is not this issuer's link: the app does not even send it.
    with pytest.raises(AppError) as elsewhere:
        await phone.open_link("https://harbour-id.example/app/authorize?" + urlencode(link))
    assert elsewhere.value.status == 400 and "not a link of this app" in elsewhere.value.problem["detail"]
    assert await auth_service.context.db["approvals"].count_documents({"_id": f"login-{link['tx']}"}) == 0


async def test_the_https_app_link_opens_in_the_app_without_a_time_code(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    page = await login_page(auth_service, rp)
    clock.advance(60)  # long after any QR window: the same-device link has no time to be old
    outcome = await phone.open_link(https_link_of(page))
    assert outcome["prompt"]["requester"]["client_id"] == rp["client_id"]
    assert "code" in query_of(outcome["redirect_to"])


async def test_the_well_known_files(auth_service):
    for path in ("/.well-known/assetlinks.json", "/.well-known/apple-app-site-association"):
        response = await auth_service.client.get(path, allow_redirects=False)
        assert response.status == 200 and response.content_type == "application/json", path
    # Nothing configured (the service tests' settings): no app is vouched for.
    assert await (await auth_service.client.get("/.well-known/assetlinks.json")).json() == []
    assert await (await auth_service.client.get("/.well-known/apple-app-site-association")).json() == {"applinks": {"details": []}}
    # /app/authorize in a browser is the citizen's web app now (test_web_app.py).
