"""auth's part of the citizen's personal-data export (libs/data_export.py).

What auth holds about the account of the calling device: the account (state, assurance, language, enrolment and
closure facts; the card number and card-printed data are kept only as keyed hashes, which are named, not given),
every device (bound or revoked), the pairwise subjects with the relying parties of each sector, the grants (refresh
tokens: client, scopes, acr/amr, times — never the token), the sign-in sessions at the issuer, the approval prompts
with their text opened, and profile changes waiting for or past their one-time code (never the code nor the sealed
value). It also names the parts a complete export has (`parts_expected`).

Signed with auth's token keys (JWKS at /oidc/jwks), typ harbour-export+jwt: with no `aud` and no `exp` it cannot
pass for any token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libs.approvals.confidential import PromptUnreadable
from libs.data_export import PARTS, ExportPart, plain, signed_part, without

from .approvals.queue import opened
from .clients.registry import clients_of_sector
from .collections import ACCOUNTS, APPROVALS, DEVICES, PROFILE_CHANGES, REFRESH_TOKENS, SESSIONS, SUBJECTS

if TYPE_CHECKING:
    from .context import Auth
    from .devices.tokens import DeviceContext

# Kept only as keyed hashes (HMAC under auth's hash key): named in the export, never given.
KEYED_HASHES = {"card_hash": "identity card number", "closed_card_hash": "identity card number",
                "revoked_card_hash": "identity card number", "identity_hash": "card-printed data"}
ACCOUNT_SECRETS = ("activation", *KEYED_HASHES)


def _account(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    view = plain(without(doc, *ACCOUNT_SECRETS))
    view["kept_as_keyed_hashes"] = sorted({name for key, name in KEYED_HASHES.items()
                                           if doc.get(key) and not str(doc[key]).startswith(("closed:", "revoked:"))})
    return view


def _prompt(auth: "Auth", doc: dict[str, Any]) -> dict[str, Any]:
    view = plain(without(doc, "request", "sealed", "traceparent", "account_id"))
    try:
        request = opened(doc, auth.field_cipher)
        view |= {"action": request.action, "requester": request.requester.model_dump(mode="json"),
                 "purpose": request.purpose, "details": plain(request.details)}
    except PromptUnreadable:
        view["text"] = "unreadable"
    return view


async def export(auth: "Auth", device: "DeviceContext") -> ExportPart:
    db, account_id = auth.db, device.account_id
    account = _account(await db[ACCOUNTS].find_one({"_id": account_id}))
    devices = [plain(d) for d in await db[DEVICES].find({"account_id": account_id}).sort("created_at", 1).to_list()]
    subjects = []
    for doc in await db[SUBJECTS].find({"account_id": account_id}).to_list():
        clients = await clients_of_sector(auth.db, doc["sector"])
        subjects.append({"sub": doc["_id"], "sector": doc["sector"],
                         "relying_parties": [{"client_id": c.client_id, "name": c.metadata.client_name} for c in clients]})
    grants = [{**plain(without(doc["grant"], "nonce", "extra", "account_id")), "status": doc["status"],
               "created_at": plain(doc["created_at"]), "expires_at": plain(doc["expires_at"])}
              for doc in await db[REFRESH_TOKENS].find({"grant.account_id": account_id}).sort("created_at", 1).to_list()]
    sessions = [plain(without(doc, "cookie_hash", "account_id"))
                for doc in await db[SESSIONS].find({"account_id": account_id}).to_list()]
    prompts = [_prompt(auth, doc) for doc in await db[APPROVALS].find({"account_id": account_id}).sort("received_at", 1).to_list()]
    changes = [plain(without(doc, "code_hash", "sealed_profile", "sealed_contacts", "account_id"))
               for doc in await db[PROFILE_CHANGES].find({"account_id": account_id}).sort("created_at", 1).to_list()]
    data = {"parts_expected": list(PARTS), "account": account, "devices": devices, "pairwise_subjects": subjects,
            "grants": grants, "sessions": sessions, "approval_prompts": prompts, "profile_changes": changes}
    return await signed_part(auth, auth.keys, "auth", device, data, devices=len(devices), pairwise_subjects=len(subjects),
                             grants=len(grants), approval_prompts=len(prompts))
