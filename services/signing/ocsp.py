"""The issuing CA's OCSP responder (RFC 6960): good, revoked (time and reason) or unknown, from the CA's own records.

The answer is signed by the issuing CA's own key in the HSM (RFC 6960 §4.2.2.2: the CA that issued the
certificates in question), so no delegated responder certificate exists to be issued, rotated or revoked; the
CA's certificate rides in the response's `certs` so a client holding only the root can check it. Like the CRL,
the answer comes from the `certificates` collection, which revocation (authority.revoke_for_account) writes in
the same transaction as the event: a revoked certificate reads revoked at once, not at the next CRL.

Every request gets an OCSPResponse: what is no DER OCSPRequest is `malformedRequest`; a request naming no
certificate of the issuing CA is `unauthorized` (we answer for no other issuer); a serial the CA never issued
is `unknown`. A nonce in the request is echoed in the response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from asn1crypto import ocsp, x509
from asn1crypto.core import GeneralizedTime
from prometheus_client import Counter
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .collections import CERTIFICATES
from .settings import SigningSettings
from .x509 import SIGNATURE_ALGORITHM, key_identifier

OCSP_PATH = "/v1/signing/ocsp"
# How long an answer may be relied on (nextUpdate): a revocation reaches a client caching answers within this.
VALIDITY = timedelta(hours=1)
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

OCSP_ANSWERS = Counter("harbour_signing_ocsp_answers_total", "OCSP answers, by response status and certificate status.",
                       ["response", "certificate"])


def ocsp_url(settings: SigningSettings) -> str:
    """The responder's public URL (through the gateway), as the CRL distribution point is built."""
    return settings.issuer + OCSP_PATH


def ocsp_access(url: str) -> dict:
    """The Authority Information Access extension naming the responder (RFC 5280 §4.2.2.1)."""
    location = x509.GeneralName(name="uniform_resource_identifier", value=url)
    return {"extn_id": "authority_information_access", "critical": False,
            "extn_value": [{"access_method": "ocsp", "access_location": location}]}


def from_get_path(tail: str) -> bytes | None:
    """RFC 6960 A.1.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}; None when it is no base64."""
    text = unquote(tail.lstrip("/"))
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                validate=True)
    except (binascii.Error, ValueError):
        return None


def status_only(status: str) -> bytes:
    """An OCSPResponse without a body: malformed_request, unauthorized, internal_error..."""
    OCSP_ANSWERS.labels(status, "none").inc()
    return ocsp.OCSPResponse({"response_status": status}).dump()


def _issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    digest = HASHES[algorithm]
    return digest(issuer.subject.dump()).digest(), digest(issuer.public_key["public_key"].contents[1:]).digest()


