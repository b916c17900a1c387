"""The refusals of caller authentication: 401 with a challenge, 403 insufficient-scope (docs/api.md), 503 while the
revocation list is unknown."""

from __future__ import annotations

from libs.errors import Forbidden, NotReady, Unauthorized

from .authorization import challenge


class TokenRequired(Unauthorized):
    """No bearer token at all: the bare challenge, no error code (RFC 6750 §3.1)."""

    def __init__(self, detail: str = "an access token is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("Bearer")})


class InvalidAccessToken(Unauthorized):
    """A bearer token that is malformed, expired, badly signed or revoked."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("Bearer", error="invalid_token", description=detail)})


DPOP_ALGS = "ES256 EdDSA RS256"


class InvalidDPoPToken(Unauthorized):
    """A DPoP-bound token presented without its proof (as a Bearer token): RFC 9449 §7.1's DPoP challenge."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("DPoP", error="invalid_token", description=detail,
                                                                        algs=DPOP_ALGS)})


class InvalidDPoPProof(Unauthorized):
    """A DPoP proof that is missing, malformed, for another request or token, stale or replayed (RFC 9449 §7.1)."""

    slug = "invalid-dpop-proof"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("DPoP", error="invalid_dpop_proof",
                                                                        description=detail, algs=DPOP_ALGS)})


class InsufficientScope(Forbidden):
    """A good token without every scope the endpoint needs."""

    slug = "insufficient-scope"

    def __init__(self, scopes: list[str] | tuple[str, ...], missing: list[str] | tuple[str, ...] | None = None) -> None:
        super().__init__(f"the token lacks the scope: {' '.join(missing or scopes)}", headers={
            "WWW-Authenticate": challenge("Bearer", error="insufficient_scope", scope=" ".join(scopes))})


class ClientCredentialsRequired(Unauthorized):
    """No (or unreadable) HTTP Basic client credentials."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("Basic")})


class RevocationsLoading(NotReady):
    """The process has not read its revocation list up to date yet: nothing can be said about a token."""

    retry_after = 1


class RevocationsNotFollowed(NotReady):
    """A process that forgot install_revocations must not silently honour revoked tokens."""

    def __init__(self) -> None:
        super().__init__("revocations are not followed by this service")


# What each check can refuse, for an endpoint's declared refusals (libs/service/endpoints.py);
# any of them may also be 503 while the process's revocation list is still loading.
ACCESS_TOKEN_REFUSALS = (TokenRequired, InvalidAccessToken, InvalidDPoPToken, InvalidDPoPProof, InsufficientScope)
DEVICE_TOKEN_REFUSALS = (TokenRequired, InvalidAccessToken)
