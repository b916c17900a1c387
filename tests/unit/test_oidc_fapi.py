"""oidc/fapi.py: the FAPI 2.0 Security Profile's per-client rules as pure checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.auth.clients.metadata import ClientMetadata
from services.auth.clients.registry import Client
from services.auth.oidc import fapi
from services.auth.oidc.errors import InvalidClient, InvalidRequest

JWK = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
       "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}


def client(**metadata) -> Client:
    return Client(client_id="c1", metadata=ClientMetadata(client_name="Bank", redirect_uris=["https://rp.example/cb"], **metadata))


def fapi_client() -> Client:
    return client(fapi_profile="fapi2-security", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [JWK]})


def test_the_profile_implies_par_and_dpop_and_the_flags_work_alone():
    assert fapi.requires_par(fapi_client()) and fapi.requires_dpop(fapi_client())
    assert not fapi.requires_par(client()) and not fapi.requires_dpop(client())
    assert fapi.requires_par(client(require_pushed_authorization_requests=True))
    assert fapi.requires_dpop(client(dpop_bound_access_tokens=True))
    with pytest.raises(InvalidRequest, match="PAR required"):
        fapi.check_plain_request(fapi_client(), pushed=False)
    fapi.check_plain_request(fapi_client(), pushed=True)
    fapi.check_plain_request(client(), pushed=False)
    fapi.check_plain_request(None, pushed=False)  # an unknown client is parse_request's error


def test_a_fapi_clients_assertion_names_the_issuer_alone():
    fapi.check_assertion_audience(fapi_client(), "https://id.example", "https://id.example")
    for aud in ("https://id.example/oidc/token", ["https://id.example"], None):
        with pytest.raises(InvalidClient):
            fapi.check_assertion_audience(fapi_client(), aud, "https://id.example")
    fapi.check_assertion_audience(client(), ["https://id.example/oidc/token"], "https://id.example")


def test_a_fapi_code_is_good_for_sixty_seconds_at_most():
    issued = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert fapi.code_expires_at(fapi_client(), issued + timedelta(seconds=600), 600) == issued + timedelta(seconds=60)
    assert fapi.code_expires_at(fapi_client(), issued + timedelta(seconds=30), 30) == issued + timedelta(seconds=30)
    assert fapi.code_expires_at(client(), issued + timedelta(seconds=600), 600) == issued + timedelta(seconds=600)


@pytest.mark.parametrize("metadata", [
    {"fapi_profile": "fapi2-security"},
    {"fapi_profile": "fapi2-security", "token_endpoint_auth_method": "client_secret_post"},
    {"fapi_profile": "fapi2-security", "token_endpoint_auth_method": "private_key_jwt"},
    {"fapi_profile": "fapi1-advanced", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [JWK]}},
])
def test_inconsistent_registrations_are_refused(metadata):
    with pytest.raises(ValidationError):
        ClientMetadata(client_name="Bank", redirect_uris=["https://rp.example/cb"], **metadata)
