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
one journey share a `trace_id` across processes; the process then runs
without the SDK's tracer (`ContextOnlyTracerProvider`: the spans the SDK's
tracer makes with its sampler always off — same ids and flags — without
loading it, ~0.8 MB of each process's memory; docs/operations.md, idle RSS).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT, INVALID_SPAN_ID, INVALID_TRACE_ID, Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .middleware import CLIENT_CLOSED_REQUEST, REQUEST_ID, route_template
from .settings import SettingsError

TRACER_NAME = "harbour"
# W3C trace context only: `traceparent` and `tracestate` (no baggage from callers).
PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EXPORTERS = ("otlp", "none")


class TracingConfigError(SettingsError):
    variables = ("OTEL_TRACES_EXPORTER",)


_tracer: tuple[object, trace.Tracer, object | None] | None = None


def _tracing() -> tuple[object, trace.Tracer, object | None]:
    """(the global provider, its tracer, its id generator when its sampler drops every span, else None).

    Kept per provider: asking the provider for its tracer again cost 7 % of the gateway's CPU per proxied request.
    """
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        chosen = provider.get_tracer(TRACER_NAME)
        sampler = getattr(provider, "sampler", None)
        enabled = getattr(chosen, "_is_enabled", None)
        drops_all = (sampler is not None and sampler.get_description() == "AlwaysOffSampler"
                     and getattr(provider, "id_generator", None) is not None and enabled is not None and enabled())
        _tracer = (provider, chosen, provider.id_generator if drops_all else None)
    return _tracer


def tracer() -> trace.Tracer:
    """The global provider's tracer: whatever `configure_tracing` (or a test) installed, even after this call."""
    return _tracing()[1]


def _unsampled_flags(random_trace_id: bool) -> int:
    """An unsampled span's trace flags, as the SDK sets them: W3C's random-trace-id flag when its trace id is random."""
    return TraceFlags.RANDOM_TRACE_ID if random_trace_id else TraceFlags.DEFAULT


def _unsampled_span(ids, parent: trace.SpanContext) -> trace.NonRecordingSpan:
    """The span the SDK's tracer starts when its sampler drops everything (exporter `none`), made directly.

    Same ids and flags as the SDK's (the caller's trace continued, or a new one; a new span id; W3C's
    random-trace-id flag as the SDK sets it), without the sampler call, the span-metrics hook and the context
    managers around it: nothing is recorded, only the context travels on.
    """
    if parent.is_valid:
        trace_id, random_id, state = parent.trace_id, parent.trace_flags.random_trace_id, parent.trace_state
    else:
        trace_id, random_id, state = ids.generate_trace_id(), ids.is_trace_id_random(), None
    flags = TraceFlags(_unsampled_flags(random_id))
    return trace.NonRecordingSpan(SpanContext(trace_id, ids.generate_span_id(), is_remote=False, trace_flags=flags,
                                              trace_state=state))


class _RandomIds:
    """New trace and span ids, as the SDK's RandomIdGenerator makes them (random bits, never the invalid id)."""

    def generate_span_id(self) -> int:
        span_id = random.getrandbits(64)
        while span_id == INVALID_SPAN_ID:
            span_id = random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = random.getrandbits(128)
        while trace_id == INVALID_TRACE_ID:
            trace_id = random.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


class _AlwaysOff:
    def get_description(self) -> str:
        return "AlwaysOffSampler"


