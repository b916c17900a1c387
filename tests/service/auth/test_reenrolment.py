"""Re-enrolment after an account is revoked (identity/enrolment.py): a new account, the old one kept for audit.

auth in process on the real database; the revocation is the operator's (accounts.change_state, as `admin set-state`).
"""

from __future__ import annotations

import asyncio
import base64
import json

from services.auth.identity.accounts import change_state

from ...support.people import identity, selfie


def body_of(person: dict) -> dict:
    return {**person, "selfie": base64.b64encode(selfie()).decode()}


async def enrol(auth_service, person: dict) -> tuple[int, dict]:
    response = await auth_service.client.post("/v1/enrolments", json=body_of(person))
    return response.status, await response.json()


async def set_state(auth_service, account_id: str, to: str) -> None:
    auth = auth_service.context
    await auth.transaction(lambda session: change_state(auth, session, account_id, to, reason="operator"))


async def test_a_revoked_citizen_enrols_anew_as_a_new_account_and_the_old_one_is_kept(auth_service, tmp_path):
    person = identity()
    status, first = await enrol(auth_service, person)
    assert status == 201
    phone = auth_service.citizen_app(tmp_path)
    await phone.activate(first["account_id"], first["activation_code"])
    await set_state(auth_service, first["account_id"], "revoked")

    status, second = await enrol(auth_service, person)
    assert status == 201, second
    assert second["account_id"] != first["account_id"] and second["state"] == "pending"
    db = auth_service.context.db
    old = await db["accounts"].find_one({"_id": first["account_id"]})
    new = await db["accounts"].find_one({"_id": second["account_id"]})
    # The old account stays revoked, with its devices, for audit; the card's place is the new account's.
    assert old["state"] == "revoked" and old["re_enrolled_as"] == second["account_id"]
    assert old["card_hash"] == f"revoked:{first['account_id']}" and old["revoked_card_hash"] == new["card_hash"]
    assert new["previous_account_id"] == first["account_id"]
    assert await db["devices"].count_documents({"account_id": first["account_id"]}) == 1
    audits = [json.loads(doc["value"])["data"] for doc in await db["outbox"].find({"type": "audit.recorded"}).to_list()]
    assert {"action": "identity.re_enrolled", "new_account_id": second["account_id"]}.items() <= next(
        a for a in audits if a["action"] == "identity.re_enrolled").items()

    # The new account's pairwise subjects are new ones (they derive from the account id).
    from services.auth.oidc.pairwise import pairwise_sub
    key = auth_service.context.settings.hash_key
    sector = "https://portal.example.hk"
    assert pairwise_sub(key, sector, first["account_id"]) != pairwise_sub(key, sector, second["account_id"])

    # The new account is the card's now: enrolling once more is a duplicate again.
    status, again = await enrol(auth_service, person)
    assert status == 409 and again["type"].endswith("/duplicate-enrolment")


async def test_only_a_revoked_account_gives_its_card_up(auth_service):
    person = identity()
    status, first = await enrol(auth_service, person)
    assert status == 201
    for state in ("pending", "suspended"):
        if state != "pending":
            await set_state(auth_service, first["account_id"], "active")
            await set_state(auth_service, first["account_id"], state)
        status, refused = await enrol(auth_service, person)
        assert status == 409 and refused["type"].endswith("/duplicate-enrolment"), state
    account = await auth_service.context.db["accounts"].find_one({"_id": first["account_id"]})
    assert "re_enrolled_as" not in account and not account["card_hash"].startswith("revoked:")


async def test_two_re_enrolments_of_one_revoked_card_at_once_make_one_account(auth_service):
    person = identity()
    status, first = await enrol(auth_service, person)
    await set_state(auth_service, first["account_id"], "revoked")
    results = await asyncio.gather(*(enrol(auth_service, person) for _ in range(4)))
    assert sorted(status for status, _ in results) == [201, 409, 409, 409], results
    db = auth_service.context.db
    assert await db["accounts"].count_documents({"previous_account_id": first["account_id"]}) == 1


async def test_closing_a_revoked_account_whose_card_enrolled_anew_leaves_the_new_account_alone(auth_service, tmp_path):
    from services.auth.identity.closure import close_by_operator

    person = identity()
    _, first = await enrol(auth_service, person)
    await set_state(auth_service, first["account_id"], "revoked")
    _, second = await enrol(auth_service, person)
    db = auth_service.context.db
    new_before = await db["accounts"].find_one({"_id": second["account_id"]})

    closed = await close_by_operator(auth_service.context, first["account_id"], operator="wong.k", reason="data erasure request")

    assert closed["state"] == "closed"
    old = await db["accounts"].find_one({"_id": first["account_id"]})
    # The old account keeps the tombstone re-enrolment gave it (its hash as revoked_card_hash); no second copy.
    assert old["state"] == "closed" and old["card_hash"] == f"revoked:{first['account_id']}" and "closed_card_hash" not in old
    assert old["revoked_card_hash"] == new_before["card_hash"] and "identity_hash" not in old
    assert await db["accounts"].find_one({"_id": second["account_id"]}) == new_before
    status, _ = await enrol(auth_service, person)
    assert status == 409  # the card is still the new account's


async def test_closing_an_account_frees_its_card_for_a_new_enrolment(auth_service, tmp_path):
    from services.auth.identity.closure import close_by_operator

    person = identity()
    _, first = await enrol(auth_service, person)
    card_hash = (await auth_service.context.db["accounts"].find_one({"_id": first["account_id"]}))["card_hash"]

    await close_by_operator(auth_service.context, first["account_id"], operator="wong.k", reason="citizen's letter")

    old = await auth_service.context.db["accounts"].find_one({"_id": first["account_id"]})
    assert old["card_hash"] == f"closed:{first['account_id']}" and old["closed_card_hash"] == card_hash
    assert "activation" not in old  # a pending account's code cannot bind a device any more
    status, second = await enrol(auth_service, person)
    assert status == 201 and second["account_id"] != first["account_id"]
