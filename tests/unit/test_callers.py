"""libs/callers: the one Authorization parser, challenge builder and bearer-token check every process uses."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from libs.callers import (
    InsufficientScope,
    InvalidAccessToken,
    InvalidDPoPProof,
    InvalidDPoPToken,
    RevocationsLoading,
    RevocationsNotFollowed,
    TokenRequired,
    basic_credentials,
    bearer_token,
    caller_of,
    challenge,
    device,
    relying_party,
)
from libs.revocation.follower import REVOCATIONS, NotLoaded
from libs.tokens import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE, InvalidToken, generate_private_key, public_jwk
from libs.tokens.dpop import make_proof, thumbprint

ISSUER = "https://id.example"


def test_bearer_token_is_read_once_whatever_the_scheme_case():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for header in (None, "", "Bearer", "Bearer   ", "Basic abc", "Token abc"):
        assert bearer_token(header) is None, header


def test_basic_credentials_decode_the_form_encoded_parts():
    encoded = base64.b64encode(b"kiosk%3A1:s+cret").decode()
    assert basic_credentials(f"Basic {encoded}") == ("kiosk:1", "s cret")
    for header in (None, "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-secret:").decode(),
                   "Basic " + base64.b64encode(b"no-colon").decode()):
        assert basic_credentials(header) is None, header


def test_challenges_follow_rfc_6750():
    assert challenge() == 'Bearer realm="harbour-id"'
    assert challenge("Basic") == 'Basic realm="harbour-id"'
    assert challenge(error="insufficient_scope", scope="sign notify") == \
        'Bearer realm="harbour-id", error="insufficient_scope", scope="sign notify"'
    # A quote in free text cannot end the quoted-string early.
    assert challenge(error="invalid_token", description='bad "kid"') == \
        'Bearer realm="harbour-id", error="invalid_token", error_description="bad \'kid\'"'
    assert challenge(error="invalid_token", description="expired", realm=None) == \
        'Bearer error="invalid_token", error_description="expired"'


class FakeJWKS:
    def __init__(self, claims: dict | None = None, error: str | None = None) -> None:
        self.claims, self.error, self.calls = claims, error, []

    async def verify(self, token, *, audience, issuer, typ):
        self.calls.append((token, audience, issuer, typ))
        if self.error:
            raise InvalidToken(self.error)
        return self.claims


class FakeRevocations:
    def __init__(self, reason: str | None = None, loaded: bool = True) -> None:
        self.reason, self.loaded = reason, loaded

    def refusal(self, claims):
        if not self.loaded:
            raise NotLoaded("the revocation list is still loading")
        return self.reason


def request(authorization: str | None = "Bearer tok", revocations: FakeRevocations | None = FakeRevocations()):
    app = web.Application()
    if revocations is not None:
        app[REVOCATIONS] = revocations
    return make_mocked_request("GET", "/", headers={"Authorization": authorization} if authorization else {}, app=app)


async def test_a_relying_party_token_is_verified_then_scoped():
    jwks = FakeJWKS({"sub": "pairwise-1", "client_id": "rp", "scope": "openid sign"})
    caller = await relying_party(request(), jwks, ISSUER, scope="sign")
    assert (caller.client_id, caller.sub) == ("rp", "pairwise-1")
    assert jwks.calls == [("tok", ISSUER, ISSUER, ACCESS_TOKEN_TYP)]
    anonymous = await relying_party(request(), FakeJWKS({"sub": "rp", "client_id": "rp", "scope": "sign"}), ISSUER, scope="sign")
    assert anonymous.sub is None

    with pytest.raises(InsufficientScope) as refused:
        await relying_party(request(), jwks, ISSUER, scope="formfill")
    assert refused.value.status == 403 and refused.value.slug == "insufficient-scope"
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer realm="harbour-id", error="insufficient_scope", scope="formfill"'
    with pytest.raises(InvalidAccessToken, match="names no client"):
        await relying_party(request(), FakeJWKS({"sub": "x", "scope": "sign"}), ISSUER, scope="sign")


async def test_refusals_carry_their_challenge():
    with pytest.raises(TokenRequired) as missing:
        await device(request(None), FakeJWKS(), ISSUER)
    assert missing.value.status == 401 and missing.value.headers["WWW-Authenticate"] == 'Bearer realm="harbour-id"'
    with pytest.raises(InvalidAccessToken) as forged:
        await device(request(), FakeJWKS(error="the token has expired"), ISSUER)
    assert forged.value.headers["WWW-Authenticate"] == \
        'Bearer realm="harbour-id", error="invalid_token", error_description="the token has expired"'
    with pytest.raises(InvalidAccessToken, match="the device is revoked"):
        await device(request(revocations=FakeRevocations("the device is revoked")), FakeJWKS({"sub": "a"}), ISSUER)


async def test_a_device_token_is_meant_for_the_device_audience():
    jwks = FakeJWKS({"sub": "account-1", "device_id": "dev-1"})
    citizen = await device(request(), jwks, ISSUER)
    assert (citizen.account_id, citizen.device_id, citizen.claims) == ("account-1", "dev-1", jwks.claims)
    assert jwks.calls[0][1] == DEVICE_AUDIENCE


async def test_no_answer_while_the_revocation_list_is_unknown():
    with pytest.raises(RevocationsLoading) as loading:
        await device(request(revocations=FakeRevocations(loaded=False)), FakeJWKS({"sub": "a"}), ISSUER)
    assert loading.value.status == 503 and loading.value.headers == {"Retry-After": "1"}
    # A process that never installed the follower must not honour revoked tokens silently.
    with pytest.raises(RevocationsNotFollowed, match="not followed"):
        await device(request(revocations=None), FakeJWKS({"sub": "a"}), ISSUER)


async def test_caller_of_binds_a_check_to_the_service_context():
    from types import SimpleNamespace

    context = web.AppKey("ctx", object)
    jwks = FakeJWKS({"sub": "pairwise-1", "client_id": "rp", "scope": "sign"})
    calling = caller_of(context, relying_party, scope="sign")
    req = request()
    req.app[context] = SimpleNamespace(jwks=jwks, settings=SimpleNamespace(issuer=ISSUER))
    assert (await calling(req)).client_id == "rp" and jwks.calls[0][2] == ISSUER
    assert calling.__name__ == "calling_relying_party"


async def test_a_device_token_is_dpop_bound_to_the_device_key():
    device_key, thief = generate_private_key(), generate_private_key()
    jwks = FakeJWKS({"sub": "account-1", "device_id": "dev-1", "cnf": {"jkt": thumbprint(public_jwk(device_key))}})

    def call(authorization: str, proof: str | None = None):
        headers = {"Authorization": authorization, **({"DPoP": proof} if proof else {})}
        app = web.Application()
        app[REVOCATIONS] = FakeRevocations()
        return make_mocked_request("GET", "/v1/inbox", headers=headers, app=app)

    with pytest.raises(InvalidDPoPToken) as as_bearer:
        await device(call("Bearer tok"), jwks, ISSUER)
    assert as_bearer.value.headers["WWW-Authenticate"].startswith('DPoP realm="harbour-id", error="invalid_token"')
    for proof in (None, make_proof(thief, "GET", ISSUER + "/v1/inbox", access_token="tok"),
                  make_proof(device_key, "GET", ISSUER + "/v1/preferences", access_token="tok"),
                  make_proof(device_key, "GET", ISSUER + "/v1/inbox", access_token="another")):
        with pytest.raises(InvalidDPoPProof):
            await device(call("DPoP tok", proof), jwks, ISSUER)
    citizen = await device(call("DPoP tok", make_proof(device_key, "GET", ISSUER + "/v1/inbox?x=1", access_token="tok")), jwks, ISSUER)
    assert citizen.device_id == "dev-1"
