"""approval.decided: signing signs only on a decision the device signed over exactly its prompt, for a citizen who may sign."""

from __future__ import annotations

from libs.tokens import public_jwk
from tests.support.auth_stand_in import Phone, published, state_changed

from .conftest import problem


async def asked(signing, *, pdf: bool = False):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    asked = await (signing.ask_pdf(rp, sub=citizen.sub) if pdf else signing.ask(rp, sub=citizen.sub))
    request_id = (await asked.json())["request_id"]
    return rp, citizen, request_id, await signing.prompt(request_id)


async def test_a_denial_closes_the_request_unsigned(signing):
    rp, citizen, request_id, prompt = await asked(signing, pdf=True)

    await signing.learn(citizen.phone.decided(prompt, "deny"))

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("denied", "access_denied")
    refused = await signing.result(rp, request_id)
    assert refused.status == 403
    assert (await problem(refused))["detail"] == "the citizen declined to sign"
    [event] = await published(signing.ctx, "signature.refused", request_id)
    assert event.data["reason"] == "denied"
    assert await signing.ctx.db["documents"].count_documents({"_id": request_id}) == 0
    # The citizen's record: whose request went unsigned, its kind, by the citizen's own device; never the document's name.
    [audit] = [e.data for e in await published(signing.ctx, "audit.recorded", citizen.account_id)]
    assert audit == {"action": "signature.refuse", "actor": citizen.phone.device_id, "outcome": "denied", "client_id": rp.client_id,
                     "request_id": request_id, "kind": "pdf", "reason": "denied"}


async def test_a_citizen_suspended_before_approving_is_refused(signing):
    rp, citizen, request_id, prompt = await asked(signing)
    await signing.learn(state_changed(citizen.account_id, was="active", to="suspended"))

    await signing.learn(citizen.phone.decided(prompt))

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "identity-not-active")
    assert await published(signing.ctx, "certificate.issued") == []


async def test_decisions_not_the_citizens_are_ignored(signing):
    rp, citizen, request_id, prompt = await asked(signing)

    await signing.learn(Phone("acct-someone-else").decided(prompt))
    forged = Phone(citizen.account_id).decided(prompt, digest="B" * 43)  # signed by another key than the device's
    forged.data["device_jwk"] = public_jwk(citizen.phone.key)
    await signing.learn(forged)

    assert (await (await signing.status(rp, request_id)).json())["status"] == "pending"
    assert await published(signing.ctx, "signature.completed") == []


async def test_a_device_signed_decision_over_another_prompt_closes_the_request_unsigned(signing):
    """auth checked the decision against the prompt the phone showed: signing's own prompt differs, so what it would
    sign is not what the citizen approved (evidence.py). Refused for good (decision-mismatch), never signed."""
    rp, citizen, request_id, prompt = await asked(signing)

    await signing.learn(citizen.phone.decided(prompt, digest="B" * 43))

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "decision-mismatch")
    assert await published(signing.ctx, "signature.completed") == []


async def test_a_request_is_decided_once(signing):
    rp, citizen, request_id, prompt = await asked(signing)
    await signing.learn(citizen.phone.decided(prompt, "deny"))
    await signing.learn(citizen.phone.decided(prompt))
    assert (await (await signing.status(rp, request_id)).json())["status"] == "denied"
