"""What formfill keeps of auth's events: the vault (encrypted), the clients, the pairwise subjects, account states."""

from __future__ import annotations

from libs.projections import pairwise_subject
from services.formfill.vault import read_fields
from tests.support.auth_stand_in import client_registered, state_changed, subject_assigned

from .conftest import PROFILE


async def test_an_enrolled_profile_is_kept_encrypted_field_by_field(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)

    stored = await formfill.ctx.db["vault"].find_one({"_id": citizen.account_id})

    assert PROFILE["name_en"] not in str(stored) and PROFILE["id_number"] not in str(stored)
    assert (stored["assurance"], stored["state"], stored["updated_at"]) == ("plus", "active", formfill.clock.now())
    assert await read_fields(formfill.ctx.db, formfill.ctx.cipher, citizen.account_id, ["name_en", "email"]) == {
        "name_en": PROFILE["name_en"], "email": PROFILE["email"]}


async def test_state_changes_follow_the_account(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)

    await formfill.learn(state_changed(citizen.account_id, was="active", to="suspended"))

    assert (await formfill.ctx.db["vault"].find_one({"_id": citizen.account_id}))["state"] == "suspended"


async def test_clients_are_kept_with_what_formfill_needs(formfill):
    await formfill.learn(client_registered("rp-kept", sector="s1", formfill_fields=["email"], encryption_jwk={"kty": "EC"},
                                           agency_events=False))
    # An update without them (as auth's events before agency_events existed: such a client keeps its agency topic).
    await formfill.learn(client_registered("rp-kept", sector="s1", name="Harbour Water Ltd"))

    assert await formfill.ctx.db["clients"].find_one({"_id": "rp-kept"}) == {
        "_id": "rp-kept", "name": "Harbour Water Ltd", "kind": "relying_party", "sector": "s1", "agency_events": True,
        "formfill_fields": [], "encryption_jwk": None, "callback_urls": []}


async def test_pairwise_subjects_are_kept_per_sector(formfill):
    await formfill.learn(subject_assigned("sub-a", sector="s1", account_id="acct-1"))
    await formfill.learn(subject_assigned("sub-b", sector="s2", account_id="acct-1"))

    assert await pairwise_subject(formfill.ctx.db, "s1", "acct-1") == "sub-a"
    assert await pairwise_subject(formfill.ctx.db, "s2", "acct-1") == "sub-b"
    assert await pairwise_subject(formfill.ctx.db, "s3", "acct-1") is None
