"""Registered clients (kiosks now; relying parties and agencies with the OIDC issue) and their authentication.

Secrets are 256-bit random values shown once; only their SHA-256 is stored
(a slow hash adds nothing for secrets of that entropy) and compared in
constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.events import CloudEvent, Outbox
from libs.events.topics import CLIENTS

from .store import CLIENTS as CLIENTS_COLLECTION

ClientKind = Literal["kiosk", "relying_party", "agency"]
SCOPES = frozenset({"enrol", "openid", "formfill", "sign", "notify"})


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    kind: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _client_from(doc: dict) -> Client:
    return Client(client_id=doc["_id"], name=doc["name"], kind=doc["kind"], scopes=frozenset(doc["scopes"]))


async def register_client(
    db: AsyncDatabase, session: AsyncClientSession, *, name: str, kind: ClientKind, scopes: set[str]
) -> tuple[Client, str]:
    """Create a client inside the caller's transaction; return it and its secret (shown once)."""
    unknown = set(scopes) - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    client_id = f"{kind.replace('_', '-')}-{secrets.token_hex(6)}"
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await db[CLIENTS_COLLECTION].insert_one(
        {
            "_id": client_id,
            "name": name,
            "kind": kind,
            "scopes": sorted(scopes),
            "secret_sha256": _secret_hash(secret),
            "created_at": now,
        },
        session=session,
    )
    event = CloudEvent(
        source="/auth",
        type="client.registered",
        subject=client_id,
        data={"client_id": client_id, "name": name, "kind": kind, "scopes": sorted(scopes)},
    )
    await Outbox(db).add(session, CLIENTS.name, event)
    return Client(client_id, name, kind, frozenset(scopes)), secret


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 §2.3.1): `Basic base64(id:secret)`; None when absent or malformed."""
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep and client_id and secret else None


async def authenticate_client(db: AsyncDatabase, client_id: str, secret: str) -> Client | None:
    doc = await db[CLIENTS_COLLECTION].find_one({"_id": client_id})
    # Compare even when the client is unknown, so timing does not reveal which ids exist.
    expected = doc["secret_sha256"] if doc else _secret_hash(secrets.token_urlsafe(32))
    if not hmac.compare_digest(expected, _secret_hash(secret)) or doc is None:
        return None
    return _client_from(doc)
