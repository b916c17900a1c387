"""A suspended or revoked identity revokes its certificates: the CRL lists them, the platform is told."""

from __future__ import annotations

from asn1crypto import crl as asn1_crl
from pymongo import monitoring

from tests.support.auth_stand_in import published, state_changed
from tests.support.database import CommandRecorder


async def signed_serial(signing, rp, citizen) -> str:
    """A signature the citizen approved: the serial of the certificate it was made with."""
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
    return (await (await signing.status(rp, request_id)).json())["certificate_serial"]


async def test_suspending_the_identity_puts_its_certificate_on_hold(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    serial = await signed_serial(signing, rp, citizen)

    await signing.learn(state_changed(citizen.account_id, was="active", to="suspended"))

    [revoked] = await published(signing.ctx, "certificate.revoked", serial)
    assert revoked.data == {"serial": serial, "account_id": citizen.account_id, "reason": "certificate_hold",
                            "revoked_at": signing.clock.now().replace(microsecond=0).isoformat()}
    crl = asn1_crl.CertificateList.load(await (await signing.http.get("/v1/signing/crl")).read())
    listed = {format(entry["user_certificate"].native, "x"): entry for entry in crl["tbs_cert_list"]["revoked_certificates"]}
    assert serial in listed
    assert (await signing.ctx.db["citizens"].find_one({"_id": citizen.account_id}))["state"] == "suspended"


async def test_the_next_signature_after_reinstatement_gets_a_new_certificate(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    serials = []
    for state_change in (None, ("suspended", "active")):
        if state_change:
            await signing.learn(state_changed(citizen.account_id, was="active", to=state_change[0]))
            await signing.learn(state_changed(citizen.account_id, was=state_change[0], to=state_change[1]))
        serials.append(await signed_serial(signing, rp, citizen))
    assert serials[0] != serials[1]


async def test_closing_the_account_revokes_its_certificate_and_destroys_its_key_in_the_hsm(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    serial = await signed_serial(signing, rp, citizen)
    label = (await signing.ctx.db["certificates"].find_one({"_id": serial}))["key_label"]
    assert await signing.ctx.hsm.has_key(label)

    await signing.learn(state_changed(citizen.account_id, was="active", to="closed"))

    [revoked] = await published(signing.ctx, "certificate.revoked", serial)
    assert revoked.data["reason"] == "cessation_of_operation"
    certificate = await signing.ctx.db["certificates"].find_one({"_id": serial})
    assert certificate["status"] == "revoked" and certificate["key_destroyed_at"] is not None
    assert not await signing.ctx.hsm.has_key(label)  # destroyed in the token: nothing can sign with it again
    [audit] = [e for e in await published(signing.ctx, "audit.recorded", citizen.account_id)
               if e.data["action"] == "certificate.keys_destroyed"]
    assert audit.data["keys"] == 1
    crl = asn1_crl.CertificateList.load(await (await signing.http.get("/v1/signing/crl")).read())
    assert serial in {format(entry["user_certificate"].native, "x") for entry in crl["tbs_cert_list"]["revoked_certificates"]}
    # A closed identity signs nothing more (and gets no new key).
    again = await signing.ask(rp, sub=citizen.sub)
    assert again.status == 403 and (await again.json())["type"].endswith("/identity-not-active")
    assert await signing.ctx.db["certificates"].count_documents({"account_id": citizen.account_id}) == 1


READS = CommandRecorder()  # registered when the module is collected, before any client of signing's is made
monitoring.register(READS)


def _revoked_list_reads(seen) -> int:
    return sum(1 for name, collection, command in seen
               if name == "find" and collection == "certificates" and command.get("filter") == {"status": "revoked"})


async def test_the_crl_reads_the_revoked_certificates_only_when_a_revocation_moved_their_count(signing):
    # Each signature's validation data and each GET of the CRL ask for the CRL: every revoked certificate read each
    # time would grow with the revocations (and a public endpoint would read them all per request). One read by `_id`
    # of the revocations' count says whether to read them again; a revocation moves it in its own transaction, so
    # the next CRL lists it — in this process or any other.
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    serial = await signed_serial(signing, rp, citizen)
    await signing.http.get("/v1/signing/crl")

    with READS.recording(signing.ctx.db.name) as seen:
        for _ in range(3):
            assert (await signing.http.get("/v1/signing/crl")).status == 200
        assert await signed_serial(signing, rp, citizen) == serial  # a signature: its validation data asks for the CRL
    assert _revoked_list_reads(seen) == 0

    await signing.learn(state_changed(citizen.account_id, was="active", to="suspended"))
    with READS.recording(signing.ctx.db.name) as seen:
        crl = asn1_crl.CertificateList.load(await (await signing.http.get("/v1/signing/crl")).read())
        again = await (await signing.http.get("/v1/signing/crl")).read()
    assert serial in {format(entry["user_certificate"].native, "x") for entry in crl["tbs_cert_list"]["revoked_certificates"]}
    assert _revoked_list_reads(seen) == 1 and again == crl.dump()
