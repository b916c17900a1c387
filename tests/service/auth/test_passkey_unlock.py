"""The web app is unlocked with its passkey: a device registered with `user_verification: passkey` gets a device token
only with a passkey assertion (user verification) whose challenge is the SHA-256 of the device-signed token assertion.
Whoever holds the citizen's unlocked browser cannot, without the fingerprint, get the token that would deny prompts,
revoke devices or consents, change preferences or start a contact change. A refusal spends nothing: the same token
assertion goes through once the fingerprint does. Devices with a PIN or nothing (the command-line app) are unchanged."""

from __future__ import annotations

import jwt
from prometheus_client import REGISTRY

from ...support.webauthn_authenticator import SoftAuthenticator, token_challenge_bytes
from .test_passkey_attacks import problem
from .test_passkeys import bound_web_phone, origin_of, refused

UV_REQUIRED, CLONED = "user-verification-required", "cloned-authenticator"


def refusals_counted(reason: str) -> float:
    return REGISTRY.get_sample_value("harbour_passkey_refusals_total", {"reason": reason}) or 0.0


async def token_request(auth_service, assertion: str, passkey: dict | None):
    return await auth_service.client.post("/v1/devices/token", json={"assertion": assertion} | (
        {"passkey": passkey} if passkey is not None else {}))


async def test_a_passkey_devices_token_needs_the_citizen_verified_over_that_token_assertion(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    authenticator = phone.authenticator
    before = {reason: refusals_counted(reason) for reason in (UV_REQUIRED, CLONED)}
    # The app asks without a passkey: refused, and the token assertion it made is kept to try again.
    made: list[str] = []
    phone.unlock = lambda assertion: made.append(assertion)  # (returns None: no passkey sent)
    detail = await refused(phone.device_token(), 403, UV_REQUIRED)
    assert "needs a passkey assertion" in detail
    [assertion] = made
    # Another token assertion of the same device (another jti), for the "another challenge" case.
    phone.unlock = lambda other: made.append(other)
    await refused(phone.device_token(), 403, UV_REQUIRED)
    other_assertion = made[-1]
    challenge = token_challenge_bytes(assertion)
    impostor = SoftAuthenticator("localhost", origin_of(auth_service))
    wrong_ways = {
        "the fingerprint failed (UV flag off)": authenticator.assertion(challenge, user_verified=False),
        "over another token assertion's hash": authenticator.assertion(token_challenge_bytes(other_assertion)),
        "over a prompt-like challenge": authenticator.assertion(b"\x00" * 32),
        "by another credential": impostor.assertion(challenge),
        "another credential's key under this id": authenticator.assertion(challenge, signing_key=impostor.key),
        "from another origin": authenticator.assertion(challenge, origin="http://127.0.0.1:8000"),
    }
    details = {}
    for wrong, passkey in wrong_ways.items():
        details[wrong] = (await problem(await token_request(auth_service, assertion, passkey), 403, UV_REQUIRED))["detail"]
    assert "not verified" in details["the fingerprint failed (UV flag off)"]
    assert "another credential" in details["by another credential"]
    device = await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id})
    assert device["passkey"]["sign_count"] == 0  # nothing stored by a refusal
    # A count that does not grow: cloned.
    authenticator.sign_count = 5
    good = authenticator.assertion(challenge)  # count 6
    assert (await token_request(auth_service, assertion, good)).status == 200
    assert (await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id}))["passkey"]["sign_count"] == 6
    phone.unlock = lambda fresh: made.append(fresh) or authenticator.assertion(token_challenge_bytes(fresh), sign_count=6)
    await refused(phone.device_token(), 403, CLONED)
    assert refusals_counted(UV_REQUIRED) - before[UV_REQUIRED] == 2 + len(wrong_ways)
    assert refusals_counted(CLONED) - before[CLONED] == 1
    # The assertion that unlocked is spent: again, even with a fresh passkey assertion over it, it is a replay.
    await problem(await token_request(auth_service, assertion, authenticator.assertion(challenge)), 401,
                  "replayed-assertion")


async def test_a_refused_unlocking_spends_nothing_and_the_token_says_the_passkey_unlocked_it(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    made: list[str] = []
    phone.unlock = lambda assertion: made.append(assertion) or phone.authenticator.assertion(
        token_challenge_bytes(assertion), user_verified=False)
    await refused(phone.device_token(), 403, UV_REQUIRED)
    # The same token assertion (its jti not spent) with the fingerprint now: a token.
    answer = await token_request(auth_service, made[0], phone.authenticator.assertion(token_challenge_bytes(made[0])))
    assert answer.status == 200, await answer.text()
    token = (await answer.json())["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["amr"] == ["swk", "user", "mfa"] and claims["device_id"] == phone.profile.device_id
    # It is a device token like any other: the app's usual calls work with it (DPoP by the device key).
    phone.unlock = None
    assert (await phone.devices())["current_device_id"] == phone.profile.device_id


async def test_devices_with_a_pin_or_nothing_get_tokens_as_before(auth_service, tmp_path):
    plain = await auth_service.citizen(tmp_path, "plain")
    enrolment = await auth_service.enrolled(tmp_path)
    sealed = auth_service.citizen_app(tmp_path, "sealed")
    sealed.pin = "246810"
    await sealed.activate(enrolment["account_id"], enrolment["activation_code"], "sealed", pin="246810")
    for app, protection in ((plain, "none"), (sealed, "pin")):
        device = await auth_service.context.db["devices"].find_one({"_id": app.profile.device_id})
        assert device["user_verification"] == protection and "passkey" not in device
        token = await app.device_token()
        assert jwt.decode(token, options={"verify_signature": False})["amr"] == ["swk"]
        assert (await app.devices())["current_device_id"] == app.profile.device_id
    # A passkey sent along by such a device changes nothing either (it has no credential to check it against).
    answer = await auth_service.client.post("/v1/devices/token", json={
        "assertion": await plain_assertion(plain), "passkey": SoftAuthenticator("localhost", "http://x").assertion(b"x")})
    assert answer.status == 200, await answer.text()


async def plain_assertion(app) -> str:
    """A device-signed token assertion of the command-line app, as it sends it (captured, not sent)."""
    made: list[str] = []

    async def capture(assertion: str) -> dict:
        made.append(assertion)
        raise _Captured

    app._token_request = capture
    try:
        await app.device_token()
    except _Captured:
        pass
    del app._token_request
    return made[0]


class _Captured(Exception):
    pass
