"""The client registry's self-service (RFC 7592) through the gateway: what a client may change itself, and what it may not.

Issue 14, item 1: with only its own Basic credentials a client rewrote its
scopes, form-fill fields, redirect URIs and the name the phone shows. Now a
client manages its registration only with its registration access token,
and only its own keys, contacts, logo and secret; everything else is the
operators'.
"""

from __future__ import annotations

import pytest
import requests

from libs.events import CloudEvent
from libs.events.topics import CLIENTS
from libs.tokens import generate_private_key, public_jwk

from ..support.broker import all_messages
from ..support.calls import bearer, refusal
from ..support.operator import operator
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"
REDIRECT = "https://portal.example.hk/callback"
ORIGINAL = {
    "client_name": "Example Portal",
    "kind": "relying_party",
    "redirect_uris": [REDIRECT],
    "scope": "formfill openid",  # as the registry normalises it (sorted)
    "formfill_fields": ["name_en"],
}
# What the attack run sent with the client's own credentials, one operator-only change at a time.
GRABS = {
    "scope": {"scope": "openid formfill sign notify"},
    "formfill_fields": {"formfill_fields": ["id_number", "name_en", "name_zh", "date_of_birth", "gender", "phone", "email", "address"]},
    "redirect_uris": {"redirect_uris": [REDIRECT, "https://attacker.example.net/cb"]},
    "client_name": {"client_name": "Hong Kong Government (Immigration)"},
    "post_logout_redirect_uris": {"post_logout_redirect_uris": ["https://attacker.example.net/bye"]},
}


