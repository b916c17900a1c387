"""Trace context over real HTTP in one process: server spans, client spans and `traceparent`, events, log lines.

The spans end in the OpenTelemetry SDK's in-memory exporter (tests/support/tracing.py).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.trace import SpanKind

from libs.events import CloudEvent
from libs.service import ServiceSettings, create_service_app
from libs.service.settings import SettingsError
from libs.service.logging import get_logger
from libs.service.tracing import client_session, continuing, exporter_setting, traceparent, tracer, tracer_provider

from ..support.logs import service_logs
from ..support.tracing import hex_span, hex_trace, recorded_spans

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    return recorded_spans()


@pytest.fixture
def json_logs(capsys):
    with service_logs("trace-test"):
        yield


@pytest.fixture
async def downstream():
    """A plain server that answers with the trace headers it was sent."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({name: request.headers.get(name) for name in ("traceparent", "tracestate", "baggage")})

    app = web.Application()
    app.router.add_get("/echo", echo)
    async with TestServer(app) as server:
        yield server


@pytest.fixture
async def service(downstream):
    """A service-kit app whose handler logs, creates an event and calls `downstream`."""

    async def work(request: web.Request) -> web.Response:
        get_logger("test").info("working")
        event = CloudEvent(source="/test", type="thing.done", subject="t1")
        async with client_session() as session:
            async with session.get(downstream.make_url("/echo"), headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) as answer:
                sent = await answer.json()
        return web.json_response({"event_traceparent": event.traceparent, "sent": sent})

    app = create_service_app(ServiceSettings(service="trace-test", access_log_sample=1))
    app.router.add_get("/things/{id}", work)
    async with TestClient(TestServer(app)) as client:
        yield client


def by_kind(spans, kind: SpanKind):
    return [s for s in spans.get_finished_spans() if s.kind == kind]


