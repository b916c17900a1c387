"""The public API's one OpenAPI 3.1 document, merged from the services' own, and a readable docs page.

Every service serves the document of its operations at `/openapi.json`
(libs/service/openapi.py); that path is not routed publicly. The gateway
fetches them in the background — without delaying its start, retrying until
each has answered — and merges what it has: only the paths the gateway
routes to that service, the gateway's own endpoints, and the statuses the
gateway itself may answer for any proxied request (429, 502, 503, 504).
A request for `/openapi.json` or `/docs` is answered at once with what is
there; if a service's document is still missing, the request also has it
fetched again in the background, at most once every 5 seconds.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from libs.service import get_logger
from libs.service.openapi import Body, Operation, document, html

log = get_logger("harbour.gateway.openapi")

TITLE = "Harbour ID"
DESCRIPTION = (
    "The public API of Harbour ID. Errors are RFC 9457 problem details (application/problem+json), "
    "except at the OAuth endpoints, which answer as RFC 6749 says."
)
REFETCH_INTERVAL_S = 5.0
FETCH_TIMEOUT_S = 2.0
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
GATEWAY_STATUSES = {
    429: "rate limited by the gateway (Retry-After)",
    502: "the owning service answered with something the gateway cannot pass on",
    503: "service-unavailable: the gateway could not reach the owning service (`upstream` names it)",
    504: "gateway-timeout: the owning service did not answer in time",
}
# aiohttp refuses a request line or header field longer than 8190 bytes itself, before any handler or
# middleware runs, with a plain-text 400: possible for every operation, so documented on each.
OVERSIZED_REQUEST = {
    "text/plain": {"schema": {"type": "string", "description": "a request line or header field longer than 8190 bytes"}}
}
SCHEMA_REF = "#/components/schemas/"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str


class Readiness(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str
    checks: dict[str, str]


GATEWAY_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", "Liveness: the gateway answers", ("operations",), responses={200: Health}),
    Operation(
        "GET", "/readyz", "Readiness: every upstream's /healthz answers", ("operations",),
        responses={200: Readiness, 503: Body("unready: the failing checks (timeout, error: <Type>)", "application/json", Readiness)},
    ),
    Operation("GET", "/openapi.json", "This document (OpenAPI 3.1)", ("operations",),
              responses={200: Body("the OpenAPI document", "application/json", {"type": "object"})}),
    Operation("GET", "/docs", "The API reference as an HTML page", ("operations",), responses={200: html("the API reference")}),
)


RouteOf = Callable[[str, str], "str | None"]


def gateway_route_of(method: str, path: str) -> str | None:
    """The service the gateway's routing table sends `method path` to, if any."""
    from .routes import match

    rule = match(method, path)
    return rule.upstream if rule is not None else None


def _sample_path(template: str) -> str:
    """A concrete path for a template: each `{parameter}` becomes one segment."""
    return re.sub(r"\{[^}]+\}", "x", template)


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF) and value[len(SCHEMA_REF):] in renames:
                out[key] = SCHEMA_REF + renames[value[len(SCHEMA_REF):]]
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": {"$ref": SCHEMA_REF + "Problem"}}}}


def _add_oversized_request(operation: dict[str, Any]) -> None:
    note = "a request line or header field over 8190 bytes, refused by the HTTP server (text/plain)"
    responses = operation.setdefault("responses", {})
    if "400" in responses:
        responses["400"]["description"] += "; or " + note
    else:
        responses["400"] = {"description": note}
    responses["400"].setdefault("content", {}).update(OVERSIZED_REQUEST)
    operation["responses"] = dict(sorted(responses.items()))


