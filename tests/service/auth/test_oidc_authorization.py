"""The authorization endpoint in process: where each error goes (page, redirect, form), the login's life cycle."""

from __future__ import annotations

import re

import pytest

from clients.citizen_app import AppError

from ...support.auth_stand_in import published

from .oidc_steps import NO_STORE, REDIRECT, app_link_of, audits, authorization_params, client_auth, query_of, redeem, register


async def authorize(auth_service, params: dict, method: str = "GET"):
    if method == "GET":
        return await auth_service.client.get("/oidc/authorize", params=params, allow_redirects=False)
    return await auth_service.client.post("/oidc/authorize", data=params, allow_redirects=False)


async def test_what_cannot_be_redirected_is_an_error_page(auth_service):
    rp = await register(auth_service)
    for params in ({**authorization_params(rp)[0], "client_id": "no-such-client"},
                   {**authorization_params(rp)[0], "redirect_uri": REDIRECT + "/elsewhere"}):
        for method in ("GET", "POST"):
            page = await authorize(auth_service, params, method)
            assert page.status == 400 and page.content_type == "text/html"
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert {k: page.headers[k] for k in NO_STORE} == NO_STORE
            assert "Location" not in page.headers


async def test_other_errors_go_back_to_the_client_with_state_and_iss(auth_service):
    rp = await register(auth_service)
    params, _ = authorization_params(rp, scope="openid sign", state="s-1")
    for method in ("GET", "POST"):
        response = await authorize(auth_service, params, method)
        assert response.status == 303 and {k: response.headers[k] for k in NO_STORE} == NO_STORE
        location = response.headers["Location"]
        assert location.startswith(REDIRECT + "?")
        assert query_of(location) == {"error": "invalid_scope", "error_description": "the client may not ask for: sign",
                                      "state": "s-1", "iss": auth_service.url}


async def test_form_post_errors_are_an_auto_posting_form(auth_service):
    rp = await register(auth_service)
    params, _ = authorization_params(rp, response_mode="form_post", code_challenge_method="plain", state="s-2")
    response = await authorize(auth_service, params)
    assert response.status == 200 and response.content_type == "text/html"
    assert "form-action https://rp.example" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert 'action="https://rp.example/callback"' in page
    for name, value in (("error", "invalid_request"), ("state", "s-2"), ("iss", auth_service.url)):
        assert re.search(rf'name="{name}" value="{re.escape(value)}"', page), name


async def test_prompt_none_without_a_session_is_login_required(auth_service):
    rp = await register(auth_service)
    params, _ = authorization_params(rp, prompt="none", state="s-3")
    response = await authorize(auth_service, params)
    assert response.status == 303
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "login_required" and answer["state"] == "s-3" and "code" not in answer


