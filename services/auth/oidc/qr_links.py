"""Links a phone can trust: the login's two link forms, and the dynamic QR code (as Smart-ID v3 draws it).

A login transaction `tx` opens in the app by either link:

- `harbourid://authorize?tx=…` — the custom scheme (any app can claim it);
- `{issuer}/app/authorize?tx=…` — an https app link under the issuer, which
  Android and iOS hand only to the app the issuer vouches for
  (`/.well-known/assetlinks.json`, `/.well-known/apple-app-site-association`).

Both are the same-device links (the login page's buttons) and carry no time.
The login page's QR code carries the https form plus `t`, the whole seconds
since the transaction started, and `c`, an HMAC-SHA256 over (tx, t) under a
key only auth holds (derived from its hash key with HKDF), cut to 128 bits.
The page fetches the next link every second and draws its code. The app's claim of a QR link is
accepted only while `t` is at most `window_s` seconds behind the
transaction's age now (and not ahead of it by more than the skew allowed
between auth's processes); a screenshot relayed to a victim is stale by the
time they scan it. Pure: no aiohttp, no store.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs import base64url

from .errors import QrCodeExpired, QrCodeForged, UnknownLink

CUSTOM_SCHEME_PREFIX = "harbourid://authorize?tx="
APP_PATH = "/app/authorize"
# A QR code drawn by one auth process is checked by another: their clocks may differ by this much.
CLOCK_SKEW_S = 2
_CODE_BYTES = 16
_MAX_T_DIGITS = 7  # a login lasts minutes; longer is not a time code we drew


@cache
def qr_key(hash_key: bytes) -> bytes:
    """The QR codes' HMAC key: auth's hash key through HKDF-SHA256 with a label of its own (no other use shares it)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"harbour-id login qr v1").derive(hash_key)


def time_code(key: bytes, tx: str, t: int) -> str:
    """`c` of the QR link for second `t` of login `tx`."""
    mac = hmac.new(key, f"{tx}\x00{t}".encode(), hashlib.sha256).digest()[:_CODE_BYTES]
    return base64url.encode(mac)


def app_link(issuer: str, tx: str) -> str:
    """The https app link (same device: no time code)."""
    return f"{issuer}{APP_PATH}?{urlencode({'tx': tx})}"


def elapsed_s(started_at: datetime, now: datetime) -> int:
    """Whole seconds since the login started (never negative)."""
    return max(0, int((now - started_at).total_seconds()))


def qr_link(issuer: str, key: bytes, tx: str, t: int) -> str:
    """What the QR code says in second `t` of the login: the https link, `t` and its HMAC."""
    return f"{issuer}{APP_PATH}?{urlencode({'tx': tx, 't': t, 'c': time_code(key, tx, t)})}"


@dataclass(frozen=True)
class LoginLink:
    """A login link the app opened: its transaction and, from a QR code, the second it was drawn for and its code."""

    tx: str
    t: int | None = None
    code: str | None = None

    @property
    def from_qr(self) -> bool:
        return self.t is not None


def parse(link: str, issuer: str) -> LoginLink:
    """Either form of a login link (the https one under this issuer only); anything else: UnknownLink."""
    not_ours = UnknownLink("this is not a Harbour ID login link")
    try:
        parts = urlsplit(link)
        ours = urlsplit(issuer)
    except ValueError:  # e.g. an unclosed "[" in the authority
        raise not_ours from None
    custom = parts.scheme == "harbourid" and parts.netloc == "authorize" and parts.path == ""
    https = (parts.scheme == ours.scheme and parts.netloc.lower() == ours.netloc.lower()
             and parts.path == ours.path.rstrip("/") + APP_PATH)
    if not (custom or https) or parts.fragment:
        raise not_ours
    query = parse_qs(parts.query)
    if any(len(values) != 1 for values in query.values()):
        raise not_ours
    tx = query.get("tx", [""])[0]
    if not tx:
        raise not_ours
    t, code = query.get("t", [None])[0], query.get("c", [None])[0]
    if t is None and code is None:
        return LoginLink(tx)
    if not (https and t is not None and code and t.isascii() and t.isdigit() and len(t) <= _MAX_T_DIGITS):
        raise QrCodeForged("this QR code was not made by Harbour ID")
    return LoginLink(tx, int(t), code)


def check(link: LoginLink, key: bytes, started_at: datetime, now: datetime, window_s: int) -> None:
    """A QR link's code is ours and its second recent: else QrCodeForged / QrCodeExpired. Links without one pass."""
    if not link.from_qr:
        return
    assert link.t is not None and link.code is not None
    if not hmac.compare_digest(link.code.encode(), time_code(key, link.tx, link.t).encode()):
        raise QrCodeForged("this QR code was not made by Harbour ID")
    age = (now - started_at).total_seconds() - link.t
    if age > window_s or age < -CLOCK_SKEW_S:
        # Drawn during second t: accepted until the login is t + window_s seconds old.
        raise QrCodeExpired(f"this QR code is more than {window_s} s old: scan the code the login page shows now")