def unauthorized(response: requests.Response) -> None:
    """Refused as RFC 7592 says for a token that is not this client's: 401 and a Bearer challenge, the client's existence unsaid."""
    refusal(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer") and 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def client_url(platform, client_id: str) -> str:
    return f"{platform.gateway}/v1/clients/{client_id}"


def introspect_status(platform, client_id: str, secret: str) -> int:
    """200 when the secret authenticates the client (RFC 7662 answers inactive for a dummy token), 401 when not."""
    response = requests.post(platform.gateway + "/oidc/introspect", data={"token": "not-a-token"}, auth=(client_id, secret), timeout=10)
    return response.status_code


async def client_events(platform, client_id: str) -> list[CloudEvent]:
    messages = await all_messages(platform.infra.kafka_bootstrap, [CLIENTS.name])
    return [CloudEvent.from_json(m.value) for m in messages if m.key == client_id.encode()]


async def test_a_client_cannot_rewrite_its_own_registration_but_manages_its_keys_contacts_and_secret(platform):
    registered = requests.post(platform.gateway + "/v1/clients", json=ORIGINAL, headers=operator(platform), timeout=10)
    assert registered.status_code == 201, registered.text
    rp = registered.json()
    client_id, secret, token = rp["client_id"], rp["client_secret"], rp["registration_access_token"]
    assert rp["registration_client_uri"].endswith(f"/v1/clients/{client_id}")
    other = requests.post(platform.gateway + "/v1/clients", json={**ORIGINAL, "client_name": "Other Portal"},
                          headers=operator(platform), timeout=10).json()
    current = requests.get(client_url(platform, client_id), headers=bearer(token), timeout=10).json()
    assert "registration_access_token" not in current and "client_secret" not in current
    wanted = {k: v for k, v in current.items() if k not in ("client_id", "registration_client_uri")}

    # The attack as it was run: the client's own Basic credentials. No longer a credential for its registration.
    everything = {**wanted, **{k: v for grab in GRABS.values() for k, v in grab.items()}}
    with_basic = requests.put(client_url(platform, client_id), json=everything, auth=(client_id, secret), timeout=10)
    assert with_basic.status_code == 401 and with_basic.headers["WWW-Authenticate"].startswith("Bearer")
    # With its registration access token: every operator-only change is refused and named, together or one by one.
    together = requests.put(client_url(platform, client_id), json=everything, headers=bearer(token), timeout=10)
    assert together.status_code == 403 and together.headers["Content-Type"].startswith(PROBLEM)
    assert together.json()["type"].endswith("/operator-only-metadata") and set(together.json()["fields"]) == set(GRABS)
    for field, grab in GRABS.items():
        refused = requests.put(client_url(platform, client_id), json={**wanted, **grab}, headers=bearer(token), timeout=10)
        assert refusal(refused, 403, "operator-only-metadata")["fields"] == [field]
    # Leaving an operator-only member out means its default (RFC 7592 §2.2): also a change, also refused.
    omitted = requests.put(client_url(platform, client_id), json={"client_name": "Example Portal", "redirect_uris": [REDIRECT]},
                           headers=bearer(token), timeout=10)
    assert set(refusal(omitted, 403, "operator-only-metadata")["fields"]) == {"scope", "formfill_fields"}

    # Another client's token, a made-up one, none: 401 for reading, updating and deleting, and nothing says whether the client exists.
    for headers in (bearer(other["registration_access_token"]), bearer("x" * 43), {}, operator(platform) | {"Authorization": "Bearer "}):
        unauthorized(requests.get(client_url(platform, client_id), headers=headers, timeout=10))
        unauthorized(requests.put(client_url(platform, client_id), json=wanted, headers=headers, timeout=10))
        unauthorized(requests.delete(client_url(platform, client_id), headers=headers, timeout=10))
    unauthorized(requests.get(client_url(platform, "relying-party-0000000000000000"), headers=bearer(token), timeout=10))

    # Nothing changed: the registration reads as before, and only the registration was ever published.
    assert requests.get(client_url(platform, client_id), headers=bearer(token), timeout=10).json() == current
    assert introspect_status(platform, client_id, secret) == 200

    # What is the client's own business works: new signing keys, contacts, a new secret; the token rotates.
    key = {**public_jwk(generate_private_key()), "kid": "rp-key-2", "use": "sig", "alg": "ES256"}
    own = {**wanted, "jwks": {"keys": [key]}, "contacts": ["it-ops@portal.example.hk"], "client_id": client_id,
           "client_secret": secret, "rotate_client_secret": True}
    updated = requests.put(client_url(platform, client_id), json=own, headers=bearer(token), timeout=10)
    assert updated.status_code == 200, updated.text
    answer = updated.json()
    new_token, new_secret = answer["registration_access_token"], answer["client_secret"]
    assert new_token != token and new_secret != secret
    assert answer["jwks"] == {"keys": [key]} and answer["contacts"] == ["it-ops@portal.example.hk"]
    assert {k: answer[k] for k in ORIGINAL} == ORIGINAL
    unauthorized(requests.get(client_url(platform, client_id), headers=bearer(token), timeout=10))  # the old token is dead
    assert introspect_status(platform, client_id, secret) == 401 and introspect_status(platform, client_id, new_secret) == 200
    # A client cannot choose its secret: a client_secret that is not the current one is refused.
    chosen = requests.put(client_url(platform, client_id), json={**wanted, "client_secret": "my-own-choice"},
                          headers=bearer(new_token), timeout=10)
    refusal(chosen, 409, "conflict")

    # clients.events: the registration, then the one real change, which still carries the operator's values (and no contacts).
    async def registered_and_updated() -> list[CloudEvent] | None:
        events = await client_events(platform, client_id)
        return events if [e.type for e in events] == ["client.registered", "client.updated"] else None

    events = await eventually(registered_and_updated)
    assert {k: events[1].data[k] for k in ORIGINAL} == ORIGINAL and "contacts" not in events[1].data
    assert events[1].data["jwks"] == {"keys": [key]}

    # The operator changes what the client may not.
    renamed = requests.put(client_url(platform, client_id), json={**wanted, "client_name": "Example Portal (Wan Chai)"},
                           headers=operator(platform), timeout=10)
    assert renamed.status_code == 200 and renamed.json()["client_name"] == "Example Portal (Wan Chai)"
    assert "registration_access_token" not in renamed.json()  # the client's token stays the client's
    assert requests.get(client_url(platform, client_id), headers=bearer(new_token), timeout=10).status_code == 200

    # RFC 7592 §2.3: the client deletes itself; another client's token cannot.
    unauthorized(requests.delete(client_url(platform, client_id), headers=bearer(other["registration_access_token"]), timeout=10))
    assert requests.delete(client_url(platform, client_id), headers=bearer(new_token), timeout=10).status_code == 204
    unauthorized(requests.get(client_url(platform, client_id), headers=bearer(new_token), timeout=10))
    assert introspect_status(platform, client_id, new_secret) == 401
    await eventually(lambda: _last_event_is(platform, client_id, "client.deleted"))


async def _last_event_is(platform, client_id: str, event_type: str) -> bool:
    events = await client_events(platform, client_id)
    return bool(events) and events[-1].type == event_type


async def test_a_sandbox_client_keeps_its_sandbox_limits(platform):
    """Self-registered in the sandbox: the same self-service limits; kiosks, enrol and shared sectors stay out of reach."""
    sandbox = requests.post(platform.gateway + "/v1/clients", json=ORIGINAL, timeout=10)
    assert sandbox.status_code == 201
    rp = sandbox.json()
    url, token = client_url(platform, rp["client_id"]), rp["registration_access_token"]
    wanted = {k: v for k, v in requests.get(url, headers=bearer(token), timeout=10).json().items()
              if k not in ("client_id", "registration_client_uri")}
    for grab in ({"scope": "openid formfill enrol"}, {"sector_identifier_uri": "https://gov.example.hk/sector"},
                 {"client_name": "Hong Kong Government (Immigration)"}, {"kind": "kiosk"}):
        refused = requests.put(url, json={**wanted, **grab}, headers=bearer(token), timeout=10)
        assert refusal(refused, 403, "operator-only-metadata")["fields"] == list(grab)
    assert requests.put(url, json={**wanted, "logo_uri": "https://portal.example.hk/logo.png"}, headers=bearer(token),
                        timeout=10).status_code == 200
