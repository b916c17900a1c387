"""OAuth 2.0 error responses (RFC 6749 §4.1.2.1 and §5.2).

OAuth and OpenID Connect endpoints answer errors the way client libraries
expect — `{"error", "error_description"}` or an error redirect — rather than
problem+json; that is the one deliberate exception to the platform's error
format (docs/api.md).
"""

from __future__ import annotations

from libs.callers import challenge


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidClient(OAuthError):
    def __init__(self, description: str = "client authentication failed") -> None:
        super().__init__("invalid_client", description, 401, headers={"WWW-Authenticate": challenge("Basic")})


class InvalidGrant(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_grant", description)


class InvalidRequest(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_request", description)


class RedirectableError(OAuthError):
    """An authorization error that goes back to the client's (verified) redirect URI."""

    def __init__(self, error: str, description: str, *, redirect_uri: str, state: str | None, response_mode: str = "query") -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


class UnredirectableError(OAuthError):
    """An authorization error that must not be redirected: unknown client or unregistered redirect URI."""
