"""The service kit over real HTTP: problem+json for every error, request ids, route-template metrics, JSON logs."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from libs.consented_requests.refusals import NotAnswered
from libs.service import ServiceSettings, create_service_app, parse_body
from libs.service.health import create_metrics_app
from libs.service.logging import get_logger

from ..support.logs import service_logs

PROBLEM = "application/problem+json"


class Enrolment(BaseModel):
    card_number: str = Field(pattern=r"^[A-Z]{1,2}\d{6}\(\d|A\)$")
    age: int = Field(ge=11)


async def create_enrolment(request: web.Request) -> web.Response:
    body = await parse_body(request, Enrolment)
    return web.json_response({"accepted": body.age}, status=201)


async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("database password is hunter2")


async def show_thing(request: web.Request) -> web.Response:
    get_logger("test").info("showing thing", thing=request.match_info["id"])
    return web.json_response({"id": request.match_info["id"]})


@pytest.fixture(autouse=True)
def json_logs(capsys):
    """The services' real logging set-up, writing into the captured stdout."""
    with service_logs("kit-test"):
        yield


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
async def client():
    # Every request logged (HARBOUR_ACCESS_LOG_SAMPLE=1), so a test may look for any request's line.
    app = create_service_app(ServiceSettings(service="kit-test", max_body_bytes=1024, access_log_sample=1))
    app.router.add_post("/enrolments", create_enrolment)
    app.router.add_get("/boom", explode)
    app.router.add_get("/things/{id}", show_thing)
    async with TestClient(TestServer(app)) as client:
        yield client


async def problem_of(response) -> dict:
    assert response.content_type == PROBLEM, await response.text()
    body = await response.json(content_type=PROBLEM)
    assert body["status"] == response.status
    assert body["type"].startswith("https://")
    return body


async def test_valid_body_reaches_the_handler(client):
    response = await client.post("/enrolments", json={"card_number": "A123456(3)", "age": 30})
    assert response.status == 201
    assert await response.json() == {"accepted": 30}


async def test_malformed_json_is_400_problem(client):
    response = await client.post("/enrolments", data=b'{"card_number": ', headers={"Content-Type": "application/json"})
    assert response.status == 400
    body = await problem_of(response)
    assert "not valid JSON" in body["detail"]


async def test_validation_failure_is_422_naming_the_fields(client):
    response = await client.post("/enrolments", json={"card_number": "nope", "age": 5})
    assert response.status == 422
    body = await problem_of(response)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"card_number", "age"}
    # The offending values are not echoed back (they could be personal data).
    assert "nope" not in json.dumps(body)


@pytest.mark.parametrize(
    ("payload", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b"\xff\xfe", "application/json", 400),
        (b"card=1", "application/x-www-form-urlencoded", 415),
        (b'{"a": "' + b"x" * 2000 + b'"}', "application/json", 413),
    ],
)
async def test_every_bad_body_is_a_4xx_problem(client, payload, content_type, status):
    response = await client.post("/enrolments", data=payload, headers={"Content-Type": content_type})
    assert response.status == status
    await problem_of(response)


async def test_unexpected_error_is_500_without_stack_trace(client, capsys):
    response = await client.get("/boom")
    assert response.status == 500
    body = await problem_of(response)
    text = json.dumps(body)
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text
    # ...but the log has the whole trace, for the operator.
    logged = next(line for line in log_lines(capsys) if line["event"] == "unhandled error")
    assert "Traceback" in logged["exception"] and "hunter2" in logged["exception"]
    assert logged["request_id"] == response.headers["X-Request-Id"]


async def test_unknown_route_and_method_are_problems(client):
    assert (await problem_of(await client.get("/nowhere")))["status"] == 404
    response = await client.delete("/enrolments")
    assert response.status == 405
    await problem_of(response)
    assert "POST" in response.headers["Allow"]


async def test_request_id_is_kept_or_made(client):
    response = await client.get("/healthz", headers={"X-Request-Id": "req-123"})
    assert response.headers["X-Request-Id"] == "req-123"
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert response.headers["X-Request-Id"] not in {"", "bad id <script>"}
    assert len(response.headers["X-Request-Id"]) == 32


async def test_metrics_label_the_route_template_not_the_path(client):
    for thing in ("zq81x", "zq82x", "zq83x"):
        assert (await client.get(f"/things/{thing}")).status == 200
    assert (await client.get("/metrics")).status == 404  # not on the service's own listener
    async with TestClient(TestServer(create_metrics_app())) as internal:
        response = await internal.get("/metrics")
        assert response.status == 200
        text = await response.text()
    assert 'route="/things/{id}"' in text
    assert "zq8" not in text
    value = REGISTRY.get_sample_value(
        "harbour_http_requests_total",
        {"service": "kit-test", "route": "/things/{id}", "method": "GET", "status": "200"},
    )
    assert value is not None and value >= 3
    assert REGISTRY.get_sample_value(
        "harbour_http_request_duration_seconds_count",
        {"service": "kit-test", "route": "/things/{id}", "method": "GET", "status": "200"},
    ) >= 3


