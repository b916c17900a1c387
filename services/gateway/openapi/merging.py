"""The merged document: the gateway's own operations, then each service's publicly routed ones.

Only the paths the gateway routes to a service are kept (its table decides),
schema names two services use differently get the service's prefix, and
every operation gains the statuses the gateway itself may answer for it
(429, 502, 503, 504, and the HTTP server's 400 for an oversized request line).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from libs.service import get_logger
from libs.errors import PROBLEM_TYPE_BASE, Refused
from libs.service.openapi import Body, Operation, Problems, document, html

from ..errors import BadGateway, GatewayTimeout, RateLimited, UpstreamOverloaded, UpstreamUnavailable

log = get_logger("harbour.gateway.openapi")

TITLE = "Harbour ID"
DESCRIPTION = (
    "The public API of Harbour ID. Errors are RFC 9457 problem details (application/problem+json), "
    "except at the OAuth endpoints, which answer as RFC 6749 says."
)
# What the gateway itself may answer for any proxied request (errors.py), described by the classes.
GATEWAY_REFUSALS: tuple[type[Refused], ...] = (RateLimited, BadGateway, UpstreamUnavailable, UpstreamOverloaded, GatewayTimeout)
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
    # Each upstream's last health probe (ok, unknown, circuit open, timeout, error: <Type>): information only.
    upstreams: dict[str, str] | None = None


GATEWAY_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", "Liveness: the gateway answers", ("operations",), responses={200: Health}),
    Operation(
        "GET", "/readyz", "Readiness: the gateway's own (its revocation list); each upstream's health reported",
        ("operations",),
        responses={200: Readiness, 503: Body("unready: the failing checks (timeout, error: <Type>)", "application/json", Readiness)},
    ),
    Operation("GET", "/openapi.json", "This document (OpenAPI 3.1)", ("operations",),
              responses={200: Body("the OpenAPI document", "application/json", {"type": "object"})}),
    Operation("GET", "/docs", "The API reference as an HTML page", ("operations",), responses={200: html("the API reference")}),
)


RouteOf = Callable[[str, str], "str | None"]


def gateway_route_of(method: str, path: str) -> str | None:
    """The service the gateway's routing table sends `method path` to, if any."""
    from ..routes import match

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


def _problem_response(refusal: type[Refused]) -> dict[str, Any]:
    return {"description": Problems.of([refusal]).description,
            "content": {"application/problem+json": {"schema": {"$ref": SCHEMA_REF + "Problem"}}},
            "x-problem-types": [PROBLEM_TYPE_BASE + refusal.slug]}


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
            operation["responses"].setdefault(str(RateLimited.status), _problem_response(RateLimited))
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
                for refusal in GATEWAY_REFUSALS:
                    operation.setdefault("responses", {}).setdefault(str(refusal.status), _problem_response(refusal))
                _add_oversized_request(operation)
                tags += [t for t in operation.get("tags", []) if t not in tags]
                target[method] = operation
    merged["components"]["schemas"] = dict(sorted(schemas.items()))
    # The services' tags first, the gateway's own endpoints last.
    merged["tags"] = [{"name": t} for t in tags if t != "operations"] + [{"name": "operations"}]
    return merged
