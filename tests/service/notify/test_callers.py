"""Who may call: an agency with its own client-credentials token and the notify scope; a citizen with a device token."""

from __future__ import annotations

from libs.tokens import generate_private_key
from tests.support.calls import bearer

from .conftest import citizen_token, problem


async def test_an_agency_call_needs_its_own_client_credentials_token_with_the_notify_scope(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)

    anonymous = await notify.http.get("/v1/templates")
    on_behalf = await notify.http.get("/v1/templates", headers=citizen_token(notify, agency, citizen))
    wrong_scope = await notify.http.get("/v1/templates", headers=bearer(notify.auth.relying_party_token(agency.client_id, "openid")))
    own = await notify.http.get("/v1/templates", headers=notify.agency_token(agency))

    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert on_behalf.status == 403 and (await problem(on_behalf))["type"].endswith("/forbidden")
    assert wrong_scope.status == 403 and (await problem(wrong_scope))["type"].endswith("/insufficient-scope")
    assert own.status == 200


async def test_a_device_token_is_not_an_agency_token_and_an_agency_token_is_not_a_device_token(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)

    as_agency = await notify.http.get("/v1/templates", headers=notify.device_token(citizen))
    as_device = await notify.http.get("/v1/inbox", headers=notify.agency_token(agency))

    assert as_agency.status == as_device.status == 401
    assert 'error="invalid_token"' in as_agency.headers["WWW-Authenticate"]


async def test_the_callback_signing_keys_are_public(notify):
    answer = await notify.http.get("/v1/notifications/jwks")

    assert answer.status == 200 and answer.headers["Cache-Control"] == "max-age=60"
    keys = (await answer.json())["keys"]
    assert keys and all(k["kty"] == "EC" and "d" not in k for k in keys)


async def test_a_stolen_device_token_is_refused_without_the_device_key(notify):
    """A device token is DPoP-bound to the phone's key (`cnf.jkt`): whoever copied it cannot use it at the service."""
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    token = notify.bound_device_token(citizen)
    thief_key = generate_private_key()

    as_bearer = await notify.http.get("/v1/inbox", headers=bearer(token))
    other_key = await notify.http.get("/v1/inbox", headers=notify.dpop(token, "GET", "/v1/inbox", thief_key))
    no_proof = await notify.http.get("/v1/inbox", headers={"Authorization": f"DPoP {token}"})
    other_path = await notify.http.get("/v1/inbox", headers=notify.dpop(token, "GET", "/v1/preferences", citizen.phone.key))
    other_method = await notify.http.get("/v1/inbox", headers=notify.dpop(token, "POST", "/v1/inbox", citizen.phone.key))
    good = notify.dpop(token, "GET", "/v1/inbox", citizen.phone.key)
    owner = await notify.http.get("/v1/inbox", headers=good)
    replayed = await notify.http.get("/v1/inbox", headers=good)

    assert as_bearer.status == 401, await as_bearer.text()
    assert as_bearer.headers["WWW-Authenticate"].startswith("DPoP ") and 'error="invalid_token"' in as_bearer.headers["WWW-Authenticate"]
    for refused in (other_key, no_proof, other_path, other_method, replayed):
        assert refused.status == 401, await refused.text()
        challenge = refused.headers["WWW-Authenticate"]
        assert challenge.startswith("DPoP ") and 'error="invalid_dpop_proof"' in challenge, challenge
    assert owner.status == 200, await owner.text()
