"""Streaming pass-through to an upstream service.

Bodies flow through in chunks both ways (large PDFs, SSE) without being
buffered; hop-by-hop headers stop here; the request id travels on.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from libs.service.middleware import REQUEST_ID, REQUEST_ID_HEADER
from libs.service.problems import Problem, ServiceUnavailable

# RFC 9110 §7.6.1 hop-by-hop fields, plus Host (set for the upstream).
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
    }
)


class GatewayTimeout(Problem):
    status, title, slug = 504, "Gateway timeout", "gateway-timeout"


def _forwardable(headers) -> CIMultiDict:
    connection_tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",") if t.strip()}
    return CIMultiDict(
        (k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in connection_tokens
    )


async def forward(request: web.Request, session: aiohttp.ClientSession, base_url: str, upstream: str) -> web.StreamResponse:
    headers = _forwardable(request.headers)
    headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    headers["X-Forwarded-For"] = request.remote or ""
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    body = request.content if request.body_exists else None
    try:
        async with session.request(
            request.method,
            # The request target exactly as the client encoded it.
            URL(base_url + request.raw_path, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream_response:
            response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
            response.headers.update(_forwardable(upstream_response.headers))
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
        raise ServiceUnavailable(f"the {upstream} service is unavailable", upstream=upstream) from exc
    except asyncio.TimeoutError as exc:
        raise GatewayTimeout(f"the {upstream} service did not answer in time", upstream=upstream) from exc