def merge(service_docs: dict[str, dict[str, Any]], route_of: RouteOf, *, server_url: str) -> dict[str, Any]:
    """One document: the gateway's own operations, then each service's publicly routed operations."""
    merged = document(GATEWAY_OPERATIONS, title=TITLE, version="1", servers=[server_url], description=DESCRIPTION)
    paths: dict[str, Any] = merged["paths"]
    schemas: dict[str, Any] = merged["components"]["schemas"]
    security_schemes: dict[str, Any] = merged["components"]["securitySchemes"]
    tags = [t["name"] for t in merged.get("tags", [])]
    # The gateway's own endpoints are not proxied, but they can be rate limited too.
    for item in paths.values():
        for operation in item.values():
            operation["responses"].setdefault("429", _problem_response(GATEWAY_STATUSES[429]))
            _add_oversized_request(operation)
    for service, doc in service_docs.items():
        components = doc.get("components", {})
        service_schemas = components.get("schemas", {})
        # A name another service already uses for a different schema gets the service's prefix.
        renames = {
            name: f"{service.capitalize()}{name}"
            for name, schema in service_schemas.items()
            if name in schemas and schemas[name] != schema
        }
        doc = _rename_refs(doc, renames)
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        for name, scheme in components.get("securitySchemes", {}).items():
            security_schemes.setdefault(name, scheme)
        for path, item in doc.get("paths", {}).items():
            for method, operation in item.items():
                if method not in HTTP_METHODS or not isinstance(operation, dict):
                    continue
                if route_of(method.upper(), _sample_path(path)) != service:
                    log.warning("openapi operation not routed to its service", service=service, method=method, path=path)
                    continue
                target = paths.setdefault(path, {})
                if method in target:
                    log.warning("openapi operation declared twice", service=service, method=method, path=path)
                    continue
                operation = copy.deepcopy(operation)
                for status, description in GATEWAY_STATUSES.items():
                    operation.setdefault("responses", {}).setdefault(str(status), _problem_response(description))
                _add_oversized_request(operation)
                tags += [t for t in operation.get("tags", []) if t not in tags]
                target[method] = operation
    merged["components"]["schemas"] = dict(sorted(schemas.items()))
    # The services' tags first, the gateway's own endpoints last.
    merged["tags"] = [{"name": t} for t in tags if t != "operations"] + [{"name": "operations"}]
    return merged


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


