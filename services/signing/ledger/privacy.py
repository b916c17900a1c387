"""No personal data in the clear in the ledger: a last screen over each audit record before it is hashed.

Audit events carry ids (account ids, client ids, device ids, request ids), outcomes, reasons and counts only
(libs/events/audit.py says so to every caller; docs/privacy.md lists what they hold). Should a caller ever put a
name, a phone number, an e-mail address or a document's name in `data`, the ledger keeps `"[withheld]"` in its
place instead (and counts it, harbour_audit_ledger_withheld_total): the ledger is append-only, so what enters it
stays for good, and no personal datum may.
"""

from __future__ import annotations

import re
from typing import Any

WITHHELD = "[withheld]"
# Keys whose values are personal data wherever they appear.
PERSONAL_KEYS = frozenset({
    "name", "name_en", "name_zh", "full_name", "given_name", "family_name", "phone", "phone_number", "mobile", "email",
    "e_mail", "address", "date_of_birth", "birthdate", "hkid", "id_number", "document_name", "purpose", "text",
    "display_text", "message", "body", "title",
})
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
# E.164 as the platform holds phone numbers (+85291234567): a leading "+" keeps dates and decimal serials out.
PHONE = re.compile(r"^\+[0-9][0-9 -]{6,}[0-9]$")


def screen(data: Any) -> tuple[Any, int]:
    """`data` with personal values withheld, and how many were."""
    if isinstance(data, dict):
        out, count = {}, 0
        for key, value in data.items():
            if str(key).lower() in PERSONAL_KEYS and value not in (None, "", [], {}):
                out[key] = WITHHELD
                count += 1
            else:
                out[key], found = screen(value)
                count += found
        return out, count
    if isinstance(data, list):
        items = [screen(item) for item in data]
        return [item for item, _ in items], sum(found for _, found in items)
    if isinstance(data, str) and (EMAIL.search(data) or PHONE.match(data)):
        return WITHHELD, 1
    return data, 0
