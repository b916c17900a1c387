"""The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), checked in the spec's order.

First what makes a redirect safe — a known client and an exactly registered
redirect URI — whose failures are shown, never redirected. Then everything
else, whose failures carry where they go back to (`back_to`): the client
gets `error`, `state` and `iss` (RFC 9207). Code flow only; PKCE S256
required (RFC 9700).
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .errors import InvalidClient, InvalidRequest, InvalidScope, ResponseTarget, UnsupportedResponseType
from .pkce import check_challenge
from .tokens import ACR_RANK

MAX_PARAM_LENGTH = 2048
DPOP_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
SINGLE_VALUED = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "acr_values", "response_mode", "ui_locales", "login_hint", "id_token_hint",
    "request_uri", "request", "dpop_jkt",
)
# A signed request object (RFC 9101, request_objects.py) carries the whole request: more room than one parameter.
MAX_REQUEST_OBJECT_LENGTH = 8192


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    response_mode: str = "query"
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    acr_values: tuple[str, ...] = ()
    ui_locales: str | None = None
    # Who may approve (hints.py resolves them): never stored, the login keeps the account they name instead.
    login_hint: str | None = None
    id_token_hint: str | None = None
    # RFC 9449 §10: the thumbprint of the DPoP key the code may only be redeemed with (by parameter, or PAR's proof).
    dpop_jkt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id, "redirect_uri": self.redirect_uri, "scope": self.scope, "state": self.state,
            "nonce": self.nonce, "code_challenge": self.code_challenge, "response_mode": self.response_mode,
            "prompt": sorted(self.prompt), "max_age": self.max_age, "acr_values": list(self.acr_values),
            "ui_locales": self.ui_locales, "dpop_jkt": self.dpop_jkt,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "AuthorizationRequest":
        return cls(**{**doc, "prompt": frozenset(doc["prompt"]), "acr_values": tuple(doc["acr_values"])})

    @property
    def response_target(self) -> ResponseTarget:
        """Where the authorization response (or an error) goes back to."""
        return ResponseTarget(self.redirect_uri, self.response_mode, self.state)

    @property
    def hinted(self) -> bool:
        return bool(self.login_hint or self.id_token_hint)

    def required_acr(self) -> str | None:
        """The strongest level the client asked for (voluntary acr_values: we meet the highest we can)."""
        known = [a for a in self.acr_values if a in ACR_RANK]
        return max(known, key=ACR_RANK.__getitem__) if known else None

    def accepts_acr(self, acr: str) -> bool:
        """Does a login at level `acr` meet what the client asked for?"""
        required = self.required_acr()
        return required is None or ACR_RANK[acr] >= ACR_RANK[required]


def single_params(params: Any) -> dict[str, str]:
    """Each parameter at most once (RFC 6749 §3.1) and of bounded size."""
    values: dict[str, str] = {}
    for key in params.keys():
        all_values = params.getall(key) if hasattr(params, "getall") else [params[key]]
        if key in SINGLE_VALUED and len(all_values) > 1:
            raise InvalidRequest(f"the parameter {key} is repeated")
        value = all_values[0]
        if len(value) > (MAX_REQUEST_OBJECT_LENGTH if key == "request" else MAX_PARAM_LENGTH):
            raise InvalidRequest(f"the parameter {key} is too long")
        values[key] = value
    return values


def check_client_and_redirect(client, params: dict[str, str]):
    """The checks whose failures must not redirect (RFC 6749 §4.1.2.1): raised without `back_to`."""
    if client is None:
        raise InvalidClient("unknown client_id")
    redirect_uri = params.get("redirect_uri")
    registered = client.metadata.redirect_uris
    if redirect_uri is None:
        # OIDC Core makes it required; exact match is the only rule we know.
        raise InvalidRequest("redirect_uri is required")
    if redirect_uri not in registered:
        raise InvalidRequest("redirect_uri is not registered for this client (exact match)")
    return redirect_uri


def parse_request(client, params: dict[str, str]) -> AuthorizationRequest:
    redirect_uri = check_client_and_redirect(client, params)
    state = params.get("state")
    response_mode = params.get("response_mode", "query")
    if response_mode not in ("query", "form_post"):
        raise InvalidRequest("response_mode must be query or form_post", back_to=ResponseTarget(redirect_uri, "query", state))
    back_to = ResponseTarget(redirect_uri, response_mode, state)
    if params.get("response_type") != "code":
        raise UnsupportedResponseType("only the authorization code flow (response_type=code) is supported", back_to=back_to)
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScope("scope must include openid", back_to=back_to)
    # offline_access too: a refresh token only for a client registered for it (and approved on the phone).
    not_allowed = set(scopes) - client.scopes
    if not_allowed:
        raise InvalidScope(f"the client may not ask for: {' '.join(sorted(not_allowed))}", back_to=back_to)
    problem = check_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
    if problem:
        raise InvalidRequest(problem, back_to=back_to)
    prompt = frozenset(params.get("prompt", "").split())
    # login and consent are what every interactive login does anyway: a fresh approval on the phone.
    if not prompt <= {"none", "login", "consent"} or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt may be none, login or consent", back_to=back_to)
    max_age = None
    if "max_age" in params:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (params["max_age"].isascii() and params["max_age"].isdigit()):
            raise InvalidRequest("max_age must be a non-negative integer", back_to=back_to)
        max_age = int(params["max_age"])
    dpop_jkt = params.get("dpop_jkt") or None
    if dpop_jkt is not None and not DPOP_JKT.fullmatch(dpop_jkt):
        raise InvalidRequest("dpop_jkt must be a JWK SHA-256 thumbprint (43 base64url characters)", back_to=back_to)
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(dict.fromkeys(scopes)),
        state=state,
        nonce=params.get("nonce"),
        code_challenge=params["code_challenge"],
        response_mode=response_mode,
        prompt=prompt,
        max_age=max_age,
        acr_values=tuple(params.get("acr_values", "").split()),
        ui_locales=params.get("ui_locales"),
        # Empty means absent (as at bc-authorize).
        login_hint=params.get("login_hint") or None,
        id_token_hint=params.get("id_token_hint") or None,
        dpop_jkt=dpop_jkt,
    )


def redirect_url(redirect_uri: str, params: dict[str, str]) -> str:
    """The query-mode response: parameters appended to the registered URI (which may carry a query already)."""
    parts = urlsplit(redirect_uri)
    query = "&".join(p for p in (parts.query, urlencode({k: v for k, v in params.items() if v is not None})) if p)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
