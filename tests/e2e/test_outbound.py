"""SSRF through the gateway: URLs the platform would call or fetch are refused when they point inside.

The shared platform allows loopback (HARBOUR_OUTBOUND_ALLOW_LOOPBACK=1, its
test receivers are on 127.0.0.1) but never private, link-local, unique-local,
mapped or unspecified addresses; loopback refusal with the setting off is in
tests/integration/test_callback_ssrf.py.
"""

from __future__ import annotations

import pytest
import requests

from ..support.calls import refusal
from ..support.notify import Agency, CallbackReceiver

pytestmark = pytest.mark.e2e

INSIDE = ["http://169.254.169.254/", "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/", "https://192.168.1.1/",
          "https://172.16.0.1/", "https://[fd00::1]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:a9fe:a9fe]/",
          "https://0.0.0.0/", "https://[::]/", "https://2130706433/", "https://metadata.internal/", "http://agency.example/status"]


def register_client(platform, **metadata) -> requests.Response:
    admin = platform.env()["HARBOUR_ADMIN_TOKEN"]
    body = {"client_name": "Outbound Agency", "kind": "agency", "scope": "notify", **metadata}
    return requests.post(platform.gateway + "/v1/clients", json=body, headers={"Authorization": f"Bearer {admin}"}, timeout=10)


def test_client_registration_refuses_callback_urls_and_jwks_uri_that_point_inside(platform):
    accepted = register_client(platform, callback_urls=["https://agency.example/status"])
    assert accepted.status_code == 201, accepted.text  # the same request with a public URL is fine
    for url in INSIDE:
        refused = refusal(register_client(platform, callback_urls=[url]), 422, "validation-failed")
        assert [e["field"] for e in refused["errors"]] == ["callback_urls"], (url, refused)
        refused = refusal(register_client(platform, token_endpoint_auth_method="private_key_jwt", jwks_uri=url), 422, "validation-failed")
        assert [e["field"] for e in refused["errors"]] == ["jwks_uri"], (url, refused)


async def test_notify_refuses_callback_urls_that_point_inside_and_keeps_the_registered_one(platform, metadata):
    agency = Agency(platform, metadata, "Outbound Test Department")
    async with CallbackReceiver(platform, agency.client_id) as receiver:
        assert agency.call("PUT", "/v1/notifications/callback", {"url": receiver.url}).status_code == 200
        # What the URL itself shows (scheme, an address inside, a special-use name) fails the request's validation.
        for url in [*INSIDE, "https://no-such-host.invalid/status"]:
            refused = refusal(agency.call("PUT", "/v1/notifications/callback", {"url": url}), 422, "validation-failed")
            assert [e["field"] for e in refused["errors"]] == ["url"], (url, refused)
        # agency.example does not resolve here (no outside DNS): a name that does not resolve is refused when looked up.
        refusal(agency.call("PUT", "/v1/notifications/callback", {"url": "https://agency.example/status"}), 422, "callback-url-refused")
        assert agency.call("GET", "/v1/notifications/callback").json()["url"] == receiver.url  # nothing changed
