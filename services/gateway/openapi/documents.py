"""The services' own documents, fetched in the background, and the merged document built from them.

Fetching never delays the gateway's start: it retries until each service has
answered, and a request that finds a document still missing has it fetched
again in the background, at most once every REFETCH_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from libs.service import get_logger

from .merging import RouteOf, merge

log = get_logger("harbour.gateway.openapi")

REFETCH_INTERVAL_S = 5.0
FETCH_TIMEOUT_S = 2.0
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


class OpenAPIDocuments:
    """The services' documents as fetched so far, and the merged document built from them."""

    def __init__(self, upstreams: dict[str, str], route_of: RouteOf, server_url: str) -> None:
        self.upstreams = upstreams
        self.route_of = route_of
        self.server_url = server_url
        self.documents: dict[str, dict[str, Any]] = {}
        self.session: aiohttp.ClientSession | None = None
        self._merged: dict[str, Any] | None = None
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    @property
    def missing(self) -> list[str]:
        return [name for name in self.upstreams if name not in self.documents]

    async def _fetch(self, name: str) -> None:
        assert self.session is not None
        try:
            async with self.session.get(self.upstreams[name] + "/openapi.json", allow_redirects=False) as response:
                response.raise_for_status()
                raw = await response.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise ValueError("the document is too large")
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1") or not isinstance(doc.get("paths"), dict):
                raise ValueError("not an OpenAPI 3.1 document")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.info("openapi document not available yet", upstream=name, error=type(exc).__name__)
            return
        self.documents[name] = doc
        self._merged = None

    async def refresh(self, *, throttle: bool = True) -> None:
        """Fetch the missing documents (at most once per REFETCH_INTERVAL_S when throttled); never raises."""
        if not self.missing or self.session is None:
            return
        if throttle and (self._lock.locked() or time.monotonic() - self._last_attempt < REFETCH_INTERVAL_S):
            return
        async with self._lock:
            self._last_attempt = time.monotonic()
            await asyncio.gather(*(self._fetch(name) for name in self.missing))

    def refresh_soon(self) -> None:
        """A request asked: fetch the missing documents in the background (throttled); this request is not kept waiting."""
        if self.missing and self.session is not None and not self._lock.locked() \
                and time.monotonic() - self._last_attempt >= REFETCH_INTERVAL_S:
            task = asyncio.create_task(self.refresh())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def merged(self) -> dict[str, Any]:
        if self._merged is None:
            ordered = {name: self.documents[name] for name in self.upstreams if name in self.documents}
            self._merged = merge(ordered, self.route_of, server_url=self.server_url)
        return self._merged

    async def keep_fetching(self) -> None:
        """At start, in the background: retry until every service has answered."""
        delay = 0.5
        while self.missing:
            await self.refresh(throttle=False)
            if self.missing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, REFETCH_INTERVAL_S)
        log.info("openapi documents fetched", upstreams=list(self.documents))


OPENAPI_DOCUMENTS = web.AppKey("openapi_documents", OpenAPIDocuments)
