"""Logging citizens in with Harbour ID: OpenID Connect code flow through Authlib's client.

Authlib drives the protocol (PKCE S256, `private_key_jwt` client assertions,
the token request); this module adds what a careful relying party checks
itself: the `iss` of the authorization response (RFC 9207), the state, and
the ID token's signature (ES256, the platform's JWKS), issuer, audience,
expiry and nonce.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from .config import SCOPE, SiteConfig


class LoginFailed(Exception):
    """The login did not complete; the message is safe to show."""


@dataclass(frozen=True)
class PendingLogin:
    """What the site keeps between sending the browser away and its return."""

    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Login:
    sub: str  # the citizen's pairwise identifier at this site
    access_token: str
    id_token: str
    acr: str


class HarbourIdLogin:
    def __init__(self, config: SiteConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self.http = http
        self._metadata: dict | None = None

    async def metadata(self) -> dict:
        if self._metadata is None:
            response = await self.http.get(f"{self.config.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            metadata = response.json()
            if metadata.get("issuer") != self.config.issuer:
                raise LoginFailed("the provider's metadata names another issuer")
            self._metadata = metadata
        return self._metadata

    def _client(self, metadata: dict) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=ECKey.import_key(self.config.private_key_pem),
            token_endpoint_auth_method=PrivateKeyJWT(metadata["token_endpoint"], headers={"kid": self.config.key_id}, alg="ES256"),
            scope=SCOPE, redirect_uri=self.config.redirect_uri, code_challenge_method="S256", timeout=10,
        )

    async def start(self, language: str) -> tuple[str, PendingLogin]:
        metadata = await self.metadata()
        pending = PendingLogin(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24), code_verifier=secrets.token_urlsafe(48))
        async with self._client(metadata) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=pending.state, code_verifier=pending.code_verifier,
                nonce=pending.nonce, ui_locales=language,
            )
        return url, pending

    async def finish(self, callback_url: str, params: dict[str, str], pending: PendingLogin) -> Login:
        metadata = await self.metadata()
        if params.get("iss") != metadata["issuer"]:
            raise LoginFailed("the answer did not come from Harbour ID")
        if not secrets.compare_digest(params.get("state", ""), pending.state):
            raise LoginFailed("this login was not started here")
        if "error" in params:
            raise LoginFailed("access_denied" if params["error"] == "access_denied" else "login_error")
        async with self._client(metadata) as client:
            try:
                token = await client.fetch_token(metadata["token_endpoint"], authorization_response=callback_url,
                                                 code_verifier=pending.code_verifier)
            except Exception as error:  # Authlib raises OAuthError; httpx its own transport errors
                raise LoginFailed(f"the code could not be exchanged: {error}") from error
        claims = await self._verified_id_token(metadata, token["id_token"], pending.nonce)
        return Login(sub=claims["sub"], access_token=token["access_token"], id_token=token["id_token"], acr=claims.get("acr", ""))

    async def _verified_id_token(self, metadata: dict, id_token: str, nonce: str) -> dict:
        response = await self.http.get(metadata["jwks_uri"])
        response.raise_for_status()
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(response.json()), algorithms=["ES256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True}, exp={"essential": True}, nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as error:
            raise LoginFailed(f"the ID token is not valid: {error}") from error
        return decoded.claims

    async def client_token(self, scope: str) -> str:
        """The site's own access token (client_credentials, private_key_jwt), e.g. to send notifications."""
        metadata = await self.metadata()
        async with self._client(metadata) as client:
            try:
                token = await client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", scope=scope)
            except Exception as error:
                raise LoginFailed(f"no client token: {error}") from error
        return token["access_token"]

    async def logout_url(self, id_token: str) -> str:
        metadata = await self.metadata()
        query = httpx2.QueryParams(id_token_hint=id_token, post_logout_redirect_uri=self.config.post_logout_redirect_uri,
                                  client_id=self.config.client_id)
        return f"{metadata['end_session_endpoint']}?{query}"