async def respond(authority, db: AsyncDatabase, der: bytes | None, *, now: datetime) -> bytes:
    """The DER OCSPResponse to a DER OCSPRequest (`authority`: authority.Authority)."""
    try:
        request = ocsp.OCSPRequest.load(der or b"", strict=True)
        tbs = request["tbs_request"]
        queries = [(single["req_cert"]["hash_algorithm"]["algorithm"].native, single["req_cert"]["issuer_name_hash"].native,
                    single["req_cert"]["issuer_key_hash"].native, single["req_cert"]["serial_number"].native, single["req_cert"])
                   for single in tbs["request_list"]]
        nonces = [ext["extn_value"].native for ext in (tbs["request_extensions"] or []) if ext["extn_id"].native == "nonce"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return status_only("malformed_request")
    if not queries:
        return status_only("malformed_request")
    issuing = authority.issuing
    mine = {i for i, q in enumerate(queries) if q[0] in HASHES and (q[1], q[2]) == _issuer_hashes(issuing, q[0])}
    if not mine:
        return status_only("unauthorized")
    cert_ids = [(q[4], i in mine) for i, q in enumerate(queries)]
    return (await _signed_answer(authority, db, "issuing", cert_ids, nonces[0] if nonces else None, now=now)).dump()


async def _signed_answer(authority, db: AsyncDatabase, role: str, cert_ids: list[tuple[ocsp.CertId, bool]], nonce: bytes | None, *,
                         now: datetime, session: AsyncClientSession | None = None) -> ocsp.OCSPResponse:
    """A successful OCSPResponse signed by `role`'s key (the issuer of the certificates asked about): per CertID, its
    status when `ours` (a certificate of that issuer), else unknown."""
    issuer = authority.certs[role]
    now = now.astimezone(UTC).replace(microsecond=0)
    responses = []
    for cert_id, ours in cert_ids:
        if ours:
            status, label = await _status_of(authority, db, role, cert_id["serial_number"].native, session)
        else:  # another issuer, in a request that also names ours
            status, label = {"unknown": None}, "unknown"
        OCSP_ANSWERS.labels("successful", label).inc()
        responses.append({"cert_id": cert_id, "cert_status": status, "this_update": GeneralizedTime(now),
                          "next_update": GeneralizedTime(now + VALIDITY)})
    data = {"responder_id": {"by_key": key_identifier(issuer.public_key)}, "produced_at": GeneralizedTime(now),
            "responses": responses}
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs_response = ocsp.ResponseData(data)
    signature = await authority.hsm.sign(authority.labels[role], tbs_response.dump())
    basic = ocsp.BasicOCSPResponse({"tbs_response_data": tbs_response, "signature_algorithm": SIGNATURE_ALGORITHM,
                                    "signature": signature, "certs": [issuer] if role != "root" else []})
    return ocsp.OCSPResponse({"response_status": "successful",
                              "response_bytes": {"response_type": "basic_ocsp_response", "response": basic}})


def cert_id(certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "sha1") -> ocsp.CertId:
    """RFC 6960 §4.1.1 CertID of `certificate` (SHA-1 by default: what every client sends and matches)."""
    name_hash, key_hash = _issuer_hashes(issuer, algorithm)
    return ocsp.CertId({"hash_algorithm": {"algorithm": algorithm}, "issuer_name_hash": name_hash,
                        "issuer_key_hash": key_hash, "serial_number": certificate.serial_number})


async def answer_for(authority, db: AsyncDatabase, certificate: x509.Certificate, *, now: datetime,
                     session: AsyncClientSession | None = None) -> bytes:
    """In process (long-term validation data, signatures.py): the DER OCSPResponse for one certificate below the root,
    signed by its issuer — the issuing CA for citizens and the TSA, the root for the issuing CA (RFC 6960 §4.2.2.2: the
    CA itself answers). No HTTP round trip and no nonce. The answers about the platform's own TSA and issuing CA never
    change (neither is ever revoked: docs/operations.md) and are reused for half their validity; a citizen's is fresh."""
    role = "root" if certificate.issuer == authority.root.subject and certificate.serial_number == authority.issuing.serial_number \
        else "issuing"
    shared = certificate.serial_number in (authority.issuing.serial_number, authority.certs["tsa"].serial_number)
    now = now.astimezone(UTC).replace(microsecond=0)
    if shared:
        cached = authority._ocsp.get(certificate.serial_number)
        if cached is not None and now - cached[0] < VALIDITY / 2:
            return cached[1]
    answer = (await _signed_answer(authority, db, role, [(cert_id(certificate, authority.certs[role]), True)], None,
                                   now=now, session=session)).dump()
    if shared:
        authority._ocsp[certificate.serial_number] = (now, answer)
    return answer


async def _status_of(authority, db: AsyncDatabase, role: str, serial: int,
                     session: AsyncClientSession | None = None) -> tuple[dict, str]:
    if role == "root":  # the root issues one certificate, the issuing CA's, and never revokes it (as its CRL says)
        return ({"good": None}, "good") if serial == authority.issuing.serial_number else ({"unknown": None}, "unknown")
    if serial == authority.certs["tsa"].serial_number:  # the TSA's certificate: issued by this CA, never revoked
        return {"good": None}, "good"
    doc = await db[CERTIFICATES].find_one({"_id": format(serial, "x")}, {"status": 1, "revoked_at": 1, "reason": 1}, session=session)
    if doc is None:
        return {"unknown": None}, "unknown"
    if doc["status"] == "revoked":
        revoked_at = doc["revoked_at"].replace(tzinfo=UTC)
        return {"revoked": {"revocation_time": GeneralizedTime(revoked_at), "revocation_reason": doc["reason"]}}, "revoked"
    return {"good": None}, "good"
