"""Small HTTP helpers every kind of test uses."""

from __future__ import annotations

import aiohttp


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


async def post_json(url: str, body, headers: dict | None = None) -> tuple[int, dict, dict]:
    """POST `body` as JSON: (status, headers, the JSON answer)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers or {}) as response:
            return response.status, dict(response.headers), await response.json(content_type=None)


PROBLEM = "application/problem+json"


def refusal(response, status: int, slug: str) -> dict:
    """The problem document of a refusal that must be exactly `status` with the problem type `.../<slug>`."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith(PROBLEM), response.headers.get("Content-Type")
    body = response.json()
    assert body["type"].endswith(f"/{slug}") and body["status"] == status, body
    return body


def refused_with(error, status: int, slug: str) -> dict:
    """The problem the citizen app's AppError carries, checked to be exactly `status` and `.../<slug>`."""
    assert error.status == status and error.problem.get("type", "").endswith(f"/{slug}"), (error.status, error.problem)
    return error.problem


def device_auth(app, token: str, method: str, url: str) -> dict[str, str]:
    """A citizen app's device token as it presents it (DPoP-bound: `Authorization: DPoP` + a proof by its device key)
    for `method url`, at the gateway or at a service directly: the proof's htu is the issuer (the app's base) + the
    URL's path, as the services compare it (libs/callers)."""
    from urllib.parse import urlsplit

    return app.device_headers(method, urlsplit(url).path, token)
