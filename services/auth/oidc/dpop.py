"""DPoP at the token endpoint (RFC 9449 §5): the proof a token request carries, and the key its tokens are bound to.

The proof is checked by libs/tokens/dpop.py (the same code as at every
resource) for `POST {issuer}/oidc/token`, as discovery publishes it, with no
`ath`. Its jti is spent with one insert into `dpop_proofs` (a TTL index ends
it when the proof could no longer be fresh), so every auth replica refuses a
replay. Server nonces (§8) are stateless: an HMAC of the current five-minute
window under auth's hash key, asked of the clients `HARBOUR_AUTH_DPOP_NONCE`
names.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from libs.tokens import dpop
from libs.tokens.single_use import first_use

from ..collections import DPOP_PROOFS
from . import fapi
from .errors import InvalidDPoPProof, UseDPoPNonce

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

NONCE_MODES = ("off", "bound", "always")


@functools.lru_cache(maxsize=4)
def _nonces(key: bytes) -> dpop.Nonces:
    return dpop.Nonces(key)


def nonces(auth: "Auth") -> dpop.Nonces:
    return _nonces(auth.settings.hash_key)


def wants_nonce(auth: "Auth", client: "Client") -> bool:
    """Whether this client's proofs must carry a server nonce (an unknown HARBOUR_AUTH_DPOP_NONCE counts as `always`)."""
    mode = auth.settings.dpop_nonce
    if mode == "off":
        return False
    return mode != "bound" or fapi.requires_dpop(client)


async def token_request_key(auth: "Auth", client: "Client", proofs: list[str]) -> str | None:
    """The thumbprint (`jkt`) the tokens of this request are bound to, None without a proof; or the OAuth error."""
    if not proofs:
        if fapi.requires_dpop(client):
            raise InvalidDPoPProof("this client's token requests need a DPoP proof (dpop_bound_access_tokens or fapi_profile)")
        return None
    if len(proofs) > 1:
        raise InvalidDPoPProof("exactly one DPoP header is allowed")
    url = f"{auth.settings.issuer}/oidc/token"
    check = nonces(auth).ok if wants_nonce(auth, client) else None
    try:
        proof = dpop.verify_proof(proofs[0], method="POST", url=url, nonce_ok=check)
    except dpop.NonceRequired as exc:
        raise UseDPoPNonce(str(exc), nonces(auth).current()) from None
    except dpop.InvalidProof as exc:
        raise InvalidDPoPProof(str(exc)) from None
    if not await first_use(auth.db[DPOP_PROOFS], proof.jkt, {"jti": proof.jti, "exp": proof.iat + dpop.REPLAY_TTL_S}):
        raise InvalidDPoPProof("this DPoP proof was already used")
    return proof.jkt


def pushed_request_key(auth: "Auth", proofs: list[str]) -> str | None:
    """The thumbprint of the DPoP proof sent with a pushed authorization request (RFC 9449 §10.1), None without one.
    Not spent against replay: replaying it only binds another request of the same client to the same key."""
    if not proofs:
        return None
    if len(proofs) > 1:
        raise InvalidDPoPProof("exactly one DPoP header is allowed")
    try:
        return dpop.verify_proof(proofs[0], method="POST", url=f"{auth.settings.issuer}/oidc/par").jkt
    except dpop.InvalidProof as exc:
        raise InvalidDPoPProof(str(exc)) from None
