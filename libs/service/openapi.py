"""OpenAPI 3.1 from the pydantic models the handlers validate with.

Each service lists its public operations as `Operation`s next to its
handlers; `document` turns such a list into an OpenAPI 3.1 document and
`install_openapi_route` serves it at `GET /openapi.json`. The gateway merges
the services' documents into one (services/gateway/openapi/).

Conventions the builder applies so that declarations stay short:

- a response given as a pydantic model (or a JSON schema dict) is an
  `application/json` body; `None` on a 2xx/3xx is a response without a body;
- an error status (4xx/5xx) given as `None` or a description string is an RFC
  9457 `Problem` (`application/problem+json`), the platform's error format;
  `Problems` names the problem types too (libs/service/endpoints.py derives
  it from an endpoint's refusal classes);
- anything else (HTML pages, redirects, OAuth errors) is a `Body`.

A model's description (pydantic takes its `__doc__`) and a refusal's (`Problems.of`) are written
`__doc__ = (...)`, a string assigned in the class body, not as a docstring: the services run under
`python -OO`, which drops docstrings, and build their documents there (tests/unit/test_openapi_optimized.py
compares each service's document built under -OO with the one built without).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .jsoncodec import dumps
from .problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HTML = "text/html"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: the error format of every Harbour ID API except the OAuth endpoints.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": f"{PROBLEM_TYPE_BASE}<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request path"},
        "errors": {
            "type": "array",
            "description": "one entry per field that failed validation (values are never echoed)",
            "items": {"$ref": "#/components/schemas/ProblemFieldError"},
        },
    },
    # Extension members: `attempts_left`, `upstream`...
    "additionalProperties": True,
}
PROBLEM_FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProblemFieldError",
    "type": "object",
    "required": ["field", "message", "code"],
    "properties": {
        "field": {"type": "string", "description": "path of the offending field, e.g. date_of_birth or public_key/x"},
        "message": {"type": "string"},
        "code": {"type": "string"},
    },
    "additionalProperties": False,
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "description": "RFC 6749 §5.2 error response of the OAuth and OpenID Connect endpoints.",
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"type": "string", "description": "e.g. invalid_request, invalid_client, invalid_grant, invalid_token"},
        "error_description": {"type": "string"},
    },
    "additionalProperties": False,
}
BASE_SCHEMAS = {"Problem": PROBLEM_SCHEMA, "ProblemFieldError": PROBLEM_FIELD_ERROR_SCHEMA, "OAuthError": OAUTH_ERROR_SCHEMA}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "kioskBasic": {"type": "http", "scheme": "basic", "description": "a kiosk client's id and secret (client_secret_basic)"},
    "clientAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "client_secret_basic; clients registered for client_secret_post or private_key_jwt "
        "send client_id with client_secret, or client_assertion_type with client_assertion, in the form instead",
    },
    "deviceToken": {"type": "http", "scheme": "DPoP",
                    "description": "a device access token from POST /v1/devices/token, DPoP-bound to the device key (RFC 9449): "
                    "`Authorization: DPoP <token>` with a `DPoP` proof header signed by the device key for each request"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "an OAuth access token (RFC 9068 at+jwt)"},
    "admin": {"type": "http", "scheme": "bearer", "description": "the operators' HARBOUR_ADMIN_TOKEN"},
    "registrationToken": {"type": "http", "scheme": "bearer",
                          "description": "a client's RFC 7592 registration access token (from its registration; rotated by each update)"},
}


@dataclass(frozen=True)
class Body:
    """A response that is not a JSON model: an HTML page, a redirect, plain text, an OAuth error."""

    description: str
    content_type: str | None = None
    schema: type[BaseModel] | dict[str, Any] | None = None
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)


def html(description: str) -> Body:
    return Body(description, HTML, {"type": "string"})


def redirect(description: str) -> Body:
    return Body(description, headers={"Location": {"required": True, "schema": {"type": "string"}}})


def oauth_error(description: str) -> Body:
    return Body(description, JSON, {"$ref": "#/components/schemas/OAuthError"})


# Error answers most operations share, for their `responses`.
JSON_BODY_ERRORS = {
    400: "the body is empty or not JSON",
    413: "the body is too large",
    415: "the body is not application/json",
    422: "the body does not match the model; `errors` names each field",
}
DEVICE_AUTH_ERRORS = {
    401: "no, invalid or expired device token, the device is revoked (WWW-Authenticate: Bearer), or the token without "
         "its DPoP proof by the device key (WWW-Authenticate: DPoP, invalid_token or invalid_dpop_proof)",
    403: "the account is not active",
}


@dataclass(frozen=True)
class Problems:
    """An error answer: RFC 9457 problems of these types (slugs), e.g. from an endpoint's refusal classes."""

    description: str
    slugs: tuple[str, ...] = ()

    @classmethod
    def of(cls, refusals: Iterable[Any], *, description: str | None = None) -> "Problems":
        """From `libs.errors.Refused` classes: each names its slug, described by its docstring or title."""
        refusals = list(dict.fromkeys(refusals))
        if description is None:
            description = "; ".join(f"{r.slug}: {_first_line(r.__dict__.get('__doc__')) or r.title}" for r in refusals)
        return cls(description, tuple(dict.fromkeys(r.slug for r in refusals)))


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0].strip() if text and text.strip() else ""


