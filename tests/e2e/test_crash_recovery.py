"""A service with consumers killed with SIGKILL comes back by itself and catches up on what it missed.

formfill consumes the citizen's decisions from auth. It is killed while a request waits on the phone; the
citizen approves while it is dead; restarted the way `make up` restarts it, it is ready again (it used to
wait forever for the broker to evict its dead consumer-group member) and completes the request.
"""

from __future__ import annotations

import time

import pytest
import requests

from libs.devstack import processes

from ..support.citizens import enrolled_app
from ..support.formfill import created, prompt_for, wait_for_status
from ..support.oidc import logged_in_token, register

pytestmark = pytest.mark.e2e

FIELDS = ["name_en", "email"]


async def test_formfill_killed_mid_journey_restarts_ready_and_completes_what_the_citizen_approved(platform, kiosk, metadata, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "crash-phone")
    rp = register(platform, client_name="Harbour Crash Test", scope="openid formfill", formfill_fields=FIELDS)
    token = await logged_in_token(metadata, rp, app, "openid formfill")
    request = await created(platform, token, [(field, True) for field in FIELDS])
    prompt = await prompt_for(app, request["request_id"])

    killed = platform.stack.crash("formfill")
    assert not processes.is_alive(killed)
    await app.approve(prompt["approval_id"], selection=[])  # auth records the decision; formfill is dead
    refused = requests.get(f"{platform.gateway}/v1/formfill/requests/{request['request_id']}",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert refused.status_code in (502, 503)

    restarted_at = time.monotonic()
    platform.stack.up_services(timeout_s=60)  # what `make up` does: start what is down, wait for /readyz
    ready_after_s = time.monotonic() - restarted_at
    print(f"formfill ready {ready_after_s:.1f} s after its restart")
    assert platform.stack.status()["formfill"] not in (None, killed)

    done = await wait_for_status(platform, token, request["request_id"], "approved")
    assert done["released_fields"] == FIELDS
