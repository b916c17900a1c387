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
