"""OAuth 2.0 and OpenID Connect errors, one declarative class per error code.

OAuth and OpenID Connect endpoints answer errors the way client libraries
expect — `{"error", "error_description"}` (RFC 6749 §5.2), an error redirect
(§4.1.2.1) or, where no redirect is safe, an error page — rather than
problem+json; that is the one deliberate exception to the platform's error
format (docs/api.md). The domain raises these classes; the one error handler of
the endpoints under /oidc (endpoints/error_handler.py) renders them, so no
handler catches one:

    raise InvalidGrant("the code has expired")                   # 400 {"error": "invalid_grant", ...}
    raise LoginRequired("...", back_to=request.response_target)  # 303 to the client, error=login_required

The login page's polling and the citizen's app are no OAuth clients: what
they are refused is a problem (libs/errors.py), declared at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from libs.callers import challenge
from libs.errors import BadRequest, Conflict, Forbidden, Gone, NotFound


@dataclass(frozen=True)
class ResponseTarget:
    """Where an authorization response goes: the client's verified redirect URI, in its response mode, with its state."""

    redirect_uri: str
    response_mode: str = "query"
    state: str | None = None


class OAuthError(Exception):
    """`error` is the code, `status` the HTTP status of its JSON answer.

    `back_to`: at the authorization endpoint, where the error goes back to once the client and its redirect
    URI are verified (RFC 6749 §4.1.2.1); an error raised there without one is shown as an error page.
    """

    error: ClassVar[str]
    status: ClassVar[int] = 400

    def __init__(self, description: str, *, back_to: ResponseTarget | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.back_to = back_to

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


# --- RFC 6749 §4.1.2.1 and §5.2 ----------------------------------------------


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed: 401 with the Basic challenge (RFC 6749 §5.2)."""

    error, status = "invalid_client", 401

    def __init__(self, description: str = "client authentication failed", **kwargs) -> None:
        super().__init__(description, **kwargs)

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": challenge("Basic")}


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5: the token request's DPoP proof is missing (a client registered dpop_bound_access_tokens), malformed,
    for another request, stale or replayed."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """RFC 9449 §8: the proof must carry the server's nonce, sent in the DPoP-Nonce header of this answer."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce

    @property
    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce}


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class AccessDenied(OAuthError):
    """The citizen declined (a CIBA poll's answer, 400)."""

    error = "access_denied"


# --- RFC 9126 (pushed authorization requests) ---------------------------------


class InvalidRequestUri(OAuthError):
    error = "invalid_request_uri"


# --- RFC 9101 (JWT-secured authorization requests, JAR) ------------------------


class InvalidRequestObject(OAuthError):
    error = "invalid_request_object"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


# --- OpenID Connect Core §3.1.2.6 (prompt=none) --------------------------------


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


# --- OpenID CIBA Core §11 and §13 ----------------------------------------------


class CitizenCannotApprove(AccessDenied):
    """The named citizen may not approve this request (its assurance is too low): 403 at bc-authorize (CIBA §13)."""

    status = 403


class InvalidBindingMessage(OAuthError):
    error = "invalid_binding_message"


class UnknownUserId(OAuthError):
    error = "unknown_user_id"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


# --- RFC 6750 §3.1 (a bearer access token presented to userinfo) ---------------


class _BearerError(OAuthError):
    @property
    def headers(self) -> dict[str, str]:
        # userinfo's challenge has always named no realm (OIDC Core §5.3.3 shows none).
        return {"WWW-Authenticate": challenge("Bearer", error=self.error, description=self.description, realm=None)}


class InvalidToken(_BearerError):
    error, status = "invalid_token", 401


class InsufficientScope(_BearerError):
    error, status = "insufficient_scope", 403


# --- refusals of the login page and the app (problem+json, not OAuth) ----------


class NoSuchLogin(NotFound):
    __doc__ = """No such login, or not with this browser key (only the page that started a login knows its key)."""


class UnknownLink(BadRequest):
    slug, title = "unknown-link", "Unknown link"


class LinkUnusable(Conflict):
    """The login has expired, or another citizen's app opened its link first."""

    slug, title = "link-unusable", "Link unusable"


class QrCodeForged(BadRequest):
    """A login QR link whose time code auth did not make (qr_links.py): altered, or made up."""

    slug, title = "qr-code-invalid", "QR code invalid"


class QrCodeExpired(Gone):
    """A login QR link drawn more than the QR window ago (qr_links.py): a captured code replayed, or a relayed screenshot."""

    slug, title = "qr-code-expired", "QR code expired"


class LoginForAnotherCitizen(Forbidden):
    """The client named the citizen who may approve this login (login_hint, id_token_hint): another one's app opened it."""

    slug, title = "login-for-another-citizen", "Login for another citizen"


class AssuranceTooLow(Forbidden):
    """The client asked (acr_values) for an identity proofed in person (plus); this citizen's is basic."""

    slug, title = "assurance-too-low", "Assurance too low"
