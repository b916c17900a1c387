"""The client registry: relying parties, agencies and kiosks, and how they authenticate.

Metadata follows RFC 7591 (dynamic client registration) names where one
exists, plus Harbour ID's own (`kind`, `formfill_fields`, `callback_urls`,
`encryption_jwk`). Secrets are 256-bit random values shown once; only their
SHA-256 is stored (a slow hash adds nothing at that entropy) and compared in
constant time. Every registration and every update that changes what other
services keep is published on `clients.events` (never with secrets).

A client manages its own registration (RFC 7592) with the registration
access token it got at registration, never with its client secret, and only
the metadata that is its own business (`SELF_SERVICE_FIELDS`: its keys,
contacts, logo, a new secret). What decides what it may do or what citizens
see (`OPERATOR_ONLY_FIELDS`: scopes, form-fill fields, redirect and
callback URIs, kind, sector, its name) only an operator changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.events import CloudEvent, Outbox
from libs.events.audit import record_audit
from libs.events.topics import CLIENTS
from libs.outbound import check_url
from libs.service.validation import DisplayText
from libs.tokens import InvalidKey, load_public_jwk

from .store import CLIENTS as CLIENTS_COLLECTION

ClientKind = Literal["relying_party", "agency", "kiosk"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
SCOPES = frozenset({"openid", "profile", "email", "phone", "address", "formfill", "sign", "notify", "enrol", "offline_access"})
FORMFILL_FIELDS = frozenset(
    {"id_number", "name_en", "name_zh", "date_of_birth", "gender", "phone", "email", "address"}
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def check_redirect_uri(uri: str) -> str:
    """Absolute https URIs (http only on loopback), no fragment (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URI")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must use https (http only on loopback)")
    if parts.fragment or "#" in uri:
        raise ValueError("must not contain a fragment")
    return uri


class ClientMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_name: DisplayText = Field(min_length=1, max_length=100)
    kind: ClientKind = "relying_party"
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(default=None, max_length=500)
    scope: str = Field(default="openid", max_length=500, description="space-separated scopes the client may ask for")
    formfill_fields: list[str] = Field(default_factory=list, max_length=len(FORMFILL_FIELDS))
    sector_identifier_uri: str | None = Field(default=None, max_length=500)
    callback_urls: list[str] = Field(default_factory=list, max_length=10)
    encryption_jwk: dict[str, Any] | None = None
    contacts: list[str] = Field(default_factory=list, max_length=5, description="e-mail addresses of the people responsible for the client")
    logo_uri: str | None = Field(default=None, max_length=500)

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, values: list[str]) -> list[str]:
        for value in values:
            if len(value) > 254 or not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", value):
                raise ValueError("contacts must be e-mail addresses")
        return values

    @field_validator("redirect_uris", "post_logout_redirect_uris", "callback_urls")
    @classmethod
    def _uris(cls, values: list[str]) -> list[str]:
        return [check_redirect_uri(v) for v in values]

    @field_validator("callback_urls", "jwks_uri")
    @classmethod
    def _outbound(cls, value: list[str] | str | None) -> list[str] | str | None:
        # URLs the platform itself calls or fetches: SSRF rules (libs/outbound), checked again at connection time.
        if value is None:
            return None
        return [check_url(v) for v in value] if isinstance(value, list) else check_url(value)

    @field_validator("scope")
    @classmethod
    def _scopes(cls, value: str) -> str:
        unknown = set(value.split()) - SCOPES
        if unknown:
            raise ValueError(f"unknown scopes: {' '.join(sorted(unknown))}")
        return " ".join(sorted(set(value.split())))

    @field_validator("formfill_fields")
    @classmethod
    def _fields(cls, values: list[str]) -> list[str]:
        unknown = set(values) - FORMFILL_FIELDS
        if unknown:
            raise ValueError(f"unknown form-fill fields: {' '.join(sorted(unknown))}")
        return sorted(set(values))

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict | None) -> dict | None:
        if value is None:
            return None
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > 10:
            raise ValueError("jwks must hold 1 to 10 keys")
        for key in keys:
            if not isinstance(key, dict):
                raise ValueError("jwks: every key must be a JWK object")
            try:
                load_public_jwk({k: v for k, v in key.items() if k in ("kty", "crv", "x", "y", "d")})
            except InvalidKey as exc:
                raise ValueError(f"jwks: {exc}") from None
        return value

    @field_validator("encryption_jwk")
    @classmethod
    def _encryption_jwk(cls, value: dict | None) -> dict | None:
        if value is not None:
            try:
                load_public_jwk({k: v for k, v in value.items() if k in ("kty", "crv", "x", "y", "d")})
            except InvalidKey as exc:
                raise ValueError(f"encryption_jwk: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ClientMetadata":
        if self.kind == "relying_party" and "openid" in self.scope.split() and not self.redirect_uris:
            raise ValueError("a relying party that logs citizens in needs redirect_uris")
        if self.token_endpoint_auth_method == "private_key_jwt" and not (self.jwks or self.jwks_uri):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if self.jwks_uri is not None:
            check_redirect_uri(self.jwks_uri)
        if self.sector_identifier_uri is not None:
            check_redirect_uri(self.sector_identifier_uri)
        if self.logo_uri is not None:
            check_redirect_uri(self.logo_uri)
        return self


# RFC 7592 self-service: what a client may change with its registration access token (plus a new secret)...
SELF_SERVICE_FIELDS = ("jwks", "jwks_uri", "encryption_jwk", "contacts", "logo_uri")
# ...and what only an operator may change: what the client may ask for, where citizens and their data go, what they read.
OPERATOR_ONLY_FIELDS = ("client_name", "kind", "scope", "formfill_fields", "redirect_uris", "post_logout_redirect_uris",
                        "callback_urls", "sector_identifier_uri")
# Nobody changes these: a client with another authentication method is another client.
FIXED_FIELDS = ("token_endpoint_auth_method",)


class ClientUpdate(ClientMetadata):
    """RFC 7592 §2.2: the whole metadata again (an omitted member means its default), with the client's id."""

    client_id: str | None = Field(default=None, max_length=100, description="if sent, this client's id (RFC 7592 §2.2)")
    client_secret: str | None = Field(default=None, max_length=200, repr=False,
                                      description="if sent, the current secret: a client never chooses its secret")
    rotate_client_secret: bool = Field(default=False, description="issue a new client secret (shown once in the answer); the old one stops working")

    def metadata(self) -> ClientMetadata:
        return ClientMetadata.model_validate(self.model_dump(include=set(ClientMetadata.model_fields)))


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
    return Client(client_id=doc["_id"], metadata=ClientMetadata.model_validate(doc["metadata"]), secret_sha256=doc.get("secret_sha256"))


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


async def register_client(
    db: AsyncDatabase, session: AsyncClientSession, metadata: ClientMetadata, *, registered_by: str
) -> Registered:
    """Create a client inside the caller's transaction, with its secret (none for private_key_jwt) and registration access token."""
    client_id = f"{metadata.kind.replace('_', '-')}-{secrets.token_hex(8)}"
    secret, secret_sha256 = new_secret() if metadata.token_endpoint_auth_method != "private_key_jwt" else (None, None)
    token, token_sha256 = new_secret()
    now = datetime.now(UTC)
    await db[CLIENTS_COLLECTION].insert_one(
        {
            "_id": client_id,
            "metadata": metadata.model_dump(mode="json"),
            "secret_sha256": secret_sha256,
            "registration_token_sha256": token_sha256,
            "created_at": now,
            "registered_by": registered_by,
        },
        session=session,
    )
    client = Client(client_id, metadata, secret_sha256)
    outbox = Outbox(db)
    await outbox.add(
        session,
        CLIENTS.name,
        CloudEvent(source="/auth", type="client.registered", subject=client_id, data=client.event_data()),
    )
    await record_audit(outbox, session, service="auth", subject=client_id, action="client.register", actor=registered_by)
    return Registered(client, secret, token)


async def find_client(db: AsyncDatabase, client_id: str) -> Client | None:
    if not isinstance(client_id, str) or len(client_id) > 100:
        return None
    doc = await db[CLIENTS_COLLECTION].find_one({"_id": client_id})
    return client_from_doc(doc) if doc else None


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 §2.3.1): `Basic base64(id:secret)`; None when absent or malformed."""
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return (unquote_plus(client_id), unquote_plus(secret)) if sep and client_id and secret else None


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


class OperatorOnlyChange(PermissionError):
    """A self-service update tried to change operator-only metadata; `fields` names them."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"only an operator can change {', '.join(fields)}")
        self.fields = fields


class StaleRegistrationToken(PermissionError):
    """The registration access token was rotated (or the client deleted) while this request ran."""


