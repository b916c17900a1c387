"""The citizen's data tracker (issue 19): every use of their identity, read from the audit ledger, each entry with
what proves it.

One page lists the ledger's records about an account, oldest first after a sequence number: the records whose
subject is the account (logins, releases, consents, signatures, device changes, operator actions...) and the
agencies' `notification.send` records that list it (their subject is the agency; `data.notifications[].account_id`
names each citizen of the chunk). Each becomes an `ActivityEntry`: when, what kind, which service (the client's id
and name from signing's projection of clients.events), the details a person reads (field names, level, methods,
the document's name while signing still holds the request — the ledger itself never holds it), and the proof:
the record's place `seq`, its `leaf` and `chain` hashes, and the latest signed checkpoint, which covers it
(`python -m services.signing.ledger verify` checks the chain up to that checkpoint's head).

Who sees what:
- the citizen (device token): all of their own entries, and for entries whose record is about them alone the
  record itself, so the app can recompute the leaf; a notification chunk lists other citizens and is never shown
  whole — only this citizen's part, with the hashes;
- a relying party (`activity` scope): the entries about one of its own users (its pairwise `sub`, resolved in its
  own sector) that concern that relying party itself (`client_id` its own), without account ids, device ids or
  records — no relying party learns what the citizen did elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from libs.errors import NotFound
from libs.projections import CLIENTS, account_of_subject
from libs.store import index

from .store import LOG, latest_checkpoint

PAGE_LIMIT = 200
# (request_id, account_id) -> the document's name while signing still holds the request (encrypted, 30 days).
DocumentNames = Callable[[str, str], Awaitable[str | None]]
INDEXES = (index(LOG, "record.data.notifications.account_id", "_id"),)

# What a person calls each audited action (the `action` of docs/events.md's inventory).
KINDS = {
    "login": "login", "logout": "login",
    "formfill.release": "release", "consent.update_release": "release",
    "consent.revoke": "consent",
    "signature.create": "signature", "signature.refuse": "signature",
    "certificate.issue": "certificate", "certificate.revoke": "certificate", "certificate.keys_destroyed": "certificate",
    "notification.send": "notification", "notification.read": "notification",
    "approval.decide": "approval",
    "data.export": "export",
    "token.revoke": "token", "token.reuse_detected": "token",
}
# Details a person reads, by name; everything else in a record (ids of devices, counts, hashes) stays in the record.
SHOWN = ("fields", "acr", "amr", "flow", "kind", "purpose_sha256", "request_id", "receipt_id", "reason", "from", "to",
         "by", "assurance", "channel", "template_id", "notification_id", "serial", "standing", "told_by")
# Details a relying party may see of its own entries (no device ids, no reasons an operator wrote about the citizen).
SHOWN_TO_RELYING_PARTIES = ("fields", "acr", "amr", "flow", "kind", "purpose_sha256", "request_id", "receipt_id",
                            "channel", "template_id", "notification_id", "told_by")


def kind_of(action: str, actor: str) -> str:
    if actor.startswith("operator"):
        return "operator"
    if action in KINDS:
        return KINDS[action]
    return action.split(".", 1)[0]  # identity.*, device.*, profile.*, vault.*, keys.*, subject.*, notify.*


class Proof(BaseModel):
    seq: int
    leaf: str
    chain: str
    # The latest signed checkpoint, which covers this record (None until the next one is signed, within ~10 s).
    checkpoint_size: int | None
    checkpoint_jws: str | None


class ActivityEntry(BaseModel):
    time: str
    kind: str
    action: str
    outcome: str
    client_id: str | None
    client_name: str | None
    details: dict[str, Any]
    proof: Proof
    record: dict[str, Any] | None  # the whole record, only when it is about this citizen alone (citizen view)


class ActivityPage(BaseModel):
    entries: list[ActivityEntry]
    # Pass as `after` for the next page; None when this page was the last.
    next_after: int | None


async def citizen_activity(db: AsyncDatabase, account_id: str, *, after: int = 0, limit: int = 50,
                           document_names: DocumentNames | None = None) -> ActivityPage:
    """The citizen's own entries, oldest first after seq `after`."""
    docs = await _records_about(db, account_id, after=after, limit=limit)
    names = await _client_names(db, docs)
    checkpoints = Checkpoints(db)
    entries = []
    for doc in docs:
        record = doc["record"]
        data = _own_part(record, account_id)
        alone = record.get("subject") == account_id
        details = {name: data[name] for name in SHOWN if name in data}
        if document_names is not None and data.get("request_id") and KINDS.get(str(data.get("action"))) == "signature":
            name = await document_names(data["request_id"], account_id)
            if name is not None:
                details["document_name"] = name
        entries.append(await _entry(doc, data, details, names, checkpoints, record if alone else None))
    return ActivityPage(entries=entries, next_after=_next(docs, limit))


