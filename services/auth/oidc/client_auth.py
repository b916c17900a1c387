"""Client authentication at the token-side endpoints (RFC 6749 §2.3, OIDC Core §9, RFC 7523).

`client_secret_basic`, `client_secret_post` and `private_key_jwt`; a client
uses exactly the method it registered, and exactly one per request. Client
assertions are ES256, addressed to the issuer or the endpoint, short-lived,
and single-use (`jti` kept until it expires), valid for an hour at most.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from pymongo.asynchronous.database import AsyncDatabase

from libs.callers import basic_credentials
from libs.outbound import Outbound, OutboundError
from libs.service.logging import get_logger
from libs.tokens import InvalidKey, InvalidToken, JWKSCache, JWKSUnavailable, load_public_jwk, unverified_header, verify
from libs.tokens.single_use import first_use

from ..clients.registry import Client, find_client, secret_matches
from ..collections import CLIENT_ASSERTIONS
from . import fapi
from .errors import InvalidClient, InvalidRequest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Off-the-shelf clients (Authlib) sign assertions valid for an hour; replay is stopped by the jti store, not by brevity.
MAX_ASSERTION_LIFETIME_S = 3600
JWKS_CACHE_S = 300
JWKS_MAX_BYTES = 64 * 1024
JWKS_FAILURE_S = 10

log = get_logger("harbour.auth.client_auth")
# One cache per registered jwks_uri (libs/tokens/jwks_cache.py): a document that could not be fetched again is
# not trusted past its age (serve_stale=False), and an unknown kid fetches again at most every JWKS_FAILURE_S.
_jwks_caches: dict[str, JWKSCache] = {}
# The client's jwks_uri is an outside URL: SSRF-guarded (libs/outbound), and a failure is remembered for a few
# seconds so a slow or refused jwks_uri cannot make every token request wait on it again.
_outbound: Outbound | None = None


def _guarded() -> Outbound:
    global _outbound
    if _outbound is None:
        _outbound = Outbound(failure_ttl_s=JWKS_FAILURE_S)
    return _outbound


async def _fetch_guarded(uri: str) -> Any:
    outbound = _guarded()
    try:
        answer = await outbound.request("GET", uri, headers={"Accept": "application/json"}, timeout_s=5, max_bytes=JWKS_MAX_BYTES)
        if not answer.ok:
            raise OutboundError(f"answered {answer.status}")
        return json.loads(answer.body)
    except (OutboundError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, OutboundError) else "not a JSON document"
        outbound.remember_failure(uri, reason)
        # The reason is logged, not answered: whoever presents an assertion must not learn what the platform can reach.
        log.warning("jwks_uri fetch failed", jwks_uri=uri, reason=reason)
        raise JWKSUnavailable(reason) from None


async def fetch_jwks(uri: str, kid: str | None = None) -> dict[str, Any]:
    """The client's JWKS at its registered `uri`, cached; InvalidClient when it cannot be fetched."""
    cache = _jwks_caches.get(uri)
    if cache is None:
        cache = _jwks_caches[uri] = JWKSCache(
            uri, fetch=_fetch_guarded, max_age_s=JWKS_CACHE_S, min_refresh_s=JWKS_FAILURE_S, serve_stale=False)
    try:
        return {"keys": await cache.jwks(kid)}
    except JWKSUnavailable:
        raise InvalidClient("the client's jwks_uri could not be fetched") from None


async def _client_keys(client: Client, kid: str | None) -> list[dict[str, Any]]:
    jwks = client.metadata.jwks or (await fetch_jwks(client.metadata.jwks_uri, kid) if client.metadata.jwks_uri else {})
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


async def verify_client_assertion(
    db: AsyncDatabase, assertion: str, *, client_id_hint: str | None, audiences: list[str]
) -> Client:
    try:
        header = unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except (InvalidToken, jwt.PyJWTError):
        raise InvalidClient("the client assertion is malformed or not ES256") from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or unverified.get("sub") != client_id or (client_id_hint and client_id_hint != client_id):
        raise InvalidClient("the client assertion's iss and sub must be the client id")
    client = await find_client(db, client_id)
    if client is None or client.metadata.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClient()
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    candidates = [k for k in await _client_keys(client, kid) if header.get("kid") in (None, k.get("kid"))]
    claims = None
    for jwk in candidates:
        try:
            key = load_public_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
            claims = verify(assertion, key, audience=audiences, require=("iss", "sub", "aud", "exp", "jti"))
            break
        except (InvalidKey, InvalidToken):
            continue
    if claims is None:
        raise InvalidClient("the client assertion does not verify with the client's keys, has expired or names another audience")
    # FAPI 2.0: a FAPI client's assertion names the issuer alone, as a string (audiences[0] is the issuer).
    fapi.check_assertion_audience(client, claims["aud"], audiences[0])
    now = int(time.time())
    if claims["exp"] - int(claims.get("iat", now)) > MAX_ASSERTION_LIFETIME_S or claims["exp"] - now > MAX_ASSERTION_LIFETIME_S:
        raise InvalidClient("the client assertion lives too long (one hour at most)")
    if not await first_use(db[CLIENT_ASSERTIONS], client_id, claims):
        raise InvalidClient("the client assertion was already used")
    return client


async def authenticate_client(
    db: AsyncDatabase, authorization: str | None, form: dict[str, str], *, audiences: list[str]
) -> Client:
    basic = basic_credentials(authorization)
    post_secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    if sum(x is not None for x in (basic, post_secret, assertion)) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    if assertion is None and form.get("client_assertion_type", ASSERTION_TYPE) != ASSERTION_TYPE:
        # RFC 6749 §5.2: an unsupported parameter value is an invalid request, not something to ignore.
        raise InvalidRequest("client_assertion_type must be " + ASSERTION_TYPE)
    if basic is not None:
        client = await find_client(db, basic[0])
        if not secret_matches(client, basic[1]) or client.metadata.token_endpoint_auth_method != "client_secret_basic":
            raise InvalidClient()
        return client
    if post_secret is not None:
        client = await find_client(db, form.get("client_id", ""))
        if not secret_matches(client, post_secret) or client.metadata.token_endpoint_auth_method != "client_secret_post":
            raise InvalidClient()
        return client
    if assertion is not None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient("client_assertion_type must be " + ASSERTION_TYPE)
        return await verify_client_assertion(db, assertion, client_id_hint=form.get("client_id"), audiences=audiences)
    raise InvalidClient("client authentication is required")
