"""The reference app's device key sealed under a PIN (clients/citizen_app/profile.py) and what auth makes of the
PIN claim (services/auth/devices/protection.py): pure logic, no platform."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.profile import PinRequired, ProfileError, WrongPin
from libs.approvals import sign_decision, verify_decision
from libs.tokens import generate_private_key
from services.auth.devices.binding import ActivationRequest
from services.auth.devices.protection import authentication_methods

PIN = "493817"


def secret_bytes(key) -> list[bytes]:
    """The private key's secret scalar, and the key's DER and PEM in the clear: none may be in a sealed file."""
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return [scalar, der, Profile.pem_of(key).encode()]


def test_a_sealed_key_is_not_in_the_file_and_opens_only_with_its_pin(tmp_path):
    key = generate_private_key()
    profile = Profile(gateway_url="http://gw", device_id="dev-1")
    profile.set_device_key(key, PIN)
    path = tmp_path / "me.json"
    profile.save(path)
    raw = path.read_bytes()
    text = raw.decode()
    for secret in secret_bytes(key):
        assert secret not in raw
        # nor base64-wrapped in any of the usual spellings
        for encoded in (base64.b64encode(secret), base64.urlsafe_b64encode(secret).rstrip(b"=")):
            assert encoded not in raw
        assert secret.hex().encode() not in raw
    assert json.loads(text)["device_key_pem"] is None and "PRIVATE KEY" not in text
    assert os.stat(path).st_mode & 0o777 == 0o600

    loaded = Profile.load(path)
    assert loaded.pin_protected
    opened = loaded.device_key(PIN)
    assert opened.private_numbers() == key.private_numbers()
    with pytest.raises(WrongPin, match="wrong PIN"):
        loaded.device_key("493818")
    with pytest.raises(PinRequired):
        loaded.device_key()


def test_each_sealing_has_its_own_salt_and_a_tampered_box_opens_nothing(tmp_path):
    key = generate_private_key()
    one, two = Profile(gateway_url="g"), Profile(gateway_url="g")
    one.set_device_key(key, PIN)
    two.set_device_key(key, PIN)
    assert one.device_key_sealed["salt"] != two.device_key_sealed["salt"]
    assert one.device_key_sealed["ciphertext"] != two.device_key_sealed["ciphertext"]
    assert one.device_key_sealed["n"] >= 2**15  # memory-hard: 32 MiB a try
    box = one.device_key_sealed["ciphertext"]
    one.device_key_sealed["ciphertext"] = ("A" if box[0] != "A" else "B") + box[1:]
    with pytest.raises(WrongPin):
        one.device_key(PIN)


def test_a_short_pin_is_refused():
    with pytest.raises(ProfileError, match="at least 6"):
        Profile(gateway_url="g").set_device_key(generate_private_key(), "1234")


def test_a_plain_profile_keeps_working_and_set_pin_seals_it(tmp_path):
    key = generate_private_key()
    path = tmp_path / "old.json"
    # A profile as written before PINs: the key in the clear, no sealed field at all.
    path.write_text(json.dumps({"gateway_url": "g", "account_id": "acct-1", "device_id": "dev-1", "device_name": "phone",
                                "device_key_pem": Profile.pem_of(key), "pairing_id": None}))
    path.chmod(0o600)
    old = Profile.load(path)
    assert not old.pin_protected and old.device_key().private_numbers() == key.private_numbers()
    old.set_pin(PIN)
    old.save(path)
    assert all(secret not in path.read_bytes() for secret in secret_bytes(key))
    assert Profile.load(path).device_key(PIN).private_numbers() == key.private_numbers()


def test_the_app_claims_the_pin_only_when_it_asked_for_it():
    key = generate_private_key()
    asked = []

    def ask() -> str:
        asked.append(1)
        return PIN

    sealed = Profile(gateway_url="g", device_id="dev-1")
    sealed.set_device_key(key, PIN)
    app = CitizenApp(sealed, pin=ask)
    opened, uv = app._unlock()
    assert uv == "pin" and asked == [1] and opened.private_numbers() == key.private_numbers()
    app._unlock()
    assert asked == [1, 1]  # asked again for every signature

    plain = Profile(gateway_url="g", device_id="dev-1")
    plain.set_device_key(key, None)
    assert CitizenApp(plain, pin=ask)._unlock()[1] == "none" and asked == [1, 1]

    with pytest.raises(PinRequired):
        CitizenApp(sealed)._unlock()
    with pytest.raises(WrongPin):
        CitizenApp(sealed, pin="000000")._unlock()


def test_the_decision_carries_the_pin_claim_and_verifies():
    key = generate_private_key()
    token = sign_decision(key, device_id="dev-1", approval_id="appr-1", digest="d" * 43, decision="approve", uv="pin")
    claims = verify_decision(token, key.public_key(), approval_id="appr-1", digest="d" * 43)
    assert claims.uv == "pin"
    plain = sign_decision(key, device_id="dev-1", approval_id="appr-1", digest="d" * 43, decision="approve")
    assert verify_decision(plain, key.public_key(), approval_id="appr-1", digest="d" * 43).uv is None


@pytest.mark.parametrize(("storage", "registered", "claimed", "amr"), [
    ("software", "pin", "pin", ["swk", "pin"]),
    ("software", "pin", "none", ["swk"]),
    ("software", "pin", None, ["swk"]),
    ("software", "none", "pin", ["swk"]),  # a PIN claimed by a device registered without one: not believed
    ("software", "none", None, ["swk"]),
])
def test_amr_from_the_registration_and_the_claim(storage, registered, claimed, amr):
    assert authentication_methods(storage, registered, claimed) == amr
    assert "hwk" not in authentication_methods(storage, registered, claimed)


def test_a_hardware_key_claim_is_refused_at_activation():
    base = {"account_id": "acct-1", "activation_code": "ABCDE-FGHJK", "public_key": {}, "proof": "x" * 20}
    assert ActivationRequest.model_validate(base).key_protection.user_verification == "none"  # older apps: no PIN
    with pytest.raises(ValidationError):
        ActivationRequest.model_validate({**base, "key_protection": {"storage": "hardware", "user_verification": "pin"}})
    with pytest.raises(ValidationError):
        ActivationRequest.model_validate({**base, "key_protection": {"storage": "software", "user_verification": "face"}})


def test_the_command_line_reads_the_pin_and_refuses_a_wrong_one(tmp_path):
    key = generate_private_key()
    profile = Profile(gateway_url="http://127.0.0.1:9", account_id="acct-1", device_id="dev-1")
    profile.set_device_key(key, None)
    path = tmp_path / "me.json"
    profile.save(path)
    env = {**os.environ, "HARBOUR_APP_NEW_PIN": PIN}
    env.pop("HARBOUR_APP_PIN", None)

    def cli(*args, **extra):
        return subprocess.run([sys.executable, "-m", "clients.citizen_app", "--profile", str(path), *args],
                              env={**env, **extra}, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    sealed = cli("set-pin")
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads(sealed.stdout)["pin_protected"] is True
    assert all(secret not in path.read_bytes() for secret in secret_bytes(key))
    # A command that signs (a device token for `pending`) with a wrong PIN: the key stays locked, nothing is sent.
    wrong = cli("pending", HARBOUR_APP_PIN="000000")
    assert wrong.returncode == 1 and "wrong PIN" in json.loads(wrong.stderr)["error"]
    none = cli("pending")
    assert none.returncode == 1 and "HARBOUR_APP_PIN" in json.loads(none.stderr)["error"]