# --- the docs page -------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} API reference</title>
<style nonce="{{ nonce }}">
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
section.op { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; margin: .8rem 0; }
.method { display: inline-block; min-width: 4.5rem; font-weight: 700; font-family: ui-monospace, monospace; }
.path { font-family: ui-monospace, monospace; font-weight: 600; }
table { border-collapse: collapse; margin-top: .4rem; }
td, th { text-align: left; padding: .15rem .8rem .15rem 0; vertical-align: top; font-size: .92rem; }
code { font-family: ui-monospace, monospace; }
.muted { color: #555; }
</style>
</head>
<body>
<h1>{{ title }} API reference</h1>
<p>{{ description }}</p>
<p class="muted">Base URL <code>{{ server }}</code>. Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI {{ version }}).
{% if missing %}Not yet available: {{ missing | join(", ") }}.{% endif %}</p>
{% for tag, operations in groups %}
<h2 id="{{ tag }}">{{ tag }}</h2>
{% for op in operations %}
<section class="op" id="{{ op.id }}">
<div><span class="method">{{ op.method }}</span> <span class="path">{{ op.path }}</span></div>
<div>{{ op.summary }}</div>
{% if op.description %}<div class="muted">{{ op.description }}</div>{% endif %}
<table>
<tr><th>Authentication</th><td>{{ op.security }}</td></tr>
{% if op.parameters %}<tr><th>Parameters</th><td>{% for p in op.parameters %}<code>{{ p }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endif %}
{% if op.request %}<tr><th>Request body</th><td>{{ op.request }}</td></tr>{% endif %}
<tr><th>Responses</th><td><table>
{% for status, description, schema in op.responses %}<tr><td><code>{{ status }}</code></td><td>{{ schema }}</td><td class="muted">{{ description }}</td></tr>
{% endfor %}</table></td></tr>
</table>
</section>
{% endfor %}
{% endfor %}
</body>
</html>
"""
_environment = SandboxedEnvironment(autoescape=True)
_template = _environment.from_string(_PAGE)


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.startswith(SCHEMA_REF):
        return ref[len(SCHEMA_REF):]
    if schema.get("type") == "object" and "properties" in schema:
        return "{" + ", ".join(schema["properties"]) + "}"
    return str(schema.get("type", "any"))


def _content_summary(content: dict[str, Any] | None) -> str:
    if not content:
        return "no body"
    return "; ".join(f"{_schema_name(media.get('schema', {}))} ({media_type})" for media_type, media in content.items())


def _security_summary(requirements: list[dict[str, list[str]]]) -> str:
    if not requirements:
        return "none (public)"
    alternatives = [" + ".join(r) if r else "anonymous" for r in requirements]
    return " or ".join(alternatives)


def render_docs(doc: dict[str, Any], *, missing: list[str], nonce: str) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            request = operation.get("requestBody", {}).get("content")
            entry = {
                "id": operation.get("operationId", f"{method}-{path}"),
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "security": _security_summary(operation.get("security", doc.get("security", []))),
                "parameters": [f"{p['name']} ({p['in']}{', required' if p.get('required') else ''})" for p in operation.get("parameters", [])],
                "request": _content_summary(request) if request else "",
                "responses": [
                    (status, response.get("description", ""), _content_summary(response.get("content")))
                    for status, response in operation.get("responses", {}).items()
                ],
            }
            tag = (operation.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(entry)
    order = [t["name"] for t in doc.get("tags", [])]
    ordered = sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    return _template.render(
        title=doc["info"]["title"],
        description=doc["info"].get("description", ""),
        version=doc["openapi"],
        server=(doc.get("servers") or [{"url": ""}])[0]["url"],
        groups=ordered,
        missing=missing,
        nonce=nonce,
    )


# --- installation -------------------------------------------------------------


async def _openapi_json(request: web.Request) -> web.Response:
    documents = request.app[OPENAPI_DOCUMENTS]
    documents.refresh_soon()
    return web.json_response(documents.merged(), headers={"Cache-Control": "no-cache"})


async def _docs(request: web.Request) -> web.Response:
    documents = request.app[OPENAPI_DOCUMENTS]
    documents.refresh_soon()
    nonce = secrets.token_urlsafe(16)
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; script-src 'none'; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return web.Response(
        text=render_docs(documents.merged(), missing=documents.missing, nonce=nonce),
        content_type="text/html",
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def install_openapi(app: web.Application, upstreams: dict[str, str], *, route_of: RouteOf | None = None) -> None:
    """Serve GET /openapi.json and GET /docs; fetch the services' documents in the background.

    `upstreams`: service name → base URL. `route_of(method, path)`: the service the gateway routes that
    request to, or None; by default the gateway's routing table, so only what it really routes is documented.
    Call it before the gateway's catch-all route is added: aiohttp resolves routes in the order they were added.
    """
    for resource in app.router.resources():
        pattern = resource.get_info().get("pattern")
        if pattern is not None and pattern.match("/openapi.json"):
            raise RuntimeError("install_openapi must be called before the catch-all route is added, or it is never reached")
    server_url = os.environ.get("HARBOUR_ISSUER", "http://127.0.0.1:8000").rstrip("/")
    documents = OpenAPIDocuments(
        {name: url.rstrip("/") for name, url in upstreams.items()}, route_of or gateway_route_of, server_url
    )
    app[OPENAPI_DOCUMENTS] = documents

    async def lifecycle(app: web.Application):
        documents.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        task = asyncio.create_task(documents.keep_fetching())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await documents.stop()
        await documents.session.close()
        documents.session = None

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/openapi.json", _openapi_json)
    app.router.add_get("/docs", _docs)
