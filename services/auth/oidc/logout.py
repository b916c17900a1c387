"""OpenID Connect RP-Initiated Logout 1.0: end the browser session, go back where the client asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from libs.tokens import InvalidToken

from ..clients.registry import find_client
from . import backchannel, sessions
from .authorization import redirect_url

if TYPE_CHECKING:
    from ..context import Auth


async def end_session(auth: "Auth", params: dict[str, str], cookie: str | None) -> str | None:
    """End the session; return where to send the browser (None: show the logged-out page)."""
    client_id = params.get("client_id")
    hint = params.get("id_token_hint")
    sid = None
    if hint:
        try:
            # Expired or not (RP-Initiated Logout §2: the OP should accept an expired ID token as the hint), as at
            # the authorization endpoint (hints.py); signed by one of auth's published keys, for some client.
            claims = await auth.signer.verify(hint, audience=None, typ="JWT", require=("iss", "sub", "aud"), accept_expired=True)
        except InvalidToken:
            # Not verifiable (forged, another issuer's, an access token): the session cookie still decides.
            claims = None
        if claims:
            client_id = client_id or claims.get("aud")
            sid = claims.get("sid") or sid
    async def end(s) -> None:
        # The session ends with its audit record and the relying parties' logout tokens (back-channel logout, every
        # client of the ending sessions, the one asking too), in one transaction.
        logouts = 0
        for account_id, sids in (await sessions.ending(auth, sid=sid, cookie=cookie, session=s)).items():
            logouts += await backchannel.queue_logouts(auth, s, account_id, reason="logout", sids=sids)
        removed = await sessions.end(auth, sid=sid, cookie=cookie, session=s)
        if removed:
            await auth.audit(s, subject=removed["account_id"], action="logout", actor=client_id or "browser",
                             backchannel_logouts=logouts)

    await auth.transaction(end)
    target = params.get("post_logout_redirect_uri")
    client = await find_client(auth.db, client_id) if isinstance(client_id, str) else None
    if target and client and target in client.metadata.post_logout_redirect_uris:
        return redirect_url(target, {"state": params.get("state")})
    return None
