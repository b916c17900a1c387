"""A login on the real stack ends up in signing's audit ledger, and the latest checkpoint through the gateway covers it.

The citizen's login is audited by auth (through its outbox, on `audit.events`); signing's ledger appends it to the
hash chain and signs a checkpoint within `HARBOUR_SIGNING_LEDGER_CHECKPOINT_EVERY_S` (10 s). An outside verifier
takes the checkpoint from `GET /v1/audit/checkpoints/latest` and the key from `/v1/signing/jwks`, both through the
gateway, and checks that the log up to the checkpoint's size, the login's record included, ends in the head it signed.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests

from libs.events import CloudEvent
from libs.events.topics import AUDIT_CHECKPOINTS
from services.signing.ledger.chain import public_keys, verify_checkpoint, verify_log
from services.signing.ledger.store import entries_for, read_log

from ..support.broker import all_messages
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.oidc import login, register
from ..support.polling import eventually

pytestmark = pytest.mark.e2e


async def test_a_login_is_appended_to_the_ledger_and_covered_by_the_latest_checkpoint(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    account_id = citizen.profile.account_id
    rp = register(platform, client_name="Ledger Portal")
    await login(platform, metadata, rp, citizen)

    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("signing")]

        async def login_entry():
            entries = await entries_for(db, account_id)
            return next((e for e in entries if e["record"]["data"]["action"] == "login"
                         and e["record"]["data"].get("client_id") == rp["client_id"]), None)

        entry = await eventually(login_entry, timeout_s=30)
        assert entry["record"]["source"] == "/auth" and entry["record"]["subject"] == account_id
        # The citizen's enrolment and activation came before, in the same ledger.
        actions = [e["record"]["data"]["action"] for e in await entries_for(db, account_id)]
        assert "identity.enrol" in actions and actions.index("identity.enrol") < actions.index("login")

        def covering_checkpoint():
            answer = requests.get(platform.gateway + "/v1/audit/checkpoints/latest", timeout=10)
            assert answer.status_code in (200, 404), answer.text
            return answer.json() if answer.status_code == 200 and answer.json()["size"] >= entry["seq"] else None

        checkpoint = await eventually(covering_checkpoint, timeout_s=40, interval_s=0.5)
        jwks = requests.get(platform.gateway + "/v1/signing/jwks", timeout=10)
        assert jwks.status_code == 200
        keys = public_keys(jwks.json())
        claims = verify_checkpoint(checkpoint["jws"], keys, issuer=metadata["issuer"])
        assert (claims["size"], claims["head"]) == (checkpoint["size"], checkpoint["head"])
        assert datetime.fromisoformat(claims["time"]) == datetime.fromisoformat(checkpoint["time"])  # what was signed
        assert checkpoint["jwks_uri"] == metadata["issuer"] + "/v1/signing/jwks"

        # The log up to the checkpoint, the login's record among it, ends in the head the checkpoint signed.
        log = await read_log(db)
    covered = log[:checkpoint["size"]]
    assert covered[entry["seq"] - 1] == entry
    report = verify_log(covered, [checkpoint], keys, issuer=metadata["issuer"])
    assert report.ok and report.checkpoints == 1, report.as_json()
    # The same checkpoint went out on audit.checkpoints (through signing's outbox), for anyone to keep a copy.

    async def published():
        messages = await all_messages(platform.infra.kafka_bootstrap, [AUDIT_CHECKPOINTS.name])
        events = [CloudEvent.from_json(m.value) for m in messages]
        return next((e for e in events if e.data["jws"] == checkpoint["jws"]), None)

    event = await eventually(published, timeout_s=20, interval_s=0.5)
    assert (event.type, event.source, event.data["size"], event.data["head"]) == (
        "audit.checkpoint", "/signing", checkpoint["size"], checkpoint["head"])
    # Public and without personal data: ids, sizes, hashes.
    assert set(checkpoint) == {"size", "head", "time", "kid", "jws", "jwks_uri"}
    assert account_id not in json.dumps(checkpoint)
