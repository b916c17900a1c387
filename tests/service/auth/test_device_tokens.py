"""Device tokens: each needs a fresh assertion signed by the device key."""

from __future__ import annotations

import time

from libs.tokens import generate_private_key, sign


async def test_a_device_token_needs_an_assertion_signed_by_the_device_key(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    now = int(time.time())
    forged = sign({"aud": f"{auth_service.url}/v1/devices/token", "iat": now, "exp": now + 60, "jti": "x" * 16},
                  generate_private_key(), headers={"kid": phone.profile.device_id})
    refused = await auth_service.client.post("/v1/devices/token", json={"assertion": forged})
    assert refused.status == 401 and (await refused.json())["type"].endswith("/invalid-assertion")


async def test_an_assertion_is_used_once(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    now = int(time.time())
    assertion = sign({"aud": f"{auth_service.url}/v1/devices/token", "iat": now, "exp": now + 60, "jti": "y" * 16},
                     phone.profile.device_key(), headers={"kid": phone.profile.device_id})
    first = await auth_service.client.post("/v1/devices/token", json={"assertion": assertion})
    assert first.status == 200 and (await first.json())["scope"] == "device"
    again = await auth_service.client.post("/v1/devices/token", json={"assertion": assertion})
    assert again.status == 401 and (await again.json())["type"].endswith("/replayed-assertion")