async def test_a_pushed_request_is_checked_then_redeemed_once(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    pushed = await auth_service.client.post("/oidc/par", data=authorization_params(rp, scope="openid sign")[0],
                                            headers=client_auth(rp))
    # At the PAR endpoint a bad request is JSON, never a redirect.
    assert pushed.status == 400 and (await pushed.json())["error"] == "invalid_scope"
    params, verifier = authorization_params(rp)
    pushed = await auth_service.client.post("/oidc/par", data=params, headers=client_auth(rp))
    assert pushed.status == 201 and {k: pushed.headers[k] for k in NO_STORE} == NO_STORE
    reference = await pushed.json()
    assert reference["expires_in"] == 90 and reference["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    by_reference = {"client_id": rp["client_id"], "request_uri": reference["request_uri"]}
    page = await authorize(auth_service, by_reference)
    assert page.status == 200 and app_link_of(await page.text())
    again = await authorize(auth_service, by_reference)
    assert again.status == 400 and "invalid_request_uri" in await again.text()

    late = await (await auth_service.client.post("/oidc/par", data=params, headers=client_auth(rp))).json()
    clock.advance(90)
    expired = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": late["request_uri"]})
    assert expired.status == 400 and "invalid_request_uri" in await expired.text()


async def test_the_login_page_polls_its_status_until_the_login_expires(auth_service, clock):
    rp = await register(auth_service)
    page = await authorize(auth_service, authorization_params(rp)[0])
    status_url = re.search(r'"statusUrl":\s*"([^"]+)"', await page.text()).group(1)
    path = status_url.removeprefix(auth_service.url)
    status = await auth_service.client.get(path)
    assert status.status == 200 and await status.json() == {"status": "pending"}
    assert {k: status.headers[k] for k in NO_STORE} == NO_STORE
    clock.advance(auth_service.context.settings.authorization_ttl_s)
    assert await (await auth_service.client.get(path)).json() == {"status": "expired"}
    # Without the page's key there is no such login (a problem, not an OAuth error).
    stranger = await auth_service.client.get(path.split("?")[0] + "?k=guess")
    assert stranger.status == 404 and stranger.content_type == "application/problem+json"
    assert (await stranger.json())["type"].endswith("/not-found")


async def test_an_approved_login_completes_once_with_a_session_for_prompt_none(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    params, _ = authorization_params(rp, state="s-4")
    page = await (await authorize(auth_service, params)).text()
    status_path = re.search(r'"statusUrl":\s*"([^"]+)"', page).group(1).removeprefix(auth_service.url)
    await phone.open_link(app_link_of(page))
    status = await (await auth_service.client.get(status_path)).json()
    assert status["status"] == "approved"

    complete_path = status["redirect_to"].removeprefix(auth_service.url)
    done = await auth_service.client.get(complete_path, allow_redirects=False)
    assert done.status == 303 and query_of(done.headers["Location"])["state"] == "s-4"
    assert "harbour_sid" in done.cookies and done.cookies["harbour_sid"]["path"] == "/oidc"
    again = await auth_service.client.get(complete_path, allow_redirects=False)
    assert again.status == 303 and "harbour_sid" not in again.cookies  # the cookie is handed out once

    # The session repeats exactly this approval, silently.
    silent, verifier = authorization_params(rp, prompt="none")
    response = await authorize(auth_service, silent)
    assert response.status == 303
    code = query_of(response.headers["Location"])["code"]
    assert (await redeem(auth_service, rp, code, verifier)).status == 200
    # Both logins in the citizen's audit trail (their data tracker): which service, how, at which level.
    browser, silent_login = await audits(auth_service, phone.profile.account_id, "login")
    assert browser == {"action": "login", "actor": phone.profile.device_id, "outcome": "success", "client_id": rp["client_id"],
                       "flow": "browser", "acr": "urn:harbour-id:loa:basic", "amr": browser["amr"]} and browser["amr"]
    assert silent_login == browser | {"actor": "session", "flow": "session"}
    more, _ = authorization_params(rp, prompt="none", scope="openid offline_access")
    answer = query_of((await authorize(auth_service, more)).headers["Location"])
    assert answer["error"] == "consent_required"

    # Logout ends it: prompt=none needs the citizen again.
    out = await auth_service.client.get("/oidc/logout", allow_redirects=False)
    assert out.status == 200 and out.content_type == "text/html"
    assert [a["actor"] for a in await audits(auth_service, phone.profile.account_id, "logout")] == ["browser"]
    answer = query_of((await authorize(auth_service, authorization_params(rp, prompt="none")[0])).headers["Location"])
    assert answer["error"] == "login_required"


async def test_a_declined_login_goes_back_as_access_denied(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    params, _ = authorization_params(rp, state="s-5")
    page = await (await authorize(auth_service, params)).text()
    outcome = await phone.open_link(app_link_of(page), approve=False)
    assert query_of(outcome["redirect_to"]) == {"error": "access_denied", "error_description": "the citizen declined",
                                                "state": "s-5", "iss": auth_service.url}
    # A failed login is the citizen's record too, beside their decision's.
    [denied] = await audits(auth_service, phone.profile.account_id, "login")
    assert denied == {"action": "login", "actor": phone.profile.device_id, "outcome": "denied", "client_id": rp["client_id"],
                      "flow": "browser", "reason": "access_denied"}
    [decided] = await audits(auth_service, phone.profile.account_id, "approval.decide")
    assert (decided["outcome"], decided["kind"], decided["client_id"]) == ("denied", "login", rp["client_id"])


async def test_a_login_decision_is_audited_but_tells_no_other_service(auth_service, tmp_path):
    """Auth asked for the login prompt and finishes it itself: no `approval.decided` (formfill and signing read that
    topic, and would only drop every citizen's every login after reading its account id and device key)."""
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    page = await (await authorize(auth_service, authorization_params(rp)[0])).text()
    assert (await phone.open_link(app_link_of(page)))["status"] == "approved"
    [decided] = await audits(auth_service, phone.profile.account_id, "approval.decide")
    assert (decided["outcome"], decided["kind"]) == ("approved", "login")
    assert await published(auth_service.context, "approval.decided") == []


async def test_a_login_needing_plus_is_refused_to_a_basic_citizen(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)  # a sandbox self-registration: basic
    params, _ = authorization_params(rp, acr_values="urn:harbour-id:loa:plus")
    page = await (await authorize(auth_service, params)).text()
    with pytest.raises(AppError) as refused:
        await phone.open_link(app_link_of(page))
    assert refused.value.status == 403 and refused.value.problem["type"].endswith("/assurance-too-low")
    # A failed login on the citizen's record: which service refused them, why.
    assert await audits(auth_service, phone.profile.account_id, "login") == [{
        "action": "login", "actor": phone.profile.device_id, "outcome": "refused", "client_id": rp["client_id"], "flow": "browser",
        "reason": "assurance-too-low"}]
    # A link that is not a login's is refused as such.
    with pytest.raises(AppError) as unknown:
        await phone.open_link("harbourid://authorize?nothing=here")
    assert unknown.value.status == 400 and unknown.value.problem["type"].endswith("/unknown-link")
