"""Back-channel logout's pure parts: the registration members' checks and the logout token's claims (§2.2, §2.4)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.auth.clients.metadata import OPERATOR_ONLY_FIELDS, ClientMetadata
from services.auth.oidc.backchannel import BACKCHANNEL_LOGOUT_EVENT, logout_claims

BASE = {"client_name": "RP", "redirect_uris": ["https://rp.example/cb"]}


def test_a_public_https_uri_is_accepted_and_only_operators_change_it():
    metadata = ClientMetadata(**BASE, backchannel_logout_uri="https://rp.example/logout", backchannel_logout_session_required=True)
    assert metadata.backchannel_logout_uri == "https://rp.example/logout" and metadata.backchannel_logout_session_required
    assert ClientMetadata(**BASE).backchannel_logout_uri is None
    assert {"backchannel_logout_uri", "backchannel_logout_session_required"} <= set(OPERATOR_ONLY_FIELDS)


@pytest.mark.parametrize("members", [
    {"backchannel_logout_uri": "http://rp.example/logout"},
    {"backchannel_logout_uri": "https://192.168.1.10/logout"},
    {"backchannel_logout_uri": "https://169.254.169.254/latest"},
    {"backchannel_logout_uri": "https://rp.example/logout#x"},
    {"backchannel_logout_uri": "https://user:pw@rp.example/logout"},
    {"backchannel_logout_uri": "https://rp.local/logout"},
    {"backchannel_logout_uri": ""},
    {"backchannel_logout_session_required": True},
    {"backchannel_logout_session_required": 1},
])
def test_bad_members_are_refused(members):
    with pytest.raises(ValidationError):
        ClientMetadata(**BASE, **members)


def test_the_logout_token_claims():
    doc = {"_id": "j1", "client_id": "c1", "sub": "s1", "sid": "sid1"}
    claims = logout_claims(doc, 1_000, 120)
    assert claims == {"aud": "c1", "iat": 1_000, "exp": 1_120, "jti": "j1", "sub": "s1", "sid": "sid1",
                      "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    assert "nonce" not in claims
