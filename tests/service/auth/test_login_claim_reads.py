"""The phone's claim of a login opened in this process reads no login document, and its decision no prompt queued
in this process (issue 17: two database operations less per login); a login opened or a prompt queued elsewhere, or
before this process started, is read from its document as before. A remembered prompt that moved meanwhile
(decided or expired in another replica) is refused all the same, with the stored reason.

Counted on the real database with a command listener: the finds on `authorizations` and `approvals` while the phone
opens the login's link (its claim, then its decision).
"""

from __future__ import annotations

import pytest
from pymongo import monitoring

from clients.citizen_app import AppError

from services.auth.approvals.queue import QUEUED
from services.auth.oidc.decided import DECIDED, OPENED
from services.auth.oidc.login import LOGIN_CODE_SEPARATOR, tx_from_link

from ...support.database import CommandRecorder
from .oidc_steps import app_link_of, authorization_params, query_of, redeem, register


READS = CommandRecorder()  # registered before any client of auth's is made
monitoring.register(READS)


async def _open_page(auth_service, rp) -> tuple[str, str, str]:
    """The login page: (its app link, its transaction id, the PKCE verifier)."""
    params, verifier = authorization_params(rp)
    page = await auth_service.client.get("/oidc/authorize", params=params)
    assert page.status == 200, await page.text()
    link = app_link_of(await page.text())
    return link, tx_from_link(link, auth_service.context.settings.issuer), verifier


async def _phone_opens(auth_service, phone, link: str, collection: str = "authorizations") -> tuple[dict, list[object]]:
    """The phone opens the link: (its outcome, the `_id` of each find on `collection` meanwhile)."""
    with READS.recording(auth_service.context.db.name) as seen:
        outcome = await phone.open_link(link)
    return outcome, [command.get("filter", {}).get("_id") for name, read, command in seen
                     if name == "find" and read == collection]


async def test_a_login_opened_here_is_claimed_without_reading_its_document(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    link, tx, verifier = await _open_page(auth_service, rp)
    assert OPENED.recall(auth_service.context.db.name, tx) is not None

    outcome, reads = await _phone_opens(auth_service, phone, link)
    assert tx not in reads, reads  # neither the claim nor the decision read the login's document
    # Decided: out of the opened logins, into the decided ones; the login completes as ever.
    assert OPENED.recall(auth_service.context.db.name, tx) is None
    code = query_of(outcome["redirect_to"])["code"]
    assert code.split(LOGIN_CODE_SEPARATOR, 1)[0] == tx and DECIDED.recall(auth_service.context.db.name, tx) is not None
    assert (await redeem(auth_service, rp, code, verifier)).status == 200


async def test_a_login_opened_elsewhere_is_read_from_its_document(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    link, tx, verifier = await _open_page(auth_service, rp)
    OPENED.forget(auth_service.context.db.name, tx)  # as if another replica had drawn the page

    outcome, reads = await _phone_opens(auth_service, phone, link)
    assert reads.count(tx) == 1, reads  # the claim read it, once
    assert (await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)).status == 200


async def test_a_remembered_login_past_its_expiry_is_refused(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    link, tx, _ = await _open_page(auth_service, rp)
    clock.advance(auth_service.context.settings.authorization_ttl_s)
    assert OPENED.recall(auth_service.context.db.name, tx) is not None  # still in memory (kept by its own clock)...

    with pytest.raises(AppError) as refused:
        await phone.open_link(link)
    assert refused.value.problem["type"].endswith("/link-unusable"), refused.value.problem  # ...but refused: expired
    assert await auth_service.context.db["approvals"].find_one({"_id": f"login-{tx}"}) is None  # nothing queued


async def test_a_prompt_queued_here_is_decided_without_reading_it_and_one_queued_elsewhere_is_read(auth_service, tmp_path,
                                                                                                   monkeypatch):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    db = auth_service.context.db.name
    link, tx, _ = await _open_page(auth_service, rp)
    _, reads = await _phone_opens(auth_service, phone, link, "approvals")
    assert f"login-{tx}" not in reads, reads  # the claim queued it here; the decision took it from memory
    assert QUEUED.recall(db, f"login-{tx}") is None  # decided: forgotten

    link, tx, _ = await _open_page(auth_service, rp)
    monkeypatch.setattr(QUEUED, "remember", lambda *args, **kwargs: None)  # as if another replica had queued it
    outcome, reads = await _phone_opens(auth_service, phone, link, "approvals")
    assert reads.count(f"login-{tx}") == 1, reads  # the decision read it, once
    assert "code=" in outcome["redirect_to"]


@pytest.mark.parametrize(("moved_to", "refusal"), [("denied", "/already-decided"), ("expired", "/expired")])
async def test_a_remembered_prompt_that_moved_elsewhere_is_refused_with_the_stored_reason(auth_service, tmp_path,
                                                                                          moved_to, refusal):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    link, tx, _ = await _open_page(auth_service, rp)
    prompt = await phone._as_device("POST", "/v1/approvals/links", json={"link": link})  # the claim alone
    approvals = auth_service.context.db["approvals"]
    assert QUEUED.recall(auth_service.context.db.name, prompt["approval_id"]) is not None
    await approvals.update_one({"_id": prompt["approval_id"]}, {"$set": {"status": moved_to}})  # another replica

    with pytest.raises(AppError) as refused:
        await phone.decide(prompt["approval_id"], "approve", prompt=prompt)
    assert refused.value.problem["type"].endswith(refusal), refused.value.problem
    stored = await approvals.find_one({"_id": prompt["approval_id"]})
    assert stored["status"] == moved_to and "decision_jws" not in stored  # nothing written
    assert (await auth_service.context.db["authorizations"].find_one({"_id": tx}))["status"] == "pending"
