"""The citizen's own profile end to end (issue 18): phone / e-mail changed with a one-time code sent to the new address,
an address self-declared; provenance in every release (verified_claims); standing consents told of the change on
their topic and by signed callback, only once the code was entered, and no more once revoked.

Through the gateway, with the citizen app as the phone; the code is read where the dev stack's SMS sink and SMTP
server put it, as the new phone or mailbox would.
"""

from __future__ import annotations

import base64
import json
import re
import secrets

import pytest
import requests
from aiohttp import web
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from clients.citizen_app import AppError
from libs.devstack import processes
from libs.events import CloudEvent, agency_topic
from libs.events.topics import AUDIT

from ..support.broker import all_messages, raw_bytes
from ..support.calls import device_auth, refusal, refused_with
from ..support.citizens import enrolled_app
from ..support.formfill import FIELDS, created, prompt_for, result_of, verified_claims, wait_for_status
from ..support.oidc import logged_in_token, register
from ..support.people import identity
from ..support.polling import eventually
from .test_notify_channels import received_mail, received_sms

pytestmark = pytest.mark.e2e
SCOPE = "openid formfill"
CODE = re.compile(r"\b(\d{6})\b")


class UpdateReceiver:
    """The relying party's callback URL: a real HTTP server keeping what formfill POSTs."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []  # (content type, body)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.content_type, await request.text()))
        return web.Response(status=204)

    @property
    def updates(self) -> list[tuple[str, str]]:
        """The consent updates: the same URL also gets the result callbacks of the client's requests (typ
        result-callback+jwt, libs/result_callbacks.py), left out here."""
        return [(kind, body) for kind, body in self.received if kind != "application/jwt" or
                json.loads(base64.urlsafe_b64decode(body.split(".")[0] + "==")).get("typ") != "result-callback+jwt"]

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/updates", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = processes.free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/updates"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def opened(platform, token: str, key: jwcrypto_jwk.JWK) -> dict:
    """A JWE to the relying party's key around formfill's JWS: decrypted, verified, its claims."""
    envelope = jwcrypto_jwe.JWE()
    envelope.deserialize(token, key=key)
    return verified_claims(platform, envelope.payload.decode())


async def agency_events(platform, client_id: str) -> list[CloudEvent]:
    return [CloudEvent.from_json(m.value) for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(client_id)])]


async def formfill_applied(platform, change_id: str) -> None:
    """formfill's audit record of a change: written in the transaction that updated the vault and told the consents."""
    async def seen():
        for message in await all_messages(platform.infra.kafka_bootstrap, [AUDIT.name]):
            event = CloudEvent.from_json(message.value)
            if event.source == "/formfill" and event.data.get("action") == "vault.update" and event.data.get("change_id") == change_id:
                return event
        return None

    return await eventually(seen, timeout_s=30, interval_s=0.3)


async def sms_code(platform, change_id: str, number: str) -> str:
    sms = await eventually(lambda: received_sms(platform).get(f"code-{change_id}"), timeout_s=30, interval_s=0.2)
    assert sms["to"] == number and sms["from"] == "Harbour ID"
    return CODE.search(sms["text"]).group(1)


def release_of(platform, token, request_id, key) -> dict:
    result = result_of(platform, token, request_id)
    assert result.status_code == 200, result.text
    return opened(platform, result.text, key)


