"""DPoP (RFC 9449): checking a proof of possession, its replay window, and server nonces. No framework here.

A proof is a JWS (`typ: dpop+jwt`, ES256, EdDSA or RS256) whose header carries
the client's public `jwk`; its claims name the request (`htm`, `htu`), when it
was made (`iat`), a unique `jti`, at a resource the access token's hash (`ath`)
and, when the server asked for one, its `nonce`. The header's key is read and
checked by jwcrypto, whose RFC 7638 thumbprint (`JWK.thumbprint()`) is what a
token is bound to (`cnf.jkt`); the signature is verified by PyJWT with the
algorithm pinned to the header's (one of the three). A client uses one key for
many proofs: the key read from a header is kept (by its JSON) so each proof
costs one signature check (jwcrypto's JWS object deep-copies its defaults on
every use, three times PyJWT's cost).

One implementation for every place a proof is checked: auth's token endpoint
and userinfo, the gateway's edge and every service's caller check
(libs/callers/verification.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto.common import JWException

from libs import base64url

PROOF_TYP = "dpop+jwt"
ALGORITHMS = ("ES256", "EdDSA", "RS256")
# A proof is fresh from IAT_WINDOW_S seconds in the past to FUTURE_LEEWAY_S in the future (clock skew); its jti is
# remembered as long as it could be fresh, so within the window a replay is always recognised.
IAT_WINDOW_S = 60
FUTURE_LEEWAY_S = 5
REPLAY_TTL_S = IAT_WINDOW_S + FUTURE_LEEWAY_S
MAX_PROOF_BYTES = 8192
MIN_RSA_BITS = 2048
# Server nonces (RFC 9449 §8): one per window, the current and the previous one accepted.
NONCE_WINDOW_S = 300


class InvalidProof(ValueError):
    """The proof is malformed, badly signed, stale, for another request or token, or replayed. Safe to show."""


class NonceRequired(InvalidProof):
    """The proof lacks the server's current nonce (or carries a stale one): answer `use_dpop_nonce` with a new one."""