async def test_readyz_without_checks_is_ready(client):
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def test_log_lines_are_json_with_request_id_and_no_pii(client, capsys):
    await client.get("/things/x9", headers={"X-Request-Id": "trace-77"})
    get_logger("test").info("enrolled", email="alice@example.org", details={"phone": "91234567"})
    lines = log_lines(capsys)
    showing = next(line for line in lines if line["event"] == "showing thing")
    assert showing["request_id"] == "trace-77"
    assert showing["service"] == "kit-test"
    request_line = next(line for line in lines if line["event"] == "request" and line.get("request_id") == "trace-77")
    assert request_line["route"] == "/things/{id}" and request_line["status"] == 200
    enrolled = next(line for line in lines if line["event"] == "enrolled")
    assert enrolled["email"] == "[redacted]" and enrolled["details"]["phone"] == "[redacted]"
    assert "alice@example.org" not in json.dumps(lines)


async def result_not_ready(request: web.Request) -> web.Response:
    raise NotAnswered("the citizen has not answered yet", headers={"Retry-After": "1"})


async def slow_thing(request: web.Request) -> web.Response:
    await asyncio.sleep(0.06)
    return web.json_response({"slow": True})


@pytest.fixture
async def default_client():
    """A service with the access log as shipped (sampling 1 in 100), slow from 50 ms."""
    app = create_service_app(ServiceSettings(service="kit-test", access_log_slow_ms=50))
    app.router.add_get("/things/{id}", show_thing)
    app.router.add_get("/slow", slow_thing)
    app.router.add_get("/boom", explode)
    app.router.add_get("/results/{id}", result_not_ready)
    async with TestClient(TestServer(app)) as client:
        yield client


def request_lines(capsys) -> list[dict]:
    return [line for line in log_lines(capsys) if line["event"] == "request"]


def requests_counted(route: str, status: str) -> float:
    labels = {"service": "kit-test", "route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("harbour_http_requests_total", labels) or 0.0


async def test_a_successful_request_writes_no_access_line_but_is_counted(default_client, capsys):
    capsys.readouterr()
    counted = requests_counted("/things/{id}", "200")
    for n in range(20):  # fewer than the 1 in 100 sampled
        assert (await default_client.get(f"/things/{n}", headers={"X-Request-Id": f"quiet-{n}"})).status == 200
    assert [line for line in request_lines(capsys) if line.get("request_id", "").startswith("quiet-")] == []
    assert requests_counted("/things/{id}", "200") == counted + 20


async def test_errors_and_slow_requests_are_logged_with_their_request_id(default_client, capsys):
    capsys.readouterr()
    assert (await default_client.get("/nowhere", headers={"X-Request-Id": "err-404"})).status == 404
    assert (await default_client.get("/boom", headers={"X-Request-Id": "err-500"})).status == 500
    assert (await default_client.get("/slow", headers={"X-Request-Id": "slow-1"})).status == 200
    lines = {line.get("request_id"): line for line in request_lines(capsys)}
    assert lines["err-404"]["status"] == 404 and lines["err-404"]["level"] == "info" and lines["err-404"]["logged"] == "error"
    assert lines["err-500"]["status"] == 500 and lines["err-500"]["level"] == "warning"
    assert lines["slow-1"]["logged"] == "slow" and lines["slow-1"]["duration_ms"] >= 50


async def test_a_result_polled_for_before_it_is_ready_is_answered_and_counted_but_not_logged_each_time(default_client, capsys):
    # A relying party polls every few tens of milliseconds until the citizen answers: "not ready" is the normal
    # course, not a refusal — a line each would be most of a service's log. A real refusal still gets its line.
    capsys.readouterr()
    counted = requests_counted("/results/{id}", "409")
    for n in range(20):
        answer = await default_client.get(f"/results/{n}", headers={"X-Request-Id": f"poll-{n}"})
        assert answer.status == 409 and (await answer.json())["type"].endswith("/not-ready")
    assert (await default_client.get("/nowhere", headers={"X-Request-Id": "refused-404"})).status == 404
    logged = {line.get("request_id") for line in request_lines(capsys)}
    assert not any(request_id.startswith("poll-") for request_id in logged if request_id) and "refused-404" in logged
    assert requests_counted("/results/{id}", "409") == counted + 20


async def test_one_in_sample_successful_requests_is_logged(capsys):
    app = create_service_app(ServiceSettings(service="kit-test", access_log_sample=10))
    app.router.add_get("/things/{id}", show_thing)
    async with TestClient(TestServer(app)) as client:
        capsys.readouterr()
        for n in range(30):
            assert (await client.get(f"/things/{n}")).status == 200
    sampled = request_lines(capsys)
    assert len(sampled) == 3 and {line["logged"] for line in sampled} == {"sample"}
    assert all(line["request_id"] for line in sampled)


def test_kafka_security_from_the_environment(monkeypatch):
    """Production authenticates with SCRAM over TLS; a half-configured SASL setting stops the service at start."""
    from libs.events.kafka import connection_options
    from libs.service.settings import KafkaSecurity, SettingsError

    assert connection_options(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("HARBOUR_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("HARBOUR_KAFKA_USERNAME", "harbour-auth")
    with pytest.raises(SettingsError, match="HARBOUR_KAFKA_PASSWORD"):
        KafkaSecurity.from_env()
    monkeypatch.setenv("HARBOUR_KAFKA_PASSWORD", "s3cret")
    security = KafkaSecurity.from_env()
    assert "s3cret" not in repr(security)
    options = connection_options(security)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "harbour-auth" and options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED" and options["ssl_context"].check_hostname
    monkeypatch.setenv("HARBOUR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HARBOUR_KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(SettingsError, match="SASL_MECHANISM"):
        KafkaSecurity.from_env()
    monkeypatch.setenv("HARBOUR_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(SettingsError, match="SECURITY_PROTOCOL"):
        KafkaSecurity.from_env()
