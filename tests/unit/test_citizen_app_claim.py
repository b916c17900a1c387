"""The reference app claims a request again while the service has not heard of the citizen yet (409 citizen-unknown:
auth's events about a new or just activated identity still on their way), after the answer's Retry-After, and only
then: any other refusal stops it at once. A stand-in for the claim endpoint over real HTTP; the platform's side of
the race is tests/service/signing/test_claim_by_link.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError
from libs.tokens import generate_private_key

CLAIM = "/v1/signing/requests/r-1/claim"


def problem(status: int, slug: str, **headers: str) -> web.Response:
    return web.json_response({"type": f"https://id.example/problems/{slug}", "title": slug, "detail": slug}, status=status,
                             headers=headers, content_type="application/problem+json")


async def app_against(answers: list[Callable[[], web.Response]]) -> tuple[CitizenApp, list[float], TestServer]:
    """An app with a device token in hand, and a claim endpoint answering with `answers` in turn (a response is sent
    once: each is made when its turn comes); the times the claims came."""
    seen: list[float] = []

    async def claim(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "DPoP device-token" and "DPoP" in request.headers
        seen.append(time.monotonic())
        return answers[len(seen) - 1]()

    server_app = web.Application()
    server_app.router.add_post(CLAIM, claim)
    server = TestServer(server_app)
    await server.start_server()
    app = CitizenApp(Profile(gateway_url=str(server.make_url("")).rstrip("/"), device_id="dev-1"))
    app._token, app._token_for, app._token_key = ("device-token", time.monotonic() + 600), "dev-1", generate_private_key()
    return app, seen, server


async def test_a_citizen_the_service_has_not_heard_of_yet_is_claimed_again_after_retry_after():
    unknown = partial(problem, 409, "citizen-unknown", **{"Retry-After": "0.2"})
    claimed = partial(web.json_response, {"request_id": "r-1", "approval_id": "sign-r-1"}, status=201)
    app, seen, server = await app_against([unknown, unknown, claimed])
    try:
        assert await app._claim(CLAIM, timeout_s=5) == {"request_id": "r-1", "approval_id": "sign-r-1"}
    finally:
        await server.close()
    assert len(seen) == 3
    assert all(later - earlier >= 0.19 for earlier, later in zip(seen, seen[1:]))  # the answer's Retry-After honoured


@pytest.mark.parametrize(("status", "slug"), [(409, "link-unusable"), (403, "identity-not-active"), (403, "citizen-unknown")])
async def test_any_other_refusal_is_not_tried_again(status, slug):
    app, seen, server = await app_against([partial(problem, status, slug, **{"Retry-After": "0"})] * 3)
    try:
        with pytest.raises(AppError) as refused:
            await app._claim(CLAIM, timeout_s=5)
    finally:
        await server.close()
    assert (refused.value.status, refused.value.slug, len(seen)) == (status, slug, 1)


async def test_the_app_gives_up_when_the_next_try_would_pass_its_timeout():
    app, seen, server = await app_against([partial(problem, 409, "citizen-unknown", **{"Retry-After": "0.3"})] * 10)
    try:
        with pytest.raises(AppError) as refused:
            await app._claim(CLAIM, timeout_s=0.7)
    finally:
        await server.close()
    assert refused.value.slug == "citizen-unknown" and len(seen) == 3  # at 0, 0.3 and 0.6 s; 0.9 would pass 0.7
