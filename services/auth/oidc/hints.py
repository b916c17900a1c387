"""`login_hint` and `id_token_hint` at the authorization endpoint (OIDC Core §3.1.2.1): who alone may approve a login.

Both name the citizen the way this client knows them: `login_hint` is the
citizen's pairwise `sub` at this client (as at bc-authorize, ciba.py), and
`id_token_hint` is an ID token this issuer signed for this client. A hinted
login is bound to that citizen's account: another citizen's phone can
neither claim nor decide it, and `prompt=none` answers only from that
citizen's session. When the client itself sent the request (PAR, client
authentication) the prompt also goes straight into that account's approval
queue (the app's stream shows it at once), as a CIBA request's does; a
front-channel request, which anyone can make, never puts a prompt on a phone
unasked (login.start).

The ID token is checked against auth's own keys (ES256, a published key,
`iss` = the issuer, `aud` = this client, `typ` JWT: an access token is no
hint). Its `exp` is not: a hint names a past login, and an expired ID token
is exactly what a relying party holds when it asks the same citizen to log
in again (OIDC Core §3.1.2.1 speaks of a "current or past authenticated
session"; RP-Initiated Logout §2 asks the OP to accept expired ones). How
old it may be is bounded by the keys: a token whose key has left the JWKS
(a retired key stays until the tokens it signed have expired) no longer
verifies — a relying party then sends `login_hint` = the `sub` instead.

A hint that does not verify, names no active citizen of this client, or
two hints that name different citizens, are `invalid_request` sent back to
the redirect URI (`login_required` for `prompt=none`): never a login anyone
may approve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libs.tokens import InvalidToken

from ..collections import ACCOUNTS
from .authorization import AuthorizationRequest
from .errors import InvalidRequest, LoginRequired, OAuthError
from .pairwise import account_for

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

# What an ID token must carry to be a hint (ours always carry them all).
HINT_CLAIMS = ("iss", "sub", "aud", "iat", "exp")


class HintRefused(ValueError):
    """A hint this login cannot be bound by; the message is safe to send to the client."""


def hinted_subject(login_hint: str | None, id_token_sub: str | None) -> str | None:
    """The one pairwise sub the hints name (None: no hint); HintRefused when they name two."""
    if login_hint and id_token_sub and login_hint != id_token_sub:
        raise HintRefused("login_hint and id_token_hint name different citizens")
    return id_token_sub or login_hint or None


def _refusal(request: AuthorizationRequest, message: str) -> OAuthError:
    """Back to the client: login_required when it asked for no interaction, else invalid_request."""
    error = LoginRequired if "none" in request.prompt else InvalidRequest
    return error(message, back_to=request.response_target)


async def id_token_sub(auth: "Auth", client: "Client", id_token: str) -> str:
    """The sub of an ID token this issuer signed for this client (expired or not); HintRefused otherwise."""
    try:
        claims = await auth.signer.verify(id_token, audience=client.client_id, typ="JWT", require=HINT_CLAIMS,
                                          accept_expired=True)
    except InvalidToken as exc:
        raise HintRefused(f"id_token_hint is not an ID token of this issuer for this client: {exc}") from None
    sub = claims.get("sub")
    # An ID token of ours names its client as a single audience and as azp; a multi-audience one is not ours.
    if not isinstance(sub, str) or not sub or claims.get("azp", client.client_id) != client.client_id:
        raise HintRefused("id_token_hint is not an ID token of this issuer for this client")
    return sub


async def hinted_account(auth: "Auth", client: "Client", request: AuthorizationRequest) -> dict[str, Any] | None:
    """The active account the request's hints name (None without hints); the OAuth error for the client otherwise."""
    if not request.hinted:
        return None
    try:
        token_sub = await id_token_sub(auth, client, request.id_token_hint) if request.id_token_hint else None
        sub = hinted_subject(request.login_hint, token_sub)
    except HintRefused as exc:
        raise _refusal(request, str(exc)) from None
    account_id = await account_for(auth.db, sub, client.sector) if sub else None
    account = await auth.db[ACCOUNTS].find_one({"_id": account_id}) if account_id else None
    if account is None or account.get("state") != "active":
        # Unknown, closed or suspended look the same to the client.
        raise _refusal(request, "the hint names no active citizen of this client")
    return account