async def test_a_request_continues_the_callers_trace_through_events_and_calls(spans, service, capsys, json_logs):
    response = await service.get("/things/42", headers={
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=1", "baggage": "user=chan"})
    assert response.status == 200
    body = await response.json()

    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.name == "GET /things/{id}"
    assert hex_trace(server) == CALLER_TRACE and f"{server.parent.span_id:016x}" == CALLER_SPAN and server.parent.is_remote
    assert server.attributes["http.route"] == "/things/{id}" and server.attributes["http.response.status_code"] == 200
    assert server.attributes["harbour.request_id"] == response.headers["X-Request-Id"]

    # The event carries the request's context; the call out carries its client span's, replacing the handler's header.
    assert body["event_traceparent"] == f"00-{CALLER_TRACE}-{hex_span(server)}-01"
    [client] = by_kind(spans, SpanKind.CLIENT)
    assert client.parent.span_id == server.context.span_id and hex_trace(client) == CALLER_TRACE
    assert body["sent"]["traceparent"] == f"00-{CALLER_TRACE}-{hex_span(client)}-01"
    assert body["sent"]["tracestate"] == "vendor=1"
    assert body["sent"]["baggage"] is None  # W3C trace context only: a caller's baggage stops here

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    working = next(line for line in lines if line["event"] == "working")
    assert working["trace_id"] == CALLER_TRACE and working["span_id"] == hex_span(server)
    request_line = next(line for line in lines if line["event"] == "request")
    assert request_line["trace_id"] == CALLER_TRACE


@pytest.fixture
def unsampled(monkeypatch):
    """The provider of a process with no exporter (sampler always off), as the dev stack and the tests run."""
    from opentelemetry import trace

    provider, exporter = tracer_provider("trace-test", {})
    assert exporter == "none"
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider


async def test_with_no_exporter_the_callers_trace_still_reaches_events_calls_and_log_lines(unsampled, service, capsys, json_logs):
    """Spans made directly when nothing is sampled (libs/service/tracing.py): the same ids and flags the SDK's
    tracer would give them, the caller's trace continued through the event, the call out and the log lines."""
    response = await service.get("/things/42", headers={
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=1"})
    body = await response.json()
    _, event_trace, server_span, event_flags = body["event_traceparent"].split("-")
    _, sent_trace, client_span, sent_flags = body["sent"]["traceparent"].split("-")
    assert event_trace == sent_trace == CALLER_TRACE
    assert len({CALLER_SPAN, server_span, client_span}) == 3  # a span id of the request's, another of the call's
    assert event_flags == sent_flags == "00"  # not sampled, whatever the caller decided (sampler always off)
    assert body["sent"]["tracestate"] == "vendor=1"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    working = next(line for line in lines if line["event"] == "working")
    assert working["trace_id"] == CALLER_TRACE and working["span_id"] == server_span

    # No caller's context: a new trace, flagged as the SDK flags its own unsampled root span.
    root = unsampled.get_tracer("t").start_span("root").get_span_context()
    began = (await (await service.get("/things/1")).json())["event_traceparent"].split("-")
    assert began[1] not in (CALLER_TRACE, "0" * 32) and began[3] == f"{int(root.trace_flags):02x}"


async def test_without_a_caller_context_a_request_starts_a_trace_and_probes_are_not_traced(spans, service):
    assert (await service.get("/healthz")).status == 200
    assert spans.get_finished_spans() == ()
    await service.get("/things/1", headers={"traceparent": "not a traceparent"})
    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.parent is None and hex_trace(server) != "0" * 32


async def test_errors_mark_the_server_span(spans, service):
    response = await service.get("/nowhere")
    assert response.status == 404
    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.attributes["http.response.status_code"] == 404 and server.status.is_ok


async def test_calls_outside_any_span_carry_no_traceparent(spans, downstream):
    async with client_session() as session:
        async with session.get(downstream.make_url("/echo")) as answer:
            assert (await answer.json())["traceparent"] is None
    assert spans.get_finished_spans() == ()


def test_an_event_outside_any_span_starts_a_trace_of_its_own(spans):
    first, second = CloudEvent(source="/t", type="a.b"), CloudEvent(source="/t", type="a.b")
    assert first.traceparent.split("-")[1] != second.traceparent.split("-")[1]
    with tracer().start_as_current_span("job") as span:
        inside = CloudEvent(source="/t", type="a.b")
    context = span.get_span_context()
    assert inside.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    assert context.trace_flags.sampled


def test_the_exporter_is_otlp_only_when_asked_for_or_given_an_endpoint():
    assert exporter_setting({}) == "none"
    assert exporter_setting({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert exporter_setting({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}) == "otlp"
    assert exporter_setting({"OTEL_TRACES_EXPORTER": "otlp"}) == "otlp"
    assert exporter_setting({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "none"
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER"):
        exporter_setting({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_with_no_exporter_spans_are_bare_contexts_that_still_propagate():
    provider, exporter = tracer_provider("auth", {})
    assert exporter == "none"
    assert provider.resource.attributes["service.name"] == "harbour-auth"
    span = provider.get_tracer("t").start_span("request")
    assert not span.is_recording() and span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled


def test_an_otlp_exporter_samples_by_the_standard_variables(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    provider, exporter = tracer_provider("gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert exporter == "otlp"
        assert not provider.get_tracer("t").start_span("request").is_recording()
    finally:
        provider.shutdown()


def test_a_step_of_an_earlier_journey_continues_its_trace_linked_to_the_request_it_came_on(spans):
    with tracer().start_as_current_span("login begins") as began:
        journey = traceparent()
    with tracer().start_as_current_span("the phone's request") as phone:
        with continuing(journey, "approval decided") as step:
            event = CloudEvent(source="/t", type="approval.decided")
    [decided] = [s for s in spans.get_finished_spans() if s.name == "approval decided"]
    assert decided.context.trace_id == began.get_span_context().trace_id
    assert decided.parent.span_id == began.get_span_context().span_id
    assert [link.context.span_id for link in decided.links] == [phone.get_span_context().span_id]
    assert event.traceparent.split("-")[2] == f"{step.get_span_context().span_id:016x}"

    # Within the journey's own trace: a child, no link. Without a journey: a child of the current span.
    with tracer().start_as_current_span("request") as request:
        with continuing(traceparent(), "asked at once") as same:
            pass
        with continuing(None, "no journey kept") as none:
            pass
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["asked at once"].parent.span_id == request.get_span_context().span_id
    assert finished["asked at once"].links == ()
    assert finished["no journey kept"].parent.span_id == request.get_span_context().span_id
    assert same.get_span_context().trace_id == none.get_span_context().trace_id == request.get_span_context().trace_id


def test_a_process_refuses_an_exporter_it_does_not_have(tmp_path):
    """run(): exit 78 and one JSON line naming the variable, before listening or connecting to anything."""
    import os
    import subprocess
    import sys

    from libs.devstack.config import REPO_ROOT
    from libs.service.app import EXIT_CONFIG

    env = {**os.environ, "OTEL_TRACES_EXPORTER": "zipkin", "HARBOUR_SANDBOX": "true", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "services.gateway"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_CONFIG
    [line] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert line["event"] == "refusing to start" and line["settings"] == ["OTEL_TRACES_EXPORTER"]


def test_the_context_only_provider_makes_the_spans_the_sdks_tracer_makes_with_its_sampler_always_off():
    """With no exporter a process runs without the SDK's tracer (libs/service/tracing.py, ContextOnlyTracerProvider):
    its spans are what the SDK's tracer gives with ALWAYS_OFF - a caller's trace id and state continued, a new span
    id, the same flags; without a caller, a new trace flagged alike; nothing recorded."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from libs.service.tracing import ContextOnlyTracerProvider, context_from

    ours = tracer_provider("auth", {})[0].get_tracer("t")
    sdk = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    assert isinstance(tracer_provider("auth", {})[0], ContextOnlyTracerProvider)
    for flags in ("01", "00"):
        caller = context_from({"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}", "tracestate": "vendor=1"})
        mine, theirs = ours.start_span("x", context=caller), sdk.start_span("x", context=caller)
        a, b = mine.get_span_context(), theirs.get_span_context()
        assert (a.trace_id, a.trace_flags, a.trace_state, a.is_remote) == (b.trace_id, b.trace_flags, b.trace_state, b.is_remote)
        assert a.span_id not in (b.span_id, int(CALLER_SPAN, 16), 0)
        assert not mine.is_recording() and not theirs.is_recording()
    mine, theirs = ours.start_span("root", context=otel_context.Context()), sdk.start_span("root", context=otel_context.Context())
    a, b = mine.get_span_context(), theirs.get_span_context()
    assert a.is_valid and a.trace_flags == b.trace_flags and a.trace_id != b.trace_id and a.trace_state == b.trace_state
    with ours.start_as_current_span("current") as span:
        assert trace.get_current_span() is span and span.get_span_context().trace_id != 0
    assert trace.get_current_span() is not span


PLAIN = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def _traceparents():
    """Mostly plain traceparents, and near misses: other versions, zero or short or uppercase ids, blanks, extra fields."""
    hex_id = lambda size: st.text("0123456789abcdef", min_size=size, max_size=size)  # noqa: E731
    often = lambda usual, *others: st.one_of(usual, usual, usual, *others)  # noqa: E731
    plain = st.builds(lambda v, t, s, f, tail: f"{v}-{t}-{s}-{f}{tail}",
                      often(st.just("00"), st.sampled_from(["01", "ff", "0g", "0", "000"])),
                      often(hex_id(32), st.just("0" * 32), hex_id(31), st.just(CALLER_TRACE.upper())),
                      often(hex_id(16), st.just("0" * 16), hex_id(17)),
                      often(hex_id(2), st.just("1"), st.just("0A")),
                      often(st.just(""), st.sampled_from([" ", "\t", "-extra", "-", "x"])))
    return st.one_of(plain, plain, st.builds(lambda blank, value: blank + value, st.sampled_from([" ", "\t"]), plain),
                     st.text(max_size=60))


@settings(max_examples=500, deadline=None)
@given(value=_traceparents(), tracestate=st.one_of(st.none(), st.none(), st.just("vendor=1"), st.just("bad state")))
@example(value=PLAIN, tracestate=None)
@example(value=PLAIN, tracestate="vendor=1")
@example(value=f"00-{'0' * 32}-{CALLER_SPAN}-01", tracestate=None)
@example(value=f"00-{CALLER_TRACE}-{'0' * 16}-01", tracestate=None)
@example(value=f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01", tracestate=None)
@example(value=f"00-{CALLER_TRACE}-{CALLER_SPAN}-0A", tracestate=None)
@example(value=f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01", tracestate=None)
@example(value=f"01-{CALLER_TRACE}-{CALLER_SPAN}-01-extra", tracestate=None)
@example(value=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01-extra", tracestate=None)
@example(value=f" {PLAIN}\t", tracestate=None)
def test_a_callers_traceparent_is_read_as_the_w3c_propagator_reads_it(value, tracestate):
    """The server span's parent is read without the propagator for the plain form (libs/service/tracing.py,
    remote_parent): for every header, plain or not, it must be the span context the propagator extracts."""
    from multidict import CIMultiDict
    from opentelemetry import trace

    from libs.service.tracing import context_from, remote_parent

    headers = CIMultiDict({"traceparent": value})
    if tracestate is not None:
        headers["tracestate"] = tracestate
    expected = trace.get_current_span(context_from(headers)).get_span_context()
    assert remote_parent(headers) == expected
    assert remote_parent(CIMultiDict()) == trace.INVALID_SPAN_CONTEXT


def test_a_plain_traceparent_is_continued():
    from multidict import CIMultiDict

    from libs.service.tracing import remote_parent

    parent = remote_parent(CIMultiDict({"traceparent": PLAIN}))
    assert (parent.trace_id, parent.span_id, int(parent.trace_flags), parent.is_remote) == (
        int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), 1, True)
