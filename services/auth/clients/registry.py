"""The client registry: relying parties, agencies and kiosks, and how they authenticate.

Secrets are 256-bit random values shown once; only their SHA-256 is stored
(a slow hash adds nothing at that entropy) and compared in constant time.
Every registration and every update that changes what other services keep
is published on `clients.events` (never with secrets).

A client manages its own registration (RFC 7592) with the registration
access token it got at registration, never with its client secret, and only
the metadata that is its own business (metadata.py); what decides what it
may do or what citizens see only an operator changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.backbone import ServiceContext
from libs.events.topics import CLIENTS

from ..collections import CLIENTS as CLIENTS_COLLECTION
from ..errors import ClientConflict, InvalidRegistrationToken, NoSuchClient, OperatorOnlyChange
from .directory import directory_of
from .metadata import ClientMetadata, ClientUpdate, operator_only_changes


@dataclass(frozen=True)
class Client:
    client_id: str
    metadata: ClientMetadata
    secret_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metadata.client_name

    @property
    def kind(self) -> str:
        return self.metadata.kind

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.metadata.scope.split())

    @property
    def sector(self) -> str:
        """The pairwise sector (OIDC Core §8.1): the declared sector identifier's host, else the client itself.

        Stricter than the spec's default (the redirect URI's host): two clients
        on one host share subjects only when an administrator registered them
        with the same sector identifier.
        """
        uri = self.metadata.sector_identifier_uri
        return f"sector:{urlsplit(uri).hostname}" if uri else f"client:{self.client_id}"

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def public_view(self) -> dict[str, Any]:
        return {"client_id": self.client_id, **self.metadata.model_dump(exclude_none=True)}

    def event_data(self) -> dict[str, Any]:
        """What other services keep of a client: its public metadata and its pairwise sector."""
        view = {k: v for k, v in self.public_view().items() if k != "contacts"}  # people's addresses stay in auth
        return {**view, "sector": self.sector}


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_from_doc(doc: dict) -> Client:
    metadata = doc["metadata"]
    if "agency_events" not in metadata:
        # Registered before the member existed, when every client got its agency topic: it keeps getting it.
        metadata = {**metadata, "agency_events": True}
    return Client(client_id=doc["_id"], metadata=ClientMetadata.model_validate(metadata), secret_sha256=doc.get("secret_sha256"))


def new_secret() -> tuple[str, str]:
    """A 256-bit random value (client secret or registration access token) and the SHA-256 that is stored."""
    value = secrets.token_urlsafe(32)
    return value, _secret_hash(value)


@dataclass(frozen=True)
class Registered:
    """A registration's answer: the client, and what is shown only once (None when not issued)."""

    client: Client
    client_secret: str | None
    registration_access_token: str | None


async def register_client(ctx: ServiceContext, session: AsyncClientSession, metadata: ClientMetadata, *, registered_by: str,
                          **audited: Any) -> Registered:
    """Create a client inside the caller's transaction, with its secret (none for private_key_jwt) and registration access token.
    `audited`: more for the audit record (an operator command's `reason`)."""
    client_id = f"{metadata.kind.replace('_', '-')}-{secrets.token_hex(8)}"
    secret, secret_sha256 = new_secret() if metadata.token_endpoint_auth_method != "private_key_jwt" else (None, None)
    token, token_sha256 = new_secret()
    await ctx.db[CLIENTS_COLLECTION].insert_one(
        {
            "_id": client_id,
            "metadata": metadata.model_dump(mode="json"),
            "secret_sha256": secret_sha256,
            "registration_token_sha256": token_sha256,
            "created_at": ctx.clock.now(),
            "registered_by": registered_by,
        },
        session=session,
    )
    client = Client(client_id, metadata, secret_sha256)
    await ctx.publish(session, CLIENTS, "client.registered", client_id, client.event_data())
    await ctx.audit(session, subject=client_id, action="client.register", actor=registered_by, **audited)
    return Registered(client, secret, token)


async def find_client(db: AsyncDatabase, client_id: str) -> Client | None:
    """The client, from the process's memory when it keeps this database's clients (directory.py), else read."""
    if not isinstance(client_id, str) or len(client_id) > 100:
        return None
    directory = directory_of(db)
    if directory is not None:
        return await directory.lookup(client_id)
    doc = await db[CLIENTS_COLLECTION].find_one({"_id": client_id})
    return client_from_doc(doc) if doc else None


async def clients_of_sector(db: AsyncDatabase, sector: str) -> list[Client]:
    """The clients sharing a pairwise sector: `client:<id>` is one client; `sector:<host>` those registered with it."""
    if sector.startswith("client:"):
        client = await find_client(db, sector.removeprefix("client:"))
        return [client] if client is not None else []
    docs = await db[CLIENTS_COLLECTION].find({"metadata.sector_identifier_uri": {"$ne": None}}).to_list()
    return [client for client in map(client_from_doc, docs) if client.sector == sector]


def forget_client(db: AsyncDatabase, client_id: str) -> None:
    """After a transaction that changed or deleted the client committed: this process reads it afresh next time."""
    directory = directory_of(db)
    if directory is not None:
        directory.forget(client_id)


def secret_matches(client: Client | None, secret: str) -> bool:
    # Compare even when the client is unknown, so timing does not reveal which ids exist.
    expected = client.secret_sha256 if client and client.secret_sha256 else _secret_hash(secrets.token_urlsafe(32))
    return hmac.compare_digest(expected, _secret_hash(secret)) and client is not None and client.secret_sha256 is not None