async def one_time_release(platform, app, token, key, fields) -> dict:
    request = await created(platform, token, [(name, True) for name in fields])
    prompt = await prompt_for(app, request["request_id"])
    await app.approve(prompt["approval_id"])
    await wait_for_status(platform, token, request["request_id"], "approved")
    return release_of(platform, token, request["request_id"], key)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_new_phone_reaches_a_standing_consent_only_after_its_code_and_provenance_says_how(platform, kiosk, metadata, tmp_path):
    person = identity()
    app = await enrolled_app(platform, kiosk, tmp_path, "profile-phone", person=person)
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    async with UpdateReceiver() as receiver:
        rp = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS, agency_events=True,
                      encryption_jwk=json.loads(key.export_public()), callback_urls=[receiver.url])
        token = await logged_in_token(metadata, rp, app, SCOPE)

        # A standing consent for the phone and the address; the kiosk proofed the card's fields in person, the phone
        # and address typed there are the citizen's word (self-declared) until a one-time code proves the phone.
        standing = await created(platform, token, [("name_en", True), ("phone", True), ("address", True)], standing=True)
        prompt = await prompt_for(app, standing["request_id"])
        await app.approve(prompt["approval_id"])
        done = await wait_for_status(platform, token, standing["request_id"], "approved")
        first = release_of(platform, token, standing["request_id"], key)
        assert first["fields"] == {"name_en": person["name_en"], "phone": person["phone"], "address": person["address"]}
        assert {name: p["method"] for name, p in first["provenance"].items()} == {
            "name_en": "in_person", "phone": "self_declared", "address": "self_declared"}
        [in_person] = first["verified_claims"]
        assert in_person["claims"] == {"name_en": person["name_en"]}
        assert in_person["verification"]["trust_framework"] == "harbour_id" and in_person["verification"]["time"]
        assert in_person["verification"]["evidence"][0]["type"] == "document" and in_person["verification"]["evidence"][0]["method"] == "pipp"

        # notify holds the old number (SMS on), which the verified one replaces later.
        await app.set_preferences(channels=["inbox", "sms"], phone=person["phone"])

        new_phone = "+8529" + "".join(secrets.choice("0123456789") for _ in range(7))
        asked = await app.change_profile("phone", new_phone)
        assert asked["status"] == "code-sent" and asked["channel"] == "sms" and asked["expires_at"]
        change_id = asked["change_id"]
        code = await sms_code(platform, change_id, new_phone)  # the code went to the NEW number

        # A wrong code changes nothing and says how many tries are left.
        with pytest.raises(AppError) as refused:
            await app.confirm_profile_change(change_id, wrong(code))
        assert refused_with(refused.value, 400, "invalid-code")["attempts_left"] == 4

        # An address change is self-declared and applied at once. formfill handles the identity topic in order per
        # account: once it applied this one, it had long seen the phone's request — and told the consent nothing.
        moved = await app.change_profile("address", "Flat 3, 8 Harbour Road, Wan Chai")
        assert moved["status"] == "accepted"
        await formfill_applied(platform, moved["change_id"])
        updates = [e for e in await agency_events(platform, rp["client_id"]) if e.type == "consent.fields_updated"]
        assert [e.data["fields"] for e in updates] == [["address"]]
        assert all(new_phone not in body for _, body in receiver.received)
        assert all("phone" not in opened(platform, body, key)["fields"] for _, body in receiver.updates)

        # The right code: the change holds; the standing consent hears of it on its topic and by callback.
        confirmed = await app.confirm_profile_change(change_id, code)
        assert confirmed["status"] == "verified" and confirmed["verified_at"]
        await formfill_applied(platform, change_id)

        async def phone_update():
            found = [e for e in await agency_events(platform, rp["client_id"])
                     if e.type == "consent.fields_updated" and e.data["fields"] == ["phone"]]
            return found[0] if found else None

        event = await eventually(phone_update, timeout_s=30)
        assert event.subject == done["receipt_id"] and event.data["receipt_id"] == done["receipt_id"]
        assert new_phone not in json.dumps(event.data)  # on Kafka only sealed to the relying party
        claims = opened(platform, event.data["update"], key)
        assert claims["fields"] == {"phone": new_phone} and claims["aud"] == rp["client_id"]
        assert claims["receipt_id"] == done["receipt_id"] and claims["sub"]
        assert claims["provenance"]["phone"]["method"] == "one_time_code" and claims["provenance"]["phone"]["channel"] == "sms"
        assert claims["provenance"]["phone"]["time"] == confirmed["verified_at"]
        [otp] = claims["verified_claims"]
        assert otp["claims"] == {"phone": new_phone} and otp["verification"]["evidence"][0]["type"] == "one_time_code"

        async def phone_by_callback():
            bodies = [(kind, opened(platform, body, key)) for kind, body in receiver.updates]
            return next((b for b in bodies if b[1]["fields"].get("phone") == new_phone), None)

        kind, called = await eventually(phone_by_callback, timeout_s=30)
        assert kind == "application/jose" and called["jti"] == claims["jti"]

        # The code is used up; notify's number is now the verified one.
        with pytest.raises(AppError) as again:
            await app.confirm_profile_change(change_id, code)
        refused_with(again.value, 409, "change-done")
        assert (await app.preferences())["phone"] == new_phone

        # A fresh release tells each field's provenance: in person, by one-time code, self-declared.
        fresh = await one_time_release(platform, app, token, key, ["name_en", "phone", "address"])
        assert fresh["fields"] == {"name_en": person["name_en"], "phone": new_phone, "address": "Flat 3, 8 Harbour Road, Wan Chai"}
        assert {name: p["method"] for name, p in fresh["provenance"].items()} == {
            "name_en": "in_person", "phone": "one_time_code", "address": "self_declared"}
        assert fresh["provenance"]["phone"]["time"] == confirmed["verified_at"]
        grouped = {json.dumps(sorted(v["claims"])): v["verification"] for v in fresh["verified_claims"]}
        assert set(grouped) == {'["name_en"]', '["phone"]'}  # the self-declared address is a plain claim only

        # Revoked in the app: the relying party hears of no later change.
        revoked = requests.delete(f"{platform.gateway}/v1/consents/{done['receipt_id']}", headers=device_auth(
            app, await app.device_token(), "DELETE", f"{platform.gateway}/v1/consents/{done['receipt_id']}"),
                                  timeout=10)
        assert revoked.status_code == 204
        after = await app.change_profile("address", "Room 12, 1 Queen's Road, Central")
        await formfill_applied(platform, after["change_id"])
        updates = [e for e in await agency_events(platform, rp["client_id"]) if e.type == "consent.fields_updated"]
        assert [e.data["fields"] for e in updates] == [["address"], ["phone"]]
        assert all("Queen's Road" not in json.dumps(opened(platform, body, key)) for _, body in receiver.updates)

    # Nowhere in the clear: no log line of any service, no record on any topic holds the new number or address.
    logs = {path.name: path.read_text(errors="replace") for path in platform.stack.log_dir.glob("*.log")}
    assert {"auth.log", "formfill.log", "notify.log", "notify-dispatcher.log"} <= set(logs), sorted(logs)
    logs = "".join(logs.values())
    assert new_phone not in logs and "Queen's Road" not in logs and "8 Harbour Road" not in logs
    records = await all_messages(platform.infra.kafka_bootstrap)
    assert not [m.topic for m in records if new_phone.encode() in raw_bytes(m) or b"Harbour Road, Wan Chai" in raw_bytes(m)]


