"""formfill's part of the citizen's personal-data export (libs/data_export.py): the vault record opened for its
owner, with each field's provenance, the consent receipts and the form-fill requests about them.

Signed with formfill's release keys (JWKS at /v1/formfill/jwks), typ harbour-export+jwt.
"""

from __future__ import annotations

from typing import Any

from libs.callers import Device
from libs.data_export import ExportPart, plain, signed_part, without

from .collections import REQUESTS, VAULT
from .consents import _view as consent_view
from .context import Formfill
from .formfill_requests import FORMFILL_REQUESTS
from .collections import CONSENTS
from .vault import FIELDS, provenance_of


async def export(formfill: Formfill, device: Device) -> ExportPart:
    db, account_id = formfill.db, device.account_id
    record = await db[VAULT].find_one({"_id": account_id})
    vault: dict[str, Any] | None = None
    if record is not None:
        fields = formfill.cipher.decrypt_record(record["sealed"], record_id=account_id) if "sealed" in record else {}
        vault = {**without(record, "_id", "sealed", "provenance"),  # type: ignore[dict-item]
                 "fields": {name: fields.get(name) for name in FIELDS if fields.get(name) is not None},
                 "provenance": provenance_of(record) if "sealed" in record else {}}
    receipts = [consent_view(formfill, doc).model_dump(exclude_none=True)
                for doc in await db[CONSENTS].find({"account_id": account_id}).sort("granted_at", 1).to_list()]
    requests = [plain(without(FORMFILL_REQUESTS.with_text(formfill, doc), "text", "traceparent", "account_id"))
                for doc in await db[REQUESTS].find({"account_id": account_id}).sort("created_at", 1).to_list()]
    data = {"vault": vault, "consent_receipts": receipts, "formfill_requests": requests}
    return await signed_part(formfill, formfill.keys, "formfill", device, data,
                             consent_receipts=len(receipts), formfill_requests=len(requests))
