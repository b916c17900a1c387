"""signing's part of the citizen's personal-data export (libs/data_export.py): their certificates (with the
certificate itself, PEM; never the HSM key's label) and the signing requests made of them, document name and purpose
opened (the documents and signatures themselves are deleted once fetched or expired and are not kept).

Signed with signing's own export keys (`export_keys`, ES256 under the KEK ring like formfill's and notify's; JWKS at
/v1/signing/jwks), typ harbour-export+jwt.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import x509 as asn1_x509

from libs.callers import Device
from libs.data_export import ExportPart, plain, signed_part, without
from libs.tokens.keystore import KeyStore

from .collections import CERTIFICATES, CITIZENS, REQUESTS
from .context import Signing
from .signing_requests import SIGNING_REQUESTS
from .x509 import pem


def _certificate(doc: dict[str, Any]) -> dict[str, Any]:
    view = plain(without(doc, "_id", "key_label", "certificate", "account_id"))
    return {"serial": doc["_id"], **view, "certificate_pem": pem(asn1_x509.Certificate.load(bytes(doc["certificate"])))}


async def export(signing: Signing, keys: KeyStore, device: Device) -> ExportPart:
    db, account_id = signing.db, device.account_id
    certificates = [_certificate(doc) for doc in await db[CERTIFICATES].find({"account_id": account_id}).sort("issued_at", 1).to_list()]
    requests = [plain(without(SIGNING_REQUESTS.with_text(signing, doc), "text", "traceparent", "account_id"))
                for doc in await db[REQUESTS].find({"account_id": account_id}).sort("created_at", 1).to_list()]
    citizen = plain(without(await db[CITIZENS].find_one({"_id": account_id}), "_id"))
    data = {"signer": citizen, "certificates": certificates, "signing_requests": requests}
    return await signed_part(signing, keys, "signing", device, data,
                             certificates=len(certificates), signing_requests=len(requests))
