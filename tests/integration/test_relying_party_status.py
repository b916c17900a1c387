"""The reference relying-party site's status checks when the service is away (clients/relying_party/platform.py).

A status check is held by formfill or signing for up to ANSWER_WAIT_S (`?wait=`), so a service restarting nearly
always finds one in flight, and the gateway answers 502/503/504 for it. That says nothing of the request, which the
service keeps: the site reads it as still pending and its waiting page asks again — it does not tell the citizen
their request failed. A stand-in gateway on loopback answers as the real one does.
"""

from __future__ import annotations

from types import SimpleNamespace

import httpx2
import pytest
from aiohttp import web

from clients.relying_party.platform import ANSWER_WAIT_S, PlatformApi, PlatformError
from libs.devstack.processes import free_port

PROBLEM = "application/problem+json"


class StandInGateway:
    """Answers each status check with the next of `answers[path]` (status, body), recording the query it got."""

    def __init__(self, answers: dict[str, list[tuple[int, dict]]]) -> None:
        self.answers = answers
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        status, body = self.answers[request.path].pop(0)
        headers = {"Retry-After": "1"} if status == 503 else {}
        return web.json_response(body, status=status, headers=headers, content_type=PROBLEM if status >= 400 else "application/json")


@pytest.fixture
async def gateway():
    stand_in = StandInGateway({})
    app = web.Application()
    app.router.add_get("/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stand_in.url = f"http://127.0.0.1:{port}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()


def _away(status: int) -> tuple[int, dict]:
    return status, {"type": "https://harbour.example/problems/upstream-unavailable", "title": "Service unavailable", "status": status}


async def test_a_status_check_the_service_was_away_for_reads_as_pending_and_the_next_one_answers(gateway):
    gateway.answers = {
        "/v1/formfill/requests/r-1": [_away(503), _away(502), (200, {"status": "approved"})],
        "/v1/signing/requests/s-1": [_away(504), (200, {"status": "signed"})],
        "/v1/formfill/requests/gone": [(404, {"type": "https://harbour.example/problems/request-not-found", "status": 404,
                                               "title": "Not found", "detail": "no such request for this client"})],
    }
    async with httpx2.AsyncClient(timeout=15) as http:
        platform = PlatformApi(SimpleNamespace(issuer=gateway.url), http)
        assert await platform.form_status("token", "r-1") == "pending"  # 503: restarting
        assert await platform.form_status("token", "r-1") == "pending"  # 502: the connection broke under the check
        assert await platform.form_status("token", "r-1") == "approved"
        assert await platform.signing_status("token", "s-1") == "pending"  # 504
        assert await platform.signing_status("token", "s-1") == "signed"
        # Anything else is still the request's own answer: an unknown request fails the page.
        with pytest.raises(PlatformError) as failed:
            await platform.form_status("token", "gone")
        assert failed.value.status == 404
    assert all(query == {"wait": str(ANSWER_WAIT_S)} for query in gateway.queries)
