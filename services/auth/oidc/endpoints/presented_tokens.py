"""Tokens presented back to auth: userinfo (OIDC Core §5.3), introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

from aiohttp import web

from libs.callers import access_token_of, check_sender
from libs.service.endpoints import Endpoints
from libs.service.openapi import Body, oauth_error

from ...callers import AUTH
from .. import resource
from ..errors import InvalidToken
from ..views import Introspection, UserInfo
from .answers import NO_STORE
from .forms import CLIENT_AUTH_FIELDS, CLIENT_AUTHENTICATED, OAUTH_ERRORS, PARAM, ClientForm, authenticated_client

endpoints = Endpoints(tags=("openid-connect",))

USERINFO_ANSWERS = {
    200: UserInfo,
    401: oauth_error("invalid_token (WWW-Authenticate: Bearer)"),
    403: oauth_error("insufficient_scope: the token was not issued for openid"),
}
TOKEN_FORM = {"token": PARAM, "token_type_hint": PARAM, **CLIENT_AUTH_FIELDS}


async def access_token(request: web.Request) -> tuple[str, str]:
    """(scheme, token): the request's Bearer (RFC 6750 §2.1) or DPoP (RFC 9449 §7.1) access token, or invalid_token."""
    presented = access_token_of(request.headers.get("Authorization"))
    if presented is None:
        raise InvalidToken("a bearer access token is required")
    return presented


@endpoints.post("/oidc/userinfo", summary="UserInfo, by POST", caller=access_token, answers=USERINFO_ANSWERS,
                headers=NO_STORE, security=("bearer",))
@endpoints.get("/oidc/userinfo", summary="UserInfo (OIDC Core §5.3): the pairwise sub and the assurance level",
               caller=access_token, answers=USERINFO_ANSWERS, headers=NO_STORE, security=("bearer",))
async def userinfo(request: web.Request, caller: tuple[str, str]) -> UserInfo:
    auth = request.config_dict[AUTH]
    scheme, token = caller
    # A DPoP-bound token only with its proof for this request (the same check as every service's, libs/callers).
    return await resource.userinfo(auth, token, sender=lambda claims: check_sender(request, auth.settings.issuer, scheme, token, claims))


@endpoints.post("/oidc/introspect", summary="Token introspection (RFC 7662), for the calling client's own tokens",
                caller=authenticated_client("introspect"), form_fields=TOKEN_FORM,
                answers={200: Introspection, **OAUTH_ERRORS}, headers=NO_STORE, exclude_none=True, **CLIENT_AUTHENTICATED)
async def introspect(request: web.Request, caller: ClientForm) -> Introspection:
    return await resource.introspect(request.config_dict[AUTH], caller.client, caller.form.get("token"))


@endpoints.post("/oidc/revoke", summary="Token revocation (RFC 7009): always 200 for an authenticated client",
                caller=authenticated_client("revoke"), form_fields=TOKEN_FORM,
                answers={200: Body("revoked (or nothing to revoke); no body"), **OAUTH_ERRORS}, **CLIENT_AUTHENTICATED)
async def revoke(request: web.Request, caller: ClientForm) -> web.Response:
    await resource.revoke(request.config_dict[AUTH], caller.client, caller.form.get("token"))
    return web.Response(status=200, headers=NO_STORE)
