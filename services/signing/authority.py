"""The platform CA: root → issuing CA → citizen certificates, their revocation and the CRL.

All three authority keys (root, issuing CA, TSA) are generated in the HSM at
the first start and only their labels and certificates are stored. Citizen
certificates are issued when a `plus` citizen first approves a signature
(lazily: no HSM key is spent on citizens who never sign); a suspended or
revoked identity revokes them, the issuing CA's CRL lists them and its OCSP
responder (ocsp.py, named in each citizen certificate) answers for them. A
closed account's certificates are revoked and their keys destroyed in the
HSM (`destroy_keys`): the certificates stay, as the CRL and verifiers need.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import x509
from bson import Binary
from prometheus_client import Counter, Gauge, Histogram
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .collections import AUTHORITIES, CERTIFICATES, CRL_STATE
from .hsm import HSM
from .ocsp import answer_for, ocsp_access, ocsp_url
from .settings import SigningSettings
from .x509 import build_crl, ca_extensions, citizen_extensions, issue_certificate, name, tsa_extensions

CERTIFICATES_ISSUED = Counter("harbour_signing_certificates_issued_total", "Citizen signing certificates issued.")
CERTIFICATES_REVOKED = Counter("harbour_signing_certificates_revoked_total", "Citizen signing certificates revoked, by reason.", ["reason"])
CERTIFICATE_EXPIRY = Gauge(
    "harbour_signing_certificate_expiry_timestamp_seconds",
    "notAfter of the platform's own certificates (root, issuing CA, TSA), as a Unix time.",
    ["certificate"],
)
VALIDATION_DATA_SECONDS = Histogram(
    "harbour_signing_validation_data_seconds",
    "Time to gather one signature's validation data (CRLs, OCSP answers: B-LT/B-LTA), before signing.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ACTIVE_CERTIFICATES = Gauge("harbour_signing_active_certificates", "Citizen certificates currently active (refreshed on CRL builds).")

# RFC 5280 reason per identity state; a fresh certificate is issued if the identity becomes active again.
# The `crl_state` document counting revocations (beside each CRL's number): a CRL is rebuilt when it moves.
REVOCATIONS = "revocations"
REVOCATION_REASONS = {"suspended": "certificate_hold", "revoked": "cessation_of_operation", "closed": "cessation_of_operation"}

PLAN = (  # role, subject, lifetime, issuer role
    ("root", "Harbour ID Root CA", 20 * 365, None),
    ("issuing", "Harbour ID Citizen Signing CA", 10 * 365, "root"),
    ("tsa", "Harbour ID Timestamp Authority", 5 * 365, "issuing"),
)


@dataclass
class Authority:
    hsm: HSM
    settings: SigningSettings
    labels: dict[str, str]
    certs: dict[str, x509.Certificate]
    # Each role's CRL as last built here: (the revocations' count it was built at, when, DER).
    _crls: dict[str, tuple[int, datetime, bytes]] = field(default_factory=dict, repr=False)
    # Per serial of the issuing CA's and the TSA's certificates: (made at, DER) of the in-process OCSP answer (ocsp.answer_for).
    _ocsp: dict[int, tuple[datetime, bytes]] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> x509.Certificate:
        return self.certs["root"]

    @property
    def issuing(self) -> x509.Certificate:
        return self.certs["issuing"]

    @property
    def chain(self) -> list[x509.Certificate]:
        """The issuing CA and the root: what every signature carries besides its signer."""
        return [self.issuing, self.root]


async def load_or_create(db: AsyncDatabase, hsm: HSM, settings: SigningSettings, *, now: datetime) -> Authority:
    """The authorities of this deployment; created (keys in the HSM) on the very first start."""
    now = now.replace(microsecond=0)
    labels: dict[str, str] = {}
    certs: dict[str, x509.Certificate] = {}
    for role, common_name, days, issuer_role in PLAN:
        doc = await db[AUTHORITIES].find_one({"_id": role})
        if doc is None:
            label = f"harbour-{role}-{secrets.token_hex(6)}"
            public_key = await hsm.generate_ec_key(label)
            extensions = {"root": ca_extensions(None), "issuing": ca_extensions(0, settings.root_crl_url),
                          "tsa": tsa_extensions(settings.crl_url)}[role]
            cert = await issue_certificate(
                hsm, issuer_label=labels[issuer_role] if issuer_role else label,
                issuer=certs[issuer_role] if issuer_role else None, subject=name(common_name), public_key=public_key,
                not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=days), extensions=extensions)
            doc = {"_id": role, "key_label": label, "certificate": Binary(cert.dump()), "created_at": now}
            try:
                await db[AUTHORITIES].insert_one(doc)
            except DuplicateKeyError:  # another replica won the race: use its authority
                doc = await db[AUTHORITIES].find_one({"_id": role})
        labels[role] = doc["key_label"]
        certs[role] = x509.Certificate.load(bytes(doc["certificate"]))
        CERTIFICATE_EXPIRY.labels(role).set(certs[role].not_valid_after.timestamp())
    return Authority(hsm, settings, labels, certs)


async def active_certificate(db: AsyncDatabase, account_id: str, session: AsyncClientSession | None = None, *,
                             now: datetime) -> dict[str, Any] | None:
    return await db[CERTIFICATES].find_one(
        {"account_id": account_id, "status": "active", "not_after": {"$gt": now}}, session=session)


async def issue_for_citizen(authority: Authority, db: AsyncDatabase, session: AsyncClientSession, account_id: str, *,
                            now: datetime) -> dict[str, Any]:
    """A new P-256 key in the HSM and its certificate. The subject is a random pseudonym:
    signing holds no personal data, and one global identifier must not reach every relying party."""
    label = f"citizen-{secrets.token_hex(8)}"
    public_key = await authority.hsm.generate_ec_key(label)
    now = now.replace(microsecond=0)
    pseudonym = f"HID-{secrets.token_hex(8).upper()}"
    cert = await issue_certificate(
        authority.hsm, issuer_label=authority.labels["issuing"], issuer=authority.issuing,
        subject=name(f"Harbour ID citizen {pseudonym}", pseudonym=pseudonym), public_key=public_key,
        not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=authority.settings.citizen_cert_days),
        # The CRL's distribution point and the OCSP responder (Authority Information Access), both through the gateway.
        extensions=[*citizen_extensions(authority.settings.crl_url), ocsp_access(ocsp_url(authority.settings))])
    doc = {"_id": format(cert.serial_number, "x"), "account_id": account_id, "key_label": label,
           "certificate": Binary(cert.dump()), "pseudonym": pseudonym, "status": "active",
           "issued_at": now, "not_after": cert.not_valid_after}
    await db[CERTIFICATES].insert_one(doc, session=session)
    CERTIFICATES_ISSUED.inc()
    return doc


async def revoke_for_account(db: AsyncDatabase, session: AsyncClientSession, account_id: str, state: str, *,
                             now: datetime) -> list[str]:
    """Revoke every active certificate of the account; the serials revoked."""
    reason = REVOCATION_REASONS[state]
    docs = await db[CERTIFICATES].find({"account_id": account_id, "status": "active"}, {"_id": 1}, session=session).to_list()
    now = now.replace(microsecond=0)
    for doc in docs:
        await db[CERTIFICATES].update_one({"_id": doc["_id"], "status": "active"},
                                          {"$set": {"status": "revoked", "revoked_at": now, "reason": reason}}, session=session)
        CERTIFICATES_REVOKED.labels(reason).inc()
    if docs:  # in the revocation's transaction: every replica's next CRL reads the revoked list again
        await db[CRL_STATE].update_one({"_id": REVOCATIONS}, {"$inc": {"count": len(docs)}}, upsert=True, session=session)
    return [d["_id"] for d in docs]


async def current_crl(authority: Authority, db: AsyncDatabase, *, now: datetime) -> bytes:
    """The issuing CA's CRL (DER): every certificate it issued that is revoked.

    One read by `_id` per call (each signature's validation data, each GET of the CRL): the count of revocations,
    moved in each revocation's transaction (`revoke_for_account`). The revoked certificates themselves — all of them —
    are read only when that count moved since this process built its CRL, or the CRL is half-way to its nextUpdate."""
    state = await db[CRL_STATE].find_one({"_id": REVOCATIONS}, {"count": 1})

    async def revoked() -> list[tuple[int, datetime, str]]:
        docs = await db[CERTIFICATES].find({"status": "revoked"}, {"revoked_at": 1, "reason": 1}).sort("revoked_at", 1).to_list()
        return [(int(d["_id"], 16), d["revoked_at"].replace(tzinfo=UTC), d["reason"]) for d in docs]

    der, rebuilt = await _crl_of(authority, db, "issuing", (state or {}).get("count", 0), revoked, now=now)
    if rebuilt:
        ACTIVE_CERTIFICATES.set(await db[CERTIFICATES].count_documents({"status": "active"}))
    return der


async def current_root_crl(authority: Authority, db: AsyncDatabase, *, now: datetime) -> bytes:
    """The root's CRL (DER), signed by the root key: it covers the one certificate the root issues, the
    issuing CA's, and lists nothing — revoking the issuing CA means a new hierarchy (docs/operations.md).
    Published so that verifiers that check the whole path find an answer for the issuing CA too."""
    async def nothing_revoked() -> list[tuple[int, datetime, str]]:
        return []

    der, _ = await _crl_of(authority, db, "root", 0, nothing_revoked, now=now)
    return der


async def _crl_of(authority: Authority, db: AsyncDatabase, role: str, version: int,
                  revoked: Callable[[], Awaitable[list[tuple[int, datetime, str]]]], *, now: datetime) -> tuple[bytes, bool]:
    """`role`'s CRL and whether it was built now: rebuilt, from `revoked()`, when the revocations' `version` moved
    or half its validity passed."""
    now = now.replace(microsecond=0)
    cached = authority._crls.get(role)
    if cached is not None:
        cached_version, built_at, der = cached
        if cached_version == version and now - built_at < timedelta(seconds=authority.settings.crl_validity_s / 2):
            return der, False
    entries = await revoked()  # read after `version`: a revocation between the two reads only rebuilds once more
    state = await db[CRL_STATE].find_one_and_update({"_id": role}, {"$inc": {"number": 1}}, upsert=True, return_document=True)
    crl = await build_crl(
        authority.hsm, issuer_label=authority.labels[role], issuer=authority.certs[role], number=state["number"],
        this_update=now, next_update=now + timedelta(seconds=authority.settings.crl_validity_s), revoked=entries)
    der = crl.dump()
    authority._crls[role] = (version, now, der)
    return der, True


async def destroy_keys(authority: Authority, db: AsyncDatabase, session: AsyncClientSession, account_id: str, *,
                       now: datetime) -> int:
    """An account closed: the HSM keys of all its certificates destroyed (revoked first: the CRL keeps listing them).

    The HSM is not part of the database transaction: destroying is idempotent, so the event's handler running
    again after an abort finds nothing left and records the same."""
    docs = await db[CERTIFICATES].find({"account_id": account_id, "key_destroyed_at": None}, {"key_label": 1},
                                       session=session).to_list()
    for doc in docs:
        await authority.hsm.destroy_key(doc["key_label"])
        await db[CERTIFICATES].update_one({"_id": doc["_id"]}, {"$set": {"key_destroyed_at": now}}, session=session)
    return len(docs)


@dataclass(frozen=True)
class ValidationData:
    """What a verifier needs to validate a signature and its timestamps offline, long after: PAdES B-LT's DSS, CAdES
    B-LT's SignedData.certificates/crls. For every certificate below the root — the signer's, the TSA's, the issuing
    CA's — a CRL that covers it and an OCSP response about it, all made in process (no HTTP call to ourselves)."""

    root: x509.Certificate
    certificates: list[x509.Certificate]  # the issuing CA and the TSA (the signer's rides in the signature)
    crls: list[bytes]  # the issuing CA's (citizens, TSA), the root's (the issuing CA)
    ocsps: list[bytes]  # the signer's (fresh), the TSA's and the issuing CA's (reused for half their validity)


async def validation_data(authority: Authority, db: AsyncDatabase, certificate: x509.Certificate, *, now: datetime,
                          session: AsyncClientSession | None = None) -> ValidationData:
    """`session`: the transaction that may have just issued `certificate` (its OCSP answer must see it)."""
    started = time.perf_counter()
    crls = [await current_crl(authority, db, now=now), await current_root_crl(authority, db, now=now)]
    ocsps = [await answer_for(authority, db, c, now=now, session=session)
             for c in (certificate, authority.certs["tsa"], authority.issuing)]
    VALIDATION_DATA_SECONDS.observe(time.perf_counter() - started)
    return ValidationData(authority.root, [authority.issuing, authority.certs["tsa"]], crls, ocsps)