ResponseSpec = type[BaseModel] | dict[str, Any] | Body | Problems | str | None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # aiohttp template: /v1/approvals/{approval_id}
    summary: str
    tags: tuple[str, ...] = ()
    request_model: type[BaseModel] | None = None
    request_content_type: str = JSON
    form_fields: dict[str, dict[str, Any]] | None = None  # JSON schema per field of a form body
    form_required: tuple[str, ...] = ()
    responses: dict[int, ResponseSpec] = field(default_factory=dict)
    security: tuple[str, ...] = ()  # alternatives among SECURITY_SCHEMES; empty: public
    security_optional: bool = False  # anonymous callers are served too (sandbox, credentials in the body)
    query_params: tuple[tuple[str, dict[str, Any], bool], ...] = ()  # (name, schema, required)
    description: str = ""
    operation_id: str | None = None

    @property
    def openapi_path(self) -> str:
        return openapi_path(self.path)

    @property
    def id(self) -> str:
        if self.operation_id:
            return self.operation_id
        slug = re.sub(r"[^A-Za-z0-9]+", "_", re.sub(r"\{(\w+)[^}]*\}", r"by_\1", self.path)).strip("_")
        return f"{self.method.lower()}_{slug}"


def openapi_path(template: str) -> str:
    """aiohttp's `{name}` and `{name:regex}` become OpenAPI's `{name}`."""
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", template)


def path_parameters(template: str) -> list[str]:
    return re.findall(r"\{(\w+)(?::[^}]*)?\}", template)


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {name: dict(schema) for name, schema in BASE_SCHEMAS.items()}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        existing = self.schemas.get(name)
        if existing is not None and existing != schema:
            raise ValueError(f"two different schemas are named {name}")
        self.schemas[name] = schema

    def ref(self, model: type[BaseModel] | dict[str, Any], *, mode: str) -> dict[str, Any]:
        """A `$ref` to the model's schema (its nested models hoisted into components), or a dict as given."""
        if isinstance(model, dict):
            return model
        schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        name = model.__name__
        self.add(name, schema)
        return {"$ref": REF_TEMPLATE.format(model=name)}


def _response(status: int, spec: ResponseSpec, components: _Components) -> dict[str, Any]:
    reason = HTTPStatus(status).phrase
    if isinstance(spec, Body):
        out: dict[str, Any] = {"description": spec.description}
        if spec.content_type:
            schema = components.ref(spec.schema, mode="serialization") if spec.schema is not None else {}
            out["content"] = {spec.content_type: {"schema": schema}}
        if spec.headers:
            out["headers"] = spec.headers
        return out
    if isinstance(spec, Problems):
        out = {"description": spec.description or reason,
               "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        if spec.slugs:
            # Which problem `type`s this answer carries (an extension: the schema stays the one Problem).
            out["x-problem-types"] = [PROBLEM_TYPE_BASE + slug for slug in spec.slugs]
        return out
    if status >= 400 and (spec is None or isinstance(spec, str)):
        return {
            "description": spec or reason,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    if isinstance(spec, str):
        return {"description": spec}
    if spec is None:
        return {"description": reason}
    return {"description": reason, "content": {JSON: {"schema": components.ref(spec, mode="serialization")}}}


def _operation(op: Operation, components: _Components) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in path_parameters(op.path)
    ]
    parameters += [{"name": name, "in": "query", "required": required, "schema": schema} for name, schema, required in op.query_params]
    if parameters:
        out["parameters"] = parameters
    if op.request_model is not None:
        out["requestBody"] = {"required": True, "content": {op.request_content_type: {"schema": components.ref(op.request_model, mode="validation")}}}
    elif op.form_fields is not None:
        schema: dict[str, Any] = {"type": "object", "properties": op.form_fields}
        if op.form_required:
            schema["required"] = list(op.form_required)
        out["requestBody"] = {"required": True, "content": {FORM: {"schema": schema}}}
    out["responses"] = {str(status): _response(status, spec, components) for status, spec in sorted(op.responses.items())}
    security: list[dict[str, list[str]]] = [{name: []} for name in op.security]
    if op.security_optional:
        security.append({})
    out["security"] = security
    for name in op.security:
        if name not in SECURITY_SCHEMES:
            raise ValueError(f"{op.method} {op.path}: unknown security scheme {name}")
    return out


def document(
    operations: Iterable[Operation], *, title: str, version: str, servers: Iterable[str] = (), description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    for op in operations:
        item = paths.setdefault(op.openapi_path, {})
        method = op.method.lower()
        if method in item:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        item[method] = _operation(op, components)
        tags += [t for t in op.tags if t not in tags]
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    doc: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": info}
    if servers:
        doc["servers"] = [{"url": url} for url in servers]
    if tags:
        doc["tags"] = [{"name": t} for t in tags]
    doc["paths"] = paths
    doc["components"] = {"schemas": dict(sorted(components.schemas.items())), "securitySchemes": SECURITY_SCHEMES}
    return doc


OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)


def install_openapi_route(app: web.Application, operations: Iterable[Operation], *, title: str, version: str = "1") -> None:
    """Serve this service's document at GET /openapi.json (the gateway merges them; it is not routed publicly).

    Built once, when the app is, and kept as the JSON it is served as: the document as Python objects held 0.2-0.5 MB
    of each process (auth's most; docs/operations.md, idle RSS)."""
    app[OPENAPI_DOCUMENT] = dumps(document(list(operations), title=title, version=version)).encode()

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    app.router.add_get("/openapi.json", openapi_json)