def operator_only_changes(current: ClientMetadata, wanted: ClientMetadata) -> list[str]:
    before, after = current.model_dump(mode="json"), wanted.model_dump(mode="json")
    return [name for name in OPERATOR_ONLY_FIELDS if before[name] != after[name]]


@dataclass(frozen=True)
class Updated:
    """An update's answer: the client, a new secret if one was asked for, a new registration token on self-service."""

    client: Client
    client_secret: str | None
    registration_access_token: str | None


async def update_client(
    db: AsyncDatabase,
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
    current = await db[CLIENTS_COLLECTION].find_one({"_id": client_id}, session=session)
    if current is None:
        raise LookupError("no such client")
    self_service = registration_token is not None
    if self_service and not hmac.compare_digest(current.get("registration_token_sha256") or "", _secret_hash(registration_token)):
        raise StaleRegistrationToken("the registration access token is no longer valid")
    before = client_from_doc(current)
    metadata = update.metadata()
    if self_service and (fields := operator_only_changes(before.metadata, metadata)):
        raise OperatorOnlyChange(fields)
    if metadata.kind != before.metadata.kind:
        raise ValueError("a client's kind cannot change; register a new client")
    if metadata.token_endpoint_auth_method != before.metadata.token_endpoint_auth_method:
        raise ValueError("a client's authentication method cannot change; register a new client")
    if update.client_id is not None and update.client_id != client_id:
        raise ValueError("client_id is not this client's id")
    if update.client_secret is not None and not secret_matches(before, update.client_secret):
        raise ValueError("client_secret is not this client's current secret (a client cannot choose its secret)")
    if update.rotate_client_secret and before.secret_sha256 is None:
        raise ValueError("this client authenticates with private_key_jwt: it has no secret to rotate")

    changes: dict[str, Any] = {"metadata": metadata.model_dump(mode="json"), "updated_at": datetime.now(UTC)}
    secret = token = None
    if update.rotate_client_secret:
        secret, changes["secret_sha256"] = new_secret()
    if self_service:
        token, changes["registration_token_sha256"] = new_secret()
    await db[CLIENTS_COLLECTION].update_one({"_id": client_id}, {"$set": changes}, session=session)

    client = Client(client_id, metadata, changes.get("secret_sha256", before.secret_sha256))
    outbox = Outbox(db)
    if client.event_data() != before.event_data():
        await outbox.add(session, CLIENTS.name, CloudEvent(source="/auth", type="client.updated", subject=client_id, data=client.event_data()))
    changed = [name for name in ClientMetadata.model_fields if getattr(before.metadata, name) != getattr(metadata, name)]
    await record_audit(outbox, session, service="auth", subject=client_id, action="client.update", actor=updated_by,
                       fields=changed, secret_rotated=secret is not None)
    return Updated(client, secret, token)


async def delete_client(
    db: AsyncDatabase, session: AsyncClientSession, client_id: str, *, registration_token: str | None, deleted_by: str
) -> None:
    """RFC 7592 §2.3: remove the client (its secret, assertions and registration token stop working at once).

    Other services keep their projection row (work in flight still names the
    client); with no registry entry, auth issues it no token anymore.
    """
    query: dict[str, Any] = {"_id": client_id}
    if registration_token is not None:
        query["registration_token_sha256"] = _secret_hash(registration_token)
    deleted = await db[CLIENTS_COLLECTION].find_one_and_delete(query, session=session)
    if deleted is None:
        raise StaleRegistrationToken("no such client") if registration_token is not None else LookupError("no such client")
    outbox = Outbox(db)
    await outbox.add(session, CLIENTS.name, CloudEvent(source="/auth", type="client.deleted", subject=client_id,
                                                       data={"client_id": client_id}))
    await record_audit(outbox, session, service="auth", subject=client_id, action="client.delete", actor=deleted_by)


async def issue_registration_token(db: AsyncDatabase, session: AsyncClientSession, client_id: str, *, issued_by: str) -> str:
    """An operator hands a client a new registration access token (a lost one, or a client registered before RFC 7592 support)."""
    token, token_sha256 = new_secret()
    updated = await db[CLIENTS_COLLECTION].update_one(
        {"_id": client_id}, {"$set": {"registration_token_sha256": token_sha256, "updated_at": datetime.now(UTC)}}, session=session
    )
    if updated.matched_count != 1:
        raise LookupError("no such client")
    await record_audit(Outbox(db), session, service="auth", subject=client_id, action="client.registration_token", actor=issued_by)
    return token