async def test_an_email_code_locks_after_five_wrong_tries_and_bad_input_changes_nothing(platform, kiosk, metadata, tmp_path):
    person = identity()
    app = await enrolled_app(platform, kiosk, tmp_path, "profile-mail", person=person)
    new_email = f"chan.{secrets.token_hex(4)}@example.hk"
    asked = await app.change_profile("email", new_email)
    assert asked["channel"] == "email"
    mail = await eventually(lambda: received_mail(platform).get(f"code-{asked['change_id']}"), timeout_s=30, interval_s=0.2)
    assert mail["To"] == new_email
    code = CODE.search(mail.get_content()).group(1)

    for left in (4, 3, 2, 1):
        with pytest.raises(AppError) as refused:
            await app.confirm_profile_change(asked["change_id"], wrong(code))
        assert refused_with(refused.value, 400, "invalid-code")["attempts_left"] == left
    with pytest.raises(AppError) as locked:
        await app.confirm_profile_change(asked["change_id"], wrong(code))
    refused_with(locked.value, 403, "code-locked")
    with pytest.raises(AppError) as still:  # the right code no longer helps
        await app.confirm_profile_change(asked["change_id"], code)
    refused_with(still.value, 403, "code-locked")

    # Bad input: problem+json, nothing stored or sent.
    token = await app.device_token()

    def device(method: str, path: str) -> dict[str, str]:
        return device_auth(app, token, method, platform.gateway + path)
    for body in ({"field": "phone", "value": "12345"}, {"field": "email", "value": "not-an-address"},
                 {"field": "name_en", "value": "Someone Else"}, {"field": "address", "value": "x"}, {"field": "phone"}):
        refusal(requests.post(platform.gateway + "/v1/profile/changes", json=body, headers=device("POST", "/v1/profile/changes"), timeout=10), 422, "validation-failed")
    refusal(requests.post(platform.gateway + "/v1/profile/changes/chg-nope/confirmation", json={"code": "123456"},
                          headers=device("POST", "/v1/profile/changes/chg-nope/confirmation"),
                          timeout=10), 404, "no-such-change")
    refusal(requests.post(platform.gateway + "/v1/profile/changes", json={"field": "address", "value": "1 Main Street"}, timeout=10),
            401, "unauthorized")

    # At most 5 changes an hour (addresses too: each one is told to relying parties); an address has no code.
    moved = [await app.change_profile("address", f"Flat {n}, 8 Harbour Road") for n in range(4)]
    with pytest.raises(AppError) as limited:
        await app.change_profile("address", "Flat 9, 8 Harbour Road")
    refused_with(limited.value, 429, "too-many-changes")
    with pytest.raises(AppError) as no_code:
        await app.confirm_profile_change(moved[0]["change_id"], "123456")
    refused_with(no_code.value, 404, "no-such-change")

    # The vault still holds the e-mail given at the enrolment (the citizen's word: no code proved it).
    rp = register(platform, client_name="Harbour Library", scope="openid formfill", formfill_fields=FIELDS)
    token = await logged_in_token(metadata, rp, app, SCOPE)
    request = await created(platform, token, [("email", True)])
    prompt = await prompt_for(app, request["request_id"])
    await app.approve(prompt["approval_id"])
    await wait_for_status(platform, token, request["request_id"], "approved")
    claims = verified_claims(platform, result_of(platform, token, request["request_id"]).text)
    assert claims["fields"] == {"email": person["email"]} and claims["provenance"]["email"]["method"] == "self_declared"
