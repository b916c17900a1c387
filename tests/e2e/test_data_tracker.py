"""The citizen's data tracker (issue 19) on the real stack, through the gateway: a citizen's login, form fill,
signature, notification and an operator's suspension, each listed with who, what and the proof from the audit
ledger; a relying party sees only what its own user did with it; nobody sees another citizen's entries.

The proof is checked as an outside verifier would: the record's leaf recomputed from the record the tracker gave,
the checkpoint's JWS verified with jwcrypto against the published /v1/signing/jwks, the checkpoint covering the
entry, and the ledger's chain from the start up to that checkpoint ending in the head it signed.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import requests
from jwcrypto import jwk, jws

from services.signing.ledger.chain import leaf_hash, public_keys, verify_log
from services.signing.ledger.store import read_log

from ..support import formfill, signing
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.notify import Agency
from ..support.oidc import claims_of, client_token, login, register
from ..support.operator import admin
from ..support.people import identity
from ..support.polling import eventually

pytestmark = pytest.mark.e2e


def _kinds(page: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for entry in page["entries"]:
        found.setdefault(entry["action"], []).append(entry)
    return found


async def test_the_tracker_shows_a_whole_journey_with_proofs_and_relying_parties_see_only_their_own(
        platform, kiosk, metadata, tmp_path):
    person = identity()
    app = await enrolled_app(platform, kiosk, tmp_path, "phone", person=person)
    account_id = app.profile.account_id
    rp = register(platform, client_name="Harbour Water Board", scope="openid formfill sign notify activity",
                  formfill_fields=formfill.FIELDS)
    other_rp = register(platform, client_name="Harbour Parking", scope="openid activity")

    # The journey: a login, a form fill, a signature, a notification read in the inbox, a login elsewhere.
    tokens, _ = await login(platform, metadata, rp, app, scope="openid formfill sign")
    token, sub = tokens["access_token"], claims_of(tokens["id_token"])["sub"]
    asked = await formfill.created(platform, token, [("name_en", True), ("email", True)])
    await app.approve((await formfill.prompt_for(app, asked["request_id"]))["approval_id"])
    await formfill.wait_for_status(platform, token, asked["request_id"], "approved")
    to_sign = await signing.create(platform, token, json={"document_name": "Water supply contract 2027.txt",
                                                          "sha256": hashlib.sha256(b"water contract").hexdigest()})
    await app.approve((await signing.prompt_for(app, to_sign["request_id"]))["approval_id"])
    await signing.wait_for(platform, token, to_sign["request_id"], "signed")
    agency = Agency(platform, metadata, "Harbour Water Board", client=rp)
    template = await agency.template()
    sent = await agency.send({"template_id": template["template_id"], "sub": sub,
                              "personalisation": {"name": "Chan", "licence": "W-9"}})
    assert sent.status_code == 201, sent.text
    notification_id = sent.json()["notification_id"]
    await login(platform, metadata, other_rp, app, scope="openid")
    # An operator suspends the account (a reported loss) and reinstates it.
    assert admin(platform, "set-state", account_id, "suspended", "--reason", "phone reported lost").returncode == 0
    assert admin(platform, "set-state", account_id, "active", "--reason", "phone found again").returncode == 0

    async def whole_journey():
        try:
            page = await app.activity(limit=100)
        except Exception:  # noqa: BLE001 - the device token is refused while suspended; asked again
            return None
        kinds = _kinds(page)
        wanted = {"login", "formfill.release", "signature.create", "notification.send", "identity.state_change"}
        covered = all(e["proof"]["checkpoint_jws"] for e in page["entries"])
        return page if wanted <= set(kinds) and len(kinds["identity.state_change"]) == 2 and covered else None

    page = await eventually(whole_journey, timeout_s=60, interval_s=0.5)
    kinds = _kinds(page)
    logins = {e["client_id"]: e for e in kinds["login"]}
    assert logins[rp["client_id"]]["kind"] == "login" and logins[rp["client_id"]]["client_name"] == "Harbour Water Board"
    assert logins[rp["client_id"]]["details"]["acr"] == claims_of(tokens["id_token"])["acr"]
    assert logins[rp["client_id"]]["details"]["amr"] and other_rp["client_id"] in logins
    [released] = kinds["formfill.release"]
    assert (released["kind"], released["client_id"], released["details"]["fields"]) == ("release", rp["client_id"], ["name_en", "email"])
    [signed] = kinds["signature.create"]
    assert signed["kind"] == "signature" and signed["details"]["request_id"] == to_sign["request_id"]
    assert signed["details"]["document_name"] == "Water supply contract 2027.txt"  # opened for the citizen only
    [notified] = [e for e in kinds["notification.send"] if e["details"].get("notification_id") == notification_id]
    assert notified["kind"] == "notification" and notified["client_id"] == rp["client_id"]
    assert notified["record"] is None  # a chunk lists other citizens: never shown whole
    suspended, reinstated = kinds["identity.state_change"]
    assert suspended["kind"] == "operator" and (suspended["details"]["to"], suspended["details"]["reason"]) == (
        "suspended", "phone reported lost")
    assert reinstated["details"]["to"] == "active"
    seqs = [e["proof"]["seq"] for e in page["entries"]]
    assert seqs == sorted(seqs)

    # Each proof, checked as an outside verifier would.
    keys = jwk.JWKSet.from_json(requests.get(platform.gateway + "/v1/signing/jwks", timeout=10).text)
    for entry in page["entries"]:
        proof = entry["proof"]
        if entry["record"] is not None:
            assert entry["record"]["subject"] == account_id
            assert leaf_hash(entry["record"]).hex() == proof["leaf"]
        token_ = jws.JWS()
        token_.deserialize(proof["checkpoint_jws"])
        token_.verify(keys)  # raises if the signature does not hold
        claims = json.loads(token_.payload)
        assert claims["size"] == proof["checkpoint_size"] >= proof["seq"]
    async with mongo(platform.infra.mongo_uri) as client:
        log = await read_log(client[platform.database("signing")])
    biggest = max(e["proof"]["checkpoint_size"] for e in page["entries"])
    covered = [e for e in log if e["seq"] <= biggest]
    by_seq = {e["seq"]: e for e in covered}
    for entry in page["entries"]:
        assert by_seq[entry["proof"]["seq"]]["leaf"] == entry["proof"]["leaf"]
        assert by_seq[entry["proof"]["seq"]]["chain"] == entry["proof"]["chain"]
    # ...and the log up to the latest of those checkpoints ends in the head it signed (the ledger's own verifier).
    last = next(e["proof"]["checkpoint_jws"] for e in page["entries"] if e["proof"]["checkpoint_size"] == biggest)
    verified = verify_log(covered, [{"size": biggest, "jws": last}], public_keys(json.loads(keys.export(private_keys=False))))
    assert verified.ok, verified.as_json()

    # Paging: after the first entry's seq, the rest, the same.
    first, *rest = page["entries"]
    later = await app.activity(after=first["proof"]["seq"], limit=100)
    assert [e["proof"]["seq"] for e in later["entries"]][:len(rest)] == [e["proof"]["seq"] for e in rest]

    # The relying party: its own user's entries with it, no account or device id, nothing done elsewhere.
    bearer = {"Authorization": f"Bearer {client_token(metadata, rp, 'activity')}"}
    seen = requests.get(f"{platform.gateway}/v1/activity/subjects/{sub}", headers=bearer, timeout=10)
    assert seen.status_code == 200, seen.text
    entries = seen.json()["entries"]
    assert {e["client_id"] for e in entries} == {rp["client_id"]}
    assert {"login", "formfill.release", "signature.create", "notification.send"} <= {e["action"] for e in entries}
    assert account_id not in seen.text and "document_name" not in seen.text and "phone reported lost" not in seen.text
    assert all(e["record"] is None for e in entries)
    # Another relying party's token does not open this user (its sector has no such sub); nor does a bearer without
    # the scope, nor no token at all.
    elsewhere = requests.get(f"{platform.gateway}/v1/activity/subjects/{sub}", timeout=10,
                             headers={"Authorization": f"Bearer {client_token(metadata, other_rp, 'activity')}"})
    assert elsewhere.status_code == 404 and elsewhere.headers["Content-Type"].startswith("application/problem+json")
    no_scope = requests.get(f"{platform.gateway}/v1/activity/subjects/{sub}", timeout=10,
                            headers={"Authorization": f"Bearer {client_token(metadata, rp, 'sign')}"})
    assert no_scope.status_code == 403
    assert requests.get(f"{platform.gateway}/v1/activity/subjects/{sub}", timeout=10).status_code == 401
    bad = requests.get(f"{platform.gateway}/v1/activity/subjects/{sub}?limit=0", headers=bearer, timeout=10)
    assert bad.status_code == 422 and bad.headers["Content-Type"].startswith("application/problem+json")

    # Another citizen sees none of this.
    stranger = await enrolled_app(platform, kiosk, tmp_path, "stranger-phone")

    async def stranger_enrolled():
        page = await stranger.activity(limit=100)
        return page if page["entries"] else None

    theirs = await eventually(stranger_enrolled, timeout_s=30, interval_s=0.5)
    assert not {e["proof"]["seq"] for e in theirs["entries"]} & set(seqs)
    assert account_id not in json.dumps(theirs)
