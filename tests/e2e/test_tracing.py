"""One login is one trace across the platform's processes, exported over OTLP as in production.

A platform of its own (ports, databases and consumer groups of its own, on
the test broker and database) runs with `OTEL_EXPORTER_OTLP_ENDPOINT`
pointing at an OTLP/HTTP receiver in this test (tests/support/tracing.py),
which decodes the protobuf each process exports. A relying party starts a
login through the gateway, the citizen's phone opens the app link and
approves, the relying party redeems the code. The browser's authorization
request starts the trace at the gateway; the phone's requests are traces of
their own, but the citizen's decision continues the login's trace (linked to
the phone's request), and so do the events it publishes and their handling
in formfill, signing and notify. The JSON log lines of the processes carry
the same trace id.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid

import pytest
import requests

from libs.devstack import DevStack, StackConfig
from libs.devstack.config import REPO_ROOT

from ..conftest import Platform
from ..support.citizens import basic_citizen
from ..support.consumer_groups import new_group_prefix, read_from_now
from ..support.database import mongo
from ..support.formfill import FIELDS, created, wait_for_status
from ..support.oidc import REDIRECT, app_link_of, authorize_url, client_token, register, token_request
from ..support.polling import eventually
from ..support.tracing import ExportedSpan, OtlpReceiver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced(infra, receiver):
    """The services and the dispatcher as processes exporting their spans to `receiver`."""
    run_dir = REPO_ROOT / ".dev" / f"test-tracing-{os.getpid()}"
    config = StackConfig.free_ports(run_dir)
    config.kafka_port = int(infra.kafka_bootstrap.rsplit(":", 1)[1])
    config.mongo_port = int(infra.mongo_uri.split(":")[2].split("/")[0])
    config.db_prefix = f"o{uuid.uuid4().hex[:6]}_"
    config.extra_env = {
        "HARBOUR_KAFKA_GROUP_PREFIX": new_group_prefix(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans reach the receiver soon after they end
        "HARBOUR_ACCESS_LOG_SAMPLE": "1",  # every request's log line, which the test joins to its trace
    }
    asyncio.run(read_from_now(config.kafka_bootstrap, config.extra_env["HARBOUR_KAFKA_GROUP_PREFIX"]))
    stack = DevStack(config)
    try:
        stack.up_services()
        yield Platform(stack, infra)
    finally:
        stack.down_services()
        asyncio.run(_drop_databases(infra.mongo_uri, config.db_prefix))
        shutil.rmtree(run_dir, ignore_errors=True)


async def _drop_databases(uri: str, prefix: str) -> None:
    async with mongo(uri) as client:
        for name in await client.list_database_names():
            if name.startswith(prefix):
                await client.drop_database(name)


def _one(spans: list[ExportedSpan], **wanted) -> ExportedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, found)
    return found[0]


def _has_all(spans: list[ExportedSpan], *wanted: tuple[str, str]) -> bool:
    """Whether a span of each (service, name) has been exported."""
    return set(wanted) <= {(s.service, s.name) for s in spans}


def _maybe_one(spans: list[ExportedSpan], **wanted) -> ExportedSpan | None:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) <= 1, (wanted, found)
    return found[0] if found else None


def _log_lines(platform: Platform, process: str) -> list[dict]:
    lines = (platform.stack.log_dir / f"{process}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_one_login_is_one_trace_across_the_platform(traced, receiver, tmp_path):
    platform = traced
    metadata = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()
    citizen = await basic_citizen(platform, tmp_path)
    rp = register(platform)

    # The browser at the authorization endpoint (through the gateway): the login's trace begins at the gateway.
    url, verifier = authorize_url(metadata, rp["client_id"])
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    # The phone opens the app link and approves; the relying party redeems the code.
    outcome = await citizen.open_link(app_link_of(page.text))
    code = outcome["redirect_to"].split("code=")[1].split("&")[0]
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text

    authorize_path = "/oidc/authorize"

    def authorized():
        return [s for s in receiver.snapshot() if s.service == "harbour-auth" and s.kind == "SPAN_KIND_SERVER"
                and s.attributes.get("http.route") == authorize_path]

    [authorize] = await eventually(authorized)
    assert authorize.name == f"GET {authorize_path}" and authorize.attributes["http.response.status_code"] == 200
    # gateway server → gateway client → auth server: the authorization request, across two processes.
    forward = await eventually(lambda: _maybe_one(receiver.snapshot(), service="harbour-gateway", span_id=authorize.parent_id))
    assert forward.kind == "SPAN_KIND_CLIENT" and forward.name == "GET"
    edge = await eventually(lambda: _maybe_one(receiver.snapshot(), service="harbour-gateway", span_id=forward.parent_id))
    assert edge.kind == "SPAN_KIND_SERVER" and edge.attributes["http.response.status_code"] == 200
    assert edge.parent_id == ""  # the browser sent no traceparent: the gateway began the trace
    login_trace = edge.trace_id

    def journey() -> list[ExportedSpan] | None:
        """The login's spans, once the other services' handling of its events has been exported too."""
        spans = [s for s in receiver.snapshot() if s.trace_id == login_trace]
        # Each process exports on its own schedule: the consumers' spans can arrive before auth's own.
        complete = _has_all(
            spans, ("harbour-auth", "approval decided"), ("harbour-formfill", "process identity.events"),
            ("harbour-signing", "process identity.events"), ("harbour-notify", "process identity.events"))
        published_audit = [s for s in spans if s.service == "harbour-auth" and s.name == "publish audit.events"]
        return spans if complete and len(published_audit) >= 2 else None

    spans = await eventually(journey)

    # The citizen's decision, on the phone's own request, continues the login's trace...
    decided = _one(spans, service="harbour-auth", name="approval decided")
    assert decided.parent_id == authorize.span_id
    assert decided.attributes["harbour.approval.action"] == "login"
    # ...linked to the phone's request, which is a trace of its own (gateway → auth, like any request).
    # The phone's request span ends after the decision's, so it may leave auth in a later export.
    [phone] = await eventually(lambda: [s for s in receiver.snapshot() if s.service == "harbour-auth" and s.kind == "SPAN_KIND_SERVER"
                                        and s.attributes.get("http.route") == "/v1/approvals/{approval_id}/decision"])
    assert phone.trace_id != login_trace and decided.links == ((phone.trace_id, phone.span_id),)
    # The gateway exports on its own schedule too: its client span of the phone's request may come after auth's.
    phone_edge = await eventually(lambda: _maybe_one(receiver.snapshot(), service="harbour-gateway", span_id=phone.parent_id))
    assert phone_edge.kind == "SPAN_KIND_CLIENT" and phone_edge.trace_id == phone.trace_id

    # ...and so do the events it publishes, through the outbox and Kafka, into the other services' consumers: the
    # audit records of the decision and of the login it completed (for signing's ledger, which appends them in
    # batches; notify reads no audit record since 2026-12-05). No approval.decided: auth asked for the login prompt
    # itself and finished it (approvals/decisions.py).
    assert not [s for s in spans if s.name in ("publish approvals.decided", "process approvals.decided")]
    audited = {s.span_id for s in spans if s.name == "publish audit.events"}
    assert len(audited) == 2 and all(s.parent_id == decided.span_id for s in spans if s.span_id in audited)
    assert not [s for s in receiver.snapshot() if s.service == "harbour-notify" and s.name == "process audit.events"]
    # The citizen's first login at this relying party gave them a subject there: formfill, notify and signing take
    # identity.subject_assigned in the same trace.
    assigned = _one(spans, service="harbour-auth", kind="SPAN_KIND_PRODUCER", name="publish identity.events")
    for service in ("harbour-formfill", "harbour-signing", "harbour-notify"):
        assert _one(spans, service=service, name="process identity.events").parent_id == assigned.span_id
    assert {s.trace_id for s in spans} == {login_trace}

    # Logs join the trace: the authorization request's log line, at the gateway and at auth, carries its id.
    for process, span in (("gateway", edge), ("auth", authorize)):
        [line] = [line for line in _log_lines(platform, process) if line.get("trace_id") == login_trace
                  and line["event"] == "request" and line["method"] == "GET"]
        assert line["span_id"] == span.span_id and line["status"] == 200
    # Probes are not traced.
    assert not any(s.attributes.get("http.route") in ("/healthz", "/readyz") for s in receiver.snapshot())


async def test_one_form_fill_is_one_trace_from_the_relying_partys_request_to_the_release(traced, receiver, tmp_path):
    """gateway → formfill → Kafka → auth → (the phone decides) → Kafka → formfill: one trace, though the phone's
    claim and decision are requests of their own."""
    platform = traced
    metadata = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()
    citizen = await basic_citizen(platform, tmp_path)
    rp = register(platform, client_name="Harbour Library", scope="openid formfill", formfill_fields=FIELDS)
    token = client_token(metadata, rp, "formfill")
    request = await created(platform, token, [("name_en", True)])
    opened = await citizen.open_link(request["app_link"])
    assert opened["status"] == "approved"
    await wait_for_status(platform, token, request["request_id"], "approved")
    approval_id = f"formfill-{request['request_id']}"

    def asked():
        return [s for s in receiver.snapshot() if s.service == "harbour-formfill" and s.name == "approval requested"
                and s.attributes["harbour.approval_id"] == approval_id]

    [asking] = await eventually(asked)
    fill_trace = asking.trace_id

    def journey() -> list[ExportedSpan] | None:
        spans = [s for s in receiver.snapshot() if s.trace_id == fill_trace]
        # Each process exports on its own schedule: formfill's release can arrive before auth's decision.
        complete = _has_all(spans, ("harbour-formfill", "process approvals.decided"), ("harbour-auth", "approval decided"),
                            ("harbour-auth", "publish approvals.decided"), ("harbour-auth", "process approvals.requested"),
                            ("harbour-notify", "process approvals.requested"))
        # ...and the gateway's, by their ids: the server span of the relying party's request and its client span.
        by_id = {s.span_id: s for s in spans}
        entry = [s for s in spans if s.service == "harbour-formfill" and s.kind == "SPAN_KIND_SERVER"]
        forward = by_id.get(entry[0].parent_id) if entry else None
        complete = complete and forward is not None and forward.parent_id in by_id
        return spans if complete else None

    spans = await eventually(journey)
    # The relying party's request, through the gateway, began the trace and kept it with the request.
    created_at_formfill = _one(spans, service="harbour-formfill", kind="SPAN_KIND_SERVER")
    assert created_at_formfill.attributes["http.route"] == "/v1/formfill/requests"
    forward = _one(spans, service="harbour-gateway", kind="SPAN_KIND_CLIENT", span_id=created_at_formfill.parent_id)
    _one(spans, service="harbour-gateway", kind="SPAN_KIND_SERVER", span_id=forward.parent_id, parent_id="")
    # The phone's claim asked the citizen, in that trace (linked to the claim's own).
    assert asking.parent_id == created_at_formfill.span_id and len(asking.links) == 1
    [claim] = await eventually(lambda: [s for s in receiver.snapshot() if s.span_id == asking.links[0][1]])
    assert claim.attributes["http.route"] == "/v1/formfill/requests/{request_id}/claim" and claim.trace_id != fill_trace
    # formfill → Kafka → auth: the prompt reaches the citizen's queue (and notify's push).
    requested = _one(spans, service="harbour-formfill", name="publish approvals.requested", parent_id=asking.span_id)
    queued = _one(spans, service="harbour-auth", name="process approvals.requested", parent_id=requested.span_id)
    _one(spans, service="harbour-notify", name="process approvals.requested", parent_id=requested.span_id)
    # The decision continues from the queued prompt; auth → Kafka → formfill releases.
    decided = _one(spans, service="harbour-auth", name="approval decided", parent_id=queued.span_id)
    assert decided.attributes["harbour.approval.action"] == "formfill"
    published = _one(spans, service="harbour-auth", name="publish approvals.decided", parent_id=decided.span_id)
    released = _one(spans, service="harbour-formfill", name="process approvals.decided", parent_id=published.span_id)
    assert released.attributes["harbour.event.outcome"] == "processed"