class _ContextOnlyTracer(trace.Tracer):
    """Spans that are their context only (`_unsampled_span`): what the SDK's tracer makes with its sampler always off."""

    def __init__(self, ids: _RandomIds) -> None:
        self._ids = ids

    def _is_enabled(self) -> bool:
        return True

    def start_span(self, name: str, context: otel_context.Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes=None, links=None, start_time=None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Span:
        return _unsampled_span(self._ids, trace.get_current_span(context).get_span_context())

    @contextmanager
    def start_as_current_span(self, name: str, context: otel_context.Context | None = None,
                              kind: SpanKind = SpanKind.INTERNAL, attributes=None, links=None, start_time=None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Iterator[Span]:
        span = self.start_span(name, context)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                            set_status_on_exception=set_status_on_exception) as current:
            yield current


class ContextOnlyTracerProvider(trace.TracerProvider):
    """A process's provider with no exporter: nothing sampled, the ids made and propagated, without the SDK's tracer.

    `resource`, `sampler` and `id_generator` as on the SDK's provider (the resource is the SDK's, which is light).
    """

    def __init__(self, resource) -> None:
        self.resource = resource
        self.sampler = _AlwaysOff()
        self.id_generator = _RandomIds()
        self._tracer = _ContextOnlyTracer(self.id_generator)

    def get_tracer(self, instrumenting_module_name: str, *args, **kwargs) -> trace.Tracer:
        return self._tracer

    def shutdown(self) -> None:
        """Nothing to flush."""


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> str:
    """Install this process's tracer provider from the OTEL_* variables; returns the exporter chosen."""
    provider, exporter = tracer_provider(service, os.environ if environ is None else environ)
    trace.set_tracer_provider(provider)
    return exporter


def tracer_provider(service: str, env: Mapping[str, str]):
    """(the SDK tracer provider the OTEL_* variables in `env` describe, the exporter's name)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    exporter = exporter_setting(env)
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"harbour-{service}"})
    if exporter == "none":
        # Nothing would read the spans: sample none, so each is a bare context (ids only) that still propagates.
        return ContextOnlyTracerProvider(resource), exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
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


# A `traceparent` of version 00 exactly as W3C writes it (the propagator's pattern, without the leading or trailing
# blanks and later versions' extra fields it also accepts).
_PLAIN_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def remote_parent(headers: Mapping[str, str]) -> SpanContext:
    """The caller's span context from a request's `traceparent` (and `tracestate`); INVALID_SPAN_CONTEXT when it sent
    none or a malformed one — what the W3C propagator extracts.

    A plain version-00 `traceparent` without `tracestate` (what every hop inside the platform sends) is read here
    directly: the propagator's general path, a context built only to be read back, cost ~5 µs of each request in
    every service behind the gateway. Any other form goes through the propagator.
    """
    value = headers.get("traceparent")
    if value is None:
        return INVALID_SPAN_CONTEXT
    plain = _PLAIN_TRACEPARENT.fullmatch(value)
    if plain is None or "tracestate" in headers:
        return trace.get_current_span(context_from(headers)).get_span_context()
    trace_id, span_id = int(plain[1], 16), int(plain[2], 16)
    if trace_id == INVALID_TRACE_ID or span_id == INVALID_SPAN_ID:
        return INVALID_SPAN_CONTEXT
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(plain[3], 16)))


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
    _, chosen, unsampled = _tracing()
    if unsampled is not None:
        # Nothing is recorded (exporter `none`): the span is its context only, attached without the SDK's machinery.
        token = otel_context.attach(trace.set_span_in_context(_unsampled_span(unsampled, remote_parent(request.headers))))
        try:
            return await handler(request)
        finally:
            otel_context.detach(token)
    attributes = {"http.request.method": request.method, "url.scheme": request.scheme}
    if REQUEST_ID in request:
        attributes["harbour.request_id"] = request[REQUEST_ID]
    with chosen.start_as_current_span(
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
        except asyncio.CancelledError:
            status = CLIENT_CLOSED_REQUEST  # the client went away: not a server error (middleware.py)
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


def start_client_span(method: str, url, headers: MutableMapping[str, str]) -> Span | None:
    """The client span of an HTTP call about to be made, its context written into the call's `headers`.

    Nothing outside a span (the call is neither traced nor given a `traceparent`). When nothing is sampled the
    span is a context only: its `traceparent` goes out and None is returned (nothing to end). Otherwise the
    started span, for `end_client_span`. `client_tracing` calls it from aiohttp's trace signals; a caller that
    sends many requests (the gateway's forwarding) calls it itself and spares the signals. `url`: a yarl URL whose
    host and port are the server's (the span's attributes).
    """
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return None
    _, chosen, unsampled = _tracing()
    if unsampled is not None:
        # The unsampled child's context written straight into the headers: what `_unsampled_span` and `traceparent`
        # give (the caller's trace, a new span id, the random-trace-id flag kept), without building the span.
        flags = _unsampled_flags(current.trace_flags.random_trace_id)
        headers["traceparent"] = f"00-{current.trace_id:032x}-{unsampled.generate_span_id():016x}-{flags:02x}"
        if current.trace_state:
            headers["tracestate"] = current.trace_state.to_header()
        return None
    span = chosen.start_span(
        method, kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "server.address": url.host or "", "server.port": url.port or 0},
    )
    PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
    return span


def end_client_span(span: Span | None, status: int | None = None, error: BaseException | None = None) -> None:
    """End a span of `start_client_span`: the call was answered with `status`, or failed with `error`."""
    if span is None:
        return
    if span.is_recording():
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR))
        else:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
    span.end()


async def _request_started(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
    ctx.span = start_client_span(params.method, params.url, params.headers)


async def _request_ended(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
    end_client_span(getattr(ctx, "span", None), params.response.status)


async def _request_failed(_session, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams) -> None:
    end_client_span(getattr(ctx, "span", None), error=params.exception)
