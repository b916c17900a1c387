"""Signed request objects (JAR, RFC 9101): an authorization request as a JWT the client signed, by value or through PAR.

The client signs the request's parameters with a key of its registered
`jwks` / `jwks_uri` (the keys `private_key_jwt` uses, client_auth.py), ES256
with a P-256 key or PS256 with an RSA key of 2048 bits or more (never
`none`, never an HMAC with the client secret). The JWT's `iss` is
the client, its `aud` the issuer, its `client_id` the outer one; `exp` is
required and at most an hour ahead, `nbf` not in the future. Its claims are
then the whole request (RFC 9101 §6.3): the outer parameters beside
`client_id` and `request` are ignored. Whatever is wrong with it is
`invalid_request_object`, never redirected (the redirect URI inside is not
trusted until the signature is). `request_uri` is only PAR's own reference
(`request_uri_not_supported` otherwise). A client that registered
`require_signed_request_object` (RFC 9101 §10.5) is refused a plain request,
at the authorization endpoint and at PAR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libs.tokens import InvalidKey, InvalidToken, load_public_jwk, load_public_rsa_jwk, unverified_header, verify

from ..clients.registry import find_client
from .authorization import MAX_PARAM_LENGTH
from .client_auth import _client_keys
from .errors import InvalidClient, InvalidRequest, InvalidRequestObject, RequestUriNotSupported

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

ALGORITHMS = ("ES256", "PS256")
KEY_TYPES = {"ES256": "EC", "PS256": "RSA"}
MAX_LIFETIME_S = 3600
# The JWT's own claims: not authorization parameters.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "sub"})
PAR_URN_PREFIX = "urn:ietf:params:oauth:request_uri:"


def check_plain(client: "Client | None", signed: bool) -> None:
    """RFC 9101 §10.5: a client registered with require_signed_request_object sends nothing but request objects."""
    if client is not None and not signed and client.metadata.require_signed_request_object:
        raise InvalidRequest("this client must send its authorization requests as signed request objects (request, RFC 9101)")


async def resolve(auth: "Auth", params: dict[str, str]) -> tuple[dict[str, str], bool]:
    """At the authorization endpoint: (the request's parameters, whether they came signed).

    A request object's claims replace the outer parameters; a request_uri that is not PAR's own is refused.
    """
    if "request_uri" in params:
        if "request" in params:
            raise InvalidRequest("request and request_uri cannot both be sent")
        if not params["request_uri"].startswith(PAR_URN_PREFIX):
            raise RequestUriNotSupported("request_uri must come from the pushed authorization request endpoint")
        return params, False
    if "request" not in params:
        return params, False
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRequest("client_id is required beside request (RFC 9101 §5)")
    client = await find_client(auth.db, client_id)
    if client is None:
        raise InvalidClient("unknown client_id")
    return await unpack(auth, client, params["request"]), True


async def pushed(auth: "Auth", client: "Client", params: dict[str, str]) -> dict[str, str]:
    """At PAR (RFC 9126 §3): the authenticated client's request object unpacked, or its plain parameters if it may send them."""
    if "request" not in params:
        check_plain(client, signed=False)
        return params
    return await unpack(auth, client, params["request"])


async def unpack(auth: "Auth", client: "Client", request_object: str) -> dict[str, str]:
    """The verified request object's parameters, with the client's id; InvalidRequestObject otherwise."""
    claims = await _verified_claims(auth, client, request_object)
    if claims.get("client_id") != client.client_id:
        raise InvalidRequestObject("the request object's client_id must be the client's")
    params: dict[str, str] = {}
    for name, value in claims.items():
        if name in JWT_CLAIMS:
            continue
        if name in ("request", "request_uri"):
            raise InvalidRequestObject(f"a request object cannot carry {name}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidRequestObject(f"the request object's {name} must be a string")
        value = str(value)
        if len(value) > MAX_PARAM_LENGTH:
            raise InvalidRequestObject(f"the request object's {name} is too long")
        params[name] = value
    return params


async def _verified_claims(auth: "Auth", client: "Client", request_object: str) -> dict[str, Any]:
    try:
        header = unverified_header(request_object, ALGORITHMS)  # alg none and HS256 are refused here
    except InvalidToken:
        raise InvalidRequestObject("the request object must be a JWS signed with ES256 or PS256 by the client (RFC 9101)") from None
    alg = header["alg"]
    if not (client.metadata.jwks or client.metadata.jwks_uri):
        raise InvalidRequestObject("the client registered no keys (jwks or jwks_uri) to verify request objects with")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    try:
        keys = await _client_keys(client, kid)
    except InvalidClient:
        raise InvalidRequestObject("the client's jwks_uri could not be fetched") from None
    now = auth.clock.now()
    problem = "the request object does not verify with the client's registered keys"
    for jwk in keys:
        if header.get("kid") not in (None, jwk.get("kid")) or jwk.get("kty") != KEY_TYPES[alg]:
            continue
        try:
            key = load_public_rsa_jwk(jwk) if alg == "PS256" else load_public_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
        except InvalidKey:
            continue
        try:
            claims = verify(request_object, key, audience=auth.settings.issuer, issuer=client.client_id,
                            require=("iss", "aud", "exp"), now=now, algorithms=(alg,))
        except InvalidToken as exc:
            if "signature" not in str(exc):
                problem = f"the request object is refused: {exc}"  # signed by this key, but expired, for another audience...
            continue
        exp, iat = int(claims["exp"]), int(claims.get("iat", now.timestamp()))  # both integers: verify() checked them
        if exp - now.timestamp() > MAX_LIFETIME_S or exp - iat > MAX_LIFETIME_S:
            raise InvalidRequestObject("the request object lives too long (exp at most an hour ahead)")
        return claims
    raise InvalidRequestObject(problem)