async def authenticate_client(db: AsyncDatabase, client_id: str, secret: str) -> Client | None:
    client = await find_client(db, client_id)
    return client if secret_matches(client, secret) else None


async def authenticate_registration(db: AsyncDatabase, client_id: str, token: str) -> Client | None:
    """The client whose registration access token this is (RFC 7592 §1), else None; compared in constant time."""
    doc = await db[CLIENTS_COLLECTION].find_one({"_id": client_id}) if isinstance(client_id, str) and len(client_id) <= 100 else None
    expected = (doc or {}).get("registration_token_sha256") or _secret_hash(secrets.token_urlsafe(32))
    if not hmac.compare_digest(expected, _secret_hash(token)) or doc is None or not doc.get("registration_token_sha256"):
        return None
    return client_from_doc(doc)


@dataclass(frozen=True)
class Updated:
    """An update's answer: the client, a new secret if one was asked for, a new registration token on self-service."""

    client: Client
    client_secret: str | None
    registration_access_token: str | None


async def update_client(
    ctx: ServiceContext,
    session: AsyncClientSession,
    client_id: str,
    update: ClientUpdate,
    *,
    registration_token: str | None,
    updated_by: str,
) -> Updated:
    """Replace a client's metadata inside the caller's transaction.

    `registration_token` None: an operator, who may change everything but the
    kind and authentication method. Otherwise the client itself (RFC 7592):
    only `SELF_SERVICE_FIELDS` may differ, and its registration token is
    rotated (RFC 7592 §2.2 allows it; a leaked one stops working at the next
    update). `client.updated` is published only when what other services keep
    changed; every accepted update is audited.
    """
    db = ctx.db
    current = await db[CLIENTS_COLLECTION].find_one({"_id": client_id}, session=session)
    if current is None:
        raise NoSuchClient("no such client")
    self_service = registration_token is not None
    if self_service and not hmac.compare_digest(current.get("registration_token_sha256") or "", _secret_hash(registration_token)):
        raise InvalidRegistrationToken()  # rotated by a concurrent update
    before = client_from_doc(current)
    metadata = update.metadata()
    if self_service and (fields := operator_only_changes(before.metadata, metadata)):
        raise OperatorOnlyChange(fields)
    if metadata.kind != before.metadata.kind:
        raise ClientConflict("a client's kind cannot change; register a new client")
    if metadata.token_endpoint_auth_method != before.metadata.token_endpoint_auth_method:
        raise ClientConflict("a client's authentication method cannot change; register a new client")
    if update.client_id is not None and update.client_id != client_id:
        raise ClientConflict("client_id is not this client's id")
    if update.client_secret is not None and not secret_matches(before, update.client_secret):
        raise ClientConflict("client_secret is not this client's current secret (a client cannot choose its secret)")
    if update.rotate_client_secret and before.secret_sha256 is None:
        raise ClientConflict("this client authenticates with private_key_jwt: it has no secret to rotate")

    changes: dict[str, Any] = {"metadata": metadata.model_dump(mode="json"), "updated_at": ctx.clock.now()}
    secret = token = None
    if update.rotate_client_secret:
        secret, changes["secret_sha256"] = new_secret()
    if self_service:
        token, changes["registration_token_sha256"] = new_secret()
    await db[CLIENTS_COLLECTION].update_one({"_id": client_id}, {"$set": changes}, session=session)

    client = Client(client_id, metadata, changes.get("secret_sha256", before.secret_sha256))
    # Also on a new secret (never in the event): every auth replica drops the old one from memory (directory.py).
    if client.event_data() != before.event_data() or secret is not None:
        await ctx.publish(session, CLIENTS, "client.updated", client_id, client.event_data())
    changed = [name for name in ClientMetadata.model_fields if getattr(before.metadata, name) != getattr(metadata, name)]
    await ctx.audit(session, subject=client_id, action="client.update", actor=updated_by, fields=changed,
                    secret_rotated=secret is not None)
    return Updated(client, secret, token)


async def delete_client(
    ctx: ServiceContext, session: AsyncClientSession, client_id: str, *, registration_token: str | None, deleted_by: str
) -> None:
    """RFC 7592 §2.3: remove the client (its secret, assertions and registration token stop working at once).

    Other services keep their projection row (work in flight still names the
    client); with no registry entry, auth issues it no token anymore.
    """
    query: dict[str, Any] = {"_id": client_id}
    if registration_token is not None:
        query["registration_token_sha256"] = _secret_hash(registration_token)
    deleted = await ctx.db[CLIENTS_COLLECTION].find_one_and_delete(query, session=session)
    if deleted is None:
        # A client's own token rotated (or the client gone) meanwhile; an operator asked for a client that is not there.
        raise InvalidRegistrationToken() if registration_token is not None else NoSuchClient("no such client")
    await ctx.publish(session, CLIENTS, "client.deleted", client_id, {"client_id": client_id})
    await ctx.audit(session, subject=client_id, action="client.delete", actor=deleted_by)


async def issue_registration_token(ctx: ServiceContext, session: AsyncClientSession, client_id: str, *, issued_by: str,
                                   **audited: Any) -> str:
    """An operator hands a client a new registration access token (a lost one, or a client registered before RFC 7592 support)."""
    token, token_sha256 = new_secret()
    updated = await ctx.db[CLIENTS_COLLECTION].update_one(
        {"_id": client_id}, {"$set": {"registration_token_sha256": token_sha256, "updated_at": ctx.clock.now()}}, session=session
    )
    if updated.matched_count != 1:
        raise NoSuchClient("no such client")
    await ctx.audit(session, subject=client_id, action="client.registration_token", actor=issued_by, **audited)
    return token