class UnknownSubject(NotFound):
    slug, title = "unknown-subject", "No user of this relying party has this sub"


async def relying_party_activity(db: AsyncDatabase, client_id: str, sub: str, *, after: int = 0,
                                 limit: int = 50) -> ActivityPage:
    """What one of the relying party's own users did with it: entries naming this client, about the account its
    pairwise `sub` names in the client's sector."""
    client = await db[CLIENTS].find_one({"_id": client_id}, {"sector": 1, "name": 1})
    account_id = await account_of_subject(db, sub, client["sector"]) if client else None
    if account_id is None:
        raise UnknownSubject("no user of yours has this sub here (a sub first used seconds ago arrives shortly)")
    entries: list[ActivityEntry] = []
    checkpoints = Checkpoints(db)
    cursor = after
    # The account's records a page at a time, keeping this client's, until the page asked for is full or the log ends.
    while True:
        docs = await _records_about(db, account_id, after=cursor, limit=PAGE_LIMIT)
        for doc in docs:
            cursor = doc["_id"]
            data = _own_part(doc["record"], account_id)
            if data.get("client_id") != client_id:
                continue
            details = {name: data[name] for name in SHOWN_TO_RELYING_PARTIES if name in data}
            entries.append(await _entry(doc, data, details, {client_id: client.get("name")}, checkpoints, None))
            if len(entries) == limit:
                return ActivityPage(entries=entries, next_after=cursor)
        if len(docs) < PAGE_LIMIT:
            return ActivityPage(entries=entries, next_after=None)


# -- reading -------------------------------------------------------------------


async def _records_about(db: AsyncDatabase, account_id: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    """The log's records about the account (as subject, or listed in a notification chunk), by seq."""
    own = await db[LOG].find({"record.subject": account_id, "_id": {"$gt": after}}).sort("_id", 1).limit(limit).to_list()
    listed = await (db[LOG].find({"record.data.notifications.account_id": account_id, "_id": {"$gt": after}})
                    .sort("_id", 1).limit(limit).to_list())
    merged = {doc["_id"]: doc for doc in (*own, *listed)}
    return [merged[seq] for seq in sorted(merged)][:limit]


def _own_part(record: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The record's data as it concerns this citizen: of a notification chunk, their own notifications only."""
    data = dict(record.get("data") or {})
    if data.get("action") == "notification.send" and isinstance(data.get("notifications"), list):
        mine = [n for n in data["notifications"] if isinstance(n, dict) and n.get("account_id") == account_id]
        data.pop("notifications")
        if len(mine) == 1:
            data.update({k: v for k, v in mine[0].items() if k != "account_id"})
        elif mine:
            data["notification_ids"] = [n.get("notification_id") for n in mine]
    return data


async def _client_names(db: AsyncDatabase, docs: list[dict[str, Any]]) -> dict[str, str | None]:
    ids = sorted({(doc["record"].get("data") or {}).get("client_id") for doc in docs} - {None})
    if not ids:
        return {}
    return {c["_id"]: c.get("name") for c in await db[CLIENTS].find({"_id": {"$in": ids}}, {"name": 1}).to_list()}


class Checkpoints:
    """The latest signed checkpoint, read once per page by `_id`: it covers every record up to its size (a range
    query for the first covering one scans the collection on the local database: 313 ms at 20,000 checkpoints)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.latest: dict[str, Any] | None = None
        self.read = False

    async def covering(self, seq: int) -> dict[str, Any] | None:
        if not self.read:
            self.latest, self.read = await latest_checkpoint(self.db), True
        return self.latest if self.latest is not None and self.latest["size"] >= seq else None


async def _entry(doc: dict[str, Any], data: dict[str, Any], details: dict[str, Any], names: dict[str, str | None],
                 checkpoints: Checkpoints, record: dict[str, Any] | None) -> ActivityEntry:
    checkpoint = await checkpoints.covering(doc["_id"])
    client_id = data.get("client_id")
    return ActivityEntry(
        time=str(doc["record"].get("time")),
        kind=kind_of(str(data.get("action", "")), str(data.get("actor", ""))),
        action=str(data.get("action", "")), outcome=str(data.get("outcome", "success")),
        client_id=client_id, client_name=names.get(client_id) if client_id else None, details=details,
        proof=Proof(seq=doc["_id"], leaf=doc["leaf"], chain=doc["chain"],
                    checkpoint_size=checkpoint["size"] if checkpoint else None,
                    checkpoint_jws=checkpoint["jws"] if checkpoint else None),
        record=record)


def _next(docs: list[dict[str, Any]], limit: int) -> int | None:
    return docs[-1]["_id"] if len(docs) == limit else None
