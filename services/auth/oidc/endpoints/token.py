"""The token endpoint (RFC 6749 §3.2) with its grants, and the backchannel authentication endpoint (CIBA Core §7)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter

from libs.service.endpoints import Endpoints
from libs.service.openapi import oauth_error

from ...callers import AUTH
from .. import ciba, dpop, grants
from ..discovery import CIBA_GRANT
from ..errors import UnsupportedGrantType
from ..metrics import TOKENS_ISSUED
from ..views import BackchannelAuthenticationResponse, TokenResponse
from .answers import NO_STORE
from .forms import CLIENT_AUTH_FIELDS, CLIENT_AUTHENTICATED, OAUTH_ERRORS, PARAM, ClientForm, authenticated_client

endpoints = Endpoints(tags=("openid-connect",))

# grant type -> its series of TOKENS_ISSUED, looked up once (a label lookup per token cost ~3 µs; GRANTS bounds it).
_ISSUED: dict[str, Counter] = {}

GRANTS = {
    "authorization_code": grants.authorization_code,
    "refresh_token": grants.refresh_token,
    "client_credentials": grants.client_credentials,
    CIBA_GRANT: ciba.poll,
}


@endpoints.post(
    "/oidc/token", summary="Token endpoint: authorization_code, refresh_token, client_credentials, CIBA",
    caller=authenticated_client("token"),
    form_fields={
        "grant_type": {"type": "string", "enum": list(GRANTS)},
        "code": PARAM, "redirect_uri": PARAM, "code_verifier": PARAM, "refresh_token": PARAM, "scope": PARAM,
        "auth_req_id": PARAM, **CLIENT_AUTH_FIELDS,
    },
    form_required=("grant_type",),
    answers={200: TokenResponse, **OAUTH_ERRORS,
             400: oauth_error("invalid_request, invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type; "
                              "CIBA: authorization_pending, slow_down, access_denied, expired_token; "
                              "DPoP: invalid_dpop_proof, use_dpop_nonce (with a DPoP-Nonce header)")},
    headers=NO_STORE, exclude_none=True, **CLIENT_AUTHENTICATED,
)
async def token(request: web.Request, caller: ClientForm) -> TokenResponse:
    grant_type = caller.form.get("grant_type")
    grant = GRANTS.get(grant_type or "")
    if grant is None:
        raise UnsupportedGrantType("grant_type is missing or not supported")
    auth = request.config_dict[AUTH]
    # RFC 9449 §5: with a DPoP proof, the tokens are bound to its key (checked before the grant spends anything).
    jkt = await dpop.token_request_key(auth, caller.client, request.headers.getall("DPoP", []))
    answer = await grant(auth, caller.client, caller.form, jkt=jkt)
    counter = _ISSUED.get(grant_type)
    if counter is None:
        counter = _ISSUED[grant_type] = TOKENS_ISSUED.labels(grant_type)
    counter.inc()
    return answer


@endpoints.post(
    "/oidc/bc-authorize", summary="Backchannel authentication request (CIBA Core, poll mode)",
    caller=authenticated_client("bc-authorize"),
    form_fields={
        "scope": PARAM, "login_hint": {**PARAM, "description": "the citizen's sub at this client"},
        "login_hint_token": PARAM, "id_token_hint": PARAM, "binding_message": {**PARAM, "maxLength": 40},
        "acr_values": PARAM, "requested_expiry": {**PARAM, "pattern": "^[0-9]+$"}, **CLIENT_AUTH_FIELDS,
    },
    answers={200: BackchannelAuthenticationResponse, **OAUTH_ERRORS,
             400: oauth_error("invalid_request, invalid_scope, invalid_binding_message, unknown_user_id"),
             403: oauth_error("access_denied: the citizen's assurance is too low for acr_values")},
    headers=NO_STORE, **CLIENT_AUTHENTICATED,
)
async def backchannel_authentication(request: web.Request, caller: ClientForm) -> BackchannelAuthenticationResponse:
    auth = request.config_dict[AUTH]
    return await ciba.backchannel_authorize(auth, caller.client, caller.form)
