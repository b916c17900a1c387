"""One source of truth per endpoint: its route, request model, answers and refusals declared once.

A service keeps one `Endpoints` per group of handlers. Each decorator call
registers the aiohttp route and the OpenAPI `Operation` together, so the
document (libs/service/openapi.py renders it) cannot drift from the code:

    endpoints = Endpoints(tags=("formfill",), security=("bearer",))

    @endpoints.post("/v1/formfill/requests", summary="Ask a citizen for form data",
                    caller=relying_party, body=FormfillRequestBody, answers={201: RequestCreated},
                    refusals=(FieldNotRegistered, CitizenUnknown))
    async def create_request(request, caller, body):
        return 201, await formfill_requests.create(request.app[FORMFILL], caller, body)

    app.add_routes(endpoints.routes)
    install_openapi_route(app, endpoints.operations, title="Harbour ID formfill")

At a request the wrapper runs, in this order: `caller(request)` (so an
unauthenticated call is 401 before its body is read), then the body parsed
into `body` (400/413/415/422 problems), then the handler with the declared
ones as keywords. The handler answers with a pydantic model (JSON, the
endpoint's one success status), `(status, model)`, `None` (204), or any
aiohttp response (pages, redirects, tokens). Refusals are not caught here:
the problem middleware renders them; `refusals=` only documents them, each
class's status, slug and title becoming the operation's error responses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from libs.errors import Refused

from .openapi import JSON, JSON_BODY_ERRORS, Operation, Problems, ResponseSpec
from .problems import MalformedBody, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from .validation import parse_body

Handler = Callable[..., Awaitable[Any]]
Caller = Callable[[web.Request], Awaitable[Any]]

# For answers that carry a secret or a token, which no cache may keep (`headers=NO_STORE`, or a handler's own response).
NO_STORE = {"Cache-Control": "no-store"}
# What reading a JSON body can refuse (libs/service/validation.py); added to every endpoint with a `body`.
BODY_REFUSALS: tuple[type[Refused], ...] = (MalformedBody, PayloadTooLarge, UnsupportedMediaType, ValidationFailed)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as declared: what `Endpoints` turns into a route and an `Operation`."""

    method: str
    path: str
    summary: str
    handler: Handler
    body: type[BaseModel] | None = None
    caller: Caller | None = None
    answers: Mapping[int, ResponseSpec] = field(default_factory=dict)
    refusals: tuple[type[Refused], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    exclude_none: bool = False
    # Only the fields the domain set: an optional one it left out stays out, one it set to None is null.
    exclude_unset: bool = False
    documented: bool = True
    operation_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def success_status(self) -> int | None:
        """The status of a bare model answer: the one 2xx declared with a model, if exactly one is."""
        statuses = [s for s, spec in self.answers.items() if 200 <= s < 300 and _is_model(spec)]
        return statuses[0] if len(statuses) == 1 else None

    def responses(self) -> dict[int, ResponseSpec]:
        """`answers`, and per error status the refusals that answer it (with the body's own when it has one)."""
        responses: dict[int, ResponseSpec] = dict(self.answers)
        refusals = list(self.refusals)
        if self.body is not None:
            refusals += [r for r in BODY_REFUSALS if r.status not in self.answers]
        by_status: dict[int, list[type[Refused]]] = {}
        for refusal in refusals:
            by_status.setdefault(refusal.status, []).append(refusal)
        for status, group in sorted(by_status.items()):
            given = responses.get(status)
            if given is not None and not isinstance(given, str):
                raise ValueError(f"{self.method} {self.path}: {status} is both an answer and a refusal")
            default = JSON_BODY_ERRORS.get(status) if self.body is not None and all(r in BODY_REFUSALS for r in group) else None
            responses[status] = Problems.of(group, description=given or default)
        return responses

    def operation(self, *, tags: tuple[str, ...], security: tuple[str, ...]) -> Operation:
        # `request_model` among the options documents a body the handler reads itself (several media types, a binary body).
        options = {"tags": tags, "security": security, "request_model": self.body, **self.operation_options}
        return Operation(self.method, self.path, self.summary, responses=self.responses(), **options)

    def answer(self, result: Any) -> web.StreamResponse:
        """The handler's result as a response (see the module's docstring)."""
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            if 204 not in self.answers:
                raise TypeError(f"{self.method} {self.path} answered nothing but does not declare 204")
            return web.Response(status=204, headers=self.headers)
        if isinstance(result, tuple):
            status, model = result
        else:
            status, model = self.success_status, result
            if status is None:
                raise TypeError(f"{self.method} {self.path}: answer with (status, model); it declares no single 2xx model")
        declared = self.answers.get(status, _UNDECLARED)
        if declared is _UNDECLARED:
            raise TypeError(f"{self.method} {self.path} answered {status}, which it does not declare")
        if _is_model(declared) and not isinstance(model, declared):
            raise TypeError(f"{self.method} {self.path} answered {status} with {type(model).__name__}, not {declared.__name__}")
        if not isinstance(model, BaseModel):
            raise TypeError(f"{self.method} {self.path}: a JSON answer is a pydantic model, not {type(model).__name__}")
        body = model.model_dump_json(exclude_none=self.exclude_none, exclude_unset=self.exclude_unset)
        # Bytes, not the str: aiohttp writes bytes as they are, where a str becomes a payload object found through
        # its registry, encoded and written by it (~2 µs more per answer; the same headers either way).
        return web.Response(status=status, body=body.encode(), content_type=JSON, headers=self.headers)


_UNDECLARED = object()


def _is_model(spec: Any) -> bool:
    return isinstance(spec, type) and issubclass(spec, BaseModel)


class Endpoints:
    """A group of endpoints with the tags and security they share (each may override them)."""

    def __init__(self, *, tags: tuple[str, ...] = (), security: tuple[str, ...] = ()) -> None:
        self.tags = tags
        self.security = security
        self._declared: list[tuple[Endpoint, tuple[str, ...], tuple[str, ...]]] = []
        self._routes = web.RouteTableDef()

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        caller: Caller | None = None,
        answers: Mapping[int, ResponseSpec] | None = None,
        refusals: Iterable[type[Refused]] = (),
        headers: Mapping[str, str] | None = None,
        exclude_none: bool = False,
        exclude_unset: bool = False,
        tags: tuple[str, ...] | None = None,
        security: tuple[str, ...] | None = None,
        documented: bool = True,
        **operation_options: Any,
    ) -> Callable[[Handler], Handler]:
        """Declare `method path`; `operation_options` go to the `Operation` (description, query_params...)."""
        refusals = tuple(refusals)
        for refusal in refusals:
            if not (isinstance(refusal, type) and issubclass(refusal, Refused)) or refusal.status < 400:
                raise TypeError(f"{method} {path}: {refusal!r} is not a refusal class")
        method = method.upper()

        def register(handler: Handler) -> Handler:
            _check_signature(handler, method, path, caller=caller is not None, body=body is not None)
            endpoint = Endpoint(method, path, summary, handler, body=body, caller=caller, answers=dict(answers or {}),
                                refusals=refusals, headers=dict(headers or {}), exclude_none=exclude_none,
                                exclude_unset=exclude_unset, documented=documented, operation_options=operation_options)
            endpoint.responses()  # a contradictory declaration fails at import, not at the first request
            self._declared.append((endpoint, self.tags if tags is None else tags, self.security if security is None else security))
            # GET answers HEAD too (the same headers, no body), as the gateway's table routes HEAD with every GET.
            route = self._routes.get(path, allow_head=True) if method == "GET" else self._routes.route(method, path)
            route(_serve(endpoint))
            handler.endpoint = endpoint  # type: ignore[attr-defined]
            return handler

        return register

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)

    def put(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **declaration)

    def patch(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **declaration)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(endpoint for endpoint, _, _ in self._declared)

    @property
    def routes(self) -> web.RouteTableDef:
        """For `app.add_routes(...)`."""
        return self._routes

    @property
    def operations(self) -> tuple[Operation, ...]:
        """For `install_openapi_route(app, ...)` (concatenate with other groups' operations)."""
        return tuple(endpoint.operation(tags=tags, security=security)
                     for endpoint, tags, security in self._declared if endpoint.documented)


def _serve(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(endpoint.handler)
    async def serve(request: web.Request) -> web.StreamResponse:
        arguments: dict[str, Any] = {}
        if endpoint.caller is not None:
            arguments["caller"] = await endpoint.caller(request)
        if endpoint.body is not None:
            arguments["body"] = await parse_body(request, endpoint.body)
        return endpoint.answer(await endpoint.handler(request, **arguments))

    return serve


def _check_signature(handler: Handler, method: str, path: str, *, caller: bool, body: bool) -> None:
    """The handler takes the request, and `caller` / `body` exactly when the endpoint declares them."""
    parameters = inspect.signature(handler).parameters
    wanted = {"caller": caller, "body": body}
    for name, declared in wanted.items():
        if declared != (name in parameters):
            state = "declares" if declared else "does not declare"
            raise TypeError(f"{method} {path}: the endpoint {state} `{name}`, and its handler {'lacks' if declared else 'takes'} it")
    if len(parameters) != 1 + sum(wanted.values()):
        raise TypeError(f"{method} {path}: a handler takes (request[, caller][, body])")
