"""Distributed tracing: W3C trace context in and out of every process, OpenTelemetry spans.

- A server span per request (`tracing_middleware`), the child of the caller's
  `traceparent` when it sent one; probes (`/healthz`, `/readyz`) are not traced.
- A client span per outgoing HTTP call made inside a request or an event's
  handling (`client_session`, `client_tracing`), whose context goes out in
  the request's `traceparent`: the gateway's call to a service, JWKS fetches,
  callbacks. Calls made outside one (health probes, start-up fetches) are
  neither traced nor given a `traceparent`.
- Events carry the context they were created in (libs/events/envelope.py);
  the outbox relay and the consumers continue it (libs/events/tracing.py).

Only W3C trace context crosses a process boundary (`traceparent`,
`tracestate`), never baggage: a caller's baggage does not travel on.

Configured per process from the standard OpenTelemetry variables
(`configure_tracing`, called by `run`): `OTEL_TRACES_EXPORTER` (`otlp` or
`none`; by default `otlp` when an OTLP endpoint is set, otherwise `none`),
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP
over HTTP, protobuf), `OTEL_SERVICE_NAME` (the process's name by default),
`OTEL_TRACES_SAMPLER` / `_ARG` (`parentbased_always_on` by default) and the
`OTEL_BSP_*` batching variables. With no exporter, spans are not recorded
(nothing is built but their ids), and the ids still travel, so log lines of
one journey share a `trace_id` across processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .middleware import REQUEST_ID, route_template
from .settings import SettingsError

TRACER_NAME = "harbour"
# W3C trace context only: `traceparent` and `tracestate` (no baggage from callers).
PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EXPORTERS = ("otlp", "none")


class TracingConfigError(SettingsError):
    variables = ("OTEL_TRACES_EXPORTER",)


_tracer: tuple[object, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The global provider's tracer: whatever `configure_tracing` (or a test) installed, even after this call.

    Kept per provider: asking the provider for it again cost 7 % of the gateway's CPU per proxied request.
    """
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(TRACER_NAME))
    return _tracer[1]


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> str:
    """Install this process's tracer provider from the OTEL_* variables; returns the exporter chosen."""
    provider, exporter = tracer_provider(service, os.environ if environ is None else environ)
    trace.set_tracer_provider(provider)
    return exporter


def tracer_provider(service: str, env: Mapping[str, str]):
    """(the SDK tracer provider the OTEL_* variables in `env` describe, the exporter's name)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = exporter_setting(env)
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"harbour-{service}"})
    if exporter == "none":
        # Nothing would read the spans: sample none, so each is a bare context (ids only) that still propagates.
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF), exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider, exporter


def exporter_setting(env: Mapping[str, str]) -> str:
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = (env.get("OTEL_TRACES_EXPORTER") or ("otlp" if endpoint else "none")).strip().lower()
    if exporter not in EXPORTERS:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    return exporter


def traceparent(span_context: trace.SpanContext | None = None) -> str | None:
    """The W3C `traceparent` of `span_context` (the current span's by default), None when there is none."""
    span_context = span_context or trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def context_from(carrier: Mapping[str, str]) -> otel_context.Context:
    """The remote context a carrier (headers) holds; an empty context when it holds none or a malformed one."""
    return PROPAGATOR.extract(carrier, context=otel_context.Context())


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current span's context into `carrier` (headers)."""
    PROPAGATOR.inject(carrier)


@contextmanager
def continuing(journey: str | None, name: str, attributes: Mapping[str, str] | None = None) -> Iterator[Span]:
    """A span in the trace of `journey` — a traceparent kept from where a journey began — linked to the current span.

    For a step that arrives on a request of its own but belongs to an earlier one's journey (the citizen's
    decision on a prompt: the phone's request is its own trace, the login or form fill it decides is another).
    Without a journey, a child of the current span.
    """
    parent = context_from({"traceparent": journey or ""})
    began = trace.get_current_span(parent).get_span_context()
    current = trace.get_current_span().get_span_context()
    links = ()
    if not began.is_valid:
        parent = None  # no journey kept: the current context
    elif current.is_valid and current.trace_id != began.trace_id:
        links = (Link(current),)
    with tracer().start_as_current_span(name, context=parent, links=links, attributes=dict(attributes or {}),
                                        record_exception=False, set_status_on_exception=False) as span:
        yield span


@web.middleware
async def tracing_middleware(request: web.Request, handler):
    """The request's server span, a child of the caller's `traceparent` when it sent one."""
    if request.path in UNTRACED_PATHS:
        return await handler(request)
    attributes = {"http.request.method": request.method, "url.scheme": request.scheme}
    if REQUEST_ID in request:
        attributes["harbour.request_id"] = request[REQUEST_ID]
    with tracer().start_as_current_span(
        f"{request.method} {route_template(request)}", context=context_from(request.headers), kind=SpanKind.SERVER,
        attributes=attributes, record_exception=False, set_status_on_exception=False,
    ) as span:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if span.is_recording():
                # The gateway names the route it matched only inside its handler.
                route = route_template(request)
                span.update_name(f"{request.method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


def client_tracing() -> aiohttp.TraceConfig:
    """An aiohttp TraceConfig: a client span per request made inside a span, its context in `traceparent`."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_request_started)
    config.on_request_end.append(_request_ended)
    config.on_request_exception.append(_request_failed)
    return config


def client_session(**options) -> aiohttp.ClientSession:
    """An aiohttp ClientSession whose requests are traced and carry `traceparent`."""
    options["trace_configs"] = [*options.get("trace_configs", ()), client_tracing()]
    return aiohttp.ClientSession(**options)


async def _request_started(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
    ctx.span = None
    if not trace.get_current_span().get_span_context().is_valid:
        return
    url = params.url
    span = tracer().start_span(
        params.method, kind=SpanKind.CLIENT,
        attributes={"http.request.method": params.method, "server.address": url.host or "", "server.port": url.port or 0},
    )
    ctx.span = span
    PROPAGATOR.inject(params.headers, context=trace.set_span_in_context(span))


async def _request_ended(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
    span = getattr(ctx, "span", None)
    if span is None:
        return
    status = params.response.status
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()


async def _request_failed(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams) -> None:
    span = getattr(ctx, "span", None)
    if span is None:
        return
    if span.is_recording():
        span.set_attribute("error.type", type(params.exception).__name__)
        span.set_status(Status(StatusCode.ERROR))
    span.end()