@dataclass(frozen=True)
class Proof:
    jkt: str          # the RFC 7638 thumbprint of the proof's key
    jti: str
    iat: int
    claims: dict[str, Any]


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK (jwcrypto's)."""
    return jwcrypto_jwk.JWK(**jwk).thumbprint()


def access_token_hash(access_token: str) -> str:
    """`ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2)."""
    return base64url.encode(hashlib.sha256(access_token.encode("ascii")).digest())


def normalized_url(url: str) -> str:
    """An `htu` compared the way RFC 9449 §4.3 says: no query or fragment, scheme and host in lower case, no default port."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


@functools.lru_cache(maxsize=4096)
def _public_key(jwk_json: str, alg: str) -> tuple[Any, str]:
    """(the verifying key, its RFC 7638 thumbprint) of a header's `jwk` (as JSON) for `alg`; kept for the next proof."""
    try:
        jwk = json.loads(jwk_json)
        key = jwcrypto_jwk.JWK(**jwk)
    except (JWException, ValueError, TypeError):
        raise InvalidProof("the proof's jwk is not a valid key") from None
    if key.has_private:
        raise InvalidProof("the proof's jwk must not contain private parts")
    kty = key.get("kty")
    wanted = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519"), "RS256": ("RSA", None)}[alg]
    if kty != wanted[0] or (wanted[1] and key.get("crv") != wanted[1]):
        raise InvalidProof(f"the proof's jwk does not fit {alg}")
    if kty == "RSA" and key.get_op_key("verify").key_size < MIN_RSA_BITS:
        raise InvalidProof("the proof's RSA key is too short")
    try:
        verifying = jwt.PyJWK(key.export_public(as_dict=True), algorithm=alg).key
    except jwt.PyJWTError:
        raise InvalidProof("the proof's jwk is not a valid key") from None
    return verifying, key.thumbprint()


_JWS = jwt.api_jws.PyJWS()


def verify_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    now: float | None = None,
    nonce_ok: Callable[[str | None], bool] | None = None,
) -> Proof:
    """The checked proof for a request `method url` (and, at a resource, `access_token`), or InvalidProof.

    `nonce_ok`: where the server uses nonces, whether the proof's `nonce` (None when absent) is a current one;
    NonceRequired when not. Replay is the caller's (a ReplayCache, or one database insert).
    """
    if not isinstance(proof, str) or not proof or len(proof) > MAX_PROOF_BYTES or proof.count(".") != 2:
        raise InvalidProof("the DPoP header is not one compact JWS")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise InvalidProof("the DPoP proof is not a readable JWS") from None
    if not isinstance(header, dict) or header.get("typ") != PROOF_TYP:
        raise InvalidProof(f"the proof's typ must be {PROOF_TYP}")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidProof(f"the proof's alg must be one of {', '.join(ALGORITHMS)}")
    if not isinstance(header.get("jwk"), dict):
        raise InvalidProof("the proof's header carries no jwk")
    key, jkt = _public_key(json.dumps(header["jwk"], sort_keys=True), alg)
    try:
        claims = json.loads(_JWS.decode_complete(proof, key=key, algorithms=[alg])["payload"])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidProof("the proof's signature does not verify with its jwk") from None
    if not isinstance(claims, dict):
        raise InvalidProof("the proof's payload is not a JSON object")
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise InvalidProof("the proof needs a unique jti (8 to 256 characters)")
    if claims.get("htm") != method:
        raise InvalidProof("the proof's htm is not this request's method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalized_url(htu) != normalized_url(url):
        raise InvalidProof("the proof's htu is not this request's URL")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise InvalidProof("the proof needs an iat")
    now = time.time() if now is None else now
    if iat < now - IAT_WINDOW_S or iat > now + FUTURE_LEEWAY_S:
        raise InvalidProof("the proof's iat is outside the accepted window")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
            raise InvalidProof("the proof's ath is not the hash of the access token")
    if nonce_ok is not None:
        nonce = claims.get("nonce")
        if not nonce_ok(nonce if isinstance(nonce, str) else None):
            raise NonceRequired("a fresh DPoP-Nonce from the server is required in the proof")
    return Proof(jkt=jkt, jti=jti, iat=iat, claims=claims)


def make_proof(key: Any, method: str, url: str, *, access_token: str | None = None, now: float | None = None) -> str:
    """A client's ES256 proof for `method url` (query dropped) signed by an EC P-256 private key (cryptography's), its
    public JWK in the header; with `access_token`, its `ath`. The citizen app's, for its device-key-bound tokens."""
    from .jwk import public_jwk

    claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url.split("?", 1)[0].split("#", 1)[0],
              "iat": int(time.time() if now is None else now)}
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": PROOF_TYP, "jwk": public_jwk(key)})


class ReplayCache:
    """The jtis seen in the last REPLAY_TTL_S seconds, in this process's memory (bounded; oldest dropped first).

    One process's view: a proof replayed to another replica of the same service is not recognised there (see
    docs/security.md); the token endpoint keeps its jtis in auth's database instead.
    """

    def __init__(self, ttl_s: float = REPLAY_TTL_S, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._ttl_s, self._max = ttl_s, max_entries

    def first_use(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self._max:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now + self._ttl_s
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Nonces:
    """Server nonces without state: HMAC(key, window number), the current window's and the previous one accepted,
    so every replica holding the key agrees and a nonce lives between NONCE_WINDOW_S and twice that."""

    def __init__(self, key: bytes, window_s: int = NONCE_WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self._key, self._window_s, self._clock = hashlib.sha256(b"dpop-nonce:" + key).digest(), window_s, clock

    def _for(self, window: int) -> str:
        return base64url.encode(hmac.new(self._key, str(window).encode(), hashlib.sha256).digest()[:18])

    def current(self) -> str:
        return self._for(int(self._clock() // self._window_s))

    def ok(self, nonce: str | None) -> bool:
        if not nonce:
            return False
        window = int(self._clock() // self._window_s)
        return any(hmac.compare_digest(nonce, self._for(w)) for w in (window, window - 1))
